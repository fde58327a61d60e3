//! `kill -9` the real `host-demo run` at random points — including while a submit is in
//! flight and while a clip is downloading — and run it again until it finishes, settling any
//! `unknown` shot the way a person would (`host-demo resolve`). However it was interrupted,
//! the end state must be every shot downloaded once and exactly one job created (billed) per
//! shot.
//!
//! The emulator runs in this test process; the pipeline runs as a child process talking to it
//! over `--base-url` with the emulator's key, so a SIGKILL hits it exactly as it would in
//! production. Each seed is its own test, so they run side by side.

mod common;

use common::{BIN, KEY};

use happyhorse_emulator::{Emulator, EmulatorConfig, Fault, Route};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long an injected fault holds a submit or a download open: the window to kill in.
const FAULT_WINDOW: Duration = Duration::from_millis(1500);
/// Runs before giving up on convergence.
const MAX_RUNS: usize = 16;

/// Four shots whose durations differ, so each has its own price: the provider's usage list
/// shows a job's cost but not its prompt, and the price is how a person (and this test) tells
/// which shot an orphaned job belongs to.
const STORYBOARD: &str = r#"
[run]
concurrency = 2

[[shot]]
name = "alpha"
prompt = "A horse at dawn."
duration = 3

[[shot]]
name = "bravo"
prompt = "A horse at noon."
duration = 4

[[shot]]
name = "charlie"
prompt = "A horse at dusk."
duration = 5

[[shot]]
name = "delta"
prompt = "A horse at night."
duration = 6
"#;

/// Where a run is killed.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// After this long.
    After(Duration),
    /// While a submit is held open; `created`: the job exists (its answer is what is lost).
    DuringSubmit { created: bool },
    /// While a download is held open.
    DuringDownload,
    /// Not at all: let the run finish.
    Never,
}

struct Harness {
    emu: Emulator,
    dir: tempfile::TempDir,
    storyboard: PathBuf,
    /// Extra `run` flags.
    extra: Vec<String>,
    runs: usize,
    forgotten: usize,
    last_fault_at: Option<Instant>,
}

enum Ended {
    Exited(ExitStatus),
    Killed,
}

impl Harness {
    async fn new() -> Harness {
        let emu = Emulator::start(EmulatorConfig {
            queued_ms: 100,
            running_ms: 500,
            rate_limit_per_minute: 0,
            ..EmulatorConfig::linear()
        })
        .await
        .expect("the emulator starts");
        let dir = tempfile::tempdir().expect("a temp dir");
        let storyboard = dir.path().join("crash.toml");
        std::fs::write(&storyboard, STORYBOARD).expect("writing the storyboard");
        Harness {
            emu,
            dir,
            storyboard,
            extra: Vec::new(),
            runs: 0,
            forgotten: 0,
            last_fault_at: None,
        }
    }

    fn out_root(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn out_dir(&self) -> PathBuf {
        self.out_root().join("crash")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("EMPIRIOLABS_API_KEY", KEY)
            .env(
                "RUST_LOG",
                "warn,host_demo=info,happyhorse_pipeline=info,happyhorse_sandbox=info",
            )
            // The per-user registry of submits, kept inside the test's folder.
            .env("HAPPYHORSE_STATE_DIR", self.dir.path().join("state"))
            .stdin(Stdio::null());
        cmd
    }

    /// `host-demo run` as a child process, its output in a log file per run.
    fn spawn_run(&mut self) -> Child {
        self.runs += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("run-{}.log", self.runs)))
            .expect("a log file");
        let base = self.emu.base_url();
        let root = self.out_root();
        let mut args = vec![
            "run",
            self.storyboard.to_str().unwrap(),
            "--base-url",
            &base,
            "--out-dir",
            root.to_str().unwrap(),
            "--requests-per-minute",
            "0",
            "--poll-interval-ms",
            "20",
            "--timeout-secs",
            "60",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        self.command(&args)
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .expect("host-demo starts")
    }

    /// The journal as `host-demo status --json` shows it.
    fn status(&self) -> Vec<Value> {
        let root = self.out_root();
        let out = self
            .command(&[
                "status",
                self.storyboard.to_str().unwrap(),
                "--out-dir",
                root.to_str().unwrap(),
                "--json",
            ])
            .output()
            .expect("host-demo status runs");
        if !out.status.success() {
            return Vec::new(); // no journal yet
        }
        let v: Value = serde_json::from_slice(&out.stdout).expect("status prints JSON");
        v["shots"].as_array().cloned().unwrap_or_default()
    }

    fn states(&self) -> HashMap<String, String> {
        self.status()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn resolve(&mut self, shot: &str, decision: &[&str]) {
        let root = self.out_root();
        let mut args = vec![
            "resolve",
            self.storyboard.to_str().unwrap(),
            shot,
            "--out-dir",
            root.to_str().unwrap(),
        ];
        args.extend_from_slice(decision);
        let out = self
            .command(&args)
            .output()
            .expect("host-demo resolve runs");
        assert!(
            out.status.success(),
            "resolve {shot} {decision:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("    resolved {shot} with {decision:?}");
    }

    /// Run once, killing it as `kill` says.
    async fn run_once(&mut self, kill: Kill) -> Ended {
        let seen = self.emu.requests().len();
        let kill = self.arm(kill);
        let mut child = self.spawn_run();
        let started = Instant::now();
        let ended = loop {
            if let Some(status) = child.try_wait().expect("waiting on host-demo") {
                break Ended::Exited(status);
            }
            let fire = match kill {
                Kill::After(after) => started.elapsed() >= after,
                Kill::DuringSubmit { .. } => self.fault_hit(seen, "/v1/videos/generations"),
                Kill::DuringDownload => self.fault_hit(seen, "/files/"),
                Kill::Never => false,
            };
            if fire {
                child.kill().expect("SIGKILL");
                child.wait().expect("reaping host-demo");
                break Ended::Killed;
            }
            if started.elapsed() > Duration::from_secs(90) {
                let _ = child.kill();
                panic!("host-demo run did not end:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        };
        eprintln!(
            "  run {} ({kill:?}) -> {} after {:?}",
            self.runs,
            match &ended {
                Ended::Exited(s) => s.to_string(),
                Ended::Killed => "KILLED".into(),
            },
            started.elapsed()
        );
        ended
    }

    /// Queue the fault a targeted kill waits for, when there is still work it can hit.
    fn arm(&mut self, kill: Kill) -> Kill {
        let states = self.states();
        let pending = states.is_empty() || states.values().any(|s| s == "pending");
        let undownloaded = states.is_empty() || states.values().any(|s| s != "downloaded");
        match kill {
            Kill::DuringSubmit { created } if pending => {
                let fault = if created {
                    Fault::ProcessThenHang(FAULT_WINDOW)
                } else {
                    Fault::Delay(FAULT_WINDOW)
                };
                self.emu.push_fault(Route::Submit, fault);
                self.last_fault_at = Some(Instant::now());
                kill
            }
            Kill::DuringDownload if undownloaded => {
                self.emu
                    .push_fault(Route::Download, Fault::Delay(FAULT_WINDOW));
                self.last_fault_at = Some(Instant::now());
                kill
            }
            Kill::DuringSubmit { .. } | Kill::DuringDownload => {
                Kill::After(Duration::from_millis(700))
            }
            other => other,
        }
    }

    /// Whether a request to `path` held by an injected fault arrived after request `seen`.
    fn fault_hit(&self, seen: usize, path: &str) -> bool {
        self.emu
            .requests()
            .iter()
            .skip(seen)
            .any(|r| r.path.starts_with(path) && r.fault.is_some())
    }

    /// What a person does about `unknown` shots: look the account's usage up for a job nobody
    /// has claimed, at the shot's price; attach it if there is one, forget the shot if not.
    async fn settle_unknowns(&mut self) {
        let shots = self.status();
        let unknown: Vec<&Value> = shots.iter().filter(|s| s["state"] == "unknown").collect();
        if unknown.is_empty() {
            return;
        }
        // A held request may still turn into a job until its fault window is over, and the
        // usage list shows jobs once they end: wait for both.
        if let Some(at) = self.last_fault_at {
            let until = at + FAULT_WINDOW * 3 + Duration::from_millis(300);
            if let Some(left) = until.checked_duration_since(Instant::now()) {
                tokio::time::sleep(left).await;
            }
        }
        let usage = loop {
            let usage = self.usage().await;
            if usage.len() == self.emu.jobs_created() {
                break usage;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let claimed: HashSet<&str> = shots.iter().filter_map(|s| s["job_id"].as_str()).collect();
        for shot in unknown {
            let name = shot["name"].as_str().unwrap();
            let price = shot["cost_estimate"]["micros"].as_u64().unwrap();
            let orphan = usage
                .iter()
                .find(|(job, micros)| !claimed.contains(job.as_str()) && *micros == price);
            match orphan {
                Some((job, _)) => {
                    let job = job.clone();
                    self.resolve(name, &["--job-id", &job]);
                }
                None => {
                    self.forgotten += 1;
                    self.resolve(name, &["--forget"]);
                }
            }
        }
    }

    /// The account's billed jobs: (job id, cost in micro-dollars).
    async fn usage(&self) -> Vec<(String, u64)> {
        let text = reqwest::Client::new()
            .get(format!("{}/v1/account/usage", self.emu.base_url()))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("the usage endpoint answers")
            .text()
            .await
            .expect("a usage body");
        let v: Value = serde_json::from_str(&text).expect("usage JSON");
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["job_id"].as_str().unwrap().to_string(),
                    (e["cost"]["amount"].as_f64().unwrap() * 1_000_000.0).round() as u64,
                )
            })
            .collect()
    }

    /// Run, killed as `kills` say, then unkilled, until a run exits 0.
    async fn converge(&mut self, kills: &[Kill]) {
        let mut kills = kills.iter().copied();
        for _ in 0..MAX_RUNS {
            let kill = kills.next().unwrap_or(Kill::Never);
            match self.run_once(kill).await {
                Ended::Exited(status) if status.success() => return,
                Ended::Exited(_) => self.settle_unknowns().await,
                Ended::Killed => {}
            }
        }
        panic!(
            "no run finished after {MAX_RUNS} attempts:\n{}",
            self.logs()
        );
    }

    /// The last lines of every run's log, for a failure message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for run in 1..=self.runs {
            let text = std::fs::read_to_string(self.dir.path().join(format!("run-{run}.log")))
                .unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- run {run} ---\n"));
            for line in &lines[lines.len().saturating_sub(15)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The end state: every shot downloaded once, one job per shot, nothing half-written.
    async fn assert_done(&self) {
        let shots = self.status();
        assert_eq!(shots.len(), 4);
        let out = self.out_dir();
        let mut jobs = HashSet::new();
        for shot in &shots {
            let name = shot["name"].as_str().unwrap();
            assert_eq!(shot["state"], "downloaded", "{name}: {shot:#}");
            let files = shot["files"].as_array().unwrap();
            assert_eq!(files.len(), 1, "{name} has exactly one clip");
            assert_eq!(files[0]["path"], format!("{name}.mp4"));
            let bytes = std::fs::read(out.join(format!("{name}.mp4"))).expect("the clip");
            assert_eq!(bytes.len() as u64, files[0]["bytes"].as_u64().unwrap());
            let sha: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(
                sha,
                files[0]["sha256"].as_str().unwrap(),
                "{name}'s checksum"
            );
            assert!(jobs.insert(shot["job_id"].as_str().unwrap().to_string()));
        }
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let clips: Vec<&String> = names
            .iter()
            .filter(|n| {
                !n.starts_with("journal.") && !n.ends_with(".json") && !n.ends_with(".html")
            })
            .collect();
        assert_eq!(
            clips,
            ["alpha.mp4", "bravo.mp4", "charlie.mp4", "delta.mp4"],
            "one clip per shot and nothing half-written: {names:?}"
        );
        // Billing: exactly one job per shot, and it is the one the journal holds.
        assert_eq!(self.emu.jobs_created(), 4, "one job (one bill) per shot");
        let billed: HashSet<String> = self.usage().await.into_iter().map(|(j, _)| j).collect();
        assert_eq!(billed, jobs);
        // A submit can arrive yet create nothing (held, then the client died): only a shot
        // forgotten by hand after such a loss is ever sent again.
        assert!(
            self.emu.submits_received() <= 4 + self.forgotten,
            "{} submits for 4 shots and {} forgotten",
            self.emu.submits_received(),
            self.forgotten
        );
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["totals"]["downloaded"], 4);
    }
}

/// Warm the component cache, so the first kill does not land in a compilation.
fn warm_up(h: &Harness) {
    let base = h.emu.base_url();
    let out = h
        .command(&[
            "run",
            h.storyboard.to_str().unwrap(),
            "--base-url",
            &base,
            "--dry-run",
        ])
        .output()
        .expect("host-demo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(h.emu.requests().is_empty(), "a dry run sends nothing");
}

async fn scenario(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut h = Harness::new().await;
    warm_up(&h);
    // Both targeted kills first, in either order (there is always work left for the second),
    // then kills at random moments: before, during and after submits, polls and downloads.
    let mut kills = vec![
        Kill::DuringSubmit {
            created: rng.random_bool(0.5),
        },
        Kill::DuringDownload,
    ];
    if rng.random_bool(0.5) {
        kills.swap(0, 1);
    }
    for _ in 0..3 {
        kills.push(Kill::After(Duration::from_millis(
            rng.random_range(20..1_500),
        )));
    }
    eprintln!("seed {seed}: {kills:?}");
    h.converge(&kills).await;
    h.assert_done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_seed_1_ends_downloaded_and_billed_once() {
    scenario(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_seed_2_ends_downloaded_and_billed_once() {
    scenario(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_seed_3_ends_downloaded_and_billed_once() {
    scenario(3).await;
}

/// Both kinds of lost submit, deterministically: the answer lost after the job was made
/// (resolved with its job id: no second submit), and the request held before it was
/// processed (no job: resolved by forgetting, the only resend, and it bills once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_submit_is_unknown_and_resolves_without_a_second_bill() {
    let mut h = Harness::new().await;
    warm_up(&h);
    // One shot at a time, so exactly the held submits are in flight when the kills land.
    h.extra = vec!["--concurrency".into(), "1".into()];
    assert!(matches!(
        h.run_once(Kill::DuringSubmit { created: true }).await,
        Ended::Killed
    ));
    assert!(matches!(
        h.run_once(Kill::DuringSubmit { created: false }).await,
        Ended::Killed
    ));
    // The next run finishes everything else and reports the unknown shots, sending nothing
    // for them.
    let before = h.emu.submits_received();
    let Ended::Exited(status) = h.run_once(Kill::Never).await else {
        unreachable!()
    };
    assert!(!status.success(), "unknown shots make the run fail");
    let states = h.states();
    let unknown: Vec<_> = states.iter().filter(|(_, s)| *s == "unknown").collect();
    assert_eq!(unknown.len(), 2, "{states:?}");
    assert_eq!(
        h.emu.submits_received() - before,
        2,
        "only the two never-tried shots were sent"
    );
    // One had its job made (attached by id); the other was held before processing, so no job
    // exists (unless the server processed it after the client died; then it is attached too).
    h.settle_unknowns().await;
    assert!(h.forgotten <= 1);
    h.converge(&[]).await;
    h.assert_done().await;
    assert_eq!(h.emu.submits_received(), 4 + h.forgotten);
}
