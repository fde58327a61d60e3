//! `host-demo jobs`, as a user meets it: a `generate` that gave up waiting is listed with the
//! command that picks it up, and that very command — run by a shell, quoting and all —
//! downloads the clip (checked against the request the registry kept) without a second
//! submit; a `generate` killed while its submit was in flight is listed as of unknown
//! outcome, with no command that would send it again.

mod common;

use common::{BIN, KEY, host, host_command, printed};
use happyhorse_emulator::{EmulatorConfig, Fault, Route};
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// `host-demo jobs --json`'s jobs.
async fn jobs(home: &Path) -> Vec<Value> {
    let out = host(&["jobs", "--json"], home).await;
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(KEY), "the key never: {text}");
    let listed: Value = serde_json::from_str(&text).expect("JSON");
    listed["jobs"].as_array().expect("a list").clone()
}

/// `command` run by `sh`, as a person pastes it: `host-demo` found on the `PATH`, the
/// environment as every test has it (the key among it, never on the line).
async fn shell(command: &str, home: &Path) -> Output {
    let bin_dir = Path::new(BIN).parent().expect("the binary's folder");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    tokio::process::Command::new("sh")
        .args(["-c", command])
        .env("PATH", path)
        .env("EMPIRIOLABS_API_KEY", KEY)
        .env("RUST_LOG", "warn")
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("HAPPYHORSE_STATE_DIR", home.join("state"))
        .stdin(std::process::Stdio::null())
        .current_dir(home)
        .output()
        .await
        .expect("sh runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generate_that_gave_up_is_listed_and_its_listed_command_downloads_it() {
    let home = tempfile::tempdir().unwrap();
    // A space in the folder: the listed command must quote it for the shell.
    let out = home.path().join("my clips");
    let emu = common::emulator(100, 4_000).await;
    let base = emu.base_url();
    let gave_up = host(
        &[
            "generate",
            "--prompt",
            "a horse",
            "--duration",
            "3",
            "--base-url",
            &base,
            "--out-dir",
            out.to_str().unwrap(),
            "--output",
            "intro",
            "--timeout-secs",
            "1",
        ],
        home.path(),
    )
    .await;
    let text = printed(&gave_up);
    assert_eq!(gave_up.status.code(), Some(3), "resumable\n{text}");

    let listed = jobs(home.path()).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let job = &listed[0];
    assert_eq!(job["kind"], "generate", "{job}");
    assert_eq!(job["state"], "resumable", "{job}");
    assert_eq!(job["emulated"], false, "{job}");
    assert_eq!(job["estimate"]["amount"], "$0.42", "{job}");
    assert_eq!(job["request"]["prompt"], "a horse", "{job}");
    let job_id = job["job_id"].as_str().expect("a job id");
    let command = job["resume"].as_str().expect("a resume command");
    assert!(
        command.starts_with(&format!("host-demo resume {job_id} --base-url {base}")),
        "{command}"
    );
    // The flags the job was started with, as `generate`'s own hint repeats them.
    assert!(
        command.contains("'") && command.ends_with("--output intro --timeout-secs 1"),
        "{command}"
    );

    // The table says the same, for a person.
    let table = host(&["jobs"], home.path()).await;
    let table_text = printed(&table);
    assert!(
        table_text.contains("resumable") && table_text.contains(command),
        "{table_text}"
    );

    // That command waits one second, as the user asked: let the 4 s job end first.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let resumed = shell(command, home.path()).await;
    let text = printed(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{text}");
    assert!(out.join("intro.mp4").is_file(), "{text}");
    assert_eq!(emu.submits_received(), 1, "nothing resubmitted\n{text}");

    let listed = jobs(home.path()).await;
    assert_eq!(listed.len(), 1, "the same row: {listed:?}");
    let job = &listed[0];
    assert_eq!(job["state"], "downloaded", "{job}");
    assert_eq!(job["resume"], Value::Null, "{job}");
    let file = &job["files"][0];
    assert_eq!(
        file["path"].as_str(),
        Some(out.join("intro.mp4").to_str().unwrap()),
        "{job}"
    );
    // The registry kept the request, so the resumed clip was held to it, not `unchecked`.
    assert_eq!(file["verdict"], "matches", "{job}\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generate_killed_during_its_submit_is_listed_as_of_unknown_outcome() {
    let home = tempfile::tempdir().unwrap();
    let emu = common::emulator_with(EmulatorConfig {
        queued_ms: 100,
        running_ms: 1_000,
        ..EmulatorConfig::linear()
    })
    .await;
    // The submit is read and never answered: the process dies waiting for it.
    emu.push_fault(Route::Submit, Fault::Silence);
    let base = emu.base_url();
    let mut child = host_command(home.path())
        .args([
            "generate",
            "--prompt",
            "a horse",
            "--duration",
            "3",
            "--base-url",
            &base,
        ])
        .current_dir(home.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("host-demo starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while emu.submits_received() == 0 {
        assert!(Instant::now() < deadline, "the submit never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().await.expect("SIGKILL");

    let listed = jobs(home.path()).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let job = &listed[0];
    assert_eq!(job["state"], "submitting", "{job}");
    assert_eq!(job["job_id"], Value::Null, "{job}");
    assert_eq!(
        job["resume"],
        Value::Null,
        "never a command that sends it: {job}"
    );
    let advice = job["advice"].as_str().unwrap();
    assert!(
        advice.starts_with("outcome unknown — check the provider's dashboard"),
        "{advice}"
    );
    assert!(!advice.contains("host-demo generate"), "{advice}");
    let table = printed(&host(&["jobs"], home.path()).await);
    assert!(table.contains("outcome unknown"), "{table}");
}
