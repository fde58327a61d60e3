//! Plain Rust mirrors of the `videogen:api` WIT types.
//!
//! The component converts between these and the `wit-bindgen` types at its edge, so that
//! everything here compiles and is tested on the native target.

/// How the provider should interpret a request (WIT `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Choose from the attached images.
    Auto,
    /// Text to video.
    T2v,
    /// Image to video.
    I2v,
    /// Reference to video.
    R2v,
}

impl Mode {
    /// The provider's wire spelling.
    pub fn as_wire(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::T2v => "t2v",
            Mode::I2v => "i2v",
            Mode::R2v => "r2v",
        }
    }
}

/// One generation request (WIT `video-request`). `None` means "the provider's default".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VideoRequest {
    /// Model id; `None` is [`crate::limits::DEFAULT_MODEL`].
    pub model: Option<String>,
    /// The scene to generate.
    pub prompt: String,
    /// How to interpret the request; `None` is [`Mode::Auto`].
    pub mode: Option<Mode>,
    /// Image URLs or `data:` URLs.
    pub images: Vec<String>,
    /// Aspect ratio such as `16:9`.
    pub aspect_ratio: Option<String>,
    /// Resolution such as `720p`.
    pub resolution: Option<String>,
    /// Clip length in seconds.
    pub duration_seconds: Option<u32>,
    /// Seed; wide and signed so out-of-range values can be reported.
    pub seed: Option<i64>,
    /// Whether to watermark the output.
    pub watermark: Option<bool>,
}

/// One broken rule (WIT `field-violation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The wire name of the field at fault.
    pub field: String,
    /// A stable rule name (`required`, `out-of-range`, `too-long`, …).
    pub rule: String,
    /// A sentence for a person.
    pub message: String,
}

/// Something accepted that will not do what the caller may expect (WIT `field-warning`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldWarning {
    /// The wire name of the field concerned.
    pub field: String,
    /// A sentence for a person.
    pub message: String,
}

/// A request that passed validation, defaults filled in (WIT `validated-request`).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedRequest {
    /// The normalized request: every field `Some` except those that will not be sent.
    pub request: VideoRequest,
    /// What was dropped or adjusted.
    pub warnings: Vec<FieldWarning>,
}

/// A price per second at one resolution (WIT `resolution-rate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolutionRate {
    /// The resolution.
    pub resolution: String,
    /// Micro-units of currency per second of video.
    pub micros_per_second: u64,
}

/// The price of a request (WIT `cost-estimate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostEstimate {
    /// ISO 4217 currency code.
    pub currency: String,
    /// Seconds billed.
    pub billed_seconds: u32,
    /// Rate applied, micro-units per second.
    pub micros_per_second: u64,
    /// Total in micro-units.
    pub total_micros: u64,
}

/// Poll spacing and limits (WIT `poll-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    /// Shortest delay between polls, ms.
    pub min_interval_ms: u32,
    /// Longest delay between polls, ms.
    pub max_interval_ms: u32,
    /// Total time `wait` may take, ms.
    pub deadline_ms: u64,
    /// Retries of one request after a retryable failure.
    pub max_retries: u32,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            min_interval_ms: 5_000,
            max_interval_ms: 15_000,
            deadline_ms: 15 * 60 * 1_000,
            max_retries: 4,
        }
    }
}

/// Settings for networked calls (WIT `client-config`), defaults already applied.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// API base URL without a trailing slash.
    pub base_url: String,
    /// The API key, if any was configured or found in the environment.
    pub api_key: Option<String>,
    /// Connect timeout per request, ms.
    pub connect_timeout_ms: u32,
    /// How long a request may wait for the start of its answer, ms.
    pub first_byte_timeout_ms: u32,
    /// How long an answer may pause between two pieces of its body, ms.
    pub between_bytes_timeout_ms: u32,
    /// Largest response body accepted, bytes.
    pub max_response_bytes: u32,
    /// Poll policy.
    pub poll: PollPolicy,
}

impl std::fmt::Debug for ClientConfig {
    // Hand-written so the key can never reach a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("first_byte_timeout_ms", &self.first_byte_timeout_ms)
            .field("between_bytes_timeout_ms", &self.between_bytes_timeout_ms)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("poll", &self.poll)
            .finish()
    }
}

/// Why a job failed (WIT `job-failure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// Provider error code.
    pub code: String,
    /// Provider message.
    pub message: String,
}

/// Normalized job state (WIT `job-state`).
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// Accepted, not started.
    Queued,
    /// Generating, with progress 0.0–1.0 when known.
    Running(Option<f64>),
    /// Done, with output URLs.
    Completed(Vec<String>),
    /// Ended without output.
    Failed(JobFailure),
    /// Cancelled.
    Cancelled,
    /// Expired.
    Expired,
}

impl JobState {
    /// Whether the job will not change any more.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running(_))
    }
}

/// A job's progress as the provider wrote it, before scaling (WIT `progress-reading`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressReading {
    /// The number written, 0 to 100.
    pub value: f64,
    /// Whether it was written with a `%`.
    pub marked_percent: bool,
}

impl ProgressReading {
    /// This reading alone as a fraction 0.0–1.0: a number up to 1 is a fraction, one above
    /// it (or marked `%`) a percentage. 1 itself reads as done, not 1 %.
    pub fn fraction(self) -> f64 {
        let fraction = if self.marked_percent || self.value > 1.0 {
            self.value / 100.0
        } else {
            self.value
        };
        // Normalises -0.0 and keeps the documented range even for rounding surprises.
        if fraction == 0.0 {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        }
    }
}

/// One reading of a job (WIT `job-status`).
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    /// The job id.
    pub job_id: String,
    /// Normalized state.
    pub state: JobState,
    /// The progress as written, when the provider wrote a readable one.
    pub progress_reading: Option<ProgressReading>,
    /// The provider's status word, verbatim.
    pub raw_status: String,
    /// Submission time as the provider wrote it.
    pub created_at: Option<String>,
    /// End time as the provider wrote it.
    pub completed_at: Option<String>,
    /// Suggested delay before the next poll, ms.
    pub next_poll_ms: u32,
}

/// A completed job (WIT `job-result`).
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    /// The job id.
    pub job_id: String,
    /// Output URLs.
    pub outputs: Vec<String>,
    /// The final reading.
    pub status: JobStatus,
}

/// An error response from the provider (WIT `api-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Provider error code.
    pub code: Option<String>,
    /// Provider message or a description.
    pub message: String,
}

/// Kinds of transport failure (WIT `transport-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Name resolution failed: nothing sent.
    Dns,
    /// Could not connect: nothing sent.
    Connect,
    /// The host's policy refused the request: nothing sent.
    Denied,
    /// TLS failed.
    Tls,
    /// Broke or timed out after sending.
    Interrupted,
    /// Anything else.
    Other,
}

impl TransportKind {
    /// Whether a request that failed this way provably never reached the server, so
    /// resending it cannot create a second job.
    pub fn nothing_was_sent(self) -> bool {
        matches!(self, TransportKind::Dns | TransportKind::Connect)
    }

    /// What happened, in words, for messages a person reads.
    pub fn in_words(self) -> &'static str {
        match self {
            TransportKind::Dns => "the host name could not be resolved",
            TransportKind::Connect => "the connection could not be opened",
            TransportKind::Denied => "the host's sandbox refused the request",
            TransportKind::Tls => "the TLS handshake failed",
            TransportKind::Interrupted => {
                "the connection broke or timed out after the request was sent"
            }
            TransportKind::Other => "the request failed",
        }
    }
}

/// A failure below HTTP (WIT `transport-failure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportFailure {
    /// Kind.
    pub kind: TransportKind,
    /// Details.
    pub message: String,
}

/// Every error the contract can return (WIT `error`).
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Broken rules; nothing was sent.
    InvalidRequest(Vec<FieldViolation>),
    /// Key missing or refused.
    Unauthorized(ApiError),
    /// The account cannot pay.
    InsufficientCredits(ApiError),
    /// 429 outlived the retries.
    RateLimited {
        /// Delay the provider asked for, ms.
        retry_after_ms: Option<u64>,
        /// Provider message.
        message: String,
    },
    /// The job ended without output.
    JobFailed {
        /// The job.
        job_id: String,
        /// Why.
        failure: JobFailure,
    },
    /// Unknown job id.
    NotFound(String),
    /// Provider failure.
    ServerError(ApiError),
    /// No HTTP response.
    Transport(TransportFailure),
    /// A submit was sent and its fate is unknown.
    SubmitOutcomeUnknown(String),
    /// `wait` ran out of time.
    Timeout {
        /// The job, to resume with.
        job_id: String,
        /// Last reading, if any.
        last_status: Option<Box<JobStatus>>,
    },
    /// Unreadable response.
    MalformedResponse(ApiError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidRequest(v) => {
                write!(f, "invalid request:")?;
                for x in v {
                    write!(f, " {}: {};", x.field, x.message)?;
                }
                Ok(())
            }
            Error::Unauthorized(e) => write!(f, "unauthorized ({}): {}", e.status, e.message),
            Error::InsufficientCredits(e) => write!(f, "insufficient credits: {}", e.message),
            Error::RateLimited {
                retry_after_ms,
                message,
            } => match retry_after_ms {
                Some(ms) => write!(f, "rate limited, retry after {ms} ms: {message}"),
                None => write!(f, "rate limited: {message}"),
            },
            Error::JobFailed { job_id, failure } => {
                write!(
                    f,
                    "job {job_id} failed ({}): {}",
                    failure.code, failure.message
                )
            }
            Error::NotFound(id) => write!(f, "job {id} not found"),
            Error::ServerError(e) => write!(f, "server error ({}): {}", e.status, e.message),
            Error::Transport(t) => write!(f, "transport error ({:?}): {}", t.kind, t.message),
            Error::SubmitOutcomeUnknown(m) => write!(f, "submit outcome unknown: {m}"),
            Error::Timeout { job_id, .. } => {
                write!(f, "timed out waiting for job {job_id}; resume with its id")
            }
            Error::MalformedResponse(e) => {
                write!(f, "malformed response ({}): {}", e.status, e.message)
            }
        }
    }
}

impl std::error::Error for Error {}

/// One job reading, as far as the response told it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedJob {
    /// The job's id, when the response repeats it (`job_id` or `id`).
    pub job_id: Option<String>,
    /// The normalized state.
    pub state: JobState,
    /// The provider's status word, verbatim.
    pub raw_status: String,
    /// The progress as written, when reported in a readable form (0 to 100).
    pub progress: Option<ProgressReading>,
    /// Submission time as the provider wrote it (numbers as their decimal string).
    pub created_at: Option<String>,
    /// End time as the provider wrote it.
    pub completed_at: Option<String>,
}
