//! The pipeline strategy: `host-demo`'s own runner, its session's scheduler deciding every
//! poll, on a generated storyboard, and a second run resuming its journal.

use super::outcome::Outcome;
use super::strategy::Allowance;
use super::{Args, clip};
use crate::common;
use anyhow::{Context, Result};
use happyhorse_emulator::EmulatorConfig;
use happyhorse_pipeline::{
    ConnectOptions, Journal, LogObserver, Plan, Runner, RunnerOptions, ScheduleConfig, Session,
    Storyboard, check_plan,
};
use happyhorse_sandbox::SandboxPolicy;
use std::fmt::Write as _;
use std::time::Duration;

/// The pipeline strategy: `host-demo`'s runner on a storyboard with more shots than can
/// finish, in a session whose clock (budget window, scheduler timings) runs `scale` times
/// faster, stopped after the run's length.
pub(super) async fn pipeline(
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
    if let Some(secs) = args.idle_gap_secs {
        schedule.idle_gap = Duration::try_from_secs_f64(secs)
            .context("--idle-gap-secs must be a non-negative number of seconds")?;
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
pub(super) struct Early {
    pub(super) learned_at_start: usize,
    /// 429s the emulator counted by the end of the run.
    pub(super) total_429: usize,
    /// The longest any request was counted from its grant to its answer (wall time): the
    /// margin a budget counting from grants alone would have needed.
    pub(super) longest_hold: Duration,
    pub(super) counts: happyhorse_pipeline::PollCounts,
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
