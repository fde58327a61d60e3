//! One job as a one-shot plan: what `host-demo generate` and `host-demo resume` run. The
//! shot goes through the same [`Runner`] as a storyboard's — the same decisions
//! ([`runner`](crate::runner)'s `step.rs`), the same scheduler, the same retries — journaled
//! in memory ([`Journal::in_memory`]): these commands leave no journal file, their job id
//! is what resumes them.
//!
//! The caller checks and prices the request first (and shows what it likes); this submits,
//! waits and downloads, and hands back how the shot ended ([`Ended`]) for the caller to word.
//!
//! Given the per-user [`Registry`], each job is recorded there too (`job_record`): before its
//! submit is sent, with its id as soon as it exists, and where it ended — so
//! `host-demo jobs` lists it, and `resume` finds the request a job was paid for. The built-in
//! emulator's jobs are recorded, marked emulated (they end with the process: `jobs` offers
//! no command for them); `resume` against it records nothing, as it knows no earlier job.

use crate::job_record::{JobRecord, Tracking};
use crate::journal::Journal;
use crate::observe::Observer;
use crate::plan::PlannedShot;
use crate::registry::{NewJob, Registry};
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
/// is journaled. With `registry`, the job is recorded there before its submit is sent (a
/// failure to record it sends nothing) and kept in step to its end.
pub async fn generate(
    session: &Session,
    request: VideoRequest,
    cost: CostEstimate,
    out_dir: &Path,
    output: Option<&str>,
    observer: &dyn Observer,
    registry: Option<&Registry>,
) -> Result<Ended> {
    let planned = planned(request, cost, output);
    let journal = Journal::in_memory(&session.endpoint())?;
    journal.reconcile(&[planned.journal_row(0)])?;
    let endpoint = session.endpoint();
    let out_dir_recorded = absolute(out_dir);
    let record = registry
        .map(|registry| {
            let job = NewJob {
                request: Some(&planned.request),
                cost: Some(&planned.cost),
                ..new_job(session, &endpoint, &out_dir_recorded, output)
            };
            JobRecord::submitting(registry, &job)
        })
        .transpose()
        .map_err(|e| e.context("recording the job in the per-user registry; nothing was sent"))?;
    let tracking = Tracking::new(record.as_ref(), &journal, SHOT);
    let ended = run(
        session,
        &journal,
        &planned,
        out_dir,
        names(output),
        observer,
        record.as_ref(),
    )
    .await;
    tracking.finish(&ended);
    ended
}

/// Pick up `job_id`, submitted earlier: wait for it until the session's deadline and download
/// its outputs into `out_dir`, named as [`generate`] names them. Nothing is submitted.
/// With `registry` (and a real endpoint), the job's row there is updated, or made; when it
/// has the request the job was paid for, the clip is checked against it.
pub async fn resume(
    session: &Session,
    job_id: &str,
    out_dir: &Path,
    output: Option<&str>,
    observer: &dyn Observer,
    registry: Option<&Registry>,
) -> Result<Ended> {
    // It names files and is sent: the caller checked it, and so does this, before either.
    check_job_id(job_id).map_err(anyhow::Error::msg)?;
    let endpoint = session.endpoint();
    let out_dir_recorded = absolute(out_dir);
    // The built-in emulator knows no job from before its process started: nothing to find.
    let (record, known) = match registry.filter(|_| !session.is_emulated()) {
        Some(registry) => {
            let job = new_job(session, &endpoint, &out_dir_recorded, output);
            match JobRecord::resumed(registry, &job, job_id) {
                Ok(found) => found,
                // Nothing is sent or paid here: the job is picked up all the same.
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "could not record the job in the per-user registry");
                    (None, None)
                }
            }
        }
        None => (None, None),
    };
    // Otherwise the request and its price are unknown here: the journal row records an
    // empty request priced at nothing, which only this process ever reads, and the clip is
    // read but compared with nothing (`unchecked`).
    let (request, cost) = known.unwrap_or_else(|| {
        let unknown = CostEstimate {
            currency: "USD".into(),
            billed_seconds: 0,
            micros_per_second: 0,
            total_micros: 0,
        };
        (VideoRequest::default(), unknown)
    });
    let planned = planned(request, cost, output);
    let journal = Journal::in_memory(&endpoint)?;
    journal.adopt(&planned.journal_row(0), job_id)?;
    let tracking = Tracking::new(record.as_ref(), &journal, SHOT);
    let ended = run(
        session,
        &journal,
        &planned,
        out_dir,
        names(output),
        observer,
        None,
    )
    .await;
    tracking.finish(&ended);
    ended
}

/// What the registry records of any one-shot job of `session` (the request and estimate
/// are the caller's to add).
fn new_job<'a>(
    session: &'a Session,
    endpoint: &'a str,
    out_dir: &'a Path,
    output: Option<&'a str>,
) -> NewJob<'a> {
    NewJob {
        endpoint,
        // A resume command names the URL the job was sent to; the emulator's dies with it.
        base_url: (!session.is_emulated()).then(|| session.base_url()),
        emulated: session.is_emulated(),
        request: None,
        cost: None,
        out_dir,
        output,
    }
}

/// `dir` made absolute, as the registry keeps it: a command printed later must find the
/// files from any working directory.
fn absolute(dir: &Path) -> std::path::PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
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

/// Drive the journaled shot through the runner, alone; `record` is told the job id the
/// moment a submit creates it.
async fn run(
    session: &Session,
    journal: &Journal,
    planned: &PlannedShot,
    out_dir: &Path,
    names: OutputNames,
    observer: &dyn Observer,
    record: Option<&JobRecord<'_>>,
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
    let runner = Runner::new(session, journal, observer, options, stop)?
        .with_output_names(names)
        .with_job_record(record);
    runner.run_one(planned).await
}
