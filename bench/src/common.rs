//! Set-up shared by the figures: the runtime, plugins and configs aimed at an emulator, the
//! native baseline client, and reading the process's memory figures.

use anyhow::{Context, Result, anyhow, bail};
use happyhorse_emulator::Emulator;
use happyhorse_sandbox::api::PollPolicy;
use happyhorse_sandbox::{CallResult, Plugin};
use happyhorse_sandbox::{Runtime, RuntimeOptions};
use std::path::PathBuf;
use std::time::Duration;
pub use video_gen_tests::{KEY, client_config, options_allowing, t2v_of};

/// Where the benchmark caches precompiled components: next to the built component, so a
/// `cargo clean` clears it and a run never touches the user's own cache.
pub fn cache_dir() -> PathBuf {
    let built = std::path::Path::new(video_gen_artifacts::HAPPYHORSE_PATH);
    built
        .parent()
        .map(|dir| dir.join("bench-cwasm"))
        .unwrap_or_else(|| std::env::temp_dir().join("happyhorse-bench-cwasm"))
}

/// The host's default runtime options, with the benchmark's cache directory.
pub fn runtime_options() -> RuntimeOptions {
    RuntimeOptions {
        cache_dir: Some(cache_dir()),
        ..RuntimeOptions::default()
    }
}

/// The component in a runtime with `options` (compiled once, then loaded from the cache).
pub fn runtime(options: &RuntimeOptions) -> Result<Runtime> {
    Runtime::new(video_gen_artifacts::HAPPYHORSE, options)
}

/// A fresh plugin aimed at `emulator`.
pub async fn plugin(runtime: &Runtime, emulator: &Emulator) -> Result<Plugin> {
    runtime
        .instantiate(options_allowing(&emulator.base_url()))
        .await
}

/// The component's answer, or an error saying which call failed and why.
pub fn answer<T>(call: &str, result: CallResult<T>) -> Result<T> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(anyhow!("{call}: the component answered {error:?}")),
        Err(failure) => Err(anyhow!("{call}: {failure}")),
    }
}

/// A minimal native client of the same API, for the baselines: what a Rust user would write
/// with `reqwest` instead of the component. It sends the same bytes and reads the same fields.
pub struct Native {
    client: reqwest::Client,
    base_url: String,
}

impl Native {
    /// A client that keeps connections alive between requests (reqwest's default).
    pub fn pooled(base_url: &str) -> Result<Native> {
        Ok(Native {
            client: reqwest::Client::builder().build()?,
            base_url: base_url.to_string(),
        })
    }

    /// A client that opens a new connection for every request, as WASI-HTTP's default
    /// sender in Wasmtime does: the like-for-like transport.
    pub fn fresh_connections(base_url: &str) -> Result<Native> {
        Ok(Native {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()?,
            base_url: base_url.to_string(),
        })
    }

    /// `POST /v1/videos/generations` with `body`; the job id.
    pub async fn submit(&self, body: &[u8]) -> Result<String> {
        let response = self
            .client
            .post(format!("{}/v1/videos/generations", self.base_url))
            .bearer_auth(KEY)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await?;
        let value = json_answer("submit", response).await?;
        value["job_id"]
            .as_str()
            .map(str::to_string)
            .context("the submit answer has no job_id")
    }

    /// `GET /v1/jobs/{id}`: the status word, the progress and `completed_at`.
    pub async fn poll(&self, job_id: &str) -> Result<NativeStatus> {
        let response = self
            .client
            .get(format!("{}/v1/jobs/{job_id}", self.base_url))
            .bearer_auth(KEY)
            .header("accept", "application/json")
            .send()
            .await?;
        let value = json_answer("poll", response).await?;
        Ok(NativeStatus {
            status: value["status"]
                .as_str()
                .context("the job has no status")?
                .to_string(),
            progress: value["progress"].as_f64(),
        })
    }
}

/// What the native baseline reads from a job object.
#[derive(Debug)]
pub struct NativeStatus {
    /// The status word.
    pub status: String,
    /// Progress, 0 to 1.
    #[allow(dead_code)] // read for parity with the component's parsing, not reported
    pub progress: Option<f64>,
}

/// A native call's JSON answer, or an error naming the `call` and what the server said.
async fn json_answer(call: &str, response: reqwest::Response) -> Result<serde_json::Value> {
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        bail!(
            "{call} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// The submit body the component sends for `request`, taken from the emulator's request log
/// after one real submit, so the native baseline sends exactly the same bytes.
pub fn last_submit_body(emulator: &Emulator) -> Result<Vec<u8>> {
    let body = emulator
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "POST" && r.path == "/v1/videos/generations")
        .and_then(|r| r.body)
        .context("no submit body in the emulator's log")?;
    Ok(serde_json::to_vec(&body)?)
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`, …).
pub fn proc_status_kib(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/self/status"))
}

/// The machine, once at the top of a full run.
pub fn machine_banner() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("machine: {cores} cores, {cpu}");
    println!(
        "build: {} profile, wasmtime 48.0.8",
        if cfg!(debug_assertions) {
            "DEBUG (figures are meaningless: use --release)"
        } else {
            "release"
        }
    );
    println!();
}

/// A heading for one figure.
pub fn heading(title: &str) {
    println!("== {title} ==");
}

/// `target` met or not, as a word for the verdict column.
pub fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "NOT MET" }
}

/// The component's documented default poll policy (5 s backing off to 15 s, 15 min).
pub fn default_policy() -> PollPolicy {
    PollPolicy {
        min_interval_ms: 5_000,
        max_interval_ms: 15_000,
        deadline_ms: 15 * 60 * 1_000,
        max_retries: 4,
    }
}

/// A poll policy with every interval divided by `scale` (time runs `scale` times faster).
pub fn scaled_policy(min_ms: u32, max_ms: u32, deadline: Duration, scale: f64) -> PollPolicy {
    let s = |ms: f64| ((ms / scale).round() as u32).max(10);
    PollPolicy {
        min_interval_ms: s(f64::from(min_ms)),
        max_interval_ms: s(f64::from(max_ms)),
        deadline_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        max_retries: 4,
    }
}
