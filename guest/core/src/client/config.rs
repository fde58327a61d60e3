//! The caller's configuration: the defaults, the ranges every setting must fall in, and
//! resolving a [`ConfigInput`] into a checked [`ClientConfig`] before anything is sent.

use crate::model::{ApiError, ClientConfig, Error, FieldViolation, PollPolicy};
use crate::provider::Provider;

/// Default connect timeout per request.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u32 = 10_000;
/// Default wait for the start of an answer. Job objects come back in milliseconds; a submit
/// with inline images must upload them first, which this leaves room for.
pub const DEFAULT_FIRST_BYTE_TIMEOUT_MS: u32 = 30_000;
/// Default longest pause inside an answer's body.
pub const DEFAULT_BETWEEN_BYTES_TIMEOUT_MS: u32 = 15_000;
/// The range every per-request timeout must fall in, ms.
const TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u32> = 100..=600_000;
/// Default cap on a response body. Job objects are a few hundred bytes; 1 MiB leaves
/// room for verbose providers while keeping a hostile one from exhausting guest memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: u32 = 1 << 20;
/// Polls closer together than this would only burn the account's request budget.
pub const MIN_POLL_INTERVAL_MS: u32 = 10;

/// The caller's configuration, before defaults (the WIT `client-config`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigInput {
    /// Base URL; `None` is the provider's ([`Provider::default_base_url`]).
    pub base_url: Option<String>,
    /// API key; `None` falls back to the environment.
    pub api_key: Option<String>,
    /// Connect timeout, ms.
    pub connect_timeout_ms: Option<u32>,
    /// First-byte timeout, ms.
    pub first_byte_timeout_ms: Option<u32>,
    /// Between-bytes timeout, ms.
    pub between_bytes_timeout_ms: Option<u32>,
    /// Response body cap, bytes.
    pub max_response_bytes: Option<u32>,
    /// Poll policy.
    pub poll: Option<PollPolicy>,
}

impl ConfigInput {
    /// Apply `provider`'s defaults and check every setting, taking the key from `env_key`
    /// (the value of [`Provider::api_key_env`]) when none was passed. A missing or unusable
    /// key is refused here, before anything is sent.
    pub fn resolve(
        self,
        provider: &impl Provider,
        env_key: Option<String>,
    ) -> Result<ClientConfig, Error> {
        let mut violations = Vec::new();
        let base_url = check_base_url(
            self.base_url
                .as_deref()
                .unwrap_or(provider.default_base_url()),
            &mut violations,
        );
        let poll = self.poll.unwrap_or_default();
        check_poll_policy(&poll, &mut violations);
        let max_response_bytes = self
            .max_response_bytes
            .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
        if !(1024..=64 << 20).contains(&max_response_bytes) {
            violations.push(violation(
                "max-response-bytes",
                "out-of-range",
                format!("max-response-bytes is {max_response_bytes}; use 1024 to 67108864"),
            ));
        }
        let mut timeout = |field: &str, given: Option<u32>, default: u32| {
            let ms = given.unwrap_or(default);
            if !TIMEOUT_RANGE_MS.contains(&ms) {
                violations.push(violation(
                    field,
                    "out-of-range",
                    format!(
                        "{field} is {ms}; use {} to {} milliseconds",
                        TIMEOUT_RANGE_MS.start(),
                        TIMEOUT_RANGE_MS.end()
                    ),
                ));
            }
            ms
        };
        let connect_timeout_ms = timeout(
            "connect-timeout-ms",
            self.connect_timeout_ms,
            DEFAULT_CONNECT_TIMEOUT_MS,
        );
        let first_byte_timeout_ms = timeout(
            "first-byte-timeout-ms",
            self.first_byte_timeout_ms,
            DEFAULT_FIRST_BYTE_TIMEOUT_MS,
        );
        let between_bytes_timeout_ms = timeout(
            "between-bytes-timeout-ms",
            self.between_bytes_timeout_ms,
            DEFAULT_BETWEEN_BYTES_TIMEOUT_MS,
        );
        if !violations.is_empty() {
            return Err(Error::InvalidRequest(violations));
        }
        let api_key = self
            .api_key
            .filter(|k| !k.trim().is_empty())
            .or(env_key.filter(|k| !k.trim().is_empty()));
        let api_key = match api_key {
            None => {
                return Err(Error::Unauthorized(ApiError {
                    status: 0,
                    code: Some("missing_api_key".into()),
                    message: format!(
                        "no API key: set {} in the component's environment or pass client-config.api-key",
                        provider.api_key_env()
                    ),
                }));
            }
            // A key is sent as a header value: anything but visible ASCII could split the
            // header or be mangled, so it is refused rather than sent.
            Some(k) if !k.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(Error::Unauthorized(ApiError {
                    status: 0,
                    code: Some("invalid_api_key".into()),
                    message: "the API key contains spaces or non-ASCII characters; copy it again from the dashboard".into(),
                }));
            }
            Some(k) => k,
        };
        Ok(ClientConfig {
            base_url,
            api_key: Some(api_key),
            connect_timeout_ms,
            first_byte_timeout_ms,
            between_bytes_timeout_ms,
            max_response_bytes,
            poll,
        })
    }
}

fn violation(field: &str, rule: &str, message: String) -> FieldViolation {
    FieldViolation {
        field: field.into(),
        rule: rule.into(),
        message,
    }
}

fn check_base_url(given: &str, violations: &mut Vec<FieldViolation>) -> String {
    let url = given.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let ok = match rest {
        Some(rest) => {
            let host = rest.split('/').next().unwrap_or("");
            !host.is_empty()
                && !rest.contains(['?', '#', '@'])
                && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !ok {
        violations.push(violation(
            "base-url",
            "invalid-format",
            format!(
                "base-url {url:?} is not an http(s) URL with a host and no query, fragment or credentials"
            ),
        ));
    }
    url.to_string()
}

fn check_poll_policy(p: &PollPolicy, violations: &mut Vec<FieldViolation>) {
    if p.min_interval_ms < MIN_POLL_INTERVAL_MS {
        violations.push(violation(
            "poll.min-interval-ms",
            "out-of-range",
            format!(
                "min-interval-ms is {}; use at least {MIN_POLL_INTERVAL_MS}",
                p.min_interval_ms
            ),
        ));
    }
    if p.max_interval_ms < p.min_interval_ms {
        violations.push(violation(
            "poll.max-interval-ms",
            "out-of-range",
            format!(
                "max-interval-ms ({}) is below min-interval-ms ({})",
                p.max_interval_ms, p.min_interval_ms
            ),
        ));
    }
    if p.deadline_ms == 0 {
        violations.push(violation(
            "poll.deadline-ms",
            "out-of-range",
            "deadline-ms is 0; give wait some time".into(),
        ));
    }
    if p.max_retries > 20 {
        violations.push(violation(
            "poll.max-retries",
            "out-of-range",
            format!(
                "max-retries is {}; at most 20 (each retry spends the account's request budget)",
                p.max_retries
            ),
        ));
    }
}
