//! `parse`'s tests: every documented and tolerated response shape, read by example, and
//! property tests that no input, bytes or JSON, makes a reader panic.

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
    let p = job(json!({"status": "ok", "data": {"job_id": "j", "status": "processing"}})).unwrap();
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
    // (as written, the reading kept (value, marked %), this reading alone as a fraction)
    let cases = [
        (json!(0.5), Some((0.5, false)), Some(0.5)),
        (json!(0), Some((0.0, false)), Some(0.0)),
        (json!(1), Some((1.0, false)), Some(1.0)),
        (json!(50), Some((50.0, false)), Some(0.5)),
        (json!(100), Some((100.0, false)), Some(1.0)),
        (json!("50%"), Some((50.0, true)), Some(0.5)),
        (json!(" 12.5 % "), Some((12.5, true)), Some(0.125)),
        // Marked: 0.5 % is not half done.
        (json!("0.5%"), Some((0.5, true)), Some(0.005)),
        (json!("0.5"), Some((0.5, false)), Some(0.5)),
        (json!("50"), Some((50.0, false)), Some(0.5)),
        (json!(150), None, None),
        (json!(-1), None, None),
        (json!("150%"), None, None),
        (json!("-5%"), None, None),
        (json!("NaN"), None, None),
        (json!("inf"), None, None),
        (json!("half"), None, None),
        (json!("1e1"), Some((10.0, false)), Some(0.1)),
        (json!(".5"), None, None),
        (json!("+50%"), None, None),
        (json!("0x10"), None, None),
        (json!(null), None, None),
        (json!(true), None, None),
        (json!([0.5]), None, None),
        (json!(-0.0), Some((0.0, false)), Some(0.0)),
    ];
    for (raw, reading, fraction) in cases {
        let p = job(json!({"status": "running", "progress": raw})).unwrap();
        let kept = p.progress.map(|r| (r.value, r.marked_percent));
        assert_eq!(kept, reading, "{raw}");
        assert_eq!(p.state, JobState::Running(fraction), "{raw}");
        if let Some(r) = p.progress {
            assert!(r.value.is_sign_positive(), "{raw}");
        }
    }
}

#[test]
fn progress_is_kept_whatever_the_state() {
    // A queued job that writes 0, or a completed one that writes 100: the reading is kept
    // for a caller that settles the job's scale.
    let p = job(json!({"status": "queued", "progress": 0.4})).unwrap();
    assert_eq!(p.state, JobState::Queued);
    assert_eq!(p.progress.map(|r| r.value), Some(0.4));
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
    let p =
        job(json!({"status": "done", "result": {}, "output_urls": ["https://o/b.mp4"]})).unwrap();
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
            prop::collection::vec((prop::sample::select(&OUTPUT_KEYS[..]), inner), 0..4).prop_map(
                |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
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
        if let Some(r) = p.progress {
            prop_assert!((0.0..=100.0).contains(&r.value));
            prop_assert!((0.0..=1.0).contains(&r.fraction()));
        }
        match p.state {
            JobState::Completed(urls) => {
                prop_assert!(!urls.is_empty());
                prop_assert!(urls.iter().all(|u| !u.trim().is_empty()));
            }
            JobState::Running(x) => prop_assert_eq!(x, p.progress.map(|r| r.fraction())),
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
