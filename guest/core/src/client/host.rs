//! What the driver asks of whoever runs it: one HTTP exchange at a time ([`Transport`]) and
//! a clock with a source of randomness ([`Env`]), with the request and response types that
//! cross that line.
//!
//! Kept apart from the driver's logic because this is the seam the component fills with
//! WASI-HTTP and `wasi:clocks`, and the tests with a scripted fake and a virtual clock.

use crate::model::TransportFailure;

/// How long a host may hold a request before sending it — waiting for an account-wide
/// request budget, as `host-demo` does — on top of the request's own timeouts: the
/// component's own clock allows for it, so a request still queued in the host is never
/// taken for one the server is ignoring (and a submit never reported as of unknown outcome
/// when it never left). Inside `wait`, the deadline still bounds everything.
pub const HOST_QUEUE_ALLOWANCE_MS: u32 = 65_000;

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
