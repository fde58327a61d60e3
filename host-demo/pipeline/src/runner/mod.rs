//! Running the shots: bounded concurrency, one sandboxed plugin instance per shot, every
//! step journaled before the next one starts.
//!
//! Each shot is driven from its journaled state, so a fresh run and a resumed one are the
//! same code: `pending` is submitted, `submitted` is polled, `completed` is downloaded.
//!
//! `host-demo generate` and `resume` drive their one job here too, as a one-shot plan
//! ([`Runner::run_one`], from [`super::one_shot`]): one driver and one set of rules for a
//! job's life, whichever command started it.

mod fetch;
mod step;
mod submit;
mod wait;

use crate::clip::PaidFor;
use crate::job_record::JobRecord;
use crate::journal::{Journal, State};
use crate::observe::{BudgetView, Observer};
use crate::plan::{Plan, PlannedShot};
use crate::registry::Registry;
use crate::scheduler::learn::JobClass;
use crate::session::Session;
use anyhow::{Context, Result};
use fetch::Fetch;
use futures::StreamExt;
use happyhorse_sandbox::Plugin;
use happyhorse_sandbox::api::{ClientConfig, Error as ApiError};
use std::path::PathBuf;
use std::time::Duration;
use step::{Action, Decision, Outcome, action, decide};
use tokio::sync::watch;
use tokio::time::Instant;

/// How often one shot's plugin may die (trap, time-out) before the shot gives up for this run.
const MAX_PLUGIN_FAILURES: u32 = 3;
/// Download attempts per run, each after the first with freshly polled URLs.
const MAX_DOWNLOAD_ATTEMPTS: u32 = 4;
/// How often the progress display's budget line is refreshed.
const BUDGET_TICK: Duration = Duration::from_secs(2);

/// Shots in flight at once by default. The scheduler spends about three requests per job
/// (submit, a progress probe, a poll just after the predicted end) however many are in
/// flight, so the account's 50 requests a minute carry about 16 jobs a minute; with jobs of
/// 30 s to 3 min that takes some 30 in flight (measured, BENCHMARKS.md §5: 9.4 jobs/min
/// with 16, 15.0 with 32, 16.4 with 48). More in flight costs nothing by itself: a shot
/// whose submit the budget cannot carry yet waits, unsubmitted, for its turn.
pub const DEFAULT_CONCURRENCY: usize = 48;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Shots in flight at once.
    pub concurrency: usize,
    /// Shortest spacing of one job's polls: a floor under the scheduler's plan, and the
    /// component's hint for jobs that report no progress.
    pub poll_interval: Option<Duration>,
    /// How long one run waits for one job before leaving it for the next run.
    pub deadline: Duration,
    /// Where outputs go.
    pub out_dir: PathBuf,
}

/// How a shot's output files are named.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputNames {
    /// `<output>`, or `<output>-<n>` (from 1) when a job has several: a storyboard's names.
    #[default]
    Shot,
    /// `<job id>-<i>` (from 0) whatever their number: what `generate` and `resume` have
    /// always written, so a job's files are found by its id.
    Job,
}

/// What ended a shot's run, as the component or the provider said it: the journal keeps a
/// sentence, a caller that words its own lines (`generate`) needs the facts.
#[derive(Debug, Clone)]
pub enum Cause {
    /// The component answered a submit or a poll with this error (refused, lost, unknown).
    Error(ApiError),
    /// The plugin returned a job id the host will not use; a job may exist.
    UnusableJobId(String),
    /// The provider's job failed with this code and message.
    JobFailed {
        /// The provider's code.
        code: String,
        /// The provider's message.
        message: String,
    },
    /// The job ended without outputs as this status (cancelled, expired).
    JobEnded(String),
    /// The run's deadline passed while the job went on at the provider.
    Deadline,
    /// The plugin died (a trap, a time-out) as often as a shot allows.
    PluginFailed(String),
    /// Downloading failed as often as a shot allows; the last error.
    Download(String),
}

/// How [`Runner::run_one`] left its shot.
#[derive(Debug, Clone)]
pub struct Ended {
    /// The shot's last journaled state.
    pub state: State,
    /// What ended it, when it did not end downloaded and the runner knows more than the
    /// journaled failure's sentence.
    pub cause: Option<Cause>,
}

/// Drops the budget grant a call was prepaid and did not use (it sent nothing), noting it:
/// the budget keeps counting it, which errs on the safe side.
fn forfeit_unused(plugin: &Plugin, shot: &str) {
    let unused = plugin.policy().forfeit_prepaid();
    if unused > 0 {
        tracing::debug!(%shot, unused, "a prepaid request grant went unused");
    }
}

/// What a shot's step decided.
enum Flow {
    /// Look at the journal again and take the next step.
    Next,
    /// The run is stopping (Ctrl-C): leave the shot where the journal says it is.
    Stop,
}

/// Held by the run's first submit; dropped once it has been answered (or has ended any other
/// way), which lets the run's other submits go.
struct FirstSubmit<'r>(&'r watch::Sender<bool>);

impl Drop for FirstSubmit<'_> {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// Runs a plan's shots.
pub struct Runner<'a> {
    session: &'a Session,
    journal: &'a Journal,
    progress: &'a dyn Observer,
    config: ClientConfig,
    options: RunnerOptions,
    http: reqwest::Client,
    stop: watch::Receiver<bool>,
    /// Why the run stopped itself, once a refusal showed that every further submit would be
    /// refused too (a refused key, no credits): nothing new starts, as after Ctrl-C.
    halted: watch::Sender<Option<String>>,
    /// Whether a submit of this run has started (`first_submit`), and whether one has been
    /// answered (`first_answered`): the first goes alone, since its answer says whether the
    /// key and the account are accepted at all ([`Runner::wait_for_first_answer`]).
    first_submit: std::sync::atomic::AtomicBool,
    first_answered: watch::Sender<bool>,
    /// The per-user registry of submits, this journal's canonical path in it, and whether
    /// a request another journal sent may be paid for again (`--pay-again`).
    registry: Option<(&'a Registry, PathBuf, bool)>,
    /// A one-shot job's row in the registry, given the job id as soon as a submit creates it.
    job_record: Option<&'a JobRecord<'a>>,
    /// How output files are named.
    names: OutputNames,
}

impl<'a> Runner<'a> {
    /// A runner; `stop` turning `true` lets in-flight submits finish and starts nothing new.
    pub fn new(
        session: &'a Session,
        journal: &'a Journal,
        progress: &'a dyn Observer,
        options: RunnerOptions,
        stop: watch::Receiver<bool>,
    ) -> Result<Runner<'a>> {
        let mut config = session.client_config.clone();
        if let (Some(interval), Some(poll)) = (options.poll_interval, config.poll.as_mut()) {
            let ms = u32::try_from(interval.as_millis())
                .unwrap_or(u32::MAX)
                .max(1);
            poll.min_interval_ms = ms;
            poll.max_interval_ms = poll.max_interval_ms.max(ms).min(ms.saturating_mul(4));
        }
        // Output URLs come from the provider through the plugin: the download client checks
        // every address it connects to, follows no redirect and times out a stalled transfer.
        let http = crate::download::client(&session.downloads)?;
        Ok(Runner {
            session,
            journal,
            progress,
            config,
            options,
            http,
            stop,
            halted: watch::Sender::new(None),
            first_submit: std::sync::atomic::AtomicBool::new(false),
            first_answered: watch::Sender::new(false),
            registry: None,
            job_record: None,
            names: OutputNames::Shot,
        })
    }

    /// Name output files as `names` says (a storyboard's by default).
    pub(crate) fn with_output_names(mut self, names: OutputNames) -> Runner<'a> {
        self.names = names;
        self
    }

    /// Tell `record` (a one-shot job's row in the registry) the job id as soon as a submit
    /// creates it.
    pub(crate) fn with_job_record(mut self, record: Option<&'a JobRecord<'a>>) -> Runner<'a> {
        self.job_record = record;
        self
    }

    /// Record every submit in `registry` (under `journal`, this journal's canonical path)
    /// before it is sent, so runs from other journals can notice it; unless `pay_again`,
    /// a request another journal has sent is not sent (the shot stays `pending`).
    pub(crate) fn with_registry(
        mut self,
        registry: &'a Registry,
        journal: PathBuf,
        pay_again: bool,
    ) -> Runner<'a> {
        self.registry = Some((registry, journal, pay_again));
        self
    }

    /// Drive every shot of `plan` that still has something to do. Shots whose job already
    /// exists go first: they are paid for, and finishing them costs nothing more.
    /// Returns the errors that stopped shots outside the journal's states (a journal that
    /// cannot be written, a plugin that cannot be created).
    pub async fn run(&self, plan: &Plan) -> Vec<(String, anyhow::Error)> {
        self.learn();
        let mut order: Vec<(u8, &PlannedShot)> = Vec::new();
        for shot in &plan.shots {
            let state = self
                .journal
                .shot(&shot.shot.name)
                .ok()
                .flatten()
                .map(|r| r.state);
            let rank = match state {
                Some(State::Completed { .. }) => 0,
                Some(State::Submitted { .. }) => 1,
                Some(State::Pending) => 2,
                _ => 3,
            };
            order.push((rank, shot));
        }
        order.sort_by_key(|(rank, _)| *rank);
        let shots = futures::stream::iter(order)
            .map(|(_, shot)| async move {
                let name = shot.shot.name.clone();
                match self.drive(shot).await {
                    Ok(_) => None,
                    Err(e) => {
                        self.progress.finish(&name, false, &format!("error: {e:#}"));
                        Some((name, e))
                    }
                }
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .filter_map(|r| async move { r })
            .collect();
        // The budget line runs beside the shots and ends with them.
        tokio::select! {
            errors = shots => errors,
            never = self.show_budget(plan) => match never {},
        }
    }

    /// Drive one shot, already in the journal, to wherever it ends this run: a one-shot plan
    /// (`generate`, `resume`), by the same steps and rules as a storyboard's shots. Returns
    /// its last state and what ended it; an error is one outside the journal's states (a
    /// journal that cannot be written, a plugin that cannot be created).
    pub async fn run_one(&self, planned: &PlannedShot) -> Result<Ended> {
        self.learn();
        let name = &planned.shot.name;
        let cause = match self.drive(planned).await {
            Ok(cause) => cause,
            Err(e) => {
                self.progress.finish(name, false, &format!("error: {e:#}"));
                return Err(e);
            }
        };
        let row = self
            .journal
            .shot(name)?
            .with_context(|| format!("shot {name:?} is missing from the journal"))?;
        Ok(Ended {
            state: row.state,
            cause,
        })
    }

    /// Start from what earlier runs of this journal learned about the provider's jobs.
    fn learn(&self) {
        match self.journal.learned() {
            Ok(records) => self.session.scheduler.learn_from(records),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not read what earlier runs learned")
            }
        }
    }

    /// Every couple of seconds, shows the account's budget in use on the progress display.
    async fn show_budget(&self, plan: &Plan) -> std::convert::Infallible {
        let started = Instant::now();
        let budget = self.session.sandbox.budget();
        let granted_at_start = budget.granted();
        let finished_at_start = self.finished(plan);
        loop {
            tokio::time::sleep(BUDGET_TICK).await;
            let finished_now = self.finished(plan);
            let finished = finished_now.saturating_sub(finished_at_start);
            let spent = budget.granted().saturating_sub(granted_at_start);
            self.progress.budget(&BudgetView {
                used: budget.used(),
                per_minute: budget.per_minute(),
                in_flight: self.session.scheduler.watching(),
                remaining: plan.shots.len().saturating_sub(finished_now),
                finished,
                elapsed: started.elapsed(),
                requests_per_job: spent as f64 / finished.max(1) as f64,
            });
        }
    }

    /// Shots of `plan` the journal has at an end (downloaded or failed).
    fn finished(&self, plan: &Plan) -> usize {
        let Ok(rows) = self.journal.shots() else {
            return 0;
        };
        let names: std::collections::HashSet<&str> =
            plan.shots.iter().map(|s| s.shot.name.as_str()).collect();
        rows.iter()
            .filter(|r| names.contains(r.plan.name.as_str()))
            .filter(|r| matches!(r.state, State::Downloaded { .. } | State::Failed { .. }))
            .count()
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves when the run is told to stop (never, once nobody can tell it to).
    async fn stopped(&self) {
        let mut stop = self.stop.clone();
        if stop.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Whether no new submit may go: the run is stopping, or halted ([`Runner::halt`]).
    /// Jobs already submitted are still waited for and downloaded after a halt: they are
    /// paid for.
    fn submits_stopping(&self) -> bool {
        self.stopping() || self.halted.borrow().is_some()
    }

    /// Resolves when no new submit may go ([`Runner::submits_stopping`]).
    async fn submits_stopped(&self) {
        let mut halted = self.halted.subscribe();
        tokio::select! {
            _ = self.stopped() => {}
            // The runner holds the sender, so this ends only by a halt.
            _ = halted.wait_for(Option::is_some) => {}
        }
    }

    /// Send no new submit, for `why`: every further submit would be refused the same way
    /// (the first reason is kept). Unlike Ctrl-C, jobs already submitted are still waited for
    /// and downloaded.
    fn halt(&self, why: String) {
        self.halted.send_if_modified(|reason| {
            let first = reason.is_none();
            if first {
                *reason = Some(why);
            }
            first
        });
    }

    /// Lets the run's first submit go at once and holds every other until the first has been
    /// answered (or given up): a refused key then costs one refusal, not one per shot in
    /// flight, since the answer halts the run ([`Runner::halt`]). The first caller gets the
    /// guard that, dropped after its answer, lets the others go; `None` for the others, once
    /// they may go, or when the run stops meanwhile.
    async fn wait_for_first_answer(&self) -> Option<FirstSubmit<'_>> {
        use std::sync::atomic::Ordering;
        if !self.first_submit.swap(true, Ordering::SeqCst) {
            return Some(FirstSubmit(&self.first_answered));
        }
        let mut answered = self.first_answered.subscribe();
        tokio::select! {
            _ = answered.wait_for(|a| *a) => {}
            _ = self.submits_stopped() => {}
        }
        None
    }

    /// Why the run stopped itself, if it did ([`Runner::halt`]).
    pub fn halted(&self) -> Option<String> {
        self.halted.borrow().clone()
    }

    /// Sleep, unless the run is told to stop first; `false` when it is.
    async fn pause(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => !self.stopping(),
            _ = self.stopped() => false,
        }
    }

    async fn plugin<'p>(&self, slot: &'p mut Option<Plugin>) -> Result<&'p mut Plugin> {
        if slot.is_none() {
            *slot = Some(
                self.session
                    .plugin()
                    .await
                    .context("creating a plugin instance")?,
            );
        }
        Ok(slot.as_mut().expect("just set"))
    }

    /// Take a shot from wherever the journal has it to wherever it ends; returns what ended
    /// it, when this run ended it otherwise than downloaded.
    async fn drive(&self, planned: &PlannedShot) -> Result<Option<Cause>> {
        let name = &planned.shot.name;
        // This shot's own instance: a trap in one shot's plugin cannot touch another's.
        let mut plugin: Option<Plugin> = None;
        let mut cause = None;
        loop {
            let row = self
                .journal
                .shot(name)?
                .with_context(|| format!("shot {name:?} is missing from the journal"))?;
            let flow = match action(&row.state) {
                Action::Submit => {
                    if self.stopping() {
                        return Ok(cause);
                    }
                    self.submit(planned, &mut plugin, &mut cause).await?
                }
                Action::Wait { job_id } => {
                    self.session.scheduler.classify(&job_id, class_of(planned));
                    self.wait(name, &job_id, &mut plugin, &mut cause).await?
                }
                Action::Download { job_id, urls } => {
                    let fetch = Fetch {
                        name,
                        output: &row.plan.output,
                        job_id: &job_id,
                        paid_for: PaidFor::of(&planned.request, &planned.cost),
                    };
                    self.fetch(fetch, urls, &mut plugin, &mut cause).await?
                }
                Action::End { ok, message } => {
                    self.progress.ended(name, &row.state, &self.options.out_dir);
                    self.progress.finish(name, ok, &message);
                    return Ok(cause);
                }
                Action::Halt => {
                    // Reconciliation turns these `unknown` before a run starts; finding one
                    // here means something else wrote the journal. Never guess: stop.
                    anyhow::bail!("shot {name:?} is unexpectedly `submitting`");
                }
            };
            if let Flow::Stop = flow {
                self.progress
                    .state(name, "stopped", "(run again to resume)");
                return Ok(cause);
            }
        }
    }

    /// Journal where `outcome` takes a shot the driver holds in `here` ([`step::decide`]);
    /// returns the new state, or `None` when the shot stays. An outcome the state cannot
    /// have is a bug: refused, nothing journaled.
    fn apply(&self, name: &str, here: &State, outcome: Outcome) -> Result<Option<State>> {
        match decide(here, outcome) {
            Decision::To(next) => {
                self.journal.transition(name, here.kind(), &next)?;
                Ok(Some(next))
            }
            Decision::Stay => Ok(None),
            Decision::Refuse => {
                anyhow::bail!("shot {name:?}: the runner has no move from {}", here.name())
            }
        }
    }

    /// The session's client settings for a poll that must end by `deadline`: the
    /// component's own retries and its requests' timeouts included.
    fn until(&self, deadline: Instant) -> ClientConfig {
        let mut config = self.config.clone();
        if let Some(poll) = config.poll.as_mut() {
            let left = deadline.saturating_duration_since(Instant::now());
            let left = u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1);
            poll.deadline_ms = poll.deadline_ms.min(left);
        }
        config
    }
}

/// The error's case name, in the contract's spelling.
pub(crate) fn error_code(error: &ApiError) -> String {
    match error {
        ApiError::PermanentInvalidRequest(_) => "permanent-invalid-request".into(),
        ApiError::PermanentUnauthorized(e) => {
            e.code.clone().unwrap_or("permanent-unauthorized".into())
        }
        ApiError::InsufficientCredits(e) => e.code.clone().unwrap_or("insufficient-credits".into()),
        ApiError::RateLimited(_) => "rate-limited".into(),
        ApiError::JobFailed(f) => f.failure.code.clone(),
        ApiError::NotFound(_) => "not-found".into(),
        ApiError::ServerError(e) => e.code.clone().unwrap_or("server-error".into()),
        ApiError::TransportError(_) => "transport-error".into(),
        ApiError::PermanentSubmitOutcomeUnknown(_) => "permanent-submit-outcome-unknown".into(),
        ApiError::Timeout(_) => "timeout".into(),
        ApiError::MalformedResponse(_) => "malformed-response".into(),
        ApiError::ExecutionFailed => "execution-failed".into(),
    }
}

/// The learner's class of a shot's job: its clip length and resolution.
fn class_of(planned: &PlannedShot) -> JobClass {
    let request = &planned.request;
    JobClass::new(
        request.duration_seconds.unwrap_or(0),
        request.resolution.as_deref().unwrap_or(""),
    )
}
