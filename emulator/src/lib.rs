//! A local emulator of the HappyHorse 1.1 video-generation API (`api.empiriolabs.ai`), so a
//! client can be tested with no network and no money spent.
//!
//! [`Emulator::start`] serves the API on an ephemeral `127.0.0.1` port inside the caller's Tokio
//! runtime; tests then point their client at [`Emulator::base_url`], steer it with
//! [`Emulator::push_fault`] and [`Emulator::fail_next_job`], and inspect what it received with
//! [`Emulator::requests`] and the counters.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use happyhorse_emulator::{Emulator, EmulatorConfig, Fault, Route};
//! let emulator = Emulator::start(EmulatorConfig::default()).await?;
//! emulator.push_fault(Route::Poll, Fault::Malformed("{not json".into()));
//! // ... run the client against emulator.base_url() with key "emulator-key" ...
//! assert_eq!(emulator.jobs_created(), 1);
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//! - `POST /v1/videos/generations`: validates the body by the documented rules and creates a
//!   job: `{"job_id":"job_<32 hex>","status":"queued","created_at":"<RFC 3339>"}`.
//! - `GET /v1/jobs/{job_id}`: the job object; its state follows the clock (`queued_ms`, then
//!   `running_ms` with progress rising linearly, then terminal; each job may instead draw its
//!   own times from `queued_ms_range` / `running_ms_range`).
//! - `GET /v1/account/usage`: `{"data":[...]}`, one entry per finished job.
//! - `GET /files/{job_id}/output.mp4?expires=<unix>&sig=<hex>`: the signed output URL, serving
//!   an MP4 clip made for the job (see *Output clips* below).
//!
//! # Decisions where the provider documents nothing
//! Each is a plausible reading of the real API; a client must not depend on any of them.
//! - **Errors**: every error body is `{"error":{"code","message"}}`; validation errors add
//!   `"param": "<field>"`. Unknown paths answer `404 not_found`, wrong methods
//!   `405 method_not_allowed`, bodies over 32 MiB `413 request_too_large`.
//! - **Auth**: checked on every `/v1/*` request. No header, an empty value or `Bearer` with no
//!   token is `401 missing_api_key`; any other scheme or an unknown key is `401 invalid_api_key`.
//!   The scheme is matched case-insensitively. Download URLs need no key (like a signed CDN URL).
//! - **Order of checks** on `/v1/*`: log the request → framing (`411`) → injected fault →
//!   rate limit → auth → body validation (`400` / `404 model_not_found`) → credits (`402`) →
//!   job creation.
//! - **Strict framing** (on by default, [`EmulatorConfig::require_content_length`]): a body
//!   sent without `Content-Length` (chunked) is answered `411 length_required`, as strict
//!   servers and gateways do: it is logged (a submit counts as received) but neither counted
//!   by the rate limit nor able to create a job. Every request's framing is in the log
//!   ([`RequestRecord::content_length`], [`RequestRecord::chunked`]).
//! - **Rate limit**: one sliding 60 s window (`rate_window`) for the whole account, counting every `/v1/*`
//!   request, authorized or not. A request refused with 429 is not counted, so waiting out
//!   `Retry-After` (whole seconds, rounded up, at least 1) always succeeds. A request that an
//!   injected fault handles is counted but never refused. Downloads are not limited.
//! - **Images**: `image` may be one string or an array of strings; each must be an `http(s)`
//!   URL with a host or a `data:image/<type>;base64,<payload>` URL. `auto` takes 0–9 images.
//! - **Nulls**: an optional field set to `null` is treated as omitted. Unknown fields are
//!   ignored. `duration` may be fractional; `seed` must be an integer; an empty or
//!   whitespace-only prompt is rejected; the prompt limit counts Unicode scalar values.
//!   `Content-Type` is not checked: the body is parsed as JSON whatever it says.
//! - **Job failures**: a prompt containing `[emulator:fail]` fails with
//!   `content_policy_violation`; [`Emulator::fail_next_job`] takes precedence. A job fails only
//!   when it would otherwise complete (after `queued_ms + running_ms`). A terminal job reports
//!   `progress` 1 and `completed_at` (the failure time, for a failed job).
//! - **Submit answer** follows the status style: `"queued"`, or `"IN_QUEUE"` plus an extra
//!   `request_id` field in [`StatusStyle::Variant`].
//! - **Output URLs** are signed with HMAC-SHA-256 over the job id and expiry under a secret
//!   made fresh per emulator, and re-signed (fresh expiry) on every poll. A download checks, in
//!   order: the job exists (`404 job_not_found`), it completed and the file is `output.mp4`
//!   (`404 file_not_found`), the signature (`403 invalid_signature`; a changed `expires` breaks
//!   it), the expiry (`403 url_expired`). Range requests are not supported: the whole clip is
//!   always sent, with `Content-Length`.
//! - **Output clips** are real, playable MP4 files made for each job at run time: H.264
//!   Constrained Baseline video of a flat mid-gray picture at [`FRAMES_PER_SECOND`] and silent
//!   mono AAC-LC at 48 kHz, the index (`moov`) ahead of the samples so that a player reading
//!   front to back can start. The frame size is [`frame_size`] of the request's `resolution`
//!   and `aspect_ratio` (the resolution is the short side: 720p 16:9 is 1280×720, 1080p 9:16
//!   is 1080×1920), except for `i2v` and for `auto` with exactly one image: the real API
//!   follows the source image's aspect there, and the emulator, which reads no image, uses
//!   16:9. The video track and the movie last the requested `duration` exactly (fractional
//!   seconds too, to 1/90000 s); the sound covers it in whole 1024-sample frames, trimmed to
//!   it by an edit list. The same request always gets the same bytes ([`ClipSpec::render`]).
//! - **Wrong clips**: a prompt containing `[emulator:clip=short]`,
//!   `[emulator:clip=other-resolution]`, `[emulator:clip=no-audio]`,
//!   `[emulator:clip=truncated]` or `[emulator:clip=not-mp4]` makes that job's clip wrong in
//!   that way ([`ClipFault`]): about 2 s shorter (never under 1 s), the other resolution's
//!   frame size, no audio track, the first half of the right clip's bytes, or an HTML error
//!   page. [`EmulatorConfig::clip_fault`] does the same for every job, and a prompt's marker
//!   wins over it. The download still answers `200`, `video/mp4` and a true `Content-Length`:
//!   only the bytes are wrong. A failed job (`[emulator:fail]`) has no clip at all.
//! - **Scripted progress**: a prompt containing `[emulator:progress=0.6,6,40]` makes that
//!   job, once out of its queue, answer each poll with the next of those numbers as its
//!   `progress`, exactly as written (a percent job whose first reading is under 1, a job whose
//!   progress goes back); the poll after the last finds it completed. Up to 100 numbers, each
//!   from 0 to 100; a malformed list is ignored. The job's own timing model is set aside.
//!   Written in the documented status style only (the variant style writes `"42%"`).
//! - **Usage** lists completed and failed jobs in creation order, each with `created_at` too.
//!   A completed job costs `duration × rate` (0.14 USD/s at 720p, 0.18 at 1080p), rounded to
//!   1/10000; a failed job is listed with cost 0 (nothing is charged for a failed generation).
//!   `status_code` is 200 for completed and 422 for failed jobs; `output_urls` is empty for a
//!   failed one. Jobs still in flight are not listed. There is no pagination.
//! - **Latency**: `latency` (zero unless set) delays every `/v1/*` answer, as a real API's
//!   network and processing time would; downloads are not delayed.
//! - **Faults** ([`Emulator::push_fault`] per route, [`Emulator::push_job_fault`] for one job's
//!   polls): [`Fault::Delay`] models latency in front of the API, so a client that gives
//!   up during it leaves the request unprocessed; [`Fault::ProcessThenHang`] processes first;
//!   [`Fault::Silence`] never answers and processes nothing. [`Fault::StallMidBody`],
//!   [`Fault::Trickle`], [`Fault::TruncatedBody`] and [`Fault::ResetAfterProcessing`] process
//!   the request (a submit creates its job) and then spoil the answer: half the body then
//!   silence, a byte at a time, half the body declared as the whole, or a reset connection
//!   (RST, no byte of answer). [`Fault::HtmlPage`] answers a gateway's HTML page with any
//!   status, [`Fault::Malformed`] any body with `200`, [`Fault::Status`] any status with an
//!   optional `Retry-After` (seconds or an HTTP date, sent verbatim). Every wait ends early
//!   when the emulator shuts down.
//! - **Secrets**: key values are compared and dropped; they are never logged, stored in the
//!   request log or shown by `Debug`.

mod clip;
mod clock;
mod config;
mod conn;
mod error;
mod farm;
mod faults;
mod media;
mod render;
mod routes;
mod state;
mod validation;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use clip::{ClipFault, ClipSpec, FRAMES_PER_SECOND, frame_size};
pub use config::{EmulatorConfig, StatusStyle};
pub use farm::{JobModel, RenderFarm, shape as farm_shape};
pub use faults::{Fault, Route};
pub use state::RequestRecord;

/// When one job was created and ended, and when a poll first found it ended; all as time
/// since the emulator started (the same clock as [`RequestRecord::at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTiming {
    /// The job id.
    pub id: String,
    /// When the submit created it.
    pub created_at: Duration,
    /// When it left the queue and began to render.
    pub started_at: Duration,
    /// When it completed (or failed).
    pub ended_at: Duration,
    /// When a poll first answered with it ended; `None` if none has yet.
    pub first_seen_ended_at: Option<Duration>,
}

use state::{JobError, Shared};

/// How long [`Emulator::shutdown`] waits for open connections to finish before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running emulator. Stops when [`shutdown`](Emulator::shutdown) is awaited or, less
/// gracefully, when dropped.
pub struct Emulator {
    addr: SocketAddr,
    base_url: String,
    shared: Arc<Shared>,
    connections: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Starts an emulator on an ephemeral port of `127.0.0.1`.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<Emulator> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts an emulator on `addr` (port 0 picks a free port). Must be called inside a Tokio
    /// runtime, which then runs the server.
    pub async fn start_on(addr: SocketAddr, config: EmulatorConfig) -> anyhow::Result<Emulator> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .context("creating the emulator's socket")?;
        // As `TcpListener::bind` does, so a restarted emulator can take its port back at once.
        socket.set_reuseaddr(true).context("setting SO_REUSEADDR")?;
        socket
            .bind(addr)
            .with_context(|| format!("binding the emulator to {addr}"))?;
        let listener = socket
            .listen(config.listen_backlog)
            .with_context(|| format!("listening on {addr}"))?;
        let addr = listener
            .local_addr()
            .context("reading the emulator's bound address")?;
        let base_url = format!("http://{}", reachable(addr));
        let shared = Arc::new(Shared::new(config, base_url.clone()));
        let (stop, shutdown) = watch::channel(false);
        let app = routes::router(routes::App {
            shared: shared.clone(),
            shutdown: shutdown.clone(),
        });
        let connections = Arc::new(AtomicUsize::new(0));
        let listener = conn::Listener {
            inner: listener,
            accepted: connections.clone(),
        };
        let app = app.into_make_service_with_connect_info::<conn::ConnectionHandle>();
        let mut on_stop = shutdown;
        let server = tokio::spawn(async move {
            let stopped = async move {
                let _ = on_stop.wait_for(|stopping| *stopping).await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::warn!(%error, "emulator server ended with an error");
            }
        });
        tracing::info!(%base_url, "emulator listening");
        Ok(Emulator {
            addr,
            base_url,
            shared,
            connections,
            stop,
            server: Some(server),
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues `fault` for the next request on `route`. Each route's queue is FIFO and each
    /// fault is used once; [`Route::Any`] faults apply to any request whose own route has none
    /// queued.
    pub fn push_fault(&self, route: Route, fault: Fault) {
        self.shared.data().faults.push(route, fault);
    }

    /// Queues `fault` for the next poll of job `job_id` only, ahead of any [`Route::Poll`]
    /// fault: a test can garble one job's answers while the others run normally.
    pub fn push_job_fault(&self, job_id: &str, fault: Fault) {
        self.shared.data().faults.push_for_job(job_id, fault);
    }

    /// Makes the next job created end `failed` with this error instead of completing.
    pub fn fail_next_job(&self, code: &str, message: &str) {
        self.shared.data().fail_next = Some(JobError {
            code: code.to_owned(),
            message: message.to_owned(),
        });
    }

    /// Every request received so far, in arrival order, including faulted and 429'd ones.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.data().requests.clone()
    }

    /// How many TCP connections the emulator has accepted: with keep-alive, fewer than
    /// [`requests`](Emulator::requests).
    pub fn connections_accepted(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// How many `POST /v1/videos/generations` requests arrived, whatever they were answered.
    pub fn submits_received(&self) -> usize {
        self.shared.data().submits_received
    }

    /// How many jobs were created: the submits that would have been billed.
    pub fn jobs_created(&self) -> usize {
        self.shared.data().jobs_created
    }

    /// Every job created so far, in creation order, with when it ended and when a poll first
    /// saw that: the detection lag of whatever polls the emulator, measured on the server's
    /// side.
    pub fn job_timings(&self) -> Vec<JobTiming> {
        self.shared
            .jobs_in_order()
            .into_iter()
            .map(|job| JobTiming {
                ended_at: job.created.saturating_duration_since(self.shared.started)
                    + job.queued
                    + job.running,
                first_seen_ended_at: job
                    .first_seen_ended
                    .map(|t| t.saturating_duration_since(self.shared.started)),
                created_at: job.created.saturating_duration_since(self.shared.started),
                started_at: job.created.saturating_duration_since(self.shared.started) + job.queued,
                id: job.id,
            })
            .collect()
    }

    /// How many requests were answered `429`, by the rate limiter or an injected fault.
    pub fn count_429(&self) -> usize {
        self.shared
            .data()
            .requests
            .iter()
            .filter(|r| r.status == 429)
            .count()
    }

    /// Stops accepting connections, lets open ones finish (injected waits are cut short), and
    /// waits for the server task, cutting it off after a few seconds.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
        tracing::info!(base_url = %self.base_url, "emulator stopped");
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // No await is possible here: signal the stop and cut the server task so it does not
        // outlive its handle. Both work outside a runtime too.
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

// A wildcard bind is reached through loopback; URLs must name an address a client can dial.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("base_url", &self.base_url)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_reached_on_loopback() {
        let v4: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(reachable(v4).to_string(), "127.0.0.1:8080");
        let v6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(reachable(v6).to_string(), "[::1]:8080");
        let fixed: SocketAddr = "127.0.0.2:1".parse().unwrap();
        assert_eq!(reachable(fixed), fixed);
    }
}
