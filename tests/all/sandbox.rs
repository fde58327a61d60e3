//! The sandbox, attacked: a hostile component (`tests/guests/hostile`) runs in the real host
//! and tries to reach what it must not, read or echo back the key, spin, hog, and make the
//! host hold memory for it; target servers count the hits that got through (there must be
//! none), the host's own memory is measured in a child process, and the host must carry on
//! afterwards.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use happyhorse_emulator::{EmulatorConfig, Fault, Route};
use happyhorse_sandbox::api::{ClientConfig, Error, JobState, PollPolicy, TransportKind};
use happyhorse_sandbox::{Plugin, PluginFailure};
use happyhorse_sandbox::{Sandbox, SandboxPolicy};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use video_gen_tests::*;

type Test = Result<(), Box<dyn std::error::Error>>;

/// The hostile test component (`tests/guests/hostile`), compiled once per test binary.
fn hostile_runtime() -> &'static happyhorse_sandbox::Runtime {
    static RUNTIME: OnceLock<happyhorse_sandbox::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| load(video_gen_test_artifacts::HOSTILE))
}

/// Ask the hostile plugin to do `command`.
async fn attempt(
    plugin: &mut Plugin,
    command: &str,
) -> Result<Result<String, Error>, PluginFailure> {
    plugin.submit(&ClientConfig::default(), &t2v(command)).await
}

fn denied(outcome: Result<Result<String, Error>, PluginFailure>) -> bool {
    matches!(outcome, Ok(Err(Error::TransportError(t))) if t.kind == TransportKind::Denied)
}

async fn hostile(sandbox: &Sandbox) -> Plugin {
    hostile_runtime()
        .instantiate(sandbox.plugin_options())
        .await
        .expect("the hostile plugin instantiates")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_off_the_list_are_refused_before_any_connection() -> Test {
    let api = emulator(fast()).await;
    let target = emulator(fast()).await; // another loopback port, counting every hit
    let sandbox = sandbox(&api, KEY, test_policy());
    let mut plugin = hostile(&sandbox).await;

    let allowed = attempt(
        &mut plugin,
        &format!("call GET {}/v1/jobs/job_x Bearer $KEY", api.base_url()),
    )
    .await?;
    assert!(
        allowed.is_ok(),
        "the API origin itself is reachable: {allowed:?}"
    );
    for url in [
        format!("{}/v1/account/usage", target.base_url()),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://metadata.google.internal/computeMetadata/v1/".to_string(),
        "https://evil.example/collect".to_string(),
        api.base_url().replace("http://", "https://"),
        api.base_url().replace("127.0.0.1", "localhost"),
    ] {
        assert!(
            denied(attempt(&mut plugin, &format!("reach {url}")).await),
            "{url} was not denied"
        );
    }
    assert_eq!(
        target.requests().len(),
        0,
        "a denied request reached the target"
    );
    assert_eq!(plugin.policy().denied(), 6);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_out_of_the_list_is_refused() -> Test {
    let target = emulator(fast()).await;
    let destination = format!("{}/v1/account/usage", target.base_url());
    // An allowed origin that redirects elsewhere, as a compromised or confused API might.
    let app = Router::new().route(
        "/v1/jobs/{id}",
        get(move || {
            let destination = destination.clone();
            async move { (StatusCode::FOUND, [(header::LOCATION, destination)]).into_response() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let redirector = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let sandbox = Sandbox::new(&redirector, KEY.into(), test_policy())?;
    let mut plugin = hostile(&sandbox).await;
    let outcome = attempt(&mut plugin, &format!("follow {redirector}/v1/jobs/x")).await;
    assert!(denied(outcome), "the second hop must be denied");
    assert_eq!(plugin.policy().sent(), 1, "only the first hop was sent");
    assert_eq!(target.requests().len(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_host_header_is_refused() -> Test {
    let api = emulator(fast()).await;
    let sandbox = sandbox(&api, KEY, test_policy());
    let mut plugin = hostile(&sandbox).await;
    let report = attempt(
        &mut plugin,
        &format!("forge-host {} evil.example", api.base_url()),
    )
    .await??;
    assert!(report.contains("refused"), "{report}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_only_ever_holds_a_placeholder() -> Test {
    const SECRET: &str = "sk-live-THIS-KEY-MUST-NEVER-LEAVE-THE-HOST-0123456789";
    let api = emulator(EmulatorConfig {
        api_keys: vec![SECRET.into()],
        ..fast()
    })
    .await;
    let target = emulator(fast()).await;
    let sandbox = sandbox(&api, SECRET, test_policy());
    let mut plugin = hostile(&sandbox).await;

    let env = attempt(&mut plugin, "env").await??;
    assert_eq!(
        env,
        format!("EMPIRIOLABS_API_KEY={}", sandbox.placeholder())
    );
    assert!(!env.contains(SECRET));

    // waki reports a refused POST as a closed body stream, so check the host's own count.
    let exfiltrate = attempt(
        &mut plugin,
        &format!("exfiltrate {}/collect", target.base_url()),
    )
    .await;
    assert!(
        matches!(exfiltrate, Ok(Err(Error::TransportError(_)))),
        "{exfiltrate:?}"
    );
    assert_eq!(
        plugin.policy().denied(),
        1,
        "sending the key elsewhere must be refused"
    );
    assert_eq!(target.requests().len(), 0);

    // Through the allowed origin the host swaps the placeholder for the key in the header,
    // so the real component can authenticate without ever seeing the key…
    let mut real = runtime().instantiate(sandbox.plugin_options()).await?;
    let job = real
        .submit(&config(&api, 5_000), &t2v("A horse."))
        .await??;
    assert!(job.starts_with("job_"));
    // …and nothing the plugins did or returned carries it.
    let log = format!("{:?}", api.requests());
    assert!(!log.contains(SECRET));
    assert!(!sandbox.describe().contains(SECRET));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_plugins_are_stopped_and_the_host_carries_on() -> Test {
    let api = emulator(fast()).await;
    let policy = SandboxPolicy {
        max_cpu_ms_per_call: 500,
        call_timeout_secs: 5,
        max_memory_mib: 32,
        ..test_policy()
    };
    let sandbox = sandbox(&api, KEY, policy);

    let started = Instant::now();
    let mut spinner = hostile(&sandbox).await;
    match attempt(&mut spinner, "spin").await {
        Err(PluginFailure::CpuExhausted { limit, .. }) => {
            assert_eq!(limit, Duration::from_millis(500))
        }
        other => panic!("expected the CPU limit, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(
        attempt(&mut spinner, "env").await,
        Err(PluginFailure::Dead)
    ));

    let mut hog = hostile(&sandbox).await;
    match attempt(&mut hog, "hog").await {
        Err(PluginFailure::MemoryExhausted { limit, .. }) => assert_eq!(limit, 32 << 20),
        other => panic!("expected the memory limit, got {other:?}"),
    }

    // The same host, in the same run, still finishes a normal job.
    let mut plugin = runtime().instantiate(sandbox.plugin_options()).await?;
    let result = plugin
        .generate(&config(&api, 10_000), &t2v("A horse."))
        .await??;
    assert_eq!(result.outputs.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_plugin_is_stopped_by_the_wall_clock_too() -> Test {
    let api = emulator(fast()).await;
    let policy = SandboxPolicy {
        max_cpu_ms_per_call: 60_000,
        call_timeout_secs: 1,
        ..test_policy()
    };
    let sandbox = sandbox(&api, KEY, policy);
    let mut spinner = hostile(&sandbox).await;
    let started = Instant::now();
    assert!(matches!(
        attempt(&mut spinner, "spin").await,
        Err(PluginFailure::Deadline { .. })
    ));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_gets_only_its_share_of_concurrent_requests() -> Test {
    let api = emulator(fast()).await;
    // Hold every answer back, so all the requests are in flight at the same time.
    for _ in 0..5 {
        api.push_fault(Route::Poll, Fault::Delay(Duration::from_millis(300)));
    }
    let policy = SandboxPolicy {
        max_concurrent_requests: 2,
        ..test_policy()
    };
    let sandbox = sandbox(&api, KEY, policy);
    let mut plugin = hostile(&sandbox).await;
    let report = attempt(
        &mut plugin,
        &format!("parallel 5 {}/v1/jobs/job_x", api.base_url()),
    )
    .await??;
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 5, "{report}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("status")).count(),
        2,
        "{report}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("ConnectionLimitReached"))
            .count(),
        3,
        "{report}"
    );
    assert_eq!(
        api.requests().len(),
        2,
        "refused requests must not reach the server"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_responses_are_cut_off_by_the_host() -> Test {
    let api = emulator(fast()).await;
    let policy = SandboxPolicy {
        max_response_bytes: 64 * 1024,
        ..test_policy()
    };
    let sandbox = sandbox(&api, KEY, policy);
    let mut plugin = runtime().instantiate(sandbox.plugin_options()).await?;
    let mut cfg = config(&api, 5_000);
    cfg.max_response_bytes = Some(16 << 20); // the component would accept it; the host won't
    let job = plugin.submit(&cfg, &t2v("x")).await??;
    // Every attempt (a cut-off answer is retried like any unreadable one) gets one.
    for _ in 0..=cfg.poll.map_or(4, |p| p.max_retries) {
        api.push_fault(Route::Poll, Fault::Oversize(1 << 20));
    }
    assert!(matches!(
        plugin.poll(&cfg, &job).await?,
        Err(Error::MalformedResponse(_)) | Err(Error::TransportError(_))
    ));
    Ok(())
}

/// Every request from every plugin goes through one budget: twenty jobs polling as fast as
/// the component allows still never make the provider answer 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_jobs_share_one_budget_without_a_single_429() -> Test {
    const LIMIT: usize = 50;
    let api = emulator(EmulatorConfig {
        rate_limit_per_minute: LIMIT as u32,
        ..fast()
    })
    .await;
    let policy = SandboxPolicy {
        requests_per_minute: LIMIT as u32,
        ..test_policy()
    };
    let sandbox = std::sync::Arc::new(sandbox(&api, KEY, policy));
    let mut cfg = config(&api, 120_000);
    cfg.poll.as_mut().unwrap().min_interval_ms = 10; // flood: as fast as the component allows
    let mut jobs = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (sandbox, cfg) = (sandbox.clone(), cfg.clone());
        jobs.spawn(async move {
            let mut plugin = runtime().instantiate(sandbox.plugin_options()).await?;
            let job = plugin.submit(&cfg, &t2v(&format!("Shot {n}"))).await??;
            loop {
                let status = plugin.poll(&cfg, &job).await??;
                if let JobState::Completed(_) = status.state {
                    return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(());
                }
                tokio::time::sleep(Duration::from_millis(u64::from(status.next_poll_ms))).await;
            }
        });
    }
    while let Some(done) = jobs.join_next().await {
        done?.map_err(|e| e.to_string())?;
    }
    assert_eq!(
        api.count_429(),
        0,
        "the budget let the account hit its limit"
    );
    assert_eq!(api.jobs_created(), 20);
    let times: Vec<Duration> = api.requests().iter().map(|r| r.at).collect();
    for (i, &t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|&&u| u < t + Duration::from_secs(60))
            .count();
        assert!(
            in_window <= LIMIT,
            "{in_window} requests in the minute from {t:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_that_still_comes_slows_the_whole_budget() -> Test {
    let api = emulator(fast()).await;
    let policy = SandboxPolicy {
        requests_per_minute: 600,
        ..test_policy()
    };
    let sandbox = sandbox(&api, KEY, policy);
    api.push_fault(
        Route::Poll,
        Fault::Status {
            status: 429,
            code: "rate_limit_exceeded".into(),
            message: "another client on the account".into(),
            retry_after: Some("1".into()),
        },
    );
    let mut plugin = runtime().instantiate(sandbox.plugin_options()).await?;
    let started = Instant::now();
    plugin.generate(&config(&api, 10_000), &t2v("x")).await??;
    assert_eq!(sandbox.budget().pauses(), 1);
    assert!(started.elapsed() >= Duration::from_secs(1));
    Ok(())
}

/// A request the scheduler already took a grant for (`prepay`) goes out without waiting on
/// the budget's pace, and without being counted twice; the next one waits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepaid_request_skips_the_pace_and_is_counted_once() -> Test {
    let api = emulator(fast()).await;
    // Two a minute, one at a time: after one grant, a paced request waits ~30 s for a token.
    let policy = SandboxPolicy {
        requests_per_minute: 2,
        burst: 1,
        ..test_policy()
    };
    let sandbox = sandbox(&api, KEY, policy);
    let mut plugin = runtime().instantiate(sandbox.plugin_options()).await?;
    let cfg = config(&api, 10_000);
    let job = plugin.submit(&cfg, &t2v("x")).await??;
    assert_eq!(sandbox.budget().granted(), 1);

    // What the scheduler does: room in the window, so the grant comes at once.
    let started = Instant::now();
    plugin
        .policy()
        .prepay(sandbox.budget().acquire_unpaced().await);
    plugin.poll(&cfg, &job).await??;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        sandbox.budget().granted(),
        2,
        "the poll used the prepaid grant"
    );
    assert_eq!(plugin.policy().forfeit_prepaid(), 0);

    // Nothing prepaid now, and the window is full: the next poll waits for the budget.
    let waited = tokio::time::timeout(Duration::from_secs(2), plugin.poll(&cfg, &job)).await;
    assert!(
        waited.is_err(),
        "an unpaid poll went out past a full window"
    );
    Ok(())
}

/// What the echo server saw: method, path and query, and `Authorization`.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A stand-in for an API that echoes requests back (as `TRACE`, a debug endpoint or an
/// error quoting the token would): every request's headers come back in the body, except
/// on `GET /v1/jobs/{id}`, which answers a plain 404.
async fn echo_server() -> std::io::Result<(String, Seen)> {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = Router::new().fallback(any(move |request: axum::extract::Request| {
        let log = log.clone();
        async move {
            let auth = request
                .headers()
                .get_all(header::AUTHORIZATION)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(" | ");
            let target = request.uri().to_string();
            log.lock()
                .unwrap()
                .push((request.method().to_string(), target.clone(), auth));
            if request.method() == axum::http::Method::GET && target.starts_with("/v1/jobs/") {
                return (StatusCode::NOT_FOUND, "{\"error\":\"no such job\"}").into_response();
            }
            format!("{} {target}\n{:?}", request.method(), request.headers()).into_response()
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((base, seen))
}

/// A GET leaves the sandbox without a body, whatever the plugin streams with it: read off a
/// raw socket, it arrives as its head alone, so nothing in front of a server can take the
/// plugin's bytes for a second request (one that never passed the key's checks). To the API
/// a declared length is refused outright; to another allowed origin the body is dropped, for
/// a DELETE too (only POST, PUT and PATCH carry one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_never_carries_a_body_the_plugin_streams_with_it() -> Test {
    let server = || crate::faults::raw_server("404 Not Found", r#"{"error":"no such job"}"#);
    let (api, api_wire) = server().await;
    let (other, other_wire) = server().await;
    let (third, third_wire) = server().await;
    let policy = SandboxPolicy {
        allow: vec![other.clone(), third.clone()],
        ..test_policy()
    };
    let sandbox = Sandbox::new(&api, KEY.into(), policy)?;
    let mut plugin = hostile(&sandbox).await;

    let declared = attempt(
        &mut plugin,
        &format!("smuggle {api}/v1/jobs/job_x declared"),
    )
    .await;
    assert!(denied(declared), "a GET declaring a body to the API");
    let streamed = attempt(&mut plugin, &format!("smuggle {api}/v1/jobs/job_x")).await??;
    let elsewhere = attempt(
        &mut plugin,
        &format!("smuggle {other}/v1/jobs/job_x declared"),
    )
    .await??;
    let deleted = attempt(
        &mut plugin,
        &format!("smuggle {third}/v1/jobs/job_x declared DELETE"),
    )
    .await??;
    for (wire, outcome, method) in [
        (api_wire, streamed, "get"),
        (other_wire, elsewhere, "get"),
        (third_wire, deleted, "delete"),
    ] {
        let seen = String::from_utf8_lossy(&wire.await?).to_ascii_lowercase();
        println!("--- what arrived ---\n{seen}\n--- plugin: {outcome:?}");
        assert!(
            seen.starts_with(&format!("{method} /v1/jobs/job_x http/1.1\r\n")),
            "{seen}"
        );
        assert!(outcome.contains("(body refused)"), "{outcome}");
        let (head, body) = seen.split_once("\r\n\r\n").expect("a whole head");
        assert!(
            !head.contains("transfer-encoding") && !head.contains("content-length"),
            "the {method} announced a body:\n{head}"
        );
        assert_eq!(body, "", "bytes after the {method}'s head");
    }
    Ok(())
}

/// Only the component's own calls go to the API origin with the key; anything a plugin
/// could use to have the key reflected back is refused before a connection opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_goes_only_into_the_components_own_api_calls() -> Test {
    const SECRET: &str = "sk-live-ECHO-ME-IF-YOU-CAN-0123456789";
    let (api, seen) = echo_server().await?;
    let sandbox = Sandbox::new(&api, SECRET.into(), test_policy())?;
    let mut plugin = hostile(&sandbox).await;
    for request in [
        "TRACE /v1/jobs/job_x Bearer $KEY",
        "GET /v1/echo Bearer $KEY",
        "POST /v1/jobs/job_x Bearer $KEY",
        "GET /v1/account/usage Bearer $KEY",
        "HEAD /v1/jobs/job_x Bearer $KEY",
        "GET /v1/jobs/job_x?echo=1 Bearer $KEY",
        "GET /v1/jobs/job_x/echo Bearer $KEY",
        "GET /v1/jobs/job%2Fx Bearer $KEY",
        "GET /v1/jobs/.. Bearer $KEY",
        "POST /v1/videos/generations Bearer $KEYx",
        "POST /v1/videos/generations Basic $KEY",
        "POST /v1/videos/generations bearer $KEY",
        "POST /v1/videos/generations Bearer $KEY || Bearer $KEY",
        "POST /v1/videos/generations -",
    ] {
        let (method, rest) = request.split_once(' ').unwrap();
        let (path, auth) = rest.split_once(' ').unwrap();
        let outcome = attempt(&mut plugin, &format!("call {method} {api}{path} {auth}")).await;
        assert!(
            !format!("{outcome:?}").contains(SECRET),
            "the key came back for {request}"
        );
        assert!(denied(outcome), "{request} was not refused");
        assert_eq!(
            seen.lock().unwrap().len(),
            0,
            "{request} reached the server"
        );
    }
    assert_eq!(plugin.policy().denied(), 14);

    // The component's own call still goes out, with the real key in place of the
    // placeholder, and with nothing of it in what comes back.
    let answer = attempt(
        &mut plugin,
        &format!("call GET {api}/v1/jobs/job_x Bearer $KEY"),
    )
    .await??;
    assert!(answer.starts_with("status 404"), "{answer}");
    assert!(!answer.contains(SECRET));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            "GET".to_string(),
            "/v1/jobs/job_x".to_string(),
            format!("Bearer {SECRET}")
        )]
    );
    Ok(())
}

/// A base URL with an IPv6 literal admits its own requests (brackets and all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_against_an_ipv6_base_url() -> Test {
    let addr = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0));
    let api = match happyhorse_emulator::Emulator::start_on(addr, fast()).await {
        Ok(api) => api,
        Err(e) => {
            eprintln!("skipped: this machine has no IPv6 loopback ({e:#})");
            return Ok(());
        }
    };
    assert!(
        api.base_url().starts_with("http://[::1]:"),
        "{}",
        api.base_url()
    );
    let sandbox = sandbox(&api, KEY, test_policy());
    let mut plugin = runtime().instantiate(sandbox.plugin_options()).await?;
    let result = plugin
        .generate(&config(&api, 10_000), &t2v("A horse."))
        .await??;
    assert_eq!(result.outputs.len(), 1);
    assert_eq!(plugin.policy().denied(), 0);
    Ok(())
}

/// Names the attack a child process of this test binary runs (see `memory_attack_child`).
const ATTACK_ENV: &str = "HH_HOST_MEMORY_ATTACK";

/// The sandbox the memory attacks run in: the default host-side limits, but a small linear
/// memory and per-call cap, so the bound is tight enough that each attack would break it.
fn memory_policy() -> SandboxPolicy {
    SandboxPolicy {
        max_memory_mib: 16,
        max_host_call_bytes: 1 << 20,
        ..test_policy()
    }
}

/// One line of `/proc/self/status`, in KiB.
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Everything a plugin can make the host hold is bounded: each attack runs in its own child
/// process (so one attack's memory cannot hide another's, and nothing else in this test
/// binary counts), whose peak RSS above its settled baseline must stay under the bound the
/// sandbox states; each attack ends with a clear error, and a normal job in the same
/// process still completes afterwards.
#[test]
fn a_plugin_cannot_make_the_host_hold_more_than_its_stated_bound() -> Test {
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("skipped: peak RSS cannot be reset on this system (/proc/self/clear_refs)");
        return Ok(());
    }
    // (attack, what the call must end with)
    let attacks = [
        ("fields 8000 16000", "max-host-resources"),
        ("fields 1 120000", "max-header-bytes"),
        ("bodies 100", "max-host-resources"),
        ("pollables 300000", "max-host-resources"),
        ("random 60000000", "max-host-call-bytes"),
        ("lift 4096", "max-host-call-bytes"),
        ("stderr 1000000", "stderr refused more after"),
    ];
    let exe = std::env::current_exe()?;
    let mut failures = Vec::new();
    for (attack, expected) in attacks {
        let output = std::process::Command::new(&exe)
            .args([
                // Its full name in the one test binary (`tests/all`).
                concat!(module_path!(), "::memory_attack_child")
                    .split_once("::")
                    .map_or("sandbox::memory_attack_child", |(_, name)| name),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ATTACK_ENV, attack)
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(line) = stdout
            .lines()
            .find_map(|l| l.split_once("HOST-MEMORY ").map(|(_, report)| report))
        else {
            failures.push(format!(
                "{attack}: the child reported nothing (status {}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" / ")
            ));
            continue;
        };
        let report: serde_json::Value = serde_json::from_str(line)?;
        let grew = report["peak_kib"].as_u64().unwrap_or(u64::MAX)
            - report["baseline_kib"].as_u64().unwrap_or(0);
        let bound = report["bound_kib"].as_u64().unwrap_or(0);
        let outcome = report["outcome"].as_str().unwrap_or("");
        eprintln!("{attack}: host RSS +{grew} KiB (bound {bound} KiB): {outcome}");
        if grew > bound {
            failures.push(format!(
                "{attack}: the host grew {grew} KiB, over the {bound} KiB bound"
            ));
        }
        if !outcome.contains(expected) {
            failures.push(format!(
                "{attack}: ended with {outcome:?}, not {expected:?}"
            ));
        }
        if report["normal_job"] != "completed" {
            failures.push(format!(
                "{attack}: the normal job afterwards: {}",
                report["normal_job"]
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

/// The child half of `a_plugin_cannot_make_the_host_hold_more_than_its_stated_bound`: does
/// nothing unless that test started this process with an attack to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_attack_child() -> Test {
    let Ok(attack) = std::env::var(ATTACK_ENV) else {
        return Ok(());
    };
    let api = emulator(fast()).await;
    let sandbox = sandbox(&api, KEY, memory_policy());
    // Settle first: both components loaded, a job's worth of connections and buffers.
    let mut warm = runtime().instantiate(sandbox.plugin_options()).await?;
    warm.generate(&config(&api, 10_000), &t2v("A horse."))
        .await??;
    let mut plugin = hostile(&sandbox).await;
    attempt(&mut plugin, "env").await??;
    std::fs::write("/proc/self/clear_refs", "5")?;
    let baseline_kib = proc_status_kib("VmRSS");

    let outcome = match attempt(&mut plugin, &attack).await {
        Ok(Ok(report)) => report,
        Ok(Err(error)) => format!("error: {error:?}"),
        Err(failure) => format!("failure: {failure}"),
    };
    let peak_kib = proc_status_kib("VmHWM");
    drop(plugin);

    let mut normal = runtime().instantiate(sandbox.plugin_options()).await?;
    let normal_job = match normal
        .generate(&config(&api, 10_000), &t2v("A horse."))
        .await
    {
        Ok(Ok(_)) => "completed".to_string(),
        other => format!("{other:?}"),
    };
    let report = serde_json::json!({
        "attack": attack,
        "baseline_kib": baseline_kib,
        "peak_kib": peak_kib,
        "bound_kib": sandbox.host_memory_bound() / 1024,
        "outcome": outcome,
        "normal_job": normal_job,
    });
    println!("HOST-MEMORY {report}");
    Ok(())
}

/// A plugin instance is meant to be reused (the runner keeps one per shot, the benchmark one
/// for thousands of calls): what each call makes the host hold must be given back when the
/// call ends, or a long-lived plugin runs into its own `max-host-resources` limit (256) and
/// dies mid-run. On one plugin: 400 submit + poll pairs (800 requests, ~3× the table), then
/// 270 requests the host refuses, then 270 polls the component abandons on a silent server —
/// each path alone would fill the table if any request, response, stream, options or pollable of a
/// call outlived it. (Wasmtime 48 kept every request's options: `sandbox/http_linker.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_gives_back_every_host_object_when_a_call_ends() -> Test {
    let api = emulator(EmulatorConfig {
        rate_limit_per_minute: 0,
        ..fast()
    })
    .await;
    let elsewhere = emulator(fast()).await;
    let mut plugin = plugin(&api).await;
    let config = config(&api, 5_000);
    let mut job = String::new();
    for call in 0..400 {
        job = plugin
            .submit(&config, &t2v("A horse."))
            .await
            .map_err(|e| format!("submit {call}: {e:?}"))??;
        plugin
            .poll(&config, &job)
            .await
            .map_err(|e| format!("poll {call}: {e:?}"))??;
    }
    // Refused before any connection: an origin the plugin is not allowed.
    let refused = ClientConfig {
        base_url: Some(elsewhere.base_url()),
        ..config.clone()
    };
    for call in 0..270 {
        let outcome = plugin
            .poll(&refused, &job)
            .await
            .map_err(|e| format!("refused poll {call}: {e:?}"))?;
        assert!(denied(Ok(outcome.map(|_| String::new()))), "call {call}");
    }
    assert_eq!(elsewhere.requests().len(), 0);
    // Abandoned: the server never answers, the host's first-byte timeout ends the request.
    let mut impatient = config.clone();
    impatient.first_byte_timeout_ms = Some(100);
    impatient.poll = impatient.poll.map(|p| PollPolicy {
        max_retries: 0,
        ..p
    });
    for call in 0..270 {
        api.push_fault(Route::Poll, Fault::Silence);
        let outcome = plugin
            .poll(&impatient, &job)
            .await
            .map_err(|e| format!("silent poll {call}: {e:?}"))?;
        assert!(
            matches!(outcome, Err(Error::TransportError(_))),
            "call {call}: {outcome:?}"
        );
    }
    // And the plugin still works.
    plugin.poll(&config, &job).await??;
    Ok(())
}
