//! A job's progress on one scale, settled per job: what the scheduler plans with, and what
//! the screen and the `--json` events draw of it.
//!
//! Providers write progress as a fraction (`0.45`, what EmpirioLabs documents) or as a
//! percentage (`45`, `"45%"`), and one reading alone cannot always tell: the component's
//! `running` payload reads `0.6` as 60 %, though from a percent job it means 0.6 %. The
//! component also hands over the reading as written (WIT `progress-reading`), and a job's
//! readings together settle it: a job that ever writes a number above 1, or a `%`, while it
//! is queued or running reports percentages — from then on, and its earlier readings are read
//! again that way. (A finished job's `100` says nothing: it ends either scale.)
//!
//! Until then a reading up to 1 is read as the documented fraction — the scheduler plans with
//! it, and reads it again if the job turns out to write percentages — but it is not drawn
//! while a later reading could still prove it a hundred times too large: a bar never moves
//! back, so a bar drawn at 60 % for a job at 0.6 % would stay wrong. The job is settled as
//! writing fractions, and drawn, once
//! - a second reading up to 1 follows, no lower than the first: a percent job is that early
//!   (under 1 %) for a moment only; or
//! - it has been running long enough that, were the reading a percentage, the job would need
//!   more than [`PERCENT_JOB_LIMIT`] to finish (time counted from its first reading while
//!   running, so a long queue proves nothing).

use happyhorse_sandbox::api::{JobState, JobStatus, ProgressReading};
use std::time::Duration;

/// The longest a job is believed to run: a reading `v` (up to 1) taken `t` after the job was
/// first seen running is a fraction for sure once `t × 100 / v` (the job's length, were `v`
/// a percentage) exceeds it — a reading of 0.5 after 18 s, of 0.1 after 3.6 s.
pub const PERCENT_JOB_LIMIT: Duration = Duration::from_secs(3600);

/// The scale of one job's progress readings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProgressScale {
    /// What the job's readings have shown so far.
    settled: Settled,
    /// The job's age at its first reading while running: where its running time starts.
    running_from: Option<Duration>,
    /// Its last reading up to 1 while the scale was unsettled.
    held: Option<f64>,
}

/// What a job's readings have shown of their scale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Settled {
    /// Nothing yet: readings up to 1 are read as fractions, not drawn.
    #[default]
    Not,
    /// Fractions: readings up to 1 that a percent job would not have written.
    Fraction,
    /// Percentages: the job wrote a number above 1, or a `%`.
    Percent,
}

/// One reading of a job, read on its settled scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaledProgress {
    /// How far the job is, 0.0 to 1.0, if this reading says: `Some(0.0)` while queued,
    /// `Some(1.0)` once completed. What the scheduler plans with.
    pub fraction: Option<f64>,
    /// What a screen may draw: `fraction`, unless a later reading could still prove it a
    /// hundred times too large (then `None`).
    pub shown: Option<f64>,
    /// Whether this reading showed the job writes percentages: readings taken before it
    /// were fractions a hundred times too large and must be divided by 100.
    pub now_percent: bool,
}

impl ProgressScale {
    /// Whether the job has been seen writing percentages.
    pub fn is_percent(self) -> bool {
        self.settled == Settled::Percent
    }

    /// Read `status`, taken when the job was `age` old (if known), on this job's scale,
    /// settling the scale on the way.
    pub fn read(&mut self, status: &JobStatus, age: Option<Duration>) -> ScaledProgress {
        let reading = status.progress_reading.as_ref();
        let live = matches!(status.state, JobState::Queued | JobState::Running(_));
        let now_percent = live && !self.is_percent() && reading.is_some_and(writes_percent);
        if now_percent {
            self.settled = Settled::Percent;
        }
        let (fraction, shown) = match &status.state {
            JobState::Queued => (Some(0.0), Some(0.0)),
            JobState::Running(alone) => match reading {
                Some(r) => {
                    let fraction = self.fraction(r);
                    let shown = self.running(r.value, age).then_some(fraction);
                    (Some(fraction), shown)
                }
                // A component that does not hand over the reading as written: its own
                // scaling of this one reading is all there is.
                None => (*alone, *alone),
            },
            JobState::Completed(_) => (Some(1.0), Some(1.0)),
            JobState::Failed(_) | JobState::Cancelled | JobState::Expired => (None, None),
        };
        ScaledProgress {
            fraction,
            shown,
            now_percent,
        }
    }

    /// Takes a running reading of `value` at `age`: whether it may be drawn.
    fn running(&mut self, value: f64, age: Option<Duration>) -> bool {
        if self.running_from.is_none() {
            self.running_from = age;
        }
        if self.settled != Settled::Not || value == 0.0 {
            // Zero is zero on either scale.
            return true;
        }
        let ran = age
            .zip(self.running_from)
            .map(|(age, from)| age.saturating_sub(from));
        let confirmed = self.held.is_some_and(|held| value >= held);
        if confirmed || ran.is_some_and(|ran| too_long_for_percent(value, ran)) {
            self.settled = Settled::Fraction;
            self.held = None;
            return true;
        }
        self.held = Some(value);
        false
    }

    /// `reading` as a fraction on this job's scale, within 0.0–1.0.
    pub fn fraction(self, reading: &ProgressReading) -> f64 {
        let value = if self.is_percent() || writes_percent(reading) {
            reading.value / 100.0
        } else {
            reading.value
        };
        if value.is_finite() {
            value.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Whether one reading alone proves percentages: above 1, or marked `%`.
fn writes_percent(reading: &ProgressReading) -> bool {
    reading.marked_percent || reading.value > 1.0
}

/// Whether `value` (up to 1), read after the job ran for `ran`, cannot be a percentage: the
/// job would then run more than [`PERCENT_JOB_LIMIT`] in all.
fn too_long_for_percent(value: f64, ran: Duration) -> bool {
    value > 0.0 && ran.as_secs_f64() * 100.0 / value > PERCENT_JOB_LIMIT.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_state(state: JobState, value: f64, marked_percent: bool) -> JobStatus {
        JobStatus {
            job_id: "j".into(),
            state,
            progress_reading: Some(ProgressReading {
                value,
                marked_percent,
            }),
            raw_status: "running".into(),
            created_at: None,
            completed_at: None,
            next_poll_ms: 1000,
        }
    }

    fn running(value: f64, marked_percent: bool) -> JobStatus {
        // The component's own scaling of the one reading, as it sends it.
        let alone = if marked_percent || value > 1.0 {
            value / 100.0
        } else {
            value
        };
        with_state(JobState::Running(Some(alone)), value, marked_percent)
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// (fraction, shown, now_percent) of each running (value, age in s) read in turn.
    fn read_all(readings: &[(f64, u32)]) -> Vec<(Option<f64>, Option<f64>, bool)> {
        let mut scale = ProgressScale::default();
        readings
            .iter()
            .map(|&(value, age)| {
                let read = scale.read(&running(value, false), Some(SECOND * age));
                (read.fraction, read.shown, read.now_percent)
            })
            .collect()
    }

    #[test]
    fn a_short_fraction_job_is_drawn_from_its_second_reading() {
        // The built-in emulator's demo: a few seconds, a few readings.
        assert_eq!(
            read_all(&[(0.0, 1), (0.3, 2), (0.7, 4), (1.0, 5)]),
            [
                // Zero is zero on either scale.
                (Some(0.0), Some(0.0), false),
                // 0.3 could be 0.3 %: planned with, not drawn.
                (Some(0.3), None, false),
                // A second reading up to 1, no lower: fractions.
                (Some(0.7), Some(0.7), false),
                (Some(1.0), Some(1.0), false),
            ]
        );
    }

    #[test]
    fn a_reading_after_a_dip_waits_for_one_that_does_not_dip() {
        let read = read_all(&[(0.31, 2), (0.30, 4), (0.5, 6)]);
        assert_eq!(read[1].1, None, "lower than the one before: not yet");
        assert_eq!(read[2].1, Some(0.5));
    }

    #[test]
    fn a_long_running_fraction_job_is_drawn_at_its_first_reading_once_it_has_run_long_enough() {
        let mut scale = ProgressScale::default();
        // First seen running at 100 s of age (after its queue), reading 0.
        scale.read(&running(0.0, false), Some(SECOND * 100));
        // 0.1 after 40 s of running would be a 40,000 s job in percent: a fraction.
        let read = scale.read(&running(0.1, false), Some(SECOND * 140));
        assert_eq!(read.shown, Some(0.1));
    }

    #[test]
    fn a_long_queue_proves_nothing() {
        // A percent job queued 40 s, then writing 1 (1 %): its age is no running time.
        let read = read_all(&[(1.0, 40), (5.0, 45)]);
        assert_eq!(read[0], (Some(1.0), None, false), "1 is not drawn as done");
        assert_eq!(read[1], (Some(0.05), Some(0.05), true));
    }

    #[test]
    fn a_percent_job_whose_first_reading_is_under_one_is_never_drawn_too_far() {
        // The job: a first reading of 0.6 meaning 0.6 %, then 6, 40, 100.
        let read = read_all(&[(0.6, 3), (6.0, 20), (0.9, 21), (40.0, 100), (100.0, 200)]);
        assert_eq!(read[0], (Some(0.6), None, false), "alone, 0.6 is not drawn");
        assert_eq!(
            read[1],
            (Some(0.06), Some(0.06), true),
            "6 settles it: percent"
        );
        // From then on a reading up to 1 is a percentage too.
        assert_eq!(read[2], (Some(0.9 / 100.0), Some(0.9 / 100.0), false));
        assert_eq!(read[3], (Some(0.4), Some(0.4), false));
        assert_eq!(read[4], (Some(1.0), Some(1.0), false));
    }

    #[test]
    fn a_percent_sign_settles_it_too() {
        let mut scale = ProgressScale::default();
        let read = scale.read(&running(0.5, true), None);
        assert_eq!(
            read,
            ScaledProgress {
                fraction: Some(0.005),
                shown: Some(0.005),
                now_percent: true
            }
        );
        assert!(scale.is_percent());
        assert_eq!(
            scale.read(&running(0.7, false), None).fraction,
            Some(0.7 / 100.0)
        );
    }

    #[test]
    fn a_finished_jobs_hundred_says_nothing_of_its_scale() {
        let mut scale = ProgressScale::default();
        scale.read(&running(0.4, false), Some(SECOND));
        let done = with_state(
            JobState::Completed(vec!["https://x/y.mp4".into()]),
            100.0,
            false,
        );
        let read = scale.read(&done, Some(SECOND * 2));
        assert_eq!((read.fraction, read.now_percent), (Some(1.0), false));
        assert!(!scale.is_percent());
        let failed = with_state(
            JobState::Failed(happyhorse_sandbox::api::JobFailure {
                code: "c".into(),
                message: "m".into(),
            }),
            100.0,
            false,
        );
        assert!(!scale.read(&failed, None).now_percent);
    }

    #[test]
    fn a_queued_jobs_percentage_settles_it() {
        let mut scale = ProgressScale::default();
        let read = scale.read(&with_state(JobState::Queued, 0.0, true), None);
        assert!(read.now_percent);
        assert_eq!(scale.read(&running(0.5, false), None).shown, Some(0.005));
    }

    #[test]
    fn without_an_age_a_rising_job_is_still_drawn_from_its_second_reading() {
        let mut scale = ProgressScale::default();
        assert_eq!(scale.read(&running(0.3, false), None).shown, None);
        assert_eq!(scale.read(&running(0.3, false), None).shown, Some(0.3));
    }

    #[test]
    fn without_the_reading_as_written_the_components_scaling_stands() {
        let mut status = running(0.3, false);
        status.progress_reading = None;
        let mut scale = ProgressScale::default();
        let read = scale.read(&status, None);
        assert_eq!((read.fraction, read.shown), (Some(0.3), Some(0.3)));
        status.state = JobState::Running(None);
        assert_eq!(scale.read(&status, None).fraction, None);
    }

    #[test]
    fn out_of_range_readings_are_kept_in_range() {
        let scale = ProgressScale {
            settled: Settled::Percent,
            ..ProgressScale::default()
        };
        let r = |value| ProgressReading {
            value,
            marked_percent: false,
        };
        assert_eq!(scale.fraction(&r(250.0)), 1.0);
        assert_eq!(scale.fraction(&r(-3.0)), 0.0);
        assert_eq!(scale.fraction(&r(f64::NAN)), 0.0);
    }
}
