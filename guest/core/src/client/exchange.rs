//! One request, sent until its outcome is settled: built from the configuration, bounded in
//! time by what is left of a `wait`'s deadline, and retried with backoff while the path's
//! classifier (submit or poll) says another try is worth it.

use super::Client;
use super::host::{
    Env, HOST_QUEUE_ALLOWANCE_MS, HttpRequest, HttpResponse, Method, Timeouts, Transport,
};
use crate::backoff::retry_delay_ms;
use crate::model::{Error, TransportFailure};
use crate::provider::Provider;
use crate::time::parse_retry_after;
use std::time::{Duration, UNIX_EPOCH};

/// What one attempt at a request came to.
pub(super) enum Attempt<T> {
    /// The call's outcome: no further attempt.
    Done(Result<T, Error>),
    /// Worth another try after `delay_ms`; `error` is the outcome if none is left.
    Retry { delay_ms: u64, error: Error },
}

impl<P: Provider, T: Transport, E: Env> Client<P, T, E> {
    /// Milliseconds left before the wait's deadline, if one is running.
    fn remaining_ms(&self) -> Option<u64> {
        self.deadline_ms
            .map(|deadline| deadline.saturating_sub(self.env.monotonic_ms()))
    }

    /// The next request's time bounds: the configured timeouts, none past the wait's
    /// deadline (and at least 1 ms: some hosts read 0 as "no timeout").
    pub fn timeouts(&self) -> Timeouts {
        let c = &self.config;
        let remaining = self.remaining_ms().unwrap_or(u64::MAX).max(1);
        let cut = |ms: u32| u32::try_from(u64::from(ms).min(remaining)).unwrap_or(ms);
        let sum = u64::from(c.connect_timeout_ms)
            + u64::from(c.first_byte_timeout_ms)
            + u64::from(c.between_bytes_timeout_ms)
            + u64::from(HOST_QUEUE_ALLOWANCE_MS);
        Timeouts {
            connect_ms: cut(c.connect_timeout_ms),
            first_byte_ms: cut(c.first_byte_timeout_ms),
            between_bytes_ms: cut(c.between_bytes_timeout_ms),
            total_ms: sum.min(remaining),
        }
    }

    /// A request to `path` under the configured base URL, carrying the key and the time
    /// bounds it may take now.
    pub(super) fn request(
        &self,
        method: Method,
        path: &str,
        json_body: Option<Vec<u8>>,
    ) -> HttpRequest {
        HttpRequest {
            method,
            url: format!("{}{path}", self.config.base_url),
            bearer: self.config.api_key.clone().unwrap_or_default(),
            json_body,
            timeouts: self.timeouts(),
            max_body_bytes: self.config.max_response_bytes,
        }
    }

    /// The wait the provider asked for in `Retry-After`, ms, if it asked.
    pub(super) fn retry_after_ms(&self, response: &HttpResponse) -> Option<u64> {
        let now = UNIX_EPOCH + Duration::from_millis(self.env.now_unix_ms());
        response
            .retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, now))
    }

    /// Send `http` until `classify` settles the outcome, sleeping between tries — at most
    /// `max-retries` more times, and never past the wait's deadline.
    pub(super) fn exchange<R>(
        &mut self,
        http: &HttpRequest,
        mut classify: impl FnMut(&mut Self, Result<HttpResponse, TransportFailure>, u32) -> Attempt<R>,
    ) -> Result<R, Error> {
        let max_retries = self.config.poll.max_retries;
        let mut attempt = 0;
        let mut http = http.clone();
        loop {
            let outcome = self.transport.send(&http);
            match classify(self, outcome, attempt) {
                Attempt::Done(result) => return result,
                Attempt::Retry { error, .. } if attempt >= max_retries => return Err(error),
                Attempt::Retry { delay_ms, error } => {
                    if self.remaining_ms().is_some_and(|left| left <= delay_ms) {
                        return Err(error);
                    }
                    self.env.sleep_ms(delay_ms);
                    attempt += 1;
                    // The retry's timeouts shrink with the time left.
                    http.timeouts = self.timeouts();
                }
            }
        }
    }

    /// Another try after the backoff for `attempt` (at least the provider's `Retry-After`),
    /// with `error` as the outcome should no try be left.
    pub(super) fn retry<R>(
        &mut self,
        attempt: u32,
        retry_after_ms: Option<u64>,
        error: Error,
    ) -> Attempt<R> {
        Attempt::Retry {
            delay_ms: retry_delay_ms(attempt, retry_after_ms, self.env.random_u64()),
            error,
        }
    }
}
