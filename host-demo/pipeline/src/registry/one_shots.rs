//! The registry's one-shot jobs: every job `host-demo generate` submits, from before its
//! submit is sent to where it ended, and every job `host-demo resume` picks up — so
//! `host-demo jobs` can list them with their cost and files, and `resume` finds the request a
//! job was paid for (its clip is then checked against it, not left `unchecked`).
//!
//! A row is written `submitting` before its submit can be sent and moves on only when the
//! answer is known, so a crash anywhere between leaves `submitting`: outcome unknown, never a
//! reason to send it again.
//!
//! The request is kept as sent, except inline images: a `data:` URL may be megabytes, so it
//! is kept as its media type, size and SHA-256 (of the image's bytes), never its payload.

use super::Registry;
use crate::journal::now_ms;
use crate::storyboard::{mode_name, parse_mode};
use anyhow::Result;
use base64::Engine;
use happyhorse_sandbox::api::{CostEstimate, VideoRequest};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The table, created by the registry's migration (in its transaction) when missing, so a
/// registry from before one-shot jobs were recorded gains it and keeps its submits.
/// `endpoint` is `Session::endpoint` (an origin, or the built-in emulator); `base_url` the
/// URL a resume command must name; `out_dir` absolute, `files` relative to it (JSON);
/// amounts in micro-units of `currency`; times in Unix milliseconds. One row per job and
/// endpoint; rows without a job yet (`job_id` NULL) are each their own.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS one_shots (
    id             INTEGER PRIMARY KEY,
    endpoint       TEXT NOT NULL,
    base_url       TEXT,
    emulated       INTEGER NOT NULL DEFAULT 0,
    job_id         TEXT,
    state          TEXT NOT NULL,
    detail         TEXT,
    request        TEXT,
    cost_micros    INTEGER,
    billed_seconds INTEGER,
    currency       TEXT,
    out_dir        TEXT NOT NULL,
    output         TEXT,
    files          TEXT,
    pickup_flags   TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (endpoint, job_id)
);
CREATE INDEX IF NOT EXISTS one_shots_created ON one_shots (created_at);
";

/// Where a one-shot job stands, as the registry records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Recorded before its submit was sent, nothing since: the submit may or may not have
    /// reached the provider (the process died, or is still sending). Outcome unknown.
    Submitting,
    /// The provider created the job, and it was being waited for when last recorded.
    Submitted,
    /// Every output is downloaded.
    Downloaded,
    /// No clip will come: the provider failed the job, or refused the submit.
    Failed,
    /// Stopped by Ctrl-C after the job was created: it goes on at the provider.
    Stopped,
    /// Left unfinished (given up waiting, a poll or a download that kept failing): the job
    /// is picked up again by its id.
    Resumable,
    /// The submit's answer was lost: a job may exist.
    Unknown,
    /// Stopped before its submit was sent: nothing was billed.
    NotSent,
}

impl JobState {
    /// Every state, in the order a job meets them.
    pub const ALL: [JobState; 8] = [
        JobState::Submitting,
        JobState::Submitted,
        JobState::Downloaded,
        JobState::Failed,
        JobState::Stopped,
        JobState::Resumable,
        JobState::Unknown,
        JobState::NotSent,
    ];

    /// The state's name as stored (and shown).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Submitting => "submitting",
            JobState::Submitted => "submitted",
            JobState::Downloaded => "downloaded",
            JobState::Failed => "failed",
            JobState::Stopped => "stopped",
            JobState::Resumable => "resumable",
            JobState::Unknown => "unknown",
            JobState::NotSent => "not-sent",
        }
    }

    /// The state a stored name means. A name this version does not know (a newer one's)
    /// reads as [`JobState::Unknown`]: the safe side, which never suggests sending again.
    pub fn parse(name: &str) -> JobState {
        JobState::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .unwrap_or(JobState::Unknown)
    }

    /// Whether a job in this state may still deliver, picked up by its id (when it has one).
    pub fn unfinished(self) -> bool {
        matches!(
            self,
            JobState::Submitted | JobState::Stopped | JobState::Resumable
        )
    }
}

/// A downloaded output of a one-shot job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFile {
    /// The path, relative to the job's output folder.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The clip check's verdict (`matches`, `mismatch`, `unreadable`, `unchecked`), when the
    /// clip was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

/// A one-shot job as the registry has it (`host-demo jobs`).
#[derive(Debug, Clone, PartialEq)]
pub struct OneShotJob {
    /// The row's id.
    pub row: i64,
    /// Where the job lives: the API's origin, or the built-in emulator.
    pub endpoint: String,
    /// The API base URL it was sent to (`None` for the built-in emulator).
    pub base_url: Option<String>,
    /// Whether it ran on the built-in emulator: such a job ended with its process.
    pub emulated: bool,
    /// The job, once the provider answered.
    pub job_id: Option<String>,
    /// Where it stands.
    pub state: JobState,
    /// Why it stands there, in a sentence (a failure, a file not as paid for), when recorded.
    pub detail: Option<String>,
    /// The request as sent (inline images described), when known: `None` for a job `resume`
    /// picked up that no `generate` here recorded.
    pub request: Option<Value>,
    /// The estimate, micro-units of `currency`, when known.
    pub cost_micros: Option<u64>,
    /// The estimate's currency, when known.
    pub currency: Option<String>,
    /// Where its files go (absolute).
    pub out_dir: PathBuf,
    /// The `--output` name its files take, if one was given.
    pub output: Option<String>,
    /// Its downloaded files.
    pub files: Vec<JobFile>,
    /// When it was recorded (Unix ms).
    pub created_at: i64,
    /// When it last changed (Unix ms).
    pub updated_at: i64,
    /// The flags a command that picks it up repeats, as a printed command carries them
    /// (` --component … --timeout-secs …`; empty when none were given).
    pub pickup_flags: String,
}

impl OneShotJob {
    /// The facts as JSON, times as RFC 3339 and files as absolute paths: what
    /// `host-demo jobs --json` prints for the job, before the command line adds its advice.
    pub fn json(&self) -> Value {
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|f| {
                json!({
                    "path": self.out_dir.join(&f.path),
                    "bytes": f.bytes,
                    "sha256": f.sha256,
                    "verdict": f.verdict,
                })
            })
            .collect();
        let estimate = match (self.cost_micros, &self.currency) {
            (Some(micros), Some(currency)) => json!({
                "micros": micros,
                "currency": currency,
                "amount": crate::advice::money(micros, currency),
            }),
            _ => Value::Null,
        };
        json!({
            "kind": "generate",
            "recorded_at": video_gen_core::time::rfc3339(self.created_at),
            "updated_at": video_gen_core::time::rfc3339(self.updated_at),
            "endpoint": self.endpoint,
            "base_url": self.base_url,
            "emulated": self.emulated,
            "job_id": self.job_id,
            "state": self.state.as_str(),
            "detail": self.detail,
            "estimate": estimate,
            "out_dir": self.out_dir,
            "output": self.output,
            "files": files,
            "request": self.request,
        })
    }
}

/// A one-shot job about to be recorded: what is known before its submit (or, for `resume`,
/// before it is picked up).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewJob<'a> {
    /// `Session::endpoint`.
    pub endpoint: &'a str,
    /// The API base URL (`None` for the built-in emulator).
    pub base_url: Option<&'a str>,
    /// Whether it is the built-in emulator.
    pub emulated: bool,
    /// The request as validated, when known.
    pub request: Option<&'a VideoRequest>,
    /// Its estimate, when known.
    pub cost: Option<&'a CostEstimate>,
    /// Where its files go.
    pub out_dir: &'a Path,
    /// The `--output` name, if given.
    pub output: Option<&'a str>,
}

/// Where a one-shot job ended, for this process.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobEnd {
    /// The state to record.
    pub state: JobState,
    /// The job, when one is known.
    pub job_id: Option<String>,
    /// Why, in a sentence.
    pub detail: Option<String>,
    /// The files downloaded (empty unless `Downloaded`).
    pub files: Vec<JobFile>,
}

/// What the registry knew of a job `resume` picked up: its request and estimate.
pub(crate) type Known = (VideoRequest, CostEstimate);

/// The columns [`one_shot`] reads, in its order.
const COLUMNS: &str = "id, endpoint, base_url, emulated, job_id, state, detail, request, \
                       cost_micros, currency, out_dir, output, files, created_at, updated_at, \
                       pickup_flags";

/// A row of `SELECT COLUMNS FROM one_shots`. Nothing in it is trusted: a value that does not
/// parse reads as absent.
fn one_shot(r: &rusqlite::Row<'_>) -> rusqlite::Result<OneShotJob> {
    let text = |i: usize| r.get::<_, Option<String>>(i);
    let json_of = |t: Option<String>| t.and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let files = text(12)?
        .and_then(|t| serde_json::from_str::<Vec<JobFile>>(&t).ok())
        .unwrap_or_default();
    Ok(OneShotJob {
        row: r.get(0)?,
        endpoint: r.get(1)?,
        base_url: text(2)?,
        emulated: r.get::<_, Option<i64>>(3)?.unwrap_or(0) != 0,
        job_id: text(4)?,
        state: JobState::parse(&r.get::<_, String>(5)?),
        detail: text(6)?,
        request: json_of(text(7)?),
        cost_micros: r
            .get::<_, Option<i64>>(8)?
            .and_then(|c| u64::try_from(c).ok()),
        currency: text(9)?,
        out_dir: PathBuf::from(r.get::<_, String>(10)?),
        output: text(11)?,
        files,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        pickup_flags: text(15)?.unwrap_or_default(),
    })
}

impl Registry {
    /// Record a one-shot job whose submit is about to be sent, `submitting`: called before
    /// the submit can go, so a crash from here on leaves it recorded. Returns its row.
    pub(crate) fn record_submitting(&self, job: &NewJob<'_>) -> Result<i64> {
        let conn = self.conn();
        let now = now_ms();
        conn.execute(
            "INSERT INTO one_shots (endpoint, base_url, emulated, state, request, cost_micros,
                 billed_seconds, currency, out_dir, output, created_at, updated_at, pickup_flags)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
            params![
                job.endpoint,
                job.base_url,
                job.emulated,
                JobState::Submitting.as_str(),
                job.request.map(stored_request),
                job.cost
                    .map(|c| i64::try_from(c.total_micros).unwrap_or(i64::MAX)),
                job.cost.map(|c| c.billed_seconds),
                job.cost.map(|c| c.currency.as_str()),
                job.out_dir.to_string_lossy(),
                job.output,
                now,
                self.pickup_flags,
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Record the job a recorded submit created, as soon as it exists.
    pub(crate) fn record_created(&self, row: i64, job_id: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE one_shots SET job_id = ?2, state = ?3, detail = NULL, updated_at = ?4
             WHERE id = ?1",
            params![row, job_id, JobState::Submitted.as_str(), now_ms()],
        )?;
        Ok(())
    }

    /// Record where a one-shot job ended for this process. A job id already recorded is
    /// kept when `end` has none.
    pub(crate) fn record_end(&self, row: i64, end: &JobEnd) -> Result<()> {
        let files = (!end.files.is_empty())
            .then(|| serde_json::to_string(&end.files))
            .transpose()?;
        self.conn().execute(
            "UPDATE one_shots SET state = ?2, job_id = COALESCE(?3, job_id), detail = ?4,
                 files = COALESCE(?5, files), updated_at = ?6
             WHERE id = ?1",
            params![
                row,
                end.state.as_str(),
                end.job_id,
                end.detail.as_deref().map(redacted),
                files,
                now_ms()
            ],
        )?;
        Ok(())
    }

    /// Record that `job_id` at `job.endpoint` is being picked up (`resume`): its row, aimed
    /// at the new output folder and name and marked `submitted`, or a new row when the
    /// registry does not know the job. Returns the row and, when the row knew them, the
    /// request and estimate the job was paid for. A row whose job was downloaded is left as
    /// it is (its files stay where they were, listed where they are): no row, then, for this
    /// pick-up, which only fetches the clip again.
    pub(crate) fn record_resumed(
        &self,
        job: &NewJob<'_>,
        job_id: &str,
    ) -> Result<(Option<i64>, Option<Known>)> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = now_ms();
        let found = tx
            .query_row(
                "SELECT id, request, cost_micros, billed_seconds, currency, state FROM one_shots
                 WHERE endpoint = ?1 AND job_id = ?2",
                params![job.endpoint, job_id],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()?;
        let (row, known) = match found {
            Some((_, request, micros, seconds, currency, state))
                if JobState::parse(&state) == JobState::Downloaded =>
            {
                (None, known(request, micros, seconds, currency))
            }
            Some((row, request, micros, seconds, currency, _)) => {
                tx.execute(
                    "UPDATE one_shots SET state = ?2, detail = NULL, out_dir = ?3, output = ?4,
                         base_url = COALESCE(?5, base_url), updated_at = ?6, pickup_flags = ?7
                     WHERE id = ?1",
                    params![
                        row,
                        JobState::Submitted.as_str(),
                        job.out_dir.to_string_lossy(),
                        job.output,
                        job.base_url,
                        now,
                        self.pickup_flags,
                    ],
                )?;
                let known = known(request, micros, seconds, currency);
                (Some(row), known)
            }
            None => {
                tx.execute(
                    "INSERT INTO one_shots (endpoint, base_url, emulated, job_id, state, out_dir,
                         output, created_at, updated_at, pickup_flags)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
                    params![
                        job.endpoint,
                        job.base_url,
                        job.emulated,
                        job_id,
                        JobState::Submitted.as_str(),
                        job.out_dir.to_string_lossy(),
                        job.output,
                        now,
                        self.pickup_flags,
                    ],
                )?;
                (Some(tx.last_insert_rowid()), None)
            }
        };
        tx.commit()?;
        Ok((row, known))
    }

    /// The `limit` one-shot jobs recorded last, newest first.
    pub fn one_shots(&self, limit: usize) -> Result<Vec<OneShotJob>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM one_shots ORDER BY created_at DESC, id DESC LIMIT ?1"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![limit], one_shot)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A stored request and estimate, read back as what the job was paid for: the request
/// without its images (they are described, not kept, and nothing resubmits it).
fn known(
    request: Option<String>,
    micros: Option<i64>,
    seconds: Option<i64>,
    currency: Option<String>,
) -> Option<Known> {
    let request = request_of(&serde_json::from_str(&request?).ok()?)?;
    let cost = CostEstimate {
        currency: currency?,
        billed_seconds: u32::try_from(seconds.unwrap_or(0)).unwrap_or(0),
        micros_per_second: 0,
        total_micros: u64::try_from(micros?).ok()?,
    };
    Some((request, cost))
}

/// Text bound for the registry, with any registered secret replaced.
fn redacted(text: &str) -> String {
    happyhorse_sandbox::redact(text).into_owned()
}

/// The longest image URL kept whole; a longer one keeps its head and its length.
const MAX_URL_CHARS: usize = 2048;

/// `request` as the registry keeps it (JSON text): every field as sent, inline images
/// described by media type, size and SHA-256.
pub(crate) fn stored_request(request: &VideoRequest) -> String {
    let value = json!({
        "model": request.model,
        "prompt": request.prompt,
        "mode": mode_name(request.mode),
        "images": request.images.iter().map(|i| stored_image(i)).collect::<Vec<_>>(),
        "aspect_ratio": request.aspect_ratio,
        "resolution": request.resolution,
        "duration": request.duration_seconds,
        "seed": request.seed,
        "watermark": request.watermark,
    });
    // Each value redacted before it is written as JSON: a key escaped inside the text
    // (`\"`, `\\`) would no longer match the text redaction looks for.
    happyhorse_sandbox::redact_json(&value).to_string()
}

/// One image as stored: a URL as given (its head, when absurdly long), or an inline `data:`
/// URL's media type, decoded size and SHA-256, never its payload.
fn stored_image(image: &str) -> Value {
    let is_data = image
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:"));
    if !is_data {
        if image.len() > MAX_URL_CHARS {
            let head = &image[..image.floor_char_boundary(200)];
            return json!({ "url": format!("{head}…"), "chars": image.len() });
        }
        return json!({ "url": image });
    }
    let rest = &image[5..];
    let (head, payload) = rest.split_once(',').unwrap_or((rest, ""));
    let media_type = head.split(';').next().unwrap_or("");
    let media_type = &media_type[..media_type.floor_char_boundary(100)];
    let base64 = head
        .rsplit(';')
        .next()
        .is_some_and(|p| p.eq_ignore_ascii_case("base64"));
    let bytes = if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(payload)
            .unwrap_or_else(|_| payload.as_bytes().to_vec())
    } else {
        payload.as_bytes().to_vec()
    };
    json!({
        "inline": media_type,
        "bytes": bytes.len(),
        "sha256": format!("{:x}", Sha256::digest(&bytes)),
    })
}

/// A stored request read back, without its images; `None` when it is not one.
pub(crate) fn request_of(value: &Value) -> Option<VideoRequest> {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    Some(VideoRequest {
        model: text("model"),
        prompt: text("prompt")?,
        mode: value
            .get("mode")
            .and_then(Value::as_str)
            .and_then(parse_mode),
        images: vec![],
        aspect_ratio: text("aspect_ratio"),
        resolution: text("resolution"),
        duration_seconds: value
            .get("duration")
            .and_then(Value::as_u64)
            .and_then(|d| u32::try_from(d).ok()),
        seed: value.get("seed").and_then(Value::as_i64),
        watermark: value.get("watermark").and_then(Value::as_bool),
    })
}
