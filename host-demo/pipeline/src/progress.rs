//! A job's progress on one scale, settled per job: the value the screen, the reports and the
//! scheduler all use.
//!
//! Providers write progress as a fraction (`0.45`, what EmpirioLabs documents) or as a
//! percentage (`45`, `"45%"`), and one reading alone cannot always tell: the component's
//! `running` payload reads `0.6` as 60 %, though from a percent job it means 0.6 %. The
//! component also hands over the reading as written (WIT `progress-reading`), and a job's
//! readings together settle it: a job that ever writes a number above 1, or a `%`, reports
//! percentages — from then on, and its earlier readings are read again that way.
//!
//! Until then a reading up to 1 is read as the documented fraction (the scheduler plans with
//! it, and reads it again if the job turns out to write percentages), but the screen does
//! not draw it while a later reading could still prove it a hundred times too large: a bar
//! never moves back, so a bar drawn at 60 % for a job at 0.6 % would stay wrong. Such a
//! reading is drawn once the job is old enough that, were it a percentage, the job would
//! need more than [`PERCENT_JOB_LIMIT`] to finish — then it settles the job as fractions.

use happyhorse_sandbox::api::{JobState, JobStatus, ProgressReading};
use std::time::Duration;

/// The longest a job is believed to take: a reading `v` (up to 1) at age `a` is a fraction
/// for sure once `a × 100 / v` (the job's length were `v` a percentage) exceeds it. An hour:
/// far beyond the provider's renders (3–15 s clips), yet reached by a fraction reading of
/// 0.1 at 36 s of age.
pub const PERCENT_JOB_LIMIT: Duration = Duration::from_secs(3600);

/// The scale of one job's progress readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressScale {
    /// What the job's readings have shown so far.
    settled: Settled,
}

/// What a job's readings have shown of their scale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Settled {
    /// Nothing yet: readings up to 1 are read as fractions, not drawn.
    #[default]
    Not,
    /// Fractions: a reading up to 1 came too late in the job to be a percentage.
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
        let now_percent = !self.is_percent() && reading.is_some_and(writes_percent);
        if now_percent {
            self.settled = Settled::Percent;
        } else if self.settled == Settled::Not
            && let (Some(r), Some(age)) = (reading, age)
            && too_late_for_percent(r.value, age)
        {
            self.settled = Settled::Fraction;
        }
        let (fraction, shown) = match &status.state {
            JobState::Queued => (Some(0.0), Some(0.0)),
            // A component that does not hand over the reading as written: its own scaling
            // of this one reading is all there is.
            JobState::Running(alone) => match reading {
                Some(r) => {
                    let fraction = self.fraction(r);
                    let sure = self.settled != Settled::Not || fraction == 0.0;
                    (Some(fraction), sure.then_some(fraction))
                }
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

/// Whether `value` (up to 1) at `age` cannot be a percentage: the job would then take more
/// than [`PERCENT_JOB_LIMIT`] in all.
fn too_late_for_percent(value: f64, age: Duration) -> bool {
    value > 0.0 && age.as_secs_f64() * 100.0 / value > PERCENT_JOB_LIMIT.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(value: f64, marked_percent: bool) -> JobStatus {
        let reading = ProgressReading {
            value,
            marked_percent,
        };
        // The component's own scaling of the one reading, as it sends it.
        let alone = if marked_percent || value > 1.0 {
            value / 100.0
        } else {
            value
        };
        JobStatus {
            job_id: "j".into(),
            state: JobState::Running(Some(alone)),
            progress_reading: Some(reading),
            raw_status: "running".into(),
            created_at: None,
            completed_at: None,
            next_poll_ms: 1000,
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// (fraction, shown, now_percent) of each (value, age in s) read in turn.
    fn read_all(readings: &[(f64, u64)]) -> Vec<(Option<f64>, Option<f64>, bool)> {
        let mut scale = ProgressScale::default();
        readings
            .iter()
            .map(|&(value, age)| {
                let read = scale.read(&running(value, false), Some(SECOND * age as u32));
                (read.fraction, read.shown, read.now_percent)
            })
            .collect()
    }

    #[test]
    fn a_fraction_job_is_drawn_once_its_readings_cannot_be_percentages() {
        assert_eq!(
            read_all(&[(0.0, 1), (0.5, 10), (0.1, 40), (0.5, 60), (1.0, 70)]),
            [
                // Zero is zero on either scale.
                (Some(0.0), Some(0.0), false),
                // 0.5 at 10 s could be 0.5 % of a 2,000 s job: planned with, not drawn.
                (Some(0.5), None, false),
                // 0.1 at 40 s would be a 40,000 s job: fractions, settled.
                (Some(0.1), Some(0.1), false),
                (Some(0.5), Some(0.5), false),
                (Some(1.0), Some(1.0), false),
            ]
        );
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
    fn a_one_from_an_unsettled_job_is_not_drawn_as_done() {
        // "0 → 100 → 40": a first 1 meant 1 %.
        let read = read_all(&[(0.0, 1), (1.0, 5), (40.0, 60)]);
        assert_eq!(read[1], (Some(1.0), None, false));
        assert_eq!(read[2], (Some(0.4), Some(0.4), true));
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
    fn without_an_age_a_reading_up_to_one_stays_undrawn() {
        let mut scale = ProgressScale::default();
        for _ in 0..3 {
            assert_eq!(scale.read(&running(0.3, false), None).shown, None);
        }
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
    fn states_without_a_reading() {
        let mut scale = ProgressScale::default();
        let mut status = running(50.0, false);
        status.state = JobState::Queued;
        // A queued job's reading still settles the scale.
        assert_eq!(
            scale.read(&status, None),
            ScaledProgress {
                fraction: Some(0.0),
                shown: Some(0.0),
                now_percent: true
            }
        );
        status.state = JobState::Completed(vec!["https://x/y.mp4".into()]);
        assert_eq!(scale.read(&status, None).shown, Some(1.0));
        status.state = JobState::Cancelled;
        assert_eq!(scale.read(&status, None).fraction, None);
    }

    #[test]
    fn out_of_range_readings_are_kept_in_range() {
        let scale = ProgressScale {
            settled: Settled::Percent,
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
