//! The scheduler's pure part: when each watched job is polled next, driven by explicit times.
//! [`PollPlan`] keeps every watched job's next poll and place in the budget, what finished
//! jobs taught, and decides each turn; [`super::PollScheduler`] wraps it for concurrent jobs.

use super::config::{DAY, LEARN_AFTER, LEARN_FROM, ScheduleConfig};
use super::learn::{JobClass, Learner, Reading, Record, Remaining};
use super::predict::{ProgressReading, implied_queue_ms, predict_completion_ms};
use crate::progress::{ProgressScale, ScaledProgress};
use happyhorse_sandbox::RequestBudget;
use happyhorse_sandbox::api::{JobState, JobStatus};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use video_gen_core::time::parse_timestamp_ms;

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
pub(super) struct Watch {
    pub(super) next: Instant,
    pub(super) purpose: Purpose,
    /// When the provider created it, on this host's clock.
    pub(super) created: Option<Instant>,
    /// When our submit went out and was answered, if this run submitted it: the creation
    /// time lies between, whatever the two clocks say.
    pub(super) submitted: Option<(Instant, Instant)>,
    pub(super) readings: Vec<ProgressReading>,
    /// The scale its progress is written on, settled from its readings.
    pub(super) scale: ProgressScale,
    pub(super) place: Place,
    /// What it renders, which decides what the learner compares it with.
    pub(super) class: JobClass,
    /// How many other jobs this scheduler watched when it was submitted (see
    /// `learn::Record::load`).
    pub(super) load: Option<u32>,
    /// Its latest observation: when, its age then (ms) and its progress, if any.
    pub(super) seen: Option<Seen>,
    /// Whether its next poll was planned by the learner.
    pub(super) by_learner: bool,
    /// When its last answer (its submit's, then each poll's) arrived: an idle budget polls
    /// it again `idle_gap` after.
    pub(super) answered: Option<Instant>,
}

/// A job's latest observation: when, its age then (ms), and its progress if it had one.
type Seen = (Instant, f64, Option<f64>);

/// Where a job's next poll stands in the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
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
    pub(super) fn new(next: Instant, submitted: Option<(Instant, Instant)>) -> Watch {
        Watch {
            next,
            purpose: Purpose::Probe,
            created: None,
            submitted,
            readings: Vec::new(),
            scale: ProgressScale::default(),
            place: Place::Planned,
            class: JobClass::default(),
            load: None,
            seen: None,
            by_learner: false,
            answered: submitted.map(|(_, received)| received),
        }
    }
}

/// What finished jobs taught, in ms.
#[derive(Debug, Default)]
pub(super) struct Learned {
    pub(super) queue: VecDeque<f64>,
    pub(super) total: VecDeque<f64>,
}

impl Learned {
    pub(super) fn push(list: &mut VecDeque<f64>, value: f64) {
        if list.len() == LEARN_FROM {
            list.pop_front();
        }
        list.push_back(value);
    }

    pub(super) fn queue_range(&self) -> Option<(f64, f64)> {
        let lo = self.queue.iter().copied().reduce(f64::min)?;
        let hi = self.queue.iter().copied().reduce(f64::max)?;
        Some((lo, hi))
    }
}

/// When each watched job is polled next: the scheduler's pure part, driven by explicit times
/// (the pipeline's `Plan` is the storyboard's shots, checked and priced).
#[derive(Debug)]
pub(super) struct PollPlan {
    pub(super) config: ScheduleConfig,
    pub(super) watches: HashMap<String, Watch>,
    pub(super) learned: Learned,
    /// Submits let out whose grant the budget has not logged yet, each holding a place.
    pub(super) submits_in_flight: usize,
    /// What every finished job taught, for planning.
    pub(super) learner: Learner,
    /// Finished jobs' records not yet taken for persisting.
    pub(super) outbox: Vec<Record>,
    /// Polls answered so far, by what they found.
    pub(super) counts: PollCounts,
    /// When the last submit was let out: the next keeps the budget's pace after it.
    pub(super) last_submit: Option<Instant>,
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
    /// Polls sent before their plan because the budget was idle (`idle_gap`).
    pub idle: u64,
}

impl PollPlan {
    pub(super) fn new(config: ScheduleConfig) -> Self {
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
    pub(super) fn first_probe_age(&self) -> Duration {
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
    pub(super) fn submitted(&mut self, job_id: &str, sent: Instant, received: Instant) {
        self.submitted_as(job_id, JobClass::default(), sent, received);
    }

    pub(super) fn submitted_as(
        &mut self,
        job_id: &str,
        class: JobClass,
        sent: Instant,
        received: Instant,
    ) {
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
    pub(super) fn learned_poll(
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
    pub(super) fn watch(&mut self, job_id: &str, now: Instant) -> &mut Watch {
        self.watches
            .entry(job_id.to_string())
            .or_insert_with(|| Watch::new(now, None))
    }

    /// The instants budget is held for (sorted, past ones as `now`): reserved polls,
    /// requests let out whose grant the budget has not logged yet, and with `probes_until`
    /// also the probes due before it.
    pub(super) fn reserved(&self, now: Instant, probes_until: Option<Instant>) -> Vec<Instant> {
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
    pub(super) fn poll_turn(&mut self, job_id: &str, now: Instant, budget: &RequestBudget) -> Turn {
        let watch = self.watch(job_id, now);
        if watch.place != Place::Planned {
            // Already let out: the caller is cancelling and retrying, or racing itself.
            return Turn::Go;
        }
        let (next, answered) = (watch.next, watch.answered);
        if next > now {
            // Before its plan: only when the budget is idle, `idle_gap` after its last answer.
            // (A budget without a limit has no share to lapse: its polls keep their plan.)
            let idle_at = answered
                .filter(|_| !self.config.idle_gap.is_zero() && budget.per_minute() >= 2)
                .map(|t| t + self.config.idle_gap.max(self.config.min_gap))
                .filter(|&at| at < next);
            return match idle_at {
                None => Turn::Wait(next),
                Some(at) if at > now => Turn::Wait(at),
                Some(_) if self.budget_idle(now, budget) => {
                    self.counts.idle += 1;
                    let watch = self.watch(job_id, now);
                    // Held from now, where it goes, not at its old plan.
                    watch.next = now;
                    watch.place = Place::LetOut;
                    Turn::Go
                }
                Some(_) => Turn::Wait(next.min(self.recheck(now, budget))),
            };
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
    pub(super) fn submit_turn(&mut self, now: Instant, budget: &RequestBudget) -> Turn {
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

    /// Whether the budget is idle at `now`: a limit, and room for half of it at once beside
    /// every reserved poll, request let out and probe due within the probe horizon.
    fn budget_idle(&self, now: Instant, budget: &RequestBudget) -> bool {
        let half = budget.per_minute() / 2;
        let mut reserved = self.reserved(now, Some(now + self.config.probe_horizon));
        reserved.extend(std::iter::repeat_n(now, half as usize));
        budget.fits(now, &reserved)
    }

    pub(super) fn recheck(&self, now: Instant, budget: &RequestBudget) -> Instant {
        let by = now + self.config.recheck;
        budget.next_expiry().map_or(by, |t| t.min(by))
    }

    /// What a poll sent at `sent` and answered at `received` (`wall`, on the wall clock)
    /// found; plans the job's next poll, or learns from it and lets it go if it ended.
    /// Returns the job's progress on its settled scale (see [`ProgressScale`]): the value
    /// planned with here, and what a screen may draw of it.
    pub(super) fn observed(
        &mut self,
        job_id: &str,
        status: &JobStatus,
        sent: Instant,
        received: Instant,
        wall: SystemTime,
    ) -> ScaledProgress {
        let watch = self.watch(job_id, sent);
        if watch.created.is_none() {
            watch.created = creation(
                status.created_at.as_deref(),
                received,
                wall,
                watch.submitted,
            );
        }
        let created = watch.created.or(watch.submitted.map(|(_, r)| r));
        let age = created.map(|c| midpoint(sent, received).saturating_duration_since(c));
        let scaled = watch.scale.read(status, age);
        if scaled.now_percent {
            // What looked like fractions were percentages: read them again that way.
            for reading in &mut watch.readings {
                reading.progress /= 100.0;
            }
            if let Some((_, _, Some(p))) = &mut watch.seen {
                *p /= 100.0;
            }
        }
        let running = scaled
            .fraction
            .filter(|_| matches!(status.state, JobState::Running(_)));
        self.plan_after(job_id, status, running, sent, received, wall);
        scaled
    }

    /// [`PollPlan::observed`] once `progress` (the job's, if running) is read on its scale.
    fn plan_after(
        &mut self,
        job_id: &str,
        status: &JobStatus,
        progress: Option<f64>,
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
        watch.answered = Some(received);
        let created = watch.created.or(watch.submitted.map(|(_, r)| r));
        let at = midpoint(sent, received);
        let age_ms = |t: Instant| created.map(|c| ms(t.saturating_duration_since(c)));
        if let (Some(p), Some(age)) = (progress, age_ms(at))
            && p > 0.0
            && p < 1.0
        {
            watch.readings.push(ProgressReading {
                age_ms: age,
                progress: p,
                uncertainty_ms: ms(received.saturating_duration_since(sent)) / 2.0,
            });
        }
        if !ended && let Some(age) = age_ms(at) {
            let (class, load) = (watch.class.clone(), watch.load);
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
                        if self.outbox.len() >= crate::scheduler::learn::CAPACITY {
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
    pub(super) fn relearn(&mut self) {
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
    pub(super) fn retry(&mut self, job_id: &str, at: Instant) {
        let watch = self.watch(job_id, at);
        watch.next = at;
        watch.place = Place::Planned;
    }
}

/// A turn's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Turn {
    Go,
    Wait(Instant),
}

/// Where a provider timestamp falls on this host's monotonic clock: `received` less how long
/// ago `stamp` was by the wall clock, kept within our own submit's round trip when we made
/// the job (a skewed clock must not make a job look older or younger than it can be).
pub(super) fn creation(
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

/// When the provider read its clock for an answer: somewhere between sending and receiving.
fn midpoint(sent: Instant, received: Instant) -> Instant {
    sent + received.saturating_duration_since(sent) / 2
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `base` plus `ms` milliseconds, but no later than `cap`: `ms` comes from arithmetic on
/// the provider's numbers, so it may be negative, NaN or too large for an `Instant`.
pub(super) fn later(base: Instant, ms: f64, cap: Instant) -> Instant {
    Duration::try_from_secs_f64(ms.max(0.0) / 1e3)
        .ok()
        .and_then(|d| base.checked_add(d))
        .map_or(cap, |t| t.min(cap))
}
