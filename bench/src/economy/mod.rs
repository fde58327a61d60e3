//! Figure 5: polling economy — how many jobs per minute one account sustains inside its
//! budget of 50 requests per minute, and how long after a job completes the host notices.
//!
//! Jobs of varied length (30–180 s of running, progress reported) are submitted through the
//! component and polled through it, as many as the budget allows. Strategies compared in the
//! same run:
//!
//! - `fixed-5s`: poll every job every 5 s (the provider's own example), the baseline;
//! - `fixed-60s`: every 60 s, the interval that fits the budget;
//! - `hint`: the component's `next-poll-ms` under the default policy (5 s to 15 s);
//! - `pipeline`: `host-demo`'s own pipeline runner (journal, one plugin per shot, downloads)
//!   on a storyboard of as many shots as can finish, its session's `PollScheduler` deciding
//!   every poll: one probe reads a job's progress, the completion is predicted from progress
//!   and age, and one reserved poll goes out just after it.
//!
//! The first three run in a small loop here that spends the same budget (a poll goes out
//! only when the window has room for it and every poll already planned); the last is the
//! product itself. Every strategy is measured the same way, on the emulator's side: a job
//! counts when a poll first finds it ended, and its detection lag is that poll's arrival
//! minus the job's end.
//!
//! With `--scale S` time runs S times faster: job lengths, queue times, the rate limit's
//! window and every interval are divided by S, so the budget stays 50 requests per emulated
//! minute. Every figure is reported in emulated (realistic) time.
//!
//! The figure in parts, one concept each:
//!
//! - [`strategy`]: the strategies as named on the command line, and their labels;
//! - [`sim`]: the small loop that spends the budget for the fixed and hint strategies;
//! - [`pipeline`]: the pipeline strategy, driving `host-demo`'s own runner;
//! - [`outcome`]: what a strategy achieved, measured on the emulator's side, with the
//!   reference observer printed beside it.

mod outcome;
mod pipeline;
mod sim;
mod strategy;

use crate::common;
use anyhow::{Context, Result};
use happyhorse_emulator::{Emulator, EmulatorConfig, JobModel, RenderFarm};
use happyhorse_pipeline::DEFAULT_CONCURRENCY;
use outcome::Outcome;
use sim::Sim;
use std::time::Duration;
use strategy::{Strategy, file_stem};

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
    /// Strategies to run, comma-separated: fixed-5s, fixed-60s (any fixed-Ns), hint,
    /// pipeline, pipeline-line (the previous scheduler), pipeline@A or pipeline@A/B (lag
    /// allowance A s; B s for polls planned without a progress reading).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fixed-5s,fixed-60s,hint,pipeline"
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
    /// Pipeline: shots in flight at once (default: the pipeline's own default).
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// How the emulator's jobs behave: `farm` (a render farm: load-dependent queue, render
    /// time by clip, stragglers, S-curve progress in mixed scales) or `linear` (the old
    /// model: a uniform queue, then progress rising linearly over `--running-secs`).
    #[arg(long, value_enum, default_value_t = Jobs::Farm)]
    pub jobs: Jobs,
    /// Clip lengths the storyboard's shots ask for, seconds, cycled through shot by shot
    /// (the farm renders longer clips for longer).
    #[arg(long, value_delimiter = ',', default_value = "3")]
    pub clip_secs: Vec<u32>,
    /// Resolutions the storyboard's shots ask for, cycled through shot by shot.
    #[arg(long, value_delimiter = ',', default_value = "720p")]
    pub resolutions: Vec<String>,
    /// Pipeline: minutes (emulated) after which the scheduler's counts are noted, and, for
    /// the learning scheduler, the length of a second run that resumes the first's journal
    /// with a fresh scheduler (0: no second run).
    #[arg(long, default_value_t = 3.0)]
    pub second_run_minutes: f64,
    /// Pipeline: how much detection lag (emulated s) the scheduler accepts before spending
    /// an extra poll on a job whose end one reading cannot pin down (default: the
    /// scheduler's own; for polls without a reading, it stays the scheduler's own).
    #[arg(long)]
    pub lag_allowance_secs: Option<f64>,
    /// Pipeline: the scheduler's idle gap (emulated s; 0 turns idle polls off; default: the
    /// scheduler's own).
    #[arg(long)]
    pub idle_gap_secs: Option<f64>,
    /// Write every job of each strategy's (first) run to `DIR/<strategy>.csv`: its id, when
    /// it was created, started rendering and ended, when a poll first found it ended (-1 if
    /// none did), and every poll, in emulated ms from the emulator's start (a job still
    /// queued or rendering when the run stopped has the start or end its farm had planned).
    /// What the figures are computed from, for analyses the benchmark does not print.
    #[arg(long, value_name = "DIR")]
    pub dump_jobs: Option<std::path::PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            scale: 10.0,
            minutes: 20.0,
            warmup_minutes: 4.0,
            strategies: ["fixed-5s", "fixed-60s", "hint", "pipeline"]
                .map(String::from)
                .to_vec(),
            running_secs: vec![30.0, 180.0],
            queued_secs: vec![1.0, 1.0],
            budget: 50,
            concurrency: DEFAULT_CONCURRENCY,
            lag_allowance_secs: None,
            idle_gap_secs: None,
            dump_jobs: None,
            jobs: Jobs::Farm,
            second_run_minutes: 3.0,
            clip_secs: vec![3],
            resolutions: vec!["720p".into()],
        }
    }
}

/// The emulator's job model.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jobs {
    /// A render farm (the emulator's default).
    Farm,
    /// The old linear model.
    Linear,
}

/// The figure's targets (emulated time): jobs per minute, and the detection lag's median and
/// 90th percentile in seconds; the verdict and the reference observer both measure against them.
const TARGET_JOBS_PER_MIN: f64 = 16.0;
const TARGET_MEDIAN_LAG_S: f64 = 5.0;
const TARGET_P90_LAG_S: f64 = 15.0;

/// Run the figure and print it. Every strategy runs at the same time, each on its own
/// emulator (its own account and farm), so they face the same machine load.
pub async fn run(args: Args) -> Result<()> {
    common::heading("5. Polling economy: one account, 50 requests per minute");
    anyhow::ensure!(
        args.scale.is_finite() && args.scale > 0.0,
        "--scale must be a positive number"
    );
    anyhow::ensure!(
        !args.clip_secs.is_empty() && !args.resolutions.is_empty(),
        "--clip-secs and --resolutions need at least one value each"
    );
    let [run_lo, run_hi] = pair(&args.running_secs)?;
    let [queue_lo, queue_hi] = pair(&args.queued_secs)?;
    let mut emulator_config = EmulatorConfig {
        rate_limit_per_minute: args.budget,
        rate_window: Duration::from_secs_f64(60.0 / args.scale),
        ..EmulatorConfig::default()
    };
    match args.jobs {
        Jobs::Farm => {
            emulator_config.job_model = JobModel::RenderFarm(RenderFarm {
                time_scale: 1.0 / args.scale,
                ..RenderFarm::default()
            });
            println!(
                "jobs: the emulator's render farm (12 renderers, load-dependent queue, render time by \
                 clip, 10 % stragglers, S-curve progress in mixed scales); clips {:?} s at {:?}",
                args.clip_secs, args.resolutions
            );
        }
        Jobs::Linear => {
            emulator_config.job_model = JobModel::Linear;
            emulator_config.queued_ms_range = Some(ms_range(queue_lo, queue_hi, args.scale));
            emulator_config.running_ms_range = Some(ms_range(run_lo, run_hi, args.scale));
            println!(
                "jobs (LINEAR model): {queue_lo}–{queue_hi} s queued, then {run_lo}–{run_hi} s \
                 running (uniform, progress linear)"
            );
        }
    }
    println!(
        "budget {} requests per minute; {} emulated minutes per strategy, first {} not counted; \
         strategies run at the same time, one emulator each; submitting as many jobs as the \
         budget allows (pipeline: {} shots in flight at most)",
        args.budget, args.minutes, args.warmup_minutes, args.concurrency,
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
    let strategies = args
        .strategies
        .iter()
        .map(|name| Strategy::parse(name))
        .collect::<Result<Vec<_>>>()?;
    if let Some(dir) = &args.dump_jobs {
        // Before the runs, so a folder that cannot be made does not cost a run's minutes.
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let runs = strategies.iter().map(|&strategy| {
        let (args, config, runtime) = (&args, emulator_config.clone(), &runtime);
        async move {
            match strategy {
                Strategy::Pipeline { learn, allowance } => {
                    pipeline::pipeline(args, config, learn, allowance).await
                }
                _ => {
                    let emulator = Emulator::start(config).await?;
                    Sim::new(args, strategy, runtime, &emulator).run().await?;
                    let outcome = Outcome::measure(&emulator, args);
                    emulator.shutdown().await;
                    Ok(outcome)
                }
            }
        }
    });
    let outcomes = futures::future::join_all(runs).await;
    println!(
        "{:<32} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8} {:>6} {:>7}",
        "strategy", "jobs/min", "req/min", "req/job", "lag p50", "p90", "max", "429s", "verdict"
    );
    for (index, (strategy, outcome)) in strategies.iter().zip(outcomes).enumerate() {
        let mut outcome = outcome.with_context(|| strategy.label())?;
        if let (Some(dir), Some(csv)) = (&args.dump_jobs, &outcome.jobs_csv) {
            // Numbered in the order given: two strategies with one label keep both files.
            let path = dir.join(format!("{index:02}-{}.csv", file_stem(&strategy.label())));
            if let Err(e) = std::fs::write(&path, csv) {
                // The figures are still worth printing.
                eprintln!("warning: writing {}: {e}", path.display());
            }
        }
        let met = outcome.jobs_per_min >= TARGET_JOBS_PER_MIN
            && outcome.lag_s.median() <= TARGET_MEDIAN_LAG_S
            && outcome.lag_s.quantile(0.9) <= TARGET_P90_LAG_S
            && outcome.count_429 == 0;
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
        println!(
            "    {} jobs detected in the window; busiest 60 s window at the server: {} requests; \
             polls per job that found it unfinished: {:.2} queued, {:.2} rendering",
            outcome.lag_s.len(),
            outcome.busiest_window,
            outcome.early_polls.0,
            outcome.early_polls.1
        );
        if let Some(bound) = &outcome.bound {
            println!("    {}", bound.describe());
        }
        for (run, early) in [("run", outcome.counts), ("second run", outcome.second)] {
            if let Some(e) = early {
                println!(
                    "    {run}: started knowing {} finished jobs; in its first {} min: {} polls found a job \
                     still running, {} found one ended ({:.2} per ended), {} planned by the learner, {} sent early on an idle budget; 429s so far: {}; longest grant-to-answer {} ms",
                    e.learned_at_start,
                    args.second_run_minutes,
                    e.counts.found_running,
                    e.counts.found_ended,
                    e.counts.found_running as f64 / e.counts.found_ended.max(1) as f64,
                    e.counts.planned_by_learner,
                    e.counts.idle,
                    e.total_429,
                    e.longest_hold.as_millis(),
                );
            }
        }
    }
    println!();
    Ok(())
}

/// The `i`th job's clip: length and resolution, each cycled through its list.
fn clip(args: &Args, i: usize) -> (u32, &str) {
    (
        args.clip_secs[i % args.clip_secs.len().max(1)],
        args.resolutions[i % args.resolutions.len().max(1)].as_str(),
    )
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
