//! `--json` as a script reads it: every line on stdout is one JSON event, in order, one job id
//! from `submitted` to `finished`, and the last line is `finished` with the exit code — for
//! `generate` and `run` on the built-in emulator, `--dry-run`, refusals, and Ctrl-C (whose
//! `finished` carries the command that picks the work up, as the human hint prints it).

mod common;

use common::{host_command, interrupt, printed, storyboard};
use happyhorse_emulator::EmulatorConfig;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

/// Every stdout line, each parsed as a JSON object with an `event`: any other line fails.
fn events_of(output: &Output) -> Vec<Value> {
    let stdout = String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8");
    assert!(
        stdout.is_empty() || stdout.ends_with('\n'),
        "every line ends: {stdout:?}"
    );
    stdout
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "a stdout line that is not JSON ({e}): {line:?}\n{}",
                    printed(output)
                )
            });
            assert!(event["event"].is_string(), "no event name: {line}");
            for field in [
                "shot",
                "job_id",
                "endpoint",
                "emulated",
                "cost_micros",
                "currency",
            ] {
                assert!(event.get(field).is_some(), "no {field}: {line}");
            }
            event
        })
        .collect()
}

/// The events' names, in order.
fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

/// The last event, which must be `finished`.
fn finished(events: &[Value]) -> &Value {
    let last = events.last().expect("at least one event");
    assert_eq!(last["event"], "finished", "{events:#?}");
    last
}

/// `host-demo args…` in `home` without a key: the built-in emulator.
async fn demo(args: &[&str], home: &Path) -> Output {
    host_command(home)
        .env_remove("EMPIRIOLABS_API_KEY")
        .args(args)
        .current_dir(home)
        .output()
        .await
        .expect("host-demo runs")
}

/// One shot's events, with progress events checked (0 to 1, or null; never the same reading
/// twice in a row) and left out; every event names the shot's one job.
fn milestones<'e>(events: &'e [Value], shot: &Value) -> Vec<&'e str> {
    let mine: Vec<&Value> = events
        .iter()
        .filter(|e| &e["shot"] == shot && e["event"] != "finished")
        .collect();
    let job = &mine.first().expect("events for the shot")["job_id"];
    assert!(job.is_string(), "{mine:#?}");
    let mut last_reading = None;
    for event in &mine {
        assert_eq!(&event["job_id"], job, "one job throughout: {event}");
        if event["event"] == "progress" {
            let fraction = &event["fraction"];
            assert!(
                fraction.is_null() || (0.0..=1.0).contains(&fraction.as_f64().unwrap()),
                "{event}"
            );
            let reading = (event["state"].clone(), fraction.clone());
            assert_ne!(last_reading.as_ref(), Some(&reading), "a repeated reading");
            last_reading = Some(reading);
        }
    }
    mine.iter()
        .map(|e| e["event"].as_str().unwrap())
        .filter(|kind| *kind != "progress")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_json_writes_only_events_from_submitted_to_finished() {
    let home = tempfile::tempdir().unwrap();
    let out = demo(
        &[
            "generate",
            "--prompt",
            "a horse",
            "--duration",
            "3",
            "--json",
        ],
        home.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let events = events_of(&out);
    assert_eq!(
        milestones(&events, &Value::Null),
        ["submitted", "completed", "downloaded"],
        "{events:#?}"
    );
    let submitted = &events[0];
    assert_eq!(submitted["event"], "submitted", "{events:#?}");
    let job = submitted["job_id"].as_str().unwrap();
    for event in &events {
        assert_eq!(event["endpoint"], "built-in emulator", "{event}");
        assert_eq!(event["emulated"], true, "{event}");
        assert_eq!(event["cost_micros"], 420_000, "3 s at $0.14: {event}");
        assert_eq!(event["currency"], "USD", "{event}");
    }
    let downloaded = events.iter().find(|e| e["event"] == "downloaded").unwrap();
    assert_eq!(downloaded["job_id"], job);
    let path = home
        .path()
        .join(downloaded["path"].as_str().expect("a path"));
    assert_eq!(
        std::fs::metadata(&path).expect("the clip is there").len(),
        downloaded["bytes"].as_u64().unwrap(),
        "{downloaded}"
    );
    assert_eq!(downloaded["verdict"], "matches", "{downloaded}");
    let end = finished(&events);
    assert_eq!(end["job_id"], job);
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["downloaded"], 1);
    assert_eq!(end["failed"], 0);
    assert_eq!(end["in_flight"], 0);
    assert_eq!(end["billed_micros"], 0, "the emulator bills nothing");
    assert_eq!(end["resume_command"], Value::Null);
    // The person's lines are still there, on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Estimated cost: $0.42"), "{stderr}");
    assert!(stderr.contains("Downloaded "), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_json_reports_every_shot_and_the_run_on_stdout_alone() {
    let home = tempfile::tempdir().unwrap();
    let board = storyboard(home.path(), 2).display().to_string();
    let out = demo(
        &["run", &board, "--poll-interval-ms", "20", "--json"],
        home.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let events = events_of(&out);
    for shot in ["s1", "s2"] {
        let shot = Value::from(shot);
        assert_eq!(
            milestones(&events, &shot),
            ["submitted", "completed", "downloaded"],
            "{events:#?}"
        );
        let of = |kind: &str| {
            events
                .iter()
                .find(|e| e["shot"] == shot && e["event"] == kind)
                .unwrap()
        };
        assert_eq!(of("submitted")["job_id"], of("downloaded")["job_id"]);
        assert_eq!(of("submitted")["cost_micros"], 420_000);
        let clip = home.path().join(of("downloaded")["path"].as_str().unwrap());
        assert!(clip.is_file(), "{}", clip.display());
    }
    let end = finished(&events);
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["shot"], Value::Null, "about the whole run");
    assert_eq!(end["downloaded"], 2);
    assert_eq!(end["cost_micros"], 840_000, "the run's estimate");
    assert_eq!(end["endpoint"], "built-in emulator");
    assert_eq!(end["resume_command"], Value::Null);
    // The price table and the summary went to stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("s1") && stderr.contains("Money:"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_and_refusals_are_one_event() {
    let home = tempfile::tempdir().unwrap();
    let generate = [
        "generate",
        "--prompt",
        "a horse",
        "--duration",
        "3",
        "--json",
    ];

    let dry = demo(&[&generate[..], &["--dry-run"][..]].concat(), home.path()).await;
    assert_eq!(dry.status.code(), Some(0), "{}", printed(&dry));
    let events = events_of(&dry);
    assert_eq!(kinds(&events), ["dry_run"]);
    assert_eq!(events[0]["cost_micros"], 420_000);
    assert_eq!(events[0]["shots"], 1);

    let board = storyboard(home.path(), 2).display().to_string();
    let dry = demo(&["run", &board, "--dry-run", "--json"], home.path()).await;
    assert_eq!(dry.status.code(), Some(0), "{}", printed(&dry));
    let events = events_of(&dry);
    assert_eq!(kinds(&events), ["dry_run"]);
    assert_eq!(events[0]["cost_micros"], 840_000);
    assert_eq!(events[0]["shots"], 2);

    // Over the cap: refused after pricing, nothing sent.
    let over = demo(
        &[&generate[..], &["--max-cost", "0.10"][..]].concat(),
        home.path(),
    )
    .await;
    assert_eq!(over.status.code(), Some(2), "{}", printed(&over));
    let events = events_of(&over);
    assert_eq!(kinds(&events), ["finished"]);
    assert_eq!(events[0]["exit_code"], 2);
    assert!(
        events[0]["reason"]
            .as_str()
            .unwrap()
            .contains("over --max-cost $0.10"),
        "{events:#?}"
    );

    // Refused before an endpoint was chosen: still one line, the endpoint unknown.
    let bad = demo(
        &[&generate[..], &["--output", "../escape"][..]].concat(),
        home.path(),
    )
    .await;
    assert_eq!(bad.status.code(), Some(2), "{}", printed(&bad));
    let events = events_of(&bad);
    assert_eq!(kinds(&events), ["finished"]);
    assert_eq!(events[0]["endpoint"], Value::Null);
    assert!(events[0]["reason"].is_string());
}

/// What stdout holds once a job was submitted: where the tests press Ctrl-C.
const SUBMITTED: &str = r#""event":"submitted""#;

/// `command` (as printed: `host-demo …`) split into its arguments; the tests' paths need no
/// quoting.
fn arguments(command: &str) -> Vec<String> {
    let mut words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
    assert_eq!(words.remove(0), "host-demo", "{command}");
    words
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_with_finished_and_the_command_that_picks_the_job_up() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("clips");
    let emu = common::emulator_with(EmulatorConfig {
        queued_ms: 100,
        running_ms: 3_000,
        ..EmulatorConfig::linear()
    })
    .await;
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
            out_dir.to_str().unwrap(),
            "--json",
        ],
        home.path(),
        SUBMITTED,
    )
    .await;
    let text = printed(&stopped);
    assert_eq!(stopped.status.code(), Some(3), "{text}");
    let events = events_of(&stopped);
    let job = events[0]["job_id"].as_str().expect("submitted first");
    let end = finished(&events);
    assert_eq!(end["job_id"], job);
    assert_eq!(end["emulated"], false);
    assert_eq!(end["in_flight"], 1);
    assert_eq!(end["billed_micros"], 420_000, "the job exists: {end}");
    let resume = end["resume_command"].as_str().expect("a resume command");
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(
        stderr.contains(&format!("Pick it up with: {resume}\n")),
        "the same words as the hint: {resume:?}\n{stderr}"
    );
    assert!(resume.starts_with(&format!("host-demo resume {job} --base-url")));

    // Typed as given, with --json: the same job, downloaded, nothing submitted again.
    let mut args = arguments(resume);
    args.push("--json".into());
    let resumed = host_command(home.path())
        .args(&args)
        .current_dir(home.path())
        .output()
        .await
        .unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", printed(&resumed));
    let events = events_of(&resumed);
    let seen = milestones(&events, &Value::Null);
    assert!(
        !seen.contains(&"submitted") && seen.last() == Some(&"downloaded"),
        "nothing submitted: {events:#?}"
    );
    let end = finished(&events);
    assert_eq!(end["job_id"], job);
    assert_eq!(end["cost_micros"], Value::Null, "resume knows no price");
    assert_eq!(emu.submits_received(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_ends_with_the_run_command_its_hints_print() {
    let home = tempfile::tempdir().unwrap();
    let board = storyboard(home.path(), 2).display().to_string();
    let emu = common::emulator_with(EmulatorConfig {
        queued_ms: 100,
        running_ms: 4_000,
        ..EmulatorConfig::linear()
    })
    .await;
    let base = emu.base_url();
    let stopped = interrupt(
        &["run", &board, "--base-url", &base, "--json"],
        home.path(),
        SUBMITTED,
    )
    .await;
    let text = printed(&stopped);
    assert_eq!(stopped.status.code(), Some(3), "{text}");
    let events = events_of(&stopped);
    let end = finished(&events);
    assert_eq!(end["reason"], "stopped by Ctrl-C");
    let resume = end["resume_command"].as_str().expect("a resume command");
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(
        stderr.contains(&format!("run `{resume}` again")),
        "the same words as the hints: {resume:?}\n{stderr}"
    );
    let mut args = arguments(resume);
    args.push("--json".into());
    let resumed = host_command(home.path())
        .args(&args)
        .current_dir(home.path())
        .output()
        .await
        .unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", printed(&resumed));
    let events = events_of(&resumed);
    assert_eq!(finished(&events)["downloaded"], 2);
    assert_eq!(emu.jobs_created(), 2, "each shot paid once");
}
