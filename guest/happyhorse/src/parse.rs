//! Tolerant reading of the provider's responses.
//!
//! The provider documents little of its response shapes (non-terminal status names, where
//! the output URLs sit, the error body), so these readers accept the spellings comparable
//! APIs use, ignore unknown fields, and insist only on what the contract needs: a job id
//! after submit, a status on a job, at least one URL on a completed job.
//!
//! Everything here reads bytes from the network, so nothing may panic on any input: there is
//! no indexing and no unwrap on input-derived data, and the property tests feed arbitrary
//! bytes and arbitrary JSON to every function.

use serde_json::{Map, Value};

use video_gen_core::model::{ApiError, JobFailure, JobState, ParsedJob, ProgressReading};

/// Longest message taken from a non-JSON error body: enough for a proxy's one-line error,
/// short enough that an HTML error page does not flood a log.
const MAX_TEXT_MESSAGE_CHARS: usize = 300;

/// Keys that may hold output URLs, in the order they are searched (every one is searched;
/// the order decides the order of the outputs).
const OUTPUT_KEYS: [&str; 10] = [
    "url",
    "urls",
    "video_url",
    "video_urls",
    "output_url",
    "output_urls",
    "outputs",
    "output",
    "videos",
    "video",
];

/// How deep output URLs are looked for (`result.outputs[0].video.url` is depth 4): bounded
/// so a deeply nested body costs little.
const MAX_OUTPUT_DEPTH: u8 = 6;

/// Code reported for a failure whose cause the provider did not name.
const UNKNOWN_CODE: &str = "unknown";

/// The job id in a submit response: `job_id`, else `id`, else `data.job_id`, else `data.id`
/// (a string, or a number turned into its decimal string).
///
/// Returns a description of what was wrong when no id is found.
pub fn parse_submit_response(body: &[u8]) -> Result<String, String> {
    let value = parse_json(body)?;
    let top = value
        .as_object()
        .ok_or_else(|| "submit response is not a JSON object".to_owned())?;
    let data = top.get("data").and_then(Value::as_object);
    [
        top.get("job_id"),
        top.get("id"),
        data.and_then(|d| d.get("job_id")),
        data.and_then(|d| d.get("id")),
    ]
    .into_iter()
    .flatten()
    .find_map(scalar_string)
    .ok_or_else(|| "response has no job_id".to_owned())
}

/// Reads a job object (`GET /v1/jobs/{id}`), at the top level or under `data`.
///
/// `status` is required; an unknown status is reported as `Running` (the caller's deadline
/// bounds it). A completed job without any output URL is an error, because the caller could
/// do nothing with it.
pub fn parse_job(body: &[u8]) -> Result<ParsedJob, String> {
    let value = parse_json(body)?;
    let top = value
        .as_object()
        .ok_or_else(|| "job response is not a JSON object".to_owned())?;
    let job = job_object(top);
    let raw_status = match job.get("status") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("job status is not a string but {}", kind(other))),
        None => return Err("job response has no status".to_owned()),
    };
    let progress = job.get("progress").and_then(progress_value);
    let state = match status_group(&raw_status) {
        StatusGroup::Queued => JobState::Queued,
        StatusGroup::Running => JobState::Running(progress.map(ProgressReading::fraction)),
        StatusGroup::Completed => JobState::Completed(outputs(job)?),
        StatusGroup::Failed => JobState::Failed(failure(job, top)),
        StatusGroup::Cancelled => JobState::Cancelled,
        StatusGroup::Expired => JobState::Expired,
    };
    Ok(ParsedJob {
        job_id: job
            .get("job_id")
            .and_then(scalar_string)
            .or_else(|| job.get("id").and_then(scalar_string)),
        state,
        raw_status,
        progress,
        created_at: job.get("created_at").and_then(timestamp_string),
        completed_at: job.get("completed_at").and_then(timestamp_string),
    })
}

/// The job object: `data` when it is an object with a `status` of its own (an envelope such
/// as `{"status":"ok","data":{...}}` must not be mistaken for the job), else the top level.
fn job_object(top: &Map<String, Value>) -> &Map<String, Value> {
    match top.get("data") {
        Some(Value::Object(data)) if data.contains_key("status") => data,
        _ => top,
    }
}

/// The provider's status spellings, grouped by meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusGroup {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    Expired,
}

/// Groups a status word case-insensitively, with `-` and spaces read as `_`; anything
/// unknown is `Running`, since a job the provider still reports on has not ended.
fn status_group(raw: &str) -> StatusGroup {
    let normalized: String = raw
        .trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    match normalized.as_str() {
        "pending" | "queued" | "in_queue" | "submitted" | "waiting" => StatusGroup::Queued,
        "completed" | "succeeded" | "success" | "done" | "finished" => StatusGroup::Completed,
        "failed" | "error" | "failure" => StatusGroup::Failed,
        "canceled" | "cancelled" => StatusGroup::Cancelled,
        "expired" => StatusGroup::Expired,
        // "running", "processing", "in_progress", "started", "generating" and unknown words.
        _ => StatusGroup::Running,
    }
}

/// Progress as written: a number from 0 to 100, or the same as a string, or `"50%"` (marked
/// as a percentage, 0 to 100). Anything else (negative, above 100, not a number) is `None`.
/// Scaling it is the reader's choice ([`ProgressReading::fraction`] for one reading alone).
fn progress_value(value: &Value) -> Option<ProgressReading> {
    let (value, marked_percent) = match value {
        Value::Number(n) => (n.as_f64()?, false),
        Value::String(s) => progress_from_str(s)?,
        _ => return None,
    };
    (value.is_finite() && (0.0..=100.0).contains(&value)).then_some(ProgressReading {
        // Normalises -0.0.
        value: if value == 0.0 { 0.0 } else { value },
        marked_percent,
    })
}

fn progress_from_str(s: &str) -> Option<(f64, bool)> {
    let s = s.trim();
    match s.strip_suffix('%') {
        Some(percent) => Some((decimal(percent.trim())?, true)),
        None => Some((decimal(s)?, false)),
    }
}

/// A number written as JSON writes it (`12.5`, `50`, `1e2`), read by `serde_json`'s number
/// parser, which the component links anyway, rather than `str::parse::<f64>`, which would
/// link core's own float parser and its tables (about 10 KiB) for the same answers on every
/// form a provider writes. What only `str::parse` accepts (`+5`, `.5`, `inf`) is no progress.
fn decimal(s: &str) -> Option<f64> {
    serde_json::from_str(s).ok()
}

/// Output URLs of a completed job: from `result` (a URL, a list, or an object), falling back
/// to the job object itself when `result` is missing or holds none.
fn outputs(job: &Map<String, Value>) -> Result<Vec<String>, String> {
    let mut urls = Vec::new();
    if let Some(result) = job.get("result") {
        collect_urls(result, 0, &mut urls);
    }
    if urls.is_empty() {
        collect_from_keys(job, 0, &mut urls);
    }
    if urls.is_empty() {
        Err("completed job has no output URL".to_owned())
    } else {
        Ok(urls)
    }
}

/// Adds every URL in `value` (a string, a list, or an object searched under [`OUTPUT_KEYS`]),
/// in order, without duplicates.
fn collect_urls(value: &Value, depth: u8, urls: &mut Vec<String>) {
    if depth > MAX_OUTPUT_DEPTH {
        return;
    }
    match value {
        Value::String(s) if !s.trim().is_empty() && !urls.contains(s) => urls.push(s.clone()),
        Value::Array(items) => {
            for item in items {
                collect_urls(item, depth + 1, urls);
            }
        }
        Value::Object(map) => collect_from_keys(map, depth, urls),
        _ => {}
    }
}

fn collect_from_keys(map: &Map<String, Value>, depth: u8, urls: &mut Vec<String>) {
    for key in OUTPUT_KEYS {
        if let Some(value) = map.get(key) {
            collect_urls(value, depth + 1, urls);
        }
    }
}

/// Why a job failed: its `error` (or, for an enveloped job, the envelope's).
fn failure(job: &Map<String, Value>, top: &Map<String, Value>) -> JobFailure {
    let error = job
        .get("error")
        .filter(|e| !e.is_null())
        .or_else(|| top.get("error"));
    let (code, message) = match error {
        Some(Value::Object(e)) => (
            first_scalar(e, &["code", "type"]),
            first_scalar(e, &["message", "detail"]),
        ),
        Some(other) => (None, scalar_string(other)),
        None => (None, None),
    };
    JobFailure {
        code: code.unwrap_or_else(|| UNKNOWN_CODE.to_owned()),
        message: message.unwrap_or_else(|| "the provider gave no reason".to_owned()),
    }
}

/// A timestamp as the provider wrote it: strings verbatim, numbers as their decimal string.
fn timestamp_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The provider's error as an [`ApiError`], from any of the common error-body shapes:
/// `{"error":{"code","message"}}`, `{"error":"msg","code":..}`, `{"code","message"}`,
/// `{"message"}`, `{"detail"}`. A body that is not JSON, or JSON without a message, becomes
/// the message itself (trimmed, at most 300 characters), or says the body was empty.
pub fn parse_error_body(status: u16, body: &[u8]) -> ApiError {
    let (code, message) = match serde_json::from_slice::<Value>(body) {
        Ok(value) => error_fields(&value),
        Err(_) => (None, None),
    };
    ApiError {
        status,
        code,
        message: message.unwrap_or_else(|| text_message(status, body)),
    }
}

/// `(code, message)` from a JSON error body, each `None` when not found.
fn error_fields(value: &Value) -> (Option<String>, Option<String>) {
    let top = match value {
        Value::Object(top) => top,
        other => return (None, scalar_string(other)),
    };
    let (nested_code, nested_message) = match top.get("error") {
        Some(Value::Object(e)) => (
            first_scalar(e, &["code", "type"]),
            first_scalar(e, &["message", "detail"]),
        ),
        Some(other) => (None, scalar_string(other)),
        None => (None, None),
    };
    let code = nested_code.or_else(|| first_scalar(top, &["code", "type"]));
    let message = nested_message
        .or_else(|| first_scalar(top, &["message"]))
        .or_else(|| top.get("detail").and_then(detail_message));
    (code, message)
}

/// `detail` is a string in most APIs, but a list of validation errors in some (FastAPI): a
/// list is kept as compact JSON so nothing is lost, within the usual bound.
fn detail_message(detail: &Value) -> Option<String> {
    match detail {
        Value::Null => None,
        Value::String(_) | Value::Number(_) => scalar_string(detail),
        other => Some(cut(&other.to_string(), MAX_TEXT_MESSAGE_CHARS)),
    }
}

/// The body as text for a person, or a description of an empty body.
fn text_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status} with an empty body")
    } else {
        cut(text, MAX_TEXT_MESSAGE_CHARS)
    }
}

/// The first `max` characters of `s` (whole characters, never a split one).
fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The first of `keys` in `map` that holds a usable string or number.
fn first_scalar(map: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .filter_map(|k| map.get(*k))
        .find_map(scalar_string)
}

/// A non-blank string as is, or a number as its decimal string.
fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("response is not valid JSON: {e}"))
}

/// A JSON value's kind, for error messages (never its content, which may be large).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// The tests sit in their own file but stay a child of this module, so they can reach the
// private key lists and bounds they check.
#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
