//! One generation: `submit`, then `poll` with durable sleeps until the job ends.

use crate::job::{self, NoSleep, Sleeps};
use crate::videogen::api::video_gen::{
    self, ClientConfig, Error, JobResult, JobStatus, VideoRequest, WaitTimeout,
};

/// `generation.generate`: see the WIT.
pub fn generate(config: ClientConfig, request: VideoRequest) -> Result<JobResult, Error> {
    // One activity execution. Its result is persisted before the workflow goes on; on replay
    // it is read back from the log instead of calling the API again.
    let job = video_gen::submit(&config, &request)?;

    let policy = job::poll_policy(&config);
    let mut sleeps = Sleeps::new(policy.deadline_ms);
    let mut last: Option<JobStatus> = None;
    loop {
        let delay_ms = match video_gen::poll(&config, &job) {
            Ok(status) => match job::ended(&job, &status) {
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
            // The component already retried within the call; wait and poll again. A poll is
            // a read, so repeating it never costs a job, and once a job exists no error may
            // end the generation without its id (a key rotated mid-job, a gateway's 403): the
            // deadline ends it with `timeout`, which carries the id. That includes
            // `execution-failed`: Obelisk's answer when the poll activity itself was cut short
            // (a server crash mid-call, its lock expired).
            Err(Error::RateLimited(limit)) => {
                limit.retry_after_ms.map_or(policy.max_interval_ms, |ms| {
                    ms.min(u64::from(u32::MAX)) as u32
                })
            }
            Err(_) => policy.max_interval_ms,
        };
        // A deadline reached or a cancelled sleep: stop here, naming the job so it can be
        // resumed.
        if let Err(NoSleep::Deadline | NoSleep::Cancelled) =
            sleeps.sleep(u64::from(delay_ms.max(1)))
        {
            return Err(Error::Timeout(WaitTimeout {
                job_id: job,
                last_status: last,
            }));
        }
    }
}
