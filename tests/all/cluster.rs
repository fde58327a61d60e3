//! Beyond one machine: the unchanged component as an activity on a cluster of two Obelisk nodes
//! sharing one PostgreSQL, driven by the example's batch workflow (`examples/obelisk/`).
//!
//! Each test starts its own PostgreSQL (`examples/obelisk/cluster/postgres.sh`: a private data
//! directory, a Unix socket and no TCP port, run as the unprivileged `postgres` user when the
//! tests run as root), its own nodes on free ports, and an emulator whose jobs behave like a
//! render farm's; then checks, at the emulator, what a paying user cares about: every shot
//! submitted once, no 60 s window over the account's limit, no `429`.
//!
//! Obelisk or PostgreSQL missing: the tests skip locally and fail in CI (`.ci/run` installs
//! both), as the other host tests do.

use crate::hosts::{
    Server, announce, examples, find_tool, free_port, missing_host, obelisk_deployment,
    obelisk_result, obelisk_submit, run, wait_for_http,
};
use happyhorse_emulator::{Emulator, EmulatorConfig, Fault, JobModel, RenderFarm, Route};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use video_gen_tests::*;

/// The batch workflow's pacing, compiled here natively so that its unit tests run with the
/// others, and so that the tests below check the emulator against the bound it promises.
#[allow(dead_code)]
#[path = "../../examples/obelisk/workflow/src/pacing.rs"]
mod batch_pacing;

type Test = Result<(), Box<dyn std::error::Error>>;

const BATCH_FFQN: &str = "empiriolabs:happyhorse-workflow/batch@0.3.0.run";

/// The provider's limit, which the emulator enforces by its own clock.
const ACCOUNT_LIMIT: usize = 50;

// ---- PostgreSQL ----------------------------------------------------------------------------------

/// A private PostgreSQL, started by the example's script and stopped on drop.
struct Postgres {
    dir: tempfile::TempDir,
    /// `POSTGRES_HOST` / `_USER` / `_PASSWORD` / `_DATABASE`, as the nodes read them.
    env: Vec<(String, String)>,
}

impl Postgres {
    async fn start(test: &str) -> Option<Postgres> {
        let dir = tempfile::tempdir().expect("a PostgreSQL directory");
        let mut start = Command::new("bash");
        start.arg(script()).arg("start").arg(dir.path().join("pg"));
        let started = run(start, Duration::from_secs(120)).await;
        if !started.success && started.stderr.contains("install PostgreSQL") {
            missing_host(test, "no PostgreSQL (apt-get install postgresql)");
            return None;
        }
        assert!(
            started.success,
            "starting PostgreSQL failed\n{}",
            started.describe()
        );
        let env = started
            .stdout
            .lines()
            .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>();
        assert_eq!(env.len(), 4, "{}", started.describe());
        Some(Postgres { dir, env })
    }

    fn var(&self, name: &str) -> &str {
        &self
            .env
            .iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("{name} not printed"))
            .1
    }

    /// One value from `sql`, through `psql` on the socket.
    fn query(&self, sql: &str) -> String {
        let psql = find_tool("PSQL_BIN", "psql").expect("psql comes with PostgreSQL");
        let out = Command::new(psql)
            .args(["-X", "-q", "-t", "-A", "-h"])
            .arg(self.var("POSTGRES_HOST"))
            .args(["-U", self.var("POSTGRES_USER"), "-d"])
            .arg(self.var("POSTGRES_DATABASE"))
            .arg("-c")
            .arg(sql)
            .env("PGPASSWORD", self.var("POSTGRES_PASSWORD"))
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path().join("pg"))
            .output();
    }
}

fn script() -> PathBuf {
    examples().join("obelisk/cluster/postgres.sh")
}

// ---- The cluster ---------------------------------------------------------------------------------

/// Two Obelisk nodes over one PostgreSQL: the example's deployment and node configs in a fresh
/// directory (each node's API on a free port), the built component and workflow in `wasm/`.
struct Cluster {
    obelisk: PathBuf,
    site: tempfile::TempDir,
    apis: [String; 2],
    nodes: [Option<Server>; 2],
    postgres: Postgres,
}

async fn cluster(test: &str) -> Option<Cluster> {
    let Some(obelisk) = find_tool("OBELISK_BIN", "obelisk") else {
        missing_host(test, "no obelisk (OBELISK_BIN or `obelisk` on PATH)");
        return None;
    };
    let postgres = Postgres::start(test).await?;
    let site = obelisk_deployment().await;
    let mut apis = [String::new(), String::new()];
    for (index, (api, shipped_port)) in apis.iter_mut().zip([5005, 5006]).enumerate() {
        let name = format!("node-{}.toml", index + 1);
        let shipped = std::fs::read_to_string(examples().join("obelisk/cluster").join(&name))
            .expect("the node's config");
        let port = free_port();
        let shipped_addr = format!("\"127.0.0.1:{shipped_port}\"");
        assert!(
            shipped.contains(&shipped_addr),
            "{name} listens on {shipped_addr}"
        );
        std::fs::write(
            site.path().join(&name),
            shipped.replace(&shipped_addr, &format!("\"127.0.0.1:{port}\"")),
        )
        .expect("the node's config");
        *api = format!("http://127.0.0.1:{port}");
    }
    Some(Cluster {
        obelisk,
        site,
        apis,
        nodes: [None, None],
        postgres,
    })
}

impl Cluster {
    /// Starts node `index` (0 or 1) as docs/cluster.md does: only the first with `--deployment`
    /// (each such start activates a deployment of its own in the shared database), the other
    /// picking up the active one. Returns once its API answers.
    async fn start(&mut self, index: usize, emulator: &Emulator) {
        let mut command = Command::new(&self.obelisk);
        command
            .current_dir(self.site.path())
            .args(["server", "run", "--server-config"])
            .arg(format!("node-{}.toml", index + 1))
            .env("EMPIRIOLABS_API_KEY", KEY)
            .env("EMPIRIOLABS_ALLOWED_HOST", emulator.base_url());
        if index == 0 {
            command.args(["--deployment", "deployment.toml"]);
        }
        for (name, value) in &self.postgres.env {
            command.env(name, value);
        }
        let log = self.site.path().join(format!("node-{}.log", index + 1));
        let mut server = Server::start(command, log);
        wait_for_http(
            &format!("{}/v1/executions", self.apis[index]),
            &mut server,
            Duration::from_secs(300),
        )
        .await;
        self.nodes[index] = Some(server);
    }

    /// `kill -9`: a machine lost, not a shutdown.
    fn kill(&mut self, index: usize) {
        if let Some(mut node) = self.nodes[index].take() {
            node.stop();
        }
    }

    /// Both nodes' logs, for a failure message.
    fn logs(&self) -> String {
        (0..2)
            .map(|i| {
                let log = self.site.path().join(format!("node-{}.log", i + 1));
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                format!(
                    "--- node {} (last 40 lines) ---\n{}",
                    i + 1,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `obelisk execution submit` of a batch through node `index`; its execution id.
    async fn submit(&self, index: usize, params: &serde_json::Value) -> String {
        obelisk_submit(&self.obelisk, &self.apis[index], BATCH_FFQN, params, || {
            self.logs()
        })
        .await
    }

    /// The execution's result, through node `index`'s Web API, once it has finished.
    async fn result(&self, index: usize, execution: &str, within: Duration) -> serde_json::Value {
        let text = obelisk_result(&self.apis[index], execution, within, || self.logs()).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// A batch submitted through node 0 and its result, for batches refused up front.
    async fn refused(&self, params: &serde_json::Value) -> serde_json::Value {
        let id = self.submit(0, params).await;
        self.result(0, &id, Duration::from_secs(120)).await
    }

    /// The executor holding `execution`'s lock right now, if any (Obelisk records it in
    /// `t_state` while the execution is locked).
    fn lock_holder(&self, execution: &str) -> Option<String> {
        let holder = self.postgres.query(&format!(
            "SELECT executor_id FROM t_state WHERE execution_id = '{execution}' AND state = 'locked'"
        ));
        (!holder.is_empty()).then_some(holder)
    }

    /// Waits until `execution` is locked by some node; the holder's executor id.
    async fn wait_for_lock(&self, execution: &str, within: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(holder) = self.lock_holder(execution) {
                return holder;
            }
            assert!(
                started.elapsed() < within,
                "{execution} was not locked within {within:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---- Batches and what the emulator saw -----------------------------------------------------------

/// The `batch.run` parameters: `shots` 3 s 720p shots named `shot-01`…, each prompt naming its
/// shot (so the emulator's log tells the shots apart), under `limits`.
fn batch(emulator: &Emulator, shots: usize, limits: serde_json::Value) -> serde_json::Value {
    batch_with_config(emulator, shots, limits, serde_json::Value::Null)
}

fn batch_with_config(
    emulator: &Emulator,
    shots: usize,
    limits: serde_json::Value,
    first_byte_timeout_ms: serde_json::Value,
) -> serde_json::Value {
    let shots: Vec<_> = (1..=shots)
        .map(|i| {
            serde_json::json!({
                "name": shot_name(i),
                "request": {
                    "model": null, "prompt": prompt(i), "mode": null, "images": [],
                    "aspect-ratio": null, "resolution": "720p", "duration-seconds": 3,
                    "seed": null, "watermark": null
                }
            })
        })
        .collect();
    serde_json::json!([
        {
            "base-url": emulator.base_url(), "api-key": null, "connect-timeout-ms": null,
            "first-byte-timeout-ms": first_byte_timeout_ms, "between-bytes-timeout-ms": null,
            "max-response-bytes": null, "poll": null
        },
        shots,
        limits
    ])
}

fn limits(max_cost_micros: u64, max_in_flight: u32, requests_per_minute: u32) -> serde_json::Value {
    serde_json::json!({
        "max-cost-micros": max_cost_micros,
        "max-in-flight": max_in_flight,
        "requests-per-minute": requests_per_minute
    })
}

fn shot_name(i: usize) -> String {
    format!("shot-{i:02}")
}

fn prompt(i: usize) -> String {
    format!("Shot {i:02}: a horse gallops along a beach at dawn.")
}

/// Submits that reached the emulator, per shot number: (accepted, all).
fn submits_per_shot(emulator: &Emulator, shots: usize) -> Vec<(usize, usize)> {
    let requests = emulator.requests();
    (1..=shots)
        .map(|i| {
            let mine: Vec<_> = requests
                .iter()
                .filter(|r| r.method == "POST")
                .filter(|r| {
                    r.body
                        .as_ref()
                        .and_then(|b| b["prompt"].as_str())
                        .is_some_and(|p| p == prompt(i))
                })
                .collect();
            let accepted = mine
                .iter()
                .filter(|r| (200..300).contains(&r.status))
                .count();
            (accepted, mine.len())
        })
        .collect()
}

/// Accepted submits so far.
fn accepted_submits(emulator: &Emulator) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && (200..300).contains(&r.status))
        .count()
}

/// The most `/v1/*` requests that arrived in any closed 60 s window, by the emulator's clock.
fn busiest_minute(emulator: &Emulator) -> usize {
    let mut arrivals: Vec<Duration> = emulator
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/"))
        .map(|r| r.at)
        .collect();
    arrivals.sort_unstable();
    (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|&&at| at <= arrivals[i] + Duration::from_secs(60))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// A farm whose jobs take ~10–30 s (a quarter of the default's times): realistic shapes,
/// a test that ends in minutes. The account limit is the provider's 50 a minute.
fn farm() -> EmulatorConfig {
    EmulatorConfig {
        job_model: JobModel::RenderFarm(RenderFarm {
            time_scale: 0.25,
            ..RenderFarm::default()
        }),
        ..EmulatorConfig::default()
    }
}

fn shots_of(result: &serde_json::Value) -> &Vec<serde_json::Value> {
    result["ok"]["shots"]
        .as_array()
        .unwrap_or_else(|| panic!("the batch did not succeed: {result:#}"))
}

// ---- Tests -----------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_batch_survives_the_loss_of_the_node_holding_it() -> Test {
    let test = "cluster_batch_survives_the_loss_of_the_node_holding_it";
    const SHOTS: usize = 30;
    const RPM: u32 = 45;
    let emu = emulator(farm()).await;
    let Some(mut cluster) = cluster(test).await else {
        return Ok(());
    };
    cluster.start(0, &emu).await;
    let batch_id = cluster
        .submit(0, &batch(&emu, SHOTS, limits(100_000_000, 9, RPM)))
        .await;
    // Node 1 alone runs the batch at first: its workflow executor's id tells the nodes apart.
    let node_1 = cluster
        .wait_for_lock(&batch_id, Duration::from_secs(60))
        .await;
    cluster.start(1, &emu).await;

    // Mid-way, the node holding the batch's lock at that moment dies.
    let started = Instant::now();
    while accepted_submits(&emu) < SHOTS / 2 - 3 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the batch stalled before mid-way\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Kill while the node holds the batch but runs no submit: a submit cut short is `unknown`
    // by design (the next test), and this one is about every shot completing.
    let started = Instant::now();
    let holder = loop {
        let submitting = cluster
            .postgres
            .query("SELECT count(*) FROM t_state WHERE state = 'locked' AND ffqn LIKE '%.submit'");
        if let (Some(holder), "0") = (cluster.lock_holder(&batch_id), submitting.as_str()) {
            break holder;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the batch was never locked outside a submit\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let victim = if holder == node_1 { 0 } else { 1 };
    let submitted_before = accepted_submits(&emu);
    cluster.kill(victim);
    announce(&format!(
        "{test}: killed node {} (holding the batch) after {submitted_before} of {SHOTS} submits",
        victim + 1
    ));

    let survivor = 1 - victim;
    let result = cluster
        .result(survivor, &batch_id, Duration::from_secs(900))
        .await;
    let shots = shots_of(&result);
    assert_eq!(shots.len(), SHOTS, "{result:#}");
    for (i, shot) in shots.iter().enumerate() {
        assert_eq!(shot["name"], shot_name(i + 1), "{result:#}");
        assert_eq!(shot["state"], "completed", "{shot:#}\n{}", cluster.logs());
        assert!(
            shot["outputs"][0]
                .as_str()
                .is_some_and(|u| u.starts_with(&emu.base_url())),
            "{shot:#}"
        );
    }
    // Exactly one submit per shot, accepted, whatever the crash did.
    for (i, (accepted, all)) in submits_per_shot(&emu, SHOTS).into_iter().enumerate() {
        assert_eq!(
            (accepted, all),
            (1, 1),
            "{}: accepted and all submits",
            shot_name(i + 1)
        );
    }
    assert_eq!(emu.jobs_created(), SHOTS, "one job billed per shot");
    // The budget held at the server: the batch's own bound, and so the account's.
    let busiest = busiest_minute(&emu);
    announce(&format!(
        "{test}: {} requests in all, busiest 60 s window {busiest} (batch limit {RPM}, account {ACCOUNT_LIMIT}), 429s {}",
        emu.requests().len(),
        emu.count_429()
    ));
    assert!(busiest <= RPM as usize, "{busiest} requests in one minute");
    assert_eq!(emu.count_429(), 0, "no request was refused for the rate");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_node_killed_mid_submit_leaves_the_shot_unknown_never_resubmitted() -> Test {
    let test = "cluster_node_killed_mid_submit_leaves_the_shot_unknown_never_resubmitted";
    let emu = emulator(farm()).await;
    // The first submit creates its job, then the server says nothing: the call is in flight
    // when its node dies, and the job exists (and is billed) at the provider.
    emu.push_fault(
        Route::Submit,
        Fault::ProcessThenHang(Duration::from_secs(600)),
    );
    let Some(mut cluster) = cluster(test).await else {
        return Ok(());
    };
    cluster.start(0, &emu).await;
    // A first-byte timeout longer than the test: only the node's death ends the call.
    let params = batch_with_config(&emu, 1, limits(10_000_000, 1, 45), 600_000.into());
    let batch_id = cluster.submit(0, &params).await;
    let started = Instant::now();
    while emu.jobs_created() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the submit never arrived\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Node 1 ran the submit (it was alone); node 2 joins, then node 1 dies mid-call.
    cluster.start(1, &emu).await;
    cluster.kill(0);

    // The submit activity's lock expires (120 s, `exec.lock_expiry` in deployment.toml), it is
    // not retried (`max_retries = 0`), and the shot ends unknown.
    let result = cluster.result(1, &batch_id, Duration::from_secs(600)).await;
    let shots = shots_of(&result);
    assert_eq!(shots.len(), 1, "{result:#}");
    assert_eq!(shots[0]["state"], "unknown", "{result:#}");
    let message = shots[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("usage"), "says what to check: {message}");
    assert_eq!(
        (emu.submits_received(), emu.jobs_created()),
        (1, 1),
        "one submit, its job created, never resent"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_runs_the_shipped_batch_and_refuses_bad_ones_whole() -> Test {
    let test = "cluster_runs_the_shipped_batch_and_refuses_bad_ones_whole";
    let emu = emulator(farm()).await;
    let Some(mut cluster) = cluster(test).await else {
        return Ok(());
    };
    cluster.start(0, &emu).await;

    // A gateway's 403 and a 404 on polls after the submits were accepted: a poll is a read,
    // and a shot whose job exists never ends without it, so both are polled again.
    for (status, code) in [(403, "forbidden"), (404, "job_not_found")] {
        emu.push_fault(
            Route::Poll,
            Fault::Status {
                status,
                code: code.into(),
                message: "a gateway's refusal".into(),
                retry_after: None,
            },
        );
    }
    // The batch of docs/cluster.md, as shipped (its base URL pointed at this emulator).
    let shipped = std::fs::read_to_string(examples().join("obelisk/cluster/batch.json"))?;
    let mut shipped: serde_json::Value = serde_json::from_str(&shipped)?;
    shipped[0]["base-url"] = emu.base_url().into();
    let shots = shipped[1].as_array().map_or(0, Vec::len);
    let id = cluster.submit(0, &shipped).await;
    let result = cluster.result(0, &id, Duration::from_secs(600)).await;
    assert_eq!(shots_of(&result).len(), shots, "{result:#}");
    assert!(
        shots_of(&result).iter().all(|s| s["state"] == "completed"),
        "{result:#}"
    );
    assert_eq!(emu.submits_received(), shots, "one submit per shot");

    // An invalid shot among valid ones: every invalid shot named, with its rule.
    let mut invalid = batch(&emu, 3, limits(10_000_000, 2, 45));
    invalid[1][1]["request"]["duration-seconds"] = 20.into();
    let result = cluster.refused(&invalid).await;
    let refused = &result["error"]["invalid_shots"];
    assert_eq!(refused[0]["name"], "shot-02", "{result:#}");
    assert_eq!(
        refused[0]["violations"][0]["field"], "duration",
        "{result:#}"
    );

    // Three 3 s shots at 0.14/s cost 1.26: over a 1.00 cap.
    let result = cluster
        .refused(&batch(&emu, 3, limits(1_000_000, 2, 45)))
        .await;
    assert_eq!(
        result["error"]["over_cost_cap"]["estimated_cost_micros"], 1_260_000,
        "{result:#}"
    );

    // A duplicate name, and limits that cannot hold the budget.
    let mut duplicate = batch(&emu, 2, limits(10_000_000, 2, 45));
    duplicate[1][1]["name"] = "shot-01".into();
    let result = cluster.refused(&duplicate).await;
    assert!(
        result["error"]["invalid_batch"]
            .as_str()
            .is_some_and(|m| m.contains("shot-01")),
        "{result:#}"
    );
    let result = cluster
        .refused(&batch(&emu, 2, limits(10_000_000, 10, 5)))
        .await;
    assert!(
        result["error"]["invalid_batch"]
            .as_str()
            .is_some_and(|m| m.contains("requests-per-minute")),
        "{result:#}"
    );

    assert_eq!(
        emu.submits_received(),
        shots,
        "nothing more was sent for the refused batches"
    );
    Ok(())
}

/// Two batches of `SHOTS` shots started at once through different nodes, each allowed
/// `rpm` requests a minute: what the emulator saw (busiest window, 429s, shots completed).
async fn two_batches_at_once(test: &str, rpm: u32) -> Option<(usize, usize, usize)> {
    const SHOTS: usize = 12;
    let emu = emulator(farm()).await;
    let mut cluster = cluster(test).await?;
    cluster.start(0, &emu).await;
    cluster.start(1, &emu).await;
    let params = batch(&emu, SHOTS, limits(100_000_000, 6, rpm));
    // The second batch's shots must differ from the first's (prompts name the shots).
    let mut second = params.clone();
    for shot in second[1].as_array_mut().expect("shots") {
        let prompt = shot["request"]["prompt"]
            .as_str()
            .expect("a prompt")
            .to_string();
        shot["request"]["prompt"] = format!("{prompt} (second batch)").into();
    }
    let first = cluster.submit(0, &params).await;
    let second = cluster.submit(1, &second).await;
    let mut completed = 0;
    for (node, id) in [(0, first), (1, second)] {
        let result = cluster.result(node, &id, Duration::from_secs(900)).await;
        completed += shots_of(&result)
            .iter()
            .filter(|s| s["state"] == "completed")
            .count();
    }
    // However the budget went, every shot of both batches was submitted once.
    let requests = emu.requests();
    let submits: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
    let accepted = |r: &&&happyhorse_emulator::RequestRecord| (200..300).contains(&r.status);
    for batch in 0..2 {
        for i in 1..=SHOTS {
            let prompt = match batch {
                0 => prompt(i),
                _ => format!("{} (second batch)", prompt(i)),
            };
            let mine = submits.iter().filter(|r| {
                r.body.as_ref().and_then(|b| b["prompt"].as_str()) == Some(prompt.as_str())
            });
            assert_eq!(
                mine.filter(accepted).count(),
                1,
                "{prompt}: one accepted submit"
            );
        }
    }
    let busiest = busiest_minute(&emu);
    announce(&format!(
        "{test}: two batches of {SHOTS} at {rpm} requests/min each: {} requests, busiest 60 s \
         window {busiest}, 429s {}, shots completed {completed} of {}",
        emu.requests().len(),
        emu.count_429(),
        2 * SHOTS
    ));
    Some((busiest, emu.count_429(), completed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_two_batches_splitting_the_budget_stay_inside_it() -> Test {
    let test = "cluster_two_batches_splitting_the_budget_stay_inside_it";
    // The rule of docs/cluster.md for two batches at once: split the account's budget between them.
    let Some((busiest, refused, completed)) = two_batches_at_once(test, 22).await else {
        return Ok(());
    };
    assert!(busiest <= 44, "{busiest} requests in one minute");
    assert_eq!(refused, 0, "no 429");
    assert_eq!(completed, 24, "every shot completed");
    Ok(())
}

/// A measurement, not a check (run it by hand with `--ignored`; docs/cluster.md
/// records its figures): two batches that each claim the whole budget. Each keeps its own
/// promise, so together they send up to twice the account's limit; the provider answers the
/// excess `429`, which costs retries and time but never a second job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for docs/cluster.md, not a check"]
async fn cluster_two_batches_each_claiming_the_whole_budget() -> Test {
    let test = "cluster_two_batches_each_claiming_the_whole_budget";
    two_batches_at_once(test, 45).await;
    Ok(())
}
