//! The command line against a careless user and untrusted text: the journal's home does not
//! depend on the working directory, local images work in `generate` as in a storyboard, and a
//! job id that is a path is refused before it names anything.

mod common;

use common::{host_command, printed};
use happyhorse_emulator::Emulator;
use std::path::Path;
use std::process::Output;

async fn emulator() -> Emulator {
    common::emulator(30, 150).await
}

/// `host-demo args…` in `cwd`, with the registry and the component cache inside `home`.
async fn host(args: &[&str], cwd: &Path, home: &Path) -> Output {
    host_command(home)
        .args(args)
        .current_dir(cwd)
        .output()
        .await
        .expect("host-demo runs")
}

fn copy_reference_image(to: &Path) {
    let png = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/storyboard/refs/horse.png"
    );
    std::fs::copy(png, to).expect("copying the reference image");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_storyboard_run_from_two_working_directories_has_one_journal_and_pays_once() {
    let emu = emulator().await;
    let home = tempfile::tempdir().expect("a temp dir");
    let board_dir = home.path().join("project");
    std::fs::create_dir_all(&board_dir).unwrap();
    let board = board_dir.join("trailer.toml");
    std::fs::write(
        &board,
        "[[shot]]\nname = \"a\"\nprompt = \"a horse\"\nduration = 3\n",
    )
    .unwrap();
    let base = emu.base_url();
    let args = [
        "run",
        board.to_str().unwrap(),
        "--base-url",
        &base,
        "--requests-per-minute",
        "0",
        "--poll-interval-ms",
        "20",
    ];
    for cwd in ["here", "there"] {
        let cwd = home.path().join(cwd);
        std::fs::create_dir_all(&cwd).unwrap();
        let out = host(&args, &cwd, home.path()).await;
        assert!(out.status.success(), "{}", printed(&out));
        assert!(
            !cwd.join("out").exists(),
            "output landed in the working directory"
        );
    }
    assert_eq!(emu.submits_received(), 1, "the second directory paid again");
    assert!(board_dir.join("out/trailer/journal.sqlite").is_file());
    assert!(board_dir.join("out/trailer/a.mp4").is_file());
    // `status` finds the same journal from anywhere.
    let status = host(
        &["status", board.to_str().unwrap()],
        home.path(),
        home.path(),
    )
    .await;
    assert!(status.status.success(), "{}", printed(&status));
    assert!(
        printed(&status).contains("downloaded"),
        "{}",
        printed(&status)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_sends_a_local_image_as_a_storyboard_does() {
    let emu = emulator().await;
    let home = tempfile::tempdir().expect("a temp dir");
    copy_reference_image(&home.path().join("horse.png"));
    let base = emu.base_url();
    let out = host(
        &[
            "generate",
            "--mode",
            "i2v",
            "--image",
            "horse.png",
            "--prompt",
            "The horse turns its head.",
            "--duration",
            "3",
            "--base-url",
            &base,
        ],
        home.path(),
        home.path(),
    )
    .await;
    assert!(out.status.success(), "{}", printed(&out));
    let bodies: Vec<serde_json::Value> = emu
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .filter_map(|r| r.body)
        .collect();
    assert_eq!(bodies.len(), 1);
    assert!(
        bodies[0]["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("data:image/png;base64,")),
        "{}",
        bodies[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_a_job_id_that_is_a_path_before_anything_happens() {
    let emu = emulator().await;
    let home = tempfile::tempdir().expect("a temp dir");
    let target = home.path().join("elsewhere");
    let base = emu.base_url();
    for bad in [target.to_str().unwrap(), "../../x", "job\u{1b}[2J"] {
        let out = host(
            &["resume", bad, "--base-url", &base],
            home.path(),
            home.path(),
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{}", printed(&out));
        assert!(!printed(&out).contains('\u{1b}'), "{}", printed(&out));
    }
    assert!(emu.requests().is_empty(), "an invalid job id was sent");
    assert!(!home.path().join("out").exists());
    assert!(!target.with_file_name("elsewhere-0.mp4").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_gives_up_at_its_deadline_not_after_the_plugins_next_poll_hint() {
    // Jobs that take a minute; against a non-built-in API the component hints 5 s or more
    // between polls, far past a 1 s deadline.
    let emu = common::emulator(60_000, 60_000).await;
    let home = tempfile::tempdir().expect("a temp dir");
    let base = emu.base_url();
    let args = [
        "generate",
        "--prompt",
        "A horse.",
        "--base-url",
        &base,
        "--timeout-secs",
        "1",
        "--requests-per-minute",
        "0",
    ];
    // The first run compiles the component into the cache; the second is timed.
    let _ = host(&args, home.path(), home.path()).await;
    let started = std::time::Instant::now();
    let out = host(&args, home.path(), home.path()).await;
    let took = started.elapsed();
    assert!(!out.status.success());
    assert!(
        printed(&out).contains("gave up waiting"),
        "{}",
        printed(&out)
    );
    assert!(
        took < std::time::Duration::from_millis(4_500),
        "gave up after {took:?}, past the 1 s deadline by more than any margin"
    );
}
