//! A shot's submit: `pending` → `submitting` (committed before anything is sent) → one
//! submit → `submitted`, `failed` or `unknown`. Never resent blindly: a submit whose fate is
//! unknown stays `unknown` until a person settles it.

use super::step::{Decision, Outcome, decide};
use super::{Cause, Flow, Runner, class_of, error_code, forfeit_unused};
use crate::advice::describe;
use crate::journal::{State, StateKind};
use crate::plan::PlannedShot;
use crate::untrusted::check_job_id;
use anyhow::{Context, Result};
use happyhorse_sandbox::Plugin;
use happyhorse_sandbox::api::Error as ApiError;
use happyhorse_sandbox::contains_secret;
use tokio::time::Instant;

impl Runner<'_> {
    /// `pending` → `submitting` (committed) → one submit → `submitted` / `failed` / `unknown`.
    pub(super) async fn submit(
        &self,
        planned: &PlannedShot,
        slot: &mut Option<Plugin>,
        cause: &mut Option<Cause>,
    ) -> Result<Flow> {
        let name = &planned.shot.name;
        // The instance first: failing to make one must not leave the shot `submitting`.
        let plugin = self.plugin(slot).await?;
        // The run's first submit goes alone; the others wait for its answer (held until this
        // function returns, by which time the first has been answered or has given up).
        let _first = self.wait_for_first_answer().await;
        if self.submits_stopping() {
            return Ok(Flow::Stop);
        }
        // A new job waits while the budget is promised to polls of jobs about to end.
        let permit = tokio::select! {
            permit = self.session.scheduler.submit_turn() => permit,
            _ = self.submits_stopped() => return Ok(Flow::Stop),
        };
        // Both may have become ready together: after Ctrl-C or a halt, nothing new is paid for.
        if self.submits_stopping() {
            return Ok(Flow::Stop);
        }
        // Recorded before it can be sent: a failure here leaves the shot `pending`. The
        // run's start checked the registry, but another run may have sent the same request
        // since (two copies of a storyboard run at once): the claim checks again, atomically.
        let fingerprint = planned.fingerprint();
        if let Some((registry, journal, pay_again)) = &self.registry {
            let earlier = registry
                .claim(
                    &fingerprint,
                    &self.session.endpoint(),
                    journal,
                    name,
                    *pay_again,
                )
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
        // The grant may wait out a 429's pause: Ctrl-C or a halt meanwhile sends nothing (the
        // unused grant is forfeited, counted on the safe side).
        tokio::select! {
            () = permit.pay(plugin.policy()) => {}
            _ = self.submits_stopped() => {
                forfeit_unused(plugin, name);
                return Ok(Flow::Stop);
            }
        }
        if self.submits_stopping() {
            forfeit_unused(plugin, name);
            return Ok(Flow::Stop);
        }
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
                // The account's refusal holds for every shot: one message, nothing more sent.
                if matches!(
                    e,
                    ApiError::PermanentUnauthorized(_) | ApiError::InsufficientCredits(_)
                ) {
                    self.halt(describe(&e));
                }
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
            if let Some(record) = self.job_record {
                record.created(job_id);
            }
            self.progress.submitted(name, job_id);
            self.session
                .scheduler
                .submitted_as(job_id, class_of(planned), sent_at, received);
            if let Some((registry, journal, _)) = &self.registry
                && let Err(e) = registry.record_job(
                    &fingerprint,
                    &self.session.endpoint(),
                    journal,
                    name,
                    job_id,
                )
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
}
