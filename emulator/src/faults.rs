//! Injected misbehaviour: which route a request belongs to, the per-route fault queues, and the
//! answers that replace a normal one.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt as _;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};

use crate::error::ApiError;

/// A group of requests a [`Fault`] can be aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /v1/videos/generations` (any method on that path).
    Submit,
    /// `GET /v1/jobs/{job_id}`.
    Poll,
    /// `GET /v1/account/usage`.
    Usage,
    /// `GET /files/...`, the signed output URLs.
    Download,
    /// Every request, including ones to unknown paths; consulted after the specific queue.
    Any,
}

impl Route {
    /// The route a request path belongs to, or `None` for a path the API does not serve.
    pub(crate) fn classify(path: &str) -> Option<Route> {
        if path == "/v1/videos/generations" {
            Some(Route::Submit)
        } else if path == "/v1/account/usage" {
            Some(Route::Usage)
        } else if path
            .strip_prefix("/v1/jobs/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
        {
            Some(Route::Poll)
        } else if path.starts_with("/files/") {
            Some(Route::Download)
        } else {
            None
        }
    }

    /// Whether this is a submit: the only request that can create (and bill) a job.
    pub(crate) fn is_submit(route: Option<Route>, method: &Method) -> bool {
        route == Some(Route::Submit) && method == Method::POST
    }
}

/// A misbehaviour to inject into the next request of a [`Route`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a JSON error body (`{"error":{"code","message"}}`), plus a
    /// `Retry-After` header when given. The request is not otherwise processed: no job is made.
    Status {
        /// HTTP status; a value outside 100–999 is answered as 500.
        status: u16,
        /// The error's `code`.
        code: String,
        /// The error's `message`.
        message: String,
        /// The `Retry-After` header's value, sent verbatim when present and legal.
        retry_after: Option<String>,
    },
    /// Wait this long, then process and answer normally. Models latency in front of the API: a
    /// client that gives up during the wait leaves the request unprocessed.
    Delay(Duration),
    /// Answer `200` with exactly this raw body and `Content-Type: application/json`.
    Malformed(String),
    /// Answer `200` with this many bytes of valid-looking JSON padding, streamed chunked with no
    /// `Content-Length`, to exercise a client's response size cap.
    Oversize(usize),
    /// Process normally (a submit does create its job) but hold the answer back this long.
    /// Models "the submit went through but the answer was lost".
    ProcessThenHang(Duration),
    /// Read the request and never answer (until the emulator stops); nothing is processed.
    /// A server that accepted the connection and then said nothing.
    Silence,
    /// Process normally, then send the head (with the full `Content-Length`) and the first
    /// half of the body, then nothing more: an answer that stops halfway.
    StallMidBody,
    /// Process normally, then send the body one byte every `interval`.
    Trickle(Duration),
    /// Process normally (a submit does create its job), then reset the connection (RST)
    /// without a byte of answer: the classic "was my submit accepted?" case.
    ResetAfterProcessing,
    /// Process normally, then answer with only the first half of the body (a complete
    /// answer of a shorter, declared length): JSON cut off by a broken proxy.
    TruncatedBody,
    /// Answer with an HTML error page and this status, as a CDN or gateway does during an
    /// incident (`200`, `502`, `504` …; outside 100–999 it is 502). Nothing is processed.
    HtmlPage(u16),
}

impl Fault {
    /// A short description for [`RequestRecord::fault`](crate::RequestRecord::fault).
    pub(crate) fn describe(&self) -> String {
        match self {
            Fault::Status { status, code, .. } => format!("status {status} {code}"),
            Fault::Delay(d) => format!("delay {}ms", d.as_millis()),
            Fault::Malformed(body) => format!("malformed {} bytes", body.len()),
            Fault::Oversize(n) => format!("oversize {n} bytes"),
            Fault::ProcessThenHang(d) => format!("process then hang {}ms", d.as_millis()),
            Fault::Silence => "silence".into(),
            Fault::StallMidBody => "stall mid-body".into(),
            Fault::Trickle(d) => format!("trickle a byte every {}ms", d.as_millis()),
            Fault::ResetAfterProcessing => "reset after processing".into(),
            Fault::TruncatedBody => "truncated body".into(),
            Fault::HtmlPage(status) => format!("html page {status}"),
        }
    }
}

/// FIFO queues of pending faults: one per route, and one per job for its polls.
#[derive(Debug, Default)]
pub(crate) struct FaultQueues {
    queues: HashMap<Route, VecDeque<Fault>>,
    jobs: HashMap<String, VecDeque<Fault>>,
}

impl FaultQueues {
    /// Queues `fault` behind any already waiting for `route`.
    pub fn push(&mut self, route: Route, fault: Fault) {
        self.queues.entry(route).or_default().push_back(fault);
    }

    /// Queues `fault` for the next poll of job `id`.
    pub fn push_for_job(&mut self, id: &str, fault: Fault) {
        self.jobs.entry(id.to_owned()).or_default().push_back(fault);
    }

    /// Takes the fault for a request on `route` to `path`: the polled job's own queue first,
    /// then the route's, then `Any`.
    pub fn pop(&mut self, route: Option<Route>, path: &str) -> Option<Fault> {
        let job = path
            .strip_prefix("/v1/jobs/")
            .filter(|_| route == Some(Route::Poll));
        job.and_then(|id| self.jobs.get_mut(id).and_then(VecDeque::pop_front))
            .or_else(|| route.and_then(|r| self.queues.get_mut(&r).and_then(VecDeque::pop_front)))
            .or_else(|| {
                self.queues
                    .get_mut(&Route::Any)
                    .and_then(VecDeque::pop_front)
            })
    }
}

/// What the gatekeeper must do for a fault.
pub(crate) enum FaultAction {
    /// Answer this instead of processing the request.
    Replace(Response),
    /// Wait, then process normally.
    DelayThenProcess(Duration),
    /// Process normally, then wait before answering.
    ProcessThenDelay(Duration),
    /// Never answer, never process.
    Silence,
    /// Process normally, then spoil the delivery of the answer.
    ProcessThenSpoil(Spoil),
}

/// How a processed answer fails to arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spoil {
    /// Head and half the body, then silence.
    Stall,
    /// A byte at a time.
    Trickle(Duration),
    /// No answer: the connection is reset.
    Reset,
    /// Half the body, declared as the whole.
    Truncate,
}

impl Fault {
    /// How this fault plays out.
    pub(crate) fn action(&self) -> FaultAction {
        match self {
            Fault::Status {
                status,
                code,
                message,
                retry_after,
            } => {
                let status =
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut error = ApiError::new(status, code, message.clone());
                error.retry_after = retry_after.clone();
                FaultAction::Replace(error.into_response())
            }
            Fault::Malformed(body) => FaultAction::Replace(json_200(Body::from(body.clone()))),
            Fault::Oversize(size) => FaultAction::Replace(json_200(oversize_body(*size))),
            Fault::Delay(wait) => FaultAction::DelayThenProcess(*wait),
            Fault::ProcessThenHang(wait) => FaultAction::ProcessThenDelay(*wait),
            Fault::Silence => FaultAction::Silence,
            Fault::StallMidBody => FaultAction::ProcessThenSpoil(Spoil::Stall),
            Fault::Trickle(every) => FaultAction::ProcessThenSpoil(Spoil::Trickle(*every)),
            Fault::ResetAfterProcessing => FaultAction::ProcessThenSpoil(Spoil::Reset),
            Fault::TruncatedBody => FaultAction::ProcessThenSpoil(Spoil::Truncate),
            Fault::HtmlPage(status) => FaultAction::Replace(html_page(*status)),
        }
    }
}

/// The kind of page a CDN or gateway answers with when the service behind it is down.
fn html_page(status: u16) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.as_u16() <= 999)
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let title = match status.as_u16() {
        200 => "Service temporarily unavailable".to_string(),
        code => format!("{code} {}", status.canonical_reason().unwrap_or("Error")),
    };
    let page = format!(
        "<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n<body><center><h1>{title}</h1></center>\n<hr><center>edge-gateway</center></body></html>\n"
    );
    let mut response = (status, page).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// `body` delivered as `spoil` says (for every spoil but [`Spoil::Reset`], which the
/// connection carries out). `stopped` resolves when the emulator shuts down: a stalled body
/// ends then, with an error, so no test leaks a connection.
pub(crate) fn spoiled_body(
    body: Bytes,
    spoil: Spoil,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> (Body, Option<usize>) {
    let half = body.slice(..body.len() / 2);
    match spoil {
        Spoil::Truncate => {
            let len = half.len();
            (Body::from(half), Some(len))
        }
        Spoil::Stall => {
            let full = body.len();
            let first = futures::stream::once(async move { Ok::<_, std::io::Error>(half) });
            let never = futures::stream::once(async move {
                stopped.await;
                Err(std::io::Error::other("the emulator stopped"))
            });
            (Body::from_stream(first.chain(never)), Some(full))
        }
        Spoil::Trickle(every) => {
            let full = body.len();
            let bytes = futures::stream::unfold(0usize, move |i| {
                let body = body.clone();
                async move {
                    if i >= body.len() {
                        return None;
                    }
                    if i > 0 {
                        tokio::time::sleep(every).await;
                    }
                    Some((Ok::<_, std::io::Error>(body.slice(i..i + 1)), i + 1))
                }
            });
            (Body::from_stream(bytes), Some(full))
        }
        Spoil::Reset => (Body::empty(), None),
    }
}

fn json_200(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

const PAD_HEAD: &[u8] = b"{\"padding\":\"";
const PAD_TAIL: &[u8] = b"\"}";
const CHUNK: usize = 64 * 1024;

// Generated lazily chunk by chunk, so a multi-gigabyte fault costs no memory; a stream body has
// no known length, which makes hyper send it chunked.
fn oversize_body(size: usize) -> Body {
    let stream = futures::stream::unfold(0usize, move |sent| async move {
        if sent >= size {
            return None;
        }
        let len = (size - sent).min(CHUNK);
        let chunk: Vec<u8> = (sent..sent + len).map(|i| padding_byte(i, size)).collect();
        Some((Ok::<_, Infallible>(Bytes::from(chunk)), sent + len))
    });
    Body::from_stream(stream)
}

// Byte `i` of `{"padding":"aaaa…"}` stretched to `size` bytes; when `size` is too small for
// the frame, a prefix of the minimal document.
fn padding_byte(i: usize, size: usize) -> u8 {
    let frame = PAD_HEAD.len() + PAD_TAIL.len();
    if size < frame {
        return [PAD_HEAD, PAD_TAIL].concat()[i];
    }
    if i < PAD_HEAD.len() {
        PAD_HEAD[i]
    } else if i >= size - PAD_TAIL.len() {
        PAD_TAIL[i - (size - PAD_TAIL.len())]
    } else {
        b'a'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        assert_eq!(
            Route::classify("/v1/videos/generations"),
            Some(Route::Submit)
        );
        assert_eq!(Route::classify("/v1/jobs/job_1"), Some(Route::Poll));
        assert_eq!(Route::classify("/v1/jobs/"), None);
        assert_eq!(Route::classify("/v1/jobs/a/b"), None);
        assert_eq!(Route::classify("/v1/account/usage"), Some(Route::Usage));
        assert_eq!(
            Route::classify("/files/job_1/output.mp4"),
            Some(Route::Download)
        );
        assert_eq!(Route::classify("/v1/other"), None);
    }

    #[test]
    fn specific_queue_before_any_and_fifo() {
        let mut q = FaultQueues::default();
        q.push(Route::Any, Fault::Malformed("any".into()));
        q.push(Route::Poll, Fault::Malformed("poll1".into()));
        q.push(Route::Poll, Fault::Malformed("poll2".into()));
        assert_eq!(
            q.pop(Some(Route::Poll), "/v1/jobs/job_9"),
            Some(Fault::Malformed("poll1".into()))
        );
        assert_eq!(
            q.pop(Some(Route::Submit), "/v1/videos/generations"),
            Some(Fault::Malformed("any".into()))
        );
        assert_eq!(q.pop(None, "/nowhere"), None);
        assert_eq!(
            q.pop(Some(Route::Poll), "/v1/jobs/job_9"),
            Some(Fault::Malformed("poll2".into()))
        );
        assert_eq!(q.pop(Some(Route::Poll), "/v1/jobs/job_9"), None);
    }

    #[test]
    fn a_job_fault_goes_to_that_job_only() {
        let mut q = FaultQueues::default();
        q.push_for_job("job_a", Fault::Silence);
        q.push(Route::Poll, Fault::HtmlPage(502));
        assert_eq!(
            q.pop(Some(Route::Poll), "/v1/jobs/job_b"),
            Some(Fault::HtmlPage(502))
        );
        assert_eq!(q.pop(Some(Route::Poll), "/v1/jobs/job_b"), None);
        assert_eq!(
            q.pop(Some(Route::Poll), "/v1/jobs/job_a"),
            Some(Fault::Silence)
        );
        assert_eq!(q.pop(Some(Route::Poll), "/v1/jobs/job_a"), None);
    }

    #[test]
    fn spoiled_bodies_keep_their_promises() {
        let body = Bytes::from_static(b"{\"job_id\":\"job_1\",\"status\":\"queued\"}");
        let (_, declared) = spoiled_body(body.clone(), Spoil::Truncate, std::future::pending());
        assert_eq!(declared, Some(body.len() / 2));
        let (_, declared) = spoiled_body(body.clone(), Spoil::Stall, std::future::pending());
        assert_eq!(
            declared,
            Some(body.len()),
            "a stalled answer promises the whole body"
        );
    }

    #[test]
    fn padding_is_json_of_the_exact_size() {
        for size in [0usize, 1, 13, 14, 15, 100] {
            let bytes: Vec<u8> = (0..size).map(|i| padding_byte(i, size)).collect();
            assert_eq!(bytes.len(), size);
            if size >= 14 {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(v["padding"].as_str().unwrap().len(), size - 14);
            }
        }
    }

    #[test]
    fn out_of_range_status_becomes_500() {
        let fault = Fault::Status {
            status: 42,
            code: "weird".into(),
            message: "m".into(),
            retry_after: None,
        };
        let FaultAction::Replace(response) = fault.action() else {
            panic!("a status fault replaces the answer");
        };
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
