//! One plan for every job's polls, so an account's request budget is spent where it pays.
//!
//! The provider counts every request against 50 a minute per account. Polling each job on a
//! timer spends most of that on answers that say "still running", and a host with many jobs
//! in flight then detects each completion late because its polls queue for the budget.
//!
//! This scheduler plans each job's next poll from what finished jobs taught
//! ([`crate::scheduler::learn`]: per clip length and resolution, the remaining time of jobs seen at a
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
//! request carries a [`Grant`](happyhorse_sandbox::Grant) from the budget to the
//! wire, counted until its answer.
//!
//! Jobs are keyed by job id. A job the scheduler has not seen (one resumed from a journal) is
//! probed at once. Measured against the alternatives in `BENCHMARKS.md` §5.

mod config;
pub(crate) mod learn;
mod plan;
pub(crate) mod predict;
#[cfg(test)]
mod tests;

pub use config::ScheduleConfig;
pub use plan::PollCounts;

use crate::progress::ScaledProgress;
use happyhorse_sandbox::api::JobStatus;
use happyhorse_sandbox::{OutboundPolicy, RequestBudget};
use learn::{JobClass, Record};
use plan::{Place, PollPlan, Turn};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::time::Instant;

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
    /// next poll, or learns from the job and stops watching it if it ended. Returns the job's
    /// progress read on its settled scale ([`crate::ProgressScale`]): what was planned with,
    /// and what a screen may draw.
    pub fn observed(
        &self,
        job_id: &str,
        status: &JobStatus,
        sent: Instant,
        received: Instant,
    ) -> ScaledProgress {
        let progress = self
            .plan()
            .observed(job_id, status, sent, received, SystemTime::now());
        self.changed.notify_waiters();
        progress
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
