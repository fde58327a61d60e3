//! The pipeline: a storyboard in, finished clips out — concurrent, durable, never billed
//! twice. `host-demo run storyboard.toml` is [`cli::run`]; the steps are:
//!
//! 1. [`storyboard`]: read the file (TOML or JSON), apply run-wide defaults, load local
//!    images as data URLs ([`images`] holds that assumption, in one place);
//! 2. [`plan`]: validate every shot with the component and price it — any problem anywhere
//!    and nothing is submitted; `--max-cost` and `--dry-run` stop here;
//! 3. [`journal`]: bring the SQLite journal in line with the storyboard (an interrupted
//!    submit becomes `unknown`, never resent);
//! 4. [`runner`]: drive each shot from its journaled state, a few at a time, each with its own
//!    plugin instance, shown by [`progress`];
//! 5. [`reports`]: `manifest.json` and the `index.html` contact sheet, from the journal.
//!
//! [`status`] reads the journal for `host-demo status` and settles shots for
//! `host-demo resolve`.

pub mod cli;
pub mod images;
pub mod journal;
pub mod plan;
pub mod progress;
pub mod reports;
pub mod runner;
pub mod status;
pub mod storyboard;

use crate::session::Session;
use anyhow::Result;
use journal::{Journal, ShotRow, State};
use plan::Plan;
use progress::Progress;
use reports::ReportContext;
use runner::{DEFAULT_CONCURRENCY, Runner, RunnerOptions};
use std::path::PathBuf;
use std::time::Duration;
use storyboard::{Problem, Storyboard};
use tokio::sync::watch;

/// How to run a storyboard (the storyboard's `[run]` settings fill in what is `None`).
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// Where outputs go when the storyboard names no `output`: `<out_root>/<file stem>`.
    pub out_root: PathBuf,
    /// Refuse to start above this estimate, micro-units.
    pub max_cost_micros: Option<u64>,
    /// Shots in flight at once.
    pub concurrency: Option<usize>,
    /// Check and price only.
    pub dry_run: bool,
    /// Shortest spacing of one job's polls, overriding the session's.
    pub poll_interval: Option<Duration>,
    /// How long this run waits for one job (default: the session's poll deadline).
    pub deadline: Option<Duration>,
    /// Draw progress bars (stderr is a terminal) rather than log lines.
    pub terminal: bool,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunOutcome {
    /// The storyboard has problems; nothing was submitted.
    Invalid(Vec<Problem>),
    /// The estimate is over the budget; nothing was submitted.
    OverBudget {
        /// The priced plan.
        plan: Plan,
        /// The budget, micro-units.
        max_micros: u64,
    },
    /// Shots that already have a job were edited in the storyboard; nothing was submitted.
    Conflicts(Vec<(String, String)>),
    /// `--dry-run`: checked and priced.
    DryRun(Plan),
    /// The shots ran.
    Finished(RunSummary),
}

/// The end of a run that ran.
#[derive(Debug)]
pub struct RunSummary {
    /// Where the clips, journal and reports are.
    pub out_dir: PathBuf,
    /// The storyboard's shots as journaled at the end, in storyboard order.
    pub rows: Vec<ShotRow>,
    /// Shots stopped by an error outside their states (journal or plugin creation).
    pub errors: Vec<(String, String)>,
    /// Shots found `submitting` at the start (now `unknown`).
    pub interrupted: Vec<String>,
    /// Whether the run was told to stop before the end.
    pub stopped: bool,
}

impl RunSummary {
    /// Whether every shot is downloaded.
    pub fn complete(&self) -> bool {
        self.errors.is_empty()
            && self
                .rows
                .iter()
                .all(|r| matches!(r.state, State::Downloaded { .. }))
    }
}

/// Run `storyboard` in `session`: check, price, journal, generate, download, report.
/// `stop` turning `true` (Ctrl-C) lets in-flight submits finish and starts nothing new.
pub async fn run(
    storyboard: &Storyboard,
    session: &Session,
    config: &RunConfig,
    stop: watch::Receiver<bool>,
) -> Result<RunOutcome> {
    let plan = match plan::check(session, storyboard).await? {
        Ok(plan) => plan,
        Err(problems) => return Ok(RunOutcome::Invalid(problems)),
    };
    let out_dir = storyboard.output_dir(&config.out_root);
    let journal_path = Journal::path_in(&out_dir);
    let known: Vec<ShotRow> = if journal_path.is_file() {
        Journal::open_read_only(&journal_path)?.shots()?
    } else {
        Vec::new()
    };
    let state_of = |name: &str| {
        known
            .iter()
            .find(|r| r.plan.name == name)
            .map(|r| r.state.name().to_string())
    };
    println!("{}", plan::table(&plan, &state_of));
    let max_micros = config
        .max_cost_micros
        .or(storyboard.settings.max_cost_micros);
    if let Some(max_micros) = max_micros
        && plan.total_micros > max_micros
    {
        return Ok(RunOutcome::OverBudget { plan, max_micros });
    }
    if config.dry_run {
        return Ok(RunOutcome::DryRun(plan));
    }

    let journal = Journal::open(&out_dir)?;
    let reconciled = journal.reconcile(&plan.journal_rows())?;
    if !reconciled.conflicts.is_empty() {
        return Ok(RunOutcome::Conflicts(reconciled.conflicts));
    }
    for name in &reconciled.interrupted {
        tracing::warn!(shot = %name, "an earlier run stopped during this shot's submit: it is now unknown and will not be resent");
    }
    let rows = storyboard_rows(&journal, &plan)?;
    let shots: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.plan.name.clone(), r.state.name().to_string()))
        .collect();
    let done = rows
        .iter()
        .filter(|r| matches!(r.state, State::Downloaded { .. }))
        .count() as u64;
    let progress = Progress::new(&shots, done, config.terminal);
    let deadline = config.deadline.unwrap_or_else(|| {
        Duration::from_millis(
            session
                .client_config
                .poll
                .map_or(15 * 60 * 1000, |p| p.deadline_ms),
        )
    });
    let runner = Runner::new(
        session,
        &journal,
        &progress,
        RunnerOptions {
            concurrency: config
                .concurrency
                .or(storyboard.settings.concurrency)
                .unwrap_or(DEFAULT_CONCURRENCY),
            poll_interval: config.poll_interval,
            deadline,
            out_dir: out_dir.clone(),
        },
        stop.clone(),
    )?;
    let errors = runner.run(&plan).await;
    progress.close();

    let rows = storyboard_rows(&journal, &plan)?;
    let context = ReportContext {
        storyboard: storyboard.path.display().to_string(),
        api_base_url: Some(reports::safe_url(session.base_url())),
        emulated: Some(session.is_emulated()),
    };
    reports::write(&out_dir, &rows, &context)?;
    Ok(RunOutcome::Finished(RunSummary {
        out_dir,
        rows,
        errors: errors
            .into_iter()
            .map(|(n, e)| (n, format!("{e:#}")))
            .collect(),
        interrupted: reconciled.interrupted,
        stopped: *stop.borrow(),
    }))
}

/// The journal rows of the plan's shots, in the plan's order.
fn storyboard_rows(journal: &Journal, plan: &Plan) -> Result<Vec<ShotRow>> {
    let mut all = journal.shots()?;
    let mut rows = Vec::new();
    for shot in &plan.shots {
        if let Some(i) = all.iter().position(|r| r.plan.name == shot.shot.name) {
            rows.push(all.swap_remove(i));
        }
    }
    Ok(rows)
}
