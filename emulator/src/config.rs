//! How an emulator instance behaves: accepted keys, limits, timing and response style.

use std::fmt;
use std::time::Duration;

use crate::clip::ClipFault;
use crate::farm::JobModel;

/// Settings for one [`Emulator`](crate::Emulator) instance.
///
/// All keys (ordinary and broke) belong to one account, so the rate limit is shared by all of
/// them, as the provider documents.
#[derive(Clone, PartialEq)]
pub struct EmulatorConfig {
    /// Accepted API keys (default: `["emulator-key"]`).
    pub api_keys: Vec<String>,
    /// Accepted keys whose account has no credits: a valid submit with one of them is answered
    /// `402 insufficient_credits` (default: none).
    pub broke_keys: Vec<String>,
    /// Account-wide limit over all `/v1/*` requests in a sliding 60 s window; `0` means
    /// unlimited (default: 50, the provider's documented limit).
    pub rate_limit_per_minute: u32,
    /// How jobs take their time and report progress (default: a [`RenderFarm`](crate::RenderFarm):
    /// load-dependent queues, heavy-tailed render times, S-curve progress with noise, plateaus
    /// and missing or 0–100 readings). The timing fields below apply only to
    /// [`JobModel::Linear`](crate::JobModel::Linear).
    pub job_model: JobModel,
    /// How long a new job stays `queued`, in milliseconds (default: 1000).
    pub queued_ms: u64,
    /// How long a job then runs, in milliseconds, its progress rising linearly from 0 to 1
    /// (default: 4000).
    pub running_ms: u64,
    /// When set, each job's queue time is drawn uniformly from this inclusive range of
    /// milliseconds when it is created, instead of `queued_ms` (default: `None`). Real queues
    /// vary with load; a client predicting completion must not assume a fixed one.
    pub queued_ms_range: Option<(u64, u64)>,
    /// When set, each job's running time is drawn uniformly from this inclusive range of
    /// milliseconds when it is created, instead of `running_ms` (default: `None`): a workload
    /// of jobs of varied length, as the polling benchmark needs.
    pub running_ms_range: Option<(u64, u64)>,
    /// The length of the rate limit's sliding window (default: 60 s, the provider's "per
    /// minute"). A benchmark that runs time faster shortens it by the same factor, so the
    /// budget per unit of emulated time stays 50 requests per minute.
    pub rate_window: Duration,
    /// The listening socket's accept backlog (default: 1024, what `TcpListener::bind` uses).
    /// A load test that opens a thousand connections at once needs more, or the kernel drops
    /// SYNs and clients stall for a second-long retransmit.
    pub listen_backlog: u32,
    /// How long every `/v1/*` request waits before it is handled (default: zero): the network
    /// and processing time of a real API, which a client's own overhead is measured against.
    pub latency: Duration,
    /// The shape of job objects: the documented one, or a variant that exercises a tolerant
    /// client (default: [`StatusStyle::Documented`]).
    pub status_style: StatusStyle,
    /// How long a signed output URL stays valid after it is handed out (default: 24 h).
    pub url_ttl: Duration,
    /// Refuse a request whose body comes without a `Content-Length` (sent chunked) with
    /// `411 length_required`, as strict servers and gateways do (default: `true`).
    pub require_content_length: bool,
    /// Serve every completed job's clip wrong in this way (default: `None`, the right clip).
    /// A prompt marker ([`ClipFault::marker`]) takes precedence for its own job.
    pub clip_fault: Option<ClipFault>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            api_keys: vec!["emulator-key".into()],
            broke_keys: Vec::new(),
            rate_limit_per_minute: 50,
            job_model: JobModel::default(),
            queued_ms: 1000,
            running_ms: 4000,
            queued_ms_range: None,
            running_ms_range: None,
            rate_window: Duration::from_secs(60),
            listen_backlog: 1024,
            latency: Duration::ZERO,
            status_style: StatusStyle::Documented,
            url_ttl: Duration::from_secs(24 * 60 * 60),
            require_content_length: true,
            clip_fault: None,
        }
    }
}

impl EmulatorConfig {
    /// The defaults with [`JobModel::Linear`](crate::JobModel::Linear) jobs: for tests that
    /// need to know exactly when a job ends.
    pub fn linear() -> Self {
        EmulatorConfig {
            job_model: JobModel::Linear,
            ..EmulatorConfig::default()
        }
    }
}

// Hand-written so that printing a config (in a test failure, a log line) never shows a key.
impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field(
                "api_keys",
                &format_args!("[{} redacted]", self.api_keys.len()),
            )
            .field(
                "broke_keys",
                &format_args!("[{} redacted]", self.broke_keys.len()),
            )
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("job_model", &self.job_model)
            .field("queued_ms", &self.queued_ms)
            .field("running_ms", &self.running_ms)
            .field("queued_ms_range", &self.queued_ms_range)
            .field("running_ms_range", &self.running_ms_range)
            .field("rate_window", &self.rate_window)
            .field("listen_backlog", &self.listen_backlog)
            .field("latency", &self.latency)
            .field("status_style", &self.status_style)
            .field("url_ttl", &self.url_ttl)
            .field("require_content_length", &self.require_content_length)
            .field("clip_fault", &self.clip_fault)
            .finish()
    }
}

/// The shape in which job objects (and job statuses elsewhere) are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StatusStyle {
    /// The documented shape: statuses `queued` / `running` / `completed` / `failed`, `progress`
    /// as a number from 0 to 1, `result.output_urls` as an array.
    #[default]
    Documented,
    /// A plausible undocumented shape: statuses `IN_QUEUE` / `Processing` / `succeeded` /
    /// `FAILED`, `progress` as a percent string like `"42%"`, `result.video_url` as a single
    /// string, and an extra field a client must ignore.
    Variant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_keys() {
        let config = EmulatorConfig {
            broke_keys: vec!["broke-secret".into()],
            ..EmulatorConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("emulator-key"), "{shown}");
        assert!(!shown.contains("broke-secret"), "{shown}");
        assert!(shown.contains("rate_limit_per_minute: 50"), "{shown}");
    }
}
