//! Running the shots: bounded concurrency, one sandboxed plugin instance per shot, every
//! step journaled before the next one starts.
//!
//! Each shot is driven from its journaled state, so a fresh run and a resumed one are the
//! same code: `pending` is submitted, `submitted` is polled, `completed` is downloaded.
//!
//! `host-demo generate` and `resume` drive their one job here too, as a one-shot plan
//! ([`Runner::run_one`], from [`super::one_shot`]): one driver and one set of rules for a
//! job's life, whichever command started it.

mod step;

use super::journal::{FileRecord, Journal, State, StateKind};
use super::plan::{Plan, PlannedShot};
use super::progress::{BudgetView, Observer};
use super::registry::Registry;
use crate::advice::describe;
use crate::api::{ClientConfig, Error as ApiError, JobState};
use crate::pipeline::download::{download, redact_query};
use crate::pipeline::scheduler::PollScheduler;
use crate::pipeline::scheduler::learn::JobClass;
use crate::pipeline::session::Session;
use crate::redact::contains_secret;
use crate::sandbox::plugin::Plugin;
use crate::untrusted::{check_job_id, job_file_stem};
use anyhow::{Context, Result};
use futures::StreamExt;
use std::path::PathBuf;
use std::time::Duration;
use step::{Action, Decision, Outcome, action, after_poll_error, decide};
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

/// Stops the scheduler watching a job when its shot's `wait` ends, however it ends.
struct Watching<'s> {
    scheduler: &'s PollScheduler,
    job_id: &'s str,
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.scheduler.forget(self.job_id);
    }
}

/// What a shot's step decided.
enum Flow {
    /// Look at the journal again and take the next step.
    Next,
    /// The run is stopping (Ctrl-C): leave the shot where the journal says it is.
    Stop,
}

/// The shot a download is for, and what names its files.
struct Fetch<'s> {
    name: &'s str,
    output: &'s str,
    job_id: &'s str,
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
    /// The per-user registry of submits, this journal's canonical path in it, and whether
    /// a request another journal sent may be paid for again (`--pay-again`).
    registry: Option<(&'a Registry, PathBuf, bool)>,
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
        let http = crate::pipeline::download::client(&session.downloads)?;
        Ok(Runner {
            session,
            journal,
            progress,
            config,
            options,
            http,
            stop,
            registry: None,
            names: OutputNames::Shot,
        })
    }

    /// Name output files as `names` says (a storyboard's by default).
    pub(crate) fn with_output_names(mut self, names: OutputNames) -> Runner<'a> {
        self.names = names;
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
                    };
                    self.fetch(fetch, urls, &mut plugin, &mut cause).await?
                }
                Action::End { ok, message } => {
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

    /// `pending` → `submitting` (committed) → one submit → `submitted` / `failed` / `unknown`.
    async fn submit(
        &self,
        planned: &PlannedShot,
        slot: &mut Option<Plugin>,
        cause: &mut Option<Cause>,
    ) -> Result<Flow> {
        let name = &planned.shot.name;
        // The instance first: failing to make one must not leave the shot `submitting`.
        let plugin = self.plugin(slot).await?;
        // A new job waits while the budget is promised to polls of jobs about to end.
        let permit = tokio::select! {
            permit = self.session.scheduler.submit_turn() => permit,
            _ = self.stopped() => return Ok(Flow::Stop),
        };
        // Both may have become ready together: after Ctrl-C, nothing new is paid for.
        if self.stopping() {
            return Ok(Flow::Stop);
        }
        // Recorded before it can be sent: a failure here leaves the shot `pending`. The
        // run's start checked the registry, but another run may have sent the same request
        // since (two copies of a storyboard run at once): the claim checks again, atomically.
        let fingerprint = planned.fingerprint();
        if let Some((registry, journal, pay_again)) = &self.registry {
            let earlier = registry
                .claim(&fingerprint, journal, name, *pay_again)
                .context("recording the submit in the per-user registry")?;
            if let Some(earlier) = earlier {
                let job = earlier
                    .job_id
                    .as_deref()
                    .map_or_else(String::new, |j| format!(" as job {j}"));
                anyhow::bail!(
                    "not sent: the same request was submitted{job} meanwhile by shot {:?} of another journal, {} \
                     (pass --pay-again to generate it anew, billed again)",
                    earlier.shot,
                    earlier.journal
                );
            }
        }
        // The grant first: it may wait for the budget, and a crash while waiting must leave
        // the shot `pending` (nothing sent), not `submitting` (which would become a false
        // `unknown` needing a person). Only the commit of `submitting` then separates the
        // grant from the send.
        permit.pay(plugin.policy()).await;
        self.apply(name, &State::Pending, Outcome::Granted)?;
        self.progress.state(name, "submitting", "");
        let sent_before = plugin.policy().sent();
        let sent_at = Instant::now();
        let outcome = plugin.submit(&self.config, &planned.request).await;
        let received = Instant::now();
        forfeit_unused(plugin, name);
        // The host's own count of requests the plugin got past the sandbox: when the plugin
        // died before sending anything, nothing can exist at the provider.
        let sent = plugin.policy().sent() != sent_before;
        let outcome = match outcome {
            // The id is the plugin's: one that could not be polled (or that names a path, or
            // carries escape sequences or the key) is not journaled; a job may exist.
            Ok(Ok(job_id)) if check_job_id(&job_id).is_err() || contains_secret(&job_id) => {
                let problem = check_job_id(&job_id)
                    .err()
                    .unwrap_or_else(|| "it contains a secret".into());
                *cause = Some(Cause::UnusableJobId(problem.clone()));
                Outcome::UnusableJobId { problem }
            }
            Ok(Ok(job_id)) => Outcome::Created { job_id },
            Ok(Err(e)) => {
                *cause = Some(Cause::Error(e.clone()));
                match e {
                    ApiError::PermanentSubmitOutcomeUnknown(u) => {
                        Outcome::AnswerLost { message: u.message }
                    }
                    e => Outcome::Refused {
                        code: error_code(&e),
                        message: describe(&e),
                    },
                }
            }
            Err(failure) => {
                *slot = None;
                *cause = Some(Cause::PluginFailed(failure.to_string()));
                Outcome::PluginDied {
                    sent,
                    failure: failure.to_string(),
                }
            }
        };
        let next = match decide(&State::Submitting, outcome) {
            Decision::To(next) => next,
            // Never: every submit outcome moves a submitting shot. Left `submitting`, the
            // next run's start makes it `unknown`, which is the safe side.
            _ => anyhow::bail!("shot {name:?}: the runner has no move for this submit outcome"),
        };
        if let Err(e) = self.journal.transition(name, StateKind::Submitting, &next) {
            if let State::Submitted { job_id } = &next {
                // The one thing that must not be lost: logged at once (the CLI's log goes to
                // stderr) and carried in the error the run reports for this shot.
                let what = format!(
                    "shot {name}: job {job_id} was created but could not be journaled; once the \
                     journal is writable, run `host-demo resolve <storyboard> {name} --job-id {job_id}`"
                );
                tracing::error!("{what} ({e:#})");
                return Err(e.context(what));
            }
            return Err(e);
        }
        // Only a journaled job is watched: `wait`, which comes next, lets it go again.
        if let State::Submitted { job_id } = &next {
            self.progress.submitted(name, job_id);
            self.session
                .scheduler
                .submitted_as(job_id, class_of(planned), sent_at, received);
            if let Some((registry, journal, _)) = &self.registry
                && let Err(e) = registry.record_job(&fingerprint, journal, name, job_id)
            {
                // The submit itself is recorded; only the job id is missing there.
                tracing::warn!(shot = %name, error = %format!("{e:#}"), "could not note the job in the registry");
            }
        }
        // A submitted shot is announced by `wait`, which comes next.
        if let State::Failed { failure, .. } | State::Unknown { failure } = &next {
            tracing::warn!(shot = %name, state = next.name(), error = %crate::untrusted::shown(&failure.message), "submit did not succeed");
        }
        Ok(Flow::Next)
    }

    /// Poll `submitted` until the job ends (→ `completed` / `failed`) or this run's deadline,
    /// when the session's scheduler says: a probe of its progress, then a poll just after
    /// the predicted end.
    async fn wait(
        &self,
        name: &str,
        job_id: &str,
        slot: &mut Option<Plugin>,
        cause: &mut Option<Cause>,
    ) -> Result<Flow> {
        let scheduler = &self.session.scheduler;
        // However this returns, the scheduler stops holding budget for the job.
        let _watch = Watching { scheduler, job_id };
        let deadline = Instant::now() + self.options.deadline;
        let mut plugin_failures = 0;
        let mut transient = 0u32;
        let here = State::Submitted {
            job_id: job_id.to_string(),
        };
        self.progress.state(name, "submitted", job_id);
        loop {
            if self.stopping() {
                return Ok(Flow::Stop);
            }
            let plugin = self.plugin(slot).await?;
            // Past the deadline, one last look before giving up.
            tokio::select! {
                _ = tokio::time::timeout_at(deadline, scheduler.poll_turn(job_id, plugin.policy())) => {}
                _ = self.stopped() => return Ok(Flow::Stop),
            }
            // A poll is a read: on Ctrl-C it is abandoned (with its instance) rather than
            // waited for. Its retries and its requests' timeouts end by the deadline, so a
            // silent server costs the run its deadline and no more.
            let config = self.until(deadline);
            let sent = Instant::now();
            let polled = tokio::select! {
                polled = plugin.poll(&config, job_id) => Some(polled),
                _ = self.stopped() => None,
            };
            forfeit_unused(plugin, name);
            let Some(polled) = polled else {
                *slot = None;
                return Ok(Flow::Stop);
            };
            let received = Instant::now();
            match polled {
                Ok(Ok(status)) => {
                    transient = 0;
                    scheduler.observed(job_id, &status, sent, received);
                    // What the job taught outlives the run: the next one starts informed.
                    let learned = scheduler.take_learned();
                    if let Err(e) = self.journal.save_learned(&learned) {
                        tracing::warn!(error = %format!("{e:#}"), "could not save what finished jobs taught");
                    }
                    let outcome = match status.state {
                        JobState::Queued => {
                            self.progress.progress(name, "queued", Some(0.0));
                            Outcome::Working
                        }
                        JobState::Running(p) => {
                            self.progress.progress(name, "running", p);
                            Outcome::Working
                        }
                        JobState::Completed(urls) => Outcome::Completed { urls },
                        JobState::Failed(f) => {
                            *cause = Some(Cause::JobFailed {
                                code: f.code.clone(),
                                message: f.message.clone(),
                            });
                            Outcome::JobEnded {
                                code: f.code,
                                message: f.message,
                            }
                        }
                        JobState::Cancelled | JobState::Expired => {
                            *cause = Some(Cause::JobEnded(status.raw_status.clone()));
                            Outcome::JobEnded {
                                message: format!("the job ended as {}", status.raw_status),
                                code: status.raw_status,
                            }
                        }
                    };
                    if let Some(state) = self.apply(name, &here, outcome)? {
                        self.progress.state(name, state.name(), "");
                        return Ok(Flow::Next);
                    }
                }
                Ok(Err(e)) => {
                    if let Some(outcome) = after_poll_error(&e) {
                        *cause = Some(Cause::Error(e));
                        self.apply(name, &here, outcome)?;
                        return Ok(Flow::Next);
                    }
                    let delay = match e {
                        ApiError::RateLimited(r) => {
                            Duration::from_millis(r.retry_after_ms.unwrap_or(5_000))
                        }
                        other => {
                            // The component already retried the read; wait longer and try
                            // again until the deadline: the job goes on at the provider
                            // regardless.
                            transient += 1;
                            tracing::warn!(shot = %name, job = %job_id, error = %describe(&other), "poll failed; retrying");
                            Duration::from_millis((500u64 << transient.min(5)).min(15_000))
                        }
                    };
                    scheduler.retry(job_id, delay);
                }
                Err(failure) => {
                    *slot = None;
                    plugin_failures += 1;
                    tracing::warn!(shot = %name, error = %failure, "plugin failed while polling; starting a new one");
                    if plugin_failures >= MAX_PLUGIN_FAILURES {
                        *cause = Some(Cause::PluginFailed(failure.to_string()));
                        let outcome = Outcome::GaveUp {
                            code: "plugin-failure".into(),
                            message: format!("the plugin kept failing while polling: {failure}"),
                        };
                        self.apply(name, &here, outcome)?;
                        return Ok(Flow::Next);
                    }
                    scheduler.retry(job_id, Duration::from_millis(200));
                }
            }
            if let Some(interval) = self.options.poll_interval {
                scheduler.not_before(job_id, received + interval);
            }
            if Instant::now() >= deadline {
                *cause = Some(Cause::Deadline);
                let outcome = Outcome::GaveUp {
                    code: "timeout".into(),
                    message: format!(
                        "gave up waiting after {} s; the job goes on at the provider: run again to pick it up",
                        self.options.deadline.as_secs()
                    ),
                };
                self.apply(name, &here, outcome)?;
                return Ok(Flow::Next);
            }
        }
    }

    /// Download `completed` outputs (→ `downloaded`); a failed download polls the job again
    /// for fresh URLs (they are signed and expire) and retries.
    async fn fetch(
        &self,
        Fetch {
            name,
            output,
            job_id,
        }: Fetch<'_>,
        mut urls: Vec<String>,
        slot: &mut Option<Plugin>,
        cause: &mut Option<Cause>,
    ) -> Result<Flow> {
        let mut attempt = 0;
        let mut here = State::Completed {
            job_id: job_id.to_string(),
            urls: urls.clone(),
        };
        loop {
            if self.stopping() {
                return Ok(Flow::Stop);
            }
            attempt += 1;
            self.progress.state(name, "downloading", "");
            let error = match self.download_all(output, job_id, &urls).await {
                Ok(files) => {
                    self.apply(name, &here, Outcome::Downloaded { files })?;
                    return Ok(Flow::Next);
                }
                Err(e) => e,
            };
            tracing::warn!(shot = %name, attempt, error = %crate::untrusted::shown(&format!("{error:#}")), "download failed");
            if attempt >= MAX_DOWNLOAD_ATTEMPTS {
                *cause = Some(Cause::Download(format!("{error:#}")));
                let outcome = Outcome::GaveUp {
                    code: "download".into(),
                    message: format!(
                        "downloading failed {attempt} times: {error:#}; run again to retry"
                    ),
                };
                self.apply(name, &here, outcome)?;
                return Ok(Flow::Next);
            }
            if !self.pause(Duration::from_millis(250 << attempt)).await {
                return Ok(Flow::Stop);
            }
            // Fresh, freshly signed URLs.
            let plugin = self.plugin(slot).await?;
            match plugin.poll(&self.config, job_id).await {
                Ok(Ok(status)) => match status.state {
                    JobState::Completed(fresh) if !fresh.is_empty() => {
                        let outcome = Outcome::Completed {
                            urls: fresh.clone(),
                        };
                        if let Some(state) = self.apply(name, &here, outcome)? {
                            (urls, here) = (fresh, state);
                        }
                    }
                    JobState::Expired | JobState::Cancelled => {
                        *cause = Some(Cause::JobEnded(status.raw_status.clone()));
                        let outcome = Outcome::JobEnded {
                            message: format!(
                                "the job's outputs are gone: it is now {}",
                                status.raw_status
                            ),
                            code: status.raw_status,
                        };
                        self.apply(name, &here, outcome)?;
                        return Ok(Flow::Next);
                    }
                    other => {
                        tracing::warn!(shot = %name, state = ?other, "re-polling a completed job gave no URLs; retrying the old ones");
                    }
                },
                Ok(Err(e)) => {
                    tracing::warn!(shot = %name, error = %describe(&e), "re-polling for fresh URLs failed");
                }
                Err(failure) => {
                    *slot = None;
                    tracing::warn!(shot = %name, error = %failure, "plugin failed while re-polling");
                }
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

    async fn download_all(
        &self,
        output: &str,
        job_id: &str,
        urls: &[String],
    ) -> Result<Vec<FileRecord>> {
        let mut files = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            let stem = match self.names {
                OutputNames::Shot => output_stem(output, i, urls.len()),
                // Checked when journaled; checked again here, where it names files.
                OutputNames::Job => {
                    format!("{}-{i}", job_file_stem(job_id).map_err(anyhow::Error::msg)?)
                }
            };
            let file = download(
                &self.http,
                &self.session.downloads,
                url,
                &self.options.out_dir,
                &stem,
            )
            .await
            .with_context(|| format!("downloading {}", redact_query(url)))?;
            files.push(FileRecord {
                path: file.file_name,
                bytes: file.bytes,
                sha256: file.sha256,
            });
        }
        Ok(files)
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

/// The file stem of a job's output `index` of `count`: `<output>`, or `<output>-<n>` when a
/// job has several. The extension follows the content type ([`download`]); the URL names
/// nothing. The storyboard refuses stems that could meet this way
/// ([`super::storyboard`]'s output rules).
fn output_stem(output: &str, index: usize, count: usize) -> String {
    if count == 1 {
        output.to_string()
    } else {
        format!("{output}-{}", index + 1)
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

#[cfg(test)]
mod tests {
    use super::output_stem;

    #[test]
    fn output_stems_follow_the_shot_never_the_url() {
        assert_eq!(output_stem("intro", 0, 1), "intro");
        assert_eq!(output_stem("intro", 1, 2), "intro-2");
    }
}
