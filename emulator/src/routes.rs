//! The HTTP surface: one gatekeeping middleware (log, faults, rate limit, auth) in front of the
//! four endpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;
use tokio::sync::watch;

use crate::clip::ClipSpec;
use crate::config::EmulatorConfig;
use crate::conn::ConnectionHandle;
use crate::error::ApiError;
use crate::faults::{Fault, FaultAction, Route, Spoil, spoiled_body};
use crate::media::{OUTPUT_FILE, UrlCheck};
use crate::render;
use crate::state::{Phase, RateDecision, RequestRecord, Shared};
use crate::validation::parse_submit;

/// Largest request body read. Nine reference images sent as data URLs can be large; the real
/// provider's limit is unknown.
pub(crate) const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct App {
    pub shared: Arc<Shared>,
    /// Turns `true` when the emulator stops, cutting injected waits short.
    pub shutdown: watch::Receiver<bool>,
}

/// The caller's account standing, known once the key is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Account {
    broke: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    Missing,
    Invalid,
    Accepted(Account),
}

/// The emulator's router, with all state attached.
pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/v1/videos/generations", post(submit))
        .route("/v1/jobs/{job_id}", get(poll))
        .route("/v1/account/usage", get(usage))
        .route("/files/{job_id}/{file}", get(download))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The gatekeeper has already read the body under MAX_BODY_BYTES.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(app.clone(), gatekeeper))
        .with_state(app)
}

/// Runs before every request: logs it, applies a queued fault, the rate limit and auth.
async fn gatekeeper(State(app): State<App>, request: Request, next: Next) -> Response {
    let shared = &app.shared;
    let arrived = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = Route::classify(&path);
    let is_api = path == "/v1" || path.starts_with("/v1/");
    let is_submit = Route::is_submit(route, &method);
    let auth = authenticate(&shared.config, request.headers());
    let content_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = request
        .headers()
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
        });
    let connection = request
        .extensions()
        .get::<ConnectInfo<ConnectionHandle>>()
        .map(|info| info.0.clone());

    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await;
    let recorded_body = match (&body, is_submit) {
        (Ok(bytes), true) => serde_json::from_slice(bytes).ok(),
        _ => None,
    };
    let index = shared.record_arrival(
        RequestRecord {
            method: method.to_string(),
            path: path.clone(),
            query: parts.uri.query().map(str::to_owned),
            status: 0,
            authorized: matches!(auth, Auth::Accepted(_)),
            body: recorded_body,
            at: arrived.saturating_duration_since(shared.started),
            fault: None,
            content_length,
            chunked,
        },
        is_submit,
    );

    // A strict server or gateway reads a body only by its declared length: one sent without a
    // `Content-Length` (chunked) is refused before anything else looks at it. (A request with
    // neither header has no body, which is no reason to refuse it.)
    if shared.config.require_content_length && chunked && content_length.is_none() {
        let response = ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a request body must come with a Content-Length header",
        )
        .into_response();
        shared.record_status(index, response.status().as_u16());
        log(&method, &path, response.status());
        return response;
    }

    let fault = shared.take_fault(route, &path, index);
    if fault.is_some() && is_api {
        // A faulted request still spends the account's budget, but is never refused by it:
        // the fault decides the answer.
        shared
            .data()
            .rate
            .force_hit(shared.config.rate_window, arrived);
    }
    if is_api && !shared.config.latency.is_zero() {
        pause(&app, shared.config.latency).await;
    }
    let response = match fault.as_ref().map(Fault::action) {
        Some(FaultAction::Replace(response)) => response,
        Some(FaultAction::DelayThenProcess(wait)) => {
            pause(&app, wait).await;
            process(parts, body, auth, is_api, next).await
        }
        Some(FaultAction::ProcessThenDelay(wait)) => {
            let response = process(parts, body, auth, is_api, next).await;
            // Logged before the wait: the work is done even if the client gives up.
            shared.record_status(index, response.status().as_u16());
            log(&method, &path, response.status());
            pause(&app, wait).await;
            return response;
        }
        Some(FaultAction::Silence) => {
            // A day stands for "never": shutdown cuts it short.
            pause(&app, Duration::from_secs(24 * 60 * 60)).await;
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the emulator stopped",
            )
            .into_response();
        }
        Some(FaultAction::ProcessThenSpoil(spoil)) => {
            let response = process(parts, body, auth, is_api, next).await;
            // Logged now: the work is done whatever reaches the client.
            shared.record_status(index, response.status().as_u16());
            log(&method, &path, response.status());
            return spoil_response(&app, response, spoil, connection).await;
        }
        None if is_api => {
            let limit = shared.config.rate_limit_per_minute;
            let window = shared.config.rate_window;
            let decision = shared.data().rate.try_hit(limit, window, arrived);
            match decision {
                RateDecision::Allowed => process(parts, body, auth, is_api, next).await,
                RateDecision::Limited(seconds) => ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_exceeded",
                    if window == Duration::from_secs(60) {
                        format!("rate limit of {limit} requests per minute exceeded")
                    } else {
                        format!("rate limit of {limit} requests per {window:?} exceeded")
                    },
                )
                .with_retry_after(seconds.to_string())
                .into_response(),
            }
        }
        None => process(parts, body, auth, is_api, next).await,
    };
    shared.record_status(index, response.status().as_u16());
    log(&method, &path, response.status());
    response
}

/// Deliver a processed answer the way `spoil` says it fails to arrive.
async fn spoil_response(
    app: &App,
    response: Response,
    spoil: Spoil,
    connection: Option<ConnectionHandle>,
) -> Response {
    if spoil == Spoil::Reset {
        match connection {
            Some(connection) => connection.reset.pull(),
            None => tracing::warn!("no connection handle: cannot reset, answering normally"),
        }
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    let mut shutdown = app.shutdown.clone();
    let stopped = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    let (body, declared) = spoiled_body(bytes, spoil, stopped);
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Some(len) = declared {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Response::from_parts(parts, body)
}

fn log(method: &http::Method, path: &str, status: StatusCode) {
    tracing::debug!(%method, path, status = status.as_u16(), "emulator answered");
}

/// Auth (for `/v1/*`), then the handler.
async fn process(
    mut parts: Parts,
    body: Result<Bytes, axum::Error>,
    auth: Auth,
    is_api: bool,
    next: Next,
) -> Response {
    if is_api {
        match auth {
            Auth::Missing => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing_api_key",
                    "no API key: send 'Authorization: Bearer <key>'",
                )
                .into_response();
            }
            Auth::Invalid => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_api_key",
                    "the API key is not valid",
                )
                .into_response();
            }
            Auth::Accepted(account) => {
                parts.extensions.insert(account);
            }
        }
    }
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(error) => return body_error(error).into_response(),
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn body_error(error: axum::Error) -> ApiError {
    if error
        .into_inner()
        .downcast_ref::<http_body_util::LengthLimitError>()
        .is_some()
    {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request body could not be read",
        )
    }
}

/// Waits `wait`, or less if the emulator is stopping.
async fn pause(app: &App, wait: Duration) {
    let mut shutdown = app.shutdown.clone();
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        _ = shutdown.wait_for(|stopping| *stopping) => {}
    }
}

/// Reads the bearer key. Key values go no further than this comparison.
fn authenticate(config: &EmulatorConfig, headers: &HeaderMap) -> Auth {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Auth::Missing;
    };
    let Ok(value) = value.to_str() else {
        return Auth::Invalid;
    };
    let value = value.trim();
    if value.is_empty() {
        return Auth::Missing;
    }
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Auth::Invalid;
    }
    let token = token.trim();
    if token.is_empty() {
        Auth::Missing
    } else if config.api_keys.iter().any(|k| k == token) {
        Auth::Accepted(Account { broke: false })
    } else if config.broke_keys.iter().any(|k| k == token) {
        Auth::Accepted(Account { broke: true })
    } else {
        Auth::Invalid
    }
}

async fn submit(
    State(app): State<App>,
    account: Option<Extension<Account>>,
    body: Bytes,
) -> Response {
    let request = match parse_submit(&body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    if account.is_some_and(|Extension(a)| a.broke) {
        return ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_credits",
            "the account has no credits left",
        )
        .into_response();
    }
    let job = app.shared.create_job(request);
    tracing::debug!(job_id = %job.id, "emulator created a job");
    Json(render::submit_answer(&app.shared, &job)).into_response()
}

async fn poll(State(app): State<App>, job_id: Result<Path<String>, PathRejection>) -> Response {
    let now = Instant::now();
    let job = job_id
        .ok()
        .and_then(|Path(id)| app.shared.poll_job(&id, now));
    match job {
        Some(job) => Json(render::job_object(
            &app.shared,
            &job,
            now,
            SystemTime::now(),
        ))
        .into_response(),
        None => job_not_found().into_response(),
    }
}

async fn usage(State(app): State<App>) -> Response {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let data: Vec<_> = app
        .shared
        .jobs_in_order()
        .iter()
        .filter_map(|job| render::usage_entry(&app.shared, job, now, wall))
        .collect();
    Json(json!({ "data": data })).into_response()
}

async fn download(
    State(app): State<App>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Path((job_id, file))) = path else {
        return not_found().await;
    };
    let Some(job) = app.shared.job(&job_id) else {
        return job_not_found().into_response();
    };
    if file != OUTPUT_FILE || job.phase(Instant::now()) != Phase::Completed {
        return ApiError::new(StatusCode::NOT_FOUND, "file_not_found", "no such file")
            .into_response();
    }
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let check = app.shared.signer.check(
        &job_id,
        query.get("expires").map(String::as_str),
        query.get("sig").map(String::as_str),
        SystemTime::now(),
    );
    match check {
        UrlCheck::Valid => (
            [(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"))],
            // Every answer says video/mp4, even a deliberately wrong clip's: a client must
            // check the bytes, not trust the label.
            app.shared
                .clips
                .serve(ClipSpec::for_request(&job.request), job.clip_fault),
        )
            .into_response(),
        UrlCheck::Expired => ApiError::new(
            StatusCode::FORBIDDEN,
            "url_expired",
            "the signed URL has expired; poll the job for a fresh one",
        )
        .into_response(),
        UrlCheck::BadSignature => ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "the URL signature is missing or invalid",
        )
        .into_response(),
    }
}

fn job_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "job_not_found", "no job has this id")
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_of(value: Option<&str>) -> Auth {
        let config = EmulatorConfig {
            broke_keys: vec!["broke".into()],
            ..EmulatorConfig::linear()
        };
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        authenticate(&config, &headers)
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(auth_of(None), Auth::Missing);
        assert_eq!(auth_of(Some("")), Auth::Missing);
        assert_eq!(auth_of(Some("Bearer")), Auth::Missing);
        assert_eq!(auth_of(Some("Bearer   ")), Auth::Missing);
        assert_eq!(
            auth_of(Some("Bearer emulator-key")),
            Auth::Accepted(Account { broke: false })
        );
        assert_eq!(
            auth_of(Some("bearer emulator-key")),
            Auth::Accepted(Account { broke: false })
        );
        assert_eq!(
            auth_of(Some("Bearer broke")),
            Auth::Accepted(Account { broke: true })
        );
        assert_eq!(auth_of(Some("Bearer nope")), Auth::Invalid);
        assert_eq!(auth_of(Some("Basic emulator-key")), Auth::Invalid);
        assert_eq!(auth_of(Some("emulator-key")), Auth::Invalid);
    }
}
