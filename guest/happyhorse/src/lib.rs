//! HappyHorse 1.1's own rules, as one [`Provider`] for the provider-neutral driver in
//! `video-gen-core`:
//!
//! - [`limits`]: the documented limits, defaults and rate card;
//! - [`validate`]: every documented rule, all violations at once, defaults filled in;
//! - [`cost`]: price estimates from a (overridable) rate card;
//! - [`wire`]: the submit body and paths as the provider documents them;
//! - [`parse`]: tolerant reading of its job, submit and error answers.
//!
//! # Example
//!
//! Checking and pricing a request before anything is sent, as the component's `validate`
//! and `estimate-cost` do:
//!
//! ```rust
//! use happyhorse_core::{cost::estimate_cost, validate::validate};
//! use video_gen_core::VideoRequest;
//!
//! let request = VideoRequest {
//!     prompt: "A horse gallops along a beach at dawn".into(),
//!     duration_seconds: Some(5),
//!     ..VideoRequest::default()
//! };
//! // Every rule checked, the defaults filled in.
//! let checked = validate(&request).expect("a valid request");
//! assert_eq!(checked.request.resolution.as_deref(), Some("720p"));
//! // Priced from the published rate card, in micro-units.
//! let cost = estimate_cost(&request, None).expect("priced");
//! assert_eq!((cost.billed_seconds, cost.currency.as_str()), (5, "USD"));
//! // An impossible request is refused with every violation at once, by field.
//! let bad = VideoRequest { prompt: String::new(), duration_seconds: Some(99), ..request };
//! let violations = validate(&bad).unwrap_err();
//! assert!(violations.len() >= 2, "{violations:?}");
//! ```

pub mod cost;
pub mod limits;
pub mod parse;
pub mod validate;
pub mod wire;

use video_gen_core::model::{ApiError, FieldViolation, ParsedJob, ValidatedRequest, VideoRequest};
use video_gen_core::provider::Provider;

/// The HappyHorse 1.1 API on EmpirioLabs.
#[derive(Debug, Clone, Copy, Default)]
pub struct HappyHorse;

impl Provider for HappyHorse {
    fn default_base_url(&self) -> &str {
        limits::DEFAULT_BASE_URL
    }

    fn api_key_env(&self) -> &str {
        limits::API_KEY_ENV
    }

    fn validate(&self, request: &VideoRequest) -> Result<ValidatedRequest, Vec<FieldViolation>> {
        validate::validate(request)
    }

    fn submit_path(&self) -> &str {
        wire::SUBMIT_PATH
    }

    fn submit_body(&self, request: &ValidatedRequest) -> Result<Vec<u8>, FieldViolation> {
        serde_json::to_vec(&wire::submit_body(request)).map_err(|e| FieldViolation {
            field: "request".into(),
            rule: validate::RULE_INVALID_FORMAT.into(),
            message: format!("the request cannot be encoded as JSON: {e}"),
        })
    }

    fn job_path(&self, job_id: &str) -> Result<String, FieldViolation> {
        wire::job_path(job_id)
    }

    fn read_submit(&self, body: &[u8]) -> Result<String, String> {
        parse::parse_submit_response(body)
    }

    fn read_job(&self, body: &[u8]) -> Result<ParsedJob, String> {
        parse::parse_job(body)
    }

    fn read_error(&self, status: u16, body: &[u8]) -> ApiError {
        parse::parse_error_body(status, body)
    }
}

#[cfg(test)]
mod driver_tests;
