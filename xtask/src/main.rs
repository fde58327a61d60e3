//! `cargo xtask`: the release tasks of the HappyHorse component (the cargo-xtask convention).
//!
//! - `cargo xtask dist` writes `dist/`: the component `.wasm` (the bytes the tests load), the
//!   WIT packages encoded as `.wasm`, the Python wheel and the npm tarball built around that
//!   component, `release.json` and `SHA256SUMS`.
//! - `cargo xtask publish --registry HOST:PORT` pushes the component to an OCI registry in the
//!   wasm artifact layout, verifies it by pulling it back, and prints its digest.
//!
//! Exit codes: 0 done; 1 the task failed (a registry that cannot be reached or refuses, a file
//! that cannot be written); 2 refused before anything was written or sent (a bad reference, a
//! dirty tree for `publish`, an output folder that is not ours).

mod dist;
mod packages;
mod publish;
mod release;
mod source;
mod wit_packages;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Release tasks: build the release files, publish the component.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Write the release files into a folder (default: dist/ at the workspace root).
    Dist {
        /// The folder to write. An existing one is replaced only if it is empty or an earlier
        /// `dist` (it holds `release.json`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Push the component to an OCI registry, tagged with its version.
    Publish(publish::PublishArgs),
}

/// A failure, and whether it came before anything was written or sent.
#[derive(Debug)]
pub enum Failure {
    /// Refused before anything was written or sent (exit 2).
    Refused(anyhow::Error),
    /// The task started and failed (exit 1).
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Failed(error)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.task {
        Task::Dist { out } => dist::run(out),
        Task::Publish(args) => publish::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// The product's workspace root (this crate lives in `xtask/` under it).
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}
