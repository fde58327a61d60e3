//! The scheduler's timings and the bounds on what it learns from.

use std::time::Duration;

/// How many finished jobs the scheduler learns from (the most recent ones).
pub(super) const LEARN_FROM: usize = 50;
/// How many finished jobs it waits for before timing probes by them.
pub(super) const LEARN_AFTER: usize = 3;
/// The longest any timing may be (longer ones are read as this).
pub(super) const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The scheduler's timings. The defaults suit the real service (jobs of tens of seconds to
/// minutes); [`ScheduleConfig::scaled`] fits them to an emulator whose clock runs faster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleConfig {
    /// How long after a predicted completion the final poll goes out (timing noise).
    pub margin: Duration,
    /// How much detection lag to accept rather than spend one more poll on a job whose
    /// end one reading cannot pin down (see `predict_completion_ms`).
    pub lag_allowance: Duration,
    /// The lag allowance of a poll the learner predicts from age alone: a job's first (from
    /// its submit alone), every poll of a job that reports no progress, and any whose reading
    /// it cannot use (implausible, 0, or too few finished readings near it). Such a poll is
    /// placed in the widest spread a job has (queue and render), and one that finds the job
    /// still running teaches little beyond its age, so polls at the early edge plus the
    /// ordinary allowance mostly buy another poll; a larger allowance here ends more jobs per
    /// poll. 12 s with 5 s for the rest met all three targets of `BENCHMARKS.md` §5 in real
    /// time, twice, once submits kept the budget's pace (5 s with 11 s did too, with 10 s
    /// once; 4.5 s with 11 s, ahead in a time-scaled sweep, did not); no sweep has shown that
    /// a separate allowance beats one for every poll.
    pub blind_lag_allowance: Duration,
    /// A new job's first probe, at this age, until `LEARN_AFTER` jobs have finished.
    pub first_probe: Duration,
    /// The earliest first probe, however short finished jobs were.
    pub min_first_probe: Duration,
    /// The shortest gap between two polls of one job: a reading just after another says
    /// nothing new, and a line through two such readings extrapolates noise.
    pub min_gap: Duration,
    /// Probes due within this horizon are protected from submits like reserved polls are;
    /// later ones may slip a little, and reserving for them too would leave budget idle.
    pub probe_horizon: Duration,
    /// The longest gap between two polls of one job, whatever a prediction says: a wrong
    /// one (a job whose progress stalls) must not leave a job unwatched for long.
    pub max_gap: Duration,
    /// While the account's budget is idle — at least half its window free beside every
    /// reserved poll and probe due soon — no job goes longer than this between polls,
    /// whatever its plan says: budget that would otherwise lapse buys a lone job's end seen
    /// within this gap (a one-shot `generate`, the last shots of a run). When jobs compete
    /// for the budget, the plan alone decides. Zero turns it off; a budget without a limit
    /// is never idle in this sense (there is no share of it to lapse).
    pub idle_gap: Duration,
    /// How often a blocked turn looks at the budget again even when nothing woke it.
    pub recheck: Duration,
    /// Plan polls from what finished jobs taught (`learn`) once it knows enough;
    /// `false` keeps the previous scheduler (a line through progress readings), for
    /// comparison.
    pub learn: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            margin: Duration::from_millis(300),
            lag_allowance: Duration::from_secs(5),
            blind_lag_allowance: Duration::from_secs(12),
            first_probe: Duration::from_secs(10),
            min_first_probe: Duration::from_secs(2),
            min_gap: Duration::from_secs(1),
            probe_horizon: Duration::from_secs(20),
            max_gap: Duration::from_secs(10 * 60),
            // Median lag 1.5 s and at most 3 s plus a round trip for a lone job, at 20 polls
            // a minute: under half the budget, so two lone jobs share it without a 429.
            idle_gap: Duration::from_secs(3),
            recheck: Duration::from_secs(1),
            learn: true,
        }
    }
}

impl ScheduleConfig {
    /// Every timing divided by `factor`: for an emulator whose jobs and rate window are
    /// `factor` times shorter than the real service's. A factor that is not a positive number
    /// leaves the timings as they are.
    pub fn scaled(self, factor: f64) -> Self {
        if !(factor.is_finite() && factor > 0.0) {
            return self;
        }
        self.each(|d| Duration::try_from_secs_f64(d.as_secs_f64() / factor).unwrap_or(DAY))
    }

    /// Every timing at most a day, so no sum of an instant and a timing can overflow.
    pub(super) fn bounded(self) -> Self {
        self.each(|d| d.min(DAY))
    }

    fn each(self, f: impl Fn(Duration) -> Duration) -> Self {
        ScheduleConfig {
            margin: f(self.margin),
            lag_allowance: f(self.lag_allowance),
            blind_lag_allowance: f(self.blind_lag_allowance),
            first_probe: f(self.first_probe),
            min_first_probe: f(self.min_first_probe),
            min_gap: f(self.min_gap),
            probe_horizon: f(self.probe_horizon),
            max_gap: f(self.max_gap),
            idle_gap: f(self.idle_gap),
            recheck: f(self.recheck),
            learn: self.learn,
        }
    }
}
