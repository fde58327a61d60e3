//! Retry delays, `Retry-After`, poll spacing and timestamps.
//!
//! The provider allows 50 requests per minute per account, shared by every key and every job
//! in flight, so how often we retry and poll is what decides whether a busy account stays
//! within budget. Nothing here reads a clock or a random source: the caller passes the time
//! and the randomness in, so every function is deterministic and tested exhaustively.

use std::time::SystemTime;

use crate::model::PollPolicy;

/// The longest `Retry-After` honoured, in milliseconds (1 hour): a longer (or absurd) value
/// would park a caller for longer than any sensible deadline.
pub const MAX_RETRY_AFTER_MS: u64 = 60 * 60 * 1_000;

/// The first retry's delay ceiling, in milliseconds.
const BASE_DELAY_MS: u64 = 500;

/// The largest delay ceiling of the exponential backoff, in milliseconds.
const MAX_BACKOFF_MS: u64 = 30_000;

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

/// The delay before retry number `attempt` (0 for the first retry), in milliseconds.
///
/// Exponential backoff with "equal jitter": the ceiling is 500 ms × 2^`attempt`, at most
/// 30 s, and the delay is half the ceiling plus a random share of the other half, so it lies
/// in `[ceiling / 2, ceiling]`. Jitter keeps clients that failed together from retrying
/// together.
///
/// With `retry_after_ms`, the delay is also at least that plus 0–10 % of it, for the same
/// reason: it lies in `[max(ceiling / 2, retry_after), max(ceiling, retry_after × 1.1)]`.
/// `random` is any uniformly random number; every input is safe (no overflow).
pub fn retry_delay_ms(attempt: u32, retry_after_ms: Option<u64>, random: u64) -> u64 {
    let ceiling = backoff_ceiling_ms(attempt);
    let half = ceiling / 2;
    let backoff = half + random % (ceiling - half + 1);
    match retry_after_ms {
        None => backoff,
        Some(asked) => {
            // Other bits of `random` than the backoff's, so the two jitters are independent.
            let jitter = random.rotate_left(32) % (asked / 10 + 1);
            backoff.max(asked.saturating_add(jitter))
        }
    }
}

/// `min(500 × 2^attempt, 30 000)`; the shift is bounded so it can never overflow.
fn backoff_ceiling_ms(attempt: u32) -> u64 {
    // 500 << 16 is already past the cap.
    (BASE_DELAY_MS << attempt.min(16)).min(MAX_BACKOFF_MS)
}

/// The suggested delay before polling a job again, in milliseconds.
///
/// - With progress `p` strictly between 0 and 1 and the job's age known, the job's remaining
///   time is predicted as `age × (1 − p) / p` (it has been progressing at that pace): a job
///   about to finish is polled soon, a long one rarely.
/// - With only the age known, a quarter of it: young jobs are polled often, old ones back off.
/// - Otherwise the policy's minimum.
///
/// The result is clamped into `[min_interval_ms, max_interval_ms]` (a policy whose minimum
/// exceeds its maximum is read as both being the minimum), then raised to `retry_after_ms`
/// when the provider asked for a longer wait; that may exceed the maximum. Any input is safe,
/// including NaN or infinite progress.
pub fn next_poll_ms(
    policy: &PollPolicy,
    progress: Option<f64>,
    age_ms: Option<u64>,
    retry_after_ms: Option<u64>,
) -> u32 {
    let min = policy.min_interval_ms;
    let max = policy.max_interval_ms.max(min);
    let suggested = match (progress, age_ms) {
        (Some(p), Some(age)) if p > 0.0 && p < 1.0 => {
            // Dividing first keeps a zero age from meeting an infinite ratio (0 × ∞ is
            // NaN); an infinite prediction is fine, and max/min also absorb NaN. Rounding
            // keeps 9 999.999… from becoming 9 999.
            let remaining = age as f64 / p * (1.0 - p);
            remaining.round().max(f64::from(min)).min(f64::from(max)) as u32
        }
        (_, Some(age)) => clamp_u64(age / 4, min, max),
        _ => min,
    };
    match retry_after_ms {
        Some(asked) => suggested.max(u32::try_from(asked).unwrap_or(u32::MAX)),
        None => suggested,
    }
}

fn clamp_u64(value: u64, min: u32, max: u32) -> u32 {
    let clamped = value.clamp(u64::from(min), u64::from(max));
    u32::try_from(clamped).unwrap_or(max)
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

    // ---- retry delays ----

    #[test]
    fn retry_delay_grows_then_caps() {
        // random = 0 gives the low end of each range (half the ceiling).
        let low: Vec<u64> = (0..8).map(|a| retry_delay_ms(a, None, 0)).collect();
        assert_eq!(low, [250, 500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000]);
        assert_eq!(retry_delay_ms(0, None, 250), 500);
        assert_eq!(retry_delay_ms(10, None, 15_000), 30_000);
        assert_eq!(
            retry_delay_ms(u32::MAX, None, u64::MAX),
            retry_delay_ms(16, None, u64::MAX)
        );
    }

    #[test]
    fn retry_delay_honours_retry_after_with_jitter() {
        assert_eq!(retry_delay_ms(0, Some(10_000), 0), 10_000);
        let d = retry_delay_ms(0, Some(10_000), 500u64 << 32);
        assert_eq!(d, 10_500);
        assert!(retry_delay_ms(0, Some(10_000), u64::MAX) <= 11_000);
        // A short Retry-After does not shorten the backoff.
        assert_eq!(retry_delay_ms(6, Some(1), 0), 15_000);
        assert_eq!(retry_delay_ms(0, Some(u64::MAX), u64::MAX), u64::MAX);
    }

    // ---- poll spacing ----

    fn policy(min: u32, max: u32) -> PollPolicy {
        PollPolicy {
            min_interval_ms: min,
            max_interval_ms: max,
            ..PollPolicy::default()
        }
    }

    #[test]
    fn poll_follows_predicted_remaining_time() {
        let p = PollPolicy::default(); // 5 s to 15 s
        // Halfway after 20 s: about 20 s left, capped at 15 s.
        assert_eq!(next_poll_ms(&p, Some(0.5), Some(20_000), None), 15_000);
        // 80 % after 40 s: 10 s left.
        assert_eq!(next_poll_ms(&p, Some(0.8), Some(40_000), None), 10_000);
        // 99 % after 60 s: about to finish, poll at the minimum.
        assert_eq!(next_poll_ms(&p, Some(0.99), Some(60_000), None), 5_000);
        // 1 % after 1 s: a long job, the maximum.
        assert_eq!(next_poll_ms(&p, Some(0.01), Some(1_000), None), 15_000);
    }

    #[test]
    fn poll_backs_off_with_age_without_progress() {
        let p = PollPolicy::default();
        assert_eq!(next_poll_ms(&p, None, Some(0), None), 5_000);
        assert_eq!(next_poll_ms(&p, None, Some(40_000), None), 10_000);
        assert_eq!(next_poll_ms(&p, None, Some(10_000_000), None), 15_000);
        // Progress 0 or 1 says nothing about pace.
        assert_eq!(next_poll_ms(&p, Some(0.0), Some(40_000), None), 10_000);
        assert_eq!(next_poll_ms(&p, Some(1.0), Some(40_000), None), 10_000);
        assert_eq!(next_poll_ms(&p, Some(f64::NAN), Some(40_000), None), 10_000);
    }

    #[test]
    fn poll_defaults_to_min_and_respects_retry_after() {
        let p = PollPolicy::default();
        assert_eq!(next_poll_ms(&p, Some(0.5), None, None), 5_000);
        assert_eq!(next_poll_ms(&p, None, None, Some(60_000)), 60_000);
        assert_eq!(next_poll_ms(&p, None, None, Some(1_000)), 5_000);
        assert_eq!(next_poll_ms(&p, None, None, Some(u64::MAX)), u32::MAX);
        // A zero age with a vanishing progress must not make NaN (0 × ∞).
        assert_eq!(
            next_poll_ms(&p, Some(f64::MIN_POSITIVE / 4.0), Some(0), None),
            5_000
        );
    }

    #[test]
    fn poll_policy_with_min_above_max_uses_min() {
        let p = policy(20_000, 1_000);
        assert_eq!(next_poll_ms(&p, Some(0.5), Some(1), None), 20_000);
        assert_eq!(next_poll_ms(&p, None, Some(u64::MAX), None), 20_000);
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

    proptest! {
        #[test]
        fn retry_delay_stays_within_bounds(attempt in any::<u32>(), asked in prop::option::of(any::<u64>()), random in any::<u64>()) {
            let d = retry_delay_ms(attempt, asked, random);
            let ceiling = backoff_ceiling_ms(attempt);
            prop_assert!(ceiling <= MAX_BACKOFF_MS);
            prop_assert!(d >= ceiling / 2);
            match asked {
                None => prop_assert!(d <= ceiling),
                Some(a) => {
                    prop_assert!(d >= a);
                    prop_assert!(d <= ceiling.max(a.saturating_add(a / 10)));
                }
            }
        }

        #[test]
        fn next_poll_stays_within_bounds(
            min in any::<u32>(), max in any::<u32>(),
            progress in prop::option::of(prop_oneof![any::<f64>(), 0.0f64..=1.0]),
            age in prop::option::of(any::<u64>()),
            asked in prop::option::of(any::<u64>()),
        ) {
            let p = policy(min, max);
            let d = next_poll_ms(&p, progress, age, asked);
            let upper = max.max(min);
            prop_assert!(d >= min);
            match asked {
                None => prop_assert!(d <= upper),
                Some(a) => {
                    let a = u32::try_from(a).unwrap_or(u32::MAX);
                    prop_assert!(d >= a);
                    prop_assert!(d <= upper.max(a));
                }
            }
        }

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
    }
}
