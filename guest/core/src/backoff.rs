//! Retry delays and poll spacing (a `Retry-After` is read by [`crate::time`]).
//!
//! The provider allows 50 requests per minute per account, shared by every key and every job
//! in flight, so how often we retry and poll is what decides whether a busy account stays
//! within budget. Nothing here reads a clock or a random source: the caller passes the time
//! and the randomness in, so every function is deterministic and tested exhaustively.

use crate::model::PollPolicy;

/// The first retry's delay ceiling, in milliseconds.
const BASE_DELAY_MS: u64 = 500;

/// The largest delay ceiling of the exponential backoff, in milliseconds.
const MAX_BACKOFF_MS: u64 = 30_000;

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    }
}
