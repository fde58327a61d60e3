//! One shot of a batch: one submit (repeated only while the provider provably refuses), then
//! paced polls with durable sleeps.

use crate::job::{self, NoSleep, Sleeps};
use crate::pacing::ShotPacing;
use crate::videogen::api::video_gen::{
    self, ClientConfig, Error, JobResult, JobStatus, PollPolicy, SubmitUnknown, TransportFailure,
    TransportKind, VideoRequest, WaitTimeout,
};

/// `shot.run`: see the WIT.
pub fn run(
    config: ClientConfig,
    request: VideoRequest,
    pacing: ShotPacing,
) -> Result<JobResult, Error> {
    if config.api_key.is_some() {
        // Parameters are stored in Obelisk's database and shown by `obelisk execution`.
        return Err(nothing_sent(
            "client-config.api-key is set: parameters are stored in Obelisk's database, so the \
             key must come from the deployment's secret (leave api-key null)",
        ));
    }
    // Whoever calls `shot.run` directly gets the same floor as a batch's shot: never faster
    // than the account allows on its own, never more submits than a batch allows.
    let pacing = pacing.bounded();
    let config = one_request_per_call(config);
    let mut sleeps = Sleeps::new(job::poll_policy(&config).deadline_ms);
    let job = submit(&config, &request, pacing, &mut sleeps)?;

    let mut last: Option<JobStatus> = None;
    let mut delay_ms = pacing.spacing_ms;
    loop {
        if let Err(NoSleep::Deadline | NoSleep::Cancelled) = sleeps.sleep(delay_ms) {
            return Err(Error::Timeout(WaitTimeout {
                job_id: job,
                last_status: last,
            }));
        }
        delay_ms = match video_gen::poll(&config, &job) {
            Ok(status) => {
                if let Some(outcome) = job::ended(&job, &status) {
                    return outcome.map(|outputs| JobResult {
                        job_id: job.clone(),
                        outputs,
                        status,
                    });
                }
                let hint = u64::from(status.next_poll_ms);
                last = Some(status);
                pacing.spacing_ms.max(hint)
            }
            // A poll is a read: repeating it never costs a job, and once a job exists no error
            // may end the shot without its id (a key rotated mid-batch, a gateway's 403, a 404
            // from a lagging replica: the job may still render and be billed). So every error
            // is polled again, spaced, until the job ends or the deadline returns `timeout`
            // with the job id. `execution-failed` is the poll activity cut short (its node
            // died, its lock expired).
            Err(Error::RateLimited(limit)) => {
                pacing.spacing_ms.max(limit.retry_after_ms.unwrap_or(0))
            }
            Err(_) => pacing.spacing_ms,
        };
    }
}

/// Submit once; again only when the component says the provider provably did not accept it.
fn submit(
    config: &ClientConfig,
    request: &VideoRequest,
    pacing: ShotPacing,
    sleeps: &mut Sleeps,
) -> Result<String, Error> {
    let mut delay_ms = pacing.first_delay_ms;
    let mut attempt = 1;
    loop {
        // Nothing has been sent yet (or every earlier attempt was provably refused): a deadline
        // or a cancellation here leaves no job behind, and says so.
        if sleeps.sleep(delay_ms).is_err() {
            return Err(nothing_sent(
                "the shot reached its deadline or was cancelled before its submit was sent",
            ));
        }
        match video_gen::submit(config, request) {
            Ok(job) => return Ok(job),
            // The activity was cut short: the request may have reached the provider and made a
            // job. Never resent.
            Err(Error::ExecutionFailed) => {
                return Err(Error::PermanentSubmitOutcomeUnknown(SubmitUnknown {
                    message: "the node running this shot's submit stopped before it answered \
                              (Obelisk: execution-failed); the job may exist and be billed. \
                              Check the provider's usage before submitting this shot again."
                        .into(),
                }));
            }
            // The component returns these from `submit` only when nothing was accepted (a
            // `429`, a `503`, a connection that never opened).
            Err(refused) if provably_refused(&refused) && attempt < pacing.max_submit_attempts => {
                let retry_after = match &refused {
                    Error::RateLimited(limit) => limit.retry_after_ms.unwrap_or(0),
                    _ => 0,
                };
                delay_ms = pacing.spacing_ms.max(retry_after);
                attempt += 1;
            }
            Err(other) => return Err(other),
        }
    }
}

/// Whether a `submit` error says the provider provably did not accept the job for a reason
/// that may pass: a `429`, a `503`, a connection that never opened (any failure after sending
/// is `permanent-submit-outcome-unknown`; other refusals will not pass by retrying).
fn provably_refused(error: &Error) -> bool {
    match error {
        Error::RateLimited(_) => true,
        Error::ServerError(api) => api.status == 503,
        Error::TransportError(failure) => {
            matches!(failure.kind, TransportKind::Dns | TransportKind::Connect)
        }
        _ => false,
    }
}

/// The error of a shot that ended before anything was sent: the batch reports it `failed`
/// (submitting again is safe), never `unknown`.
pub fn nothing_sent(message: &str) -> Error {
    Error::TransportError(TransportFailure {
        kind: TransportKind::Denied,
        message: format!("nothing was sent: {message}"),
    })
}

/// The caller's config with the component's own retries off: every activity call is then
/// exactly one request, which is what the batch's pacing counts.
pub fn one_request_per_call(mut config: ClientConfig) -> ClientConfig {
    let policy = job::poll_policy(&config);
    config.poll = Some(PollPolicy {
        max_retries: 0,
        ..policy
    });
    config
}
