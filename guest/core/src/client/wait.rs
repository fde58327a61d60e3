//! The wait loop: poll until the job ends or the policy's deadline passes, absorbing the
//! failures that only cost one poll, and `generate` (submit, then wait) whose errors always
//! name the submitted job so that it is resumed rather than paid for twice.

use super::Client;
use super::host::{Env, Transport};
use crate::model::{
    Error, JobFailure, JobResult, JobState, JobStatus, TransportKind, VideoRequest,
};
use crate::provider::Provider;

impl<P: Provider, T: Transport, E: Env> Client<P, T, E> {
    /// Poll until the job ends or the policy's deadline passes.
    pub fn wait(&mut self, job_id: &str) -> Result<JobResult, Error> {
        self.wait_from(job_id, 0)
    }

    /// Submit, then wait. Errors after the submit name the job so it is never lost.
    pub fn generate(&mut self, request: &VideoRequest) -> Result<JobResult, Error> {
        let job_id = self.submit(request)?;
        // A job just accepted is queued: polling at once would only spend budget.
        let first_delay = u64::from(self.config.poll.min_interval_ms);
        self.wait_from(&job_id, first_delay)
            .map_err(|e| with_job_context(e, &job_id))
    }

    /// `wait`, first pausing `first_delay_ms`; sets the deadline that bounds every request
    /// and retry inside it, and clears it after.
    fn wait_from(&mut self, job_id: &str, first_delay_ms: u64) -> Result<JobResult, Error> {
        let start = self.env.monotonic_ms();
        let deadline = start.saturating_add(self.config.poll.deadline_ms);
        self.deadline_ms = Some(deadline);
        let outcome = self.wait_until(job_id, first_delay_ms, start, deadline);
        self.deadline_ms = None;
        outcome
    }

    /// The loop itself, run with the wait's deadline already set.
    fn wait_until(
        &mut self,
        job_id: &str,
        first_delay_ms: u64,
        start: u64,
        deadline: u64,
    ) -> Result<JobResult, Error> {
        let mut last_status: Option<JobStatus> = None;
        let mut delay = first_delay_ms;
        loop {
            let now = self.env.monotonic_ms();
            if now >= deadline {
                return Err(Error::Timeout {
                    job_id: job_id.to_string(),
                    last_status: last_status.map(Box::new),
                });
            }
            if delay > 0 {
                self.env.sleep_ms(delay.min(deadline - now));
            }
            let age = self.env.monotonic_ms().saturating_sub(start);
            match self.poll_with_age(job_id, Some(age)) {
                Ok(status) => {
                    if let Some(done) = finished(job_id, &status)? {
                        return Ok(done);
                    }
                    delay = u64::from(status.next_poll_ms);
                    last_status = Some(status);
                }
                // The job goes on at the provider whatever happens to one poll: transient
                // failures are absorbed until the deadline, and `Timeout` carries the id. An
                // unreadable answer cut short by the deadline is a timeout too; one that
                // outlived every retry is persistent and ends the wait.
                Err(e)
                    if is_transient(&e)
                        || (matches!(e, Error::MalformedResponse(_))
                            && self.env.monotonic_ms() >= deadline) =>
                {
                    delay = u64::from(self.config.poll.max_interval_ms);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A terminal status as `wait`'s outcome; `None` while the job is still going.
fn finished(job_id: &str, status: &JobStatus) -> Result<Option<JobResult>, Error> {
    let failure = |code: &str, message: &str| Error::JobFailed {
        job_id: job_id.to_string(),
        failure: JobFailure {
            code: code.into(),
            message: message.into(),
        },
    };
    match &status.state {
        JobState::Queued | JobState::Running(_) => Ok(None),
        JobState::Completed(outputs) => Ok(Some(JobResult {
            job_id: job_id.to_string(),
            outputs: outputs.clone(),
            status: status.clone(),
        })),
        JobState::Failed(f) => Err(Error::JobFailed {
            job_id: job_id.to_string(),
            failure: f.clone(),
        }),
        JobState::Cancelled => Err(failure("cancelled", "the job was cancelled")),
        JobState::Expired => Err(failure("expired", "the job expired")),
    }
}

/// A failure that costs one poll, not the wait: the job goes on at the provider.
fn is_transient(e: &Error) -> bool {
    match e {
        Error::RateLimited { .. } | Error::ServerError(_) => true,
        Error::Transport(t) => t.kind != TransportKind::Denied && t.kind != TransportKind::Tls,
        _ => false,
    }
}

/// Name the submitted job in an error that would otherwise not carry its id, so a caller of
/// `generate` can always resume instead of resubmitting.
fn with_job_context(e: Error, job_id: &str) -> Error {
    let note = format!(" (job {job_id} was submitted and may still complete: resume it with wait)");
    match e {
        Error::Unauthorized(mut a) => {
            a.message.push_str(&note);
            Error::Unauthorized(a)
        }
        Error::MalformedResponse(mut a) => {
            a.message.push_str(&note);
            Error::MalformedResponse(a)
        }
        Error::Transport(mut t) => {
            t.message.push_str(&note);
            Error::Transport(t)
        }
        Error::InsufficientCredits(mut a) => {
            a.message.push_str(&note);
            Error::InsufficientCredits(a)
        }
        other => other,
    }
}
