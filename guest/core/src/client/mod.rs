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
//!
//! [`Error::SubmitOutcomeUnknown`]: crate::model::Error::SubmitOutcomeUnknown

// One file per job, each saying what it does: the seams (`host`), the configuration
// (`config`), one request and its retries (`exchange`), what a failed answer means
// (`answer`), and the three paths (`submit`, `poll`, `wait`), each adding its methods to
// `Client`.
mod answer;
mod config;
mod exchange;
mod host;
mod poll;
mod submit;
mod wait;

// The driver's public surface stays at `client::…`, whichever file an item lives in, so
// the component and the hosts import it from one place.
pub use config::{
    ConfigInput, DEFAULT_BETWEEN_BYTES_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS,
    DEFAULT_FIRST_BYTE_TIMEOUT_MS, DEFAULT_MAX_RESPONSE_BYTES, MIN_POLL_INTERVAL_MS,
};
pub use host::{
    BodyError, Env, HOST_QUEUE_ALLOWANCE_MS, HttpRequest, HttpResponse, Method, Timeouts, Transport,
};

use crate::model::ClientConfig;
use crate::provider::Provider;

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
}

// The driver's tests run it against a real provider's rules: `happyhorse-core`'s
// `driver_tests`.
