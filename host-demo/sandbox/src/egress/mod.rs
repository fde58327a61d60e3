//! The egress hook: what a plugin may reach and send, enforced at the WASI-HTTP boundary.
//!
//! The rules live one job to a file: [`origin`] (the allow-list's unit), [`credential`] (which
//! calls go out with the key, and the swap), [`budget`] (the account-wide request budget and
//! its grants), [`connections`] (the shared keep-alive connections); this file is the hook
//! that applies them, with the per-plugin concurrency and the response-size cap.
//!
//! Every outgoing request from the component passes through
//! [`WasiHttpHooks::send_request`], where, in order:
//! 1. a request to an origin (scheme, host, port) not on the allow-list is refused with
//!    `HttpRequestDenied` before any connection is opened, and logged — other hosts, other
//!    ports, metadata addresses, and every hop of a redirect the plugin tries to follow;
//! 2. a `Host` header that disagrees with the URI is refused (WASI-HTTP already forbids
//!    guests from setting it);
//! 3. on the API origin, only the calls the component makes are admitted
//!    ([`Credential::admit`]: `POST /v1/videos/generations` and `GET /v1/jobs/{id}`, no query,
//!    with `Authorization` exactly `Bearer <placeholder>`), and the placeholder is swapped for
//!    the real key in those only — anything else (`TRACE`, another path, an echo endpoint, the
//!    placeholder inside some other value) is refused before a connection opens, so the key
//!    cannot be echoed back to the plugin;
//! 4. more than the plugin's share of concurrent requests is refused;
//! 5. the request waits for a token from the account-wide budget (unless a scheduler took
//!    one for it already: [`OutboundPolicy::prepay`]);
//! 6. the request goes out over the shared keep-alive [`Connections`] when it has them
//!    (Wasmtime's default sender, a new connection per request, otherwise), with the
//!    plugin's first-byte and between-bytes timeouts cut to the host's [`RequestBounds`] —
//!    a plugin that asks for none, or for hours, still cannot hold a request open longer;
//! 7. the response body is capped, and a `429` slows the whole budget down.

pub(crate) mod budget;
pub(crate) mod connections;
pub(crate) mod credential;
pub(crate) mod origin;

use anyhow::Result;
use budget::{Grant, RequestBudget};
use connections::Connections;
pub use credential::Credential;
use credential::swap_placeholder;
use http_body_util::{BodyExt, Limited};
pub use origin::Origin;
use origin::origin_of;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The longest any plugin request may wait, whatever its `wasi:http` request options ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBounds {
    /// For the start of the answer.
    pub first_byte: Duration,
    /// Between two pieces of the answer's body.
    pub between_bytes: Duration,
}

impl Default for RequestBounds {
    fn default() -> Self {
        RequestBounds {
            first_byte: Duration::from_secs(60),
            between_bytes: Duration::from_secs(30),
        }
    }
}

impl RequestBounds {
    /// The plugin's options with each timeout no longer than these bounds (a missing one
    /// takes the bound). The connect timeout is left as asked: opening a connection sends
    /// nothing, and both senders cap it themselves.
    pub fn apply(self, asked: Option<RequestOptions>) -> RequestOptions {
        let asked = asked.unwrap_or_default();
        let cut =
            |asked: Option<Duration>, bound: Duration| Some(asked.map_or(bound, |d| d.min(bound)));
        RequestOptions {
            connect_timeout: asked.connect_timeout,
            first_byte_timeout: cut(asked.first_byte_timeout, self.first_byte),
            between_bytes_timeout: cut(asked.between_bytes_timeout, self.between_bytes),
        }
    }
}

/// What one plugin instance's outgoing requests are held to.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    allowed: Arc<Vec<Origin>>,
    credential: Option<Arc<Credential>>,
    budget: Option<Arc<RequestBudget>>,
    in_flight: Arc<Semaphore>,
    max_concurrent: usize,
    max_response_bytes: u64,
    bounds: RequestBounds,
    connections: Option<Connections>,
    sent: Arc<AtomicUsize>,
    denied: Arc<AtomicUsize>,
    /// Grants already taken from the budget on this plugin's behalf (by a scheduler): the
    /// next requests carry them instead of waiting for the budget again.
    prepaid: Arc<std::sync::Mutex<std::collections::VecDeque<Grant>>>,
}

impl Default for OutboundPolicy {
    /// Deny everything.
    fn default() -> Self {
        OutboundPolicy::allow(Vec::new())
    }
}

/// Default cap on one response body read through the policy (job objects are tiny).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 4 << 20;
/// Answers up to this size with a `Content-Length` are read whole before the guest sees them.
pub(crate) const BUFFERED_RESPONSE_BYTES: u64 = 64 << 10;
/// The longest a plugin request waits for the account budget before it is given back as never
/// sent: within the minute `client-config` (WIT) tells components a host may queue a request.
pub const MAX_BUDGET_WAIT: Duration = Duration::from_secs(60);
/// Default cap on one plugin's requests in flight at once (the component sends one).
pub const DEFAULT_MAX_CONCURRENT: usize = 4;

impl OutboundPolicy {
    /// Admit exactly these origins (an empty list denies everything), with no credential,
    /// no shared budget and the default caps.
    pub fn allow(origins: Vec<Origin>) -> Self {
        OutboundPolicy {
            allowed: Arc::new(origins),
            credential: None,
            budget: None,
            in_flight: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT)),
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            bounds: RequestBounds::default(),
            connections: None,
            sent: Arc::default(),
            denied: Arc::default(),
            prepaid: Arc::default(),
        }
    }

    /// Swap `credential.placeholder` for the real value on requests to its origin.
    pub(crate) fn with_credential(mut self, credential: Arc<Credential>) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Make every request wait for a token from `budget`.
    pub fn with_budget(mut self, budget: Arc<RequestBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// At most `n` requests in flight at once; more are refused with `ConnectionLimitReached`.
    pub fn with_max_concurrent(mut self, n: usize) -> Self {
        self.in_flight = Arc::new(Semaphore::new(n));
        self.max_concurrent = n;
        self
    }

    /// Refuse response bodies over `bytes`.
    pub fn with_max_response_bytes(mut self, bytes: u64) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Hold every request to `bounds`, whatever the plugin's request options say.
    pub(crate) fn with_request_bounds(mut self, bounds: RequestBounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// Send admitted requests over `connections` (kept alive, shared with other plugins)
    /// instead of a new connection per request.
    pub(crate) fn with_connections(mut self, connections: Connections) -> Self {
        self.connections = Some(connections);
        self
    }

    /// Whether admitted requests go over shared keep-alive connections.
    pub fn has_connections(&self) -> bool {
        self.connections.is_some()
    }

    /// The admitted origins.
    pub fn allowed(&self) -> &[Origin] {
        &self.allowed
    }

    /// `grant` is for this plugin's next request (a scheduler took it when it let the call
    /// out): that request carries it to the wire instead of waiting for the budget again.
    pub fn prepay(&self, grant: Grant) {
        self.prepaid_grants().push_back(grant);
    }

    /// Hands back to the budget the grants [`prepay`](OutboundPolicy::prepay) left unused
    /// (the call sent fewer requests than paid for): they were never sent, so they take no
    /// place. Returns how many there were.
    pub fn forfeit_prepaid(&self) -> usize {
        let unused: Vec<Grant> = self.prepaid_grants().drain(..).collect();
        let n = unused.len();
        unused.into_iter().for_each(Grant::give_back);
        n
    }

    fn prepaid_grants(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Grant>> {
        // A queue of grants holds no invariant a panicking holder could break.
        self.prepaid.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests let through so far: granted by the budget and handed to a sender (a request
    /// refused, or given back while it waited for the budget, is not counted).
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Requests refused so far.
    pub fn denied(&self) -> usize {
        self.denied.load(Ordering::Relaxed)
    }

    /// Whether a request to `uri` may be sent.
    pub fn admits(&self, uri: &http::Uri) -> bool {
        origin_of(uri).is_some_and(|o| self.allowed.iter().any(|a| a == &o))
    }

    fn deny(
        &mut self,
        request: &http::Request<WasiBody>,
        why: &str,
        error: Error,
    ) -> ResponseFuture {
        self.denied.fetch_add(1, Ordering::Relaxed);
        let uri = request.uri();
        // The origin and path only: never headers (they may carry the key) nor the query
        // (signed URLs carry signatures there).
        tracing::warn!(
            method = %request.method(),
            host = uri.host().unwrap_or(""),
            port = uri.port_u16(),
            path = uri.path(),
            "plugin request refused: {why}"
        );
        Box::new(async move { Err(error) })
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type ResponseFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> ResponseFuture {
        let Some(origin) = origin_of(request.uri()) else {
            return self.deny(&request, "no usable origin", Error::HttpRequestUriInvalid);
        };
        if !self.allowed.contains(&origin) {
            return self.deny(
                &request,
                "origin not on the allow-list",
                Error::HttpRequestDenied,
            );
        }
        // Guests cannot set `Host` (WASI-HTTP forbids it), but the connection goes to the
        // URI's authority whatever the header says, so refuse any disagreement outright.
        if let Some(host) = request.headers().get(http::header::HOST) {
            let authority = request.uri().authority().map(|a| a.as_str());
            if host.to_str().ok() != authority {
                return self.deny(
                    &request,
                    "Host header differs from the URI",
                    Error::HttpRequestDenied,
                );
            }
        }
        if let Some(credential) = self.credential.clone().filter(|c| c.origin == origin) {
            if let Err(why) = credential.admit(request.method(), request.uri(), request.headers()) {
                let why = format!("API origin: {why}");
                return self.deny(&request, &why, Error::HttpRequestDenied);
            }
            swap_placeholder(&mut request, &credential);
        }
        if !carries_body(request.method()) {
            without_body(&mut request);
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            let why = format!("more than {} requests in flight", self.max_concurrent);
            return self.deny(&request, &why, Error::ConnectionLimitReached);
        };
        tracing::debug!(method = %request.method(), %origin, path = request.uri().path(), "plugin request");
        // Taken in the order the guest makes its requests: the first ones use what was
        // prepaid.
        let prepaid = self.prepaid_grants().pop_front();
        let budget = self.budget.clone();
        let max = self.max_response_bytes;
        let options = self.bounds.apply(options);
        // A small answer read whole here (below) must arrive whole within what the plugin
        // would give its body: the first-byte and between-bytes times together. Each frame
        // arriving in time is not enough — a trickle would hold the plugin's request.
        let whole_body = options
            .first_byte_timeout
            .unwrap_or(self.bounds.first_byte)
            .saturating_add(
                options
                    .between_bytes_timeout
                    .unwrap_or(self.bounds.between_bytes),
            );
        let options = Some(options);
        let connections = self.connections.clone();
        let sent = self.sent.clone();
        Box::new(async move {
            // The plugin's own clock for an answer started when it handed the request over
            // (the contract lets a host hold a request that long for an account budget): a
            // request still queued past that is given back as never sent — the component
            // resends such a request — rather than left for the plugin's clock to report as
            // sent with its fate unknown. The grant is held until the answer is in: the
            // provider counts the request when it arrives, which is before it answers,
            // however late it was sent.
            let grant = match (prepaid, budget.as_ref()) {
                (Some(grant), _) => Some(grant),
                (None, Some(budget)) => {
                    match tokio::time::timeout(MAX_BUDGET_WAIT, budget.acquire()).await {
                        Ok(grant) => Some(grant),
                        Err(_) => {
                            tracing::debug!(
                                "plugin request given back: the budget had no room in time"
                            );
                            return Err(Error::ConnectionLimitReached);
                        }
                    }
                }
                (None, None) => None,
            };
            // Counted once it may leave: a plugin stopped while its request waited for the
            // budget sent nothing.
            sent.fetch_add(1, Ordering::Relaxed);
            let (response, io): (_, IoFuture) = match connections {
                Some(connections) => {
                    // The pool drives the connection itself; nothing is left to await.
                    let response = connections.send(request, options).await?;
                    (response, Box::new(async { Ok(()) }))
                }
                None => {
                    let (response, io) =
                        wasmtime_wasi_http::default_send_request(request, options).await?;
                    (response.map(|body| body.boxed_unsync()), Box::new(io))
                }
            };
            drop(grant);
            if let Some(budget) = budget
                .as_ref()
                .filter(|_| response.status() == http::StatusCode::TOO_MANY_REQUESTS)
            {
                budget.back_off(retry_after(response.headers()));
            }
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max) {
                return Err(Error::HttpResponseBodySize(declared));
            }
            let limit = usize::try_from(max).unwrap_or(usize::MAX);
            // A small answer of declared length (every job object) is read here, in the
            // task that already waits on the connection, so the guest finds it complete
            // instead of waking once per frame; anything else streams through the cap.
            if declared.is_some_and(|n| n <= BUFFERED_RESPONSE_BYTES) {
                let (parts, body) = response.into_parts();
                let bytes = tokio::time::timeout(whole_body, body.collect())
                    .await
                    .map_err(|_| Error::ConnectionReadTimeout)??
                    .to_bytes();
                drop(permit);
                let body = http_body_util::Full::new(bytes)
                    .map_err(|never| match never {})
                    .boxed_unsync();
                return Ok((http::Response::from_parts(parts, body), io));
            }
            let response = response.map(|body| {
                Limited::new(body, limit)
                    .map_err(move |e| match e.downcast::<Error>() {
                        Ok(inner) => *inner,
                        Err(_) => Error::HttpResponseBodySize(Some(max)),
                    })
                    // The closure owns the in-flight permit: it is released when the guest
                    // drops the body, i.e. once the response has been read.
                    .map_frame(move |frame| {
                        let _in_flight = &permit;
                        frame
                    })
                    .boxed_unsync()
            });
            Ok((response, io))
        })
    }
}

/// Whether a request of `method` leaves with the body the plugin gives it: only the methods
/// whose bodies servers and gateways expect (POST, PUT, PATCH) do.
fn carries_body(method: &http::Method) -> bool {
    [http::Method::POST, http::Method::PUT, http::Method::PATCH].contains(method)
}

/// Sends `request` without a body (any method but those of [`carries_body`]). Whether the
/// plugin writes one is not known when it hands the request over (it may stream it
/// afterwards), so whatever it writes is dropped here rather than refused later: a body on a
/// GET, say, reaches a server, or a gateway in front of one that ignores such bodies, as bytes
/// it may read as a second request. The plugin's writes fail once it notices; `finish`
/// succeeds, so a plugin that writes nothing (ours) sees no difference.
fn without_body(request: &mut http::Request<WasiBody>) {
    *request.body_mut() = http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    request.headers_mut().remove(http::header::CONTENT_LENGTH);
    request
        .headers_mut()
        .remove(http::header::TRANSFER_ENCODING);
}

/// The pause a `429`'s `Retry-After` asks for, read as the component reads it
/// ([`video_gen_core::time::parse_retry_after`]: seconds or an HTTP-date, at most an hour;
/// the budget caps the pause at its window anyway).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    video_gen_core::time::parse_retry_after(value, std::time::SystemTime::now())
        .map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bounds_cut_what_the_plugin_asks() {
        let bounds = RequestBounds {
            first_byte: Duration::from_secs(60),
            between_bytes: Duration::from_secs(30),
        };
        let none = bounds.apply(None);
        assert_eq!(none.first_byte_timeout, Some(Duration::from_secs(60)));
        assert_eq!(none.between_bytes_timeout, Some(Duration::from_secs(30)));
        let greedy = bounds.apply(Some(RequestOptions {
            connect_timeout: Some(Duration::from_secs(5)),
            first_byte_timeout: Some(Duration::from_secs(3600)),
            between_bytes_timeout: Some(Duration::from_secs(3600)),
        }));
        assert_eq!(greedy.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(greedy.first_byte_timeout, Some(Duration::from_secs(60)));
        assert_eq!(greedy.between_bytes_timeout, Some(Duration::from_secs(30)));
        let modest = bounds.apply(Some(RequestOptions {
            connect_timeout: None,
            first_byte_timeout: Some(Duration::from_millis(1500)),
            between_bytes_timeout: Some(Duration::from_millis(700)),
        }));
        assert_eq!(modest.first_byte_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(
            modest.between_bytes_timeout,
            Some(Duration::from_millis(700))
        );
    }

    #[test]
    fn admits_only_listed_origins() {
        let p = OutboundPolicy::allow(vec![Origin::from_url("http://127.0.0.1:8080/v1").unwrap()]);
        let ok: http::Uri = "http://127.0.0.1:8080/v1/jobs/x".parse().unwrap();
        assert!(p.admits(&ok));
        for bad in [
            "http://127.0.0.1:8081/v1/jobs/x",
            "https://127.0.0.1:8080/",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost:8080/",
            "http://evil.example/",
        ] {
            assert!(!p.admits(&bad.parse().unwrap()), "{bad}");
        }
    }

    #[test]
    fn an_ipv6_base_url_admits_its_own_requests() {
        let origin = Origin::from_url("http://[::1]:8080/v1").unwrap();
        assert_eq!(origin.host, "::1");
        assert_eq!(origin.to_string(), "http://[::1]:8080");
        let p = OutboundPolicy::allow(vec![origin]);
        assert!(p.admits(&"http://[::1]:8080/v1/jobs/x".parse().unwrap()));
        // The same address written out in full is the same origin.
        assert!(p.admits(&"http://[0:0:0:0:0:0:0:1]:8080/".parse().unwrap()));
        assert!(!p.admits(&"http://[::2]:8080/".parse().unwrap()));
        assert!(!p.admits(&"http://127.0.0.1:8080/".parse().unwrap()));
    }

    #[test]
    fn default_ports_are_explicit() {
        let p = OutboundPolicy::allow(vec![
            Origin::from_url("https://api.empiriolabs.ai").unwrap(),
        ]);
        assert!(p.admits(&"https://API.empiriolabs.ai:443/v1".parse().unwrap()));
        assert!(!p.admits(&"https://api.empiriolabs.ai:8443/v1".parse().unwrap()));
    }
}
