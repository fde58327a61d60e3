//! Figure 2: start-up — compiling the component from `.wasm`, loading it from the host's
//! on-disk cache of precompiled artifacts, building the runtime, and instantiating from the
//! `InstancePre`, with the on-demand and the pooling instance allocators; then a fresh process
//! from exec to its first call.

use crate::common;
use crate::stats::{Samples, ns};
use anyhow::{Context, Result, bail};
use happyhorse_sandbox::api::VideoRequest;
use happyhorse_sandbox::{Runtime, RuntimeOptions, load_component};
use std::process::Command;
use std::time::{Duration, Instant};
use wasmtime::component::Component;

/// Options of the start-up figure.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Compilations from `.wasm` to time (each takes a few hundred ms).
    #[arg(long, default_value_t = 5)]
    pub compiles: usize,
    /// Cached loads and runtime builds to time.
    #[arg(long, default_value_t = 100)]
    pub loads: usize,
    /// Instantiations to time per allocator.
    #[arg(long, default_value_t = 5_000)]
    pub instantiations: usize,
    /// Fresh processes to start.
    #[arg(long, default_value_t = 20)]
    pub processes: usize,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            compiles: 5,
            loads: 100,
            instantiations: 5_000,
            processes: 20,
        }
    }
}

/// Options of the child process.
#[derive(clap::Args, Debug, Clone)]
pub struct ChildArgs {
    /// Exit at once: the cost of starting this binary at all.
    #[arg(long)]
    noop: bool,
}

const TARGET_CACHED_LOAD_MS: f64 = 5.0;
const TARGET_INSTANTIATE_US: f64 = 50.0;

fn with_pooling(pooling: bool) -> RuntimeOptions {
    RuntimeOptions {
        pooling,
        ..common::runtime_options()
    }
}

/// Run the figure and print it.
pub async fn run(args: Args) -> Result<()> {
    common::heading("2. Start-up");
    let wasm = video_gen_artifacts::HAPPYHORSE;
    let default_pooling = RuntimeOptions::default().pooling;
    // Built once with each allocator, so the cache holds both artifacts before timing.
    let on_demand = common::runtime(&with_pooling(false))?;
    let pooled = common::runtime(&with_pooling(true))?;

    // Compilation from .wasm: the uncached path, and the baseline for the cached load.
    let mut compile = Samples::new();
    for _ in 0..args.compiles {
        let start = Instant::now();
        let component = Component::new(on_demand.engine(), wasm)?;
        compile.push(start.elapsed());
        drop(component);
    }

    // The artifact alone, from a file and from memory.
    let dir = tempfile::tempdir()?;
    let artifact = Component::new(on_demand.engine(), wasm)?.serialize()?;
    let file = dir.path().join("happyhorse.cwasm");
    std::fs::write(&file, &artifact)?;
    let mut from_file = Samples::new();
    let mut from_memory = Samples::new();
    let mut host_cache = Samples::new();
    let cache = common::cache_dir();
    for _ in 0..args.loads {
        let start = Instant::now();
        // SAFETY: written just above by `serialize` with this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize_file(on_demand.engine(), &file)? };
        from_file.push(start.elapsed());
        drop(component);
        let start = Instant::now();
        // SAFETY: as above.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(on_demand.engine(), &artifact)? };
        from_memory.push(start.elapsed());
        drop(component);
        // The host's own path: hash the wasm and the engine settings, find the file, load it.
        let start = Instant::now();
        let component = load_component(on_demand.engine(), wasm, Some(&cache))?;
        host_cache.push(start.elapsed());
        drop(component);
    }

    // The whole runtime from the cache: engine, cached load, linker, InstancePre.
    let mut runtime_new = [Samples::new(), Samples::new()];
    for _ in 0..args.loads.min(50) {
        for (slot, pooling) in [(0, false), (1, true)] {
            let options = with_pooling(pooling);
            let start = Instant::now();
            let runtime = common::runtime(&options)?;
            runtime_new[slot].push(start.elapsed());
            drop(runtime);
        }
    }

    // Address space one runtime reserves up front (the pool's slots; nothing on demand).
    let mut reserved_kib = [0u64; 2];
    for (slot, pooling) in [(0, false), (1, true)] {
        let before = common::proc_status_kib("VmSize")?;
        let runtime = common::runtime(&with_pooling(pooling))?;
        reserved_kib[slot] = common::proc_status_kib("VmSize")?.saturating_sub(before);
        anyhow::ensure!(
            runtime.pooling() == pooling,
            "the pooling allocator fell back to on-demand on this machine"
        );
        drop(runtime);
    }

    // Instantiation from the InstancePre, warm: what every job pays.
    let base_url = "http://127.0.0.1:9";
    let mut instantiate = [Samples::new(), Samples::new()];
    let mut teardown = [Samples::new(), Samples::new()];
    let warmup = args.instantiations / 10;
    for round in 0..(args.instantiations + warmup) / 100 {
        for (slot, runtime) in [(0, &on_demand), (1, &pooled)] {
            for _ in 0..100 {
                let options = common::options_allowing(base_url);
                let start = Instant::now();
                let plugin = runtime.instantiate(options).await?;
                let made = start.elapsed();
                let start = Instant::now();
                drop(plugin);
                let dropped = start.elapsed();
                if round * 100 >= warmup {
                    instantiate[slot].push(made);
                    teardown[slot].push(dropped);
                }
            }
        }
    }

    // Instantiate + the first call that needs no network.
    let request = common::t2v_of("A horse gallops along a beach at sunset.", None);
    let mut first_call = [Samples::new(), Samples::new()];
    for _ in 0..500 {
        for (slot, runtime) in [(0, &on_demand), (1, &pooled)] {
            let start = Instant::now();
            let mut plugin = runtime
                .instantiate(common::options_allowing(base_url))
                .await?;
            common::answer("validate", plugin.validate(&request).await)?;
            first_call[slot].push(start.elapsed());
        }
    }

    // Fresh processes: exec to exit, doing nothing vs. loading the runtime and calling once.
    let (noop, cold) = processes(args.processes)?;

    let mut t = Table::new();
    t.row(
        "compile from .wasm (Component::new)",
        &mut compile,
        "baseline for the cached load",
    );
    let speedup = compile.median() / from_file.median();
    t.row(
        "deserialize_file (artifact alone)",
        &mut from_file,
        &format!("{speedup:.0}× faster than compiling"),
    );
    t.row(
        "deserialize from memory",
        &mut from_memory,
        "no file read, no mmap",
    );
    let cached = host_cache.median();
    t.row(
        "host cached load (hash + lookup + deserialize)",
        &mut host_cache,
        &format!(
            "target ≤ {TARGET_CACHED_LOAD_MS} ms: {}",
            common::verdict(cached <= TARGET_CACHED_LOAD_MS * 1e6)
        ),
    );
    t.row(
        "Runtime::new from cache, on-demand",
        &mut runtime_new[0],
        "engine + cached load + linker + InstancePre",
    );
    t.row(
        "Runtime::new from cache, pooling",
        &mut runtime_new[1],
        "the same, reserving the pool",
    );
    let on_demand_median = instantiate[0].median();
    let pooling_median = instantiate[1].median();
    t.row(
        "instantiate from InstancePre, on-demand",
        &mut instantiate[0],
        &format!(
            "target ≤ {TARGET_INSTANTIATE_US} µs: {}",
            common::verdict(on_demand_median <= TARGET_INSTANTIATE_US * 1e3)
        ),
    );
    t.row(
        "instantiate from InstancePre, pooling",
        &mut instantiate[1],
        &format!(
            "{:.2}× on-demand; target: {}",
            pooling_median / on_demand_median,
            common::verdict(pooling_median <= TARGET_INSTANTIATE_US * 1e3)
        ),
    );
    t.row("drop an instance, on-demand", &mut teardown[0], "");
    t.row("drop an instance, pooling", &mut teardown[1], "");
    t.row(
        "instantiate + validate(), on-demand",
        &mut first_call[0],
        "first call, no network",
    );
    t.row("instantiate + validate(), pooling", &mut first_call[1], "");
    let mut noop = noop;
    let mut cold = cold;
    let process_baseline = noop.median();
    t.row(
        "process: exec → exit, nothing done",
        &mut noop,
        "baseline: starting this binary",
    );
    let cold_median = cold.median();
    t.row(
        "process: exec → runtime from cache → validate()",
        &mut cold,
        &format!("+{} over the baseline", ns(cold_median - process_baseline)),
    );
    t.print();
    println!(
        "address space one Runtime reserves (VmSize before → after Runtime::new): on-demand {}, \
         pooling {} ({} instances × 2 memories, {} MiB each)",
        gib(reserved_kib[0]),
        gib(reserved_kib[1]),
        RuntimeOptions::default().max_instances,
        RuntimeOptions::default().max_memory_bytes >> 20,
    );
    let faster = if pooling_median < on_demand_median {
        "pooling"
    } else {
        "on-demand"
    };
    println!(
        "figure: cached load {} (target ≤ {TARGET_CACHED_LOAD_MS} ms: {}), warm instantiate {} with {faster} \
         (target ≤ {TARGET_INSTANTIATE_US} µs: {}); RuntimeOptions::default() uses {}",
        ns(cached),
        common::verdict(cached <= TARGET_CACHED_LOAD_MS * 1e6),
        ns(pooling_median.min(on_demand_median)),
        common::verdict(pooling_median.min(on_demand_median) <= TARGET_INSTANTIATE_US * 1e3),
        if default_pooling {
            "pooling"
        } else {
            "on-demand"
        },
    );
    println!();
    Ok(())
}

/// KiB as GiB, for address-space figures.
fn gib(kib: u64) -> String {
    format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0))
}

/// Start `n` processes of each kind; the wall time from spawn to exit of each.
fn processes(n: usize) -> Result<(Samples, Samples)> {
    let exe = std::env::current_exe()?;
    let mut noop = Samples::new();
    let mut cold = Samples::new();
    for _ in 0..n {
        for (samples, extra) in [(&mut noop, Some("--noop")), (&mut cold, None)] {
            let mut command = Command::new(&exe);
            command.arg("startup-child");
            command.args(extra);
            let start = Instant::now();
            let output = command.output()?;
            let took = start.elapsed();
            if !output.status.success() {
                bail!(
                    "the start-up child failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            samples.push(took);
        }
    }
    Ok((noop, cold))
}

/// The child process: load the runtime from the cache and make one call.
pub async fn child(args: ChildArgs) -> Result<()> {
    if args.noop {
        return Ok(());
    }
    let runtime = Runtime::new(video_gen_artifacts::HAPPYHORSE, &common::runtime_options())?;
    let mut plugin = runtime
        .instantiate(common::options_allowing("http://127.0.0.1:9"))
        .await?;
    let request: VideoRequest = common::t2v_of("A horse.", None);
    common::answer("validate", plugin.validate(&request).await).context("first call")?;
    // Leave at once, as a short-lived CLI would: nothing to tear down that matters.
    tokio::time::sleep(Duration::ZERO).await;
    Ok(())
}

/// Rows of `name | median | p10 | p90 | note`.
struct Table {
    rows: Vec<[String; 5]>,
}

impl Table {
    fn new() -> Self {
        Table { rows: Vec::new() }
    }

    fn row(&mut self, name: &str, samples: &mut Samples, note: &str) {
        self.rows.push([
            name.to_string(),
            ns(samples.median()),
            ns(samples.quantile(0.1)),
            ns(samples.quantile(0.9)),
            format!("{note} (n={})", samples.len()),
        ]);
    }

    fn print(&self) {
        println!(
            "{:<48} {:>10} {:>10} {:>10}  note",
            "what", "median", "p10", "p90"
        );
        for [name, median, p10, p90, note] in &self.rows {
            println!("{name:<48} {median:>10} {p10:>10} {p90:>10}  {note}");
        }
    }
}
