//! A serverless video-generation function: the video-gen component used as a *library* inside
//! another component, the way a Spin or wasmCloud function would use it.
//!
//! - `POST /generate` with a JSON body `{"prompt": "...", "resolution"?, "duration_seconds"?,
//!   "aspect_ratio"?, "seed"?, "images"?, "mode"?, "watermark"?}` submits one job and answers
//!   `202 {"job_id": "..."}`. It never waits for the video: a request handler must return fast.
//! - `GET /jobs/{id}` polls the job once and answers `200 {"job_id", "state", "progress",
//!   "outputs", "raw_status", "next_poll_ms"}`.
//! - Errors are JSON `{"error": <case>, "message": ...}`, with `400` for an invalid request,
//!   `404` for an unknown job, `429` when the provider's budget is spent, `502` otherwise.
//!
//! The function reads `EMPIRIOLABS_BASE_URL` (optional, e.g. an emulator) from its environment;
//! the key, `EMPIRIOLABS_API_KEY`, is read by the video-gen component itself.

wit_bindgen::generate!({
    path: ["../../wit/deps/videogen-api", "wit"],
    world: "empiriolabs:serverless/serverless",
    generate_all,
});

use serde_json::{Value, json};
use videogen::api::video_gen::{self, ClientConfig, Error, JobState, Mode, VideoRequest};
use waki::{ErrorCode, Method, Request, Response, handler};

/// Largest request body accepted (a prompt is at most 2,500 characters; images may be data URLs).
const MAX_BODY: u64 = 16 * 1024 * 1024;

#[handler]
fn handle(request: Request) -> Result<Response, ErrorCode> {
    let method = request.method();
    let path = request.path().to_string();
    let job_id = path
        .strip_prefix("/jobs/")
        .filter(|id| !id.is_empty() && !id.contains('/'));
    let (status, body) = match (method, path.as_str(), job_id) {
        (Method::Post, "/generate", _) => generate(request),
        (Method::Get, _, Some(id)) => job(id),
        (_, "/generate", _) | (_, _, Some(_)) => (
            405,
            json!({"error": "method-not-allowed", "message": "POST /generate, GET /jobs/{id}"}),
        ),
        _ => (
            404,
            json!({"error": "no-route", "message": "POST /generate, GET /jobs/{id}"}),
        ),
    };
    Response::builder()
        .status_code(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

fn config() -> ClientConfig {
    ClientConfig {
        base_url: std::env::var("EMPIRIOLABS_BASE_URL")
            .ok()
            .filter(|u| !u.is_empty()),
        api_key: None,
        connect_timeout_ms: None,
        first_byte_timeout_ms: None,
        between_bytes_timeout_ms: None,
        max_response_bytes: None,
        poll: None,
    }
}

fn generate(request: Request) -> (u16, Value) {
    let body = match read_body(request) {
        Ok(body) => body,
        Err(message) => return (400, json!({"error": "bad-body", "message": message})),
    };
    let request = match video_request(&body) {
        Ok(request) => request,
        Err(message) => return (400, json!({"error": "bad-body", "message": message})),
    };
    match video_gen::submit(&config(), &request) {
        Ok(job_id) => (
            202,
            json!({"job_id": job_id, "status_url": format!("/jobs/{job_id}")}),
        ),
        Err(error) => error_response(error),
    }
}

fn job(id: &str) -> (u16, Value) {
    match video_gen::poll(&config(), id) {
        Ok(status) => {
            let (state, progress, outputs, failure) = match &status.state {
                JobState::Queued => ("queued", None, vec![], None),
                JobState::Running(progress) => ("running", *progress, vec![], None),
                JobState::Completed(urls) => ("completed", Some(1.0), urls.clone(), None),
                JobState::Failed(f) => (
                    "failed",
                    None,
                    vec![],
                    Some(json!({"code": f.code, "message": f.message})),
                ),
                JobState::Cancelled => ("cancelled", None, vec![], None),
                JobState::Expired => ("expired", None, vec![], None),
            };
            (
                200,
                json!({
                    "job_id": status.job_id,
                    "state": state,
                    "progress": progress,
                    "outputs": outputs,
                    "failure": failure,
                    "raw_status": status.raw_status,
                    "next_poll_ms": status.next_poll_ms,
                }),
            )
        }
        Err(error) => error_response(error),
    }
}

fn read_body(request: Request) -> Result<Value, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = request
        .chunk(64 * 1024)
        .map_err(|e| format!("reading the body: {e}"))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > MAX_BODY {
            return Err(format!("the body is over {MAX_BODY} bytes"));
        }
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("the body is not JSON: {e}"))
}

fn video_request(body: &Value) -> Result<VideoRequest, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("`{key}` must be a string, not {other}")),
        }
    };
    let prompt = text("prompt")?.ok_or("`prompt` is required")?;
    let mode = match text("mode")?.as_deref() {
        None => None,
        Some("auto") => Some(Mode::Auto),
        Some("t2v") => Some(Mode::T2v),
        Some("i2v") => Some(Mode::I2v),
        Some("r2v") => Some(Mode::R2v),
        Some(other) => return Err(format!("`mode` must be auto, t2v, i2v or r2v, not {other}")),
    };
    let images = match body.get("images") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("`images` must be a list of strings")?,
        Some(_) => return Err("`images` must be a list of strings".into()),
    };
    let number = |key: &str| -> Result<Option<i64>, String> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or(format!("`{key}` must be an integer")),
        }
    };
    let duration_seconds = number("duration_seconds")?
        .map(|d| u32::try_from(d).map_err(|_| format!("`duration_seconds` {d} is out of range")))
        .transpose()?;
    let watermark = match body.get("watermark") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err("`watermark` must be a boolean".into()),
    };
    Ok(VideoRequest {
        model: text("model")?,
        prompt,
        mode,
        images,
        aspect_ratio: text("aspect_ratio")?,
        resolution: text("resolution")?,
        duration_seconds,
        // Range checks are the component's job (`validate` runs inside `submit`).
        seed: number("seed")?,
        watermark,
    })
}

fn error_response(error: Error) -> (u16, Value) {
    let (status, case, detail) = match error {
        Error::PermanentInvalidRequest(violations) => (
            400,
            "permanent-invalid-request",
            json!(
                violations
                    .iter()
                    .map(|v| json!({"field": v.field, "rule": v.rule, "message": v.message}))
                    .collect::<Vec<_>>()
            ),
        ),
        Error::NotFound(job) => (404, "not-found", json!(format!("no job {job}"))),
        Error::RateLimited(r) => (
            429,
            "rate-limited",
            json!({"message": r.message, "retry_after_ms": r.retry_after_ms}),
        ),
        Error::PermanentUnauthorized(e) => (502, "permanent-unauthorized", json!(e.message)),
        Error::InsufficientCredits(e) => (502, "insufficient-credits", json!(e.message)),
        Error::JobFailed(f) => (
            502,
            "job-failed",
            json!(format!(
                "job {}: {}: {}",
                f.job_id, f.failure.code, f.failure.message
            )),
        ),
        Error::ServerError(e) => (502, "server-error", json!(e.message)),
        Error::MalformedResponse(e) => (502, "malformed-response", json!(e.message)),
        Error::TransportError(t) => (502, "transport-error", json!(t.message)),
        // The job may exist: a client must not blindly POST again.
        Error::PermanentSubmitOutcomeUnknown(s) => {
            (502, "permanent-submit-outcome-unknown", json!(s.message))
        }
        Error::Timeout(t) => (504, "timeout", json!(format!("job {}", t.job_id))),
        Error::ExecutionFailed => (500, "execution-failed", Value::Null),
    };
    (status, json!({"error": case, "message": detail}))
}
