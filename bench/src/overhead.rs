//! Figure 1: what the sandbox costs per job — one submit and one poll through the component
//! in Wasmtime, against the same two requests from a native `reqwest` client, same emulator.
//! The component variants run on the host's transport (a submit on a connection of its own,
//! polls on kept-alive connections) and, for comparison, with keep-alive off.
//!
//! The variants run interleaved in small batches, rotating which goes first, so a burst of
//! load from elsewhere on the machine (two shared cores) hits them all alike; medians are
//! compared.

use crate::common::{self, Native};
use crate::stats::{Samples, ns};
use anyhow::Result;
use happyhorse_emulator::{Emulator, EmulatorConfig};
use happyhorse_sandbox::{Runtime, RuntimeOptions};
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

/// The ratio the user's figure must stay within: the component against a keep-alive client
/// at a real service's latency. (The loopback target, 1.15×, is retired: every submit opens
/// its own connection on purpose, which loopback magnifies.)
const TARGET_RATIO: f64 = 1.02;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    /// One instance reused for every job: the cost of the calls themselves.
    ComponentReused,
    /// A fresh instance per job, as the host runs jobs: adds instantiation.
    ComponentFresh,
    /// One instance, on a runtime with keep-alive off (Wasmtime's default sender).
    ComponentNoKeepAlive,
    /// reqwest with keep-alive for both requests: what a native client gets by default.
    NativePooled,
    /// reqwest with the host's transport: the submit on a new connection, the poll kept
    /// alive.
    NativeSameTransport,
    /// reqwest with a new connection per request.
    NativeFresh,
    /// The poll alone, through the component (one instance): what a job repeats.
    ComponentPoll,
    /// The poll alone through the component with keep-alive off.
    ComponentPollNoKeepAlive,
    /// The poll alone from keep-alive reqwest.
    NativePoll,
    /// Two calls that send nothing (`validate`, `estimate-cost`): the floor of a call.
    ComponentNoNetwork,
}

impl Variant {
    const ALL: [Variant; 10] = [
        Variant::ComponentReused,
        Variant::ComponentFresh,
        Variant::ComponentNoKeepAlive,
        Variant::NativePooled,
        Variant::NativeSameTransport,
        Variant::NativeFresh,
        Variant::ComponentPoll,
        Variant::ComponentPollNoKeepAlive,
        Variant::NativePoll,
        Variant::ComponentNoNetwork,
    ];

    fn label(self) -> &'static str {
        match self {
            Variant::ComponentReused => "component, one instance reused",
            Variant::ComponentFresh => "component, fresh instance per job",
            Variant::ComponentNoKeepAlive => "component, keep-alive off",
            Variant::NativePooled => "native reqwest, keep-alive (baseline)",
            Variant::NativeSameTransport => "native reqwest, host's transport",
            Variant::NativeFresh => "native reqwest, new connection per request",
            Variant::ComponentPoll => "poll only: component",
            Variant::ComponentPollNoKeepAlive => "poll only: component, keep-alive off",
            Variant::NativePoll => "poll only: native reqwest, keep-alive",
            Variant::ComponentNoNetwork => "component, validate + estimate-cost (no I/O)",
        }
    }

    fn index(self) -> usize {
        Variant::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// Medians by variant.
struct Medians(Vec<f64>);

impl Medians {
    fn of(&self, variant: Variant) -> f64 {
        self.0[variant.index()]
    }

    fn ratio(&self, over: Variant, under: Variant) -> f64 {
        self.of(over) / self.of(under)
    }
}

/// Run the figure and print it.
pub async fn run(args: Args) -> Result<()> {
    use Variant::*;
    common::heading("1. Sandbox overhead: one submit + one poll");
    let mut options = common::runtime_options();
    if let Some(pooling) = args.pooling {
        options.pooling = pooling;
    }
    let runtimes = Runtimes {
        host: common::runtime(&options)?,
        no_keep_alive: common::runtime(&RuntimeOptions {
            keep_alive_idle: None,
            ..options.clone()
        })?,
    };
    let batch = args.batch.max(1);
    println!(
        "loopback emulator answering at once; {} iterations per variant (after {} warm-up), \
         interleaved in batches of {batch}; pooling allocator: {}; the host's transport: \
         submits on a connection of their own, polls kept alive",
        args.iterations, args.warmup, options.pooling
    );
    let mut samples = measure(
        &runtimes,
        Duration::ZERO,
        args.warmup,
        args.iterations,
        batch,
    )
    .await?;
    let medians = print_table(&mut samples);
    let ratio = medians.ratio(ComponentReused, NativePooled);
    println!(
        "figure: component (one instance) ÷ native keep-alive = {ratio:.2}× (loopback, no target: \
         the user's figure is the one with latency, below); ÷ native on the host's transport = {:.2}×; poll alone ÷ native keep-alive poll = {:.2}×; \
         keep-alive off ÷ on = {:.2}×",
        medians.ratio(ComponentReused, NativeSameTransport),
        medians.ratio(ComponentPoll, NativePoll),
        medians.ratio(ComponentNoKeepAlive, ComponentReused),
    );
    println!(
        "        per job the component adds {} over keep-alive native, {} over native on the \
         host's transport; a call that sends nothing costs {} for two",
        ns(medians.of(ComponentReused) - medians.of(NativePooled)),
        ns(medians.of(ComponentReused) - medians.of(NativeSameTransport)),
        ns(medians.of(ComponentNoNetwork)),
    );
    if args.latency_ms > 0 {
        let latency = Duration::from_millis(args.latency_ms);
        println!(
            "the same with {} ms of latency on every API answer (a nearby real service); \
             {} iterations per variant",
            args.latency_ms, args.latency_iterations
        );
        let mut samples = measure(
            &runtimes,
            latency,
            args.warmup.min(20),
            args.latency_iterations,
            batch.min(10),
        )
        .await?;
        let medians = print_table(&mut samples);
        let ratio = medians.ratio(ComponentReused, NativePooled);
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

/// The host's runtime, and the same with keep-alive off.
struct Runtimes {
    host: Runtime,
    no_keep_alive: Runtime,
}

/// Time every variant against a fresh emulator answering after `latency`.
async fn measure(
    runtimes: &Runtimes,
    latency: Duration,
    warmup: usize,
    iterations: usize,
    batch: usize,
) -> Result<Vec<Samples>> {
    let emulator = Emulator::start(EmulatorConfig {
        rate_limit_per_minute: 0,
        latency,
        ..EmulatorConfig::linear()
    })
    .await?;
    let base_url = emulator.base_url();
    let config = common::client_config(&base_url, common::default_policy());
    let request = common::t2v_of("A horse gallops along a beach at sunset.", None);
    let runtime = &runtimes.host;
    let mut reused = common::plugin(runtime, &emulator).await?;
    let mut no_keep_alive = common::plugin(&runtimes.no_keep_alive, &emulator).await?;
    // One real submit first: the native clients then send exactly the component's bytes.
    let job = common::answer("submit", reused.submit(&config, &request).await)?;
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
                    Variant::ComponentNoKeepAlive => {
                        let id = common::answer(
                            "submit",
                            no_keep_alive.submit(&config, &request).await,
                        )?;
                        common::answer("poll", no_keep_alive.poll(&config, &id).await)?;
                    }
                    Variant::NativePooled => {
                        let id = pooled.submit(&body).await?;
                        pooled.poll(&id).await?;
                    }
                    Variant::NativeSameTransport => {
                        let id = fresh.submit(&body).await?;
                        pooled.poll(&id).await?;
                    }
                    Variant::NativeFresh => {
                        let id = fresh.submit(&body).await?;
                        fresh.poll(&id).await?;
                    }
                    Variant::ComponentPoll => {
                        common::answer("poll", reused.poll(&config, &job).await)?;
                    }
                    Variant::ComponentPollNoKeepAlive => {
                        common::answer("poll", no_keep_alive.poll(&config, &job).await)?;
                    }
                    Variant::NativePoll => {
                        pooled.poll(&job).await?;
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
    drop((reused, no_keep_alive));
    emulator.shutdown().await;
    Ok(samples)
}

/// Print one row per variant; the medians.
fn print_table(samples: &mut [Samples]) -> Medians {
    let medians = Medians(samples.iter_mut().map(Samples::median).collect());
    println!(
        "{:<46} {:>10} {:>10} {:>10} {:>13} {:>15}",
        "variant", "median", "p10", "p90", "÷ keep-alive", "÷ same transp."
    );
    for (i, variant) in Variant::ALL.iter().enumerate() {
        let (keep_alive, same) = match variant {
            Variant::ComponentPoll | Variant::ComponentPollNoKeepAlive | Variant::NativePoll => {
                (Variant::NativePoll, Variant::NativePoll)
            }
            Variant::ComponentNoKeepAlive => (Variant::NativePooled, Variant::NativeFresh),
            _ => (Variant::NativePooled, Variant::NativeSameTransport),
        };
        let s = &mut samples[i];
        println!(
            "{:<46} {:>10} {:>10} {:>10} {:>12.3}× {:>14.3}×",
            variant.label(),
            ns(medians.0[i]),
            ns(s.quantile(0.1)),
            ns(s.quantile(0.9)),
            medians.0[i] / medians.of(keep_alive),
            medians.0[i] / medians.of(same),
        );
    }
    medians
}
