//! Figure 6: lone jobs — one job at a time with the account's budget idle, as a one-shot
//! `generate` runs: how soon after each job ends the host sees it, against a plain poller
//! that asks every 5 s.
//!
//! Each world is an emulator setting (seeded), and both strategies run at the same time,
//! each on its own emulator (its own account and farm), the jobs one after another:
//!
//! - `pipeline`: `host-demo generate`'s own path (`happyhorse_pipeline::generate`: the
//!   runner, its session's scheduler deciding every poll, the idle budget spent on polling
//!   every `idle_gap`);
//! - `planned`: the same with `idle_gap` off — the scheduler's plan alone, as before idle
//!   polls (the learner's predictions, a first probe at 10 s);
//! - `fixed-5s`: submit, then poll every 5 s through the component until the job ends.
//!
//! Measured on the emulator's side, as the economy figure does: a job's detection lag is the
//! arrival of the first poll that found it ended minus its end; requests per job count every
//! API request the emulator received. With `--scale S` time runs S times faster (the farm,
//! queue times, the rate window and every interval); figures are in emulated time.

use crate::common;
use crate::stats::Samples;
use anyhow::{Context, Result};
use happyhorse_emulator::{Emulator, EmulatorConfig, JobModel, RenderFarm};
use happyhorse_pipeline::{ConnectOptions, LogObserver, ScheduleConfig, Session};
use happyhorse_sandbox::SandboxPolicy;
use happyhorse_sandbox::api::JobState;
use std::time::{Duration, Instant};

/// Options of the lone-jobs figure.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Time runs this many times faster than real (1 = real time).
    #[arg(long, default_value_t = 20.0)]
    pub scale: f64,
    /// Jobs per world and strategy, one after another.
    #[arg(long, default_value_t = 10)]
    pub jobs: usize,
    /// Seeds the worlds' draws.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            scale: 20.0,
            jobs: 10,
            seed: 7,
        }
    }
}

/// The targets: median and largest detection lag of a lone job, emulated seconds.
const TARGET_MEDIAN_LAG_S: f64 = 3.0;
const TARGET_MAX_LAG_S: f64 = 6.0;

/// One world: how the provider's jobs behave, and the clip every job asks for.
struct World {
    name: &'static str,
    config: EmulatorConfig,
    clip_secs: u32,
    resolution: &'static str,
}

fn worlds(args: &Args) -> Vec<World> {
    let farm = |dispatch_secs: u64, straggler_share: f64| {
        JobModel::RenderFarm(RenderFarm {
            seed: args.seed,
            dispatch_median: Duration::from_secs(dispatch_secs),
            straggler_share,
            time_scale: 1.0 / args.scale,
            ..RenderFarm::default()
        })
    };
    let base = EmulatorConfig {
        rate_limit_per_minute: 50,
        rate_window: Duration::from_secs_f64(60.0 / args.scale),
        ..EmulatorConfig::default()
    };
    let ms = |secs: f64| (secs * 1e3 / args.scale) as u64;
    vec![
        World {
            name: "farm, 3 s 720p clips",
            config: EmulatorConfig {
                job_model: farm(6, 0.1),
                ..base.clone()
            },
            clip_secs: 3,
            resolution: "720p",
        },
        World {
            name: "farm, 10 s 1080p clips, heavy stragglers",
            config: EmulatorConfig {
                job_model: farm(6, 0.4),
                ..base.clone()
            },
            clip_secs: 10,
            resolution: "1080p",
        },
        World {
            name: "farm, 5 s 720p, a 30 s median queue",
            config: EmulatorConfig {
                job_model: farm(30, 0.1),
                ..base.clone()
            },
            clip_secs: 5,
            resolution: "720p",
        },
        World {
            name: "linear, 0–60 s queue, 20–120 s render",
            config: EmulatorConfig {
                job_model: JobModel::Linear,
                queued_ms_range: Some((ms(0.0), ms(60.0))),
                running_ms_range: Some((ms(20.0), ms(120.0))),
                ..base
            },
            clip_secs: 5,
            resolution: "720p",
        },
    ]
}

/// What one strategy achieved on one world.
struct Outcome {
    lag_s: Samples,
    requests_per_job: f64,
    count_429: usize,
    /// Emulated minutes from the first submit to the last job seen ended.
    minutes: f64,
}

/// Run the figure and print it.
pub async fn run(args: Args) -> Result<()> {
    common::heading("6. Lone jobs: one at a time, the budget idle");
    anyhow::ensure!(
        args.scale.is_finite() && args.scale > 0.0 && args.jobs > 0,
        "--scale must be a positive number and --jobs at least 1"
    );
    println!(
        "{} jobs per world and strategy, one after another; both strategies at once, one \
         emulator each; time-scaled ×{} (figures in emulated time); targets: lag median ≤ \
         {TARGET_MEDIAN_LAG_S} s, max ≤ {TARGET_MAX_LAG_S} s, never behind a 5 s poller",
        args.jobs, args.scale
    );
    println!(
        "{:<42} {:<9} {:>5} {:>8} {:>8} {:>8} {:>5} {:>8}",
        "world", "strategy", "jobs", "lag p50", "lag max", "req/job", "429s", "minutes"
    );
    let mut met = true;
    for world in worlds(&args) {
        let (pipeline, planned, fixed) = tokio::join!(
            strategy(&args, &world, Strategy::Pipeline),
            strategy(&args, &world, Strategy::Planned),
            strategy(&args, &world, Strategy::Fixed5s)
        );
        let (mut pipeline, mut planned, mut fixed) = (pipeline?, planned?, fixed?);
        for (label, outcome) in [
            ("pipeline", &mut pipeline),
            ("planned", &mut planned),
            ("fixed-5s", &mut fixed),
        ] {
            println!(
                "{:<42} {:<9} {:>5} {:>7.2}s {:>7.2}s {:>8.2} {:>5} {:>8.2}",
                world.name,
                label,
                outcome.lag_s.len(),
                outcome.lag_s.median(),
                outcome.lag_s.max(),
                outcome.requests_per_job,
                outcome.count_429,
                outcome.minutes,
            );
        }
        let here = pipeline.lag_s.len() == args.jobs
            && pipeline.lag_s.median() <= TARGET_MEDIAN_LAG_S
            && pipeline.lag_s.max() <= TARGET_MAX_LAG_S
            && pipeline.lag_s.median() <= fixed.lag_s.median()
            && pipeline.count_429 == 0;
        println!("{:<42} {}", "", common::verdict(here));
        met &= here;
    }
    println!("lone jobs on every world: {}", common::verdict(met));
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Pipeline,
    Planned,
    Fixed5s,
}

/// `args.jobs` jobs of `world`, one after another, by `strategy`, on an emulator of its own.
async fn strategy(args: &Args, world: &World, strategy: Strategy) -> Result<Outcome> {
    let scale = args.scale;
    let schedule = match strategy {
        Strategy::Planned => ScheduleConfig {
            idle_gap: Duration::ZERO,
            ..ScheduleConfig::default()
        },
        _ => ScheduleConfig::default(),
    };
    let session = Session::open(ConnectOptions {
        emulator: world.config.clone(),
        schedule: Some(schedule.scaled(scale)),
        rate_window: Duration::from_secs_f64(60.0 / scale),
        wait_deadline: Duration::from_secs(3_600),
        sandbox: SandboxPolicy {
            requests_per_minute: 50,
            ..SandboxPolicy::default()
        },
        runtime: common::runtime_options(),
        ..ConnectOptions::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let observer = LogObserver::default();
    let started = Instant::now();
    for i in 0..args.jobs {
        let mut request = common::t2v_of(
            &format!("A horse gallops along a beach at sunset, take {i}."),
            Some(world.clip_secs),
        );
        request.resolution = Some(world.resolution.into());
        let mut plugin = session.plugin().await?;
        let validated = common::answer("validate", plugin.validate(&request).await)?;
        match strategy {
            Strategy::Pipeline | Strategy::Planned => {
                let cost = common::answer(
                    "estimate-cost",
                    plugin.estimate_cost(&validated.request, None).await,
                )?;
                drop(plugin);
                let ended = happyhorse_pipeline::generate(
                    &session,
                    validated.request,
                    cost,
                    dir.path(),
                    None,
                    &observer,
                    // A benchmark's jobs are not the user's: none in their registry.
                    None,
                )
                .await?;
                anyhow::ensure!(
                    ended.cause.is_none(),
                    "job {i} did not finish: {:?}",
                    ended.cause
                );
            }
            Strategy::Fixed5s => {
                let config = session.client_config.clone();
                let id =
                    common::answer("submit", plugin.submit(&config, &validated.request).await)?;
                let every = Duration::from_secs_f64(5.0 / scale);
                loop {
                    tokio::time::sleep(every).await;
                    let status = common::answer("poll", plugin.poll(&config, &id).await)?;
                    if !matches!(status.state, JobState::Queued | JobState::Running(_)) {
                        break;
                    }
                }
            }
        }
    }
    let emulator = session
        .emulator
        .as_ref()
        .context("the session started no emulator")?;
    Ok(measure(emulator, args, started.elapsed()))
}

fn measure(emulator: &Emulator, args: &Args, took: Duration) -> Outcome {
    let emulated_s = |d: Duration| d.as_secs_f64() * args.scale;
    let mut lag_s = Samples::new();
    for job in emulator.job_timings() {
        if let Some(seen) = job.first_seen_ended_at {
            lag_s.push_value(emulated_s(seen.saturating_sub(job.ended_at)));
        }
    }
    let requests = emulator
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/"))
        .count();
    Outcome {
        requests_per_job: requests as f64 / args.jobs as f64,
        count_429: emulator.count_429(),
        minutes: emulated_s(took) / 60.0,
        lag_s,
    }
}
