//! The last line of defence for secrets: every sink the host writes to — the terminal, the
//! log, the journal, the manifest and the contact sheet — passes its text through
//! [`redact`], which replaces any registered secret with [`REDACTED`].
//!
//! The first lines are elsewhere (the plugin only ever holds a placeholder, the sandbox swaps
//! in the real key on requests to the API origin alone), but the key can still come back:
//! a provider may echo it in an error message, and the plugin may copy whatever it received
//! into a job id or a failure message. This module is the one place that knows the secrets;
//! a host registers the API key with [`register_secret`](crate::register_secret) (the
//! pipeline's session does when it opens).

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
/// forms it takes once escaped for JSON or HTML, percent-encoded, or base64-encoded (as in a
/// `Basic` credential a server echoes back), that base64 percent-encoded too (in a URL).
///
/// Not covered: percent-encoding of only some characters or in mixed case, base64 wrapped
/// across lines, and encodings beyond these (hex, punycode, compression) — a server would have
/// to go out of its way to produce them.
pub fn register(secret: &str) {
    if secret.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let mut list = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.trim_matches('"').to_string();
    let forms = [secret.to_string(), json, html_escaped(secret)]
        .into_iter()
        .chain(percent_encoded(secret))
        .chain(base64_fragments(secret));
    for form in forms {
        if form.len() >= MIN_SECRET_CHARS && !list.contains(&form) {
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

/// `s` percent-encoded: only what URLs reserve, and every byte; hex digits upper and lower case.
fn percent_encoded(s: &str) -> Vec<String> {
    [(false, true), (false, false), (true, true), (true, false)]
        .map(|(all, upper)| percent_encode(s, all, upper))
        .to_vec()
}

/// `s` with the bytes URLs reserve (or, with `all`, every byte) written as `%XX`.
fn percent_encode(s: &str, all: bool, upper: bool) -> String {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    s.bytes()
        .map(|b| match (all || !unreserved(b), upper) {
            (false, _) => char::from(b).to_string(),
            (true, true) => format!("%{b:02X}"),
            (true, false) => format!("%{b:02x}"),
        })
        .collect()
}

/// The base64 characters (standard and URL-safe alphabets) that `s` alone decides, at each of
/// the three positions it can start at within a larger encoded text: the characters it shares
/// with neighbouring bytes are left out, so the secret is found wherever it sits.
fn base64_fragments(s: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let bytes = s.as_bytes();
    let mut forms = Vec::new();
    for offset in 0..3usize {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(bytes);
        // Characters wholly inside the secret's bits: from the first that starts after the
        // `offset` leading bytes to the last that ends within the secret.
        let first = (8 * offset).div_ceil(6);
        let last = 8 * (offset + bytes.len()) / 6;
        for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&padded);
            if let Some(fragment) = encoded.get(first..last) {
                // In a URL the standard alphabet's `+` and `/` come percent-encoded.
                for upper in [true, false] {
                    forms.push(percent_encode(fragment, false, upper));
                }
                forms.push(fragment.to_string());
            }
        }
    }
    forms
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

    #[test]
    fn a_secret_encoded_in_a_url_or_in_base64_is_removed_wherever_it_sits() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        // Its tail encodes to base64 holding `/` and `+`, which a URL percent-encodes.
        let key = "sk-enc/+?=Zz-9876543210-tail-???>>>~~~";
        register(key);
        for prefix in ["", "u", "us", "user:", "Basic-"] {
            for suffix in ["", "x", "xy", "@host"] {
                let plain = format!("{prefix}{key}{suffix}");
                for engine in [STANDARD, URL_SAFE] {
                    let echoed = format!("echo: Basic {} end", engine.encode(&plain));
                    let shown = redact(&echoed);
                    assert!(shown.contains(REDACTED), "{echoed} -> {shown}");
                    // Whatever the key's alignment, none of its characters are left.
                    for fragment in base64_fragments(key) {
                        assert!(!shown.contains(&fragment), "{fragment} in {shown}");
                    }
                    // Nor of the secret in what is left, decoded at any alignment.
                    let left = shown.replace(REDACTED, "");
                    assert!(!left.contains("9876543210"), "{left}");
                }
            }
        }
        let in_url = STANDARD
            .encode(format!("u:{key}"))
            .replace('+', "%2B")
            .replace('/', "%2F");
        let url = format!("https://x.test/?auth={in_url}");
        let shown = redact(&url);
        assert!(shown.contains(REDACTED), "{shown}");
        for encoded in percent_encoded(key) {
            let url = format!("https://x.test/?k={encoded}&a=1");
            let shown = redact(&url);
            assert!(
                shown.contains(REDACTED) && !shown.contains("9876543210"),
                "{shown}"
            );
        }
        assert_eq!(
            redact("plain text, nothing encoded"),
            "plain text, nothing encoded"
        );
    }
}
