//! The last line of defence for secrets: every sink the host writes to — the terminal, the
//! log, the journal, the manifest and the contact sheet — passes its text through
//! [`redact`], which replaces any registered secret with [`REDACTED`].
//!
//! The first lines are elsewhere (the plugin only ever holds a placeholder, the sandbox swaps
//! in the real key on requests to the API origin alone), but the key can still come back:
//! a provider may echo it in an error message, and the plugin may copy whatever it received
//! into a job id or a failure message. This module is the one place that knows the secrets;
//! [`crate::pipeline::session::Session::open`] registers the API key.

use std::borrow::Cow;
use std::io::Write;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not registered: replacing every occurrence of a few common
/// characters would garble all output while protecting nothing a real key is made of.
pub const MIN_SECRET_CHARS: usize = 8;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

fn secrets() -> std::sync::RwLockReadGuard<'static, Vec<String>> {
    // A panic elsewhere while registering cannot leave the list half-changed.
    SECRETS.read().unwrap_or_else(|e| e.into_inner())
}

/// Register `secret` for the rest of the process: from now on [`redact`] removes it, and the
/// forms it takes once escaped for JSON or HTML.
pub fn register(secret: &str) {
    if secret.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let mut list = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.trim_matches('"').to_string();
    for form in [secret.to_string(), json, html_escaped(secret)] {
        if !list.contains(&form) {
            list.push(form);
        }
    }
    // Longest first, so a secret containing another is removed whole.
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

fn html_escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Whether `text` contains a registered secret.
pub fn contains_secret(text: &str) -> bool {
    secrets().iter().any(|s| text.contains(s.as_str()))
}

/// `text` with every registered secret replaced by `REDACTED`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let list = secrets();
    if !list.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for secret in list.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    Cow::Owned(out)
}

/// Every string inside a JSON value redacted (keys included), for the manifest and the journal.
pub fn redact_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(redact(s).into_owned()),
        Value::Array(list) => Value::Array(list.iter().map(redact_json).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (redact(k).into_owned(), redact_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A `tracing_subscriber` writer to stderr that redacts each event before it is written. The
/// formatter writes an event in pieces; they are collected and written once, on drop, so a
/// secret split across two writes is still found.
#[derive(Default)]
pub struct RedactingStderr {
    buffer: Vec<u8>,
}

impl Write for RedactingStderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingStderr {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buffer);
        let mut err = std::io::stderr().lock();
        // Nowhere left to report a failure to write the log.
        let _ = err.write_all(redact(&text).as_bytes());
        let _ = err.flush();
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingMakeWriter {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr::default()
    }
}

/// Makes a `RedactingStderr` per log event (see `main.rs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingMakeWriter;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_removed_in_every_form() {
        let key = "sk-test-REDACT<&>\"-0123456789";
        assert!(!contains_secret(&format!("x{key}y")));
        register(key);
        register("short");
        assert_eq!(redact("nothing here"), "nothing here");
        assert_eq!(redact("short stays"), "short stays");
        assert_eq!(
            redact(&format!("a {key} b {key}")),
            "a [REDACTED] b [REDACTED]"
        );
        let json = serde_json::json!({ "m": format!("echo {key}") }).to_string();
        assert!(!redact(&json).contains("0123456789"), "{json}");
        assert!(!redact(&html_escaped(key)).contains("0123456789"));
        let value = redact_json(&serde_json::json!({ key: [format!("id-{key}")] }));
        assert!(!value.to_string().contains("0123456789"));
        assert!(contains_secret(&format!("x{key}y")));
    }
}
