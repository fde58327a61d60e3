//! A batch of shots: validated and priced first, then one child execution per shot, at most
//! `max-in-flight` at once, paced inside `requests-per-minute` (see [`crate::pacing`]).

use std::collections::{HashMap, HashSet};

use crate::empiriolabs::happyhorse_workflow_obelisk_ext::shot as shot_ext;
use crate::exports::empiriolabs::happyhorse_workflow::batch::{
    BatchError, BatchLimits, BatchReport, CostOverCap, Shot, ShotRefusal, ShotReport, ShotState,
};
use crate::job;
use crate::obelisk::workflow::workflow_support;
use crate::pacing::{self, BatchPacing};
use crate::shot::one_request_per_call;
use crate::videogen::api::video_gen::{ClientConfig, Error, JobResult};
use crate::videogen::api_obelisk_ext::video_gen as activity_ext;

/// `batch.run`: see the WIT.
pub fn run(
    config: ClientConfig,
    shots: Vec<Shot>,
    limits: BatchLimits,
) -> Result<BatchReport, BatchError> {
    check_names(&shots).map_err(BatchError::InvalidBatch)?;
    if config.api_key.is_some() {
        return Err(BatchError::InvalidBatch(
            "client-config.api-key is set: a batch's parameters are stored in Obelisk's \
             database (and copied to every shot), so the key must come from the deployment's \
             secret; leave api-key null"
                .into(),
        ));
    }
    let pacing = pacing::plan(
        shots.len(),
        limits.max_in_flight,
        limits.requests_per_minute,
    )
    .map_err(BatchError::InvalidBatch)?;
    check_deadline(&config, pacing)?;
    let estimated_cost_micros = price(&shots)?;
    if estimated_cost_micros > limits.max_cost_micros {
        return Err(BatchError::OverCostCap(CostOverCap {
            estimated_cost_micros,
            max_cost_micros: limits.max_cost_micros,
        }));
    }
    let reports = run_shots(&one_request_per_call(config), &shots, pacing)?;
    Ok(BatchReport {
        estimated_cost_micros,
        shots: reports,
    })
}

/// A shot sleeps a spacing before its submit and another before its first poll: a deadline
/// shorter than a few spacings would end shots before they could finish.
fn check_deadline(config: &ClientConfig, pacing: BatchPacing) -> Result<(), BatchError> {
    let deadline_ms = job::poll_policy(config).deadline_ms;
    let least_ms = pacing.spacing_ms.saturating_mul(4);
    if deadline_ms < least_ms {
        return Err(BatchError::InvalidBatch(format!(
            "poll.deadline-ms ({deadline_ms}) is too short for this pacing: each shot waits \
             {} ms between requests, so allow at least {least_ms} ms",
            pacing.spacing_ms
        )));
    }
    Ok(())
}

/// Every shot named, no name twice: reports and people refer to shots by name.
fn check_names(shots: &[Shot]) -> Result<(), String> {
    if shots.is_empty() {
        return Err("the batch has no shots".into());
    }
    let mut seen = HashSet::new();
    for (index, shot) in shots.iter().enumerate() {
        if shot.name.trim().is_empty() {
            return Err(format!("shot {} has an empty name", index + 1));
        }
        if !seen.insert(shot.name.as_str()) {
            return Err(format!("two shots are named {:?}", shot.name));
        }
    }
    Ok(())
}

/// How many times a shot's `estimate-cost` is asked again when its activity was cut short (a
/// node died while pricing): pricing sends nothing, so asking again is free.
const PRICE_ATTEMPTS: u32 = 3;

/// The estimated total of every shot, through the component's own rules (`estimate-cost`
/// validates first); every invalid shot at once if any. No network: the activity prices
/// locally. All shots are priced at once, as child executions of one join set.
fn price(shots: &[Shot]) -> Result<u64, BatchError> {
    let set = workflow_support::join_set_create();
    let mut index_of = HashMap::new();
    let mut attempts = vec![1u32; shots.len()];
    for (index, shot) in shots.iter().enumerate() {
        let child = activity_ext::estimate_cost_submit(&set, &shot.request, None);
        index_of.insert(child.id, index);
    }
    let mut costs = vec![None; shots.len()];
    let mut refusals = Vec::new();
    let mut waiting = shots.len();
    while waiting > 0 {
        let (child, outcome) = activity_ext::estimate_cost_await_next(&set)
            .map_err(|_| BatchError::ExecutionFailed)?;
        let index = *index_of.get(&child.id).ok_or(BatchError::ExecutionFailed)?;
        waiting -= 1;
        match outcome {
            Ok(estimate) => costs[index] = Some(estimate.total_micros),
            Err(Error::PermanentInvalidRequest(violations)) => refusals.push((index, violations)),
            // Cut short (its node died, its lock expired): price the shot again.
            Err(Error::ExecutionFailed) if attempts[index] < PRICE_ATTEMPTS => {
                attempts[index] += 1;
                let child = activity_ext::estimate_cost_submit(&set, &shots[index].request, None);
                index_of.insert(child.id, index);
                waiting += 1;
            }
            Err(_) => return Err(BatchError::ExecutionFailed),
        }
    }
    if !refusals.is_empty() {
        refusals.sort_by_key(|(index, _)| *index);
        return Err(BatchError::InvalidShots(
            refusals
                .into_iter()
                .map(|(index, violations)| ShotRefusal {
                    name: shots[index].name.clone(),
                    violations,
                })
                .collect(),
        ));
    }
    costs
        .into_iter()
        .try_fold(0u64, |total, cost| total.checked_add(cost?))
        .ok_or(BatchError::ExecutionFailed)
}

/// Run every shot as a child execution, `pacing.slots` at a time; reports in the shots' order.
fn run_shots(
    config: &ClientConfig,
    shots: &[Shot],
    pacing: BatchPacing,
) -> Result<Vec<ShotReport>, BatchError> {
    let set = workflow_support::join_set_create();
    let mut index_of = HashMap::new();
    let mut reports: Vec<Option<ShotReport>> = vec![None; shots.len()];
    let start = |index: usize| {
        let shot_pacing = pacing.shot();
        let child = shot_ext::run_submit(
            &set,
            config,
            &shots[index].request,
            shot_pacing.first_delay_ms,
            shot_pacing.spacing_ms,
            shot_pacing.max_submit_attempts,
        );
        (child.id, index)
    };
    let mut next = 0;
    while next < shots.len() && next < pacing.slots as usize {
        let (child, index) = start(next);
        index_of.insert(child, index);
        next += 1;
    }
    for _ in shots {
        let (child, outcome) =
            shot_ext::run_await_next(&set).map_err(|_| BatchError::ExecutionFailed)?;
        let index = *index_of.get(&child.id).ok_or(BatchError::ExecutionFailed)?;
        reports[index] = Some(report(&shots[index].name, child.id, outcome));
        // The finished shot's slot goes to the next one (which waits a spacing first).
        if next < shots.len() {
            let (child, index) = start(next);
            index_of.insert(child, index);
            next += 1;
        }
    }
    reports
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or(BatchError::ExecutionFailed)
}

/// What a shot's child returned, for the report.
fn report(name: &str, execution_id: String, outcome: Result<JobResult, Error>) -> ShotReport {
    let report = |state, job_id: Option<String>, message: Option<String>| ShotReport {
        name: name.to_string(),
        execution_id: execution_id.clone(),
        state,
        job_id,
        outputs: Vec::new(),
        message,
    };
    match outcome {
        Ok(result) => ShotReport {
            outputs: result.outputs,
            ..report(ShotState::Completed, Some(result.job_id), None)
        },
        Err(Error::JobFailed(failed)) => report(
            ShotState::Failed,
            Some(failed.job_id),
            Some(format!(
                "{}: {}",
                failed.failure.code, failed.failure.message
            )),
        ),
        Err(Error::Timeout(timeout)) => report(
            ShotState::Unfinished,
            Some(timeout.job_id.clone()),
            Some(format!(
                "job {} had not ended when the shot's deadline passed; poll it again (it is \
                 billed if it completes) rather than submitting the shot again",
                timeout.job_id
            )),
        ),
        Err(Error::PermanentSubmitOutcomeUnknown(unknown)) => {
            report(ShotState::Unknown, None, Some(unknown.message))
        }
        // The job was accepted, then the provider lost it: it may still be billed.
        Err(Error::NotFound(job)) => report(
            ShotState::Failed,
            Some(job.clone()),
            Some(format!(
                "the provider no longer knows job {job}, which it accepted; check the \
                 provider's usage before submitting this shot again"
            )),
        ),
        // The child itself failed: it may have submitted. The safe side is "unknown".
        Err(Error::ExecutionFailed) => report(
            ShotState::Unknown,
            None,
            Some(format!(
                "the shot's execution {execution_id} failed; it may have submitted a job: see \
                 `obelisk execution events {execution_id}` and the provider's usage before \
                 submitting this shot again"
            )),
        ),
        Err(other) => report(ShotState::Failed, None, Some(describe(&other))),
    }
}

/// A sentence for an error that ended a shot before a job was accepted.
fn describe(error: &Error) -> String {
    match error {
        Error::PermanentInvalidRequest(violations) => violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect::<Vec<_>>()
            .join("; "),
        Error::PermanentUnauthorized(api)
        | Error::InsufficientCredits(api)
        | Error::ServerError(api)
        | Error::MalformedResponse(api) => {
            format!("HTTP {}: {}", api.status, api.message)
        }
        Error::RateLimited(limit) => format!("rate limited: {}", limit.message),
        Error::TransportError(failure) => failure.message.clone(),
        _ => "the shot failed".into(),
    }
}
