//! The poll path: one read of a job's state, retried as a read may be (the job itself is
//! never touched), and the spacing of the next poll from the job's age and progress.

use super::Client;
use super::answer::{api_error, body_error_message, refusal};
use super::exchange::Attempt;
use super::host::{Env, HttpResponse, Method, Transport};
use crate::backoff::next_poll_ms;
use crate::model::{ApiError, Error, JobStatus, ParsedJob, TransportFailure, TransportKind};
use crate::provider::Provider;
use crate::time::parse_timestamp_ms;

impl<P: Provider, T: Transport, E: Env> Client<P, T, E> {
    /// Read a job's state once (retrying only the read itself, and never for longer than
    /// the poll policy's deadline: a caller that polls in its own loop passes what is left
    /// of its own deadline there).
    pub fn poll(&mut self, job_id: &str) -> Result<JobStatus, Error> {
        let deadline = self
            .env
            .monotonic_ms()
            .saturating_add(self.config.poll.deadline_ms);
        self.deadline_ms = Some(deadline);
        let outcome = self.poll_with_age(job_id, None);
        self.deadline_ms = None;
        outcome
    }

    /// `poll`, with a fallback age (ms) for jobs whose `created_at` cannot be read.
    pub(super) fn poll_with_age(
        &mut self,
        job_id: &str,
        local_age_ms: Option<u64>,
    ) -> Result<JobStatus, Error> {
        let path = self
            .provider
            .job_path(job_id)
            .map_err(|v| Error::InvalidRequest(vec![v]))?;
        let http = self.request(Method::Get, &path, None);
        let (parsed, retry_after) = self.exchange(&http, |c, outcome, attempt| {
            c.classify_read(outcome, attempt, job_id)
        })?;
        Ok(self.job_status(job_id, parsed, local_age_ms, retry_after))
    }

    /// A poll is a read: everything but a denial, a TLS failure or a refusal is worth
    /// another try, an unreadable answer included (a gateway's HTML page during an incident).
    fn classify_read(
        &mut self,
        outcome: Result<HttpResponse, TransportFailure>,
        attempt: u32,
        job_id: &str,
    ) -> Attempt<(ParsedJob, Option<u64>)> {
        let response = match outcome {
            Ok(r) => r,
            Err(t) if t.kind == TransportKind::Denied || t.kind == TransportKind::Tls => {
                return Attempt::Done(Err(Error::Transport(t)));
            }
            Err(t) => return self.retry(attempt, None, Error::Transport(t)),
        };
        let status = response.status;
        let retry_after = self.retry_after_ms(&response);
        if (200..300).contains(&status) {
            return match read_job(&self.provider, &response, job_id) {
                Ok(parsed) => Attempt::Done(Ok((parsed, retry_after))),
                Err(malformed) => self.retry(attempt, retry_after, malformed),
            };
        }
        let api = api_error(&self.provider, &response);
        match status {
            404 => Attempt::Done(Err(Error::NotFound(job_id.to_string()))),
            429 => self.retry(
                attempt,
                retry_after,
                Error::RateLimited {
                    retry_after_ms: retry_after,
                    message: api.message,
                },
            ),
            500..=599 => self.retry(attempt, retry_after, Error::ServerError(api)),
            _ => Attempt::Done(Err(refusal(api))),
        }
    }

    /// The status the caller sees: the parsed job, and the next poll spaced by its age
    /// (from `created_at`, else `local_age_ms`) and progress.
    fn job_status(
        &self,
        job_id: &str,
        parsed: ParsedJob,
        local_age_ms: Option<u64>,
        retry_after_ms: Option<u64>,
    ) -> JobStatus {
        let now = self.env.now_unix_ms();
        let age = parsed
            .created_at
            .as_deref()
            .and_then(parse_timestamp_ms)
            .filter(|&created| created <= now)
            .map(|created| now - created)
            .or(local_age_ms);
        let progress = parsed.progress.map(|p| p.fraction());
        let next = next_poll_ms(&self.config.poll, progress, age, retry_after_ms);
        JobStatus {
            job_id: job_id.to_string(),
            state: parsed.state,
            progress_reading: parsed.progress,
            raw_status: parsed.raw_status,
            created_at: parsed.created_at,
            completed_at: parsed.completed_at,
            next_poll_ms: next,
        }
    }
}

/// The job in a `2xx` answer to a poll, checked to be the job that was asked about.
fn read_job(
    provider: &impl Provider,
    response: &HttpResponse,
    job_id: &str,
) -> Result<ParsedJob, Error> {
    let malformed = |message: String| {
        Error::MalformedResponse(ApiError {
            status: response.status,
            code: None,
            message: format!(
                "polling job {job_id}: {message} (the job goes on at the provider: poll it again later)"
            ),
        })
    };
    let body = response
        .body
        .as_ref()
        .map_err(|e| malformed(body_error_message(e)))?;
    let parsed = provider
        .read_job(body)
        .map_err(|why| malformed(why.to_string()))?;
    match &parsed.job_id {
        Some(other) if other != job_id => Err(malformed(format!(
            "asked for job {job_id} but the provider answered about job {other}"
        ))),
        _ => Ok(parsed),
    }
}
