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

use video_gen_core::client::{BodyError, HttpRequest, HttpResponse, Method, Transport};
use video_gen_core::{TransportFailure, TransportKind};
use waki::ErrorCode;
use waki::bindings::wasi::http::outgoing_handler;
use waki::bindings::wasi::http::types::{
    Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use waki::bindings::wasi::io::streams::StreamError;

/// Read the body this many bytes at a time: small enough that the cap is checked often,
/// large enough that a normal job object arrives in one read.
const CHUNK_BYTES: u64 = 64 * 1024;

/// Sends requests through the host's WASI-HTTP implementation (and its policy).
pub struct WasiHttp;

impl Transport for WasiHttp {
    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, TransportFailure> {
        let incoming = send(request)?;
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
        Ok(HttpResponse {
            status,
            retry_after,
            body: read_capped(&body, declared, request.max_body_bytes),
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

fn send(request: &HttpRequest) -> Result<IncomingResponse, TransportFailure> {
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
    if request.json_body.is_some() {
        headers.push(("content-type".into(), b"application/json".to_vec()));
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
    let options = RequestOptions::new();
    let timeout_ns = u64::from(request.connect_timeout_ms) * 1_000_000;
    // A host may not support the option; the core still bounds the call by its deadline.
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(failure)?;
    // If the write fails, the response future holds the reason (denied, refused, reset …).
    let _ = write_body(body, request.json_body.as_deref().unwrap_or_default());
    await_response(&future).map_err(failure)
}

/// Write the whole body and finish it. A failure here is not reported by itself: the
/// response future says why the stream closed.
fn write_body(body: OutgoingBody, mut bytes: &[u8]) -> Result<(), ()> {
    {
        let stream = body.write()?;
        let ready = stream.subscribe();
        while !bytes.is_empty() {
            ready.block();
            let permit = stream.check_write().map_err(|_| ())?;
            let n = bytes
                .len()
                .min(usize::try_from(permit).unwrap_or(usize::MAX));
            stream.write(&bytes[..n]).map_err(|_| ())?;
            bytes = &bytes[n..];
        }
        stream.flush().map_err(|_| ())?;
        ready.block();
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

/// Read the body up to `cap` bytes. Reading everything first (as `waki`'s `body()` does,
/// doubling its buffer) would let a hostile or broken server exhaust the component's memory.
fn read_capped(body: &IncomingBody, declared: Option<u64>, cap: u32) -> Result<Vec<u8>, BodyError> {
    if declared.is_some_and(|len| len > u64::from(cap)) {
        return Err(BodyError::TooLarge { limit: cap });
    }
    let cap = cap as usize;
    let stream = body
        .stream()
        .map_err(|()| BodyError::Read("the body stream was already taken".into()))?;
    let mut bytes = Vec::with_capacity(declared.map_or(4096, |len| len as usize));
    loop {
        match stream.blocking_read(CHUNK_BYTES) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > cap {
                    return Err(BodyError::TooLarge { limit: cap as u32 });
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(BodyError::Read(format!(
                    "input_stream read failed: {}",
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

/// The code as its derived `Debug` wrote it (`ErrorCode::ConnectionRefused`), with the payload
/// only where it is text. Written out because that `Debug`, over 39 cases and their nested
/// payload records, is about 4 KiB of code in the component.
fn describe(code: &ErrorCode) -> String {
    let name = match code {
        ErrorCode::DnsTimeout => "DnsTimeout",
        ErrorCode::DnsError(payload) => {
            return format!(
                "ErrorCode::DnsError(rcode: {})",
                payload.rcode.as_deref().unwrap_or("none")
            );
        }
        ErrorCode::DestinationNotFound => "DestinationNotFound",
        ErrorCode::DestinationUnavailable => "DestinationUnavailable",
        ErrorCode::DestinationIpProhibited => "DestinationIpProhibited",
        ErrorCode::DestinationIpUnroutable => "DestinationIpUnroutable",
        ErrorCode::ConnectionRefused => "ConnectionRefused",
        ErrorCode::ConnectionTerminated => "ConnectionTerminated",
        ErrorCode::ConnectionTimeout => "ConnectionTimeout",
        ErrorCode::ConnectionReadTimeout => "ConnectionReadTimeout",
        ErrorCode::ConnectionWriteTimeout => "ConnectionWriteTimeout",
        ErrorCode::ConnectionLimitReached => "ConnectionLimitReached",
        ErrorCode::TlsProtocolError => "TlsProtocolError",
        ErrorCode::TlsCertificateError => "TlsCertificateError",
        ErrorCode::TlsAlertReceived(_) => "TlsAlertReceived",
        ErrorCode::HttpRequestDenied => "HttpRequestDenied",
        ErrorCode::HttpRequestLengthRequired => "HttpRequestLengthRequired",
        ErrorCode::HttpRequestBodySize(_) => "HttpRequestBodySize",
        ErrorCode::HttpRequestMethodInvalid => "HttpRequestMethodInvalid",
        ErrorCode::HttpRequestUriInvalid => "HttpRequestUriInvalid",
        ErrorCode::HttpRequestUriTooLong => "HttpRequestUriTooLong",
        ErrorCode::HttpRequestHeaderSectionSize(_) => "HttpRequestHeaderSectionSize",
        ErrorCode::HttpRequestHeaderSize(_) => "HttpRequestHeaderSize",
        ErrorCode::HttpRequestTrailerSectionSize(_) => "HttpRequestTrailerSectionSize",
        ErrorCode::HttpRequestTrailerSize(_) => "HttpRequestTrailerSize",
        ErrorCode::HttpResponseIncomplete => "HttpResponseIncomplete",
        ErrorCode::HttpResponseHeaderSectionSize(_) => "HttpResponseHeaderSectionSize",
        ErrorCode::HttpResponseHeaderSize(_) => "HttpResponseHeaderSize",
        ErrorCode::HttpResponseBodySize(_) => "HttpResponseBodySize",
        ErrorCode::HttpResponseTrailerSectionSize(_) => "HttpResponseTrailerSectionSize",
        ErrorCode::HttpResponseTrailerSize(_) => "HttpResponseTrailerSize",
        ErrorCode::HttpResponseTransferCoding(_) => "HttpResponseTransferCoding",
        ErrorCode::HttpResponseContentCoding(_) => "HttpResponseContentCoding",
        ErrorCode::HttpResponseTimeout => "HttpResponseTimeout",
        ErrorCode::HttpUpgradeFailed => "HttpUpgradeFailed",
        ErrorCode::HttpProtocolError => "HttpProtocolError",
        ErrorCode::LoopDetected => "LoopDetected",
        ErrorCode::ConfigurationError => "ConfigurationError",
        ErrorCode::InternalError(message) => {
            return format!(
                "ErrorCode::InternalError({})",
                message.as_deref().unwrap_or("")
            );
        }
    };
    format!("ErrorCode::{name}")
}
