//! Obelisk workflows that drive HappyHorse 1.1 generations durably.
//!
//! - [`generation`]: one generation — `submit`, then `poll` with durable sleeps.
//! - [`batch`]: a storyboard's shots across a cluster — validated and priced first, each shot a
//!   child execution ([`shot`]), at most so many at once, paced inside the account's budget.
//!
//! `submit`, `poll` and `estimate-cost` are calls to the HappyHorse component deployed as an
//! Obelisk *activity*. Obelisk records every activity result, every child execution and every
//! sleep in its database (SQLite or PostgreSQL), and a workflow is deterministic, so after a
//! crash or a restart it is replayed from that log — on whichever node of a cluster picks it
//! up: a recorded `submit` result is reused (no second job, no second bill) and polling resumes.
//!
//! The long `wait` of the contract is deliberately not used: an activity call that blocks for
//! minutes would hold an execution lock that long and be retried from scratch on a crash,
//! while short `poll` activities and durable sleeps survive anything.

wit_bindgen::generate!({
    path: ["../../../wit/deps/videogen-api", "wit"],
    world: "empiriolabs:happyhorse-workflow/workflow",
    generate_all,
});

mod batch;
mod generation;
mod job;
mod pacing;
mod shot;

use exports::empiriolabs::happyhorse_workflow::batch::{
    BatchError, BatchLimits, BatchReport, Shot,
};
use videogen::api::video_gen::{ClientConfig, Error, JobResult, VideoRequest};

struct Component;

export!(Component);

impl exports::empiriolabs::happyhorse_workflow::generation::Guest for Component {
    fn generate(config: ClientConfig, request: VideoRequest) -> Result<JobResult, Error> {
        generation::generate(config, request)
    }
}

impl exports::empiriolabs::happyhorse_workflow::batch::Guest for Component {
    fn run(
        config: ClientConfig,
        shots: Vec<Shot>,
        limits: BatchLimits,
    ) -> Result<BatchReport, BatchError> {
        batch::run(config, shots, limits)
    }
}

impl exports::empiriolabs::happyhorse_workflow::shot::Guest for Component {
    fn run(
        config: ClientConfig,
        request: VideoRequest,
        first_delay_ms: u64,
        spacing_ms: u64,
        max_submit_attempts: u32,
    ) -> Result<JobResult, Error> {
        shot::run(
            config,
            request,
            pacing::ShotPacing {
                first_delay_ms,
                spacing_ms,
                max_submit_attempts,
            },
        )
    }
}
