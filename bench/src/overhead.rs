//! Figure 1: what the sandbox costs per job — one submit and one poll through the component
//! in Wasmtime, against the same two requests from a native `reqwest` client, same emulator.
//!
//! The variants run interleaved in small batches, rotating which goes first, so a burst of
//! load from elsewhere on the machine (two shared cores) hits them all alike; medians are
//! compared.

use crate::common::{self, Native};
use crate::stats::{Samples, ns};
use anyhow::Result;
use happyhorse_emulator::{Emulator, EmulatorConfig};
use host_demo::runtime::Runtime;
use std::time::{Duration, Instant};

/// Options of the overhead figure.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Measured iterations per variant.
    #[arg(long, default_value_t = 2_000)]
    pub iterations: usize,
    /// Unmeasured iterations per variant first (connection set-up, caches, allocator).
    #[arg(long, default_value_t = 200)]
    pub warmup: usize,
    /// Iterations per variant before switching to the next.
    #[arg(long, default_value_t = 20)]
    pub batch: usize,
    /// Override the host's default choice of instance allocator.
    #[arg(long)]
    pub pooling: Option<bool>,
    /// Then measure again with this much latency (ms) added to every API answer, as a real
    /// service has; 0 skips it.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Measured iterations per variant with latency.
    #[arg(long, default_value_t = 150)]
    pub latency_iterations: usize,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            iterations: 2_000,
            warmup: 200,
            batch: 20,
            pooling: None,
            latency_ms: 20,
            latency_iterations: 150,
        }
    }
}

/// The ratio the issue allows.
const TARGET_RATIO: f64 = 1.15;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    /// One instance reused for every job: the cost of the calls themselves.
    ComponentReused,
    /// A fresh instance per job, as the host runs jobs: adds instantiation.
    ComponentFresh,
    /// reqwest with keep-alive: what a native client gets by default.
    NativePooled,
    /// reqwest with a new connection per request: the component's transport, natively.
    NativeFresh,
    /// Two calls that send nothing (`validate`, `estimate-cost`): the floor of a call.
    ComponentNoNetwork,
}

impl Variant {
    const ALL: [Variant; 5] = [
        Variant::ComponentReused,
        Variant::ComponentFresh,
        Variant::NativePooled,
        Variant::NativeFresh,
        Variant::ComponentNoNetwork,
    ];

    fn label(self) -> &'static str {
        match self {
            Variant::ComponentReused => "component, one instance reused",
            Variant::ComponentFresh => "component, fresh instance per job",
            Variant::NativePooled => "native reqwest, keep-alive (baseline)",
            Variant::NativeFresh => "native reqwest, new connection per request",
            Variant::ComponentNoNetwork => "component, validate + estimate-cost (no I/O)",
        }
    }
}

/// Run the figure and print it.
pub async fn run(args: Args) -> Result<()> {
    common::heading("1. Sandbox overhead: one submit + one poll");
    let mut options = common::runtime_options();
    if let Some(pooling) = args.pooling {
        options.pooling = pooling;
    }
    let runtime = common::runtime(&options)?;
    let batch = args.batch.max(1);
    println!(
        "loopback emulator answering at once; {} iterations per variant (after {} warm-up), \
         interleaved in batches of {batch}; pooling allocator: {}",
        args.iterations, args.warmup, options.pooling
    );
    let mut samples = measure(
        &runtime,
        Duration::ZERO,
        args.warmup,
        args.iterations,
        batch,
    )
    .await?;
    let medians = print_table(&mut samples);
    let (baseline, like_for_like) = (medians[2], medians[3]);
    let ratio = medians[0] / baseline;
    println!(
        "figure: component (one instance) ÷ native keep-alive = {ratio:.2}× (target ≤ {TARGET_RATIO}×: {}); \
         ÷ native with the same new-connection transport = {:.2}×",
        common::verdict(ratio <= TARGET_RATIO),
        medians[0] / like_for_like,
    );
    println!(
        "        per job the component adds {} over keep-alive native, {} over new-connection \
         native; a call that sends nothing costs {} for two",
        ns(medians[0] - baseline),
        ns(medians[0] - like_for_like),
        ns(medians[4]),
    );
    if args.latency_ms > 0 {
        let latency = Duration::from_millis(args.latency_ms);
        println!(
            "the same with {} ms of latency on every API answer (a nearby real service); \
             {} iterations per variant",
            args.latency_ms, args.latency_iterations
        );
        let mut samples = measure(
            &runtime,
            latency,
            args.warmup.min(20),
            args.latency_iterations,
            batch.min(10),
        )
        .await?;
        let medians = print_table(&mut samples);
        let ratio = medians[0] / medians[2];
        println!(
            "figure: with {} ms latency, component (one instance) ÷ native keep-alive = {ratio:.3}× \
             (target ≤ {TARGET_RATIO}×: {})",
            args.latency_ms,
            common::verdict(ratio <= TARGET_RATIO)
        );
    }
    println!();
    Ok(())
}

/// Time every variant against a fresh emulator answering after `latency`.
async fn measure(
    runtime: &Runtime,
    latency: Duration,
    warmup: usize,
    iterations: usize,
    batch: usize,
) -> Result<Vec<Samples>> {
    let emulator = Emulator::start(EmulatorConfig {
        rate_limit_per_minute: 0,
        latency,
        ..EmulatorConfig::default()
    })
    .await?;
    let base_url = emulator.base_url();
    let config = common::client_config(&base_url, common::default_policy());
    let request = common::request("A horse gallops along a beach at sunset.", None);
    let mut reused = common::plugin(runtime, &emulator).await?;
    // One real submit first: the native clients then send exactly the component's bytes.
    common::answer("submit", reused.submit(&config, &request).await)?;
    let body = common::last_submit_body(&emulator)?;
    let pooled = Native::pooled(&base_url)?;
    let fresh = Native::fresh_connections(&base_url)?;

    let mut samples: Vec<Samples> = Variant::ALL.iter().map(|_| Samples::new()).collect();
    let total = warmup + iterations;
    let mut done = 0;
    let mut round = 0;
    while done < total {
        let n = batch.min(total - done);
        for k in 0..Variant::ALL.len() {
            let index = (k + round) % Variant::ALL.len();
            let variant = Variant::ALL[index];
            for i in 0..n {
                let start = Instant::now();
                match variant {
                    Variant::ComponentReused => {
                        let id = common::answer("submit", reused.submit(&config, &request).await)?;
                        common::answer("poll", reused.poll(&config, &id).await)?;
                    }
                    Variant::ComponentFresh => {
                        let mut plugin = common::plugin(runtime, &emulator).await?;
                        let id = common::answer("submit", plugin.submit(&config, &request).await)?;
                        common::answer("poll", plugin.poll(&config, &id).await)?;
                    }
                    Variant::NativePooled => {
                        let id = pooled.submit(&body).await?;
                        pooled.poll(&id).await?;
                    }
                    Variant::NativeFresh => {
                        let id = fresh.submit(&body).await?;
                        fresh.poll(&id).await?;
                    }
                    Variant::ComponentNoNetwork => {
                        common::answer("validate", reused.validate(&request).await)?;
                        common::answer(
                            "estimate-cost",
                            reused.estimate_cost(&request, None).await,
                        )?;
                    }
                }
                if done + i >= warmup {
                    samples[index].push(start.elapsed());
                }
            }
        }
        done += n;
        round += 1;
    }
    drop(reused);
    emulator.shutdown().await;
    Ok(samples)
}

/// Print one row per variant; the medians, in `Variant::ALL` order.
fn print_table(samples: &mut [Samples]) -> Vec<f64> {
    let medians: Vec<f64> = samples.iter_mut().map(Samples::median).collect();
    let (baseline, like_for_like) = (medians[2], medians[3]);
    println!(
        "{:<46} {:>10} {:>10} {:>10} {:>13} {:>13}",
        "variant", "median", "p10", "p90", "÷ keep-alive", "÷ new conn."
    );
    for (i, variant) in Variant::ALL.iter().enumerate() {
        let s = &mut samples[i];
        println!(
            "{:<46} {:>10} {:>10} {:>10} {:>12.3}× {:>12.3}×",
            variant.label(),
            ns(medians[i]),
            ns(s.quantile(0.1)),
            ns(s.quantile(0.9)),
            medians[i] / baseline,
            medians[i] / like_for_like,
        );
    }
    medians
}
