//! The real component in the real host against servers that are not kind: a raw socket that
//! records exactly what arrived, and the emulator (strict about `Content-Length` by default)
//! injecting the faults real servers and gateways have — silence, a stall mid-body, a
//! trickle, a reset after the job was created, truncated JSON, HTML pages, `Retry-After` as a
//! date. Every test states the outcome, how long it took against the configured bound, and
//! how many submits the server received and accepted: one job, one bill.

use happyhorse_emulator::{Emulator, Fault, Route};
use happyhorse_sandbox::Plugin;
use happyhorse_sandbox::api::{ClientConfig, Error, PollPolicy};
use happyhorse_sandbox::{Runtime, RuntimeOptions};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use video_gen_tests::*;

type Test = Result<(), Box<dyn std::error::Error>>;

/// Timeouts short enough for a test: 400 ms for the start of an answer and between two
/// pieces of it, so a whole exchange is bounded by about 2.8 s (connect 2 s included).
const FIRST_BYTE_MS: u32 = 400;
const BETWEEN_BYTES_MS: u32 = 400;

fn tight(emulator: &Emulator, deadline_ms: u64) -> ClientConfig {
    ClientConfig {
        first_byte_timeout_ms: Some(FIRST_BYTE_MS),
        between_bytes_timeout_ms: Some(BETWEEN_BYTES_MS),
        ..config(emulator, deadline_ms)
    }
}

/// How long a request the server never finishes may take: its three timeouts, plus the
/// component's grace and scheduling slack.
fn one_request_bound() -> Duration {
    Duration::from_millis(u64::from(2_000 + FIRST_BYTE_MS + BETWEEN_BYTES_MS) + 1_000)
}

fn accepted_submits(emulator: &Emulator) -> (usize, usize) {
    (emulator.submits_received(), emulator.jobs_created())
}

// --- What goes on the wire -------------------------------------------------------------

/// The runtime with Wasmtime's own sender (a connection per request), not the pool.
fn runtime_without_pool() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let options = RuntimeOptions {
            keep_alive_idle: None,
            ..runtime_options()
        };
        Runtime::new(video_gen_artifacts::HAPPYHORSE, &options).expect("the component loads")
    })
}

/// A server we did not shape: it reads one request, keeps its bytes, and answers `status`
/// with the JSON `answer`. It reads the body only by `Content-Length`, as a strict server
/// does, and then keeps whatever else arrives until the client has been quiet for half a
/// second (bytes a gateway could take for a second request). Empty if nothing connects
/// within a minute.
pub(crate) async fn raw_server(
    status: &'static str,
    answer: &'static str,
) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let Ok(accepted) = tokio::time::timeout(Duration::from_secs(60), listener.accept()).await
        else {
            return Vec::new();
        };
        let (mut tcp, _) = accepted.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 8192];
        let head_end = loop {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed before its request ended");
            seen.extend_from_slice(&buf[..n]);
            if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while seen.len() < head_end + length {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "the body ended before its Content-Length");
            seen.extend_from_slice(&buf[..n]);
        }
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        let _ = tcp.write_all(response.as_bytes()).await;
        seen
    });
    (base, task)
}

async fn submit_to_raw_server(runtime: &Runtime) -> Test {
    let (base, server) = raw_server("200 OK", r#"{"job_id":"job_raw","status":"queued"}"#).await;
    let mut plugin = runtime.instantiate(options_allowing(&base)).await?;
    let config = ClientConfig {
        base_url: Some(base),
        api_key: None,
        connect_timeout_ms: Some(2_000),
        first_byte_timeout_ms: Some(2_000),
        between_bytes_timeout_ms: Some(2_000),
        max_response_bytes: None,
        poll: None,
    };
    let job = plugin
        .submit(&config, &t2v("A horse gallops along a beach at sunset."))
        .await??;
    assert_eq!(job, "job_raw");
    let seen = server.await?;
    let text = String::from_utf8_lossy(&seen);
    println!("--- the submit as it arrived ---\n{text}\n---");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let head = head.to_ascii_lowercase();
    assert!(
        head.starts_with("post /v1/videos/generations http/1.1\r\n"),
        "{head}"
    );
    assert!(!head.contains("transfer-encoding"), "sent chunked:\n{head}");
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert!(
        lines.contains(&format!("content-length: {}", body.len()).as_str()),
        "no Content-Length matching the body:\n{head}"
    );
    assert!(lines.contains(&"content-type: application/json"), "{head}");
    let json: serde_json::Value = serde_json::from_str(body)?;
    assert_eq!(json["prompt"], "A horse gallops along a beach at sunset.");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_submit_carries_a_content_length_through_the_pool() -> Test {
    submit_to_raw_server(runtime()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_submit_carries_a_content_length_through_wasmtimes_sender() -> Test {
    submit_to_raw_server(runtime_without_pool()).await
}

// --- A submit whose answer goes wrong -------------------------------------------------------

async fn submit_against(fault: Fault) -> (Result<String, Error>, Duration, (usize, usize)) {
    let emu = emulator(fast()).await;
    emu.push_fault(Route::Submit, fault);
    let mut plugin = plugin(&emu).await;
    let started = Instant::now();
    let outcome = plugin
        .submit(&tight(&emu, 10_000), &t2v("A horse in the rain."))
        .await
        .expect("the plugin returns");
    let took = started.elapsed();
    let counts = accepted_submits(&emu);
    emu.shutdown().await;
    (outcome, took, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_the_job_was_created_is_unknown_and_never_resent() {
    let (outcome, _, counts) = submit_against(Fault::ResetAfterProcessing).await;
    match outcome {
        Err(Error::PermanentSubmitOutcomeUnknown(u)) => {
            assert!(u.message.contains("may exist"), "{}", u.message)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        counts,
        (1, 1),
        "one submit received, its job created, none resent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_submit_costs_its_bound_and_is_unknown() {
    let (outcome, took, counts) = submit_against(Fault::Silence).await;
    assert!(
        matches!(outcome, Err(Error::PermanentSubmitOutcomeUnknown(_))),
        "{outcome:?}"
    );
    assert!(
        took < one_request_bound(),
        "a silent server held the submit {took:?}"
    );
    assert!(
        took >= Duration::from_millis(u64::from(FIRST_BYTE_MS)),
        "{took:?}"
    );
    assert_eq!(counts, (1, 0), "received once, never resent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_answer_that_stalls_or_trickles_is_unknown_within_its_bound() {
    for fault in [
        Fault::StallMidBody,
        Fault::Trickle(Duration::from_millis(300)),
    ] {
        let (outcome, took, counts) = submit_against(fault.clone()).await;
        assert!(
            matches!(outcome, Err(Error::PermanentSubmitOutcomeUnknown(_))),
            "{fault:?}: {outcome:?}"
        );
        assert!(
            took < one_request_bound(),
            "{fault:?} held the submit {took:?}"
        );
        assert_eq!(counts, (1, 1), "{fault:?}: the job exists; never resent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_submit_answer_is_unknown_and_never_resent() {
    for (fault, jobs) in [
        (Fault::TruncatedBody, 1),
        (Fault::HtmlPage(200), 0),
        (Fault::HtmlPage(502), 0),
        (Fault::HtmlPage(504), 0),
    ] {
        let (outcome, _, counts) = submit_against(fault.clone()).await;
        assert!(
            matches!(outcome, Err(Error::PermanentSubmitOutcomeUnknown(_))),
            "{fault:?}: {outcome:?}"
        );
        assert_eq!(counts, (1, jobs), "{fault:?}: received once, never resent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_an_http_date_is_waited_out_then_the_submit_succeeds() -> Test {
    runtime(); // compiled first, so the date below is still ahead when the 429 arrives
    let retry_at = std::time::SystemTime::now() + Duration::from_secs(2);
    let (outcome, _, counts) = submit_against(Fault::Status {
        status: 429,
        code: "rate_limit_exceeded".into(),
        message: "slow down".into(),
        retry_after: Some(httpdate::fmt_http_date(retry_at)),
    })
    .await;
    assert!(outcome?.starts_with("job_"));
    // The date has one-second resolution: the retry went out no earlier than it says.
    let done = std::time::SystemTime::now();
    assert!(
        done + Duration::from_secs(1) >= retry_at,
        "retried {:?} before the date",
        retry_at.duration_since(done).unwrap_or_default()
    );
    assert_eq!(counts, (2, 1), "refused once, then one job");
    Ok(())
}

// --- Polls whose answers go wrong: the job is never abandoned ---------------------------------

/// `generate` with `fault` injected into the first poll of the job; returns the outcome, the
/// time taken and the submit counts.
async fn generate_with_poll_fault(
    fault: Fault,
    deadline_ms: u64,
) -> (Result<Vec<String>, Error>, Duration, (usize, usize)) {
    let emu = emulator(fast()).await;
    emu.push_fault(Route::Poll, fault);
    let mut plugin: Plugin = plugin(&emu).await;
    let started = Instant::now();
    let outcome = plugin
        .generate(&tight(&emu, deadline_ms), &t2v("A lighthouse in a storm."))
        .await
        .expect("the plugin returns")
        .map(|result| result.outputs);
    let took = started.elapsed();
    let counts = accepted_submits(&emu);
    emu.shutdown().await;
    (outcome, took, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_or_hung_poll_is_retried_and_the_job_completes() {
    for fault in [
        Fault::HtmlPage(200),
        Fault::HtmlPage(502),
        Fault::HtmlPage(504),
        Fault::TruncatedBody,
        Fault::Malformed("{\"job_id\": ".into()),
        Fault::Silence,
        Fault::StallMidBody,
        Fault::Trickle(Duration::from_millis(200)),
        Fault::Status {
            status: 503,
            code: "unavailable".into(),
            message: "busy".into(),
            retry_after: Some(httpdate::fmt_http_date(std::time::SystemTime::now())),
        },
    ] {
        let (outcome, took, counts) = generate_with_poll_fault(fault.clone(), 20_000).await;
        let outputs = outcome.unwrap_or_else(|e| panic!("{fault:?} abandoned the job: {e:?}"));
        assert_eq!(outputs.len(), 1, "{fault:?}");
        assert!(
            took < one_request_bound() + Duration::from_secs(2),
            "{fault:?}: took {took:?}"
        );
        assert_eq!(counts, (1, 1), "{fault:?}: one job, one bill");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistently_garbled_poll_fails_naming_the_job() -> Test {
    let emu = emulator(fast()).await;
    let mut plugin = plugin(&emu).await;
    let config = tight(&emu, 20_000);
    let job = plugin.submit(&config, &t2v("A fox in snow.")).await??;
    // One more than the retries allowed: every attempt of this poll is an HTML page.
    for _ in 0..=config.poll.map_or(4, |p: PollPolicy| p.max_retries) {
        emu.push_job_fault(&job, Fault::HtmlPage(200));
    }
    match plugin
        .poll(&config, &job)
        .await
        .expect("the plugin returns")
    {
        Err(Error::MalformedResponse(a)) => {
            assert!(a.message.contains(&job), "{}", a.message)
        }
        other => panic!("{other:?}"),
    }
    // The job itself is fine: the next poll reads it.
    plugin.poll(&config, &job).await??;
    assert_eq!(accepted_submits(&emu), (1, 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_timeout_near_its_deadline_whatever_the_server_does() -> Test {
    for fault in [
        Fault::Silence,
        Fault::StallMidBody,
        Fault::Trickle(Duration::from_millis(100)),
    ] {
        let emu = emulator(fast()).await;
        let mut plugin = plugin(&emu).await;
        // Default (long) request timeouts: only the wait's deadline can end the call.
        let mut config = config(&emu, 1_500);
        config.poll = config.poll.map(|p| PollPolicy {
            deadline_ms: 1_500,
            ..p
        });
        let job = plugin.submit(&config, &t2v("A tide coming in.")).await??;
        for _ in 0..20 {
            emu.push_job_fault(&job, fault.clone());
        }
        let started = Instant::now();
        let outcome = plugin
            .wait(&config, &job)
            .await
            .expect("the plugin returns");
        let took = started.elapsed();
        match outcome {
            Err(Error::Timeout(t)) => assert_eq!(t.job_id, job),
            other => panic!("{fault:?}: {other:?}"),
        }
        assert!(
            took < Duration::from_millis(1_500 + 1_000),
            "{fault:?}: wait took {took:?} for a 1.5 s deadline"
        );
        assert_eq!(accepted_submits(&emu), (1, 1));
        emu.shutdown().await;
    }
    Ok(())
}

// --- The host's own bounds, whatever the plugin asks for ------------------------------------

/// A plugin that asks for the longest timeouts the contract allows, in a sandbox that allows
/// one second: only the host can end a silent or stalled exchange on time.
async fn greedy_submit_under_host_bounds(runtime: &Runtime, fault: Fault) -> Test {
    let emu = emulator(fast()).await;
    emu.push_fault(Route::Submit, fault.clone());
    let policy = happyhorse_sandbox::SandboxPolicy {
        first_byte_timeout_secs: 1,
        between_bytes_timeout_secs: 1,
        ..test_policy()
    };
    let mut plugin = runtime
        .instantiate(sandbox(&emu, KEY, policy).plugin_options())
        .await?;
    let greedy = ClientConfig {
        first_byte_timeout_ms: Some(600_000),
        between_bytes_timeout_ms: Some(600_000),
        ..config(&emu, 10_000)
    };
    let started = Instant::now();
    let outcome = plugin.submit(&greedy, &t2v("A kite on a beach.")).await?;
    let took = started.elapsed();
    assert!(
        matches!(outcome, Err(Error::PermanentSubmitOutcomeUnknown(_))),
        "{fault:?}: {outcome:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "{fault:?}: the host let the plugin wait {took:?}"
    );
    assert_eq!(emu.submits_received(), 1, "{fault:?}: never resent");
    emu.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_bounds_every_request_whatever_the_plugin_asks() -> Test {
    for fault in [Fault::Silence, Fault::StallMidBody] {
        greedy_submit_under_host_bounds(runtime(), fault.clone()).await?;
        greedy_submit_under_host_bounds(runtime_without_pool(), fault).await?;
    }
    Ok(())
}

// --- A retried submit that waits for the account's budget ------------------------------------

/// A submit refused with `503` (nothing was created) is retried by the component; the retry
/// then waits in the host for the account's request budget. The component's own clock for the
/// answer's head starts when it hands the request over, so unless it allowed for that queue
/// it would fire while the request was still in the host, before any byte left, and report
/// the submit as of unknown outcome although the server saw one refused request. Here the
/// budget is one request per 3 s window: the retry waits there, well past the 400 ms
/// first-byte timeout, then goes out and creates the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_retry_queued_behind_the_budget_is_not_unknown() -> Test {
    let emu = emulator(fast()).await;
    emu.push_fault(
        Route::Submit,
        Fault::Status {
            status: 503,
            code: "model_unavailable".into(),
            message: "retry shortly".into(),
            retry_after: None,
        },
    );
    let policy = happyhorse_sandbox::SandboxPolicy {
        requests_per_minute: 1,
        burst: 1,
        ..test_policy()
    };
    let sandbox = sandbox(&emu, KEY, policy).with_rate_window(Duration::from_secs(3));
    let mut plugin = runtime().instantiate(sandbox.plugin_options()).await?;
    let started = Instant::now();
    let outcome = plugin
        .submit(&tight(&emu, 10_000), &t2v("A horse in the rain."))
        .await?;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the retry did not wait for the budget"
    );
    assert!(
        outcome?.starts_with("job_"),
        "the queued retry went out and made the job"
    );
    assert_eq!(accepted_submits(&emu), (2, 1), "one refused, one accepted");
    Ok(())
}
