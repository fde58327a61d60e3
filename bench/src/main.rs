//! Benchmarks of the HappyHorse component in the Wasmtime host, against the local emulator.
//!
//! Every figure is printed next to a baseline measured in the same run, with the ratio and the
//! issue's target. Nothing here runs in CI: `cargo test` only builds this binary, so it cannot
//! rot. Run it with
//!
//! ```sh
//! cargo run --release -p video-gen-bench -- all
//! cargo run --release -p video-gen-bench -- overhead|startup|scale|size|economy [options]
//! ```
//!
//! The results and the exact commands are recorded in `BENCHMARKS.md`.

mod bound;
mod common;
mod economy;
mod lone;
mod overhead;
mod scale;
mod size;
mod startup;
mod stats;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Benchmarks of the HappyHorse component against the local emulator"
)]
struct Cli {
    #[command(subcommand)]
    figure: Figure,
}

#[derive(Subcommand)]
enum Figure {
    /// 1. Sandbox overhead: submit + poll through the component vs. a native client.
    Overhead(overhead::Args),
    /// 2. Start-up: compile, cached load, instantiate (on-demand and pooling allocators).
    Startup(startup::Args),
    /// 3. Scale: 1, 10, 100, 1000 concurrent jobs in one host, each in a fresh process.
    Scale(scale::Args),
    /// 4. Component size, where its bytes go, and the default release profile for comparison.
    Size(size::Args),
    /// 5. Polling economy: jobs per minute inside 50 requests per minute, and detection lag.
    Economy(economy::Args),
    /// 6. Lone jobs: one at a time with the budget idle, against a 5 s poller, on several worlds.
    Lone(lone::Args),
    /// Every figure with its default settings (the economy figure time-scaled: see its help).
    All,
    /// Internal: one scale measurement in this (fresh) process; prints one JSON line.
    #[command(hide = true)]
    ScaleChild(scale::ChildArgs),
    /// Internal: start-up to the first call in this (fresh) process.
    #[command(hide = true)]
    StartupChild(startup::ChildArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Two worker threads: the machine the figures are recorded on has two cores, and the
    // emulator shares them with the host under test, as it would share a small VM.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.figure {
            Figure::Overhead(args) => overhead::run(args).await,
            Figure::Startup(args) => startup::run(args).await,
            Figure::Scale(args) => scale::run(args).await,
            Figure::Size(args) => size::run(args),
            Figure::Economy(args) => economy::run(args).await,
            Figure::Lone(args) => lone::run(args).await,
            Figure::All => {
                common::machine_banner();
                overhead::run(overhead::Args::default()).await?;
                startup::run(startup::Args::default()).await?;
                scale::run(scale::Args::default()).await?;
                size::run(size::Args::default())?;
                economy::run(economy::Args::default()).await?;
                lone::run(lone::Args::default()).await
            }
            Figure::ScaleChild(args) => scale::child(args).await,
            Figure::StartupChild(args) => startup::child(args).await,
        }
    })
}
