//! A paying user's first hour, as that user would type it: the demo on the built-in
//! emulator and then a real endpoint, an interrupted run and an interrupted `generate`
//! resumed with the command they printed, an output folder that cannot be written, a refused
//! key. Each counts what reached the server, reads the exit code and the files.

mod common;

use common::{KEY, host, host_command, interrupt, printed, storyboard};
use happyhorse_emulator::{Emulator, EmulatorConfig};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// `host-demo run board` against the emulator at `base`, polling fast.
async fn run_at(board: &str, base: &str, home: &Path) -> Output {
    host(
        &["run", board, "--base-url", base, "--poll-interval-ms", "20"],
        home,
    )
    .await
}

/// The keyless demo: `host-demo run board` on the built-in emulator.
async fn run_demo(board: &str, home: &Path) -> Output {
    host_command(home)
        .env_remove("EMPIRIOLABS_API_KEY")
        .args(["run", board, "--poll-interval-ms", "20"])
        .current_dir(home)
        .output()
        .await
        .expect("host-demo runs")
}

/// The command a run printed to pick its work up (the text after `marker`, to the line's
/// end, backticks removed), split into arguments (the tests' paths need no quoting).
fn printed_command(text: &str, marker: &str) -> Vec<String> {
    let line = text
        .lines()
        .find_map(|l| l.split_once(marker).map(|(_, rest)| rest.to_string()))
        .unwrap_or_else(|| panic!("no {marker:?} in\n{text}"));
    let command = line.split('`').next().unwrap_or(&line).trim().to_string();
    let mut words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
    assert_eq!(
        words.first().map(String::as_str),
        Some("host-demo"),
        "{line}"
    );
    words.remove(0);
    words
}

/// An emulator whose jobs take `secs` seconds to render.
async fn slow_emulator(secs: u64) -> Emulator {
    common::emulator_with(EmulatorConfig {
        queued_ms: 100,
        running_ms: secs * 1000,
        ..EmulatorConfig::linear()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_then_a_real_endpoint_submits_there_and_keeps_both() {
    let home = tempfile::tempdir().unwrap();
    let board = storyboard(home.path(), 2);
    let board = board.to_str().unwrap();
    // The demo: no key, the built-in emulator.
    let demo = run_demo(board, home.path()).await;
    assert_eq!(demo.status.code(), Some(0), "{}", printed(&demo));
    // Then a key and an endpoint: nothing of the demo counts there.
    let emu = common::emulator(30, 150).await;
    let base = emu.base_url();
    let real = run_at(board, &base, home.path()).await;
    let text = printed(&real);
    assert_eq!(real.status.code(), Some(0), "{text}");
    assert_eq!(emu.jobs_created(), 2, "both shots submitted here\n{text}");
    assert!(
        text.contains("built-in emulator"),
        "the demo's jobs are named\n{text}"
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.path().join("out/trailer/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["emulated"], false, "{manifest}");
    for shot in manifest["shots"].as_array().unwrap() {
        assert_eq!(shot["endpoint"], emu_origin(&emu), "{shot}");
        assert_eq!(shot["state"], "downloaded", "{shot}");
    }
    // The demo's placeholders sit in a folder of their own, never over the paid clips.
    assert!(home.path().join("out/trailer/emulator/s1.mp4").is_file());
    let paid = std::fs::read(home.path().join("out/trailer/s1.mp4")).unwrap();
    // Run again there: nothing new is submitted.
    let again = run_at(board, &base, home.path()).await;
    assert_eq!(again.status.code(), Some(0), "{}", printed(&again));
    assert_eq!(emu.submits_received(), 2);
    // And the demo again: the built-in emulator's shots are its own, still downloaded.
    let demo_again = run_demo(board, home.path()).await;
    assert_eq!(
        demo_again.status.code(),
        Some(0),
        "{}",
        printed(&demo_again)
    );
    assert_eq!(emu.submits_received(), 2, "the endpoint saw nothing of it");
    assert_eq!(
        std::fs::read(home.path().join("out/trailer/s1.mp4")).unwrap(),
        paid,
        "the paid clip is untouched"
    );
}

/// The emulator's origin as the journal records it.
fn emu_origin(emu: &Emulator) -> String {
    happyhorse_sandbox::Origin::from_url(&emu.base_url())
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_is_resumed_with_the_command_it_printed() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("elsewhere");
    let board = storyboard(home.path(), 2);
    let emu = slow_emulator(4).await;
    let base = emu.base_url();
    let stopped = interrupt(
        &[
            "run",
            board.to_str().unwrap(),
            "--base-url",
            &base,
            "--out-dir",
            out.to_str().unwrap(),
            "--concurrency",
            "2",
        ],
        home.path(),
        "job_",
    )
    .await;
    let text = printed(&stopped);
    assert_eq!(stopped.status.code(), Some(3), "resumable\n{text}");
    let submitted = emu.submits_received();
    assert!(submitted >= 1, "{text}");
    // The hint carries the endpoint and the folder: typed as printed, it finishes the run.
    let words = printed_command(&text, "run `");
    assert!(words.contains(&"--base-url".to_string()), "{words:?}");
    assert!(words.contains(&"--out-dir".to_string()), "{words:?}");
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    let resumed = host(&args, home.path()).await;
    let text = printed(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{text}");
    assert_eq!(emu.jobs_created(), 2, "each shot paid once\n{text}");
    assert!(out.join("trailer/s1.mp4").is_file() && out.join("trailer/s2.mp4").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_generate_is_resumed_with_the_command_it_printed() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("clips");
    let emu = slow_emulator(3).await;
    let base = emu.base_url();
    let stopped = interrupt(
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
        ],
        home.path(),
        "If interrupted:",
    )
    .await;
    let text = printed(&stopped);
    assert_eq!(stopped.status.code(), Some(3), "{text}");
    assert!(text.contains("was submitted and goes on"), "{text}");
    let words = printed_command(&text, "Pick it up with: ");
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    assert_eq!(args[0], "resume", "{text}");
    let resumed = host(&args, home.path()).await;
    let text = printed(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{text}");
    assert_eq!(emu.submits_received(), 1, "nothing resubmitted\n{text}");
    assert!(std::fs::read_dir(&out).unwrap().count() >= 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_output_names_the_clip_and_never_overwrites_one() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("clips");
    let emu = slow_emulator(3).await;
    let base = emu.base_url();
    let out_arg = out.to_str().unwrap();
    let generate = |name: &'static str| {
        [
            "generate",
            "--prompt",
            "a horse",
            "--duration",
            "3",
            "--base-url",
            &base,
            "--out-dir",
            out_arg,
            "--output",
            name,
        ]
        .map(str::to_string)
    };

    // Interrupted: the printed command carries --output, and the resume names the clip so.
    let args = generate("intro");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stopped = interrupt(&args, home.path(), "If interrupted:").await;
    let text = printed(&stopped);
    assert_eq!(stopped.status.code(), Some(3), "{text}");
    let words = printed_command(&text, "Pick it up with: ");
    assert!(
        words.windows(2).any(|w| w == ["--output", "intro"]),
        "the hint repeats --output: {words:?}"
    );
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    let resumed = host(&args, home.path()).await;
    let text = printed(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{text}");
    assert!(out.join("intro.mp4").is_file(), "{text}");
    let paid_for = std::fs::read(out.join("intro.mp4")).unwrap();

    // The same name again: refused before anything is sent, the clip untouched.
    let args = generate("intro");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let again = host(&args, home.path()).await;
    let text = printed(&again);
    assert_eq!(again.status.code(), Some(2), "{text}");
    assert!(
        text.contains("intro.mp4") && text.contains("never overwritten"),
        "{text}"
    );
    // A name that is not a file name, or one the pipeline keeps: refused too.
    for bad in ["../escape", ".hidden", "manifest"] {
        let mut args = generate("x").to_vec();
        *args.last_mut().unwrap() = bad.to_string();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let refused = host(&args, home.path()).await;
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{bad}: {}",
            printed(&refused)
        );
    }
    assert_eq!(
        emu.submits_received(),
        1,
        "one job, for the first command only"
    );
    assert_eq!(std::fs::read(out.join("intro.mp4")).unwrap(), paid_for);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_folder_that_cannot_be_written_is_refused_before_any_submit() {
    let home = tempfile::tempdir().unwrap();
    let emu = common::emulator(30, 150).await;
    let base = emu.base_url();
    // A file where the folder should be.
    let blocked = home.path().join("blocked");
    std::fs::write(&blocked, "not a folder").unwrap();
    let out = host(
        &[
            "generate",
            "--prompt",
            "a horse",
            "--base-url",
            &base,
            "--out-dir",
            blocked.join("clips").to_str().unwrap(),
        ],
        home.path(),
    )
    .await;
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("output folder"), "{text}");
    assert!(
        text.contains(blocked.to_str().unwrap()),
        "names the folder\n{text}"
    );
    assert_eq!(emu.submits_received(), 0, "nothing billed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_stops_the_run_at_the_first_refusal() {
    let home = tempfile::tempdir().unwrap();
    let board = storyboard(home.path(), 4);
    // A real service's latency: the refusal takes a while to come back, time enough for
    // other submits to be sent if nothing held them.
    let emu = common::emulator_with(EmulatorConfig {
        queued_ms: 30,
        running_ms: 150,
        latency: Duration::from_millis(300),
        ..EmulatorConfig::linear()
    })
    .await;
    let base = emu.base_url();
    let out = host_command(home.path())
        .env("EMPIRIOLABS_API_KEY", format!("not-{KEY}"))
        .args([
            "run",
            board.to_str().unwrap(),
            "--base-url",
            &base,
            // Four shots at once and no budget to pace them: only the rule that the run's
            // first submit goes alone keeps the other three from being sent.
            "--concurrency",
            "4",
            "--requests-per-minute",
            "0",
        ])
        .current_dir(home.path())
        .output()
        .await
        .unwrap();
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert_eq!(
        emu.submits_received(),
        1,
        "one refusal, nothing more\n{text}"
    );
    let said: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Stopped at the first refusal"))
        .collect();
    assert_eq!(said.len(), 1, "said once\n{text}");
    assert!(
        said[0].contains("EMPIRIOLABS_API_KEY"),
        "names the variable\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_problems_exit_2_before_anything_is_sent() {
    let home = tempfile::tempdir().unwrap();
    let emu = common::emulator(30, 150).await;
    let base = emu.base_url();
    let board = home.path().join("broken.toml");
    std::fs::write(&board, "[[shot]\nname = ").unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec![
            "run".into(),
            board.display().to_string(),
            "--base-url".into(),
            base.clone(),
        ],
        vec![
            "generate".into(),
            "--prompt".into(),
            "p".into(),
            "--image".into(),
            "no-such.png".into(),
            "--base-url".into(),
            base.clone(),
        ],
        vec![
            "generate".into(),
            "--prompt".into(),
            "p".into(),
            "--image".into(),
            "ftp://example.com/a.png".into(),
            "--base-url".into(),
            base.clone(),
        ],
        vec![
            "generate".into(),
            "--prompt".into(),
            "p".into(),
            "--base-url".into(),
            "not a url".into(),
        ],
        vec![
            "run".into(),
            storyboard(home.path(), 1).display().to_string(),
            "--max-cost".into(),
            "abc".into(),
            "--base-url".into(),
            base.clone(),
        ],
        vec![
            "generate".into(),
            "--prompt".into(),
            "p".into(),
            "--timeout-secs".into(),
            "0".into(),
            "--base-url".into(),
            base.clone(),
        ],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = host(&args, home.path()).await;
        let text = printed(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{text}");
        assert!(!text.contains("Estimated cost"), "{args:?}\n{text}");
        assert!(!text.contains("./ftp:"), "{args:?}\n{text}");
    }
    assert!(emu.requests().is_empty(), "nothing reached the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_a_downloaded_shot_needs_pay_again() {
    let home = tempfile::tempdir().unwrap();
    let board = storyboard(home.path(), 1);
    let board = board.to_str().unwrap();
    let emu = common::emulator(30, 150).await;
    let base = emu.base_url();
    let done = run_at(board, &base, home.path()).await;
    assert_eq!(done.status.code(), Some(0), "{}", printed(&done));
    let refused = host(
        &["resolve", board, "s1", "--forget", "--base-url", &base],
        home.path(),
    )
    .await;
    let text = printed(&refused);
    assert_eq!(refused.status.code(), Some(2), "{text}");
    assert!(text.contains("--pay-again") && text.contains('$'), "{text}");
    let again = run_at(board, &base, home.path()).await;
    assert_eq!(again.status.code(), Some(0), "{}", printed(&again));
    assert_eq!(emu.submits_received(), 1, "not paid again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_checks_and_prices_without_submitting_when_asked() {
    let home = tempfile::tempdir().unwrap();
    let emu = common::emulator(30, 150).await;
    let base = emu.base_url();
    let generate = |extra: &'static [&'static str]| {
        let mut args = vec!["generate", "--prompt", "a horse", "--duration", "5"];
        args.extend_from_slice(extra);
        args
    };
    let mut dry = generate(&["--dry-run"]);
    dry.extend(["--base-url", &base]);
    let out = host(&dry, home.path()).await;
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("Estimated cost: $0.70") && text.contains("Dry run"),
        "{text}"
    );
    let mut over = generate(&["--max-cost", "0.50"]);
    over.extend(["--base-url", &base]);
    let out = host(&over, home.path()).await;
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("over --max-cost $0.50"), "{text}");
    assert_eq!(emu.submits_received(), 0, "nothing submitted");
    assert!(!home.path().join("out").exists(), "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clip_not_as_paid_for_exits_5_says_paid_for_and_received_and_is_not_paid_again() {
    let home = tempfile::tempdir().unwrap();
    let emu = common::emulator(30, 150).await;
    let base = emu.base_url();
    let out = host(
        &[
            "generate",
            "--prompt",
            "a horse [emulator:clip=short]",
            "--duration",
            "5",
            "--base-url",
            &base,
        ],
        home.path(),
    )
    .await;
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.contains(
            "NOT AS PAID FOR: paid for 5 s of 1280×720 video with audio ($0.70), received 3.0 s"
        ),
        "{text}"
    );
    assert!(text.contains("nothing is resubmitted"), "{text}");

    // A storyboard: the run keeps the clip, names it, and exits 5; a second run pays nothing.
    let board = home.path().join("board.toml");
    std::fs::write(
        &board,
        "[[shot]]\nname = \"good\"\nprompt = \"fine\"\nduration = 3\n\
         [[shot]]\nname = \"mute\"\nprompt = \"silent [emulator:clip=no-audio]\"\nduration = 3\n",
    )
    .unwrap();
    let first = run_at("board.toml", &base, home.path()).await;
    let text = printed(&first);
    assert_eq!(first.status.code(), Some(5), "{text}");
    assert!(
        text.contains("1 clip(s) downloaded are NOT what was paid for"),
        "{text}"
    );
    assert!(
        text.contains("mute is downloaded")
            && text.contains("received 3.0 s of 1280×720 h264 video without audio"),
        "{text}"
    );
    let again = run_at("board.toml", &base, home.path()).await;
    assert_eq!(again.status.code(), Some(5), "{}", printed(&again));
    assert_eq!(
        emu.submits_received(),
        3,
        "one generate and two shots, never again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_generate_keeps_its_clip_apart_from_the_paid_ones() {
    let home = tempfile::tempdir().unwrap();
    let args = [
        "generate",
        "--prompt",
        "a horse",
        "--duration",
        "3",
        "--output",
        "intro",
    ];
    let demo = host_command(home.path())
        .env_remove("EMPIRIOLABS_API_KEY")
        .args(args)
        .current_dir(home.path())
        .output()
        .await
        .unwrap();
    assert_eq!(demo.status.code(), Some(0), "{}", printed(&demo));
    let out = home.path().join("out");
    assert!(
        out.join("emulator/intro.mp4").exists(),
        "{}",
        printed(&demo)
    );
    assert!(!out.join("intro.mp4").exists());

    // The same name against an endpoint that bills: not refused as taken, saved beside it.
    let emu = common::emulator(30, 150).await;
    let base = emu.base_url();
    let mut paid = args.to_vec();
    paid.extend(["--base-url", &base]);
    let real = host(&paid, home.path()).await;
    assert_eq!(real.status.code(), Some(0), "{}", printed(&real));
    assert!(out.join("intro.mp4").exists());
    assert_eq!(emu.submits_received(), 1);
}

/// The percentages `generate` drew for its job, in order, from its log lines (`progress=N`).
fn drawn_percentages(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter(|line| line.contains("job status"))
        .filter_map(|line| {
            let at = line.find("progress=")? + "progress=".len();
            let digits: String = line[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percent_job_whose_first_reading_is_under_one_is_never_drawn_backwards_or_ahead() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("clips");
    let emu = common::emulator(0, 4_000).await;
    let base = emu.base_url();
    // The job writes 0.6 (meaning 0.6 %), then 6, 40, 90: the issue's job, whose first
    // reading alone reads as 60 %.
    let output = host_command(home.path())
        .env("RUST_LOG", "host_demo=info")
        .args([
            "generate",
            "--prompt",
            "a horse [emulator:progress=0.6,6,40,90]",
            "--duration",
            "3",
            "--base-url",
            &base,
            "--out-dir",
            out.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let drawn = drawn_percentages(&String::from_utf8_lossy(&output.stderr));
    assert!(
        drawn.windows(2).all(|w| w[0] <= w[1]),
        "the bar moved back: {drawn:?}\n{text}"
    );
    assert!(
        drawn.iter().all(|p| [0, 6, 40, 90, 100].contains(p)),
        "a reading was drawn on the wrong scale (60 % or 1 % for 0.6): {drawn:?}\n{text}"
    );
    for expected in [6, 40, 90, 100] {
        assert!(
            drawn.contains(&expected),
            "{expected} % never drawn: {drawn:?}\n{text}"
        );
    }
    assert_eq!(emu.submits_received(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_resume_says_the_job_goes_on_and_how_to_pick_it_up() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("clips");
    let emu = slow_emulator(30).await;
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
            "--timeout-secs",
            "1",
        ],
        home.path(),
    )
    .await;
    let text = printed(&gave_up);
    assert_eq!(gave_up.status.code(), Some(3), "{text}");
    let words = printed_command(&text, "If interrupted: ");
    assert_eq!(words[0], "resume", "{text}");
    let job = words[1].clone();
    // Ctrl-C once `resume` has read the job (its first progress event).
    let stopped = interrupt(
        &[
            "resume",
            &job,
            "--base-url",
            &base,
            "--out-dir",
            out.to_str().unwrap(),
            "--json",
        ],
        home.path(),
        r#""event":"progress""#,
    )
    .await;
    let text = printed(&stopped);
    assert_eq!(stopped.status.code(), Some(3), "resumable, not 130\n{text}");
    assert!(!text.contains("nothing was billed"), "{text}");
    assert!(
        text.contains(&format!("Job {job} was submitted and goes on")),
        "{text}"
    );
    let last = String::from_utf8_lossy(&stopped.stdout)
        .lines()
        .last()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON"))
        .expect("a finished event");
    assert_eq!(last["event"], "finished", "{text}");
    assert!(
        last["resume_command"]
            .as_str()
            .is_some_and(|c| c.starts_with(&format!("host-demo resume {job}"))),
        "{last}"
    );
    assert_eq!(emu.submits_received(), 1, "{text}");
}
