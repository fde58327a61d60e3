//! When a running job will complete, predicted from its progress readings: what lets the
//! scheduler ([`crate::scheduler`]) poll each job about once, just after it ends, instead of
//! on a timer. It lives with the scheduler that uses it, not in the component: a component
//! answers one poll at a time and never needs to know when a job will end.

/// One reading of a running job's progress, for [`predict_completion_ms`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressReading {
    /// The job's age when the provider answered, ms since it was created (the middle of the
    /// request is the best guess).
    pub age_ms: f64,
    /// Its progress then, strictly between 0 and 1.
    pub progress: f64,
    /// How far `age_ms` may be off, ms: half the request's round trip.
    pub uncertainty_ms: f64,
}

/// When a running job will complete, as its age in ms, from its progress readings (oldest
/// first); `None` without a reading. This is what lets a host that polls many jobs under one
/// request budget poll each job about once, just after it ends, instead of on a timer.
///
/// Progress is taken to rise linearly once the job leaves the queue, as it does for a
/// renderer working through frames:
/// - two readings or more: the line through the last two is extrapolated to 1;
/// - one reading `(age, p)`: the job left the queue at an unknown `q`, so it ends at
///   `q + (age − q) / p`, which is later the shorter the queue was. `queue_ms` is the range
///   of queue times seen on finished jobs (see [`implied_queue_ms`]); without one, anything
///   from nothing to almost the whole age. Polling at the latest end the range allows is
///   never early; when the range spans more than `lag_allowance_ms`, the answer is the
///   earliest end plus the allowance instead, so a job that is still running then yields a
///   second reading that pins the line down, at the cost of one more poll.
///
/// Either way the answer is pushed later by the readings' uncertainty, magnified as the
/// extrapolation magnifies it, so a poll lands just after the end rather than just before.
/// Readings outside `0 < p < 1` or with a non-finite age are ignored.
pub fn predict_completion_ms(
    readings: &[ProgressReading],
    queue_ms: Option<(f64, f64)>,
    lag_allowance_ms: f64,
) -> Option<f64> {
    let usable = |r: &&ProgressReading| {
        r.progress > 0.0 && r.progress < 1.0 && r.age_ms.is_finite() && r.age_ms >= 0.0
    };
    let mut usable_readings = readings.iter().filter(usable);
    let last = usable_readings.next_back()?;
    let before = usable_readings.next_back();
    let uncertainty = |r: &ProgressReading| r.uncertainty_ms.max(0.0);
    if let Some(first) = before
        && last.progress > first.progress
        && last.age_ms > first.age_ms
    {
        let rise = last.progress - first.progress;
        let end = last.age_ms + (1.0 - last.progress) * (last.age_ms - first.age_ms) / rise;
        let noise = (uncertainty(first) + uncertainty(last)) * (1.0 - last.progress) / rise;
        return Some(end + noise);
    }
    let (age, p) = (last.age_ms, last.progress);
    let (q_lo, q_hi) = match queue_ms {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() => (lo.max(0.0), hi.max(lo)),
        _ => (0.0, age * 0.9),
    };
    let end = |q: f64| {
        let q = q.min(age);
        q + (age - q) / p
    };
    let (earliest, latest) = (end(q_hi), end(q_lo));
    Some(latest.min(earliest + lag_allowance_ms.max(0.0)) + uncertainty(last) / p)
}

/// The queue time a finished job implies, ms: from one reading taken while it ran and its
/// total time from creation to completion, with progress linear after the queue
/// (`p = (age − q) / (total − q)`). `None` for readings too close to the end to tell: there
/// the division by `1 − p` magnifies every timing error.
pub fn implied_queue_ms(reading: &ProgressReading, total_ms: f64) -> Option<f64> {
    let p = reading.progress;
    if !(p > 0.0 && p <= 0.8 && total_ms.is_finite()) {
        return None;
    }
    let q = (reading.age_ms - p * total_ms) / (1.0 - p);
    q.is_finite().then(|| q.clamp(0.0, reading.age_ms.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reading(age_ms: f64, progress: f64) -> ProgressReading {
        ProgressReading {
            age_ms,
            progress,
            uncertainty_ms: 0.0,
        }
    }

    #[test]
    fn two_readings_extrapolate_the_line() {
        // Queued 2 s, then 100 s of work: 20 % at 22 s, 50 % at 52 s.
        let end =
            predict_completion_ms(&[reading(22_000.0, 0.2), reading(52_000.0, 0.5)], None, 0.0);
        assert!((end.unwrap() - 102_000.0).abs() < 1e-6, "{end:?}");
        // Noise in the readings' times pushes the answer later, never earlier.
        let noisy = [
            ProgressReading {
                uncertainty_ms: 10.0,
                ..reading(22_000.0, 0.2)
            },
            ProgressReading {
                uncertainty_ms: 10.0,
                ..reading(52_000.0, 0.5)
            },
        ];
        let later = predict_completion_ms(&noisy, None, 0.0).unwrap();
        assert!(
            (later - (102_000.0 + 20.0 * 0.5 / 0.3)).abs() < 1e-6,
            "{later}"
        );
    }

    #[test]
    fn one_reading_with_a_known_queue_is_exact() {
        // Queued 1 s, then 60 s: 25 % at 16 s.
        let end = predict_completion_ms(&[reading(16_000.0, 0.25)], Some((1_000.0, 1_000.0)), 0.0);
        assert!((end.unwrap() - 61_000.0).abs() < 1e-6, "{end:?}");
    }

    #[test]
    fn one_reading_with_an_uncertain_queue_spends_the_allowance() {
        // Queue 0–4 s, 25 % at 16 s: the job ends between 52 s (q = 4) and 64 s (q = 0).
        let r = [reading(16_000.0, 0.25)];
        let latest = predict_completion_ms(&r, Some((0.0, 4_000.0)), 20_000.0).unwrap();
        assert!((latest - 64_000.0).abs() < 1e-6, "{latest}");
        let hedged = predict_completion_ms(&r, Some((0.0, 4_000.0)), 3_000.0).unwrap();
        assert!((hedged - 55_000.0).abs() < 1e-6, "{hedged}");
        // Nothing known about the queue: never later than if there had been none.
        let unknown = predict_completion_ms(&r, None, f64::INFINITY).unwrap();
        assert!((unknown - 64_000.0).abs() < 1e-6, "{unknown}");
    }

    #[test]
    fn unusable_readings_predict_nothing() {
        assert_eq!(predict_completion_ms(&[], None, 0.0), None);
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            assert_eq!(
                predict_completion_ms(&[reading(5_000.0, bad)], None, 0.0),
                None,
                "{bad}"
            );
        }
        // A later reading that did not move falls back to the one-reading estimate.
        let flat = predict_completion_ms(
            &[reading(10_000.0, 0.5), reading(20_000.0, 0.5)],
            Some((0.0, 0.0)),
            0.0,
        );
        assert!((flat.unwrap() - 40_000.0).abs() < 1e-6, "{flat:?}");
    }

    #[test]
    fn queue_time_is_recovered_from_a_finished_job() {
        // Queued 3 s, then 40 s: 50 % at 23 s, done at 43 s.
        let q = implied_queue_ms(&reading(23_000.0, 0.5), 43_000.0).unwrap();
        assert!((q - 3_000.0).abs() < 1e-6, "{q}");
        assert_eq!(implied_queue_ms(&reading(42_000.0, 0.95), 43_000.0), None);
        assert_eq!(implied_queue_ms(&reading(1_000.0, 0.0), 43_000.0), None);
    }

    proptest! {
        #[test]
        fn prediction_is_never_early_when_the_queue_range_is_right(
            queue in 0.0f64..10_000.0,
            spread in 0.0f64..5_000.0,
            work in 1_000.0f64..300_000.0,
            at in 0.01f64..0.99,
            allowance in 0.0f64..10_000.0,
        ) {
            // The true queue lies in the range given; one reading at fraction `at` of the work.
            let (q_lo, q_hi) = ((queue - spread / 2.0).max(0.0), queue + spread / 2.0);
            let age = queue + at * work;
            let end = queue + work;
            let predicted = predict_completion_ms(&[reading(age, at)], Some((q_lo, q_hi)), allowance).unwrap();
            // Never before the end unless the allowance was spent, and never past the latest end.
            let latest = q_lo.min(age) + (age - q_lo.min(age)) / at;
            prop_assert!(predicted <= latest + 1e-6);
            let earliest = q_hi.min(age) + (age - q_hi.min(age)) / at;
            if latest - earliest <= allowance {
                prop_assert!(predicted >= end - 1e-6 * end, "{} < {}", predicted, end);
            } else {
                prop_assert!((predicted - (earliest + allowance)).abs() < 1e-6 * end);
            }
            // A second reading pins it down exactly.
            let later = queue + (at + (1.0 - at) / 2.0) * work;
            let two = predict_completion_ms(&[reading(age, at), reading(later, at + (1.0 - at) / 2.0)], None, 0.0).unwrap();
            prop_assert!((two - end).abs() < 1e-6 * end, "{} vs {}", two, end);
        }
    }
}
