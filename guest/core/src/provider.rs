//! What a video provider's component tells the provider-neutral driver: its rules, its wire
//! format and how to read its answers. The HappyHorse component implements it in
//! `happyhorse-core`; a second provider's component would implement it again and reuse the
//! driver — retries, time bounds, "never pay twice" — unchanged.

use crate::model::{ApiError, FieldViolation, ParsedJob, ValidatedRequest, VideoRequest};

/// One provider's API, as the driver needs it.
pub trait Provider {
    /// The provider's public endpoint (`client-config.base-url` when none is given).
    fn default_base_url(&self) -> &str;

    /// The environment variable the key is read from when the config carries none.
    fn api_key_env(&self) -> &str;

    /// Check `request` against every rule, without touching the network: the request with
    /// defaults filled in and warnings, or every rule it breaks.
    fn validate(&self, request: &VideoRequest) -> Result<ValidatedRequest, Vec<FieldViolation>>;

    /// The path (below the base URL) a submit is posted to.
    fn submit_path(&self) -> &str;

    /// The submit's JSON body for a validated request.
    fn submit_body(&self, request: &ValidatedRequest) -> Result<Vec<u8>, FieldViolation>;

    /// The path that reads job `job_id`, or why that id cannot be put in a path.
    fn job_path(&self, job_id: &str) -> Result<String, FieldViolation>;

    /// The job id in a successful submit's answer, or why it cannot be read.
    fn read_submit(&self, body: &[u8]) -> Result<String, String>;

    /// A job object, or why it cannot be read.
    fn read_job(&self, body: &[u8]) -> Result<ParsedJob, String>;

    /// The provider's error body for an answer with `status`.
    fn read_error(&self, status: u16, body: &[u8]) -> ApiError;
}
