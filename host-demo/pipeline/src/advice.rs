//! Sentences for people: what a contract error means and what to do about it.
//!
//! Every field of an error comes from the plugin or the provider, so each goes through
//! [`shown`] first: a message cannot drive the terminal it is printed on.

use crate::untrusted::shown;
use happyhorse_sandbox::api::{Error, TransportKind};

/// Render a component error as "what happened — what to do".
pub fn describe(error: &Error) -> String {
    match error {
        Error::PermanentInvalidRequest(violations) => {
            let mut out = String::from("the request is invalid (nothing was sent):");
            for v in violations {
                out.push_str(&format!(
                    "\n  - {} [{}]: {}",
                    shown(&v.field),
                    shown(&v.rule),
                    shown(&v.message)
                ));
            }
            out
        }
        Error::PermanentUnauthorized(e) => format!(
            "the API key was refused ({}): {} — check EMPIRIOLABS_API_KEY",
            shown(e.code.as_deref().unwrap_or("unauthorized")),
            shown(&e.message)
        ),
        Error::InsufficientCredits(e) => {
            format!(
                "the account has no credits left: {} — top up, then retry",
                shown(&e.message)
            )
        }
        Error::RateLimited(r) => match r.retry_after_ms {
            Some(ms) => format!(
                "rate limited: {} — retry in {:.1} s",
                shown(&r.message),
                ms as f64 / 1000.0
            ),
            None => format!("rate limited: {} — retry shortly", shown(&r.message)),
        },
        Error::JobFailed(f) => format!(
            "job {} failed ({}): {}",
            shown(&f.job_id),
            shown(&f.failure.code),
            shown(&f.failure.message)
        ),
        Error::NotFound(id) => format!(
            "this endpoint does not know job {}: it was submitted to another endpoint (use the --base-url it was submitted to) or the endpoint no longer has it; nothing was resubmitted",
            shown(id)
        ),
        Error::ServerError(e) => format!(
            "the provider failed (HTTP {}): {} — retry later",
            e.status,
            shown(&e.message)
        ),
        Error::TransportError(t) => {
            let hint = match t.kind {
                TransportKind::Denied => "the host's sandbox policy refused this destination",
                TransportKind::Dns => "check the base URL's host name",
                TransportKind::Connect => "is the server up and reachable?",
                TransportKind::Tls => "the server's TLS certificate or protocol was rejected",
                TransportKind::Interrupted => "the connection broke; retry",
                TransportKind::Other => "retry, and report it if it persists",
            };
            format!("network error: {} — {hint}", shown(&t.message))
        }
        Error::PermanentSubmitOutcomeUnknown(u) => format!(
            "the submit may or may not have created a (billed) job: {} — do NOT resubmit blindly",
            shown(&u.message)
        ),
        Error::Timeout(t) => format!(
            "gave up waiting for job {}; it goes on at the provider — resume with `host-demo resume {}`",
            shown(&t.job_id),
            shown(&t.job_id)
        ),
        Error::MalformedResponse(e) => format!(
            "the provider's answer could not be read (HTTP {}): {}",
            e.status,
            shown(&e.message)
        ),
        Error::ExecutionFailed => "the component failed to execute".to_string(),
    }
}

/// Whether a failed poll says nothing about the job itself — the server was busy, silent,
/// garbled or out of reach — so polling it again later may well succeed. A denial or a TLS
/// failure would fail the same way again; the rest are the provider's verdict on the job or
/// the request.
pub fn is_transient(error: &Error) -> bool {
    match error {
        Error::RateLimited(_)
        | Error::ServerError(_)
        | Error::MalformedResponse(_)
        | Error::Timeout(_) => true,
        Error::TransportError(t) => !matches!(t.kind, TransportKind::Denied | TransportKind::Tls),
        _ => false,
    }
}

/// Format micro-units of a currency as `$1.23` (USD) or `1.23 XYZ`.
pub fn money(micros: u64, currency: &str) -> String {
    let whole = micros / 1_000_000;
    let cents = (micros % 1_000_000 + 5_000) / 10_000;
    let (whole, cents) = if cents == 100 {
        (whole + 1, 0)
    } else {
        (whole, cents)
    };
    if currency == "USD" {
        format!("${whole}.{cents:02}")
    } else {
        format!("{whole}.{cents:02} {currency}")
    }
}

#[cfg(test)]
mod tests {
    use super::{describe, money};
    use happyhorse_sandbox::api::{Error, FailedJob, JobFailure};

    #[test]
    fn provider_text_cannot_drive_the_terminal() {
        let error = Error::JobFailed(FailedJob {
            job_id: "job\u{1b}]0;pwned\u{7}".into(),
            failure: JobFailure {
                code: "bad\u{1b}[2J".into(),
                message: "wiped\u{1b}[31m\r".into(),
            },
        });
        let text = describe(&error);
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains("\\u{1b}[2J"), "{text}");
        assert!(!describe(&Error::NotFound("x\u{1b}c".into())).contains('\u{1b}'));
    }

    #[test]
    fn money_rounds_to_cents() {
        assert_eq!(money(700_000, "USD"), "$0.70");
        assert_eq!(money(2_700_000, "USD"), "$2.70");
        assert_eq!(money(1_995_000, "USD"), "$2.00");
        assert_eq!(money(140_000, "EUR"), "0.14 EUR");
    }
}
