//! Time without a date crate: what a provider's answers and headers say about when, read
//! the same way by the component, the host and the emulator.
//!
//! - [`parse_retry_after`]: a `Retry-After` header (delta-seconds or an HTTP-date);
//! - [`parse_timestamp_ms`]: a job's `created_at` (RFC 3339 or Unix seconds);
//! - [`rfc3339`]: a Unix time written back as RFC 3339 UTC, for journals and reports;
//! - civil-date arithmetic (days since 1970 to and from year, month, day), in one place.
//!
//! Nothing here reads a clock: the caller passes the time in, so every function is
//! deterministic and tested exhaustively.

use std::time::SystemTime;

/// The longest `Retry-After` honoured, in milliseconds (1 hour): a longer (or absurd) value
/// would park a caller for longer than any sensible deadline.
pub const MAX_RETRY_AFTER_MS: u64 = 60 * 60 * 1_000;

/// A Unix-seconds value this large (year 5138) can only be milliseconds.
const SECONDS_THAT_ARE_MILLIS: u64 = 100_000_000_000;

/// The delay a `Retry-After` header asks for, in milliseconds, capped at
/// [`MAX_RETRY_AFTER_MS`].
///
/// Accepts delta-seconds (`"120"`, and decimals such as `"1.5"`, rounded up to the next
/// millisecond) and HTTP-dates (`"Wed, 21 Oct 2015 07:28:00 GMT"`, measured from `now`; a
/// date in the past is `Some(0)`). Anything else is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<u64> {
    let value = value.trim();
    let ms = if is_decimal(value) {
        // An integer too large for u64 is still a valid, very long delay.
        decimal_seconds_ms(value).unwrap_or(u64::MAX)
    } else {
        let date = httpdate::parse_http_date(value).ok()?;
        match date.duration_since(now) {
            Ok(ahead) => u64::try_from(ahead.as_millis()).unwrap_or(u64::MAX),
            Err(_) => 0,
        }
    };
    Some(ms.min(MAX_RETRY_AFTER_MS))
}

/// A Unix time in milliseconds as RFC 3339 UTC with milliseconds
/// (`2025-01-31T12:00:00.000Z`); times before 1970 count back from it.
pub fn rfc3339(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let millis = unix_ms.rem_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A timestamp as Unix milliseconds, for computing a job's age from its `created_at`.
///
/// Accepts RFC 3339 (`2025-01-02T03:04:05.678Z`, `…+02:00`; `t`/space as the separator,
/// `+0200`, and a missing offset read as UTC, because providers write all of these) and
/// decimal Unix seconds (`1735787045`, `1735787045.678`). A number too large to be seconds
/// (from year 5138 on) is read as milliseconds, since some APIs send those. Times before
/// 1970, impossible dates and anything else are `None`.
pub fn parse_timestamp_ms(value: &str) -> Option<u64> {
    let value = value.trim();
    if is_decimal(value) {
        let (whole, _) = value.split_once('.').unwrap_or((value, ""));
        let whole: u64 = whole.parse().ok()?;
        return if whole >= SECONDS_THAT_ARE_MILLIS {
            Some(whole)
        } else {
            decimal_seconds_ms(value)
        };
    }
    rfc3339_ms(value)
}

/// `digits` or `digits.digits`: no sign, no exponent, nothing else.
fn is_decimal(s: &str) -> bool {
    let (whole, fraction) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

/// Decimal seconds as milliseconds, rounded up; `None` on overflow (or bad syntax).
fn decimal_seconds_ms(s: &str) -> Option<u64> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    let seconds: u64 = whole.parse().ok()?;
    let millis = fraction_ms_ceil(fraction);
    seconds.checked_mul(1_000)?.checked_add(millis)
}

/// The first three fraction digits as milliseconds, plus one if any later digit is non-zero.
fn fraction_ms_ceil(fraction: &str) -> u64 {
    let millis = fraction_ms(fraction);
    let rest_nonzero = fraction.bytes().skip(3).any(|b| b != b'0');
    millis + u64::from(rest_nonzero)
}

/// The first three fraction digits as milliseconds (`"5"` is 500, `"25"` 250).
fn fraction_ms(fraction: &str) -> u64 {
    fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |ms, b| ms * 10 + u64::from(b.wrapping_sub(b'0') % 10))
}

/// An RFC 3339 date-time as Unix milliseconds.
fn rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let year = number(b, 0, 4)?;
    let month = number(b, 5, 2)?;
    let day = number(b, 8, 2)?;
    let hour = number(b, 11, 2)?;
    let minute = number(b, 14, 2)?;
    let second = number(b, 17, 2)?;
    let separators_ok = b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':');
    let in_range = (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour <= 23
        && minute <= 59
        && second <= 60; // 60: a leap second
    if !separators_ok || !in_range {
        return None;
    }
    let rest = s.get(19..)?;
    let (millis, zone) = split_fraction(rest)?;
    let offset_seconds = zone_offset_seconds(zone)?;
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + i64::from(hour * 3_600 + minute * 60 + second) - offset_seconds;
    let seconds = u64::try_from(seconds).ok()?;
    seconds.checked_mul(1_000)?.checked_add(millis)
}

/// Splits an optional `.digits` off the front of `rest`: `(milliseconds, remainder)`.
fn split_fraction(rest: &str) -> Option<(u64, &str)> {
    let Some(after_dot) = rest.strip_prefix('.') else {
        return Some((0, rest));
    };
    let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 {
        return None;
    }
    let digits = after_dot.get(..len)?;
    Some((fraction_ms(digits), after_dot.get(len..)?))
}

/// `Z`, `±HH:MM`, `±HHMM`, or nothing (read as UTC), as seconds east of UTC.
fn zone_offset_seconds(zone: &str) -> Option<i64> {
    let sign = match zone.as_bytes().first() {
        None => return Some(0),
        Some(b'Z' | b'z') => return (zone.len() == 1).then_some(0),
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return None,
    };
    let b = zone.as_bytes();
    let hours = number(b, 1, 2)?;
    let minutes = match (b.get(3), b.len()) {
        (Some(b':'), 6) => number(b, 4, 2)?,
        (Some(_), 5) => number(b, 3, 2)?,
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * i64::from(hours * 3_600 + minutes * 60))
}

/// The `len` ASCII digits at `start` of `b` as a number; `None` unless all are digits.
fn number(b: &[u8], start: usize, len: usize) -> Option<u32> {
    let digits = b.get(start..start.checked_add(len)?)?;
    digits.iter().try_fold(0u32, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// Days from 1970-01-01 to the given civil date (Howard Hinnant's algorithm), negative
/// before it.
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's
/// algorithm), negative before it: the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn at(unix_seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds)
    }

    const NOW: u64 = 1_445_412_480; // Wed, 21 Oct 2015 07:28:00 GMT

    // ---- Retry-After ----

    #[test]
    fn retry_after_in_seconds() {
        let now = at(NOW);
        assert_eq!(parse_retry_after("120", now), Some(120_000));
        assert_eq!(parse_retry_after(" 0 ", now), Some(0));
        assert_eq!(parse_retry_after("1.5", now), Some(1_500));
        assert_eq!(parse_retry_after("0.0001", now), Some(1));
        assert_eq!(parse_retry_after("7200", now), Some(MAX_RETRY_AFTER_MS));
        assert_eq!(
            parse_retry_after(&"9".repeat(100), now),
            Some(MAX_RETRY_AFTER_MS)
        );
    }

    #[test]
    fn retry_after_as_http_date() {
        let now = at(NOW);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(30_000)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(0)
        );
        assert_eq!(
            parse_retry_after("Thu, 22 Oct 2015 07:28:00 GMT", now),
            Some(MAX_RETRY_AFTER_MS)
        );
        // The obsolete formats HTTP still requires recipients to read.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:10 GMT", now),
            Some(10_000)
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:05 2015", now),
            Some(5_000)
        );
    }

    #[test]
    fn retry_after_garbage_is_none() {
        let now = at(NOW);
        for bad in [
            "",
            "soon",
            "-5",
            "+5",
            "1e3",
            "1.",
            ".5",
            "1.2.3",
            "Wed, 32 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    // ---- timestamps ----

    #[test]
    fn timestamps() {
        let cases = [
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2025-01-02T03:04:05Z", Some(1_735_787_045_000)),
            ("2025-01-02T03:04:05.678Z", Some(1_735_787_045_678)),
            ("2025-01-02t03:04:05.6789123z", Some(1_735_787_045_678)),
            ("2025-01-02 03:04:05", Some(1_735_787_045_000)),
            ("2025-01-02T05:04:05+02:00", Some(1_735_787_045_000)),
            ("2025-01-02T01:04:05-0200", Some(1_735_787_045_000)),
            ("2024-02-29T23:59:59Z", Some(1_709_251_199_000)),
            ("2000-03-01T00:00:00Z", Some(951_868_800_000)),
            ("1735787045", Some(1_735_787_045_000)),
            ("1735787045.5", Some(1_735_787_045_500)),
            ("1735787045678", Some(1_735_787_045_678)),
            ("0", Some(0)),
            ("2023-02-29T00:00:00Z", None),
            ("2025-13-01T00:00:00Z", None),
            ("2025-01-02T24:00:00Z", None),
            ("2025-01-02T03:04:05.Z", None),
            ("2025-01-02T03:04:05Zjunk", None),
            ("2025-01-02T03:04:05+2", None),
            ("1969-12-31T23:59:59Z", None),
            ("1970-01-01T00:00:00+01:00", None),
            ("2025-01-02", None),
            ("-5", None),
            ("yesterday", None),
            ("", None),
            ("2025-01-02T03:04:0é", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_timestamp_ms(text), expected, "{text:?}");
        }
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(951_827_696_789), "2000-02-29T12:34:56.789Z");
        assert_eq!(rfc3339(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    proptest! {
        #[test]
        fn retry_after_never_panics_and_is_capped(value in "\\PC{0,40}", now in any::<u32>()) {
            if let Some(ms) = parse_retry_after(&value, at(u64::from(now))) {
                prop_assert!(ms <= MAX_RETRY_AFTER_MS);
            }
        }

        #[test]
        fn retry_after_date_round_trips(now in 0u64..4_000_000_000, ahead in 0u64..7_200) {
            let date = httpdate::fmt_http_date(at(now + ahead));
            prop_assert_eq!(parse_retry_after(&date, at(now)), Some((ahead * 1_000).min(MAX_RETRY_AFTER_MS)));
        }

        #[test]
        fn timestamp_never_panics(value in "\\PC{0,40}") {
            let _ = parse_timestamp_ms(&value);
        }

        #[test]
        fn timestamp_seconds_round_trip(secs in 0u64..SECONDS_THAT_ARE_MILLIS) {
            prop_assert_eq!(parse_timestamp_ms(&secs.to_string()), Some(secs * 1_000));
        }

        #[test]
        fn rfc3339_agrees_with_http_date(secs in 0u64..253_402_300_799) {
            // httpdate formats the same instant; rebuild it as RFC 3339 and compare.
            let date = httpdate::HttpDate::from(at(secs));
            let text = date.to_string(); // "Wed, 21 Oct 2015 07:28:00 GMT"
            let parts: Vec<&str> = text.split([' ', ',']).filter(|p| !p.is_empty()).collect();
            let month = ["Jan","Feb","Mar","Apr","May","Jun","Jul","Aug","Sep","Oct","Nov","Dec"]
                .iter().position(|m| *m == parts[2]).unwrap() + 1;
            let rfc = format!("{}-{:02}-{}T{}Z", parts[3], month, parts[1], parts[4]);
            prop_assert_eq!(parse_timestamp_ms(&rfc), Some(secs * 1_000));
        }

        #[test]
        fn rfc3339_round_trips(ms in 0i64..253_402_300_799_999) {
            prop_assert_eq!(parse_timestamp_ms(&rfc3339(ms)), u64::try_from(ms).ok());
        }
    }
}
