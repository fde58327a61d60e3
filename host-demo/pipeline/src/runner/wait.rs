//! A submitted job watched to its end: polls when the scheduler says, progress shown, the
//! outcome journaled (`completed`, `failed`, or given up for this run).

use super::step::{Outcome, after_poll_error};
use super::{Cause, Flow, MAX_PLUGIN_FAILURES, Runner, forfeit_unused};
use crate::advice::describe;
use crate::journal::State;
use crate::scheduler::PollScheduler;
use anyhow::Result;
use happyhorse_sandbox::Plugin;
use happyhorse_sandbox::api::{Error as ApiError, JobState};
use std::time::Duration;
use tokio::time::Instant;

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

impl Runner<'_> {
    /// Poll `submitted` until the job ends (→ `completed` / `failed`) or this run's deadline,
    /// when the session's scheduler says: a probe of its progress, then a poll just after
    /// the predicted end.
    pub(super) async fn wait(
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
                    let progress = scheduler.observed(job_id, &status, sent, received);
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
                        JobState::Running(_) => {
                            self.progress.progress(name, "running", progress.shown);
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
}
