//! What a run leaves next to its clips: `manifest.json` for programs and `index.html`, a
//! contact sheet for people. Both are written from the journal alone, so they describe the
//! same truth `host-demo status` shows. Neither ever contains the API key: the pipeline never
//! holds it (the sandbox does), and base URLs are written without user information.

use crate::advice::money;
use crate::clip::Verdict;
use crate::journal::{ShotRow, State};
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::Path;
use video_gen_core::time::rfc3339;

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The contact sheet's file name.
pub const INDEX: &str = "index.html";

/// Context for the reports beyond the journal.
#[derive(Debug, Clone)]
pub struct ReportContext {
    /// The storyboard file.
    pub storyboard: String,
    /// The API base URL (user information removed).
    pub api_base_url: Option<String>,
    /// Whether the clips came from the built-in emulator.
    pub emulated: Option<bool>,
}

/// `url` without any `user:password@`.
pub fn safe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

fn seconds_between(a: Option<i64>, b: Option<i64>) -> Value {
    match (a, b) {
        (Some(a), Some(b)) if b >= a => json!((b - a) as f64 / 1000.0),
        _ => Value::Null,
    }
}

/// One shot as the manifest (and `status --json`) shows it.
pub fn shot_json(row: &ShotRow) -> Value {
    let t = &row.timings;
    let at = |ms: Option<i64>| ms.map(rfc3339);
    let (files, error) = match &row.state {
        State::Downloaded { files, .. } => (json!(files), Value::Null),
        State::Failed { failure, .. } | State::Unknown { failure } => (json!([]), json!(failure)),
        _ => (json!([]), Value::Null),
    };
    json!({
        "name": row.plan.name,
        "output": row.plan.output,
        "state": row.state.name(),
        "job_id": row.state.job_id(),
        "endpoint": row.endpoint,
        "request": row.plan.request,
        "warnings": row.plan.warnings,
        "cost_estimate": {
            "currency": row.plan.currency,
            "micros": row.plan.cost_micros,
            "amount": money(row.plan.cost_micros, &row.plan.currency),
            "billed_seconds": row.plan.billed_seconds,
        },
        "files": files,
        "error": error,
        "timings": {
            "created_at": rfc3339(t.created_at),
            "submitting_at": at(t.submitting_at),
            "submitted_at": at(t.submitted_at),
            "completed_at": at(t.completed_at),
            "downloaded_at": at(t.downloaded_at),
            "ended_at": at(t.ended_at),
            "updated_at": rfc3339(t.updated_at),
            "generation_seconds": seconds_between(t.submitted_at, t.completed_at),
            "download_seconds": seconds_between(t.completed_at, t.downloaded_at),
        },
    })
}

/// The whole manifest.
pub fn manifest(rows: &[ShotRow], context: &ReportContext) -> Value {
    let count = |state: &str| rows.iter().filter(|r| r.state.name() == state).count();
    let currency = rows.first().map_or("USD", |r| r.plan.currency.as_str());
    let total = total_micros(rows);
    json!({
        "storyboard": context.storyboard,
        "generated_at": rfc3339(crate::journal::now_ms()),
        "api_base_url": context.api_base_url,
        "emulated": context.emulated,
        "totals": {
            "shots": rows.len(),
            "downloaded": count("downloaded"),
            "failed": count("failed"),
            "unknown": count("unknown"),
            "unfinished": rows.len() - count("downloaded") - count("failed") - count("unknown"),
            "clips_not_as_paid_for": clips_not_as_paid_for(rows),
            "estimated_cost": { "currency": currency, "micros": total, "amount": money(total, currency) },
        },
        "shots": rows.iter().map(shot_json).collect::<Vec<_>>(),
    })
}

/// How many downloaded clips failed their check ([`crate::clip`]): paid for, not delivered.
pub fn clips_not_as_paid_for(rows: &[ShotRow]) -> usize {
    rows.iter()
        .map(|r| r.state.failed_clip_checks().count())
        .sum()
}

/// The estimates' sum; a sum past the largest amount shows as that amount, never wraps to a
/// small one (the plan refuses such totals before anything is sent).
fn total_micros(rows: &[ShotRow]) -> u64 {
    rows.iter()
        .fold(0u64, |sum, r| sum.saturating_add(r.plan.cost_micros))
}

/// Escape text for HTML content and attribute values (secrets redacted first).
fn esc(s: &str) -> String {
    let s = happyhorse_sandbox::redact(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative file name as a URL path segment.
fn href(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn setting(request: &Value, key: &str) -> Option<String> {
    match request.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        v => Some(v.to_string()),
    }
}

/// The contact sheet: a `<video>` per downloaded clip with its prompt, settings and cost; a
/// placeholder with the state for the rest. Self-contained (no scripts, no remote assets).
pub fn index_html(rows: &[ShotRow], context: &ReportContext) -> String {
    let currency = rows.first().map_or("USD", |r| r.plan.currency.as_str());
    let total = total_micros(rows);
    let downloaded = rows
        .iter()
        .filter(|r| matches!(r.state, State::Downloaded { .. }))
        .count();
    let title = Path::new(&context.storyboard).file_name().map_or_else(
        || context.storyboard.clone(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — contact sheet</title>
<style>
body {{ font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; background: #111; color: #eee; }}
header p {{ color: #aaa; }}
.sheet {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1rem; }}
.shot {{ background: #1c1c1c; border-radius: 8px; padding: .75rem; border-top: 4px solid #555; }}
.shot.downloaded {{ border-top-color: #3a9d5d; }}
.shot.failed, .shot.unknown, .shot.not-as-paid-for {{ border-top-color: #c0392b; }}
.check {{ margin: .35rem 0 0; font-size: .9rem; }}
.check.matches {{ color: #7fd19b; }}
.check.mismatch, .check.unreadable {{ color: #ff8a7a; font-weight: 600; }}
video, .placeholder {{ width: 100%; aspect-ratio: 16 / 9; background: #000; border-radius: 4px; }}
.placeholder {{ display: flex; align-items: center; justify-content: center; color: #bbb; text-align: center; padding: .5rem; box-sizing: border-box; }}
h2 {{ font-size: 1.05rem; margin: .5rem 0 .25rem; }}
.prompt {{ margin: 0 0 .5rem; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .1rem .75rem; margin: 0; color: #bbb; font-size: .9rem; }}
dt {{ color: #888; }}
dd {{ margin: 0; overflow-wrap: anywhere; }}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p>{n} shots · {downloaded} downloaded{wrong} · estimated {cost}{api}</p>
</header>
<main class="sheet">
"#,
        title = esc(&title),
        n = rows.len(),
        cost = esc(&money(total, currency)),
        wrong = match clips_not_as_paid_for(rows) {
            0 => String::new(),
            n => format!(" · <strong>{n} clip(s) not as paid for</strong>"),
        },
        api = match context.emulated {
            Some(true) => " · built-in emulator (nothing billed)",
            _ => "",
        },
    );
    for row in rows {
        let state = row.state.name();
        let wrong = row.state.failed_clip_checks().next().is_some();
        html.push_str(&format!(
            "<article class=\"shot {state}{extra}\" id=\"shot-{id}\" data-shot=\"{id}\" data-state=\"{state}\">\n",
            id = esc(&row.plan.name),
            extra = if wrong { " not-as-paid-for" } else { "" },
        ));
        match &row.state {
            State::Downloaded { files, .. } => {
                for f in files {
                    html.push_str(&clip_html(f, &row.plan.name));
                }
            }
            State::Failed { failure, .. } | State::Unknown { failure } => html.push_str(&format!(
                "<div class=\"placeholder\">{state}: {}</div>\n",
                esc(&failure.message)
            )),
            other => html.push_str(&format!(
                "<div class=\"placeholder\">{}</div>\n",
                esc(other.name())
            )),
        }
        let prompt = row
            .plan
            .request
            .get("prompt")
            .and_then(Value::as_str)
            .unwrap_or("");
        html.push_str(&format!(
            "<h2>{}</h2>\n<p class=\"prompt\">{}</p>\n<dl>\n",
            esc(&row.plan.name),
            esc(prompt)
        ));
        let mut item = |label: &str, value: String| {
            html.push_str(&format!(
                "<dt>{}</dt><dd>{}</dd>\n",
                esc(label),
                esc(&value)
            ));
        };
        for (label, key) in [
            ("mode", "mode"),
            ("resolution", "resolution"),
            ("aspect ratio", "aspect_ratio"),
            ("duration", "duration"),
            ("seed", "seed"),
            ("watermark", "watermark"),
            ("model", "model"),
        ] {
            if let Some(v) = setting(&row.plan.request, key) {
                item(
                    label,
                    if key == "duration" {
                        format!("{v} s")
                    } else {
                        v
                    },
                );
            }
        }
        let images = row
            .plan
            .request
            .get("images")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|i| {
                        i.get("file")
                            .or_else(|| i.get("url"))
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                            .to_string()
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if !images.is_empty() {
            item("images", images.join(", "));
        }
        item("cost", money(row.plan.cost_micros, &row.plan.currency));
        item("state", state.to_string());
        if let Some(job) = row.state.job_id() {
            item("job", job.to_string());
        }
        if let State::Downloaded { files, .. } = &row.state {
            for f in files {
                item(
                    "file",
                    format!(
                        "{} · {} bytes · sha256 {}",
                        f.path,
                        f.bytes,
                        &f.sha256[..f.sha256.len().min(16)]
                    ),
                );
            }
        }
        html.push_str("</dl>\n</article>\n");
    }
    html.push_str("</main>\n</body>\n</html>\n");
    html
}

/// One downloaded clip on the contact sheet: the video, opened at its first frame's time so
/// the browser draws that frame as the poster (a media fragment: nothing is decoded here), and
/// its check — what it was found to be, or "paid for X, received Y" — with the facts as
/// `data-` attributes a test (or a script) can read.
fn clip_html(file: &crate::journal::FileRecord, shot: &str) -> String {
    let mut html = format!(
        "<video controls preload=\"metadata\" src=\"{}#t=0.1\" title=\"{}\"></video>\n",
        esc(&href(&file.path)),
        esc(shot)
    );
    let Some(check) = &file.check else {
        return html;
    };
    let verdict = match check.verdict {
        Verdict::Matches => "matches",
        Verdict::Mismatch => "mismatch",
        Verdict::Unreadable => "unreadable",
        Verdict::Unchecked => "unchecked",
    };
    let mut data = format!(
        " data-verdict=\"{verdict}\" data-file=\"{}\"",
        esc(&file.path)
    );
    if let Some(found) = &check.found {
        if let Some(ms) = found.duration_ms {
            data.push_str(&format!(" data-duration-ms=\"{ms}\""));
        }
        if let Some(frame) = &found.video {
            data.push_str(&format!(
                " data-width=\"{}\" data-height=\"{}\"",
                frame.width, frame.height
            ));
        }
        data.push_str(&format!(" data-audio=\"{}\"", found.audio.is_some()));
    }
    html.push_str(&format!(
        "<p class=\"check {verdict}\"{data}>{}</p>\n",
        esc(&check.summary)
    ));
    html
}

/// Write both reports into `dir`, each through a temporary file renamed into place so a
/// reader never sees half a file.
pub fn write(dir: &Path, rows: &[ShotRow], context: &ReportContext) -> Result<()> {
    // The last line of defence: every string redacted, whatever path it took.
    let manifest =
        serde_json::to_string_pretty(&happyhorse_sandbox::redact_json(&manifest(rows, context)))?;
    replace(&dir.join(MANIFEST), manifest.as_bytes())?;
    let html = index_html(rows, context);
    replace(
        &dir.join(INDEX),
        happyhorse_sandbox::redact(&html).as_bytes(),
    )?;
    Ok(())
}

fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_failure_message_cannot_script_the_contact_sheet_or_leak_the_key() {
        use crate::journal::{Failure, PlannedRow, Stage, Timings};
        let secret = "sk-report-SECRET-0123456789";
        happyhorse_sandbox::register_secret(secret);
        let row = ShotRow {
            plan: PlannedRow {
                name: "a".into(),
                position: 0,
                output: "a".into(),
                fingerprint: "f".into(),
                request: json!({ "prompt": "<img src=x onerror=alert(1)>" }),
                warnings: vec![],
                currency: "USD".into(),
                cost_micros: u64::MAX,
                billed_seconds: 3,
            },
            state: State::Failed {
                job_id: Some("job_1".into()),
                failure: Failure {
                    stage: Stage::Job,
                    code: Some("x".into()),
                    message: format!("<script>alert('{secret}')</script>"),
                },
            },
            timings: Timings::default(),
            endpoint: "<b>https://api.example.com:443</b>".into(),
        };
        let rows = [row.clone(), row];
        let context = ReportContext {
            storyboard: "sb.toml".into(),
            api_base_url: None,
            emulated: None,
        };
        let html = index_html(&rows, &context);
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(!html.contains(secret));
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &rows, &context).unwrap();
        let manifest = std::fs::read_to_string(dir.path().join(MANIFEST)).unwrap();
        assert!(!manifest.contains(secret));
        // Two estimates of the largest amount do not wrap around to a small total.
        let total = &serde_json::from_str::<Value>(&manifest).unwrap()["totals"]["estimated_cost"];
        assert_eq!(total["micros"], json!(u64::MAX));
    }

    #[test]
    fn html_is_escaped_and_urls_lose_credentials() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(href("a b.mp4"), "a%20b.mp4");
        assert_eq!(
            safe_url("https://u:p@api.example.com/"),
            "https://api.example.com"
        );
    }
}
