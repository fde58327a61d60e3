//! The submit path: validate, send once, and decide whether a failed submit may be sent
//! again. This is where "never pay twice" is kept: a submit is resent only when the
//! provider provably did not accept it, and an answer that leaves the job's existence in
//! doubt becomes [`Error::SubmitOutcomeUnknown`] rather than a second try.

use super::Client;
use super::answer::{api_error, body_error_message, refusal};
use super::exchange::Attempt;
use super::host::{Env, HttpResponse, Method, Transport};
use crate::model::{Error, TransportFailure, TransportKind, VideoRequest};
use crate::provider::Provider;

impl<P: Provider, T: Transport, E: Env> Client<P, T, E> {
    /// Validate `request` and create one job. See the module docs for what is retried.
    pub fn submit(&mut self, request: &VideoRequest) -> Result<String, Error> {
        let validated = self
            .provider
            .validate(request)
            .map_err(Error::InvalidRequest)?;
        let body = self
            .provider
            .submit_body(&validated)
            .map_err(|v| Error::InvalidRequest(vec![v]))?;
        let http = self.request(Method::Post, self.provider.submit_path(), Some(body));
        self.exchange(&http, Self::classify_submit)
    }

    /// One submit attempt's outcome: settled, or worth resending only when the provider
    /// cannot have accepted it (the cases are listed in the `client` module docs).
    fn classify_submit(
        &mut self,
        outcome: Result<HttpResponse, TransportFailure>,
        attempt: u32,
    ) -> Attempt<String> {
        let response = match outcome {
            Ok(r) => r,
            Err(t) if t.kind.nothing_was_sent() => {
                return self.retry(attempt, None, Error::Transport(t));
            }
            // A TLS failure happens in the handshake, before the request is written.
            Err(t) if t.kind == TransportKind::Denied || t.kind == TransportKind::Tls => {
                return Attempt::Done(Err(Error::Transport(t)));
            }
            Err(t) => {
                return Attempt::Done(Err(Error::SubmitOutcomeUnknown(format!(
                    "the submit was sent but no answer arrived: {} ({}); the job may exist and be billed — check the account's usage before submitting again",
                    t.kind.in_words(),
                    t.message
                ))));
            }
        };
        let status = response.status;
        if (200..300).contains(&status) {
            return Attempt::Done(read_job_id(&self.provider, response));
        }
        let retry_after = self.retry_after_ms(&response);
        let api = api_error(&self.provider, &response);
        match status {
            429 => self.retry(
                attempt,
                retry_after,
                Error::RateLimited {
                    retry_after_ms: retry_after,
                    message: api.message,
                },
            ),
            503 => self.retry(attempt, retry_after, Error::ServerError(api)),
            500..=599 => Attempt::Done(Err(Error::SubmitOutcomeUnknown(format!(
                "the provider answered the submit with HTTP {status} ({}); a gateway error can hide a created job — check the account's usage before submitting again",
                api.message
            )))),
            _ => Attempt::Done(Err(refusal(api))),
        }
    }
}

/// The new job's id, read from an accepted submit's answer.
fn read_job_id(provider: &impl Provider, response: HttpResponse) -> Result<String, Error> {
    // Only ever called for a 2xx.
    // A 2xx means the provider accepted the job: if its id cannot be read, it may exist
    // and be billed, which is exactly the "outcome unknown" case.
    let body = response.body.map_err(|e| {
        Error::SubmitOutcomeUnknown(format!(
            "the provider accepted the submit (HTTP {}) but {}; check the account's usage for the job",
            response.status,
            body_error_message(&e)
        ))
    })?;
    provider.read_submit(&body).map_err(|why| {
        Error::SubmitOutcomeUnknown(format!(
            "the provider accepted the submit (HTTP {}) but its answer is unreadable ({why}); check the account's usage for the job",
            response.status
        ))
    })
}
