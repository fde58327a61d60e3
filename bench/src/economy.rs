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

use crate::bound::{self, Life};
use crate::common;
use crate::stats::Samples;
use anyhow::{Context, Result};
use happyhorse_emulator::{Emulator, EmulatorConfig, JobModel, RenderFarm};
use happyhorse_pipeline::ScheduleConfig;
use happyhorse_pipeline::{ConnectOptions, Session};
use happyhorse_pipeline::{
    DEFAULT_CONCURRENCY, Journal, LogObserver, Plan, Runner, RunnerOptions, Storyboard, check_plan,
};
use happyhorse_sandbox::Plugin;
use happyhorse_sandbox::RequestBudget;
use happyhorse_sandbox::Runtime;
use happyhorse_sandbox::SandboxPolicy;
use happyhorse_sandbox::api::{ClientConfig, Error as ApiError, JobState};
use std::fmt::Write as _;
use std::time::Duration;
use tokio::time::Instant;

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

const TARGET_JOBS_PER_MIN: f64 = 16.0;
const TARGET_MEDIAN_LAG_S: f64 = 5.0;
const TARGET_P90_LAG_S: f64 = 15.0;
/// A request's slot is held this much longer than the window (wall ms), covering the gap
/// between our clock and the provider's (the budget counts it until answered).
const WINDOW_SLACK_WALL_MS: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Strategy {
    Fixed(f64),
    Hint,
    /// The pipeline; `learn: false` is the previous scheduler (a line through readings);
    /// `allowance` its lag allowances, if not the default.
    Pipeline {
        learn: bool,
        allowance: Option<Allowance>,
    },
}

/// A learning scheduler's lag allowances, in emulated time: `pipeline@8` (8 s; for polls
/// planned without a progress reading, the default) or `pipeline@8/14` (for those, 14 s).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Allowance {
    /// `ScheduleConfig::lag_allowance`.
    later: Duration,
    /// `ScheduleConfig::blind_lag_allowance`, if not the default.
    blind: Option<Duration>,
}

impl Allowance {
    fn parse(text: &str) -> Result<Allowance> {
        let secs = |text: &str| {
            text.parse()
                .ok()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .with_context(|| format!("{text}: a lag allowance in seconds"))
        };
        Ok(match text.split_once('/') {
            Some((later, blind)) => Allowance {
                later: secs(later)?,
                blind: Some(secs(blind)?),
            },
            None => Allowance {
                later: secs(text)?,
                blind: None,
            },
        })
    }
}

impl Strategy {
    fn parse(name: &str) -> Result<Strategy> {
        Ok(match name {
            "fixed-5s" => Strategy::Fixed(5_000.0),
            "fixed-60s" => Strategy::Fixed(60_000.0),
            "hint" => Strategy::Hint,
            "pipeline" => Strategy::Pipeline {
                learn: true,
                allowance: None,
            },
            "pipeline-line" => Strategy::Pipeline {
                learn: false,
                allowance: None,
            },
            other => {
                if let Some(allowance) = other.strip_prefix("pipeline@") {
                    Strategy::Pipeline {
                        learn: true,
                        allowance: Some(Allowance::parse(allowance)?),
                    }
                } else if let Some(secs) = other
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
            Strategy::Pipeline {
                learn: true,
                allowance: None,
            } => "pipeline, learning scheduler".into(),
            Strategy::Pipeline {
                learn: true,
                allowance: Some(Allowance { later, blind }),
            } => match blind {
                Some(blind) => format!(
                    "learning, allowance {} s, blind {} s",
                    later.as_secs_f64(),
                    blind.as_secs_f64()
                ),
                None => format!("learning, allowance {} s", later.as_secs_f64()),
            },
            Strategy::Pipeline { learn: false, .. } => "pipeline, previous scheduler".into(),
        }
    }
}

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
                    pipeline(args, config, learn, allowance).await
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
                     still running, {} found one ended ({:.2} per ended), {} planned by the learner; 429s so far: {}; longest grant-to-answer {} ms",
                    e.learned_at_start,
                    args.second_run_minutes,
                    e.counts.found_running,
                    e.counts.found_ended,
                    e.counts.found_running as f64 / e.counts.found_ended.max(1) as f64,
                    e.counts.planned_by_learner,
                    e.total_429,
                    e.longest_hold.as_millis(),
                );
            }
        }
    }
    println!();
    Ok(())
}

/// A strategy's label as a file name: letters and digits kept, every run of anything else
/// one `-` (`learning, allowance 4.5 s` → `learning-allowance-4-5-s`).
fn file_stem(label: &str) -> String {
    label
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// What one strategy achieved inside the measurement window, as the emulator saw it.
struct Outcome {
    jobs_per_min: f64,
    requests_per_min: f64,
    requests_per_job: f64,
    lag_s: Samples,
    count_429: usize,
    /// The most API requests any one rate window held, by arrival at the server.
    busiest_window: usize,
    /// Polls per counted job that found it unfinished: before its render began, during it.
    early_polls: (f64, f64),
    /// The reference observer's best on the same jobs (farm model, one clip class only).
    bound: Option<Bound>,
    /// A pipeline's scheduler counts early in its (first) run.
    counts: Option<Early>,
    /// The same for a second run resuming the first's journal.
    second: Option<Early>,
    /// Every job, one CSV line each, when `Args::dump_jobs` asks for them.
    jobs_csv: Option<String>,
}

impl Outcome {
    /// Jobs first seen ended, and API requests, inside the window (emulated time).
    fn measure(emulator: &Emulator, args: &Args) -> Outcome {
        let emulated_ms = |d: Duration| d.as_secs_f64() * 1e3 * args.scale;
        let (from, to) = (args.warmup_minutes * 60_000.0, args.minutes * 60_000.0);
        let inside = |d: Duration| (from..=to).contains(&emulated_ms(d));
        let mut lag_s = Samples::new();
        for job in emulator.job_timings() {
            if let Some(seen) = job.first_seen_ended_at.filter(|&t| inside(t)) {
                lag_s.push_value(emulated_ms(seen.saturating_sub(job.ended_at)) / 1e3);
            }
        }
        let log = emulator.requests();
        let timings = emulator.job_timings();
        let mut polls: std::collections::HashMap<&str, Vec<Duration>> = Default::default();
        for r in &log {
            if let Some(id) = r.path.strip_prefix("/v1/jobs/") {
                polls.entry(id).or_default().push(r.at);
            }
        }
        let counted: Vec<_> = timings
            .iter()
            .filter(|job| job.first_seen_ended_at.is_some_and(inside))
            .collect();
        // Every poll of a counted job, and those that found it still queued or rendering.
        let (mut all_polls, mut queued, mut rendering) = (0usize, 0usize, 0usize);
        for job in &counted {
            for &at in polls.get(job.id.as_str()).into_iter().flatten() {
                all_polls += 1;
                if at < job.started_at {
                    queued += 1;
                } else if at < job.ended_at {
                    rendering += 1;
                }
            }
        }
        // Only when asked for: one line per job the emulator made.
        let jobs_csv = args.dump_jobs.is_some().then(|| {
            let mut csv = String::from(
                "job_id,created_ms,started_ms,ended_ms,first_seen_ended_ms,polls_ms\n",
            );
            for job in &timings {
                let polls_ms: Vec<String> = polls
                    .get(job.id.as_str())
                    .into_iter()
                    .flatten()
                    .map(|&at| format!("{:.0}", emulated_ms(at)))
                    .collect();
                let _ = writeln!(
                    csv,
                    "{},{:.0},{:.0},{:.0},{:.0},{}",
                    job.id,
                    emulated_ms(job.created_at),
                    emulated_ms(job.started_at),
                    emulated_ms(job.ended_at),
                    job.first_seen_ended_at.map_or(-1.0, emulated_ms),
                    polls_ms.join(" ")
                );
            }
            csv
        });
        let per_job = |n: usize| n as f64 / counted.len().max(1) as f64;
        let lives: Vec<Life> = counted
            .iter()
            .map(|job| Life {
                created: emulated_ms(job.created_at) / 1e3,
                started: emulated_ms(job.started_at) / 1e3,
                ended: emulated_ms(job.ended_at) / 1e3,
            })
            .collect();
        let queue_waits = timings
            .iter()
            .map(|job| emulated_ms(job.started_at.saturating_sub(job.created_at)) / 1e3)
            .collect();
        let arrivals: Vec<Duration> = log
            .iter()
            .filter(|r| r.path.starts_with("/v1/"))
            .map(|r| r.at)
            .collect();
        let mut arrivals = arrivals;
        arrivals.sort();
        let requests = arrivals.iter().filter(|&&at| inside(at)).count();
        let window = Duration::from_secs_f64(60.0 / args.scale);
        let minutes = (to - from) / 60_000.0;
        Outcome {
            jobs_per_min: lag_s.len() as f64 / minutes,
            requests_per_min: requests as f64 / minutes,
            requests_per_job: requests as f64 / lag_s.len().max(1) as f64,
            lag_s,
            count_429: emulator.count_429(),
            busiest_window: busiest_window(&arrivals, window),
            early_polls: (per_job(queued), per_job(rendering)),
            bound: Bound::of(args, &lives, queue_waits, per_job(all_polls)),
            counts: None,
            second: None,
            jobs_csv,
        }
    }
}

/// The reference observer's lag on a strategy's own jobs (see [`bound`]), at the polls per job
/// the strategy spent and at what the throughput target leaves, blind and knowing each start:
/// the policy whose worse lag, against its target, is least (not the least p50 or p90 alone).
struct Bound {
    /// The strategy's own polls per counted job.
    polls_per_job: f64,
    /// The polls per job the throughput target leaves inside the budget.
    target_polls: f64,
    /// The observer's best at most at the strategy's polls per job.
    at_own: Option<(bound::Policy, bound::Replay)>,
    /// At the polls per job the throughput target leaves inside the budget.
    at_target: Option<(bound::Policy, bound::Replay)>,
    /// The same, knowing when each render began.
    at_target_start_known: Option<(bound::Policy, bound::Replay)>,
}

impl Bound {
    /// `None` unless the jobs come from the farm, in one clip class.
    fn of(args: &Args, lives: &[Life], queue_waits: Vec<f64>, polls_per_job: f64) -> Option<Bound> {
        let ([clip], [resolution]) = (args.clip_secs.as_slice(), args.resolutions.as_slice())
        else {
            return None;
        };
        if args.jobs != Jobs::Farm || lives.is_empty() {
            return None;
        }
        let farm = RenderFarm::default();
        let model = bound::Model {
            median_render: farm.median_render_secs(f64::from(*clip), resolution == "1080p"),
            straggler_share: farm.straggler_share,
            queue_waits,
        };
        let targets = (TARGET_MEDIAN_LAG_S, TARGET_P90_LAG_S);
        let target_polls = f64::from(args.budget) / TARGET_JOBS_PER_MIN - 1.0;
        let best = |start_known, polls| bound::best(lives, &model, start_known, polls, targets);
        Some(Bound {
            polls_per_job,
            target_polls,
            at_own: best(false, polls_per_job),
            at_target: best(false, target_polls),
            at_target_start_known: best(true, target_polls),
        })
    }

    fn describe(&self) -> String {
        let lag = |r: Option<(bound::Policy, bound::Replay)>| {
            r.map_or("no policy polls that little".into(), |(p, r)| {
                format!(
                    "{:.2} polls/job, lag p50 {:.1}s, p90 {:.1}s ({p})",
                    r.polls_per_job, r.lag_p50, r.lag_p90
                )
            })
        };
        format!(
            "reference observer on these jobs (knows the farm's model; a reference, not a bound): \
             at this strategy's \
             {:.2} polls/job: {}; at the {:.2} that {} jobs/min leaves: {}; and knowing each \
             render's start: {}",
            self.polls_per_job,
            lag(self.at_own),
            self.target_polls,
            TARGET_JOBS_PER_MIN,
            lag(self.at_target),
            lag(self.at_target_start_known),
        )
    }
}

/// The pipeline strategy: `host-demo`'s runner on a storyboard with more shots than can
/// finish, in a session whose clock (budget window, scheduler timings) runs `scale` times
/// faster, stopped after the run's length.
async fn pipeline(
    args: &Args,
    emulator: EmulatorConfig,
    learn: bool,
    allowance: Option<Allowance>,
) -> Result<Outcome> {
    let scale = args.scale;
    let mut schedule = ScheduleConfig {
        learn,
        ..ScheduleConfig::default()
    };
    let from_flag = args
        .lag_allowance_secs
        .map(|secs| {
            Duration::try_from_secs_f64(secs)
                .context("--lag-allowance-secs must be a non-negative number of seconds")
        })
        .transpose()?
        .map(|later| Allowance { later, blind: None });
    if let Some(Allowance { later, blind }) = allowance.or(from_flag) {
        schedule.lag_allowance = later;
        if let Some(blind) = blind {
            schedule.blind_lag_allowance = blind;
        }
    }
    let mut session = Session::open(ConnectOptions {
        emulator,
        schedule: Some(schedule.scaled(scale)),
        rate_window: Duration::from_secs_f64(60.0 / scale),
        sandbox: SandboxPolicy {
            requests_per_minute: args.budget,
            ..SandboxPolicy::default()
        },
        runtime: common::runtime_options(),
        ..ConnectOptions::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    // More shots than the budget could finish in the run, so submits never run out.
    let shots = (args.minutes * f64::from(args.budget) / 2.0).ceil() as usize + 10;
    let mut toml = String::new();
    for i in 0..shots {
        let (secs, resolution) = clip(args, i);
        write!(
            toml,
            "\n[[shot]]\nname = \"shot-{i:04}\"\nprompt = \"A horse gallops along a beach at sunset, take {i}.\"\n\
             duration = {secs}\nresolution = \"{resolution}\"\n"
        )?;
    }
    let path = dir.path().join("economy.toml");
    std::fs::write(&path, toml)?;
    let storyboard = Storyboard::load(&path)?;
    let plan = check_plan(&session, &storyboard)
        .await?
        .map_err(|problems| {
            anyhow::anyhow!("the generated storyboard was refused: {problems:?}")
        })?;
    let out_dir = dir.path().join("out");
    let first = Duration::from_secs_f64(args.second_run_minutes * 60.0 / scale);
    let (outcome, early) =
        run_pipeline(args, &session, &plan, &out_dir, args.minutes, first).await?;
    let mut outcome = outcome;
    outcome.counts = Some(early);
    if args.second_run_minutes > 0.0 && learn {
        // The run was interrupted; a new one (a new process: a scheduler that has seen
        // nothing) resumes the same storyboard from the journal, which kept what the first
        // learned. The account's window carries over (same budget).
        session.scheduler = std::sync::Arc::new(happyhorse_pipeline::PollScheduler::new(
            session.sandbox.budget().clone(),
            schedule.scaled(scale),
        ));
        let (_, second) = run_pipeline(
            args,
            &session,
            &plan,
            &out_dir,
            args.second_run_minutes,
            first,
        )
        .await?;
        outcome.second = Some(second);
    }
    Ok(outcome)
}

/// What a stretch of a pipeline run showed: its scheduler's counts at `early` into the
/// run, and how many jobs it knew when it started.
#[derive(Debug, Clone, Copy)]
struct Early {
    learned_at_start: usize,
    /// 429s the emulator counted by the end of the run.
    total_429: usize,
    /// The longest any request was counted from its grant to its answer (wall time): the
    /// margin a budget counting from grants alone would have needed.
    longest_hold: Duration,
    counts: happyhorse_pipeline::PollCounts,
}

/// One run of the pipeline on `plan`'s journal in `out_dir`, `minutes` (emulated) long.
async fn run_pipeline(
    args: &Args,
    session: &Session,
    plan: &Plan,
    out_dir: &std::path::Path,
    minutes: f64,
    early: Duration,
) -> Result<(Outcome, Early)> {
    let scale = args.scale;
    let journal = Journal::open(out_dir, &session.endpoint())?;
    journal.reconcile(&plan.journal_rows())?;
    let progress = LogObserver::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = Runner::new(
        session,
        &journal,
        &progress,
        RunnerOptions {
            concurrency: args.concurrency,
            poll_interval: None,
            deadline: Duration::from_secs(3_600),
            out_dir: out_dir.to_path_buf(),
        },
        stopped,
    )?;
    let length = Duration::from_secs_f64(minutes * 60.0 / scale);
    let learned_at_start = journal.learned().map_or(0, |r| r.len());
    let stopper = async {
        tokio::time::sleep(early.min(length)).await;
        let counts = session.scheduler.counts();
        tokio::time::sleep(length.saturating_sub(early)).await;
        let _ = stop.send(true);
        counts
    };
    let (errors, counts) = tokio::join!(runner.run(plan), stopper);
    if let Some((shot, error)) = errors.first() {
        anyhow::bail!(
            "{} shot(s) stopped on errors, first {shot}: {error:#}",
            errors.len()
        );
    }
    let emulator = session
        .emulator
        .as_ref()
        .context("the session started no emulator")?;
    Ok((
        Outcome::measure(emulator, args),
        Early {
            learned_at_start,
            total_429: emulator.count_429(),
            longest_hold: session.sandbox.budget().longest_hold(),
            counts,
        },
    ))
}
/// The most arrivals any half-open window of length `window` holds (`arrivals` in the
/// server's order, so sorted).
fn busiest_window(arrivals: &[Duration], window: Duration) -> usize {
    let mut from = 0;
    let mut most = 0;
    for (i, &at) in arrivals.iter().enumerate() {
        while at.saturating_sub(arrivals[from]) >= window {
            from += 1;
        }
        most = most.max(i + 1 - from);
    }
    most
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

/// A job a baseline loop watches.
struct Job {
    id: String,
    plugin: Plugin,
    next: Instant,
}

/// The baselines' loop: one request at a time, each job polled on its strategy's timer, as
/// many jobs submitted as the budget allows. A poll goes out when due (the window's room for
/// it was kept); a submit only if the window still has room for every poll already planned.
struct Sim<'a> {
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
    fn new(args: &'a Args, strategy: Strategy, runtime: &'a Runtime, emulator: &Emulator) -> Self {
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

    async fn run(mut self) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_becomes_a_file_name_and_nothing_else() {
        assert_eq!(
            file_stem("learning, allowance 4.5 s, blind 11 s"),
            "learning-allowance-4-5-s-blind-11-s"
        );
        assert_eq!(file_stem("../../etc/passwd"), "etc-passwd");
        assert_eq!(file_stem("fixed 5 s (baseline)"), "fixed-5-s-baseline");
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
        assert_eq!(
            Strategy::parse("pipeline").unwrap(),
            Strategy::Pipeline {
                learn: true,
                allowance: None
            }
        );
        assert_eq!(
            Strategy::parse("pipeline@8").unwrap(),
            Strategy::Pipeline {
                learn: true,
                allowance: Some(Allowance {
                    later: Duration::from_secs(8),
                    blind: None
                })
            }
        );
        assert_eq!(
            Strategy::parse("pipeline@7/10.5").unwrap(),
            Strategy::Pipeline {
                learn: true,
                allowance: Some(Allowance {
                    later: Duration::from_secs(7),
                    blind: Some(Duration::from_millis(10_500))
                })
            }
        );
        for bad in [
            "pipeline@-1",
            "pipeline@7/x",
            "pipeline@inf",
            "pipeline@/3",
            "pipeline@1e300/5",
        ] {
            assert!(Strategy::parse(bad).is_err(), "{bad}");
        }
        assert!(Strategy::parse("sometimes").is_err());
    }
}
