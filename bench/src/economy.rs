//! Figure 5: polling economy — how many jobs per minute one account sustains inside its
//! budget of 50 requests per minute, and how long after a job completes the host notices.
//!
//! Jobs of varied length (30–180 s of running, progress reported) are submitted through the
//! component and polled through it; one host-side scheduler spends the account's budget for
//! all of them. Strategies compared in the same run:
//!
//! - `fixed-5s`: poll every job every 5 s (the provider's own example), the baseline;
//! - `fixed-60s`: every 60 s, the interval that fits the budget;
//! - `hint`: the component's `next-poll-ms` under the default policy (5 s to 15 s);
//! - `predictive`: one early probe reads the job's progress, then the host predicts the
//!   completion time from progress and elapsed time (learning the queue time from finished
//!   jobs) and polls once, just after it; polls at a predicted time are protected from
//!   submits and probes, which only take budget the predicted polls leave free.
//!
//! With `--scale S` time runs S times faster: job lengths, queue times, the rate limit's
//! window and every interval are divided by S, so the budget stays 50 requests per emulated
//! minute. Every figure is reported in emulated (realistic) time.

use crate::common;
use crate::stats::Samples;
use anyhow::Result;
use happyhorse_emulator::{Emulator, EmulatorConfig};
use host_demo::api::{ClientConfig, Error as ApiError, JobState, JobStatus};
use host_demo::plugin::Plugin;
use host_demo::runtime::Runtime;
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use video_gen_core::backoff::{
    ProgressReading, implied_queue_ms, parse_timestamp_ms, predict_completion_ms,
};

/// Options of the polling-economy figure.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Time runs this many times faster than real (1 = real time).
    #[arg(long, default_value_t = 10.0)]
    pub scale: f64,
    /// Emulated minutes to run each strategy for.
    #[arg(long, default_value_t = 20.0)]
    pub minutes: f64,
    /// Emulated minutes at the start not counted (the pipeline filling up).
    #[arg(long, default_value_t = 4.0)]
    pub warmup_minutes: f64,
    /// Offered load in jobs per emulated minute; 0 submits as many as the budget allows.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Strategies to run, comma-separated: fixed-5s, fixed-60s, hint, predictive.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fixed-5s,fixed-60s,hint,predictive"
    )]
    pub strategies: Vec<String>,
    /// Shortest and longest running time of a job, emulated seconds.
    #[arg(long, value_delimiter = ',', default_value = "30,180")]
    pub running_secs: Vec<f64>,
    /// Shortest and longest queue time of a job, emulated seconds.
    #[arg(long, value_delimiter = ',', default_value = "1,1")]
    pub queued_secs: Vec<f64>,
    /// The account's budget, requests per (emulated) minute.
    #[arg(long, default_value_t = 50)]
    pub budget: u32,
    /// Predictive: how much detection lag (emulated s) to accept before spending an extra
    /// poll when the queue time, and so the completion time, is uncertain.
    #[arg(long, default_value_t = 4.0)]
    pub lag_allowance_secs: f64,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            scale: 10.0,
            minutes: 20.0,
            warmup_minutes: 4.0,
            rate: 0.0,
            strategies: ["fixed-5s", "fixed-60s", "hint", "predictive"]
                .map(String::from)
                .to_vec(),
            running_secs: vec![30.0, 180.0],
            queued_secs: vec![1.0, 1.0],
            budget: 50,
            lag_allowance_secs: 4.0,
        }
    }
}

const TARGET_JOBS_PER_MIN: f64 = 15.0;
const TARGET_MEDIAN_LAG_S: f64 = 5.0;
/// A poll aimed at a predicted completion goes this long after it (emulated ms), so clock
/// granularity and request latency do not make it land a hair early.
const MARGIN_MS: f64 = 300.0;
/// Probes planned within this long (emulated ms) are protected from submits.
const PROBE_HORIZON_MS: f64 = 20_000.0;
/// A request's slot is held this much longer than the window (wall ms), covering the gap
/// between our clock and the provider's.
const WINDOW_SLACK_WALL_MS: u64 = 20;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Strategy {
    Fixed(f64),
    Hint,
    Predictive,
}

impl Strategy {
    fn parse(name: &str) -> Result<Strategy> {
        Ok(match name {
            "fixed-5s" => Strategy::Fixed(5_000.0),
            "fixed-60s" => Strategy::Fixed(60_000.0),
            "hint" => Strategy::Hint,
            "predictive" => Strategy::Predictive,
            other => {
                if let Some(secs) = other
                    .strip_prefix("fixed-")
                    .and_then(|s| s.strip_suffix('s'))
                {
                    Strategy::Fixed(secs.parse::<f64>()? * 1_000.0)
                } else {
                    anyhow::bail!("unknown strategy {other}")
                }
            }
        })
    }

    fn label(self) -> String {
        match self {
            Strategy::Fixed(5_000.0) => "fixed 5 s (baseline)".into(),
            Strategy::Fixed(ms) => format!("fixed {} s", ms / 1_000.0),
            Strategy::Hint => "component hint, default policy".into(),
            Strategy::Predictive => "predictive (tuned)".into(),
        }
    }
}

/// Run the figure and print it.
pub async fn run(args: Args) -> Result<()> {
    common::heading("5. Polling economy: one account, 50 requests per minute");
    let [run_lo, run_hi] = pair(&args.running_secs)?;
    let [queue_lo, queue_hi] = pair(&args.queued_secs)?;
    println!(
        "jobs: {queue_lo}–{queue_hi} s queued, then {run_lo}–{run_hi} s running (uniform, progress linear); \
         budget {} requests per minute; {} emulated minutes per strategy, first {} not counted; {}",
        args.budget,
        args.minutes,
        args.warmup_minutes,
        if args.rate > 0.0 {
            format!("offered load {} jobs/min", args.rate)
        } else {
            "submitting as many jobs as the budget allows".into()
        }
    );
    if args.scale != 1.0 {
        println!(
            "time-scaled ×{}: job lengths, queue times, the rate window (60 s → {:.1} s) and all \
             intervals divided by {}; figures below are in emulated (real-world) time",
            args.scale,
            60.0 / args.scale,
            args.scale
        );
    }
    let runtime = common::runtime(&common::runtime_options())?;
    println!(
        "{:<32} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8} {:>6} {:>7}",
        "strategy", "jobs/min", "req/min", "req/job", "lag p50", "p90", "max", "429s", "verdict"
    );
    let mut results = Vec::new();
    for name in &args.strategies {
        let strategy = Strategy::parse(name)?;
        let emulator = Emulator::start(EmulatorConfig {
            rate_limit_per_minute: args.budget,
            rate_window: Duration::from_secs_f64(60.0 / args.scale),
            queued_ms_range: Some(ms_range(queue_lo, queue_hi, args.scale)),
            running_ms_range: Some(ms_range(run_lo, run_hi, args.scale)),
            ..EmulatorConfig::default()
        })
        .await?;
        let mut sim = Sim::new(&args, strategy, &runtime, &emulator);
        sim.run().await?;
        let mut outcome = sim.outcome(emulator.count_429());
        let met = outcome.jobs_per_min >= TARGET_JOBS_PER_MIN
            && outcome.lag_s.median() <= TARGET_MEDIAN_LAG_S;
        println!(
            "{:<32} {:>9.2} {:>9.1} {:>8.2} {:>8.1}s {:>7.1}s {:>7.1}s {:>6} {:>7}",
            strategy.label(),
            outcome.jobs_per_min,
            outcome.requests_per_min,
            outcome.requests_per_job,
            outcome.lag_s.median(),
            outcome.lag_s.quantile(0.9),
            outcome.lag_s.max(),
            outcome.count_429,
            if met { "MET" } else { "no" }
        );
        if strategy == Strategy::Predictive {
            let [probe, end] = sim.found;
            println!(
                "{:<32} polls in the window: {} probes ({} found the job done), {} at a predicted \
                 end ({} found it still running)",
                "",
                probe.iter().sum::<usize>(),
                probe[2],
                end.iter().sum::<usize>(),
                end[0] + end[1],
            );
        }
        results.push((strategy, outcome));
        emulator.shutdown().await;
    }
    for (strategy, outcome) in &mut results {
        if *strategy == Strategy::Predictive {
            println!(
                "figure: {:.2} jobs/min (target ≥ {TARGET_JOBS_PER_MIN}; physical limit {:.1}) with median \
                 detection lag {:.1} s (target ≤ {TARGET_MEDIAN_LAG_S} s): {}; {} jobs detected in the window",
                outcome.jobs_per_min,
                f64::from(args.budget) / 2.0,
                outcome.lag_s.median(),
                common::verdict(
                    outcome.jobs_per_min >= TARGET_JOBS_PER_MIN
                        && outcome.lag_s.median() <= TARGET_MEDIAN_LAG_S
                ),
                outcome.lag_s.len(),
            );
        }
    }
    println!();
    Ok(())
}

fn pair(v: &[f64]) -> Result<[f64; 2]> {
    match v {
        [a] => Ok([*a, *a]),
        [a, b] => Ok([a.min(*b), a.max(*b)]),
        _ => anyhow::bail!("give one value or two (lowest,highest)"),
    }
}

fn ms_range(lo_s: f64, hi_s: f64, scale: f64) -> (u64, u64) {
    (
        (lo_s * 1_000.0 / scale).round() as u64,
        (hi_s * 1_000.0 / scale).round() as u64,
    )
}

/// What one strategy achieved inside the measurement window.
struct Outcome {
    jobs_per_min: f64,
    requests_per_min: f64,
    requests_per_job: f64,
    lag_s: Samples,
    count_429: usize,
}

/// Why a job is polled next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// To read its progress: may wait for budget.
    Probe,
    /// At its predicted (or scheduled) completion: its budget is reserved.
    Final,
}

struct Job {
    id: String,
    plugin: Plugin,
    /// Emulated ms since the run started.
    submitted: f64,
    created: Option<f64>,
    /// Readings while running.
    readings: Vec<ProgressReading>,
    next: f64,
    purpose: Purpose,
}

/// The account's request budget as the provider counts it: a sliding window.
struct Budget {
    sent: VecDeque<Instant>,
    limit: usize,
    window: Duration,
}

impl Budget {
    fn expire(&mut self, now: Instant) {
        while self
            .sent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= self.window)
        {
            self.sent.pop_front();
        }
    }

    fn has_slot(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.sent.len() < self.limit
    }

    /// When the next slot frees, if the window is full.
    fn next_free(&self) -> Option<Instant> {
        (self.sent.len() >= self.limit)
            .then(|| self.sent[self.sent.len() - self.limit] + self.window)
    }

    /// Whether one more request now still leaves room for every reserved poll at its
    /// planned time (`reserved`: wall instants, sorted; past ones count as now).
    fn fits_with(&self, now: Instant, reserved: &[Instant]) -> bool {
        for (i, &at) in reserved.iter().enumerate() {
            let at = at.max(now);
            if at.saturating_duration_since(now) >= self.window {
                break;
            }
            let from = at.checked_sub(self.window);
            let in_window = |t: Instant| from.is_none_or(|f| t > f);
            let already = self.sent.iter().filter(|&&t| in_window(t)).count();
            let planned = reserved[..=i]
                .iter()
                .filter(|&&t| in_window(t.max(now)))
                .count();
            // `+ 1`: the request about to be sent, inside every window that ends within
            // one window length from now.
            if already + planned + 1 > self.limit {
                return false;
            }
        }
        true
    }
}

/// What the predictive strategy learns from finished jobs.
#[derive(Default)]
struct Learned {
    /// Queue times recovered from finished jobs, emulated ms.
    queue: VecDeque<f64>,
    /// Total durations (creation to completion), emulated ms.
    total: VecDeque<f64>,
}

const LEARN_WINDOW: usize = 50;

impl Learned {
    fn push(q: &mut VecDeque<f64>, v: f64) {
        if q.len() == LEARN_WINDOW {
            q.pop_front();
        }
        q.push_back(v);
    }

    /// When to read a new job's progress: as late as the shortest jobs seen allow (a late
    /// reading predicts better), early until some have been seen.
    fn first_probe_age(&self) -> f64 {
        if self.total.len() < 3 {
            return 10_000.0;
        }
        let shortest = self.total.iter().copied().fold(f64::INFINITY, f64::min);
        (shortest * 0.9).max(2_000.0)
    }

    /// The range of queue times seen on finished jobs, once there are some.
    fn queue_range(&self) -> Option<(f64, f64)> {
        let lo = self.queue.iter().copied().reduce(f64::min)?;
        let hi = self.queue.iter().copied().reduce(f64::max)?;
        Some((lo, hi))
    }
}

struct Sim<'a> {
    strategy: Strategy,
    scale: f64,
    runtime: &'a Runtime,
    base_url: String,
    config: ClientConfig,
    start: Instant,
    start_unix_ms: f64,
    end: f64,
    warmup: f64,
    rate: f64,
    lag_allowance: f64,
    budget: Budget,
    jobs: Vec<Job>,
    learned: Learned,
    submits: usize,
    next_arrival: f64,
    // Measured inside the window:
    detected: usize,
    requests_in_window: usize,
    lag_s: Samples,
    errors: usize,
    /// Polls in the window by purpose and what they found: [probe, final] × [queued,
    /// running, done].
    found: [[usize; 3]; 2],
}

impl<'a> Sim<'a> {
    fn new(args: &Args, strategy: Strategy, runtime: &'a Runtime, emulator: &Emulator) -> Self {
        let scale = args.scale;
        let base_url = emulator.base_url();
        // No retries inside the component: the scheduler owns the budget, and a hidden
        // retry would spend it behind its back. (None should be needed: no 429 is expected.)
        let mut policy = common::scaled_policy(5_000, 15_000, Duration::from_secs(3_600), scale);
        policy.max_retries = 0;
        let config = common::client_config(&base_url, policy);
        let start = Instant::now();
        let start_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3;
        Sim {
            strategy,
            scale,
            runtime,
            base_url,
            config,
            start,
            start_unix_ms,
            end: args.minutes * 60_000.0,
            warmup: args.warmup_minutes * 60_000.0,
            rate: args.rate,
            lag_allowance: args.lag_allowance_secs * 1_000.0,
            budget: Budget {
                sent: VecDeque::new(),
                limit: args.budget as usize,
                window: Duration::from_secs_f64(60.0 / scale)
                    + Duration::from_millis(WINDOW_SLACK_WALL_MS),
            },
            jobs: Vec::new(),
            learned: Learned::default(),
            submits: 0,
            next_arrival: 0.0,
            detected: 0,
            requests_in_window: 0,
            lag_s: Samples::new(),
            errors: 0,
            found: [[0; 3]; 2],
        }
    }

    /// Emulated ms since the start.
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1e3 * self.scale
    }

    /// The wall instant of emulated time `t`.
    fn wall(&self, t: f64) -> Instant {
        self.start + Duration::from_secs_f64((t.max(0.0) / self.scale) / 1e3)
    }

    /// A provider timestamp as emulated ms since the start.
    fn stamp(&self, text: Option<&str>) -> Option<f64> {
        let unix_ms = parse_timestamp_ms(text?)? as f64;
        Some((unix_ms - self.start_unix_ms) * self.scale)
    }

    fn in_window(&self, t: f64) -> bool {
        t >= self.warmup && t <= self.end
    }

    fn record_request(&mut self, at: f64) {
        self.budget.sent.push_back(Instant::now());
        if self.in_window(at) {
            self.requests_in_window += 1;
        }
    }

    async fn run(&mut self) -> Result<()> {
        loop {
            let now = self.now();
            if now >= self.end {
                return Ok(());
            }
            let wall_now = Instant::now();
            let has_slot = self.budget.has_slot(wall_now);
            // Most overdue first, reserved polls before probes.
            let due = |purpose: Purpose| {
                self.jobs
                    .iter()
                    .enumerate()
                    .filter(|(_, j)| j.purpose == purpose && j.next <= now)
                    .min_by(|a, b| a.1.next.total_cmp(&b.1.next))
                    .map(|(i, _)| i)
            };
            let finals = self.reserved(Purpose::Final, wall_now);
            if has_slot {
                if let Some(i) = due(Purpose::Final) {
                    self.poll(i).await?;
                    continue;
                }
                if let Some(i) = due(Purpose::Probe)
                    && self.budget.fits_with(wall_now, &finals)
                {
                    self.poll(i).await?;
                    continue;
                }
                let submit_due = self.rate <= 0.0 || self.next_arrival <= now;
                if submit_due {
                    // Probes planned soon are protected too; later ones can slip a little
                    // without harm, and reserving for them as well leaves budget idle.
                    let horizon = self.wall(now + PROBE_HORIZON_MS);
                    let mut all = finals.clone();
                    all.extend(
                        self.reserved(Purpose::Probe, wall_now)
                            .into_iter()
                            .filter(|t| *t <= horizon),
                    );
                    all.sort();
                    if self.budget.fits_with(wall_now, &all) {
                        self.submit().await?;
                        continue;
                    }
                }
            }
            // Nothing to do now: sleep until something could change.
            let mut wake = self.wall(self.end);
            for job in &self.jobs {
                wake = wake.min(self.wall(job.next));
            }
            if self.rate > 0.0 {
                wake = wake.min(self.wall(self.next_arrival));
            }
            if let Some(free) = self.budget.next_free() {
                wake = wake.min(free);
            }
            // Budget that frees up may let a blocked probe or submit through.
            if let Some(&oldest) = self.budget.sent.front() {
                wake = wake.min(oldest + self.budget.window);
            }
            let wake = wake.max(wall_now + Duration::from_micros(200));
            tokio::time::sleep_until(wake.into()).await;
        }
    }

    /// Planned poll times of one purpose, as wall instants, sorted.
    fn reserved(&self, purpose: Purpose, now: Instant) -> Vec<Instant> {
        let mut v: Vec<Instant> = self
            .jobs
            .iter()
            .filter(|j| j.purpose == purpose)
            .map(|j| self.wall(j.next).max(now))
            .collect();
        v.sort();
        v
    }

    async fn submit(&mut self) -> Result<()> {
        let mut plugin = self
            .runtime
            .instantiate(common::plugin_options(&self.base_url)?)
            .await?;
        let request = common::request("A horse gallops along a beach at sunset.", Some(5));
        let sent = self.now();
        let result = plugin.submit(&self.config, &request).await;
        self.record_request(sent);
        self.next_arrival = if self.rate > 0.0 {
            self.next_arrival + 60_000.0 / self.rate
        } else {
            sent
        };
        match result {
            Ok(Ok(id)) => {
                self.submits += 1;
                let submitted = self.now();
                let (next, purpose) = match self.strategy {
                    Strategy::Fixed(every) => (submitted + every, Purpose::Final),
                    Strategy::Hint => (
                        submitted
                            + f64::from(
                                self.config
                                    .poll
                                    .as_ref()
                                    .map_or(5_000, |p| p.min_interval_ms),
                            ) * self.scale,
                        Purpose::Final,
                    ),
                    Strategy::Predictive => {
                        (submitted + self.learned.first_probe_age(), Purpose::Probe)
                    }
                };
                self.jobs.push(Job {
                    id,
                    plugin,
                    submitted,
                    created: None,
                    readings: Vec::new(),
                    next,
                    purpose,
                });
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
        let sent = self.now();
        let job = &mut self.jobs[index];
        let result = job.plugin.poll(&self.config, &job.id).await;
        let received = self.now();
        self.record_request(sent);
        let status = match result {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                self.rejected(&e);
                // Try again a little later; the budget decides when.
                self.jobs[index].next = received + 1_000.0;
                return Ok(());
            }
            Err(failure) => anyhow::bail!("poll: {failure}"),
        };
        // The provider saw the request between sending and receiving.
        let at = (sent + received) / 2.0;
        let created = self.stamp(status.created_at.as_deref());
        if self.in_window(at) {
            let purpose = usize::from(self.jobs[index].purpose == Purpose::Final);
            let what = match status.state {
                JobState::Queued => 0,
                JobState::Running(_) => 1,
                _ => 2,
            };
            self.found[purpose][what] += 1;
        }
        let job = &mut self.jobs[index];
        if job.created.is_none() {
            job.created = created;
        }
        match &status.state {
            JobState::Completed(_)
            | JobState::Failed(_)
            | JobState::Cancelled
            | JobState::Expired => {
                let job = self.jobs.swap_remove(index);
                self.finished(job, &status, received);
            }
            JobState::Queued => {
                let job = &mut self.jobs[index];
                let (next, purpose) = plan_queued(self.strategy, job, &status, at, self.scale);
                job.next = next;
                job.purpose = purpose;
            }
            JobState::Running(progress) => {
                let job = &mut self.jobs[index];
                let created = job.created.unwrap_or(job.submitted);
                if let Some(p) = progress.filter(|p| *p > 0.0 && *p < 1.0) {
                    job.readings.push(ProgressReading {
                        age_ms: at - created,
                        progress: p,
                        uncertainty_ms: (received - sent) / 2.0,
                    });
                }
                let (next, purpose) = match self.strategy {
                    Strategy::Fixed(every) => (received + every, Purpose::Final),
                    Strategy::Hint => (
                        received + f64::from(status.next_poll_ms) * self.scale,
                        Purpose::Final,
                    ),
                    Strategy::Predictive => predict_completion_ms(
                        &job.readings,
                        self.learned.queue_range(),
                        self.lag_allowance,
                    )
                    .map_or((received + 5_000.0, Purpose::Probe), |end| {
                        (created + end + MARGIN_MS, Purpose::Final)
                    }),
                };
                let job = &mut self.jobs[index];
                job.next = next.max(received);
                job.purpose = purpose;
            }
        }
        Ok(())
    }

    fn finished(&mut self, job: Job, status: &JobStatus, detected: f64) {
        let created = job.created.unwrap_or(job.submitted);
        let completed = self
            .stamp(status.completed_at.as_deref())
            .unwrap_or(detected);
        let total = completed - created;
        if let Some(q) = job.readings.iter().find_map(|r| implied_queue_ms(r, total)) {
            Learned::push(&mut self.learned.queue, q);
        }
        Learned::push(&mut self.learned.total, total);
        if self.in_window(detected) {
            self.detected += 1;
            self.lag_s
                .push_value(((detected - completed) / 1_000.0).max(0.0));
        }
    }

    fn outcome(&mut self, count_429: usize) -> Outcome {
        let minutes = (self.end - self.warmup) / 60_000.0;
        Outcome {
            jobs_per_min: self.detected as f64 / minutes,
            requests_per_min: self.requests_in_window as f64 / minutes,
            requests_per_job: self.requests_in_window as f64 / self.detected.max(1) as f64,
            lag_s: std::mem::take(&mut self.lag_s),
            count_429,
        }
    }
}

/// The next poll of a job still queued.
fn plan_queued(
    strategy: Strategy,
    job: &Job,
    status: &JobStatus,
    at: f64,
    scale: f64,
) -> (f64, Purpose) {
    match strategy {
        Strategy::Fixed(every) => (at + every, Purpose::Final),
        Strategy::Hint => (at + f64::from(status.next_poll_ms) * scale, Purpose::Final),
        // Too early: read it again once the queue has likely cleared.
        Strategy::Predictive => {
            let age = at - job.created.unwrap_or(job.submitted);
            (at + (age / 2.0).max(1_000.0), Purpose::Probe)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: usize, sent_ago_ms: &[u64], now: Instant) -> Budget {
        Budget {
            sent: sent_ago_ms
                .iter()
                .map(|ms| now - Duration::from_millis(*ms))
                .collect(),
            limit,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn reserved_polls_keep_their_slots() {
        let now = Instant::now() + Duration::from_secs(120);
        // Two sent 50 s and 10 s ago, limit 3: one slot is free now.
        let b = budget(3, &[50_000, 10_000], now);
        assert!(b.fits_with(now, &[]));
        // A poll reserved in 5 s would find the window full if the slot went now.
        assert!(!b.fits_with(now, &[now + Duration::from_secs(5)]));
        // In 15 s the one sent 50 s ago has left the window: both fit.
        assert!(b.fits_with(now, &[now + Duration::from_secs(15)]));
        // Reservations more than a window ahead are not affected by a request now.
        assert!(b.fits_with(now, &[now + Duration::from_secs(61)]));
    }

    #[test]
    fn strategies_parse() {
        assert_eq!(
            Strategy::parse("fixed-5s").unwrap(),
            Strategy::Fixed(5_000.0)
        );
        assert_eq!(
            Strategy::parse("fixed-2.5s").unwrap(),
            Strategy::Fixed(2_500.0)
        );
        assert_eq!(Strategy::parse("predictive").unwrap(), Strategy::Predictive);
        assert!(Strategy::parse("sometimes").is_err());
    }
}
