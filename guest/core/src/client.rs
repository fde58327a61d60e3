//! The protocol driver: submit once, poll, wait — over any [`Transport`] and [`Env`].
//!
//! This is where "never pay twice" is decided, so it is written against two small traits
//! instead of WASI: the component plugs in WASI-HTTP and wasi:clocks, the tests plug in a
//! scripted fake and a virtual clock, and the same code runs in both.
//!
//! Retry rules:
//! - a **submit** is resent only when the provider provably did not accept it: `429`, a
//!   `503` (the provider's documented "model unavailable, retry shortly"), or a connection
//!   that never opened. Any other failure after the body may have left is reported as
//!   [`Error::SubmitOutcomeUnknown`] — the job may exist and be billed;
//! - a **poll** is a read, so it is retried on `429`, any `5xx`, any transport failure
//!   except a policy denial (which no retry can change), and an answer it cannot read (an
//!   HTML page from a gateway, truncated JSON): only a persistent one fails the call.
//!
//! Time rules: every request carries connect, first-byte and between-bytes timeouts and a
//! limit on its whole exchange (their sum); inside `wait` all of them, and every retry's
//! sleep, end at the wait's deadline, so `wait` returns `timeout` on time whatever the
//! server does.

use crate::backoff::{next_poll_ms, retry_delay_ms};
use crate::model::*;
use crate::provider::Provider;
use crate::time::{parse_retry_after, parse_timestamp_ms};
use std::time::{Duration, UNIX_EPOCH};

/// Default connect timeout per request.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u32 = 10_000;
/// Default wait for the start of an answer. Job objects come back in milliseconds; a submit
/// with inline images must upload them first, which this leaves room for.
pub const DEFAULT_FIRST_BYTE_TIMEOUT_MS: u32 = 30_000;
/// Default longest pause inside an answer's body.
pub const DEFAULT_BETWEEN_BYTES_TIMEOUT_MS: u32 = 15_000;
/// How long a host may hold a request before sending it — waiting for an account-wide
/// request budget, as `host-demo` does — on top of the request's own timeouts: the
/// component's own clock allows for it, so a request still queued in the host is never
/// taken for one the server is ignoring (and a submit never reported as of unknown outcome
/// when it never left). Inside `wait`, the deadline still bounds everything.
pub const HOST_QUEUE_ALLOWANCE_MS: u32 = 65_000;
/// The range every per-request timeout must fall in, ms.
const TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u32> = 100..=600_000;
/// Default cap on a response body. Job objects are a few hundred bytes; 1 MiB leaves
/// room for verbose providers while keeping a hostile one from exhausting guest memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: u32 = 1 << 20;
/// Polls closer together than this would only burn the account's request budget.
pub const MIN_POLL_INTERVAL_MS: u32 = 10;

/// HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

/// One outgoing request, already fully decided.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method.
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    /// Bearer token for the `Authorization` header.
    pub bearer: String,
    /// JSON body, if any.
    pub json_body: Option<Vec<u8>>,
    /// How long each phase of the exchange may take.
    pub timeouts: Timeouts,
    /// Read at most this many body bytes; more is [`BodyError::TooLarge`].
    pub max_body_bytes: u32,
}

/// The time bounds of one request, already cut to what is left of a `wait`'s deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the connection, ms.
    pub connect_ms: u32,
    /// From the connection to the response head, ms.
    pub first_byte_ms: u32,
    /// The longest pause between two pieces of the response body, ms.
    pub between_bytes_ms: u32,
    /// The whole exchange, from handing the request to the host to its last body byte, ms:
    /// the three timeouts and [`HOST_QUEUE_ALLOWANCE_MS`]. A transport also ends the body
    /// within `first_byte_ms + between_bytes_ms` of the head, which is what bounds a server
    /// that trickles its answer one byte at a time.
    pub total_ms: u64,
}

impl std::fmt::Debug for HttpRequest {
    // Hand-written so the bearer token never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("json_body_len", &self.json_body.as_ref().map(Vec::len))
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// Why a response body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body was longer than the cap.
    TooLarge {
        /// The cap, bytes.
        limit: u32,
    },
    /// The stream failed mid-body.
    Read(String),
}

/// A response as the driver needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// The `Retry-After` header, verbatim.
    pub retry_after: Option<String>,
    /// The body, read up to the cap.
    pub body: Result<Vec<u8>, BodyError>,
}

/// Sends one HTTP request. Implementations must not retry on their own.
pub trait Transport {
    /// Send `request` and read its response body up to `request.max_body_bytes`.
    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, TransportFailure>;
}

/// Time and randomness, so the driver's schedule is testable with a virtual clock.
pub trait Env {
    /// Wall-clock time, ms since the Unix epoch (to age jobs from `created_at`).
    fn now_unix_ms(&self) -> u64;
    /// A monotonic clock, ms (for deadlines).
    fn monotonic_ms(&self) -> u64;
    /// Block for `ms` milliseconds.
    fn sleep_ms(&mut self, ms: u64);
    /// A random number for jitter.
    fn random_u64(&mut self) -> u64;
}

/// The caller's configuration, before defaults (the WIT `client-config`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigInput {
    /// Base URL; `None` is the provider's ([`Provider::default_base_url`]).
    pub base_url: Option<String>,
    /// API key; `None` falls back to the environment.
    pub api_key: Option<String>,
    /// Connect timeout, ms.
    pub connect_timeout_ms: Option<u32>,
    /// First-byte timeout, ms.
    pub first_byte_timeout_ms: Option<u32>,
    /// Between-bytes timeout, ms.
    pub between_bytes_timeout_ms: Option<u32>,
    /// Response body cap, bytes.
    pub max_response_bytes: Option<u32>,
    /// Poll policy.
    pub poll: Option<PollPolicy>,
}

impl ConfigInput {
    /// Apply `provider`'s defaults and check every setting, taking the key from `env_key`
    /// (the value of [`Provider::api_key_env`]) when none was passed. A missing or unusable
    /// key is refused here, before anything is sent.
    pub fn resolve(
        self,
        provider: &impl Provider,
        env_key: Option<String>,
    ) -> Result<ClientConfig, Error> {
        let mut violations = Vec::new();
        let base_url = check_base_url(
            self.base_url
                .as_deref()
                .unwrap_or(provider.default_base_url()),
            &mut violations,
        );
        let poll = self.poll.unwrap_or_default();
        check_poll_policy(&poll, &mut violations);
        let max_response_bytes = self
            .max_response_bytes
            .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
        if !(1024..=64 << 20).contains(&max_response_bytes) {
            violations.push(violation(
                "max-response-bytes",
                "out-of-range",
                format!("max-response-bytes is {max_response_bytes}; use 1024 to 67108864"),
            ));
        }
        let mut timeout = |field: &str, given: Option<u32>, default: u32| {
            let ms = given.unwrap_or(default);
            if !TIMEOUT_RANGE_MS.contains(&ms) {
                violations.push(violation(
                    field,
                    "out-of-range",
                    format!(
                        "{field} is {ms}; use {} to {} milliseconds",
                        TIMEOUT_RANGE_MS.start(),
                        TIMEOUT_RANGE_MS.end()
                    ),
                ));
            }
            ms
        };
        let connect_timeout_ms = timeout(
            "connect-timeout-ms",
            self.connect_timeout_ms,
            DEFAULT_CONNECT_TIMEOUT_MS,
        );
        let first_byte_timeout_ms = timeout(
            "first-byte-timeout-ms",
            self.first_byte_timeout_ms,
            DEFAULT_FIRST_BYTE_TIMEOUT_MS,
        );
        let between_bytes_timeout_ms = timeout(
            "between-bytes-timeout-ms",
            self.between_bytes_timeout_ms,
            DEFAULT_BETWEEN_BYTES_TIMEOUT_MS,
        );
        if !violations.is_empty() {
            return Err(Error::InvalidRequest(violations));
        }
        let api_key = self
            .api_key
            .filter(|k| !k.trim().is_empty())
            .or(env_key.filter(|k| !k.trim().is_empty()));
        let api_key = match api_key {
            None => {
                return Err(Error::Unauthorized(ApiError {
                    status: 0,
                    code: Some("missing_api_key".into()),
                    message: format!(
                        "no API key: set {} in the component's environment or pass client-config.api-key",
                        provider.api_key_env()
                    ),
                }));
            }
            // A key is sent as a header value: anything but visible ASCII could split the
            // header or be mangled, so it is refused rather than sent.
            Some(k) if !k.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(Error::Unauthorized(ApiError {
                    status: 0,
                    code: Some("invalid_api_key".into()),
                    message: "the API key contains spaces or non-ASCII characters; copy it again from the dashboard".into(),
                }));
            }
            Some(k) => k,
        };
        Ok(ClientConfig {
            base_url,
            api_key: Some(api_key),
            connect_timeout_ms,
            first_byte_timeout_ms,
            between_bytes_timeout_ms,
            max_response_bytes,
            poll,
        })
    }
}

fn violation(field: &str, rule: &str, message: String) -> FieldViolation {
    FieldViolation {
        field: field.into(),
        rule: rule.into(),
        message,
    }
}

fn check_base_url(given: &str, violations: &mut Vec<FieldViolation>) -> String {
    let url = given.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let ok = match rest {
        Some(rest) => {
            let host = rest.split('/').next().unwrap_or("");
            !host.is_empty()
                && !rest.contains(['?', '#', '@'])
                && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !ok {
        violations.push(violation(
            "base-url",
            "invalid-format",
            format!(
                "base-url {url:?} is not an http(s) URL with a host and no query, fragment or credentials"
            ),
        ));
    }
    url.to_string()
}

fn check_poll_policy(p: &PollPolicy, violations: &mut Vec<FieldViolation>) {
    if p.min_interval_ms < MIN_POLL_INTERVAL_MS {
        violations.push(violation(
            "poll.min-interval-ms",
            "out-of-range",
            format!(
                "min-interval-ms is {}; use at least {MIN_POLL_INTERVAL_MS}",
                p.min_interval_ms
            ),
        ));
    }
    if p.max_interval_ms < p.min_interval_ms {
        violations.push(violation(
            "poll.max-interval-ms",
            "out-of-range",
            format!(
                "max-interval-ms ({}) is below min-interval-ms ({})",
                p.max_interval_ms, p.min_interval_ms
            ),
        ));
    }
    if p.deadline_ms == 0 {
        violations.push(violation(
            "poll.deadline-ms",
            "out-of-range",
            "deadline-ms is 0; give wait some time".into(),
        ));
    }
    if p.max_retries > 20 {
        violations.push(violation(
            "poll.max-retries",
            "out-of-range",
            format!(
                "max-retries is {}; at most 20 (each retry spends the account's request budget)",
                p.max_retries
            ),
        ));
    }
}

/// Drives one account of `P`'s API through a [`Transport`].
pub struct Client<P, T, E> {
    provider: P,
    config: ClientConfig,
    transport: T,
    env: E,
    /// While `wait` runs, its deadline on [`Env::monotonic_ms`]: no request or retry
    /// outlives it.
    deadline_ms: Option<u64>,
}

/// What one attempt at a request came to.
enum Attempt<T> {
    /// The call's outcome: no further attempt.
    Done(Result<T, Error>),
    /// Worth another try after `delay_ms`; `error` is the outcome if none is left.
    Retry { delay_ms: u64, error: Error },
}

impl<P: Provider, T: Transport, E: Env> Client<P, T, E> {
    /// A client of `provider` for a resolved configuration (see [`ConfigInput::resolve`]).
    pub fn new(provider: P, config: ClientConfig, transport: T, env: E) -> Self {
        Client {
            provider,
            config,
            transport,
            env,
            deadline_ms: None,
        }
    }

    /// Give back the transport and environment (tests inspect them).
    pub fn into_parts(self) -> (T, E) {
        (self.transport, self.env)
    }

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

    fn request(&self, method: Method, path: &str, json_body: Option<Vec<u8>>) -> HttpRequest {
        HttpRequest {
            method,
            url: format!("{}{path}", self.config.base_url),
            bearer: self.config.api_key.clone().unwrap_or_default(),
            json_body,
            timeouts: self.timeouts(),
            max_body_bytes: self.config.max_response_bytes,
        }
    }

    fn retry_after_ms(&self, response: &HttpResponse) -> Option<u64> {
        let now = UNIX_EPOCH + Duration::from_millis(self.env.now_unix_ms());
        response
            .retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, now))
    }

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

    /// Send `http` until `classify` settles the outcome, sleeping between tries — at most
    /// `max-retries` more times, and never past the wait's deadline.
    fn exchange<R>(
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

    fn retry<R>(&mut self, attempt: u32, retry_after_ms: Option<u64>, error: Error) -> Attempt<R> {
        Attempt::Retry {
            delay_ms: retry_delay_ms(attempt, retry_after_ms, self.env.random_u64()),
            error,
        }
    }

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
    fn poll_with_age(
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
        let next = next_poll_ms(&self.config.poll, parsed.progress, age, retry_after_ms);
        JobStatus {
            job_id: job_id.to_string(),
            state: parsed.state,
            raw_status: parsed.raw_status,
            created_at: parsed.created_at,
            completed_at: parsed.completed_at,
            next_poll_ms: next,
        }
    }

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

    fn wait_from(&mut self, job_id: &str, first_delay_ms: u64) -> Result<JobResult, Error> {
        let start = self.env.monotonic_ms();
        let deadline = start.saturating_add(self.config.poll.deadline_ms);
        self.deadline_ms = Some(deadline);
        let outcome = self.wait_until(job_id, first_delay_ms, start, deadline);
        self.deadline_ms = None;
        outcome
    }

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

fn api_error(provider: &impl Provider, response: &HttpResponse) -> ApiError {
    match &response.body {
        Ok(body) => provider.read_error(response.status, body),
        Err(e) => ApiError {
            status: response.status,
            code: None,
            message: body_error_message(e),
        },
    }
}

fn body_error_message(e: &BodyError) -> String {
    match e {
        BodyError::TooLarge { limit } => {
            format!("the response body is larger than max-response-bytes ({limit} bytes)")
        }
        BodyError::Read(m) => format!("the response body could not be read: {m}"),
    }
}

/// A `4xx` refusal: the provider did not accept the request, so nothing was billed.
fn refusal(api: ApiError) -> Error {
    match (api.status, api.code.as_deref()) {
        (401 | 403, _) => Error::Unauthorized(api),
        (402, _) | (_, Some("insufficient_credits")) => Error::InsufficientCredits(api),
        (400 | 404 | 413 | 422, _) => Error::InvalidRequest(vec![FieldViolation {
            field: "request".into(),
            rule: api.code.clone().unwrap_or_else(|| "rejected".into()),
            message: format!(
                "the provider refused the request (HTTP {}): {}",
                api.status, api.message
            ),
        }]),
        _ => Error::ServerError(api),
    }
}

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

// The driver's tests run it against a real provider's rules: `happyhorse-core`'s
// `driver_tests`.
