//! The JSON shapes of submit answers, job objects and usage entries, in either status style.

use std::time::{Instant, SystemTime};

use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::config::StatusStyle;
use crate::farm::ProgressScale;
use crate::state::{Job, Phase, Shared};
use crate::validation::MODEL_ID;

/// The word for a phase in the given style.
fn status_word(style: StatusStyle, phase: &Phase) -> &'static str {
    match (style, phase) {
        (StatusStyle::Documented, Phase::Queued) => "queued",
        (StatusStyle::Documented, Phase::Running(_)) => "running",
        (StatusStyle::Documented, Phase::Completed) => "completed",
        (StatusStyle::Documented, Phase::Failed(_)) => "failed",
        (StatusStyle::Variant, Phase::Queued) => "IN_QUEUE",
        (StatusStyle::Variant, Phase::Running(_)) => "Processing",
        (StatusStyle::Variant, Phase::Completed) => "succeeded",
        (StatusStyle::Variant, Phase::Failed(_)) => "FAILED",
    }
}

fn progress(phase: &Phase) -> f64 {
    match phase {
        Phase::Queued => 0.0,
        Phase::Running(p) => p.clamp(0.0, 1.0),
        Phase::Completed | Phase::Failed(_) => 1.0,
    }
}

fn error_value(phase: &Phase) -> Value {
    match phase {
        Phase::Failed(e) => json!({ "code": e.code, "message": e.message }),
        _ => Value::Null,
    }
}

/// The answer to a successful submit.
pub(crate) fn submit_answer(shared: &Shared, job: &Job) -> Value {
    let style = shared.config.status_style;
    let mut answer = json!({
        "job_id": job.id,
        "status": status_word(style, &Phase::Queued),
        "created_at": rfc3339(job.created_wall),
    });
    if style == StatusStyle::Variant {
        answer["request_id"] = json!(format!("req_{}", job.id.trim_start_matches("job_")));
    }
    answer
}

/// The job object served by `GET /v1/jobs/{job_id}` at `now`.
pub(crate) fn job_object(shared: &Shared, job: &Job, now: Instant, wall: SystemTime) -> Value {
    let config = &shared.config;
    let phase = job.phase(now);
    let terminal = matches!(phase, Phase::Completed | Phase::Failed(_));
    let completed_at = if terminal {
        json!(rfc3339(job.completed_wall()))
    } else {
        Value::Null
    };
    let url = (phase == Phase::Completed).then(|| {
        shared
            .signer
            .url(&shared.base_url, &job.id, wall, config.url_ttl)
    });
    let progress = progress(&phase);
    match config.status_style {
        StatusStyle::Documented => {
            let shape = job.shape.as_ref();
            // A render farm's job may say `running` (at 0) while it still waits for a renderer.
            let status = match (&phase, shape) {
                (Phase::Queued, Some(s)) if s.queued_says_running => "running",
                _ => status_word(StatusStyle::Documented, &phase),
            };
            let mut object = json!({
                "job_id": job.id,
                "status": status,
                "progress": progress,
                "created_at": rfc3339(job.created_wall),
                "completed_at": completed_at,
                "result": url.map_or(Value::Null, |u| json!({ "output_urls": [u] })),
                "error": error_value(&phase),
            });
            match shape.map(|s| s.scale) {
                Some(ProgressScale::Percent) => {
                    object["progress"] = json!((progress * 1000.0).round() / 10.0);
                }
                Some(ProgressScale::Missing) if !terminal => {
                    if let Some(fields) = object.as_object_mut() {
                        fields.remove("progress");
                    }
                }
                _ => {}
            }
            // A scripted job writes its numbers exactly as its prompt gave them.
            if let (Phase::Running(_), Some(written)) =
                (&phase, job.script.as_ref().and_then(|s| s.written()))
            {
                object["progress"] = json!(written);
            }
            object
        }
        StatusStyle::Variant => {
            let remaining = job
                .completed_wall()
                .duration_since(wall)
                .unwrap_or_default();
            json!({
                "job_id": job.id,
                "status": status_word(StatusStyle::Variant, &phase),
                "progress": format!("{}%", (progress * 100.0).round() as u32),
                "created_at": rfc3339(job.created_wall),
                "completed_at": completed_at,
                "result": url.map_or(Value::Null, |u| json!({ "video_url": u })),
                "error": error_value(&phase),
                "eta_seconds": remaining.as_secs_f64().ceil() as u64,
            })
        }
    }
}

/// The usage entry for a job, or `None` while it is still in flight (nothing is billed yet).
pub(crate) fn usage_entry(
    shared: &Shared,
    job: &Job,
    now: Instant,
    wall: SystemTime,
) -> Option<Value> {
    let config = &shared.config;
    let phase = job.phase(now);
    let (amount, status_code, output_urls) = match &phase {
        Phase::Completed => (
            job.cost_usd(),
            200,
            vec![
                shared
                    .signer
                    .url(&shared.base_url, &job.id, wall, config.url_ttl),
            ],
        ),
        Phase::Failed(_) => (0.0, 422, Vec::new()),
        Phase::Queued | Phase::Running(_) => return None,
    };
    Some(json!({
        "job_id": job.id,
        "model": MODEL_ID,
        "created_at": rfc3339(job.created_wall),
        "cost": { "amount": amount, "currency": "USD" },
        "status": status_word(config.status_style, &phase),
        "status_code": status_code,
        "error": error_value(&phase),
        "output_urls": output_urls,
    }))
}
