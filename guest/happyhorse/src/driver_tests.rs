//! The driver against a scripted transport and a virtual clock: every test counts the
//! requests sent, because "how many submits" is the property that costs money.

use crate::HappyHorse;
use std::collections::VecDeque;
use video_gen_core::client::*;
use video_gen_core::model::*;

/// Plays back scripted outcomes and records every request.
#[derive(Default)]
struct Script {
    outcomes: VecDeque<Result<HttpResponse, TransportFailure>>,
    sent: Vec<HttpRequest>,
}

impl Transport for Script {
    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, TransportFailure> {
        self.sent.push(request.clone());
        self.outcomes
            .pop_front()
            .expect("the driver sent more requests than the test scripted")
    }
}

/// A clock that only moves when the driver sleeps.
struct VirtualClock {
    now_ms: u64,
    slept: Vec<u64>,
}

const EPOCH_MS: u64 = 1_800_000_000_000;

impl Env for VirtualClock {
    fn now_unix_ms(&self) -> u64 {
        EPOCH_MS + self.now_ms
    }
    fn monotonic_ms(&self) -> u64 {
        self.now_ms
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.now_ms += ms;
        self.slept.push(ms);
    }
    fn random_u64(&mut self) -> u64 {
        0x9e37_79b9_7f4a_7c15
    }
}

fn ok(status: u16, body: &str) -> Result<HttpResponse, TransportFailure> {
    Ok(HttpResponse {
        status,
        retry_after: None,
        body: Ok(body.as_bytes().to_vec()),
    })
}

fn with_retry_after(status: u16, retry_after: &str) -> Result<HttpResponse, TransportFailure> {
    Ok(HttpResponse {
        status,
        retry_after: Some(retry_after.into()),
        body: Ok(br#"{"error":{"code":"rate_limit_exceeded","message":"slow down"}}"#.to_vec()),
    })
}

fn failure(kind: TransportKind) -> Result<HttpResponse, TransportFailure> {
    Err(TransportFailure {
        kind,
        message: "scripted".into(),
    })
}

fn policy() -> PollPolicy {
    PollPolicy {
        min_interval_ms: 1_000,
        max_interval_ms: 4_000,
        deadline_ms: 60_000,
        max_retries: 3,
    }
}

fn client(
    outcomes: Vec<Result<HttpResponse, TransportFailure>>,
) -> Client<HappyHorse, Script, VirtualClock> {
    let config = ConfigInput {
        base_url: Some("http://127.0.0.1:9/".into()),
        api_key: Some("test-key".into()),
        poll: Some(policy()),
        ..Default::default()
    }
    .resolve(&HappyHorse, None)
    .expect("valid config");
    Client::new(
        HappyHorse,
        config,
        Script {
            outcomes: outcomes.into(),
            sent: vec![],
        },
        VirtualClock {
            now_ms: 0,
            slept: vec![],
        },
    )
}

fn t2v() -> VideoRequest {
    VideoRequest {
        prompt: "A horse gallops along a beach at sunset.".into(),
        ..Default::default()
    }
}

fn job(status: &str, extra: &str) -> String {
    format!(r#"{{"job_id":"job_1","status":"{status}"{extra}}}"#)
}

const SUBMITTED: &str = r#"{"job_id":"job_1","status":"queued"}"#;

#[test]
fn submit_sends_one_post_with_bearer_and_body() {
    let mut c = client(vec![ok(200, SUBMITTED)]);
    assert_eq!(c.submit(&t2v()).unwrap(), "job_1");
    let (script, _) = c.into_parts();
    assert_eq!(script.sent.len(), 1);
    let req = &script.sent[0];
    assert_eq!(req.method, Method::Post);
    assert_eq!(req.url, "http://127.0.0.1:9/v1/videos/generations");
    assert_eq!(req.bearer, "test-key");
    let body: serde_json::Value = serde_json::from_slice(req.json_body.as_ref().unwrap()).unwrap();
    assert_eq!(body["model"], "happyhorse-1-1");
    assert_eq!(body["duration"], 5);
}

#[test]
fn invalid_request_sends_nothing() {
    let mut c = client(vec![]);
    let bad = VideoRequest {
        duration_seconds: Some(16),
        ..t2v()
    };
    assert!(matches!(c.submit(&bad), Err(Error::InvalidRequest(v)) if v[0].field == "duration"));
    assert!(c.into_parts().0.sent.is_empty());
}

#[test]
fn submit_retries_429_honouring_retry_after() {
    let mut c = client(vec![with_retry_after(429, "7"), ok(200, SUBMITTED)]);
    assert_eq!(c.submit(&t2v()).unwrap(), "job_1");
    let (script, clock) = c.into_parts();
    assert_eq!(script.sent.len(), 2);
    assert!(clock.slept[0] >= 7_000, "slept {:?}", clock.slept);
}

#[test]
fn submit_gives_up_on_429_after_max_retries() {
    let mut c = client((0..4).map(|_| with_retry_after(429, "1")).collect());
    let err = c.submit(&t2v()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RateLimited {
                retry_after_ms: Some(1_000),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(c.into_parts().0.sent.len(), 4);
}

#[test]
fn submit_retries_a_connection_that_never_opened() {
    let mut c = client(vec![failure(TransportKind::Connect), ok(200, SUBMITTED)]);
    assert_eq!(c.submit(&t2v()).unwrap(), "job_1");
    assert_eq!(c.into_parts().0.sent.len(), 2);
}

#[test]
fn submit_never_resends_when_its_fate_is_unknown() {
    for outcome in [
        failure(TransportKind::Interrupted),
        failure(TransportKind::Other),
        ok(500, "oops"),
        ok(502, "<html>bad gateway</html>"),
        ok(504, ""),
        ok(200, "{not json"),
        ok(200, r#"{"status":"queued"}"#),
        Ok(HttpResponse {
            status: 200,
            retry_after: None,
            body: Err(BodyError::TooLarge { limit: 1024 }),
        }),
    ] {
        let mut c = client(vec![outcome.clone()]);
        let err = c.submit(&t2v()).unwrap_err();
        assert!(
            matches!(err, Error::SubmitOutcomeUnknown(_)),
            "{outcome:?} gave {err:?}"
        );
        assert_eq!(c.into_parts().0.sent.len(), 1, "{outcome:?} was resent");
    }
}

#[test]
fn submit_refusals_are_typed_and_not_retried() {
    type Check = fn(&Error) -> bool;
    let cases: Vec<(u16, &str, Check)> = vec![
        (
            401,
            r#"{"error":{"code":"invalid_api_key","message":"bad key"}}"#,
            |e| matches!(e, Error::Unauthorized(a) if a.code.as_deref() == Some("invalid_api_key")),
        ),
        (
            402,
            r#"{"error":{"code":"insufficient_credits","message":"top up"}}"#,
            |e| matches!(e, Error::InsufficientCredits(a) if a.message == "top up"),
        ),
        (
            400,
            r#"{"error":{"code":"invalid_request","message":"duration"}}"#,
            |e| matches!(e, Error::InvalidRequest(v) if v[0].rule == "invalid_request"),
        ),
        (
            404,
            r#"{"error":{"code":"model_not_found","message":"no"}}"#,
            |e| matches!(e, Error::InvalidRequest(v) if v[0].rule == "model_not_found"),
        ),
    ];
    for (status, body, check) in cases {
        let mut c = client(vec![ok(status, body)]);
        let err = c.submit(&t2v()).unwrap_err();
        assert!(check(&err), "{status}: {err:?}");
        assert_eq!(c.into_parts().0.sent.len(), 1);
    }
}

#[test]
fn denied_is_reported_not_retried() {
    let mut c = client(vec![failure(TransportKind::Denied)]);
    assert!(
        matches!(c.submit(&t2v()), Err(Error::Transport(t)) if t.kind == TransportKind::Denied)
    );
    let mut c = client(vec![failure(TransportKind::Denied)]);
    assert!(matches!(c.poll("job_1"), Err(Error::Transport(t)) if t.kind == TransportKind::Denied));
}

#[test]
fn poll_retries_5xx_then_reads_the_job() {
    let mut c = client(vec![
        ok(503, ""),
        ok(500, "x"),
        ok(200, &job("running", r#","progress":0.5"#)),
    ]);
    let status = c.poll("job_1").unwrap();
    assert_eq!(status.state, JobState::Running(Some(0.5)));
    assert_eq!(c.into_parts().0.sent.len(), 3);
}

#[test]
fn poll_errors_are_typed() {
    let mut c = client(vec![ok(
        404,
        r#"{"error":{"code":"job_not_found","message":"?"}}"#,
    )]);
    assert_eq!(
        c.poll("job_1").unwrap_err(),
        Error::NotFound("job_1".into())
    );

    // An unreadable answer is retried like a 5xx: these are what every attempt got.
    let attempts = policy().max_retries as usize + 1;
    let too_large = Ok(HttpResponse {
        status: 200,
        retry_after: None,
        body: Err(BodyError::TooLarge { limit: 1024 }),
    });
    let mut c = client(vec![too_large; attempts]);
    assert!(
        matches!(c.poll("job_1"), Err(Error::MalformedResponse(a)) if a.message.contains("1024"))
    );

    let mut c = client(vec![ok(200, "<html>"); attempts]);
    assert!(matches!(c.poll("job_1"), Err(Error::MalformedResponse(_))));

    let other_job = ok(200, &job("running", "").replace("job_1", "job_2"));
    let mut c = client(vec![other_job; attempts]);
    assert!(
        matches!(c.poll("job_1"), Err(Error::MalformedResponse(a)) if a.message.contains("job_2"))
    );
}

const GATEWAY_PAGE: &str = "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>";

#[test]
fn a_garbled_poll_answer_is_retried_not_fatal() {
    for garbled in [
        ok(200, GATEWAY_PAGE),
        ok(200, r#"{"job_id":"job_1","status":"runn"#),
        ok(200, ""),
        ok(502, GATEWAY_PAGE),
        ok(504, GATEWAY_PAGE),
    ] {
        let mut c = client(vec![
            garbled.clone(),
            ok(200, &job("running", r#","progress":0.5"#)),
        ]);
        let status = c
            .poll("job_1")
            .unwrap_or_else(|e| panic!("{garbled:?}: {e:?}"));
        assert_eq!(status.state, JobState::Running(Some(0.5)));
        let (script, clock) = c.into_parts();
        assert_eq!(script.sent.len(), 2, "{garbled:?}");
        assert_eq!(
            clock.slept.len(),
            1,
            "{garbled:?}: one backoff before the retry"
        );
    }
}

#[test]
fn a_persistently_garbled_poll_fails_naming_the_job() {
    let attempts = policy().max_retries as usize + 1;
    let mut c = client(vec![ok(200, GATEWAY_PAGE); attempts]);
    match c.poll("job_1").unwrap_err() {
        Error::MalformedResponse(a) => {
            assert!(a.message.contains("job_1"), "{}", a.message);
            assert!(a.message.contains("poll it again"), "{}", a.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.into_parts().0.sent.len(), attempts);
}

#[test]
fn wait_survives_a_garbled_answer_mid_job() {
    let mut c = client(vec![
        ok(200, &job("running", r#","progress":0.2"#)),
        ok(200, GATEWAY_PAGE),
        ok(200, r#"{"job_id":"job_1","sta"#),
        ok(
            200,
            &job(
                "completed",
                r#","result":{"output_urls":["https://cdn/z.mp4"]}"#,
            ),
        ),
    ]);
    assert_eq!(
        c.wait("job_1").unwrap().outputs,
        vec!["https://cdn/z.mp4".to_string()]
    );
}

#[test]
fn a_job_id_cannot_change_the_path() {
    let mut c = client(vec![]);
    assert!(matches!(
        c.poll("../account/usage"),
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(c.poll("job_1?x=1"), Err(Error::InvalidRequest(_))));
    assert!(c.into_parts().0.sent.is_empty());
}

#[test]
fn wait_polls_until_completed_within_the_policy() {
    let mut c = client(vec![
        ok(200, &job("queued", "")),
        ok(200, &job("running", r#","progress":0.5"#)),
        ok(
            200,
            &job(
                "completed",
                r#","result":{"output_urls":["https://cdn/x.mp4"]}"#,
            ),
        ),
    ]);
    let result = c.wait("job_1").unwrap();
    assert_eq!(result.outputs, vec!["https://cdn/x.mp4".to_string()]);
    let (script, clock) = c.into_parts();
    assert_eq!(script.sent.len(), 3);
    // `wait` resumes a job, so it reads at once, then spaces reads inside the policy.
    assert_eq!(clock.slept.len(), 2);
    assert!(
        clock.slept.iter().all(|&ms| (1_000..=4_000).contains(&ms)),
        "{:?}",
        clock.slept
    );
}

#[test]
fn wait_reports_failure_with_code_and_message() {
    let mut c = client(vec![ok(
        200,
        &job(
            "failed",
            r#","error":{"code":"content_policy_violation","message":"no"}"#,
        ),
    )]);
    match c.wait("job_1").unwrap_err() {
        Error::JobFailed { job_id, failure } => {
            assert_eq!(job_id, "job_1");
            assert_eq!(failure.code, "content_policy_violation");
            assert_eq!(failure.message, "no");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wait_times_out_with_the_job_id_and_last_reading() {
    let running = ok(200, &job("running", r#","progress":0.1"#));
    let mut c = client((0..100).map(|_| running.clone()).collect());
    match c.wait("job_1").unwrap_err() {
        Error::Timeout {
            job_id,
            last_status,
        } => {
            assert_eq!(job_id, "job_1");
            assert_eq!(last_status.unwrap().state, JobState::Running(Some(0.1)));
        }
        other => panic!("{other:?}"),
    }
    let (script, clock) = c.into_parts();
    assert!(
        clock.now_ms <= 60_000,
        "overran the deadline: {}",
        clock.now_ms
    );
    assert!(
        script.sent.len() >= 15,
        "polled only {} times",
        script.sent.len()
    );
}

#[test]
fn wait_absorbs_transient_errors() {
    let mut c = client(vec![
        ok(500, ""),
        ok(500, ""),
        ok(500, ""),
        ok(500, ""),
        failure(TransportKind::Interrupted),
        ok(
            200,
            &job(
                "succeeded",
                r#","result":{"video_url":"https://cdn/y.mp4"}"#,
            ),
        ),
    ]);
    assert_eq!(
        c.wait("job_1").unwrap().outputs,
        vec!["https://cdn/y.mp4".to_string()]
    );
}

#[test]
fn generate_names_the_job_in_errors_after_submit() {
    let mut c = client(vec![
        ok(200, SUBMITTED),
        ok(
            401,
            r#"{"error":{"code":"invalid_api_key","message":"revoked"}}"#,
        ),
    ]);
    match c.generate(&t2v()).unwrap_err() {
        Error::Unauthorized(a) => assert!(a.message.contains("job_1"), "{}", a.message),
        other => panic!("{other:?}"),
    }
    let (script, clock) = c.into_parts();
    assert_eq!(script.sent.len(), 2);
    assert_eq!(clock.slept[0], 1_000, "the first poll waits min-interval");
}

#[test]
fn config_refuses_missing_key_and_bad_urls_before_sending() {
    let missing = ConfigInput::default()
        .resolve(&HappyHorse, None)
        .unwrap_err();
    assert!(
        matches!(missing, Error::Unauthorized(a) if a.code.as_deref() == Some("missing_api_key") && a.status == 0)
    );
    let blank = ConfigInput {
        api_key: Some("  ".into()),
        ..Default::default()
    };
    assert!(blank.resolve(&HappyHorse, Some("".into())).is_err());
    let env = ConfigInput::default()
        .resolve(&HappyHorse, Some("from-env".into()))
        .unwrap();
    assert_eq!(env.api_key.as_deref(), Some("from-env"));
    assert_eq!(env.base_url, "https://api.empiriolabs.ai");
    let injected = ConfigInput {
        api_key: Some("key\r\nX-Evil: 1".into()),
        ..Default::default()
    };
    assert!(matches!(
        injected.resolve(&HappyHorse, None),
        Err(Error::Unauthorized(_))
    ));
    for url in [
        "ftp://x",
        "https://",
        "https://user@host",
        "https://h/?q",
        "api.empiriolabs.ai",
    ] {
        let bad = ConfigInput {
            base_url: Some(url.into()),
            api_key: Some("k".into()),
            ..Default::default()
        };
        assert!(
            matches!(
                bad.resolve(&HappyHorse, None),
                Err(Error::InvalidRequest(_))
            ),
            "{url}"
        );
    }
}

#[test]
fn config_takes_timeouts_and_refuses_absurd_ones() {
    let c = client(vec![]);
    assert_eq!(
        c.timeouts(),
        Timeouts {
            connect_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            first_byte_ms: DEFAULT_FIRST_BYTE_TIMEOUT_MS,
            between_bytes_ms: DEFAULT_BETWEEN_BYTES_TIMEOUT_MS,
            total_ms: u64::from(
                DEFAULT_CONNECT_TIMEOUT_MS
                    + DEFAULT_FIRST_BYTE_TIMEOUT_MS
                    + DEFAULT_BETWEEN_BYTES_TIMEOUT_MS
                    + HOST_QUEUE_ALLOWANCE_MS
            ),
        }
    );
    for (first, between) in [(Some(0), None), (None, Some(0)), (Some(600_001), None)] {
        let bad = ConfigInput {
            api_key: Some("k".into()),
            first_byte_timeout_ms: first,
            between_bytes_timeout_ms: between,
            ..Default::default()
        };
        match bad.resolve(&HappyHorse, None) {
            Err(Error::InvalidRequest(v)) => assert!(v[0].field.ends_with("-timeout-ms"), "{v:?}"),
            other => panic!("{first:?}/{between:?} gave {other:?}"),
        }
    }
}

/// A server that never answers: each request takes all the time its transport allows
/// (the transport enforces `timeouts.total_ms`), then fails as interrupted.
struct SilentServer {
    clock: std::rc::Rc<std::cell::Cell<u64>>,
    sent: Vec<HttpRequest>,
}

impl Transport for SilentServer {
    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, TransportFailure> {
        self.sent.push(request.clone());
        self.clock.set(self.clock.get() + request.timeouts.total_ms);
        Err(TransportFailure {
            kind: TransportKind::Interrupted,
            message: "no answer within the first-byte timeout".into(),
        })
    }
}

/// A clock shared with [`SilentServer`].
struct SharedClock(std::rc::Rc<std::cell::Cell<u64>>);

impl Env for SharedClock {
    fn now_unix_ms(&self) -> u64 {
        EPOCH_MS + self.0.get()
    }
    fn monotonic_ms(&self) -> u64 {
        self.0.get()
    }
    fn sleep_ms(&mut self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }
    fn random_u64(&mut self) -> u64 {
        7
    }
}

fn silent_client(deadline_ms: u64) -> Client<HappyHorse, SilentServer, SharedClock> {
    let clock = std::rc::Rc::new(std::cell::Cell::new(0));
    let config = ConfigInput {
        base_url: Some("http://127.0.0.1:9".into()),
        api_key: Some("k".into()),
        poll: Some(PollPolicy {
            deadline_ms,
            ..policy()
        }),
        ..Default::default()
    }
    .resolve(&HappyHorse, None)
    .unwrap();
    Client::new(
        HappyHorse,
        config,
        SilentServer {
            clock: clock.clone(),
            sent: vec![],
        },
        SharedClock(clock),
    )
}

#[test]
fn wait_returns_timeout_on_its_deadline_whatever_the_server_does() {
    // Deadlines shorter than, equal to and much longer than one request's own bound.
    for deadline_ms in [1_000, 7_000, 55_000, 60_000, 600_000] {
        let mut c = silent_client(deadline_ms);
        match c.wait("job_1").unwrap_err() {
            Error::Timeout { job_id, .. } => assert_eq!(job_id, "job_1"),
            other => panic!("{deadline_ms}: {other:?}"),
        }
        let (server, clock) = c.into_parts();
        assert_eq!(
            clock.0.get(),
            deadline_ms,
            "wait ran past its deadline of {deadline_ms} ms"
        );
        for request in &server.sent {
            assert!(request.timeouts.total_ms <= deadline_ms);
            assert!(u64::from(request.timeouts.first_byte_ms) <= deadline_ms);
        }
    }
}

#[test]
fn a_hung_submit_is_never_resent() {
    let mut c = silent_client(60_000);
    match c.submit(&t2v()).unwrap_err() {
        Error::SubmitOutcomeUnknown(message) => {
            assert!(message.contains("timed out"), "{message}");
            assert!(
                !message.contains("Interrupted"),
                "debug names leak: {message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.into_parts().0.sent.len(), 1);
}

#[test]
fn debug_output_never_shows_the_key() {
    let c = ConfigInput {
        api_key: Some("sk-secret-value".into()),
        ..Default::default()
    }
    .resolve(&HappyHorse, None)
    .unwrap();
    assert!(!format!("{c:?}").contains("sk-secret-value"));
    let req = HttpRequest {
        method: Method::Get,
        url: "http://127.0.0.1:9/v1/jobs/job_1".into(),
        bearer: "test-key".into(),
        json_body: None,
        timeouts: client(vec![]).timeouts(),
        max_body_bytes: 1024,
    };
    assert!(!format!("{req:?}").contains("test-key"));
}

#[test]
fn one_poll_and_its_retries_end_by_the_policys_deadline() {
    for deadline_ms in [500, 3_000, 20_000] {
        let mut c = silent_client(deadline_ms);
        assert!(matches!(c.poll("job_1"), Err(Error::Transport(_))));
        let (server, clock) = c.into_parts();
        assert!(
            clock.0.get() <= deadline_ms,
            "a poll with a {deadline_ms} ms deadline took {} ms",
            clock.0.get()
        );
        assert!(!server.sent.is_empty());
    }
}
