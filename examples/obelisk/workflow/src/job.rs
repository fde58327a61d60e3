//! What the workflows share about one job: the contract's defaults, telling an ended job from a
//! running one, and durable sleeps counted against a deadline.

use crate::obelisk::types::time::{Duration, ScheduleAt};
use crate::obelisk::workflow::workflow_support;
use crate::videogen::api::video_gen::{
    ClientConfig, Error, FailedJob, JobFailure, JobState, JobStatus, PollPolicy,
};

/// The contract's poll defaults (see `poll-policy` in video-gen.wit).
pub const DEFAULT_POLL: PollPolicy = PollPolicy {
    min_interval_ms: 5_000,
    max_interval_ms: 15_000,
    deadline_ms: 15 * 60 * 1000,
    max_retries: 4,
};

/// The caller's poll policy, or the contract's defaults.
pub fn poll_policy(config: &ClientConfig) -> PollPolicy {
    config.poll.unwrap_or(DEFAULT_POLL)
}

/// `Some(Ok(outputs))` or `Some(Err(..))` when the job has ended, `None` while it runs.
pub fn ended(job: &str, status: &JobStatus) -> Option<Result<Vec<String>, Error>> {
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

/// Durable sleeps, counted against a deadline in slept milliseconds. Time is counted, not read
/// from a clock: a workflow must be deterministic to be replayed.
pub struct Sleeps {
    slept_ms: u64,
    deadline_ms: u64,
}

/// Why [`Sleeps::sleep`] did not sleep.
pub enum NoSleep {
    /// The sleep would pass the deadline.
    Deadline,
    /// Obelisk cancelled the delay.
    Cancelled,
}

impl Sleeps {
    /// Nothing slept yet, `deadline_ms` allowed.
    pub fn new(deadline_ms: u64) -> Sleeps {
        Sleeps {
            slept_ms: 0,
            deadline_ms,
        }
    }

    /// Sleep `ms` durably: the sleep survives a server restart, and no lock is held meanwhile.
    pub fn sleep(&mut self, ms: u64) -> Result<(), NoSleep> {
        if ms == 0 {
            return Ok(());
        }
        if self.slept_ms.saturating_add(ms) > self.deadline_ms {
            return Err(NoSleep::Deadline);
        }
        workflow_support::sleep(ScheduleAt::In(Duration::Milliseconds(ms)))
            .map_err(|()| NoSleep::Cancelled)?;
        self.slept_ms += ms;
        Ok(())
    }
}
