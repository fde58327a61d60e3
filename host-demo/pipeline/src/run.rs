//! A storyboard's run from end to end: check and price it ([`price`]), refuse it over its cap
//! or stop on a dry run, bring the journal in line (refusing repeats and edits of shots that
//! already have a job), drive the shots ([`crate::runner`]) and write the reports.

use crate::journal::{self, Journal, ShotRow, State};
use crate::observe::{LogObserver, Observer};
use crate::plan::{self, Plan};
use crate::registry;
use crate::reports::{self, ReportContext};
use crate::runner::{DEFAULT_CONCURRENCY, Runner, RunnerOptions};
use crate::session::Session;
use crate::storyboard::{Problem, Storyboard};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// How to run a storyboard (the storyboard's `[run]` settings fill in what is `None`).
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// Where outputs go when the storyboard names no `output`: `<out_root>/<file stem>`.
    /// `None`: `out` next to the storyboard (`storyboard::default_out_root`), never the
    /// working directory, so every run of one storyboard finds the same journal.
    pub out_root: Option<PathBuf>,
    /// The per-user registry's folder (`registry`): every submit is recorded there, and a
    /// pending shot whose request was already submitted from another journal is refused.
    /// `None` keeps no registry (the CLI always keeps one).
    pub state_dir: Option<PathBuf>,
    /// Submit shots even when the same request was already submitted (under another name, or
    /// from another journal): pay again, knowingly.
    pub pay_again: bool,
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
    /// Pending shots whose very request was already submitted — by a shot of another name
    /// in this journal (renamed), or from another journal — as (shot, where); nothing was
    /// submitted. `RunConfig::pay_again` submits them anyway.
    Repeats(Vec<(String, String)>),
    /// `--dry-run`: checked and priced.
    DryRun(Plan),
    /// The shots ran.
    Finished(RunSummary),
}

/// The folder, inside a storyboard's output folder, that the built-in emulator's clips and
/// reports go in (the journal stays beside the real endpoints' clips).
pub const EMULATOR_FOLDER: &str = "emulator";

/// The end of a run that ran.
#[derive(Debug)]
pub struct RunSummary {
    /// Where this run's clips and reports are: the output folder (which holds the journal),
    /// or its `emulator` folder for the built-in emulator.
    pub out_dir: PathBuf,
    /// The storyboard's shots as journaled at the end, in storyboard order.
    pub rows: Vec<ShotRow>,
    /// Shots stopped by an error outside their states (journal or plugin creation).
    pub errors: Vec<(String, String)>,
    /// Shots found `submitting` at the start (now `unknown`).
    pub interrupted: Vec<String>,
    /// Whether the run was told to stop before the end.
    pub stopped: bool,
    /// Why the run stopped itself, when a refusal held for every shot (a refused key, no
    /// credits): nothing was submitted after it.
    pub halted: Option<String>,
    /// The endpoint this run's jobs belong to (`Session::endpoint`).
    pub endpoint: String,
    /// Jobs other endpoints have for this storyboard's shots (the built-in emulator's, or
    /// another `--base-url`'s), kept as they were: none counts for this endpoint, whose own
    /// jobs this run submitted. In storyboard order.
    pub elsewhere: Vec<ShotRow>,
    /// Shots whose built-in emulator jobs ended with an earlier process, submitted anew to
    /// this one (nothing is billed there).
    pub restarted: Vec<String>,
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

/// A storyboard checked and priced, not yet run: what [`run_priced`] runs, and the table a
/// person sees first.
#[derive(Debug)]
pub struct Priced {
    /// Every shot, validated and priced.
    pub plan: Plan,
    /// Where the run's files and journal are.
    pub out_dir: PathBuf,
    /// The price table, with each shot's journaled state; provider text already made inert
    /// for a terminal.
    pub table: String,
}

/// Who shows a storyboard's run: called once the shots are journaled, with each shot's name
/// and journaled state (in storyboard order) and how many are already downloaded.
pub type ShowRun<'a> = &'a (dyn Fn(&[(String, String)], u64) -> Box<dyn Observer> + Sync);

/// Run `storyboard` in `session`: check, price, journal, generate, download, report, logging
/// each shot's changes ([`LogObserver`]). `stop` turning `true` (Ctrl-C) lets in-flight
/// submits finish and starts nothing new. A caller that shows the price table first, or
/// shows the run its own way, calls [`price`] and [`run_priced`] instead.
pub async fn run(
    storyboard: &Storyboard,
    session: &Session,
    config: &RunConfig,
    stop: watch::Receiver<bool>,
) -> Result<RunOutcome> {
    match price(storyboard, session, config).await? {
        Ok(priced) => {
            let log: ShowRun = &|_, _| Box::new(LogObserver::default());
            run_priced(priced, storyboard, session, config, log, stop).await
        }
        Err(problems) => Ok(RunOutcome::Invalid(problems)),
    }
}

/// Check and price every shot of `storyboard` (nothing is sent or written), or every problem.
pub async fn price(
    storyboard: &Storyboard,
    session: &Session,
    config: &RunConfig,
) -> Result<Result<Priced, Vec<Problem>>> {
    let plan = match plan::check(session, storyboard).await? {
        Ok(plan) => plan,
        Err(problems) => return Ok(Err(problems)),
    };
    let out_dir = storyboard.output_dir(config.out_root.as_deref());
    let journal_path = Journal::path_in(&out_dir);
    // The state column is for show: a journal this version cannot read yet (an older
    // schema) shows none, and the run itself opens it for writing and says what is wrong.
    let endpoint = session.endpoint();
    let known: Vec<ShotRow> = Journal::open_read_only(&journal_path)
        .and_then(|j| j.shots())
        .map(|rows| {
            rows.into_iter()
                .filter(|r| r.endpoint == endpoint)
                .collect()
        })
        .unwrap_or_default();
    let state_of = |name: &str| {
        known
            .iter()
            .find(|r| r.plan.name == name)
            .map(|r| r.state.name().to_string())
    };
    // Warnings in the table are the plugin's words: inert, line by line.
    let table = plan::table(&plan, &state_of)
        .lines()
        .map(|line| format!("{}\n", crate::untrusted::shown(line)))
        .collect();
    Ok(Ok(Priced {
        plan,
        out_dir,
        table,
    }))
}

/// Run a priced storyboard: refuse it over its cost cap, stop there on a dry run, or
/// journal, generate, download and report, shown by the observer `show` makes.
pub async fn run_priced(
    priced: Priced,
    storyboard: &Storyboard,
    session: &Session,
    config: &RunConfig,
    show: ShowRun<'_>,
    stop: watch::Receiver<bool>,
) -> Result<RunOutcome> {
    let Priced { plan, out_dir, .. } = priced;
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

    let endpoint = session.endpoint();
    let journal = Journal::open(&out_dir, &endpoint)?;
    // The built-in emulator's clips and reports go in a folder of their own: a demo's
    // placeholders must never overwrite, or be shown as, a real endpoint's paid clips.
    let clips_dir = if session.is_emulated() {
        out_dir.join(EMULATOR_FOLDER)
    } else {
        out_dir.clone()
    };
    // The journal's identity in the registry: the same file however the run was started.
    let journal_key = std::fs::canonicalize(journal.path())
        .with_context(|| format!("resolving {}", journal.path().display()))?;
    // The built-in emulator bills nothing, so its submits are no one's to refuse.
    let registry = match &config.state_dir {
        Some(dir) if !session.is_emulated() => Some(registry::Registry::open(dir)?),
        _ => None,
    };
    // The built-in emulator's jobs ended with the process that started it: no later run can
    // poll them, so its shots that had one are submitted anew (nothing is billed there).
    let restarted = if session.is_emulated() {
        journal.restart_lost_jobs(
            "the built-in emulator's jobs end with the process that started it: submitted anew (nothing is billed)",
        )?
    } else {
        Vec::new()
    };
    if !config.pay_again {
        let repeats = repeats(&journal, &plan, registry.as_ref(), &journal_key, &endpoint)?;
        if !repeats.is_empty() {
            return Ok(RunOutcome::Repeats(repeats));
        }
    }
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
    let progress = show(&shots, done);
    let deadline = config.deadline.unwrap_or_else(|| session.wait_deadline());
    let runner = Runner::new(
        session,
        &journal,
        progress.as_ref(),
        RunnerOptions {
            concurrency: config
                .concurrency
                .or(storyboard.settings.concurrency)
                .unwrap_or(DEFAULT_CONCURRENCY),
            poll_interval: config.poll_interval,
            deadline,
            out_dir: clips_dir.clone(),
        },
        stop.clone(),
    )?;
    let runner = match &registry {
        Some(registry) => runner.with_registry(registry, journal_key.clone(), config.pay_again),
        None => runner,
    };
    let errors = runner.run(&plan).await;
    let halted = runner.halted();
    progress.close();

    let rows = storyboard_rows(&journal, &plan)?;
    let context = ReportContext {
        storyboard: storyboard.path.display().to_string(),
        api_base_url: Some(reports::safe_url(session.base_url())),
        emulated: Some(session.is_emulated()),
    };
    std::fs::create_dir_all(&clips_dir)
        .with_context(|| format!("creating {}", clips_dir.display()))?;
    reports::write(&clips_dir, &rows, &context)?;
    let listed = |name: &str| plan.shots.iter().any(|s| s.shot.name == name);
    let elsewhere = journal
        .elsewhere()?
        .into_iter()
        .filter(|r| listed(&r.plan.name) && maybe_billed(&r.state))
        .collect();
    Ok(RunOutcome::Finished(RunSummary {
        out_dir: clips_dir,
        rows,
        errors: errors
            .into_iter()
            .map(|(n, e)| (n, format!("{e:#}")))
            .collect(),
        interrupted: reconciled.interrupted,
        stopped: *stop.borrow(),
        halted,
        endpoint,
        elsewhere,
        restarted,
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

/// Whether a journaled shot's request may have been paid for: anything past `pending` but a
/// submit the provider refused (no job exists).
fn maybe_billed(state: &State) -> bool {
    match state {
        State::Pending => false,
        State::Failed {
            job_id: None,
            failure,
        } => failure.stage != journal::Stage::Submit,
        _ => true,
    }
}

/// The shots about to be submitted whose exact request (fingerprint) was already submitted:
/// by a journaled shot that the storyboard no longer lists under that name (a rename, or a
/// change of case), or from another journal per the registry. Shots that list the same
/// request twice on purpose are left alone: both names are in the storyboard.
fn repeats(
    journal: &Journal,
    plan: &Plan,
    registry: Option<&registry::Registry>,
    journal_key: &std::path::Path,
    endpoint: &str,
) -> Result<Vec<(String, String)>> {
    let rows = journal.shots()?;
    let listed = |name: &str| plan.shots.iter().any(|s| s.shot.name == name);
    let mut found = Vec::new();
    for shot in &plan.shots {
        let name = &shot.shot.name;
        let to_submit = rows
            .iter()
            .find(|r| &r.plan.name == name)
            .is_none_or(|r| !maybe_billed(&r.state));
        if !to_submit {
            continue;
        }
        let fingerprint = shot.fingerprint();
        if let Some(earlier) = rows.iter().find(|r| {
            r.plan.fingerprint == fingerprint && !listed(&r.plan.name) && maybe_billed(&r.state)
        }) {
            let job = earlier
                .state
                .job_id()
                .map_or_else(String::new, |j| format!(" as job {j}"));
            found.push((
                name.clone(),
                format!(
                    "the same request was already submitted as shot \"{}\"{job} ({}): rename it back to keep that job",
                    earlier.plan.name,
                    earlier.state.name()
                ),
            ));
            continue;
        }
        if let Some(registry) = registry
            && let Some(earlier) = registry
                .elsewhere(&fingerprint, endpoint, journal_key)?
                .first()
        {
            let job = earlier
                .job_id
                .as_deref()
                .map_or_else(String::new, |j| format!(" as job {j}"));
            found.push((
                name.clone(),
                format!(
                    "the same request was already submitted{job} by shot \"{}\" of another journal, {}",
                    earlier.shot, earlier.journal
                ),
            ));
        }
    }
    Ok(found)
}
