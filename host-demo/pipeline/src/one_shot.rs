//! One job as a one-shot plan: what `host-demo generate` and `host-demo resume` run. The
//! shot goes through the same [`Runner`] as a storyboard's — the same decisions
//! ([`runner`](crate::runner)'s `step.rs`), the same scheduler, the same retries — journaled
//! in memory ([`Journal::in_memory`]): these commands leave no journal file, their job id
//! is what resumes them.
//!
//! The caller checks and prices the request first (and shows what it likes); this submits,
//! waits and downloads, and hands back how the shot ended ([`Ended`]) for the caller to word.

use crate::journal::Journal;
use crate::observe::Observer;
use crate::plan::PlannedShot;
use crate::runner::{Ended, OutputNames, Runner, RunnerOptions};
use crate::session::Session;
use crate::storyboard::Shot;
use crate::untrusted::check_job_id;
use anyhow::Result;
use happyhorse_sandbox::api::{CostEstimate, VideoRequest};
use std::path::Path;
use tokio::sync::watch;

/// The one shot's name: what the observer is told about. Its files are named by the job
/// ([`OutputNames::Job`]) or by the caller's output name, never by this.
pub const SHOT: &str = "job";

/// Submit `request` (validated, as `validate` returned it) priced at `cost`, wait for its
/// job until the session's deadline and download its outputs into `out_dir` as
/// `<job id>-<i>`, or as `<output>` (`<output>-<n>` for several) when `output` names them
/// (checked by the caller with [`output_name_problem`](crate::output_name_problem) and
/// [`taken_by_output`](crate::taken_by_output)). `observer` is told the job id as soon as it
/// is journaled.
pub async fn generate(
    session: &Session,
    request: VideoRequest,
    cost: CostEstimate,
    out_dir: &Path,
    output: Option<&str>,
    observer: &dyn Observer,
) -> Result<Ended> {
    let planned = planned(request, cost, output);
    let journal = Journal::in_memory(&session.endpoint())?;
    journal.reconcile(&[planned.journal_row(0)])?;
    run(
        session,
        &journal,
        &planned,
        out_dir,
        names(output),
        observer,
    )
    .await
}

/// Pick up `job_id`, submitted earlier: wait for it until the session's deadline and download
/// its outputs into `out_dir`, named as [`generate`] names them. Nothing is submitted.
pub async fn resume(
    session: &Session,
    job_id: &str,
    out_dir: &Path,
    output: Option<&str>,
    observer: &dyn Observer,
) -> Result<Ended> {
    // It names files and is sent: the caller checked it, and so does this, before either.
    check_job_id(job_id).map_err(anyhow::Error::msg)?;
    // The request and its price are the earlier run's, unknown here: the journal row
    // records an empty request priced at nothing, which only this process ever reads.
    let unknown = CostEstimate {
        currency: "USD".into(),
        billed_seconds: 0,
        micros_per_second: 0,
        total_micros: 0,
    };
    let planned = planned(VideoRequest::default(), unknown, output);
    let journal = Journal::in_memory(&session.endpoint())?;
    journal.adopt(&planned.journal_row(0), job_id)?;
    run(
        session,
        &journal,
        &planned,
        out_dir,
        names(output),
        observer,
    )
    .await
}

/// How the one shot's files are named: by the job, unless the caller named them.
fn names(output: Option<&str>) -> OutputNames {
    if output.is_some() {
        OutputNames::Shot
    } else {
        OutputNames::Job
    }
}

/// The one-shot plan's shot; its files are named after `output` when given.
fn planned(request: VideoRequest, cost: CostEstimate, output: Option<&str>) -> PlannedShot {
    PlannedShot {
        shot: Shot {
            name: SHOT.into(),
            output: output.unwrap_or(SHOT).into(),
            request: request.clone(),
            // Recorded only in the in-memory journal, which nothing else reads.
            images: vec![],
        },
        request,
        warnings: vec![],
        cost,
    }
}

/// Drive the journaled shot through the runner, alone.
async fn run(
    session: &Session,
    journal: &Journal,
    planned: &PlannedShot,
    out_dir: &Path,
    names: OutputNames,
    observer: &dyn Observer,
) -> Result<Ended> {
    let options = RunnerOptions {
        concurrency: 1,
        poll_interval: None,
        deadline: session.wait_deadline(),
        out_dir: out_dir.to_path_buf(),
    };
    // Nobody tells a one-shot plan to stop: Ctrl-C ends the process, and the job id it
    // printed resumes the job.
    let (_, stop) = watch::channel(false);
    let runner = Runner::new(session, journal, observer, options, stop)?.with_output_names(names);
    runner.run_one(planned).await
}
