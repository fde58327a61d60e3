//! `host-demo generate` and `run`, the real binary, against a server that misbehaves: what a
//! user sees (exit code and message), how long it took against the configured bound, and how
//! many submits the server received and accepted — one job, one bill.

mod common;

use common::{host_command, printed};
use happyhorse_emulator::{Emulator, Fault, Route};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

async fn emulator() -> Emulator {
    common::emulator(30, 300).await
}

/// `host-demo args…` against `emu`, with its files, registry and cache inside `home`; how
/// long it took.
async fn host(args: &[&str], emu: &Emulator, home: &Path) -> (Output, Duration) {
    let started = Instant::now();
    let output = host_command(home)
        .args(args)
        .args(["--base-url", &emu.base_url(), "--requests-per-minute", "0"])
        .current_dir(home)
        .output()
        .await
        .expect("host-demo runs");
    (output, started.elapsed())
}

/// `generate` with a 1 s request timeout and `timeout_secs` to wait.
fn generate(timeout_secs: &str) -> Vec<&str> {
    vec![
        "generate",
        "--prompt",
        "A horse gallops along a beach at sunset.",
        "--request-timeout-secs",
        "1",
        "--timeout-secs",
        timeout_secs,
    ]
}

/// The component is compiled into the cache once, so the timed runs measure the run.
async fn warm(home: &Path) {
    let emu = emulator().await;
    let (out, _) = host(&generate("30"), &emu, home).await;
    assert!(out.status.success(), "{}", printed(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_costs_generate_its_deadline_and_no_more() {
    let home = tempfile::tempdir().unwrap();
    warm(home.path()).await;
    let emu = emulator().await;
    // Every poll meets silence: the job is never seen again.
    for _ in 0..200 {
        emu.push_fault(Route::Poll, Fault::Silence);
    }
    let (out, took) = host(&generate("4"), &emu, home.path()).await;
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(3), "resumable\n{text}");
    assert!(text.contains("gave up waiting"), "{text}");
    assert!(text.contains("host-demo resume job_"), "{text}");
    // The 4 s deadline, the process's start and the submit; never the server's whim.
    assert!(took < Duration::from_secs(4 + 4), "took {took:?}\n{text}");
    assert_eq!((emu.submits_received(), emu.jobs_created()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_stalled_and_trickled_polls_do_not_abandon_the_job() {
    let home = tempfile::tempdir().unwrap();
    warm(home.path()).await;
    let emu = emulator().await;
    for fault in [
        Fault::HtmlPage(200),
        Fault::HtmlPage(502),
        Fault::TruncatedBody,
        Fault::StallMidBody,
        Fault::Silence,
        Fault::Trickle(Duration::from_millis(400)),
    ] {
        emu.push_fault(Route::Poll, fault);
    }
    let (out, took) = host(&generate("60"), &emu, home.path()).await;
    let text = printed(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Downloaded"), "{text}");
    assert!(took < Duration::from_secs(30), "took {took:?}\n{text}");
    assert_eq!((emu.submits_received(), emu.jobs_created()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_reset_after_its_job_was_made_is_reported_unknown_not_resent() {
    let home = tempfile::tempdir().unwrap();
    let emu = emulator().await;
    emu.push_fault(Route::Submit, Fault::ResetAfterProcessing);
    let (out, _) = host(&generate("30"), &emu, home.path()).await;
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(3), "not finished\n{text}");
    assert!(text.contains("do NOT resubmit"), "{text}");
    assert!(!text.contains("Submitted job"), "{text}");
    assert_eq!((emu.submits_received(), emu.jobs_created()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storyboard_shot_whose_submit_was_reset_stays_unknown_across_runs() {
    let home = tempfile::tempdir().unwrap();
    let emu = emulator().await;
    let board = home.path().join("board.toml");
    std::fs::write(
        &board,
        "[[shot]]\nname = \"reset\"\nprompt = \"The answer is lost.\"\nduration = 3\n\
         [[shot]]\nname = \"fine\"\nprompt = \"Polls are garbled.\"\nduration = 3\n\
         [run]\nconcurrency = 1\n",
    )
    .unwrap();
    emu.push_fault(Route::Submit, Fault::ResetAfterProcessing);
    emu.push_fault(Route::Poll, Fault::HtmlPage(502));
    emu.push_fault(Route::Poll, Fault::TruncatedBody);
    let run = ["run", board.to_str().unwrap(), "--poll-interval-ms", "20"];
    let (first, _) = host(&run, &emu, home.path()).await;
    let text = printed(&first);
    assert_eq!(first.status.code(), Some(3), "{text}");
    assert!(text.contains("unknown"), "{text}");
    assert_eq!((emu.submits_received(), emu.jobs_created()), (2, 2));
    // The next run reports the shot again and sends nothing.
    let (again, _) = host(&run, &emu, home.path()).await;
    let text = printed(&again);
    assert_eq!(again.status.code(), Some(3), "{text}");
    assert!(text.contains("unknown"), "{text}");
    assert_eq!(emu.submits_received(), 2, "never resubmitted\n{text}");
}
