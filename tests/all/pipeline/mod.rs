//! The storyboard pipeline (`host-demo run`) in-process against the emulator: whole runs,
//! what reached the wire (every extra submit is an extra bill), the journal's verdicts, the
//! reports, and the contact sheet in a real browser. The kill -9 tests, which need the real
//! binary, are in `host-demo/tests/crash.rs`.

use happyhorse_emulator::{Emulator, EmulatorConfig, Fault, Route};
use happyhorse_pipeline::ScheduleConfig;
use happyhorse_pipeline::{ConnectOptions, Session};
use happyhorse_pipeline::{Journal, Resolution, Stage, State, Storyboard, settle as resolve};
use happyhorse_pipeline::{RunConfig, RunOutcome, RunSummary, run};
use happyhorse_sandbox::RuntimeOptions;
use happyhorse_sandbox::SandboxPolicy;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use video_gen_tests::*;

mod clips;

type Test = Result<(), Box<dyn std::error::Error>>;

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("the file reads");
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A session against `emu`, with the test sandbox (no account budget), the component cache
/// the other integration tests use, and the poll scheduler's timings fitted to the fast
/// emulator's jobs (a fifth of a second instead of minutes).
async fn session_with(emu: &Emulator, sandbox: SandboxPolicy) -> Session {
    session_keyed(emu, sandbox, KEY).await
}

async fn session_keyed(emu: &Emulator, sandbox: SandboxPolicy, key: &str) -> Session {
    session_scheduled(emu, sandbox, key, ScheduleConfig::default()).await
}

/// A session whose scheduler uses `schedule` (scaled 100× for the emulator's short jobs).
async fn session_scheduled(
    emu: &Emulator,
    sandbox: SandboxPolicy,
    key: &str,
    schedule: ScheduleConfig,
) -> Session {
    let built = Path::new(video_gen_artifacts::HAPPYHORSE_PATH);
    Session::open(ConnectOptions {
        api_key: Some(key.into()),
        base_url: Some(emu.base_url()),
        wait_deadline: Duration::from_secs(30),
        sandbox,
        schedule: Some(schedule.scaled(100.0)),
        runtime: RuntimeOptions {
            cache_dir: built.parent().map(|dir| dir.join("cwasm")),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("the session opens")
}

async fn session(emu: &Emulator) -> Session {
    session_with(emu, test_policy()).await
}

/// Runs poll every 20 ms, put their output under `root` and keep the per-user registry of
/// submits in `root/state`.
fn config(root: &Path) -> RunConfig {
    RunConfig {
        out_root: Some(root.to_path_buf()),
        state_dir: Some(root.join("state")),
        poll_interval: Some(Duration::from_millis(20)),
        deadline: Some(Duration::from_secs(30)),
        ..Default::default()
    }
}

/// A folder holding `storyboard.toml` with `text`, and `ref.png` (a real tiny PNG).
fn storyboard_dir(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let png = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/storyboard/refs/horse.png"
    );
    std::fs::copy(png, dir.path().join("ref.png")).expect("copying the reference image");
    let path = dir.path().join("storyboard.toml");
    std::fs::write(&path, text).expect("writing the storyboard");
    (dir, path)
}

async fn run_once(path: &Path, session: &Session, config: &RunConfig) -> RunOutcome {
    let storyboard = Storyboard::load(path).expect("the storyboard reads");
    // The sender stays alive for the run: nobody presses Ctrl-C here.
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    run(&storyboard, session, config, stop)
        .await
        .expect("the run does not error")
}

fn finished(outcome: RunOutcome) -> RunSummary {
    match outcome {
        RunOutcome::Finished(summary) => summary,
        other => panic!("expected a finished run, got {other:?}"),
    }
}

fn state<'a>(summary: &'a RunSummary, name: &str) -> &'a State {
    &summary
        .rows
        .iter()
        .find(|r| r.plan.name == name)
        .unwrap_or_else(|| panic!("shot {name} is in the summary"))
        .state
}

/// Every POST to the submit endpoint.
fn submits(emu: &Emulator) -> usize {
    emu.submits_received()
}

/// Ten shots over all three modes, with a local image, defaults and overrides.
fn ten_shots() -> String {
    let mut text =
        String::from("[run]\nconcurrency = 4\n\n[defaults]\nduration = 3\nresolution = \"720p\"\n");
    for i in 1..=10 {
        let (mode, images) = match i % 3 {
            0 => ("t2v", ""),
            1 => ("i2v", "images = [\"ref.png\"]\n"),
            _ => (
                "r2v",
                "images = [\"ref.png\", \"https://images.example.com/rider.png\"]\n",
            ),
        };
        text.push_str(&format!(
            "\n[[shot]]\nname = \"shot-{i:02}\"\nmode = \"{mode}\"\nprompt = \"character1, take {i}\"\n{images}"
        ));
        if i == 10 {
            text.push_str("resolution = \"1080p\"\nduration = 4\n");
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_shots_complete_with_exactly_ten_submits_and_a_rerun_sends_nothing() -> Test {
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    let (dir, path) = storyboard_dir(&ten_shots());
    let config = config(dir.path());
    let summary = finished(run_once(&path, &session, &config).await);
    assert!(summary.complete(), "{summary:#?}");
    assert_eq!(submits(&emu), 10);
    assert_eq!(emu.jobs_created(), 10);

    // The right requests went out: i2v sent the local file inline, r2v both images in order.
    let bodies = submit_bodies(&emu);
    let i2v = bodies
        .iter()
        .find(|b| b["mode"] == "i2v")
        .expect("an i2v submit");
    assert!(
        i2v["image"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,iVBORw0KGgo")
    );
    let r2v = bodies
        .iter()
        .find(|b| b["mode"] == "r2v")
        .expect("an r2v submit");
    assert_eq!(r2v["image"][1], "https://images.example.com/rider.png");
    assert!(
        bodies
            .iter()
            .any(|b| b["resolution"] == "1080p" && b["duration"] == 4)
    );

    // Every clip on disk as journaled, once.
    let out = &summary.out_dir;
    assert_eq!(out, &dir.path().join("storyboard"));
    for row in &summary.rows {
        let State::Downloaded { files, .. } = &row.state else {
            panic!("{} is {:?}", row.plan.name, row.state)
        };
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, format!("{}.mp4", row.plan.name));
        let file = out.join(&files[0].path);
        assert_eq!(std::fs::metadata(&file)?.len(), files[0].bytes);
        assert_eq!(sha256_hex(&file), files[0].sha256);
    }
    let leftovers: Vec<_> = std::fs::read_dir(out)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part") || n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The manifest: every shot with its request, job, cost and file; never the key.
    let text = std::fs::read_to_string(out.join("manifest.json"))?;
    assert!(
        !text.contains(KEY),
        "the manifest must not contain the API key"
    );
    assert!(
        !text.contains("base64,"),
        "images are described, not inlined"
    );
    let manifest: serde_json::Value = serde_json::from_str(&text)?;
    let shots = manifest["shots"].as_array().unwrap();
    assert_eq!(shots.len(), 10);
    for shot in shots {
        assert_eq!(shot["state"], "downloaded");
        assert!(shot["job_id"].as_str().unwrap().starts_with("job_"));
        assert!(shot["cost_estimate"]["micros"].as_u64().unwrap() > 0);
        assert!(shot["request"]["prompt"].as_str().unwrap().contains("take"));
        assert!(shot["timings"]["generation_seconds"].as_f64().is_some());
    }
    assert_eq!(shots[0]["request"]["images"][0]["file"], "ref.png");
    // 9 × 3 s × $0.14 + 4 s × $0.18
    assert_eq!(
        manifest["totals"]["estimated_cost"]["micros"],
        9 * 420_000 + 720_000
    );

    // Running the same command again resumes from the journal: nothing left to do.
    let again = finished(run_once(&path, &session, &config).await);
    assert!(again.complete());
    assert_eq!(submits(&emu), 10, "a re-run must not submit again");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_storyboard_submits_nothing_and_reports_every_problem_by_shot_and_field() -> Test
{
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    let long = "x".repeat(2_501);
    let (dir, path) = storyboard_dir(&format!(
        r#"
        [defaults]
        duration = 20
        [[shot]]
        name = "fine"
        prompt = "A valid shot."
        duration = 5
        [[shot]]
        name = "too-long"
        prompt = "{long}"
        [[shot]]
        name = "lonely-i2v"
        mode = "i2v"
        prompt = "No image."
        duration = 5
        [[shot]]
        name = "typo"
        prompt = "p"
        mode = "sideways"
        duraton = 5
        images = ["missing.png"]
        [[shot]]
        prompt = "no name"
        "#
    ));
    let outcome = run_once(&path, &session, &config(dir.path())).await;
    let RunOutcome::Invalid(problems) = outcome else {
        panic!("expected the storyboard to be refused, got {outcome:?}");
    };
    let seen: Vec<(Option<&str>, &str)> = problems
        .iter()
        .map(|p| (p.shot.as_deref(), p.field.as_str()))
        .collect();
    for expected in [
        // Found by the component's validate (defaults applied: 20 s is out of range).
        (Some("\"too-long\""), "prompt"),
        (Some("\"too-long\""), "duration"),
        (Some("\"lonely-i2v\""), "image"),
        // Found while reading the storyboard.
        (Some("\"typo\""), "mode"),
        (Some("\"typo\""), "duraton"),
        (Some("\"typo\""), "images[0]"),
        // The same shot's inherited duration (20 s from [defaults]) is the component's to
        // refuse: reported in the same pass, not hidden behind the unknown field.
        (Some("\"typo\""), "duration"),
        (Some("#5"), "name"),
    ] {
        assert!(
            seen.contains(&expected),
            "{expected:?} missing from {seen:?}"
        );
    }
    assert!(!seen.iter().any(|(shot, _)| *shot == Some("\"fine\"")));
    assert!(
        emu.requests().is_empty(),
        "nothing at all may reach the API"
    );
    assert!(
        !dir.path().join("storyboard").exists(),
        "nor is anything written"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_over_budget_or_dry_submits_nothing() -> Test {
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    // 3 × 5 s × $0.14 = $2.10, over the storyboard's $2.00.
    let (dir, path) = storyboard_dir(
        "[run]\nmax_cost = 2.0\n[[shot]]\nname = \"a\"\nprompt = \"a\"\n[[shot]]\nname = \"b\"\nprompt = \"b\"\n[[shot]]\nname = \"c\"\nprompt = \"c\"\n",
    );
    match run_once(&path, &session, &config(dir.path())).await {
        RunOutcome::OverBudget { plan, max_micros } => {
            assert_eq!(plan.total_micros, 2_100_000);
            assert_eq!(max_micros, 2_000_000);
        }
        other => panic!("expected over budget, got {other:?}"),
    }
    // The command line's --max-cost wins over the storyboard's, both ways.
    let lower = RunConfig {
        max_cost_micros: Some(1_000_000),
        ..config(dir.path())
    };
    assert!(matches!(
        run_once(&path, &session, &lower).await,
        RunOutcome::OverBudget { .. }
    ));
    let dry = RunConfig {
        max_cost_micros: Some(3_000_000),
        dry_run: true,
        ..config(dir.path())
    };
    assert!(matches!(
        run_once(&path, &session, &dry).await,
        RunOutcome::DryRun(_)
    ));
    assert!(
        emu.requests().is_empty(),
        "nothing at all may reach the API"
    );
    assert!(!dir.path().join("storyboard").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_shot_is_reported_the_rest_complete_and_it_is_not_resubmitted() -> Test {
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    let (dir, path) = storyboard_dir(
        r#"
        [[shot]]
        name = "ok-1"
        prompt = "A calm lake."
        [[shot]]
        name = "doomed"
        prompt = "This one fails [emulator:fail]."
        [[shot]]
        name = "ok-2"
        prompt = "A windy field."
        "#,
    );
    let config = config(dir.path());
    let summary = finished(run_once(&path, &session, &config).await);
    assert!(!summary.complete());
    assert!(matches!(state(&summary, "ok-1"), State::Downloaded { .. }));
    assert!(matches!(state(&summary, "ok-2"), State::Downloaded { .. }));
    let State::Failed {
        job_id: Some(_),
        failure,
    } = state(&summary, "doomed")
    else {
        panic!("doomed should have failed with its job id");
    };
    assert_eq!(failure.stage, Stage::Job);
    assert_eq!(failure.code.as_deref(), Some("content_policy_violation"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary.out_dir.join("manifest.json"))?)?;
    let doomed = &manifest["shots"][1];
    assert_eq!(doomed["state"], "failed");
    assert_eq!(doomed["error"]["code"], "content_policy_violation");
    assert_eq!(manifest["totals"]["downloaded"], 2);
    assert_eq!(emu.jobs_created(), 3);

    // A job the provider failed is not retried behind the user's back (it would be billed
    // again): the re-run leaves it failed, and submits nothing.
    let again = finished(run_once(&path, &session, &config).await);
    assert!(matches!(state(&again, "doomed"), State::Failed { .. }));
    assert_eq!(submits(&emu), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_download_polls_again_for_a_fresh_url() -> Test {
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    let (dir, path) = storyboard_dir("[[shot]]\nname = \"only\"\nprompt = \"A lighthouse.\"\n");
    // The first download is refused as the CDN would refuse an expired signed URL.
    emu.push_fault(
        Route::Download,
        Fault::Status {
            status: 403,
            code: "url_expired".into(),
            message: "the signed URL has expired".into(),
            retry_after: None,
        },
    );
    let summary = finished(run_once(&path, &session, &config(dir.path())).await);
    assert!(summary.complete(), "{summary:#?}");
    let requests = emu.requests();
    let downloads: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/files/"))
        .collect();
    assert_eq!(downloads.len(), 2, "one refused, one with the fresh URL");
    assert_eq!(downloads[0].status, 403);
    assert_eq!(downloads[1].status, 200);
    // The retry's URL came from a poll made after the refused download (signed afresh; the
    // signature only differs once the expiry's second has moved on).
    let refused_at = downloads[0].at;
    assert!(
        requests
            .iter()
            .any(|r| r.path.starts_with("/v1/jobs/") && r.at > refused_at)
    );
    assert_eq!(submits(&emu), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_submit_answer_is_unknown_never_resent_and_resolved_by_hand() -> Test {
    let emu = emulator(fast()).await;
    // Each call may take 2 s: a submit whose answer hangs is cut off and its outcome unknown.
    let session = session_with(
        &emu,
        SandboxPolicy {
            call_timeout_secs: 2,
            ..test_policy()
        },
    )
    .await;
    let (dir, path) = storyboard_dir(
        "[[shot]]\nname = \"created\"\nprompt = \"Answer lost after the job was made.\"\n[[shot]]\nname = \"refused\"\nprompt = \"Answer lost, nothing made.\"\n[run]\nconcurrency = 1\n",
    );
    // Shot 1: the job is created but the answer never comes. Shot 2: a gateway error after
    // the body left (the emulator makes no job, but the client cannot know that).
    emu.push_fault(
        Route::Submit,
        Fault::ProcessThenHang(Duration::from_secs(30)),
    );
    emu.push_fault(
        Route::Submit,
        Fault::Status {
            status: 502,
            code: "bad_gateway".into(),
            message: "upstream went away".into(),
            retry_after: None,
        },
    );
    let config = config(dir.path());
    let summary = finished(run_once(&path, &session, &config).await);
    assert!(matches!(state(&summary, "created"), State::Unknown { .. }));
    assert!(matches!(state(&summary, "refused"), State::Unknown { .. }));
    assert_eq!((submits(&emu), emu.jobs_created()), (2, 1));

    // Unknown shots are reported, not resent.
    let again = finished(run_once(&path, &session, &config).await);
    assert!(matches!(state(&again, "created"), State::Unknown { .. }));
    assert_eq!(submits(&emu), 2);

    // The person looks the job up (here: the emulator's usage list) and settles both.
    let usage: serde_json::Value = serde_json::from_str(
        &reqwest::Client::new()
            .get(format!("{}/v1/account/usage", emu.base_url()))
            .bearer_auth(KEY)
            .send()
            .await?
            .text()
            .await?,
    )?;
    let job_id = usage["data"][0]["job_id"].as_str().unwrap().to_string();
    {
        let journal = Journal::open(&summary.out_dir, &session.endpoint())?;
        resolve(&journal, "created", &Resolution::JobId(job_id.clone()))?;
        resolve(
            &journal,
            "refused",
            &Resolution::Forget { pay_again: false },
        )?;
    }
    let done = finished(run_once(&path, &session, &config).await);
    assert!(done.complete(), "{done:#?}");
    let State::Downloaded { job_id: got, .. } = state(&done, "created") else {
        unreachable!()
    };
    assert_eq!(got, &job_id, "the found job was downloaded, not a new one");
    // One more submit in all: the forgotten shot's. Exactly one job per shot exists.
    assert_eq!((submits(&emu), emu.jobs_created()), (3, 2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_dies_before_sending_leaves_the_shot_retryable_not_unknown() -> Test {
    let emu = emulator(fast()).await;
    // 16 MiB is enough to validate a 3 MiB image but not to encode it into a submit.
    let session = session_with(
        &emu,
        SandboxPolicy {
            max_memory_mib: 16,
            ..test_policy()
        },
    )
    .await;
    let (dir, path) = storyboard_dir(
        "[[shot]]\nname = \"big\"\nmode = \"i2v\"\nimages = [\"big.png\"]\nprompt = \"p\"\n",
    );
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend((0..3 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    std::fs::write(dir.path().join("big.png"), png)?;
    let summary = finished(run_once(&path, &session, &config(dir.path())).await);
    let State::Failed {
        job_id: None,
        failure,
    } = state(&summary, "big")
    else {
        panic!(
            "expected a retryable failure, got {:?}",
            state(&summary, "big")
        );
    };
    assert_eq!(failure.stage, Stage::Submit);
    assert!(failure.message.contains("memory"), "{}", failure.message);
    assert_eq!(submits(&emu), 0, "the sandbox saw nothing leave");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_submitted_shot_is_refused_until_the_user_decides() -> Test {
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    let (dir, path) = storyboard_dir("[[shot]]\nname = \"a\"\nprompt = \"First idea.\"\n");
    let config = config(dir.path());
    assert!(finished(run_once(&path, &session, &config).await).complete());
    std::fs::write(&path, "[[shot]]\nname = \"a\"\nprompt = \"Second idea.\"\n")?;
    match run_once(&path, &session, &config).await {
        RunOutcome::Conflicts(c) => assert_eq!(c[0].0, "a"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(submits(&emu), 1);
    {
        let journal = Journal::open(&dir.path().join("storyboard"), &session.endpoint())?;
        // Downloaded: forgetting it pays again, so only when asked to.
        assert!(resolve(&journal, "a", &Resolution::Forget { pay_again: false }).is_err());
        resolve(&journal, "a", &Resolution::Forget { pay_again: true })?;
    }
    assert!(finished(run_once(&path, &session, &config).await).complete());
    assert_eq!(
        submits(&emu),
        2,
        "regenerated only once the user asked for it"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_example_storyboard_runs() -> Test {
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    let out = tempfile::tempdir()?;
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/storyboard/storyboard.toml"
    ));
    let summary = finished(run_once(path, &session, &config(out.path())).await);
    assert!(summary.complete(), "{summary:#?}");
    let modes: Vec<String> = submit_bodies(&emu)
        .iter()
        .map(|b| b["mode"].as_str().unwrap_or_default().to_string())
        .collect();
    for mode in ["t2v", "i2v", "r2v"] {
        assert!(
            modes.iter().any(|m| m == mode),
            "{mode} missing from {modes:?}"
        );
    }
    assert_eq!(submits(&emu), summary.rows.len());
    Ok(())
}

/// `CI` set to anything but empty, `0` or `false`.
/// The previous scheduler (a line through progress readings, kept as
/// `ScheduleConfig::learn: false`), in a whole run on linear jobs: each job is polled about
/// twice — once to read its progress, once just after the end that reading predicts — and
/// noticed ended promptly. A timer cannot do both: one fine enough for the lag polls a
/// dozen times per job, one coarse enough for the count notices ends late. (The learning
/// scheduler assumes no shape, so on jobs this regular it spends more polls for its lag
/// allowance: `BENCHMARKS.md` §5.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_polls_each_job_about_twice_and_notices_its_end_promptly() -> Test {
    let emu = emulator(EmulatorConfig {
        queued_ms: 100,
        running_ms_range: Some((600, 1_500)),
        rate_limit_per_minute: 0,
        ..EmulatorConfig::linear()
    })
    .await;
    let line = ScheduleConfig {
        learn: false,
        ..ScheduleConfig::default()
    };
    let session = session_scheduled(&emu, test_policy(), KEY, line).await;
    let mut text = String::from("[run]\nconcurrency = 12\n\n[defaults]\nduration = 3\n");
    for i in 0..12 {
        text.push_str(&format!(
            "\n[[shot]]\nname = \"shot-{i:02}\"\nprompt = \"take {i}\"\n"
        ));
    }
    let (dir, path) = storyboard_dir(&text);
    let config = RunConfig {
        poll_interval: None,
        ..config(dir.path())
    };
    let summary = finished(run_once(&path, &session, &config).await);
    assert!(summary.complete(), "{summary:#?}");

    let polls = emu
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/v1/jobs/"))
        .count();
    let per_job = polls as f64 / 12.0;
    let mut lags: Vec<Duration> = emu
        .job_timings()
        .iter()
        .map(|t| {
            let seen = t.first_seen_ended_at.expect("every job was seen ended");
            seen.saturating_sub(t.ended_at)
        })
        .collect();
    lags.sort();
    let median = lags[lags.len() / 2];
    assert!(per_job <= 4.0, "{polls} polls for 12 jobs");
    assert!(
        median <= Duration::from_millis(200),
        "median lag {median:?} ({lags:?})"
    );
    Ok(())
}

/// What finished jobs taught is kept in the journal, so the next run of the same storyboard
/// (after an interruption, in a new process) starts with the learned model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_starts_with_what_the_first_learned() -> Test {
    let emu = emulator(EmulatorConfig {
        queued_ms: 100,
        running_ms_range: Some((300, 600)),
        rate_limit_per_minute: 0,
        ..EmulatorConfig::linear()
    })
    .await;
    let mut text = String::from("[run]\nconcurrency = 6\n\n[defaults]\nduration = 3\n");
    for i in 0..6 {
        text.push_str(&format!(
            "\n[[shot]]\nname = \"shot-{i:02}\"\nprompt = \"take {i}\"\n"
        ));
    }
    let (dir, path) = storyboard_dir(&text);
    let config = config(dir.path());
    let first = session(&emu).await;
    let summary = finished(run_once(&path, &first, &config).await);
    assert!(summary.complete(), "{summary:#?}");
    assert_eq!(first.scheduler.learned_jobs(), 6);
    let learned = Journal::open(&summary.out_dir, &first.endpoint())?.learned()?;
    assert_eq!(learned.len(), 6, "every finished job is journaled");
    assert!(
        learned.iter().all(|r| r.class.key() == "3s@720p"),
        "{learned:?}"
    );
    // A new process: a scheduler that has seen nothing, until the run reads the journal.
    let second = session(&emu).await;
    assert_eq!(second.scheduler.learned_jobs(), 0);
    finished(run_once(&path, &second, &config).await);
    assert_eq!(second.scheduler.learned_jobs(), 6);
    Ok(())
}

/// Every byte of the files in `dir` (the journal, its WAL, the reports), as text.
fn everything_written(dir: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).expect("the output folder") {
        let path = entry.expect("an entry").path();
        if path.is_file() {
            all.push_str(&String::from_utf8_lossy(
                &std::fs::read(&path).expect("a file"),
            ));
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_id_that_is_a_path_or_drives_the_terminal_is_never_journaled() -> Test {
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    let (dir, path) = storyboard_dir("[[shot]]\nname = \"a\"\nprompt = \"p\"\nduration = 3\n");
    let outside = dir.path().join("outside");
    // The provider (or a plugin) answers the submit with an absolute path and an escape.
    let job_id = format!("{}\u{1b}[2J", outside.display());
    emu.push_fault(
        Route::Submit,
        Fault::Malformed(serde_json::json!({ "job_id": job_id, "status": "queued" }).to_string()),
    );
    let summary = finished(run_once(&path, &session, &config(dir.path())).await);
    match state(&summary, "a") {
        State::Unknown { failure } => {
            assert_eq!(
                failure.code.as_deref(),
                Some("invalid-job-id"),
                "{failure:?}"
            );
            assert!(!failure.message.contains('\u{1b}'), "{failure:?}");
        }
        other => panic!("expected unknown, got {other:?}"),
    }
    let polls = emu
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/jobs/"))
        .count();
    assert_eq!(polls, 0, "an unusable id was polled");
    // (SQLite's own pages may hold the byte 0x1b: look for the sequence itself.)
    assert!(!everything_written(&summary.out_dir).contains("\u{1b}[2J"));
    assert!(!dir.path().read_dir()?.any(|e| {
        e.map(|e| e.file_name().to_string_lossy().starts_with("outside"))
            .unwrap_or(false)
    }));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_shot_or_changing_its_case_does_not_pay_again() -> Test {
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    let board = |name: &str| {
        format!(
            "[defaults]\nduration = 3\n\n[[shot]]\nname = \"{name}\"\nprompt = \"a horse\"\n\
             [[shot]]\nname = \"twin-a\"\nprompt = \"the same take twice\"\n\
             [[shot]]\nname = \"twin-b\"\nprompt = \"the same take twice\"\n"
        )
    };
    let (dir, path) = storyboard_dir(&board("Clip"));
    let config = config(dir.path());
    // Two shots asking for the same thing on purpose are both generated.
    let summary = finished(run_once(&path, &session, &config).await);
    assert!(summary.complete(), "{summary:#?}");
    assert_eq!(submits(&emu), 3);

    for renamed in ["clip", "horse"] {
        std::fs::write(&path, board(renamed))?;
        match run_once(&path, &session, &config).await {
            RunOutcome::Repeats(repeats) => {
                assert_eq!(repeats.len(), 1, "{repeats:?}");
                assert_eq!(repeats[0].0, renamed);
                assert!(repeats[0].1.contains("\"Clip\""), "{repeats:?}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(submits(&emu), 3, "a renamed shot was paid for again");
    }
    // Asked explicitly, it is generated anew (and billed).
    let again = RunConfig {
        pay_again: true,
        ..config.clone()
    };
    let summary = finished(run_once(&path, &session, &again).await);
    assert!(summary.complete(), "{summary:#?}");
    assert_eq!(submits(&emu), 4);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_storyboard_into_another_output_folder_does_not_pay_again() -> Test {
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    let (dir, path) = storyboard_dir("[[shot]]\nname = \"a\"\nprompt = \"p\"\nduration = 3\n");
    let first = RunConfig {
        out_root: Some(dir.path().join("one")),
        ..config(dir.path())
    };
    let summary = finished(run_once(&path, &session, &first).await);
    assert!(summary.complete(), "{summary:#?}");
    assert_eq!(submits(&emu), 1);

    // The default folder (next to the storyboard) and an explicit other one: both are other
    // journals, and the registry knows the request was sent from the first.
    let default_root = RunConfig {
        out_root: None,
        ..first.clone()
    };
    let other_root = RunConfig {
        out_root: Some(dir.path().join("two")),
        ..first.clone()
    };
    for config in [&default_root, &other_root] {
        match run_once(&path, &session, config).await {
            RunOutcome::Repeats(repeats) => {
                assert!(repeats[0].1.contains("one"), "{repeats:?}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(submits(&emu), 1, "the same shot was paid for twice");
    let summary = finished(
        run_once(
            &path,
            &session,
            &RunConfig {
                pay_again: true,
                ..default_root.clone()
            },
        )
        .await,
    );
    assert_eq!(submits(&emu), 2);
    // Without --out-dir the output sits next to the storyboard, not in the working directory.
    assert_eq!(
        summary.out_dir,
        std::path::absolute(dir.path())?.join("out/storyboard")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_rate_card_is_refused_instead_of_wrapping_the_total() -> Test {
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    let mut text = String::from(
        "[run]\nmax_cost = 1.0\nrates = { \"720p\" = 3000000000000.0 }\n[defaults]\nduration = 3\nresolution = \"720p\"\n",
    );
    for i in 0..3 {
        text.push_str(&format!("[[shot]]\nname = \"s{i}\"\nprompt = \"p{i}\"\n"));
    }
    let (dir, path) = storyboard_dir(&text);
    match run_once(&path, &session, &config(dir.path())).await {
        RunOutcome::Invalid(problems) => {
            assert!(problems.iter().any(|p| p.field == "cost"), "{problems:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(submits(&emu), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_echoed_back_reaches_no_journal_manifest_or_page() -> Test {
    const SECRET: &str = "sk-live-ECHOED-BACK-KEY-0123456789abcdef";
    let emu = emulator(EmulatorConfig {
        api_keys: vec![SECRET.into()],
        ..fast()
    })
    .await;
    let session = session_keyed(&emu, test_policy(), SECRET).await;
    // The provider echoes the key in a refusal, returns it as a job id, and in a poll's error.
    emu.push_fault(
        Route::Submit,
        Fault::Status {
            status: 400,
            code: "invalid_request".into(),
            message: format!("bad request for key {SECRET}"),
            retry_after: None,
        },
    );
    emu.push_fault(
        Route::Submit,
        Fault::Malformed(serde_json::json!({ "job_id": SECRET, "status": "queued" }).to_string()),
    );
    emu.push_fault(
        Route::Poll,
        Fault::Status {
            status: 401,
            code: "invalid_api_key".into(),
            message: format!("key {SECRET} was revoked"),
            retry_after: None,
        },
    );
    let (dir, path) = storyboard_dir(
        "[run]\nconcurrency = 1\n[defaults]\nduration = 3\n\
         [[shot]]\nname = \"a\"\nprompt = \"pa\"\n[[shot]]\nname = \"b\"\nprompt = \"pb\"\n\
         [[shot]]\nname = \"c\"\nprompt = \"pc\"\n",
    );
    let summary = finished(run_once(&path, &session, &config(dir.path())).await);
    let written = everything_written(&summary.out_dir);
    assert!(
        written.contains("[REDACTED]"),
        "the echoes were not exercised"
    );
    assert!(
        !written.contains(SECRET),
        "the key reached the journal or a report"
    );
    assert_eq!(state(&summary, "b").name(), "unknown");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_a_submit_waits_for_its_grant_leaves_it_pending_not_unknown() -> Test {
    let emu = emulator(fast()).await;
    let session = session_with(
        &emu,
        SandboxPolicy {
            requests_per_minute: 50,
            ..test_policy()
        },
    )
    .await;
    // A `429` seen elsewhere pauses the whole budget: the scheduler lets the submit go, and
    // its grant then waits out the pause.
    session
        .sandbox
        .budget()
        .back_off(Some(Duration::from_secs(30)));
    let (dir, path) = storyboard_dir("[[shot]]\nname = \"a\"\nprompt = \"p\"\nduration = 3\n");
    let config = config(dir.path());
    let storyboard = Storyboard::load(&path)?;
    let journal = storyboard
        .output_dir(config.out_root.as_deref())
        .join("journal.sqlite");
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    // The run is dropped after a while, as a crash would end it, while the grant waits.
    let outcome = tokio::time::timeout(
        Duration::from_secs(2),
        run(&storyboard, &session, &config, stop),
    )
    .await;
    assert!(
        outcome.is_err(),
        "the run should still be waiting for its grant"
    );
    assert_eq!(submits(&emu), 0);
    let rows = Journal::open_read_only(&journal)?.shots()?;
    assert_eq!(
        rows[0].state,
        State::Pending,
        "a shot waiting for its grant was journaled as being sent"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_from_two_folders_pay_for_a_shot_once() -> Test {
    let emu = emulator(fast()).await;
    let session = session(&emu).await;
    // Run A has two shots and takes them one at a time; its first submit is held by the
    // server for a while. Meanwhile run B, from another folder, asks for A's second shot
    // alone: B's check finds nothing in the registry yet (A has not reached that shot) and
    // B submits it. When A then reaches the shot, the registry knows B sent it: A must not
    // pay for it again without --pay-again.
    let shot_a = "[[shot]]\nname = \"a\"\nprompt = \"first\"\nduration = 3\n";
    let shot_b = "[[shot]]\nname = \"b\"\nprompt = \"second\"\nduration = 3\n";
    let (dir_a, path_a) = storyboard_dir(&format!("[run]\nconcurrency = 1\n{shot_a}\n{shot_b}"));
    let (dir_b, path_b) = storyboard_dir(shot_b);
    let registry = dir_a.path().join("state");
    emu.push_fault(Route::Submit, Fault::Delay(Duration::from_secs(2)));
    let config_a = RunConfig {
        state_dir: Some(registry.clone()),
        ..config(dir_a.path())
    };
    let config_b = RunConfig {
        state_dir: Some(registry),
        ..config(dir_b.path())
    };
    let (a, b) = tokio::join!(run_once(&path_a, &session, &config_a), async {
        // B starts once A's first submit is at the server.
        while submits(&emu) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        run_once(&path_b, &session, &config_b).await
    });
    let b = finished(b);
    assert!(b.complete(), "{b:#?}");
    let a = finished(a);
    assert_eq!(state(&a, "a").name(), "downloaded", "{a:#?}");
    assert_eq!(
        submits(&emu),
        2,
        "shot \"b\" was paid for by both runs: {a:#?}"
    );
    // A left it unsent, and says why and what to do.
    assert_eq!(state(&a, "b").name(), "pending", "{a:#?}");
    assert!(
        a.errors
            .iter()
            .any(|(name, e)| name == "b" && e.contains("--pay-again")),
        "{:?}",
        a.errors
    );
    Ok(())
}
