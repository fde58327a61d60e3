//! The baselines' loop: spends the budget for the fixed and hint strategies, one request at
//! a time, polling each job on its strategy's timer.

use super::strategy::Strategy;
use super::{Args, clip};
use crate::common;
use anyhow::Result;
use happyhorse_emulator::Emulator;
use happyhorse_sandbox::api::{ClientConfig, Error as ApiError, JobState};
use happyhorse_sandbox::{Plugin, RequestBudget, Runtime};
use std::time::Duration;
use tokio::time::Instant;

/// A request's slot is held this much longer than the window (wall ms), covering the gap
/// between our clock and the provider's (the budget counts it until answered).
const WINDOW_SLACK_WALL_MS: u64 = 2;

/// A job a baseline loop watches.
struct Job {
    id: String,
    plugin: Plugin,
    next: Instant,
}

/// The baselines' loop: one request at a time, each job polled on its strategy's timer, as
/// many jobs submitted as the budget allows. A poll goes out when due (the window's room for
/// it was kept); a submit only if the window still has room for every poll already planned.
pub(super) struct Sim<'a> {
    args: &'a Args,
    submitted: usize,
    strategy: Strategy,
    scale: f64,
    runtime: &'a Runtime,
    base_url: String,
    config: ClientConfig,
    end: Instant,
    budget: RequestBudget,
    jobs: Vec<Job>,
    errors: usize,
}

impl<'a> Sim<'a> {
    pub(super) fn new(
        args: &'a Args,
        strategy: Strategy,
        runtime: &'a Runtime,
        emulator: &Emulator,
    ) -> Self {
        let scale = args.scale;
        let base_url = emulator.base_url();
        // No retries inside the component: the loop owns the budget, and a hidden retry
        // would spend it behind its back. (None should be needed: no 429 is expected.)
        let mut policy = common::scaled_policy(5_000, 15_000, Duration::from_secs(3_600), scale);
        policy.max_retries = 0;
        let config = common::client_config(&base_url, policy);
        let window =
            Duration::from_secs_f64(60.0 / scale) + Duration::from_millis(WINDOW_SLACK_WALL_MS);
        Sim {
            args,
            submitted: 0,
            strategy,
            scale,
            runtime,
            base_url,
            config,
            end: Instant::now() + Duration::from_secs_f64(args.minutes * 60.0 / scale),
            budget: RequestBudget::with_window(args.budget, args.budget, window),
            jobs: Vec::new(),
            errors: 0,
        }
    }

    /// When a job is polled again, `hint_ms` being the component's suggestion.
    fn interval(&self, hint_ms: u32) -> Duration {
        match self.strategy {
            Strategy::Fixed(every_ms) => Duration::from_secs_f64(every_ms / 1e3 / self.scale),
            _ => Duration::from_millis(u64::from(hint_ms)),
        }
    }

    pub(super) async fn run(mut self) -> Result<()> {
        loop {
            let now = Instant::now();
            if now >= self.end {
                return Ok(());
            }
            let due = self
                .jobs
                .iter()
                .enumerate()
                .filter(|(_, j)| j.next <= now)
                .min_by_key(|(_, j)| j.next)
                .map(|(i, _)| i);
            if let Some(i) = due {
                self.poll(i).await?;
                continue;
            }
            let mut planned: Vec<Instant> = self.jobs.iter().map(|j| j.next).collect();
            planned.sort();
            if self.budget.fits(now, &planned) {
                self.submit().await?;
                continue;
            }
            // Nothing to do now: sleep until something could change.
            let mut wake = self.end;
            for job in &self.jobs {
                wake = wake.min(job.next);
            }
            if let Some(expiry) = self.budget.next_expiry() {
                wake = wake.min(expiry);
            }
            tokio::time::sleep_until(wake.max(now + Duration::from_micros(200))).await;
        }
    }

    async fn submit(&mut self) -> Result<()> {
        let mut plugin = self
            .runtime
            .instantiate(common::options_allowing(&self.base_url))
            .await?;
        let (secs, resolution) = clip(self.args, self.submitted);
        self.submitted += 1;
        let mut request = common::t2v_of("A horse gallops along a beach at sunset.", Some(secs));
        request.resolution = Some(resolution.to_string());
        // Held until the answer: the server counted the submit before it answered.
        let grant = self.budget.acquire().await;
        let submitted = plugin.submit(&self.config, &request).await;
        drop(grant);
        match submitted {
            Ok(Ok(id)) => {
                let min = self.config.poll.as_ref().map_or(500, |p| p.min_interval_ms);
                let next = Instant::now() + self.interval(min);
                self.jobs.push(Job { id, plugin, next });
            }
            Ok(Err(e)) => self.rejected(&e),
            Err(failure) => anyhow::bail!("submit: {failure}"),
        }
        Ok(())
    }

    fn rejected(&mut self, e: &ApiError) {
        self.errors += 1;
        if self.errors <= 3 {
            eprintln!("request refused: {e:?}");
        }
    }

    async fn poll(&mut self, index: usize) -> Result<()> {
        let grant = self.budget.acquire().await;
        let job = &mut self.jobs[index];
        let result = job.plugin.poll(&self.config, &job.id).await;
        drop(grant);
        let received = Instant::now();
        let status = match result {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                self.rejected(&e);
                // Try again a little later; the budget decides when.
                self.jobs[index].next = received + Duration::from_secs_f64(1.0 / self.scale);
                return Ok(());
            }
            Err(failure) => anyhow::bail!("poll: {failure}"),
        };
        match status.state {
            JobState::Queued | JobState::Running(_) => {
                self.jobs[index].next = received + self.interval(status.next_poll_ms);
            }
            _ => {
                self.jobs.swap_remove(index);
            }
        }
        Ok(())
    }
}
