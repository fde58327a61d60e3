//! The one error body every failing answer carries: `{"error":{"code","message"[,"param"]}}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

/// An error answer: status, machine-readable code, human message, and optionally the request
/// field at fault and a `Retry-After` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    pub retry_after: Option<String>,
}

impl ApiError {
    /// An error with no `param` and no `Retry-After`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// A `400 invalid_request` naming the offending field.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.to_owned()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }

    /// Adds a `Retry-After` header value.
    pub fn with_retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }

    /// The JSON body alone.
    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), Value::String(self.code.clone()));
        error.insert("message".into(), Value::String(self.message.clone()));
        if let Some(param) = &self.param {
            error.insert("param".into(), Value::String(param.clone()));
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        // An injected value that is not a legal header value is dropped rather than
        // failing the whole answer.
        if let Some(value) = self
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_param_only_when_set() {
        let plain = ApiError::new(StatusCode::NOT_FOUND, "job_not_found", "no such job");
        assert_eq!(
            plain.body(),
            json!({"error": {"code": "job_not_found", "message": "no such job"}})
        );
        let param = ApiError::invalid_param("seed", "seed must be an integer");
        assert_eq!(param.body()["error"]["param"], "seed");
        assert_eq!(param.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn illegal_retry_after_is_dropped() {
        let response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "x", "y")
            .with_retry_after("bad\nvalue")
            .into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        let response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "x", "y")
            .with_retry_after("7")
            .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
