//! What an answer that is not a success means: the provider's error body read into an
//! [`ApiError`], an unreadable body described, and a `4xx` refusal mapped to its [`Error`].
//! Shared by the submit and poll paths, which differ only in what they may retry.

use super::host::{BodyError, HttpResponse};
use crate::model::{ApiError, Error, FieldViolation};
use crate::provider::Provider;

/// The provider's error as it explains it, or, when its body could not be read, why not.
pub(super) fn api_error(provider: &impl Provider, response: &HttpResponse) -> ApiError {
    match &response.body {
        Ok(body) => provider.read_error(response.status, body),
        Err(e) => ApiError {
            status: response.status,
            code: None,
            message: body_error_message(e),
        },
    }
}

/// A body that could not be read, in words for the caller.
pub(super) fn body_error_message(e: &BodyError) -> String {
    match e {
        BodyError::TooLarge { limit } => {
            format!("the response body is larger than max-response-bytes ({limit} bytes)")
        }
        BodyError::Read(m) => format!("the response body could not be read: {m}"),
    }
}

/// A `4xx` refusal: the provider did not accept the request, so nothing was billed.
pub(super) fn refusal(api: ApiError) -> Error {
    match (api.status, api.code.as_deref()) {
        (401 | 403, _) => Error::Unauthorized(api),
        (402, _) | (_, Some("insufficient_credits")) => Error::InsufficientCredits(api),
        (400 | 404 | 413 | 422, _) => Error::InvalidRequest(vec![FieldViolation {
            field: "request".into(),
            rule: api.code.clone().unwrap_or_else(|| "rejected".into()),
            message: format!(
                "the provider refused the request (HTTP {}): {}",
                api.status, api.message
            ),
        }]),
        _ => Error::ServerError(api),
    }
}
