//! Figure 3: scale in one host — N concurrent jobs, each in its own instance, against an
//! emulator with fast jobs: wall time, jobs/s, the host's peak RSS and RSS per in-flight job.
//!
//! Each N runs in a fresh process of this binary (the emulator stays in the parent), so the
//! child's peak RSS (`VmHWM`) is the host's alone and starts clean. The same jobs driven by a
//! native `reqwest` client, also in a fresh process, are the baseline.

use crate::common::{self, Native};
use crate::stats::kib;
use anyhow::{Context, Result, bail};
use happyhorse_emulator::{Emulator, EmulatorConfig};
use happyhorse_sandbox::RuntimeOptions;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Options of the scale figure.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Numbers of concurrent jobs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    pub jobs: Vec<usize>,
    /// How long each emulated job stays queued, ms.
    #[arg(long, default_value_t = 500)]
    pub queued_ms: u64,
    /// How long each emulated job then runs, ms.
    #[arg(long, default_value_t = 3_000)]
    pub running_ms: u64,
    /// Also measure with the allocator the default does not use.
    #[arg(long)]
    pub both_allocators: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            jobs: vec![1, 10, 100, 1_000],
            queued_ms: 500,
            running_ms: 3_000,
            both_allocators: true,
        }
    }
}

/// Options of one child measurement.
#[derive(clap::Args, Debug, Clone)]
pub struct ChildArgs {
    /// Concurrent jobs.
    #[arg(long)]
    n: usize,
    /// The emulator's base URL.
    #[arg(long)]
    base_url: String,
    /// `component` or `native`.
    #[arg(long)]
    mode: String,
    /// Use the pooling allocator (component mode).
    #[arg(long)]
    pooling: Option<bool>,
}

const TARGET_MIB_AT_1000: f64 = 256.0;

/// Run the figure and print it.
pub async fn run(args: Args) -> Result<()> {
    common::heading("3. Scale in one host: N concurrent jobs, each its own instance");
    let emulator = Emulator::start(EmulatorConfig {
        queued_ms: args.queued_ms,
        running_ms: args.running_ms,
        rate_limit_per_minute: 0,
        // A thousand jobs connect at once (the host opens a connection per request).
        listen_backlog: 4_096,
        ..EmulatorConfig::linear()
    })
    .await?;
    let default_pooling = RuntimeOptions::default().pooling;
    // Make sure the cache holds the artifact before children time anything.
    drop(common::runtime(&common::runtime_options())?);
    drop(common::runtime(&RuntimeOptions {
        pooling: !default_pooling,
        ..common::runtime_options()
    })?);

    let mut modes = vec![("component", Some(default_pooling))];
    if args.both_allocators {
        modes.push(("component", Some(!default_pooling)));
    }
    modes.push(("native", None));
    println!(
        "emulated jobs: {} ms queued + {} ms running, polled by `wait` every 250–1000 ms; \
         emulator in the parent process, each row a fresh child process",
        args.queued_ms, args.running_ms
    );
    println!(
        "{:<26} {:>6} {:>9} {:>8} {:>9} {:>17} {:>10} {:>10} {:>13} {:>6}",
        "host",
        "N",
        "wall",
        "jobs/s",
        "in flight",
        "submit p50/p99",
        "RSS before",
        "peak RSS",
        "RSS/in-flight",
        "errors"
    );
    let mut at_1000: Vec<(String, f64)> = Vec::new();
    for &n in &args.jobs {
        for (mode, pooling) in &modes {
            let result = spawn_child(n, &emulator.base_url(), mode, *pooling).await?;
            let label = match (mode, pooling) {
                (_, Some(true)) => "component, pooling".to_string(),
                (_, Some(false)) => "component, on-demand".to_string(),
                _ => "native reqwest (baseline)".to_string(),
            };
            let f = |k: &str| result[k].as_f64().unwrap_or(f64::NAN);
            let (wall, before, peak, in_flight) = (
                f("wall_ms"),
                f("rss_before_kib"),
                f("peak_rss_kib"),
                f("peak_in_flight"),
            );
            let per_job = (peak - before) / in_flight.max(1.0);
            println!(
                "{:<26} {:>6} {:>7.0}ms {:>8.1} {:>9} {:>17} {:>10} {:>10} {:>13} {:>6}",
                label,
                n,
                wall,
                n as f64 / (wall / 1e3),
                in_flight,
                format!("{:.0}/{:.0} ms", f("submit_p50_ms"), f("submit_p99_ms")),
                kib(before),
                kib(peak),
                kib(per_job),
                f("errors"),
            );
            if n == 1_000 {
                at_1000.push((label, peak / 1024.0));
            }
        }
    }
    for (label, mib) in &at_1000 {
        println!(
            "figure: 1,000 in flight, {label}: peak RSS {mib:.1} MiB (target ≤ {TARGET_MIB_AT_1000} MiB: {})",
            common::verdict(*mib <= TARGET_MIB_AT_1000)
        );
    }
    println!();
    emulator.shutdown().await;
    Ok(())
}

async fn spawn_child(n: usize, base_url: &str, mode: &str, pooling: Option<bool>) -> Result<Value> {
    let exe = std::env::current_exe()?;
    let mut command = std::process::Command::new(exe);
    command.args([
        "scale-child",
        "--n",
        &n.to_string(),
        "--base-url",
        base_url,
        "--mode",
        mode,
    ]);
    if let Some(p) = pooling {
        command.args(["--pooling", &p.to_string()]);
    }
    // The emulator in this process must keep serving while the child runs: the wait happens
    // on a blocking thread, not on a runtime worker.
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    if !output.status.success() {
        bail!(
            "the scale child (n={n}, {mode}) failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if !output.stderr.is_empty() {
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8(output.stdout)?;
    let line = stdout
        .lines()
        .last()
        .context("the scale child printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

/// Tracks how many jobs are in flight and the most there ever were.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn up(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn down(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs one job, printing and counting its failure.
async fn counted(errors: Arc<AtomicUsize>, job: impl Future<Output = Result<()>>) {
    if let Err(e) = job.await {
        eprintln!("{e:#}");
        errors.fetch_add(1, Ordering::SeqCst);
    }
}

/// Notes how long a job took from its start to its submit's answer, ms.
fn note_submit(submit_ms: &std::sync::Mutex<Vec<f64>>, began: Instant) {
    if let Ok(mut v) = submit_ms.lock() {
        v.push(began.elapsed().as_secs_f64() * 1e3);
    }
}

/// One measurement in this fresh process; prints one JSON line.
pub async fn child(args: ChildArgs) -> Result<()> {
    let gauge = Arc::new(Gauge::default());
    // How long each job's instantiate + submit took: what queues up when many start at once.
    let submit_ms = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(args.n);
    // Polls every 250 ms to 1 s (the component's `next-poll-ms` over its policy).
    let poll = happyhorse_sandbox::api::PollPolicy {
        min_interval_ms: 250,
        max_interval_ms: 1_000,
        deadline_ms: 120_000,
        max_retries: 4,
    };
    let config = Arc::new(common::client_config(&args.base_url, poll));
    let request = Arc::new(common::t2v_of("A horse gallops along a beach.", None));
    let (rss_before, start) = match args.mode.as_str() {
        "component" => {
            let options = RuntimeOptions {
                pooling: args.pooling.unwrap_or(RuntimeOptions::default().pooling),
                ..common::runtime_options()
            };
            let runtime = Arc::new(common::runtime(&options)?);
            let rss_before = common::proc_status_kib("VmRSS")?;
            let start = Instant::now();
            for _ in 0..args.n {
                let (runtime, gauge, errors) = (runtime.clone(), gauge.clone(), errors.clone());
                let submit_ms = submit_ms.clone();
                // Its own policy: clones of one share their counters and concurrency cap.
                let options = common::options_allowing(&args.base_url);
                let (config, request) = (config.clone(), request.clone());
                tasks.push(tokio::spawn(counted(errors, async move {
                    let began = Instant::now();
                    let mut plugin = runtime.instantiate(options).await?;
                    gauge.up();
                    let id = common::answer("submit", plugin.submit(&config, &request).await)?;
                    note_submit(&submit_ms, began);
                    common::answer("wait", plugin.wait(&config, &id).await)?;
                    gauge.down();
                    Ok(())
                })));
            }
            (rss_before, start)
        }
        "native" => {
            let native = Arc::new(Native::pooled(&args.base_url)?);
            let body = Arc::new(serde_json::to_vec(&json!({
                "model": "happyhorse-1-1",
                "prompt": "A horse gallops along a beach.",
                "mode": "auto",
                "aspect_ratio": "16:9",
                "resolution": "720p",
                "duration": 5,
                "watermark": false,
            }))?);
            let rss_before = common::proc_status_kib("VmRSS")?;
            let start = Instant::now();
            for _ in 0..args.n {
                let (native, body, gauge, errors) =
                    (native.clone(), body.clone(), gauge.clone(), errors.clone());
                let submit_ms = submit_ms.clone();
                tasks.push(tokio::spawn(counted(errors, async move {
                    let began = Instant::now();
                    gauge.up();
                    let id = native.submit(&body).await?;
                    note_submit(&submit_ms, began);
                    // The same schedule as the component's: from 250 ms, growing to 1 s.
                    let mut delay = Duration::from_millis(250);
                    loop {
                        tokio::time::sleep(delay).await;
                        let status = native.poll(&id).await?;
                        if status.status == "completed" {
                            break;
                        }
                        delay = (delay * 2).min(Duration::from_secs(1));
                    }
                    gauge.down();
                    Ok(())
                })));
            }
            (rss_before, start)
        }
        other => bail!("unknown mode {other}"),
    };
    for task in tasks {
        task.await?;
    }
    let wall = start.elapsed();
    let mut submits = crate::stats::Samples::new();
    for ms in submit_ms
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
    {
        submits.push_value(*ms);
    }
    let result = json!({
        "n": args.n,
        "wall_ms": wall.as_secs_f64() * 1e3,
        "rss_before_kib": rss_before,
        "peak_rss_kib": common::proc_status_kib("VmHWM")?,
        "peak_in_flight": gauge.peak.load(Ordering::SeqCst),
        "vm_peak_kib": common::proc_status_kib("VmPeak")?,
        "submit_p50_ms": submits.median(),
        "submit_p99_ms": submits.quantile(0.99),
        "errors": errors.load(Ordering::SeqCst),
    });
    println!("{result}");
    Ok(())
}
