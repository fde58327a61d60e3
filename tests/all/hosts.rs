//! The same built component, unchanged, in hosts this project does not write: each test runs an
//! example from `examples/` as a subprocess against an emulator started in this process, and
//! checks that the generation completed and that exactly one job was submitted (an extra submit
//! is an extra bill).
//!
//! Missing host tooling:
//! - Node.js (jco) and Python (`wasmtime` from PyPI) are cheap to install, so CI installs them
//!   (`.ci/run`). Without them a test prints `SKIPPED` and how to install them, except when the
//!   `CI` environment variable is set: there a missing dependency fails the test, because a
//!   skip would hide a broken install step.
//! - The wasmtime CLI, Obelisk and `wac` take many minutes to build (`scripts/install-hosts.sh`),
//!   so locally their tests run only when the binary is found (`WASMTIME_BIN` / `OBELISK_BIN` /
//!   `WAC_BIN`, or `wasmtime` / `obelisk` / `wac` on `PATH`) and print `SKIPPED` otherwise. In
//!   CI (`CI` set) a missing host fails the test: `.ci/run` installs them when missing.

use happyhorse_emulator::{Emulator, Fault, Route};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use video_gen_tests::*;

type Test = Result<(), Box<dyn std::error::Error>>;

// ---- Finding hosts, and saying why a test did not run ------------------------------------------

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

pub(crate) fn examples() -> PathBuf {
    workspace().join("examples")
}

/// `CI` set to anything but empty, `0` or `false`.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// Printed straight to the terminal: libtest captures `println!`/`eprintln!` of passing tests,
/// and a skip must be seen.
pub(crate) fn announce(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n{line}");
}

/// A cheap dependency (Node/Python) is missing: skip locally, fail in CI.
fn missing_cheap_dependency(test: &str, what: &str, install: &str) {
    if in_ci() {
        panic!(
            "{test}: {what}. CI is set, so this is a failure, not a skip: .ci/run must install it.\n\
             Install: {install}"
        );
    }
    announce(&format!(
        "SKIPPED {test}: {what}.\n  Install: {install}\n  (With CI set, this is a failure.)"
    ));
}

/// An expensive host (wasmtime CLI, Obelisk, wac) is not installed: skip locally, fail in CI
/// (`.ci/run` installs them with `scripts/install-hosts.sh` when they are missing).
pub(crate) fn missing_host(test: &str, what: &str) {
    if in_ci() {
        panic!(
            "{test}: {what}. CI is set, so this is a failure, not a skip: .ci/run installs the \
             hosts with scripts/install-hosts.sh."
        );
    }
    announce(&format!(
        "SKIPPED {test}: {what}.\n  Install with scripts/install-hosts.sh (20-60 min of cargo install), \
         then put the binaries on PATH or point WASMTIME_BIN / OBELISK_BIN / WAC_BIN at them."
    ));
}

/// `$env_var` if set (it must exist), else `name` searched on `PATH`.
pub(crate) fn find_tool(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{env_var}={} does not name a file",
            path.display()
        );
        return Some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

// ---- Running a host ------------------------------------------------------------------------------

/// What a finished subprocess printed.
pub(crate) struct Run {
    pub(crate) success: bool,
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The last line of stdout, parsed as the examples' `--json` summary.
    fn summary(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON summary on stdout\n{}", self.describe()));
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("the summary is not JSON ({e})\n{}", self.describe()))
    }
}

/// Runs `command` to completion on a blocking thread (the emulator keeps serving on the
/// runtime's others), killing it after `timeout`.
pub(crate) async fn run(mut command: Command, timeout: Duration) -> Run {
    tokio::task::spawn_blocking(move || {
        let shown = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {shown}: {e}"));
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("piped")));
        let stderr = drain(Box::new(child.stderr.take().expect("piped")));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for the host") {
                break Some(status);
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        let run = Run {
            success: status.is_some_and(|s| s.success()),
            code: status.and_then(|s| s.code()),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        assert!(
            status.is_some(),
            "{shown} did not finish within {timeout:?}: killed\n{}",
            run.describe()
        );
        run
    })
    .await
    .expect("the host runner thread")
}

/// The generation completed, one output was downloaded as an MP4, and one job was submitted.
fn assert_one_completed_generation(run: &Run, emulator: &Emulator) {
    assert!(run.success, "the example failed\n{}", run.describe());
    let summary = run.summary();
    assert_eq!(summary["state"], "completed", "{}", run.describe());
    let job = summary["job_id"].as_str().expect("a job id");
    assert!(job.starts_with("job_"), "{job}");
    let outputs = summary["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 1, "{summary}");
    assert!(
        outputs[0]
            .as_str()
            .is_some_and(|u| u.starts_with(&emulator.base_url()) && u.contains(job)),
        "{summary}"
    );
    if let Some(files) = summary["files"].as_array() {
        let path = files[0]["path"].as_str().expect("a saved file");
        let video = std::fs::read(path).expect("the saved video");
        assert_eq!(&video[4..8], b"ftyp", "{path} is an MP4");
    }
    assert_eq!(
        emulator.submits_received(),
        1,
        "exactly one submit reached the API"
    );
    assert_eq!(emulator.jobs_created(), 1, "exactly one job was billed");
}

/// The faults a real server or gateway has, one on each of a job's first polls: an HTML error
/// page, silence, an answer that stops halfway, truncated JSON. A host that honours the
/// component's request timeouts (or lets it wait on a clock) recovers from each and completes
/// the job with one submit; one that does not hangs on the silent poll.
fn push_poll_faults(emulator: &Emulator) {
    for fault in [
        Fault::HtmlPage(200),
        Fault::Silence,
        Fault::StallMidBody,
        Fault::TruncatedBody,
    ] {
        emulator.push_fault(Route::Poll, fault);
    }
}

/// The example's flags for a run against faults: a 1 s request timeout, so each faulty poll
/// costs about a second.
const FAULT_FLAGS: [&str; 2] = ["--request-timeout", "1"];

/// How long such a run may take: four faulty polls of ~1–3 s each, backoff, the job.
const FAULT_RUN_BOUND: Duration = Duration::from_secs(40);

/// Runs `example` (an example's command against `emu`) whose submit the server resets after
/// creating the job: the example must report `permanent-submit-outcome-unknown` (exit 1) and
/// never send a second submit, whatever the host.
async fn reports_a_reset_submit_as_unknown(mut example: Command, emu: &Emulator) {
    emu.push_fault(Route::Submit, Fault::ResetAfterProcessing);
    example.arg("--json");
    let run = run(example, Duration::from_secs(120)).await;
    assert_eq!(run.code, Some(1), "{}", run.describe());
    let summary = run.summary();
    assert_eq!(
        summary["error"], "permanent-submit-outcome-unknown",
        "{summary}"
    );
    assert_eq!(
        (emu.submits_received(), emu.jobs_created()),
        (1, 1),
        "one submit, its job created, never resent"
    );
}

/// Runs `example` (an example's command against `emu`) with [`push_poll_faults`] and its
/// [`FAULT_FLAGS`]: one completed generation, one submit, within [`FAULT_RUN_BOUND`].
async fn survives_poll_faults(host: &str, mut example: Command, emu: &Emulator) {
    push_poll_faults(emu);
    example.args(FAULT_FLAGS).arg("--json");
    let started = Instant::now();
    let run = run(example, Duration::from_secs(120)).await;
    assert_one_completed_generation(&run, emu);
    let took = started.elapsed();
    announce(&format!("{host}: the faulty run took {took:?}"));
    assert!(took < FAULT_RUN_BOUND, "took {took:?}\n{}", run.describe());
}

// ---- Node.js through jco: the `happyhorse` npm package ------------------------------------------

const NODE_INSTALL: &str = "Node.js 20+ and npm";

/// A fresh npm project outside the repository with the package from `dist/` installed and the
/// example copied in, made once per test binary (the node tests share it: they only read it).
async fn node_project(test: &str) -> Option<&'static Path> {
    if find_tool("NODE_BIN", "node").is_none() || find_tool("NPM_BIN", "npm").is_none() {
        missing_cheap_dependency(test, "`node` or `npm` is not on PATH", NODE_INSTALL);
        return None;
    }
    static PROJECT: tokio::sync::OnceCell<tempfile::TempDir> = tokio::sync::OnceCell::const_new();
    let project = PROJECT
        .get_or_init(|| async {
            let tarball = crate::packages::dist()
                .await
                .join(format!("npm/happyhorse-{}.tgz", env!("CARGO_PKG_VERSION")));
            let dir = tempfile::tempdir().expect("a project directory");
            std::fs::write(
                dir.path().join("package.json"),
                r#"{"name": "example-test", "private": true, "type": "module"}"#,
            )
            .expect("package.json");
            let mut install = Command::new("npm");
            install
                .current_dir(dir.path())
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .arg(&tarball);
            let installed = run(install, Duration::from_secs(300)).await;
            assert!(installed.success, "{}", installed.describe());
            std::fs::copy(
                examples().join("node/generate.mjs"),
                dir.path().join("generate.mjs"),
            )
            .expect("the example");
            dir
        })
        .await;
    Some(project.path())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_jco_example_generates_one_video() -> Test {
    let Some(project) = node_project("node_jco_example_generates_one_video").await else {
        return Ok(());
    };
    let emu = emulator(fast()).await;
    let out = tempfile::tempdir()?;
    let mut example = node_example(project, &emu);
    example.arg("--json").arg("--download").arg(out.path());
    let run = run(example, Duration::from_secs(120)).await;
    assert_one_completed_generation(&run, &emu);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_jco_example_reports_a_failed_job_through_the_error_payload() -> Test {
    let test = "node_jco_example_reports_a_failed_job_through_the_error_payload";
    let Some(project) = node_project(test).await else {
        return Ok(());
    };
    let emu = emulator(fast()).await;
    emu.fail_next_job("content_policy_violation", "flagged by the emulator");
    let mut example = node_example(project, &emu);
    // The key as a flag this time, not from the environment.
    example
        .args(["--key", KEY, "--json"])
        .env_remove("EMPIRIOLABS_API_KEY");
    let run = run(example, Duration::from_secs(120)).await;
    assert_eq!(run.code, Some(1), "{}", run.describe());
    let summary = run.summary();
    assert_eq!(summary["error"], "job-failed", "{summary}");
    assert!(
        summary["message"]
            .as_str()
            .is_some_and(|m| m.contains("content_policy_violation")),
        "{summary}"
    );
    assert_eq!(emu.submits_received(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_jco_example_survives_a_server_that_misbehaves() -> Test {
    let Some(project) = node_project("node_jco_example_survives_a_server_that_misbehaves").await
    else {
        return Ok(());
    };
    let emu = emulator(fast()).await;
    survives_poll_faults("node", node_example(project, &emu), &emu).await;
    let emu = emulator(fast()).await;
    reports_a_reset_submit_as_unknown(node_example(project, &emu), &emu).await;
    Ok(())
}

/// `node generate.mjs` in the test project, against `emu`, polling fast, the key in the
/// environment as a user would pass it.
fn node_example(project: &Path, emu: &Emulator) -> Command {
    let mut example = Command::new("node");
    example
        .current_dir(project)
        .arg("generate.mjs")
        .args([
            "--base-url",
            &emu.base_url(),
            "--fast-poll",
            "--deadline",
            "60",
        ])
        .env("EMPIRIOLABS_API_KEY", KEY)
        .env_remove("EMPIRIOLABS_BASE_URL");
    example
}

// ---- Python through wasmtime-py: the `happyhorse` wheel ------------------------------------------

const PYTHON_INSTALL: &str = "python3 with venv and pip";

/// A fresh venv outside the repository with the wheel from `dist/` installed (and through it
/// the pinned `wasmtime`), made once per test binary; its `python`.
async fn python_venv(test: &str) -> Option<&'static Path> {
    if find_tool("PYTHON3_BIN", "python3").is_none() {
        missing_cheap_dependency(test, "no python3 on PATH", PYTHON_INSTALL);
        return None;
    }
    static VENV: tokio::sync::OnceCell<(tempfile::TempDir, PathBuf)> =
        tokio::sync::OnceCell::const_new();
    let (_, python) = VENV
        .get_or_init(|| async {
            let wheel = crate::packages::dist().await.join(format!(
                "python/happyhorse-{}-py3-none-any.whl",
                env!("CARGO_PKG_VERSION")
            ));
            let dir = tempfile::tempdir().expect("a venv directory");
            let mut venv = Command::new("python3");
            venv.args(["-m", "venv"]).arg(dir.path());
            let made = run(venv, Duration::from_secs(120)).await;
            assert!(made.success, "{}", made.describe());
            let python = dir.path().join("bin/python");
            let mut install = Command::new(&python);
            install
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg(&wheel);
            let installed = run(install, Duration::from_secs(300)).await;
            assert!(installed.success, "{}", installed.describe());
            (dir, python)
        })
        .await;
    Some(python.as_path())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_wasmtime_example_generates_one_video() -> Test {
    let Some(python) = python_venv("python_wasmtime_example_generates_one_video").await else {
        return Ok(());
    };
    let emu = emulator(fast()).await;
    let out = tempfile::tempdir()?;
    let mut example = python_example(python, &emu);
    example.arg("--json").arg("--download").arg(out.path());
    let run = run(example, Duration::from_secs(120)).await;
    assert_one_completed_generation(&run, &emu);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_wasmtime_example_survives_a_server_that_misbehaves() -> Test {
    let Some(python) =
        python_venv("python_wasmtime_example_survives_a_server_that_misbehaves").await
    else {
        return Ok(());
    };
    let emu = emulator(fast()).await;
    survives_poll_faults("python", python_example(python, &emu), &emu).await;
    let emu = emulator(fast()).await;
    reports_a_reset_submit_as_unknown(python_example(python, &emu), &emu).await;
    Ok(())
}

/// `python generate.py` from the venv, against `emu`, polling fast, the key in the
/// environment.
fn python_example(python: &Path, emu: &Emulator) -> Command {
    let mut example = Command::new(python);
    example
        .current_dir(examples().join("python"))
        .arg("generate.py")
        .args([
            "--base-url",
            &emu.base_url(),
            "--fast-poll",
            "--deadline",
            "60",
        ])
        .env("EMPIRIOLABS_API_KEY", KEY)
        .env_remove("EMPIRIOLABS_BASE_URL");
    example
}

// ---- The wasmtime CLI ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasmtime_cli_example_generates_one_video() -> Test {
    let test = "wasmtime_cli_example_generates_one_video";
    let Some(wasmtime) = find_tool("WASMTIME_BIN", "wasmtime") else {
        missing_host(test, "no wasmtime CLI (WASMTIME_BIN or `wasmtime` on PATH)");
        return Ok(());
    };
    let emu = emulator(fast()).await;
    let mut script = Command::new("bash");
    script
        .arg(examples().join("wasmtime-cli/generate.sh"))
        .arg(video_gen_artifacts::HAPPYHORSE_PATH)
        .arg("A \"quoted\" horse gallops along a beach at sunset.")
        .env("WASMTIME", &wasmtime)
        .env("EMPIRIOLABS_API_KEY", KEY)
        .env("EMPIRIOLABS_BASE_URL", emu.base_url())
        .env("FAST_POLL", "1");
    let run = run(script, Duration::from_secs(180)).await;
    assert!(run.success, "{}", run.describe());
    let job = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("submitted job "))
        .unwrap_or_else(|| panic!("no job id\n{}", run.describe()))
        .to_string();
    assert!(
        run.stdout.contains("estimate-cost: ok({currency: \"USD\""),
        "{}",
        run.describe()
    );
    let outputs: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("output: "))
        .collect();
    assert_eq!(outputs.len(), 1, "{}", run.describe());
    assert!(outputs[0].starts_with(&format!("{}/files/{job}/", emu.base_url())));
    assert!(run.stdout.contains(&format!("job {job}: completed")));
    assert_eq!(
        emu.submits_received(),
        1,
        "exactly one submit reached the API"
    );
    assert_eq!(
        submit_bodies(&emu)[0]["prompt"],
        "A \"quoted\" horse gallops along a beach at sunset.",
        "the WAVE string escaping is exact"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasmtime_cli_generate_in_one_invoke_and_err_output() -> Test {
    let test = "wasmtime_cli_generate_in_one_invoke_and_err_output";
    let Some(wasmtime) = find_tool("WASMTIME_BIN", "wasmtime") else {
        missing_host(test, "no wasmtime CLI (WASMTIME_BIN or `wasmtime` on PATH)");
        return Ok(());
    };
    let emu = emulator(fast()).await;
    let config = format!(
        "{{base-url: \"{}\", poll: {{min-interval-ms: 200, max-interval-ms: 1000, deadline-ms: 60000, max-retries: 4}}}}",
        emu.base_url()
    );
    let invoke = |key: &str, call: String| {
        let mut command = Command::new(&wasmtime);
        command
            .args(["run", "-S", "http", "--env"])
            .arg(format!("EMPIRIOLABS_API_KEY={key}"))
            .arg("--invoke")
            .arg(call)
            .arg(video_gen_artifacts::HAPPYHORSE_PATH);
        command
    };
    // The README's one-liner: `generate` = submit + wait.
    let call = format!("generate({config}, {{prompt: \"A horse gallops.\", images: []}})");
    let done = run(invoke(KEY, call.clone()), Duration::from_secs(120)).await;
    assert!(done.success, "{}", done.describe());
    assert!(
        done.stdout.starts_with("ok({job-id: \"job_"),
        "{}",
        done.describe()
    );
    assert!(
        done.stdout.contains("state: completed([\""),
        "{}",
        done.describe()
    );
    assert_eq!(emu.submits_received(), 1);

    // A refused key: the CLI prints the typed error and still exits 0.
    let refused = run(invoke("wrong-key", call), Duration::from_secs(60)).await;
    assert!(refused.success, "{}", refused.describe());
    assert!(
        refused.stdout.starts_with("err(permanent-unauthorized("),
        "{}",
        refused.describe()
    );
    assert_eq!(emu.jobs_created(), 1, "the refused call created no job");
    Ok(())
}

// ---- A serverless function by composition: wac plug + wasmtime serve -----------------------------

/// A long-running host process, killed when dropped; its output goes to files for diagnosis.
pub(crate) struct Server {
    pub(crate) child: std::process::Child,
    log: PathBuf,
}

impl Server {
    pub(crate) fn start(mut command: Command, log: PathBuf) -> Server {
        let out = std::fs::File::create(&log).expect("a log file");
        let err = out.try_clone().expect("a log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
        Server { child, log }
    }

    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something answers HTTP at `url`.
pub(crate) async fn wait_for_http(url: &str, server: &mut Server, timeout: Duration) {
    let started = Instant::now();
    loop {
        if reqwest::get(url).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("the server exited ({status})\n{}", server.output());
        }
        assert!(
            started.elapsed() < timeout,
            "nothing answered at {url} within {timeout:?}\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn json_of(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serverless_function_composed_with_wac_serves_generate_and_jobs() -> Test {
    let test = "serverless_function_composed_with_wac_serves_generate_and_jobs";
    let Some(wasmtime) = find_tool("WASMTIME_BIN", "wasmtime") else {
        missing_host(test, "no wasmtime CLI (WASMTIME_BIN or `wasmtime` on PATH)");
        return Ok(());
    };
    let Some(wac) = find_tool("WAC_BIN", "wac") else {
        missing_host(test, "no wac (WAC_BIN or `wac` on PATH)");
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let composed = dir.path().join("serverless-happyhorse.wasm");

    // The README's composition: the function's `videogen:api/video-gen` import is filled by
    // the HappyHorse component's export.
    let mut plug = Command::new(&wac);
    plug.arg("plug")
        .arg(video_gen_test_artifacts::SERVERLESS_PATH)
        .arg("--plug")
        .arg(video_gen_artifacts::HAPPYHORSE_PATH)
        .arg("-o")
        .arg(&composed);
    let plugged = run(plug, Duration::from_secs(60)).await;
    assert!(plugged.success, "wac plug failed\n{}", plugged.describe());

    let emu = emulator(fast()).await;
    let port = free_port();
    let mut serve = Command::new(&wasmtime);
    serve
        .args(["serve", "-S", "cli", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--env")
        .arg(format!("EMPIRIOLABS_API_KEY={KEY}"))
        .arg("--env")
        .arg(format!("EMPIRIOLABS_BASE_URL={}", emu.base_url()))
        .arg(&composed);
    let mut server = Server::start(serve, dir.path().join("serve.log"));
    let base = format!("http://127.0.0.1:{port}");
    wait_for_http(
        &format!("{base}/health"),
        &mut server,
        Duration::from_secs(60),
    )
    .await;

    let http = reqwest::Client::new();
    let (status, submitted) = json_of(
        http.post(format!("{base}/generate"))
            .header("content-type", "application/json")
            .body(
                r#"{"prompt": "A horse gallops along a beach at sunset.", "resolution": "1080p"}"#,
            )
            .send()
            .await?,
    )
    .await;
    assert_eq!(status, 202, "{submitted}\n{}", server.output());
    let job = submitted["job_id"].as_str().expect("a job id").to_string();
    assert!(job.starts_with("job_"), "{submitted}");

    let started = Instant::now();
    let finished = loop {
        let (status, state) = json_of(http.get(format!("{base}/jobs/{job}")).send().await?).await;
        assert_eq!(status, 200, "{state}");
        assert_eq!(state["job_id"], job.as_str());
        if state["state"] == "completed" {
            break state;
        }
        assert!(
            matches!(state["state"].as_str(), Some("queued" | "running")),
            "{state}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never completed: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let outputs = finished["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 1, "{finished}");
    assert!(
        outputs[0].as_str().is_some_and(|u| u.contains(&job)),
        "{finished}"
    );

    // Errors keep their meaning through the composition.
    let (status, unknown) =
        json_of(http.get(format!("{base}/jobs/job_unknown")).send().await?).await;
    assert_eq!(
        (status, unknown["error"].as_str()),
        (404, Some("not-found")),
        "{unknown}"
    );
    let (status, invalid) = json_of(
        http.post(format!("{base}/generate"))
            .body(r#"{"prompt": "too long", "duration_seconds": 99}"#)
            .send()
            .await?,
    )
    .await;
    assert_eq!(status, 400, "{invalid}");
    assert_eq!(invalid["error"], "permanent-invalid-request", "{invalid}");

    assert_eq!(
        emu.submits_received(),
        1,
        "one job; the invalid request never left"
    );
    assert_eq!(submit_bodies(&emu)[0]["resolution"], "1080p");
    Ok(())
}

// ---- Obelisk: the component as an activity, a durable workflow ------------------------------------

const WORKFLOW_FFQN: &str = "empiriolabs:happyhorse-workflow/generation@0.3.0.generate";

/// Builds the example workflow as the README does (its own small workspace, a target of its
/// own) and returns the path of its `.wasm`.
pub(crate) async fn build_obelisk_workflow() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = workspace().join("target/obelisk-workflow");
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--manifest-path",
        ])
        .arg(examples().join("obelisk/workflow/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    let built = run(build, Duration::from_secs(600)).await;
    assert!(
        built.success,
        "building the workflow failed (is `rustup target add wasm32-unknown-unknown` done?)\n{}",
        built.describe()
    );

    target.join("wasm32-unknown-unknown/release/happyhorse_workflow.wasm")
}

/// A fresh directory laid out as the example deployment expects: `deployment.toml` as shipped
/// and `wasm/` with the built component and workflow (the workflow built here).
pub(crate) async fn obelisk_deployment() -> tempfile::TempDir {
    let workflow = build_obelisk_workflow().await;
    let dir = tempfile::tempdir().expect("a deployment directory");
    let wasm = dir.path().join("wasm");
    std::fs::create_dir(&wasm).expect("wasm/");
    std::fs::copy(
        video_gen_artifacts::HAPPYHORSE_PATH,
        wasm.join("happyhorse_component.wasm"),
    )
    .expect("the component");
    std::fs::copy(workflow, wasm.join("happyhorse_workflow.wasm")).expect("the workflow");
    std::fs::copy(
        examples().join("obelisk/deployment.toml"),
        dir.path().join("deployment.toml"),
    )
    .expect("the deployment");
    dir
}

/// The example deployment in a fresh directory: `deployment.toml` as shipped, `wasm/` with the
/// built component and the workflow (built here), and a `server.toml` on a free port with its
/// state inside the directory.
pub(crate) struct ObeliskSite {
    obelisk: PathBuf,
    pub(crate) dir: tempfile::TempDir,
    api: String,
    /// Set in the server's environment besides the key and the allowed host.
    pub(crate) env: Vec<(String, std::ffi::OsString)>,
}

async fn obelisk_site(test: &str) -> Option<ObeliskSite> {
    let Some(obelisk) = find_tool("OBELISK_BIN", "obelisk") else {
        missing_host(test, "no obelisk (OBELISK_BIN or `obelisk` on PATH)");
        return None;
    };
    Some(obelisk_site_in(obelisk, obelisk_deployment().await))
}

/// A site around `dir`, a deployment directory holding `deployment.toml`: adds the
/// `server.toml` on a free port.
pub(crate) fn obelisk_site_in(obelisk: PathBuf, dir: tempfile::TempDir) -> ObeliskSite {
    let port = free_port();
    std::fs::write(
        dir.path().join("server.toml"),
        format!(
            "api.listening_addr = \"127.0.0.1:{port}\"\n\
             webui.enabled = false\n\
             external.enabled = false\n\
             database.sqlite.directory = \"${{SERVER_CONFIG_DIR}}/obelisk-sqlite\"\n\
             [wasm]\n\
             cache_directory = \"${{SERVER_CONFIG_DIR}}/obelisk-cache/wasm\"\n\
             [wasm.codegen_cache]\n\
             directory = \"${{SERVER_CONFIG_DIR}}/obelisk-cache/codegen\"\n"
        ),
    )
    .expect("server.toml");
    ObeliskSite {
        obelisk,
        dir,
        api: format!("http://127.0.0.1:{port}"),
        env: Vec::new(),
    }
}

impl ObeliskSite {
    /// `obelisk server run` with the key and the allowed host in its environment, as the
    /// README runs it; returns once its API answers.
    pub(crate) async fn start(&self, emulator: &Emulator, log: &str) -> Server {
        let mut command = Command::new(&self.obelisk);
        command
            .current_dir(self.dir.path())
            .args([
                "server",
                "run",
                "--server-config",
                "server.toml",
                "--deployment",
                "deployment.toml",
            ])
            .env("EMPIRIOLABS_API_KEY", KEY)
            .env("EMPIRIOLABS_ALLOWED_HOST", emulator.base_url())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut server = Server::start(command, self.dir.path().join(log));
        wait_for_http(
            &format!("{}/v1/executions", self.api),
            &mut server,
            Duration::from_secs(300),
        )
        .await;
        server
    }

    /// `obelisk execution submit` of the workflow; returns the execution id it prints.
    /// Polls are spaced from `min_interval_ms` to `min_interval_ms * 2`.
    pub(crate) async fn submit(
        &self,
        emulator: &Emulator,
        server: &Server,
        min_interval_ms: u32,
    ) -> String {
        let params = serde_json::json!([
            {
                "base-url": emulator.base_url(), "api-key": null, "connect-timeout-ms": null,
                "first-byte-timeout-ms": null, "between-bytes-timeout-ms": null,
                "max-response-bytes": null,
                "poll": {
                    "min-interval-ms": min_interval_ms, "max-interval-ms": min_interval_ms * 2,
                    "deadline-ms": 60000, "max-retries": 3
                }
            },
            {
                "model": null, "prompt": "A horse gallops along a beach at sunset.", "mode": null,
                "images": [], "aspect-ratio": null, "resolution": "720p", "duration-seconds": 5,
                "seed": null, "watermark": null
            }
        ]);
        obelisk_submit(&self.obelisk, &self.api, WORKFLOW_FFQN, &params, || {
            server.output()
        })
        .await
    }

    /// The execution's final result, through the Web API.
    pub(crate) async fn result(&self, execution: &str, server: &Server) -> String {
        obelisk_result(&self.api, execution, Duration::from_secs(120), || {
            server.output()
        })
        .await
    }
}

/// `obelisk execution submit` of `ffqn` with `params` through the server at `api`; the
/// execution id it prints. A failure shows `logs()` (the servers' output).
pub(crate) async fn obelisk_submit(
    obelisk: &Path,
    api: &str,
    ffqn: &str,
    params: &serde_json::Value,
    logs: impl Fn() -> String,
) -> String {
    let mut submit = Command::new(obelisk);
    submit
        .args(["execution", "submit", "--api-url", api, ffqn])
        .arg(params.to_string());
    let submitted = run(submit, Duration::from_secs(60)).await;
    assert!(submitted.success, "{}\n{}", submitted.describe(), logs());
    submitted
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("E_"))
        .unwrap_or_else(|| panic!("no execution id\n{}", submitted.describe()))
        .to_string()
}

/// `execution`'s result as the Web API at `api` returns it once it has finished
/// (`?follow=true` blocks until then), within `within`. A failure shows `logs()`.
pub(crate) async fn obelisk_result(
    api: &str,
    execution: &str,
    within: Duration,
    logs: impl Fn() -> String,
) -> String {
    let response = tokio::time::timeout(
        within,
        reqwest::Client::new()
            .get(format!("{api}/v1/executions/{execution}?follow=true"))
            .header("accept", "application/json")
            .send(),
    )
    .await
    .unwrap_or_else(|_| panic!("no result within {within:?}\n{}", logs()))
    .expect("the result request");
    let status = response.status();
    let text = response.text().await.expect("a body");
    assert!(status.is_success(), "{status}: {text}\n{}", logs());
    text
}

pub(crate) fn assert_completed(result: &str, emulator: &Emulator, server: &Server) {
    let files = format!("{}/files/job_", emulator.base_url());
    assert!(
        result.contains("outputs") && result.contains(&files),
        "the workflow did not return the outputs: {result}\n{}",
        server.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obelisk_workflow_generates_one_video() -> Test {
    let Some(site) = obelisk_site("obelisk_workflow_generates_one_video").await else {
        return Ok(());
    };
    let emu = emulator(fast()).await;
    let server = site.start(&emu, "server.log").await;
    let execution = site.submit(&emu, &server, 200).await;
    let result = site.result(&execution, &server).await;
    assert_completed(&result, &emu, &server);
    assert_eq!(
        emu.submits_received(),
        1,
        "exactly one submit reached the API"
    );
    assert_eq!(emu.jobs_created(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obelisk_workflow_resumes_after_a_server_restart_without_a_second_submit() -> Test {
    let test = "obelisk_workflow_resumes_after_a_server_restart_without_a_second_submit";
    let Some(site) = obelisk_site(test).await else {
        return Ok(());
    };
    // A job long enough to kill the server in the middle of it.
    let emu = emulator(happyhorse_emulator::EmulatorConfig {
        queued_ms: 500,
        running_ms: 6_000,
        rate_limit_per_minute: 0,
        ..happyhorse_emulator::EmulatorConfig::linear()
    })
    .await;
    let mut first = site.start(&emu, "server-1.log").await;
    // Polls at least 1.5 s apart: the kill below lands in a durable sleep, not in the middle
    // of a poll activity (whose lock would first have to expire).
    let execution = site.submit(&emu, &first, 1_500).await;

    // Wait until the workflow is past its submit (its first poll reached the API), so the
    // submit's result is in Obelisk's log, and into its first sleep; then kill the server
    // outright.
    let polls = |emu: &Emulator| {
        emu.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/v1/jobs/"))
            .count()
    };
    let started = Instant::now();
    while polls(&emu) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the workflow never polled\n{}",
            first.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    first.stop(); // SIGKILL: a crash, not a shutdown
    assert_eq!(emu.submits_received(), 1);
    let polls_before = polls(&emu);

    let second = site.start(&emu, "server-2.log").await;
    let result = site.result(&execution, &second).await;
    assert_completed(&result, &emu, &second);
    assert!(polls(&emu) > polls_before, "the restarted server polled on");
    assert_eq!(
        emu.submits_received(),
        1,
        "the restart did not submit again"
    );
    assert_eq!(emu.jobs_created(), 1, "one job billed");
    Ok(())
}
