//! An Obelisk workflow that drives one HappyHorse 1.1 generation durably.
//!
//! `submit` and `poll` are calls to the HappyHorse component deployed as an Obelisk *activity*;
//! between polls the workflow sleeps with Obelisk's durable `sleep`. Obelisk records every
//! activity result and every sleep in its database (SQLite or PostgreSQL), and a workflow is
//! deterministic, so after a server restart it is replayed from that log: the recorded
//! `submit` result is reused — no second job, no second bill — and polling resumes.
//!
//! The long `wait` of the contract is deliberately not used: an activity call that blocks for
//! minutes would hold an execution lock that long and be retried from scratch on a crash,
//! while short `poll` activities and durable sleeps survive anything.

wit_bindgen::generate!({
    path: ["../../../wit/deps/videogen-api", "wit"],
    world: "empiriolabs:happyhorse-workflow/workflow",
    generate_all,
});

use exports::empiriolabs::happyhorse_workflow::generation::Guest;
use obelisk::types::time::{Duration, ScheduleAt};
use obelisk::workflow::workflow_support;
use videogen::api::video_gen::{
    self, ClientConfig, Error, FailedJob, JobFailure, JobResult, JobState, JobStatus, VideoRequest,
    WaitTimeout,
};

/// The contract's defaults (see `poll-policy` in video-gen.wit).
const DEFAULT_DEADLINE_MS: u64 = 15 * 60 * 1000;
const DEFAULT_MAX_INTERVAL_MS: u32 = 15_000;

struct Component;

export!(Component);

impl Guest for Component {
    fn generate(config: ClientConfig, request: VideoRequest) -> Result<JobResult, Error> {
        // One activity execution. Its result is persisted before the workflow goes on; on
        // replay it is read back from the log instead of calling the API again.
        let job = video_gen::submit(&config, &request)?;

        let deadline_ms = config
            .poll
            .map(|p| p.deadline_ms)
            .unwrap_or(DEFAULT_DEADLINE_MS);
        let backoff_ms = config
            .poll
            .map(|p| p.max_interval_ms)
            .unwrap_or(DEFAULT_MAX_INTERVAL_MS);

        // Time is counted in slept milliseconds, not read from a clock: a workflow must be
        // deterministic to be replayed.
        let mut slept_ms: u64 = 0;
        let mut last: Option<JobStatus> = None;
        loop {
            let delay_ms = match video_gen::poll(&config, &job) {
                Ok(status) => match ended(&job, &status) {
                    Some(outcome) => {
                        return outcome.map(|outputs| JobResult {
                            job_id: job.clone(),
                            outputs,
                            status,
                        });
                    }
                    None => {
                        let next = status.next_poll_ms;
                        last = Some(status);
                        next
                    }
                },
                // Transient: the component already retried within the call; wait and poll
                // again. A poll is a read, so repeating it never costs a job. That includes
                // `execution-failed`: Obelisk's answer when the poll activity itself was cut
                // short (a server crash mid-call, its lock expired).
                Err(Error::RateLimited(limit)) => limit
                    .retry_after_ms
                    .map_or(backoff_ms, |ms| ms.min(u64::from(u32::MAX)) as u32),
                Err(
                    Error::ServerError(_)
                    | Error::TransportError(_)
                    | Error::MalformedResponse(_)
                    | Error::ExecutionFailed,
                ) => backoff_ms,
                // Not found, unauthorized, …: polling again will not help.
                Err(other) => return Err(other),
            };
            let delay_ms = u64::from(delay_ms.max(1));
            if slept_ms + delay_ms > deadline_ms {
                return Err(Error::Timeout(WaitTimeout {
                    job_id: job,
                    last_status: last,
                }));
            }
            // A durable sleep: it survives a server restart, and no lock is held meanwhile.
            if workflow_support::sleep(ScheduleAt::In(Duration::Milliseconds(delay_ms))).is_err() {
                // The sleep was cancelled: stop here, naming the job so it can be resumed.
                return Err(Error::Timeout(WaitTimeout {
                    job_id: job,
                    last_status: last,
                }));
            }
            slept_ms += delay_ms;
        }
    }
}

/// `Some(Ok(outputs))` or `Some(Err(..))` when the job has ended, `None` while it runs.
fn ended(job: &str, status: &JobStatus) -> Option<Result<Vec<String>, Error>> {
    let failed = |code: &str, message: String| {
        Some(Err(Error::JobFailed(FailedJob {
            job_id: job.to_string(),
            failure: JobFailure {
                code: code.to_string(),
                message,
            },
        })))
    };
    match &status.state {
        JobState::Queued | JobState::Running(_) => None,
        JobState::Completed(outputs) => Some(Ok(outputs.clone())),
        JobState::Failed(failure) => failed(&failure.code, failure.message.clone()),
        JobState::Cancelled => failed("cancelled", format!("job {job} was cancelled")),
        JobState::Expired => failed("expired", format!("job {job} expired")),
    }
}
