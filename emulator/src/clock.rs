//! Wall-clock helpers: RFC 3339 timestamps and Unix seconds, with no date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch; a clock set before 1970 reads as the epoch instead of failing.
pub(crate) fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// `t` as an RFC 3339 UTC timestamp with milliseconds, e.g. `2025-01-31T08:05:09.042Z`
/// (the civil-date arithmetic is `video_gen_core::time`'s, the one the component parses with).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let ms = since_epoch(t).as_millis();
    video_gen_core::time::rfc3339(i64::try_from(ms).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century leap year) 12:34:56.789
        let t = UNIX_EPOCH + Duration::from_millis(951_827_696_789);
        assert_eq!(rfc3339(t), "2000-02-29T12:34:56.789Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599);
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59.000Z");
    }
}
