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

use video_gen_core::{ApiError, JobFailure, JobState, ParsedJob};

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
        StatusGroup::Running => JobState::Running(progress),
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

/// Progress from 0.0 to 1.0: a fraction (0–1) as is, a percentage (above 1, up to 100)
/// divided by 100, the same as a string, or `"50%"`. Anything else is `None`.
fn progress_value(value: &Value) -> Option<f64> {
    let fraction = match value {
        Value::Number(n) => scale_progress(n.as_f64()?),
        Value::String(s) => progress_from_str(s),
        _ => None,
    }?;
    // Normalises -0.0 and keeps the documented range even for rounding surprises.
    Some(if fraction == 0.0 {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    })
}

fn progress_from_str(s: &str) -> Option<f64> {
    let s = s.trim();
    match s.strip_suffix('%') {
        Some(percent) => {
            let p = decimal(percent.trim())?;
            (p.is_finite() && (0.0..=100.0).contains(&p)).then_some(p / 100.0)
        }
        None => scale_progress(decimal(s)?),
    }
}

/// A number written as JSON writes it (`12.5`, `50`, `1e2`), read by `serde_json`'s number
/// parser, which the component links anyway, rather than `str::parse::<f64>`, which would
/// link core's own float parser and its tables (about 10 KiB) for the same answers on every
/// form a provider writes. What only `str::parse` accepts (`+5`, `.5`, `inf`) is no progress.
fn decimal(s: &str) -> Option<f64> {
    serde_json::from_str(s).ok()
}

/// `0..=1` is a fraction, `(1, 100]` a percentage; 1 itself is read as done, not 1 %.
fn scale_progress(p: f64) -> Option<f64> {
    if !p.is_finite() || p < 0.0 {
        None
    } else if p <= 1.0 {
        Some(p)
    } else if p <= 100.0 {
        Some(p / 100.0)
    } else {
        None
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn job(v: Value) -> Result<ParsedJob, String> {
        parse_job(v.to_string().as_bytes())
    }

    fn state(v: Value) -> JobState {
        job(v).expect("parses").state
    }

    fn done(result: Value) -> Result<ParsedJob, String> {
        job(json!({"status": "completed", "result": result}))
    }

    fn urls(result: Value) -> Vec<String> {
        match done(result).expect("parses").state {
            JobState::Completed(urls) => urls,
            other => panic!("not completed: {other:?}"),
        }
    }

    // ---- submit ----

    #[test]
    fn submit_id_locations() {
        let cases = [
            (json!({"job_id": "j1", "id": "other"}), "j1"),
            (json!({"id": "j2"}), "j2"),
            (json!({"data": {"job_id": "j3"}}), "j3"),
            (json!({"data": {"id": "j4"}}), "j4"),
            (json!({"job_id": 12345}), "12345"),
            (json!({"job_id": "", "id": "j5"}), "j5"),
            (json!({"job_id": null, "data": {"id": 6}}), "6"),
        ];
        for (body, id) in cases {
            assert_eq!(
                parse_submit_response(body.to_string().as_bytes()).as_deref(),
                Ok(id),
                "{body}"
            );
        }
    }

    #[test]
    fn submit_without_id_is_an_error() {
        assert_eq!(
            parse_submit_response(b"{}"),
            Err("response has no job_id".to_owned())
        );
        assert!(parse_submit_response(b"[]").is_err());
        assert!(
            parse_submit_response(b"not json")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(parse_submit_response(b"{\"job_id\":{\"x\":1}}").is_err());
    }

    // ---- status ----

    #[test]
    fn every_synonym_group() {
        for s in [
            "pending",
            "queued",
            "in_queue",
            "IN-QUEUE",
            "in queue",
            "Submitted",
            "WAITING",
        ] {
            assert_eq!(
                state(json!({"status": s, "progress": 0.5})),
                JobState::Queued,
                "{s}"
            );
        }
        for s in [
            "running",
            "Processing",
            "in_progress",
            "IN-PROGRESS",
            "started",
            "generating",
        ] {
            assert_eq!(
                state(json!({"status": s, "progress": 0.5})),
                JobState::Running(Some(0.5)),
                "{s}"
            );
        }
        for s in ["completed", "SUCCEEDED", "success", "done", "Finished"] {
            let st = state(json!({"status": s, "result": {"url": "https://o/v.mp4"}}));
            assert_eq!(
                st,
                JobState::Completed(vec!["https://o/v.mp4".into()]),
                "{s}"
            );
        }
        for s in ["failed", "ERROR", "failure"] {
            assert!(
                matches!(state(json!({"status": s})), JobState::Failed(_)),
                "{s}"
            );
        }
        for s in ["canceled", "Cancelled"] {
            assert_eq!(state(json!({"status": s})), JobState::Cancelled, "{s}");
        }
        assert_eq!(state(json!({"status": "EXPIRED"})), JobState::Expired);
    }

    #[test]
    fn unknown_status_is_running_with_progress() {
        let p = job(json!({"status": "rendering_audio", "progress": 40})).unwrap();
        assert_eq!(p.state, JobState::Running(Some(0.4)));
        assert_eq!(p.raw_status, "rendering_audio");
    }

    #[test]
    fn status_is_required_and_must_be_a_string() {
        assert_eq!(
            job(json!({"job_id": "x"})).unwrap_err(),
            "job response has no status"
        );
        assert!(job(json!({"status": 3})).unwrap_err().contains("a number"));
        assert!(parse_job(b"null").is_err());
        assert!(parse_job(b"").is_err());
    }

    #[test]
    fn job_under_data_and_envelope_status() {
        let p =
            job(json!({"status": "ok", "data": {"job_id": "j", "status": "processing"}})).unwrap();
        assert_eq!(p.state, JobState::Running(None));
        assert_eq!(p.job_id.as_deref(), Some("j"));
        // `data` without its own status is not the job.
        let p = job(json!({"status": "queued", "data": {"foo": 1}, "id": 9})).unwrap();
        assert_eq!(p.state, JobState::Queued);
        assert_eq!(p.job_id.as_deref(), Some("9"));
    }

    // ---- progress ----

    #[test]
    fn progress_forms() {
        let cases = [
            (json!(0.5), Some(0.5)),
            (json!(0), Some(0.0)),
            (json!(1), Some(1.0)),
            (json!(50), Some(0.5)),
            (json!(100), Some(1.0)),
            (json!("50%"), Some(0.5)),
            (json!(" 12.5 % "), Some(0.125)),
            (json!("0.5"), Some(0.5)),
            (json!("50"), Some(0.5)),
            (json!(150), None),
            (json!(-1), None),
            (json!("150%"), None),
            (json!("-5%"), None),
            (json!("NaN"), None),
            (json!("inf"), None),
            (json!("half"), None),
            (json!("1e1"), Some(0.1)),
            (json!(".5"), None),
            (json!("+50%"), None),
            (json!("0x10"), None),
            (json!(null), None),
            (json!(true), None),
            (json!([0.5]), None),
            (json!(-0.0), Some(0.0)),
        ];
        for (raw, expected) in cases {
            let p = job(json!({"status": "running", "progress": raw})).unwrap();
            assert_eq!(p.progress, expected, "{raw}");
            assert_eq!(p.state, JobState::Running(expected), "{raw}");
            if let Some(x) = p.progress {
                assert!(x.is_sign_positive(), "{raw}");
            }
        }
    }

    // ---- outputs ----

    #[test]
    fn every_output_location_form() {
        let u = |s: &str| vec![s.to_owned()];
        assert_eq!(urls(json!("https://o/a.mp4")), u("https://o/a.mp4"));
        assert_eq!(
            urls(json!(["https://o/a.mp4", "https://o/b.mp4"])),
            vec!["https://o/a.mp4".to_owned(), "https://o/b.mp4".to_owned()]
        );
        assert_eq!(
            urls(json!([{"url": "https://o/a.mp4"}])),
            u("https://o/a.mp4")
        );
        for key in OUTPUT_KEYS {
            assert_eq!(
                urls(json!({key: "https://o/a.mp4"})),
                u("https://o/a.mp4"),
                "{key} string"
            );
            assert_eq!(
                urls(json!({key: ["https://o/a.mp4"]})),
                u("https://o/a.mp4"),
                "{key} array"
            );
            assert_eq!(
                urls(json!({key: {"url": "https://o/a.mp4"}})),
                u("https://o/a.mp4"),
                "{key} object"
            );
            assert_eq!(
                urls(json!({key: [{"url": "https://o/a.mp4"}]})),
                u("https://o/a.mp4"),
                "{key} objects"
            );
        }
    }

    #[test]
    fn outputs_are_collected_in_key_order_without_duplicates() {
        let got = urls(json!({
            "video": "https://o/4.mp4",
            "outputs": [{"url": "https://o/3.mp4"}, {"url": "https://o/1.mp4"}],
            "url": "https://o/1.mp4",
            "video_urls": ["https://o/2.mp4", "https://o/1.mp4"],
            "thumbnail_url": "https://o/t.jpg",
        }));
        assert_eq!(
            got,
            [
                "https://o/1.mp4",
                "https://o/2.mp4",
                "https://o/3.mp4",
                "https://o/4.mp4"
            ]
        );
    }

    #[test]
    fn outputs_fall_back_to_the_job_object() {
        let p = job(json!({"status": "succeeded", "video_url": "https://o/a.mp4"})).unwrap();
        assert_eq!(p.state, JobState::Completed(vec!["https://o/a.mp4".into()]));
        let p = job(json!({"status": "done", "result": {}, "output_urls": ["https://o/b.mp4"]}))
            .unwrap();
        assert_eq!(p.state, JobState::Completed(vec!["https://o/b.mp4".into()]));
    }

    #[test]
    fn completed_without_url_is_an_error() {
        for result in [
            json!(null),
            json!({}),
            json!([]),
            json!(""),
            json!({"url": 5}),
            json!({"thumb": "x"}),
        ] {
            assert_eq!(
                done(result.clone()).unwrap_err(),
                "completed job has no output URL",
                "{result}"
            );
        }
        assert!(job(json!({"status": "completed"})).is_err());
    }

    // ---- failures ----

    #[test]
    fn failed_error_forms() {
        let f = |v: Value| match state(v) {
            JobState::Failed(f) => (f.code, f.message),
            other => panic!("{other:?}"),
        };
        let pair = |c: &str, m: &str| (c.to_owned(), m.to_owned());
        assert_eq!(
            f(
                json!({"status": "failed", "error": {"code": "content_policy_violation", "message": "no"}})
            ),
            pair("content_policy_violation", "no")
        );
        assert_eq!(
            f(json!({"status": "failed", "error": {"type": "t", "detail": "d"}})),
            pair("t", "d")
        );
        assert_eq!(
            f(json!({"status": "failed", "error": {"code": 500}})),
            pair("500", "the provider gave no reason")
        );
        assert_eq!(
            f(json!({"status": "failed", "error": "boom"})),
            pair("unknown", "boom")
        );
        assert_eq!(
            f(json!({"status": "failed"})),
            pair("unknown", "the provider gave no reason")
        );
        assert_eq!(
            f(json!({"status": "failed", "error": null})),
            pair("unknown", "the provider gave no reason")
        );
        assert_eq!(
            f(json!({"status": "error", "error": ["x"]})),
            pair("unknown", "the provider gave no reason")
        );
        assert_eq!(
            f(
                json!({"data": {"status": "failed"}, "error": {"code": "upstream_error", "message": "m"}})
            ),
            pair("upstream_error", "m")
        );
    }

    // ---- other fields ----

    #[test]
    fn timestamps_and_ids_are_kept_verbatim() {
        let p = job(json!({
            "job_id": "j-1", "status": "queued",
            "created_at": "2025-01-02T03:04:05Z", "completed_at": null, "extra": {"x": 1},
        }))
        .unwrap();
        assert_eq!(p.job_id.as_deref(), Some("j-1"));
        assert_eq!(p.created_at.as_deref(), Some("2025-01-02T03:04:05Z"));
        assert_eq!(p.completed_at, None);
        let p = job(json!({"status": "done", "created_at": 1_700_000_000, "completed_at": 1_700_000_060.5, "url": "u"})).unwrap();
        assert_eq!(p.created_at.as_deref(), Some("1700000000"));
        assert_eq!(p.completed_at.as_deref(), Some("1700000060.5"));
    }

    // ---- error bodies ----

    #[test]
    fn error_body_shapes() {
        let e = |body: &str| {
            let e = parse_error_body(418, body.as_bytes());
            assert_eq!(e.status, 418);
            (e.code, e.message)
        };
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            e(r#"{"error":{"code":"invalid_api_key","message":"bad key"}}"#),
            (some("invalid_api_key"), "bad key".into())
        );
        assert_eq!(
            e(r#"{"error":"slow down","code":"rate_limit_exceeded"}"#),
            (some("rate_limit_exceeded"), "slow down".into())
        );
        assert_eq!(
            e(r#"{"code":"model_unavailable","message":"retry"}"#),
            (some("model_unavailable"), "retry".into())
        );
        assert_eq!(e(r#"{"message":"m"}"#), (None, "m".into()));
        assert_eq!(e(r#"{"detail":"Not Found"}"#), (None, "Not Found".into()));
        assert_eq!(
            e(r#"{"detail":[{"msg":"x"}]}"#),
            (None, r#"[{"msg":"x"}]"#.into())
        );
        assert_eq!(
            e(r#"{"error":{"type":"t"},"message":"outer"}"#),
            (some("t"), "outer".into())
        );
        assert_eq!(
            e(r#""plain json string""#),
            (None, "plain json string".into())
        );
        assert_eq!(e(r#"{"unrelated":1}"#), (None, r#"{"unrelated":1}"#.into()));
    }

    #[test]
    fn non_json_error_bodies() {
        let e = parse_error_body(502, b"  <html>Bad Gateway</html>\n");
        assert_eq!(
            (e.code, e.message.as_str()),
            (None, "<html>Bad Gateway</html>")
        );
        assert_eq!(
            parse_error_body(503, b"").message,
            "HTTP 503 with an empty body"
        );
        assert_eq!(
            parse_error_body(503, b" \n ").message,
            "HTTP 503 with an empty body"
        );
        let long = "é".repeat(1000);
        let m = parse_error_body(500, long.as_bytes()).message;
        assert_eq!(m.chars().count(), 300);
        let m = parse_error_body(500, &[0xff, 0xfe, b'x']).message;
        assert!(m.ends_with('x'));
    }

    // ---- never panics ----

    /// Every key the parser looks at: the job's own fields and every output location.
    fn known_keys() -> Vec<&'static str> {
        let fields = [
            "job_id",
            "id",
            "data",
            "status",
            "progress",
            "result",
            "error",
            "code",
            "message",
            "type",
            "detail",
            "created_at",
            "completed_at",
        ];
        fields.into_iter().chain(OUTPUT_KEYS).collect()
    }

    const STATUS_WORDS: &[&str] = &[
        "pending",
        "queued",
        "in_queue",
        "submitted",
        "waiting",
        "running",
        "processing",
        "in_progress",
        "started",
        "generating",
        "completed",
        "succeeded",
        "success",
        "done",
        "finished",
        "failed",
        "error",
        "failure",
        "canceled",
        "cancelled",
        "expired",
    ];

    fn arb_key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(known_keys()).prop_map(str::to_owned),
            1 => ".{0,8}",
        ]
    }

    fn arb_number() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            (-200.0f64..200.0).prop_map(Value::from),
        ]
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            arb_number(),
            ".{0,16}".prop_map(Value::String),
            prop::sample::select(STATUS_WORDS).prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((arb_key(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// A status word in a random case and separator style, or an arbitrary string.
    fn arb_status() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => (prop::sample::select(STATUS_WORDS), any::<bool>(), any::<bool>()).prop_map(|(w, upper, dash)| {
                let w = if upper { w.to_uppercase() } else { w.to_owned() };
                Value::from(if dash { w.replace('_', "-") } else { w })
            }),
            1 => ".{0,12}".prop_map(Value::from),
            1 => arb_json(),
        ]
    }

    fn arb_progress() -> impl Strategy<Value = Value> {
        prop_oneof![
            arb_number(),
            (-10.0f64..200.0).prop_map(|p| Value::from(format!("{p}%"))),
            (-10.0f64..200.0).prop_map(|p| Value::from(p.to_string())),
            ".{0,6}".prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    fn arb_location() -> impl Strategy<Value = Value> {
        let url = prop_oneof!["https://o/[a-z]{1,4}\\.mp4", ".{0,6}"].prop_map(Value::from);
        url.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(&OUTPUT_KEYS[..]), inner), 0..4)
                    .prop_map(|kv| Value::Object(
                        kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                    )),
            ]
        })
    }

    fn arb_job() -> impl Strategy<Value = Value> {
        (
            prop::option::of(arb_status()),
            prop::option::of(arb_progress()),
            prop::option::of(prop_oneof![arb_location(), arb_json()]),
            prop::option::of(arb_json()),
            prop::option::of(arb_json()),
            any::<bool>(),
        )
            .prop_map(|(status, progress, result, error, created, wrap)| {
                let mut job = Map::new();
                let fields = [
                    ("status", status),
                    ("progress", progress),
                    ("result", result),
                    ("error", error),
                    ("created_at", created),
                ];
                for (k, v) in fields {
                    if let Some(v) = v {
                        job.insert(k.to_owned(), v);
                    }
                }
                if wrap {
                    json!({"data": job})
                } else {
                    Value::Object(job)
                }
            })
    }

    fn check_job_invariants(body: &[u8]) -> Result<(), TestCaseError> {
        if let Ok(p) = parse_job(body) {
            if let Some(x) = p.progress {
                prop_assert!((0.0..=1.0).contains(&x));
            }
            match p.state {
                JobState::Completed(urls) => {
                    prop_assert!(!urls.is_empty());
                    prop_assert!(urls.iter().all(|u| !u.trim().is_empty()));
                }
                JobState::Running(x) => prop_assert_eq!(x, p.progress),
                JobState::Failed(f) => prop_assert!(!f.code.is_empty() && !f.message.is_empty()),
                _ => {}
            }
        }
        Ok(())
    }

    fn check_all(body: &[u8]) -> Result<(), TestCaseError> {
        check_job_invariants(body)?;
        if let Ok(id) = parse_submit_response(body) {
            prop_assert!(!id.trim().is_empty());
        }
        let e = parse_error_body(500, body);
        prop_assert!(!e.message.is_empty());
        Ok(())
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
            check_all(&body)?;
        }

        #[test]
        fn never_panics_on_arbitrary_json(v in arb_json()) {
            check_all(v.to_string().as_bytes())?;
        }

        #[test]
        fn never_panics_on_job_like_objects(v in arb_job()) {
            check_all(v.to_string().as_bytes())?;
        }

        #[test]
        fn error_text_is_bounded_for_non_json(body in "[<a-eg-mo-su-zA-Z]\\PC{0,600}") {
            let e = parse_error_body(500, body.as_bytes());
            prop_assert!(e.message.chars().count() <= MAX_TEXT_MESSAGE_CHARS);
        }
    }
}
