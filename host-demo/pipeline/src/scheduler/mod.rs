//! One plan for every job's polls, so an account's request budget is spent where it pays.
//!
//! The provider counts every request against 50 a minute per account. Polling each job on a
//! timer spends most of that on answers that say "still running", and a host with many jobs
//! in flight then detects each completion late because its polls queue for the budget.
//!
//! This scheduler plans each job's next poll from what finished jobs taught
//! ([`crate::pipeline::scheduler::learn`]: per clip length and resolution, the remaining time of jobs seen at a
//! similar progress, or, when a job reports none, at the same age among jobs submitted while
//! about as many others were in flight): the poll goes at the early edge of the predicted end
//! plus the lag allowance (a larger one when the prediction rests on age alone: a job's first
//! poll, every poll of a job that reports no progress, and any whose reading the learner
//! cannot use), or at its late edge if that comes first, and a job found still running is
//! planned again from its new reading. Until the learner knows enough (a first run, a new
//! clip class), and with `learn: false` (the previous scheduler, kept for comparison), it
//! reads a job's progress once it has had time to make some (a *probe*), predicts the end
//! from progress and age
//! ([`predict_completion_ms`]) and polls just after it; guesses made that way are planned
//! again as soon as the learner can.
//!
//! Planned polls are *reserved*: a probe or a submit goes out only if every reserved poll
//! still fits the budget's window when its time comes ([`RequestBudget::fits`]), so starting
//! a new job never delays noticing that another one ended. Submits also keep the budget's
//! pace, one per window ÷ limit ([`RequestBudget::pace`], 1.2 s at 50 a minute): a batch
//! submitted at once fills the window at once, leaves it at once a window later, and would
//! refill it at once, the burst (and its jobs' polls) coming back every window. The cost is
//! a short batch's submits spread over its length times the pace (10 shots: 11 s). Every
//! request carries a [`Grant`](crate::sandbox::egress::budget::Grant) from the budget to the
//! wire, counted until its answer.
//!
//! Jobs are keyed by job id. A job the scheduler has not seen (one resumed from a journal) is
//! probed at once. Measured against the alternatives in `BENCHMARKS.md` §5.

pub(crate) mod learn;
pub(crate) mod predict;

use crate::api::{JobState, JobStatus};
use crate::sandbox::egress::OutboundPolicy;
use crate::sandbox::egress::budget::RequestBudget;
use learn::{JobClass, Learner, Reading, Record, Remaining};
use predict::{ProgressReading, implied_queue_ms, predict_completion_ms};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::time::Instant;
use video_gen_core::time::parse_timestamp_ms;

/// How many finished jobs the scheduler learns from (the most recent ones).
const LEARN_FROM: usize = 50;
/// How many finished jobs it waits for before timing probes by them.
const LEARN_AFTER: usize = 3;
/// The longest any timing may be (longer ones are read as this).
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

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
    fn bounded(self) -> Self {
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
            recheck: f(self.recheck),
            learn: self.learn,
        }
    }
}

/// Why a job's next poll goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// To read progress: goes out when the budget has room beyond the reserved polls.
    Probe,
    /// At the predicted completion: its place in the budget is reserved.
    Final,
}

/// One job's next poll and what is known of it.
#[derive(Debug, Clone)]
struct Watch {
    next: Instant,
    purpose: Purpose,
    /// When the provider created it, on this host's clock.
    created: Option<Instant>,
    /// When our submit went out and was answered, if this run submitted it: the creation
    /// time lies between, whatever the two clocks say.
    submitted: Option<(Instant, Instant)>,
    readings: Vec<ProgressReading>,
    place: Place,
    /// What it renders, which decides what the learner compares it with.
    class: JobClass,
    /// How many other jobs this scheduler watched when it was submitted (see
    /// `learn::Record::load`).
    load: Option<u32>,
    /// Its latest observation: when, its age then (ms) and its progress, if any.
    seen: Option<Seen>,
    /// Whether its next poll was planned by the learner.
    by_learner: bool,
}

/// A job's latest observation: when, its age then (ms), and its progress if it had one.
type Seen = (Instant, f64, Option<f64>);

/// Where a job's next poll stands in the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Planned for `next`: a final poll's place is reserved there.
    Planned,
    /// Let out, its grant not yet in the budget's log: it holds a place now, so requests
    /// let out at the same moment cannot overshoot together.
    LetOut,
    /// In the budget's log, which counts it from here on; not counted again.
    Logged,
}

impl Watch {
    /// A job due for a probe at `next`.
    fn new(next: Instant, submitted: Option<(Instant, Instant)>) -> Watch {
        Watch {
            next,
            purpose: Purpose::Probe,
            created: None,
            submitted,
            readings: Vec::new(),
            place: Place::Planned,
            class: JobClass::default(),
            load: None,
            seen: None,
            by_learner: false,
        }
    }
}

/// What finished jobs taught, in ms.
#[derive(Debug, Default)]
struct Learned {
    queue: VecDeque<f64>,
    total: VecDeque<f64>,
}

impl Learned {
    fn push(list: &mut VecDeque<f64>, value: f64) {
        if list.len() == LEARN_FROM {
            list.pop_front();
        }
        list.push_back(value);
    }

    fn queue_range(&self) -> Option<(f64, f64)> {
        let lo = self.queue.iter().copied().reduce(f64::min)?;
        let hi = self.queue.iter().copied().reduce(f64::max)?;
        Some((lo, hi))
    }
}

/// When each watched job is polled next: the scheduler's pure part, driven by explicit times
/// (the pipeline's `Plan` is the storyboard's shots, checked and priced).
#[derive(Debug)]
struct PollPlan {
    config: ScheduleConfig,
    watches: HashMap<String, Watch>,
    learned: Learned,
    /// Submits let out whose grant the budget has not logged yet, each holding a place.
    submits_in_flight: usize,
    /// What every finished job taught, for planning.
    learner: Learner,
    /// Finished jobs' records not yet taken for persisting.
    outbox: Vec<Record>,
    /// Polls answered so far, by what they found.
    counts: PollCounts,
    /// When the last submit was let out: the next keeps the budget's pace after it.
    last_submit: Option<Instant>,
}

/// How a scheduler's polls turned out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollCounts {
    /// Polls that found the job still queued or running: spent on reading it.
    pub found_running: u64,
    /// Polls that found the job ended.
    pub found_ended: u64,
    /// Polls planned from the learner's prediction.
    pub planned_by_learner: u64,
}

impl PollPlan {
    fn new(config: ScheduleConfig) -> Self {
        PollPlan {
            config: config.bounded(),
            watches: HashMap::new(),
            learned: Learned::default(),
            submits_in_flight: 0,
            learner: Learner::default(),
            outbox: Vec::new(),
            counts: PollCounts::default(),
            last_submit: None,
        }
    }

    /// A new job's first probe, as an age: as late as the shortest jobs seen allow (a later
    /// reading predicts better), the configured guess until enough have finished.
    fn first_probe_age(&self) -> Duration {
        if self.learned.total.len() < LEARN_AFTER {
            return self.config.first_probe;
        }
        let shortest = self
            .learned
            .total
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        Duration::try_from_secs_f64((shortest * 0.9 / 1e3).max(0.0))
            .unwrap_or(self.config.first_probe)
            .max(self.config.min_first_probe)
    }

    #[cfg(test)]
    fn submitted(&mut self, job_id: &str, sent: Instant, received: Instant) {
        self.submitted_as(job_id, JobClass::default(), sent, received);
    }

    fn submitted_as(&mut self, job_id: &str, class: JobClass, sent: Instant, received: Instant) {
        let mut next = received + self.first_probe_age();
        let mut purpose = Purpose::Probe;
        let load = Some(u32::try_from(self.watches.len()).unwrap_or(u32::MAX));
        let seen = (received, 0.0, None);
        if let Some((at, p)) = self.learned_poll(&class, load, seen) {
            next = at;
            purpose = p;
        }
        let mut watch = Watch::new(next, Some((sent, received)));
        watch.by_learner = purpose == Purpose::Final && self.config.learn;
        watch.class = class;
        watch.load = load;
        watch.purpose = purpose;
        watch.seen = Some(seen);
        self.watches.insert(job_id.to_string(), watch);
    }

    /// When to poll a job of `class` submitted under `load`, seen `age_ms` old at `at`
    /// reporting `progress`, as the learner sees it; `None` when learning is off or it knows
    /// too little.
    ///
    /// The poll goes where one more request stops paying: at the early edge of the
    /// predicted end (nine jobs in ten end later) plus the lag allowance (for a prediction
    /// from age alone, `blind_lag_allowance`), so a job that ends after that early edge is
    /// noticed within the allowance; or at the late edge if that comes first (the spread is
    /// narrower than the allowance: one poll will do). A job found still running there is
    /// read again, the new reading narrowing the next prediction.
    fn learned_poll(
        &mut self,
        class: &JobClass,
        load: Option<u32>,
        (at, age_ms, progress): Seen,
    ) -> Option<(Instant, Purpose)> {
        if !self.config.learn {
            return None;
        }
        let wait_ms = match self.learner.predict(class, age_ms, progress, load) {
            Some(Remaining {
                early,
                late,
                from_reading,
                ..
            }) => {
                let allowance = if from_reading {
                    self.config.lag_allowance
                } else {
                    self.config.blind_lag_allowance
                };
                (early + ms(allowance)).min(late)
            }
            // Older than nearly every job like it (a straggler): look again after a tenth of
            // its age, so the lag stays a small share of its own length.
            None if self.learner.knows(class) => {
                (age_ms * 0.1).max(ms(self.config.lag_allowance.max(self.config.min_gap)))
            }
            None => return None,
        };
        self.counts.planned_by_learner += 1;
        let cap = at + self.config.max_gap;
        Some((later(at, wait_ms, cap) + self.config.margin, Purpose::Final))
    }

    /// The job's watch, created (due now, as a probe) for a job this run did not submit.
    fn watch(&mut self, job_id: &str, now: Instant) -> &mut Watch {
        self.watches
            .entry(job_id.to_string())
            .or_insert_with(|| Watch::new(now, None))
    }

    /// The instants budget is held for (sorted, past ones as `now`): reserved polls,
    /// requests let out whose grant the budget has not logged yet, and with `probes_until`
    /// also the probes due before it.
    fn reserved(&self, now: Instant, probes_until: Option<Instant>) -> Vec<Instant> {
        let mut at: Vec<Instant> = self
            .watches
            .values()
            .filter(|w| match (w.place, w.purpose) {
                (Place::Logged, _) => false,
                (Place::LetOut, _) | (Place::Planned, Purpose::Final) => true,
                (Place::Planned, Purpose::Probe) => {
                    probes_until.is_some_and(|until| w.next <= until)
                }
            })
            .map(|w| w.next.max(now))
            .chain(std::iter::repeat_n(now, self.submits_in_flight))
            .collect();
        at.sort();
        at
    }

    /// Whether `job_id` may be polled at `now`, or until when it waits.
    fn poll_turn(&mut self, job_id: &str, now: Instant, budget: &RequestBudget) -> Turn {
        let watch = self.watch(job_id, now);
        if watch.place != Place::Planned {
            // Already let out: the caller is cancelling and retrying, or racing itself.
            return Turn::Go;
        }
        if watch.next > now {
            return Turn::Wait(watch.next);
        }
        // A reserved poll goes when due: the room was kept for it.
        let go = watch.purpose == Purpose::Final || {
            let reserved = self.reserved(now, None);
            budget.fits(now, &reserved)
        };
        if go {
            self.watch(job_id, now).place = Place::LetOut;
            Turn::Go
        } else {
            Turn::Wait(self.recheck(now, budget))
        }
    }

    /// Whether a submit may go out at `now`, or until when it waits.
    fn submit_turn(&mut self, now: Instant, budget: &RequestBudget) -> Turn {
        // At most one submit per pace: a window that a burst filled frees up all at once a
        // window later, and refilling it at once would bring the burst back every window,
        // with its jobs' polls bunched behind it. Counted from the turn, not the payment: a
        // permit dropped unpaid delays the next submit by one pace at most. Capped at a day,
        // so a budget with an absurd window cannot overflow the sum.
        if let Some(due) = self.last_submit.map(|last| last + budget.pace().min(DAY))
            && now < due
        {
            return Turn::Wait(due);
        }
        let reserved = self.reserved(now, Some(now + self.config.probe_horizon));
        if budget.fits(now, &reserved) {
            self.last_submit = Some(now);
            self.submits_in_flight += 1;
            Turn::Go
        } else {
            Turn::Wait(self.recheck(now, budget))
        }
    }

    fn recheck(&self, now: Instant, budget: &RequestBudget) -> Instant {
        let by = now + self.config.recheck;
        budget.next_expiry().map_or(by, |t| t.min(by))
    }

    /// What a poll sent at `sent` and answered at `received` (`wall`, on the wall clock)
    /// found; plans the job's next poll, or learns from it and lets it go if it ended.
    fn observed(
        &mut self,
        job_id: &str,
        status: &JobStatus,
        sent: Instant,
        received: Instant,
        wall: SystemTime,
    ) {
        let config = self.config;
        let queue_range = self.learned.queue_range();
        let ended = matches!(
            status.state,
            JobState::Completed(_) | JobState::Failed(_) | JobState::Cancelled | JobState::Expired
        );
        if ended {
            self.counts.found_ended += 1;
        } else {
            self.counts.found_running += 1;
        }
        let watch = self.watch(job_id, sent);
        watch.place = Place::Planned;
        if watch.created.is_none() {
            watch.created = creation(
                status.created_at.as_deref(),
                received,
                wall,
                watch.submitted,
            );
        }
        let created = watch.created.or(watch.submitted.map(|(_, r)| r));
        // The provider read its clock somewhere between sending and receiving.
        let at = sent + (received.saturating_duration_since(sent)) / 2;
        let age_ms = |t: Instant| created.map(|c| ms(t.saturating_duration_since(c)));
        if let (JobState::Running(Some(p)), Some(age)) = (&status.state, age_ms(at))
            && *p > 0.0
            && *p < 1.0
        {
            watch.readings.push(ProgressReading {
                age_ms: age,
                progress: *p,
                uncertainty_ms: ms(received.saturating_duration_since(sent)) / 2.0,
            });
        }
        if !ended && let Some(age) = age_ms(at) {
            let (class, load) = (watch.class.clone(), watch.load);
            let progress = match status.state {
                JobState::Running(p) => p,
                _ => None,
            };
            let seen = (at, age, progress);
            let planned = self.learned_poll(&class, load, seen);
            let watch = self.watch(job_id, sent);
            watch.seen = Some(seen);
            watch.by_learner = planned.is_some();
            if let Some((next, purpose)) = planned {
                watch.next = next
                    .max(received + config.min_gap)
                    .min(received + config.max_gap);
                watch.purpose = purpose;
                return;
            }
        }
        let watch = self.watch(job_id, sent);
        let (next, purpose) = match &status.state {
            JobState::Completed(_)
            | JobState::Failed(_)
            | JobState::Cancelled
            | JobState::Expired => {
                let watch = self.watches.remove(job_id).expect("watched above");
                let ended = status
                    .completed_at
                    .as_deref()
                    .and_then(|stamp| creation(Some(stamp), received, wall, None))
                    .unwrap_or(at);
                if let Some(created) = watch.created.or(watch.submitted.map(|(s, _)| s)) {
                    let total = ms(ended.saturating_duration_since(created));
                    let ended_unix_ms = wall
                        .checked_sub(received.saturating_duration_since(ended))
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                    let readings: Vec<Reading> = watch
                        .readings
                        .iter()
                        .map(|r| Reading {
                            age_ms: r.age_ms,
                            progress: r.progress,
                        })
                        .collect();
                    if let Some(record) =
                        Record::new(watch.class.clone(), total, &readings, ended_unix_ms)
                            .map(|record| record.with_load(watch.load))
                    {
                        self.learner.learn(record.clone());
                        self.relearn();
                        // Bounded even if nobody takes them.
                        if self.outbox.len() >= crate::pipeline::scheduler::learn::CAPACITY {
                            self.outbox.remove(0);
                        }
                        self.outbox.push(record);
                    }
                    if let Some(queue) = watch
                        .readings
                        .iter()
                        .find_map(|r| implied_queue_ms(r, total))
                    {
                        Learned::push(&mut self.learned.queue, queue);
                    }
                    Learned::push(&mut self.learned.total, total);
                }
                return;
            }
            JobState::Queued => {
                // Too early to read: look again once the queue has likely cleared.
                let age = age_ms(at).unwrap_or(0.0);
                (
                    later(at, age / 2.0, received + config.max_gap),
                    Purpose::Probe,
                )
            }
            JobState::Running(_) => {
                let predicted =
                    predict_completion_ms(&watch.readings, queue_range, ms(config.lag_allowance));
                // One reading, and no finished job yet to say how long the queue takes: the
                // prediction rests on a guess of the queue time, badly wrong when the reading
                // came just after the job left the queue. A second reading one age later
                // pins the line down, if it comes before the guess.
                let second_reading = (watch.readings.len() == 1 && queue_range.is_none())
                    .then(|| later(at, watch.readings[0].age_ms, received + config.max_gap));
                match (predicted, created) {
                    (Some(end), Some(created)) => {
                        // Progress comes from the network: a tiny one predicts an end
                        // centuries away, which `later` caps at the largest gap.
                        let end_at = later(created, end, received + config.max_gap) + config.margin;
                        match second_reading {
                            Some(probe) if probe < end_at => (probe, Purpose::Probe),
                            _ => (end_at, Purpose::Final),
                        }
                    }
                    // No progress to go by: follow the component's hint.
                    _ => (
                        received + Duration::from_millis(u64::from(status.next_poll_ms)),
                        Purpose::Probe,
                    ),
                }
            }
        };
        // Not `clamp`: a configuration with the gaps the wrong way round must not panic.
        watch.next = next
            .max(received + config.min_gap)
            .min(received + config.max_gap);
        watch.purpose = purpose;
    }

    /// A job has just taught the learner: jobs whose next poll it did not plan (it knew too
    /// little then) are planned again from their latest observation, if that brings the
    /// poll forward — a cold start's guess must not keep a job unwatched for long.
    fn relearn(&mut self) {
        if !self.config.learn {
            return;
        }
        let pending: Vec<(String, JobClass, Option<u32>, Seen)> = self
            .watches
            .iter()
            .filter(|(_, w)| !w.by_learner && w.place == Place::Planned)
            .filter_map(|(id, w)| Some((id.clone(), w.class.clone(), w.load, w.seen?)))
            .collect();
        for (id, class, load, seen) in pending {
            let Some((next, purpose)) = self.learned_poll(&class, load, seen) else {
                continue;
            };
            let at = seen.0;
            if let Some(watch) = self.watches.get_mut(&id) {
                watch.by_learner = true;
                if next < watch.next {
                    watch.next = next.max(at + self.config.min_gap);
                    watch.purpose = purpose;
                }
            }
        }
    }

    /// The poll failed: the same poll again at `at` (a final one keeps its reservation).
    fn retry(&mut self, job_id: &str, at: Instant) {
        let watch = self.watch(job_id, at);
        watch.next = at;
        watch.place = Place::Planned;
    }
}

/// A submit's place in the budget, from [`PollScheduler::submit_turn`] until its grant is
/// taken ([`pay`](SubmitPermit::pay)) or the permit is dropped.
#[derive(Debug)]
#[must_use = "the submit's place is given up when the permit is dropped"]
pub struct SubmitPermit<'s> {
    scheduler: &'s PollScheduler,
    holds_place: bool,
}

impl SubmitPermit<'_> {
    /// Takes the submit's grant from the budget (waiting only if the window is full) and
    /// prepays it to `plugin`, whose next request then goes without waiting on the pace.
    /// Call it right before the submit: the provider counts the request when it arrives,
    /// the budget when it is granted.
    pub async fn pay(mut self, plugin: &OutboundPolicy) {
        plugin.prepay(self.scheduler.budget.acquire_unpaced().await);
        // The budget's log counts it now.
        self.give_up_place();
    }

    fn give_up_place(&mut self) {
        if std::mem::take(&mut self.holds_place) {
            let mut plan = self.scheduler.plan();
            plan.submits_in_flight = plan.submits_in_flight.saturating_sub(1);
            drop(plan);
            self.scheduler.changed.notify_waiters();
        }
    }
}

impl Drop for SubmitPermit<'_> {
    fn drop(&mut self) {
        self.give_up_place();
    }
}

/// A turn's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    Go,
    Wait(Instant),
}

/// Where a provider timestamp falls on this host's monotonic clock: `received` less how long
/// ago `stamp` was by the wall clock, kept within our own submit's round trip when we made
/// the job (a skewed clock must not make a job look older or younger than it can be).
fn creation(
    stamp: Option<&str>,
    received: Instant,
    wall: SystemTime,
    submitted: Option<(Instant, Instant)>,
) -> Option<Instant> {
    let from_stamp = stamp.and_then(parse_timestamp_ms).and_then(|stamp_ms| {
        let wall_ms = wall.duration_since(UNIX_EPOCH).ok()?.as_millis();
        let ago = Duration::from_millis(
            u64::try_from(wall_ms.saturating_sub(u128::from(stamp_ms))).ok()?,
        );
        received.checked_sub(ago)
    });
    match (from_stamp, submitted) {
        (Some(t), Some((sent, answered))) => Some(t.clamp(sent, answered)),
        (Some(t), None) => Some(t),
        (None, Some((sent, _))) => Some(sent),
        (None, None) => None,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `base` plus `ms` milliseconds, but no later than `cap`: `ms` comes from arithmetic on
/// the provider's numbers, so it may be negative, NaN or too large for an `Instant`.
fn later(base: Instant, ms: f64, cap: Instant) -> Instant {
    Duration::try_from_secs_f64(ms.max(0.0) / 1e3)
        .ok()
        .and_then(|d| base.checked_add(d))
        .map_or(cap, |t| t.min(cap))
}

/// The account's poll scheduler, shared by every job of a session.
#[derive(Debug)]
pub struct PollScheduler {
    budget: Arc<RequestBudget>,
    plan: Mutex<PollPlan>,
    /// Woken whenever a reservation is made or dropped: a blocked turn may now fit.
    changed: Notify,
}

impl PollScheduler {
    /// A scheduler spending `budget` (the sandbox's, which every plugin's requests draw on).
    pub fn new(budget: Arc<RequestBudget>, config: ScheduleConfig) -> Self {
        PollScheduler {
            budget,
            plan: Mutex::new(PollPlan::new(config)),
            changed: Notify::new(),
        }
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, PollPlan> {
        // The plan holds no invariant a panicking holder could break halfway.
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn take_turn(&self, mut decide: impl FnMut(&mut PollPlan, Instant) -> Turn) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before deciding, so a change made in between still wakes us.
            notified.as_mut().enable();
            let until = match decide(&mut self.plan(), Instant::now()) {
                Turn::Go => return,
                Turn::Wait(until) => until,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = notified => {}
            }
        }
    }

    /// Waits until a submit can go out without crowding out a reserved poll (or a probe due
    /// soon), one budget pace after the last one at the earliest. The permit holds the
    /// submit's place until `SubmitPermit::pay` takes its grant, right before sending.
    pub(crate) async fn submit_turn(&self) -> SubmitPermit<'_> {
        self.take_turn(|plan, now| plan.submit_turn(now, &self.budget))
            .await;
        SubmitPermit {
            scheduler: self,
            holds_place: true,
        }
    }

    /// A submit sent at `sent` created `job_id`, answered at `received`: plans its first
    /// probe. Call it once the job id is safely recorded.
    pub fn submitted(&self, job_id: &str, sent: Instant, received: Instant) {
        self.submitted_as(job_id, JobClass::default(), sent, received);
    }

    /// As [`submitted`](PollScheduler::submitted), for a job rendering a clip of `class`:
    /// the learner compares it with finished jobs of the same class.
    pub fn submitted_as(&self, job_id: &str, class: JobClass, sent: Instant, received: Instant) {
        self.plan().submitted_as(job_id, class, sent, received);
        self.changed.notify_waiters();
    }

    /// `job_id` renders a clip of `class` (for a job this run did not submit: one resumed
    /// from a journal).
    pub fn classify(&self, job_id: &str, class: JobClass) {
        self.plan().watch(job_id, Instant::now()).class = class;
    }

    /// Teaches the learner finished jobs from an earlier run (the journal's), oldest first;
    /// those older than `learn::MAX_AGE` are forgotten.
    pub fn learn_from(&self, records: impl IntoIterator<Item = Record>) {
        let mut plan = self.plan();
        for record in records {
            plan.learner.learn(record);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        plan.learner.age_out(now);
    }

    /// Finished jobs' records learned since the last call, for persisting.
    pub fn take_learned(&self) -> Vec<Record> {
        std::mem::take(&mut self.plan().outbox)
    }

    /// How many finished jobs the learner knows.
    pub fn learned_jobs(&self) -> usize {
        self.plan().learner.len()
    }

    /// Jobs it watches: submitted and not yet seen ended.
    pub fn watching(&self) -> usize {
        self.plan().watches.len()
    }

    /// How the polls so far turned out.
    pub fn counts(&self) -> PollCounts {
        self.plan().counts
    }

    /// Waits until `job_id`'s next poll is due and, for a probe, fits the budget beside the
    /// reserved polls, then takes its grant and prepays it to `plugin`, as
    /// a submit's turn does: a poll aimed at the moment a job
    /// ends is not held back by pacing meant for requests nobody planned. A job not yet
    /// watched is due at once.
    pub async fn poll_turn(&self, job_id: &str, plugin: &OutboundPolicy) {
        self.take_turn(|plan, now| plan.poll_turn(job_id, now, &self.budget))
            .await;
        plugin.prepay(self.budget.acquire_unpaced().await);
        // The budget's log counts it now.
        if let Some(watch) = self.plan().watches.get_mut(job_id) {
            watch.place = Place::Logged;
        }
        self.changed.notify_waiters();
    }

    /// What a poll of `job_id`, sent at `sent` and answered at `received`, found: plans the
    /// next poll, or learns from the job and stops watching it if it ended.
    pub fn observed(&self, job_id: &str, status: &JobStatus, sent: Instant, received: Instant) {
        self.plan()
            .observed(job_id, status, sent, received, SystemTime::now());
        self.changed.notify_waiters();
    }

    /// A poll of `job_id` failed: the same poll again after `delay` (at most `max-gap`).
    pub fn retry(&self, job_id: &str, delay: Duration) {
        let mut plan = self.plan();
        let at = Instant::now() + delay.min(plan.config.max_gap);
        plan.retry(job_id, at);
        drop(plan);
        self.changed.notify_waiters();
    }

    /// Polls `job_id` no earlier than `at` (a caller's floor under the plan).
    pub fn not_before(&self, job_id: &str, at: Instant) {
        if let Some(watch) = self.plan().watches.get_mut(job_id) {
            watch.next = watch.next.max(at);
        }
        self.changed.notify_waiters();
    }

    /// Stops watching `job_id` (it ended some other way, or this run leaves it).
    pub fn forget(&self, job_id: &str) {
        if self.plan().watches.remove(job_id).is_some() {
            self.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    /// The wall clock the tests' provider stamps are relative to.
    fn wall() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    /// A provider stamp `ago` before [`wall`].
    fn stamp(ago: Duration) -> String {
        let t = wall() - ago;
        format!("{:.3}", t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64())
    }

    fn status(state: JobState, created_ago: Duration) -> JobStatus {
        JobStatus {
            job_id: "job".into(),
            state,
            raw_status: "running".into(),
            created_at: Some(stamp(created_ago)),
            completed_at: None,
            next_poll_ms: 7_000,
        }
    }

    /// `plan` learns that `job`, created at `t0`, was found in `state` at `age`, answered at
    /// once (the provider's clock and ours agree).
    fn found_at(plan: &mut PollPlan, job: &str, t0: Instant, state: JobState, age: Duration) {
        plan.observed(job, &status(state, age), t0 + age, t0 + age, wall());
    }

    fn budget(per_minute: u32) -> RequestBudget {
        RequestBudget::new(per_minute, per_minute.max(1))
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_job_is_probed_once_it_has_had_time_and_later_as_short_jobs_allow() {
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let t0 = Instant::now();
        plan.submitted("a", t0, t0 + SEC);
        assert_eq!(plan.watches["a"].next, t0 + SEC + 10 * SEC);
        assert_eq!(plan.watches["a"].purpose, Purpose::Probe);
        // Three finished jobs, the shortest 40 s: probe at 90 % of that.
        for total in [40.0, 60.0, 90.0] {
            Learned::push(&mut plan.learned.total, total * 1e3);
        }
        plan.submitted("b", t0, t0);
        assert_eq!(plan.watches["b"].next, t0 + Duration::from_secs(36));
        // However short they were, not before the configured floor.
        Learned::push(&mut plan.learned.total, 100.0);
        plan.submitted("c", t0, t0);
        assert_eq!(plan.watches["c"].next, t0 + 2 * SEC);
    }

    #[tokio::test(start_paused = true)]
    async fn one_reading_plans_a_reserved_poll_just_after_the_predicted_end() {
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let t0 = Instant::now();
        // Created 20 s ago by the provider's stamp; answered instantly; 40 % done.
        plan.observed(
            "a",
            &status(JobState::Running(Some(0.4)), 20 * SEC),
            t0,
            t0,
            wall(),
        );
        let reading = ProgressReading {
            age_ms: 20_000.0,
            progress: 0.4,
            uncertainty_ms: 0.0,
        };
        let end = predict_completion_ms(
            &[reading],
            None,
            ms(ScheduleConfig::default().lag_allowance),
        )
        .unwrap();
        let watch = &plan.watches["a"];
        assert_eq!(watch.purpose, Purpose::Final);
        let expected =
            t0 - 20 * SEC + Duration::from_secs_f64(end / 1e3) + Duration::from_millis(300);
        let off = watch.next.max(expected) - watch.next.min(expected);
        assert!(
            off < Duration::from_millis(2),
            "{:?} vs {expected:?}",
            watch.next
        );
        assert!(watch.next > t0, "the end lies ahead");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reading_just_after_the_queue_is_followed_by_a_second_before_any_guess() {
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let t0 = Instant::now();
        // 1 % done at age 10 s: with no queue time learned, the end could be anywhere from
        // about 19 s (a 9 s queue) to 1,000 s (none). Read again one age later instead.
        plan.observed(
            "a",
            &status(JobState::Running(Some(0.01)), 10 * SEC),
            t0,
            t0,
            wall(),
        );
        assert_eq!(plan.watches["a"].next, t0 + 10 * SEC);
        assert_eq!(plan.watches["a"].purpose, Purpose::Probe);
        // Once a finished job has shown the queue, one reading is enough.
        Learned::push(&mut plan.learned.queue, 9_500.0);
        plan.observed(
            "b",
            &status(JobState::Running(Some(0.01)), 10 * SEC),
            t0,
            t0,
            wall(),
        );
        assert_eq!(plan.watches["b"].purpose, Purpose::Final);
        // 9.5 s queued, 0.5 s for 1 %: 59.5 s after creation.
        let expected = t0 - 10 * SEC + Duration::from_millis(59_500 + 300);
        let next = plan.watches["b"].next;
        let off = next.max(expected) - next.min(expected);
        assert!(off < Duration::from_millis(2), "{next:?} vs {expected:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn two_readings_extrapolate_the_line() {
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let t0 = Instant::now();
        plan.observed(
            "a",
            &status(JobState::Running(Some(0.2)), 20 * SEC),
            t0,
            t0,
            wall(),
        );
        let t1 = t0 + 10 * SEC;
        plan.observed(
            "a",
            &status(JobState::Running(Some(0.3)), 30 * SEC),
            t1,
            t1,
            wall() + 10 * SEC,
        );
        // 10 % per 10 s, 70 % to go: ends 70 s after the second reading.
        let expected = t1 + 70 * SEC + Duration::from_millis(300);
        let next = plan.watches["a"].next;
        let off = next.max(expected) - next.min(expected);
        assert!(off < Duration::from_millis(2), "{next:?} vs {expected:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn queued_jobs_are_read_again_as_the_queue_is_likely_to_clear() {
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let t0 = Instant::now();
        plan.observed("a", &status(JobState::Queued, 30 * SEC), t0, t0, wall());
        assert_eq!(plan.watches["a"].next, t0 + 15 * SEC);
        assert_eq!(plan.watches["a"].purpose, Purpose::Probe);
        plan.observed("b", &status(JobState::Queued, SEC), t0, t0, wall());
        assert_eq!(
            plan.watches["b"].next,
            t0 + SEC,
            "not sooner than the floor"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_progress_the_components_hint_is_followed() {
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let t0 = Instant::now();
        plan.observed(
            "a",
            &status(JobState::Running(None), 30 * SEC),
            t0,
            t0,
            wall(),
        );
        assert_eq!(plan.watches["a"].next, t0 + Duration::from_millis(7_000));
        assert_eq!(plan.watches["a"].purpose, Purpose::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_job_is_never_left_longer_than_the_largest_gap() {
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let t0 = Instant::now();
        // 0.1 % after an hour: the line says another 41 days.
        plan.observed(
            "a",
            &status(JobState::Running(Some(0.001)), 3_600 * SEC),
            t0,
            t0,
            wall(),
        );
        assert_eq!(plan.watches["a"].next, t0 + 600 * SEC);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ended_job_is_let_go_and_teaches_its_length_and_queue() {
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let t0 = Instant::now();
        // Read at age 30 s, 25 % done; it completes 60 s after creation.
        plan.observed(
            "a",
            &status(JobState::Running(Some(0.25)), 30 * SEC),
            t0,
            t0,
            wall(),
        );
        // Polled 40 s later, the stamps unchanged: created 30 s before the first reading,
        // completed 30 s after it.
        let t1 = t0 + 40 * SEC;
        let mut done = status(JobState::Completed(vec!["u".into()]), 30 * SEC);
        let completed = wall() + 30 * SEC;
        done.completed_at = Some(format!(
            "{:.3}",
            completed.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
        ));
        plan.observed("a", &done, t1, t1, wall() + 40 * SEC);
        assert!(plan.watches.is_empty());
        let total = plan.learned.total[0];
        assert!((total - 60_000.0).abs() < 2.0, "{total}");
        // p = (age − q) / (total − q): 0.25 = (30 − q) / (60 − q) → q = 20 s.
        let queue = plan.learned.queue[0];
        assert!((queue - 20_000.0).abs() < 5.0, "{queue}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_skewed_clock_cannot_place_creation_outside_our_own_submit() {
        let t0 = Instant::now();
        let submit = (t0, t0 + SEC);
        // The stamp says an hour ago (our clock runs an hour ahead): the submit bounds it.
        let created = creation(
            Some(&stamp(3_600 * SEC)),
            t0 + 5 * SEC,
            wall(),
            Some(submit),
        );
        assert_eq!(created, Some(t0));
        // In the future: the answer bounds it.
        let created = creation(
            Some(&stamp(Duration::ZERO)),
            t0 + 5 * SEC,
            wall() - 60 * SEC,
            Some(submit),
        );
        assert_eq!(created, Some(t0 + SEC));
        // Unreadable: the submit's sending time.
        assert_eq!(creation(Some("soon"), t0, wall(), Some(submit)), Some(t0));
        assert_eq!(creation(None, t0, wall(), None), None);
    }

    #[tokio::test(start_paused = true)]
    async fn probes_and_submits_yield_to_reserved_polls() {
        // Five requests a minute; one already spent; three polls reserved 10–30 s ahead.
        let budget = budget(5);
        drop(budget.acquire().await);
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let now = Instant::now();
        for (i, at) in [10, 20, 30].into_iter().enumerate() {
            let watch = plan.watch(&format!("final-{i}"), now);
            watch.next = now + at * SEC;
            watch.purpose = Purpose::Final;
        }
        // 1 spent + 3 reserved + this one = 5: a probe due now fits…
        plan.watch("probe", now);
        assert_eq!(plan.poll_turn("probe", now, &budget), Turn::Go);
        drop(budget.acquire().await);
        // …but the next one would crowd out a reserved poll, and so would a submit.
        let watch = plan.watch("probe-2", now);
        watch.next = now;
        assert!(matches!(
            plan.poll_turn("probe-2", now, &budget),
            Turn::Wait(_)
        ));
        assert!(matches!(plan.submit_turn(now, &budget), Turn::Wait(_)));
        // A reserved poll itself never waits for room: it is what the room was kept for.
        plan.watches.get_mut("final-0").unwrap().next = now;
        assert_eq!(plan.poll_turn("final-0", now, &budget), Turn::Go);
        // Once the spent requests leave the window, probes go again.
        let later = now + budget.span() + SEC;
        plan.watches.retain(|id, _| id.starts_with("probe"));
        assert_eq!(plan.poll_turn("probe-2", later, &budget), Turn::Go);
    }

    #[tokio::test(start_paused = true)]
    async fn submits_also_leave_room_for_probes_due_soon() {
        let budget = budget(2);
        drop(budget.acquire().await);
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let now = Instant::now();
        // A probe due in 5 s (within the 20 s horizon) takes the last slot.
        plan.watch("soon", now).next = now + 5 * SEC;
        assert!(matches!(plan.submit_turn(now, &budget), Turn::Wait(_)));
        // One due in a minute does not.
        plan.watch("soon", now).next = now + 60 * SEC;
        assert_eq!(plan.submit_turn(now, &budget), Turn::Go);
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_waits_for_its_time_and_wakes_when_a_reservation_is_dropped() {
        let budget = Arc::new(budget(2));
        let scheduler = Arc::new(PollScheduler::new(
            budget.clone(),
            ScheduleConfig::default(),
        ));
        let t0 = Instant::now();
        scheduler.submitted("a", t0, t0);
        let plugin = OutboundPolicy::default();
        scheduler.poll_turn("a", &plugin).await;
        assert_eq!(
            plugin.forfeit_prepaid(),
            1,
            "the grant was handed to the plugin"
        );
        assert_eq!(budget.granted(), 1);
        assert_eq!(
            Instant::now(),
            t0 + 10 * SEC,
            "the first probe waits its age"
        );
        scheduler.forget("a");
        // Handed back unused (nothing was sent), it takes no place; one request sent and
        // answered does.
        assert!(budget.fits(Instant::now(), &[Instant::now()]));
        drop(budget.acquire_unpaced().await);

        // The window holds one request; a reserved poll in 30 s holds the other slot.
        scheduler.retry("final", Duration::from_secs(30));
        scheduler.plan().watches.get_mut("final").unwrap().purpose = Purpose::Final;
        let waiting = tokio::spawn({
            let scheduler = scheduler.clone();
            async move {
                let _permit = scheduler.submit_turn().await;
                Instant::now()
            }
        });
        tokio::time::sleep(5 * SEC).await;
        assert!(!waiting.is_finished());
        let dropped = Instant::now();
        scheduler.forget("final");
        assert_eq!(
            waiting.await.unwrap(),
            dropped,
            "woken by the change, not a timer"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_found_still_running_at_its_end_is_not_polled_again_at_once() {
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let t0 = Instant::now();
        // Nearly done at the probe: the end is predicted within milliseconds…
        plan.observed(
            "a",
            &status(JobState::Running(Some(0.999)), 60 * SEC),
            t0,
            t0,
            wall(),
        );
        let first = plan.watches["a"].next;
        assert_eq!(
            first,
            t0 + SEC,
            "…but a reading right after says nothing new"
        );
        // …and one found still running at the final poll is read again no sooner either.
        plan.observed(
            "a",
            &status(JobState::Running(Some(0.9995)), 60 * SEC),
            first,
            first,
            wall() + SEC,
        );
        assert!(plan.watches["a"].next >= first + SEC);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_let_out_hold_their_place_until_the_budget_logs_them() {
        // Three a minute, none spent: a probe let out (not yet logged by the budget) and a
        // submit let out leave room for exactly one more.
        let budget = budget(3);
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let now = Instant::now();
        assert_eq!(plan.poll_turn("a", now, &budget), Turn::Go);
        assert_eq!(plan.submit_turn(now, &budget), Turn::Go);
        plan.watch("b", now);
        plan.watch("c", now);
        assert_eq!(plan.poll_turn("b", now, &budget), Turn::Go);
        assert!(matches!(plan.poll_turn("c", now, &budget), Turn::Wait(_)));
        // The probe's grant is logged: its place is the budget's log's business now.
        plan.watches.get_mut("a").unwrap().place = Place::Logged;
        assert_eq!(plan.poll_turn("c", now, &budget), Turn::Go);
    }

    #[tokio::test(start_paused = true)]
    async fn submits_keep_the_budgets_pace() {
        // Fifty a minute and none spent: room for a burst, but one submit per 1.2 s.
        let budget = budget(50);
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let now = Instant::now();
        let pace = budget.pace();
        assert_eq!(plan.submit_turn(now, &budget), Turn::Go);
        assert_eq!(plan.submit_turn(now, &budget), Turn::Wait(now + pace));
        assert_eq!(plan.submit_turn(now + pace, &budget), Turn::Go);
        // Polls keep their own times: a probe due now goes beside them.
        assert_eq!(plan.poll_turn("a", now + pace, &budget), Turn::Go);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_submit_wakes_one_pace_after_the_first() {
        let budget = Arc::new(budget(50));
        let scheduler = Arc::new(PollScheduler::new(
            budget.clone(),
            ScheduleConfig::default(),
        ));
        let t0 = Instant::now();
        let plugin = OutboundPolicy::default();
        let (first, second) = tokio::join!(
            async {
                let permit = scheduler.submit_turn().await;
                let at = Instant::now();
                permit.pay(&plugin).await;
                at
            },
            async {
                let permit = scheduler.submit_turn().await;
                let at = Instant::now();
                permit.pay(&plugin).await;
                at
            },
        );
        let (early, late) = (first.min(second), first.max(second));
        assert_eq!((early, late), (t0, t0 + budget.pace()));
        assert_eq!(budget.granted(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_submit_permit_holds_its_place_until_paid_or_dropped() {
        let budget = Arc::new(budget(2));
        let scheduler = PollScheduler::new(budget.clone(), ScheduleConfig::default());
        let plugin = OutboundPolicy::default();
        let first = scheduler.submit_turn().await;
        let second = scheduler.submit_turn().await;
        // Two places held, none granted yet: a third waits (longer than any pace).
        let third = tokio::time::timeout(budget.span() * 2, scheduler.submit_turn()).await;
        assert!(third.is_err());
        // Dropping one gives its place back…
        drop(second);
        let third = scheduler.submit_turn().await;
        // …and paying turns a place into a grant, prepaid to the plugin.
        first.pay(&plugin).await;
        assert_eq!((budget.granted(), plugin.forfeit_prepaid()), (1, 1));
        assert_eq!(scheduler.plan().submits_in_flight, 1);
        drop(third);
        assert_eq!(scheduler.plan().submits_in_flight, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_progress_or_configuration_never_panics() {
        let mut plan = PollPlan::new(ScheduleConfig::default());
        // A queue time learned, so one reading makes a prediction: centuries away.
        Learned::push(&mut plan.learned.queue, 5_000.0);
        let t0 = Instant::now();
        for p in [1e-300, 1e-18, f64::MIN_POSITIVE] {
            plan.observed(
                "a",
                &status(JobState::Running(Some(p)), 10 * SEC),
                t0,
                t0,
                wall(),
            );
            assert_eq!(plan.watches["a"].next, t0 + 600 * SEC, "progress {p}");
            plan.watches.clear();
        }
        // Gaps the wrong way round, and a day-long everything.
        let backwards = ScheduleConfig {
            min_gap: 60 * SEC,
            max_gap: SEC,
            ..ScheduleConfig::default()
        };
        let mut plan = PollPlan::new(backwards);
        plan.observed(
            "a",
            &status(JobState::Running(Some(0.5)), 10 * SEC),
            t0,
            t0,
            wall(),
        );
        assert_eq!(plan.watches["a"].next, t0 + SEC);
        let mut plan = PollPlan::new(ScheduleConfig::default().scaled(1e-300));
        plan.submitted("a", t0, t0);
        assert_eq!(plan.watches["a"].next, t0 + DAY);
        // A factor that is no factor changes nothing.
        for factor in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                ScheduleConfig::default().scaled(factor),
                ScheduleConfig::default()
            );
        }
    }

    #[test]
    fn scaling_divides_every_timing() {
        let fast = ScheduleConfig::default().scaled(10.0);
        assert_eq!(fast.first_probe, SEC);
        assert_eq!(fast.margin, Duration::from_millis(30));
        assert_eq!(fast.max_gap, 60 * SEC);
    }

    /// A plan whose learner has seen 40 jobs of 3 s clips: created, 60 s in all, progress
    /// linear after a 10 s queue, read at 20, 30, 40 and 50 s.
    fn taught(config: ScheduleConfig) -> PollPlan {
        let mut plan = PollPlan::new(config);
        let class = JobClass::new(3, "720p");
        for i in 0..40 {
            let total = 58_000.0 + f64::from(i % 5) * 1_000.0;
            let readings: Vec<Reading> = [20_000.0, 30_000.0, 40_000.0, 50_000.0]
                .into_iter()
                .map(|age| Reading {
                    age_ms: age,
                    progress: (age - 10_000.0) / (total - 10_000.0),
                })
                .collect();
            plan.learner
                .learn(Record::new(class.clone(), total, &readings, 0).unwrap());
        }
        plan
    }

    #[tokio::test(start_paused = true)]
    async fn a_taught_plan_polls_where_the_learned_end_says() {
        let mut plan = taught(ScheduleConfig::default());
        let t0 = Instant::now();
        let class = JobClass::new(3, "720p");
        // A new job: nine in ten like it ended after 58 s, all by 62 s; the spread (4 s)
        // is within the allowance without a reading (12 s), so the one poll goes at the late
        // edge.
        plan.submitted_as("a", class.clone(), t0, t0);
        let first = plan.watches["a"].next;
        assert_eq!(plan.watches["a"].purpose, Purpose::Final);
        assert!(
            (t0 + 61 * SEC..=t0 + 63 * SEC).contains(&first),
            "{:?}",
            first - t0
        );
        // Halfway through its render at 35 s: ends 24–26 s later.
        plan.observed(
            "a",
            &status(JobState::Running(Some(0.52)), 35 * SEC),
            t0 + 35 * SEC,
            t0 + 35 * SEC,
            wall(),
        );
        let next = plan.watches["a"].next - (t0 + 35 * SEC);
        assert!((22 * SEC..=28 * SEC).contains(&next), "{next:?}");
        assert_eq!(plan.counts.found_running, 1);
        // A job of a clip never seen borrows, rescaled (6 s: about twice as long).
        plan.submitted_as("b", JobClass::new(6, "720p"), t0, t0);
        let six = plan.watches["b"].next - t0;
        assert!((110 * SEC..=130 * SEC).contains(&six), "{six:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wider_spread_than_the_allowance_is_read_again_near_its_early_edge() {
        let mut plan = taught(ScheduleConfig {
            lag_allowance: Duration::ZERO,
            blind_lag_allowance: 2 * SEC,
            ..ScheduleConfig::default()
        });
        let t0 = Instant::now();
        plan.submitted_as("a", JobClass::new(3, "720p"), t0, t0);
        // The first poll, without a reading: the early edge (58 s) plus that allowance.
        let first = plan.watches["a"].next - t0;
        assert!((60 * SEC..=61 * SEC).contains(&first), "{first:?}");
        // Read at 35 s: the early edge of what is left (21 s), no allowance.
        found_at(&mut plan, "a", t0, JobState::Running(Some(0.52)), 35 * SEC);
        let next = plan.watches["a"].next - (t0 + 35 * SEC);
        assert!((21 * SEC..22 * SEC).contains(&next), "{next:?}");
        // A job that reports no progress at 50 s: its age alone says 8–12 s are left; no
        // reading to go by, so the early edge plus that allowance again.
        plan.submitted_as("b", JobClass::new(3, "720p"), t0, t0);
        found_at(&mut plan, "b", t0, JobState::Running(None), 50 * SEC);
        let silent = plan.watches["b"].next - (t0 + 50 * SEC);
        assert!((10 * SEC..11 * SEC).contains(&silent), "{silent:?}");
        // A reading no finished job came near (5 % at 12 s; theirs were 19 % and more at
        // 20 s): predicted from age alone (46–50 s left), so that allowance again.
        plan.submitted_as("c", JobClass::new(3, "720p"), t0, t0);
        found_at(&mut plan, "c", t0, JobState::Running(Some(0.05)), 12 * SEC);
        let unmatched = plan.watches["c"].next - (t0 + 12 * SEC);
        assert!((48 * SEC..49 * SEC).contains(&unmatched), "{unmatched:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_ended_job_teaches_the_learner_and_waits_to_be_persisted() {
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let t0 = Instant::now();
        // Two jobs already watched (one resumed, one submitted) when "a" is submitted.
        plan.watch("resumed", t0);
        plan.submitted("b", t0, t0);
        plan.submitted_as("a", JobClass::new(3, "720p"), t0, t0);
        plan.observed(
            "a",
            &status(JobState::Running(Some(0.5)), 30 * SEC),
            t0 + 30 * SEC,
            t0 + 30 * SEC,
            wall(),
        );
        plan.observed(
            "a",
            &status(JobState::Completed(vec!["u".into()]), 60 * SEC),
            t0 + 60 * SEC,
            t0 + 60 * SEC,
            wall(),
        );
        assert_eq!(plan.learner.len(), 1);
        let record = &plan.outbox[0];
        assert_eq!(record.class, JobClass::new(3, "720p"));
        assert_eq!(record.readings.len(), 1);
        assert!((record.total_ms - 60_000.0).abs() < 2.0, "{record:?}");
        assert_eq!(record.load, Some(2));
        assert_eq!(plan.counts.found_ended, 1);
        // A job this run did not submit has no known load.
        let done = JobState::Completed(vec!["u".into()]);
        found_at(&mut plan, "resumed", t0, done, 60 * SEC);
        assert_eq!(plan.outbox[1].load, None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_previous_scheduler_ignores_what_was_learned() {
        let mut plan = taught(ScheduleConfig {
            learn: false,
            ..ScheduleConfig::default()
        });
        let t0 = Instant::now();
        plan.submitted_as("a", JobClass::new(3, "720p"), t0, t0);
        assert_eq!(plan.watches["a"].purpose, Purpose::Probe);
        assert_eq!(plan.counts.planned_by_learner, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cold_start_guess_is_brought_forward_once_the_learner_knows_better() {
        let mut plan = PollPlan::new(ScheduleConfig::default());
        let t0 = Instant::now();
        // Nothing learned: 0.1 % at 30 s, and a queue of 29.9 s already learned by the old
        // rule, puts the end at the largest gap.
        Learned::push(&mut plan.learned.queue, 29_000.0);
        plan.submitted_as("a", JobClass::new(3, "720p"), t0, t0);
        plan.observed(
            "a",
            &status(JobState::Running(Some(0.001)), 30 * SEC),
            t0 + 30 * SEC,
            t0 + 30 * SEC,
            wall(),
        );
        assert_eq!(plan.watches["a"].next, t0 + 630 * SEC);
        // Then a job finishes while the learner knows 40 of its class: "a" is planned
        // again from its last observation, far sooner.
        let taught = taught(ScheduleConfig::default());
        plan.learner = taught.learner;
        plan.submitted_as("b", JobClass::default(), t0, t0);
        plan.observed(
            "b",
            &status(JobState::Completed(vec!["u".into()]), 60 * SEC),
            t0 + 60 * SEC,
            t0 + 60 * SEC,
            wall(),
        );
        let next = plan.watches["a"].next;
        assert!(next < t0 + 90 * SEC, "{:?}", next - t0);
        assert!(plan.watches["a"].by_learner);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_older_than_every_job_like_it_is_read_again_after_a_tenth_of_its_age() {
        let mut plan = taught(ScheduleConfig::default());
        let t0 = Instant::now();
        plan.submitted_as("a", JobClass::new(3, "720p"), t0, t0);
        // 200 s old, no progress: every job like it ended by 62 s.
        found_at(&mut plan, "a", t0, JobState::Running(None), 200 * SEC);
        let gap = plan.watches["a"].next - (t0 + 200 * SEC);
        assert!((20 * SEC..=21 * SEC).contains(&gap), "{gap:?}");
    }
}
