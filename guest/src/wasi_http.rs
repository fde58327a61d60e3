//! The core's [`Transport`] over `wasi:http/outgoing-handler`.
//!
//! The request phase is driven on `waki`'s WASI-HTTP bindings rather than `waki`'s
//! `send()`: for a request with a body, `send()` writes the body before it looks at the
//! response future, so a request the host denied or a connection that was refused surfaces
//! only as "stream closed" — indistinguishable from a connection that broke mid-request.
//! Reading the future's own error code keeps "provably never sent" (safe to resend a submit)
//! apart from "fate unknown" (never resend).
//!
//! The response is read on the same bindings too, not through `waki::Response`: that type
//! parses every header into an `http::HeaderMap` and reports errors as `anyhow::Error`, which
//! links the `http` crate, `anyhow` and std's backtrace printer and demangler into the
//! component — about a third of its size, for two header lookups and a body read.
//!
//! Time: the request's timeouts go to the host as `wasi:http` request options (Wasmtime
//! honours them), and the component also enforces them itself, waiting on the response and
//! on each body read together with a `wasi:clocks` timer, so a host that ignores the
//! options still cannot leave a call hanging on a silent server. The body goes out with a
//! `Content-Length`: servers and gateways that read only that header would otherwise see an
//! empty body, and strict ones answer `411`.

use video_gen_core::client::{
    BodyError, HOST_QUEUE_ALLOWANCE_MS, HttpRequest, HttpResponse, Method, Timeouts, Transport,
};
use video_gen_core::{TransportFailure, TransportKind};
use waki::ErrorCode;
use waki::bindings::wasi::clocks::monotonic_clock;
use waki::bindings::wasi::http::outgoing_handler;
use waki::bindings::wasi::http::types::{
    Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use waki::bindings::wasi::io::poll::{Pollable, poll};
use waki::bindings::wasi::io::streams::StreamError;

/// Read the body this many bytes at a time: small enough that the cap is checked often,
/// large enough that a normal job object arrives in one read.
const CHUNK_BYTES: u64 = 64 * 1024;
/// The component's own timers fire this much after the host's should, so that a host that
/// honours the request options reports its (more precise) error first.
const GRACE_NS: u64 = 250_000_000;
const NS_PER_MS: u64 = 1_000_000;

/// Points on the monotonic clock one request must not pass.
struct Clock {
    /// The whole exchange ends here.
    end: u64,
}

impl Clock {
    fn start(timeouts: &Timeouts) -> Clock {
        let now = monotonic_clock::now();
        Clock {
            end: now.saturating_add(timeouts.total_ms.saturating_mul(NS_PER_MS)),
        }
    }

    /// The same exchange, now to end within `ms` (and never later than before).
    fn until(&self, ms: u32) -> Clock {
        Clock {
            end: self.within(ms),
        }
    }

    /// `ms` from now plus grace, but never past the end of the exchange.
    fn within(&self, ms: u32) -> u64 {
        let now = monotonic_clock::now();
        now.saturating_add(u64::from(ms) * NS_PER_MS + GRACE_NS)
            .min(self.end)
    }
}

/// Block until `pollable` is ready or the monotonic clock reaches `until`; `false` when
/// time ran out first.
fn ready_before(pollable: &Pollable, until: u64) -> bool {
    if pollable.ready() {
        return true;
    }
    if monotonic_clock::now() >= until {
        return false;
    }
    let timer = monotonic_clock::subscribe_instant(until);
    poll(&[pollable, &timer]).contains(&0) || pollable.ready()
}

fn timed_out(what: &str, ms: u64) -> TransportFailure {
    TransportFailure {
        kind: TransportKind::Interrupted,
        message: format!("{what} within {ms} ms"),
    }
}

/// Sends requests through the host's WASI-HTTP implementation (and its policy).
pub struct WasiHttp;

impl Transport for WasiHttp {
    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, TransportFailure> {
        let clock = Clock::start(&request.timeouts);
        let incoming = send(request, &clock)?;
        let status = incoming.status();
        let (retry_after, content_length) = {
            // The headers are a child resource of the response: dropped before it is.
            let headers = incoming.headers();
            (
                header(&headers, "retry-after"),
                header(&headers, "content-length"),
            )
        };
        let body = incoming.consume().map_err(|()| TransportFailure {
            kind: TransportKind::Interrupted,
            message: "reading the response head: the body was already taken".into(),
        })?;
        drop(incoming);
        let declared = content_length.and_then(|v| v.trim().parse::<u64>().ok());
        // Once the head is here no host queue is left to allow for: the body, a few KB of
        // JSON, gets a first-byte and a between-bytes timeout in all, which is what bounds a
        // server that trickles it a byte at a time.
        let t = &request.timeouts;
        let body_clock = clock.until(t.first_byte_ms.saturating_add(t.between_bytes_ms));
        Ok(HttpResponse {
            status,
            retry_after,
            body: read_capped(&body, declared, request, &body_clock),
        })
    }
}

/// The first value of header `name` as text, if it is visible ASCII (what `HeaderValue::to_str`
/// accepted when this went through `waki`).
fn header(headers: &Fields, name: &str) -> Option<String> {
    let value = headers.get(&name.to_string()).into_iter().next()?;
    let text = String::from_utf8(value).ok()?;
    text.bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        .then_some(text)
}

fn send(request: &HttpRequest, clock: &Clock) -> Result<IncomingResponse, TransportFailure> {
    let (scheme, authority, path) = split_url(&request.url)?;
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        (
            "authorization".into(),
            format!("Bearer {}", request.bearer).into_bytes(),
        ),
        ("accept".into(), b"application/json".to_vec()),
        (
            "user-agent".into(),
            concat!("happyhorse-wasm/", env!("CARGO_PKG_VERSION"))
                .as_bytes()
                .to_vec(),
        ),
    ];
    if let Some(body) = &request.json_body {
        headers.push(("content-type".into(), b"application/json".to_vec()));
        headers.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    // Only our own fixed headers and the key go in; a refusal means the key is unusable as a
    // header value (the core already refuses keys that are not visible ASCII).
    let fields = Fields::from_list(&headers)
        .map_err(|_| local("the request headers were refused by WASI-HTTP".into()))?;
    let outgoing = OutgoingRequest::new(fields);
    let method = match request.method {
        Method::Get => waki::Method::Get,
        Method::Post => waki::Method::Post,
    };
    outgoing
        .set_method(&method)
        .and_then(|()| outgoing.set_scheme(Some(&scheme)))
        .and_then(|()| outgoing.set_authority(Some(authority)))
        .and_then(|()| outgoing.set_path_with_query(Some(path)))
        .map_err(|()| local(format!("the URL {} was refused by WASI-HTTP", request.url)))?;
    let body = outgoing
        .body()
        .map_err(|()| local("the request body was already taken".into()))?;
    let t = &request.timeouts;
    let options = RequestOptions::new();
    // A host may refuse an option; the component's own timers below bound the wait anyway.
    let _ = options.set_connect_timeout(Some(u64::from(t.connect_ms) * NS_PER_MS));
    let _ = options.set_first_byte_timeout(Some(u64::from(t.first_byte_ms) * NS_PER_MS));
    let _ = options.set_between_bytes_timeout(Some(u64::from(t.between_bytes_ms) * NS_PER_MS));
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(failure)?;
    // If the write fails, the response future holds the reason (denied, refused, reset …).
    let _ = write_body(
        body,
        request.json_body.as_deref().unwrap_or_default(),
        clock,
    );
    // The head must arrive within connect + first byte of now (the body is written), plus
    // what a host may spend queueing the request before it sends it.
    let head_ms = t
        .connect_ms
        .saturating_add(t.first_byte_ms)
        .saturating_add(HOST_QUEUE_ALLOWANCE_MS);
    if !ready_before(&future.subscribe(), clock.within(head_ms)) {
        // Dropping the future makes the host abandon the request.
        return Err(timed_out("no answer arrived", u64::from(head_ms)));
    }
    await_response(&future).map_err(failure)
}

/// Write the whole body and finish it. A failure here is not reported by itself: the
/// response future says why the stream closed. A server that stops reading is given until
/// the end of the exchange.
fn write_body(body: OutgoingBody, mut bytes: &[u8], clock: &Clock) -> Result<(), ()> {
    {
        let stream = body.write()?;
        let ready = stream.subscribe();
        while !bytes.is_empty() {
            if !ready_before(&ready, clock.end) {
                return Err(());
            }
            let permit = stream.check_write().map_err(|_| ())?;
            let n = bytes
                .len()
                .min(usize::try_from(permit).unwrap_or(usize::MAX));
            stream.write(&bytes[..n]).map_err(|_| ())?;
            bytes = &bytes[n..];
        }
        stream.flush().map_err(|_| ())?;
        if !ready_before(&ready, clock.end) {
            return Err(());
        }
        stream.check_write().map_err(|_| ())?;
    }
    OutgoingBody::finish(body, None).map_err(|_| ())
}

fn await_response(future: &FutureIncomingResponse) -> Result<IncomingResponse, ErrorCode> {
    loop {
        match future.get() {
            Some(Ok(result)) => return result,
            Some(Err(())) => {
                return Err(ErrorCode::InternalError(Some(
                    "the response was already taken".into(),
                )));
            }
            None => future.subscribe().block(),
        }
    }
}

/// Split an absolute URL into what WASI-HTTP wants. The core built it from a checked base
/// URL and a checked path, so anything else is a bug reported as a local failure.
fn split_url(url: &str) -> Result<(Scheme, &str, &str), TransportFailure> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(local(format!("{url} is not an http(s) URL")));
    };
    let split = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    Ok((scheme, authority, if path.is_empty() { "/" } else { path }))
}

/// A failure inside the component, before anything was sent.
fn local(message: String) -> TransportFailure {
    TransportFailure {
        kind: TransportKind::Other,
        message,
    }
}

/// Read the body up to the request's cap, each piece within the between-bytes timeout and
/// all of it before the exchange's end. Reading everything first (as `waki`'s `body()`
/// does, doubling its buffer) would let a hostile or broken server exhaust the component's
/// memory; reading without a clock would let a silent or trickling one hold the call.
fn read_capped(
    body: &IncomingBody,
    declared: Option<u64>,
    request: &HttpRequest,
    clock: &Clock,
) -> Result<Vec<u8>, BodyError> {
    let cap = request.max_body_bytes;
    if declared.is_some_and(|len| len > u64::from(cap)) {
        return Err(BodyError::TooLarge { limit: cap });
    }
    let cap = cap as usize;
    let stream = body
        .stream()
        .map_err(|()| BodyError::Read("the body stream was already taken".into()))?;
    let ready = stream.subscribe();
    let mut bytes = Vec::with_capacity(declared.map_or(4096, |len| len.min(cap as u64) as usize));
    loop {
        let between = request.timeouts.between_bytes_ms;
        if !ready_before(&ready, clock.within(between)) {
            return Err(BodyError::Read(if monotonic_clock::now() >= clock.end {
                "the body did not arrive in time".to_string()
            } else {
                format!("the body paused for more than {between} ms")
            }));
        }
        match stream.read(CHUNK_BYTES) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > cap {
                    return Err(BodyError::TooLarge { limit: cap as u32 });
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(BodyError::Read(format!(
                    "the connection failed mid-body: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
}

/// Classify a failed send by whether the request can have reached the server: the core
/// resends a submit only when it provably did not.
fn failure(code: ErrorCode) -> TransportFailure {
    let kind = match &code {
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) => TransportKind::Dns,
        // wasmtime reports every failure to open the TCP connection as one of these, and
        // nothing is written before the connection exists.
        ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable => TransportKind::Connect,
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => TransportKind::Denied,
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => TransportKind::Tls,
        ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::HttpProtocolError => TransportKind::Interrupted,
        _ => TransportKind::Other,
    };
    TransportFailure {
        kind,
        message: describe(&code),
    }
}

/// The code in words, for a person, one sentence per kind of failure. Written out rather
/// than derived: that `Debug`, over 39 cases and their nested payload records, is about 4 KiB
/// of code in the component, and it prints Rust names nobody should have to read.
fn describe(code: &ErrorCode) -> String {
    let words = match code {
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) => "the DNS lookup failed",
        ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable => "the host is unreachable",
        ErrorCode::DestinationIpProhibited | ErrorCode::HttpRequestDenied => {
            "the host's sandbox refused the request"
        }
        ErrorCode::ConnectionRefused => "the connection was refused",
        ErrorCode::ConnectionTerminated => "the connection closed before the answer ended",
        ErrorCode::ConnectionTimeout => "the connection could not be opened in time",
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            "no answer arrived in time"
        }
        ErrorCode::ConnectionWriteTimeout => "the request could not be sent in time",
        ErrorCode::ConnectionLimitReached => "too many requests are in flight",
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => "the TLS handshake failed",
        ErrorCode::HttpRequestLengthRequired
        | ErrorCode::HttpRequestBodySize(_)
        | ErrorCode::HttpRequestMethodInvalid
        | ErrorCode::HttpRequestUriInvalid
        | ErrorCode::HttpRequestUriTooLong
        | ErrorCode::HttpRequestHeaderSectionSize(_)
        | ErrorCode::HttpRequestHeaderSize(_)
        | ErrorCode::HttpRequestTrailerSectionSize(_)
        | ErrorCode::HttpRequestTrailerSize(_) => "the request was refused as malformed",
        ErrorCode::HttpResponseIncomplete
        | ErrorCode::HttpResponseHeaderSectionSize(_)
        | ErrorCode::HttpResponseHeaderSize(_)
        | ErrorCode::HttpResponseBodySize(_)
        | ErrorCode::HttpResponseTrailerSectionSize(_)
        | ErrorCode::HttpResponseTrailerSize(_)
        | ErrorCode::HttpResponseTransferCoding(_)
        | ErrorCode::HttpResponseContentCoding(_)
        | ErrorCode::HttpUpgradeFailed
        | ErrorCode::HttpProtocolError
        | ErrorCode::LoopDetected => "the answer broke the HTTP protocol or a size limit",
        ErrorCode::ConfigurationError | ErrorCode::InternalError(_) => {
            "the host's HTTP client failed"
        }
    };
    words.into()
}
