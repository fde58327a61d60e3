//! Checking and pricing a storyboard before anything is sent: every shot through the
//! component's `validate` and `estimate-cost`, every problem collected.

use crate::advice::{describe, money};
use crate::journal::PlannedRow;
use crate::session::Session;
use crate::storyboard::{Problem, Shot, Storyboard, mode_name};
use anyhow::Result;
use happyhorse_sandbox::api::{CostEstimate, Error as ApiError, VideoRequest};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A shot the component accepted, priced.
#[derive(Debug, Clone)]
pub struct PlannedShot {
    /// The shot as the storyboard gave it.
    pub shot: Shot,
    /// The request as `validate` normalized it (defaults filled in): what is submitted.
    pub request: VideoRequest,
    /// What `validate` warned about, as sentences.
    pub warnings: Vec<String>,
    /// What it will cost if it succeeds.
    pub cost: CostEstimate,
}

impl PlannedShot {
    /// The request for the journal and the manifest: images described, never inlined.
    pub fn record(&self) -> Value {
        request_record(&self.request, &self.shot)
    }

    /// A hash of everything that decides the clip (images by content), so a later run notices
    /// a storyboard edited under a shot that was already paid for.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        let mut record = self.record();
        // Inline data URLs are only described in the record; hash them whole.
        record["images_sha256"] = json!(
            self.request
                .images
                .iter()
                .map(|i| format!("{:x}", Sha256::digest(i.as_bytes())))
                .collect::<Vec<_>>()
        );
        hasher.update(record.to_string().as_bytes());
        format!("{:x}", hasher.finalize())
    }

    /// The journal's view of this shot.
    pub fn journal_row(&self, position: usize) -> PlannedRow {
        PlannedRow {
            name: self.shot.name.clone(),
            position: position as i64,
            output: self.shot.output.clone(),
            fingerprint: self.fingerprint(),
            request: self.record(),
            warnings: self.warnings.clone(),
            currency: self.cost.currency.clone(),
            cost_micros: self.cost.total_micros,
            billed_seconds: self.cost.billed_seconds,
        }
    }
}

/// Every shot of a storyboard, checked and priced.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The shots, in storyboard order.
    pub shots: Vec<PlannedShot>,
    /// The estimate's currency (the rate card's).
    pub currency: String,
    /// The sum of every shot's estimate, micro-units.
    pub total_micros: u64,
}

impl Plan {
    /// Every shot as the journal records it, in storyboard order.
    pub fn journal_rows(&self) -> Vec<PlannedRow> {
        self.shots
            .iter()
            .enumerate()
            .map(|(i, s)| s.journal_row(i))
            .collect()
    }
}

/// The JSON form of a request, with `images` replaced by where each came from.
fn request_record(request: &VideoRequest, shot: &Shot) -> Value {
    json!({
        "model": request.model,
        "prompt": request.prompt,
        "mode": mode_name(request.mode),
        "images": shot.images.iter().map(|i| i.describe()).collect::<Vec<_>>(),
        "aspect_ratio": request.aspect_ratio,
        "resolution": request.resolution,
        "duration": request.duration_seconds,
        "seed": request.seed,
        "watermark": request.watermark,
    })
}

/// One offline call; when the plugin dies, a fresh one is made and the call tried once more
/// (a second death is the shot's problem, and the next shot gets a fresh instance).
macro_rules! offline {
    ($session:expr, $plugin:ident . $method:ident ( $($arg:expr),* )) => {{
        match $plugin.$method($($arg),*).await {
            Ok(answer) => Ok(answer),
            Err(failure) => {
                tracing::warn!(error = %failure, "the plugin failed during checks; starting a new one");
                $plugin = $session.plugin().await?;
                let again = $plugin.$method($($arg),*).await;
                if again.is_err() {
                    $plugin = $session.plugin().await?;
                }
                again
            }
        }
    }};
}

/// Validate and price every shot. `Ok(Err(problems))` lists every problem — the storyboard's
/// own and every rule the component refused — when there is any; nothing is sent either way.
pub async fn check(
    session: &Session,
    storyboard: &Storyboard,
) -> Result<Result<Plan, Vec<Problem>>> {
    let mut problems = storyboard.problems.clone();
    let mut plugin = session.plugin().await?;
    let mut shots = Vec::new();
    let rates = storyboard.settings.rates.as_deref();
    // Flawed shots are checked for what only the component knows, never planned.
    let checked = (storyboard.shots.iter().map(|shot| (shot, true)))
        .chain(storyboard.flawed.iter().map(|shot| (shot, false)));
    for (shot, runnable) in checked {
        let who = Some(format!("\"{}\"", shot.name));
        let problem = |field: &str, message: String| Problem {
            shot: who.clone(),
            field: field.to_string(),
            message,
        };
        let validated = match offline!(session, plugin.validate(&shot.request)) {
            Ok(Ok(v)) => v,
            Ok(Err(ApiError::PermanentInvalidRequest(violations))) => {
                problems.extend(
                    violations
                        .into_iter()
                        .map(|v| problem(&v.field, format!("{} [{}]", v.message, v.rule))),
                );
                continue;
            }
            Ok(Err(e)) => {
                problems.push(problem("request", describe(&e)));
                continue;
            }
            Err(failure) => {
                problems.push(problem("request", failure.to_string()));
                continue;
            }
        };
        let cost = match offline!(session, plugin.estimate_cost(&validated.request, rates)) {
            Ok(Ok(c)) => c,
            Err(failure) => {
                problems.push(problem("request", failure.to_string()));
                continue;
            }
            Ok(Err(e)) => {
                let field = if rates.is_some() {
                    "run.rates"
                } else {
                    "resolution"
                };
                problems.push(problem(field, describe(&e)));
                continue;
            }
        };
        if !runnable {
            continue;
        }
        shots.push(PlannedShot {
            shot: shot.clone(),
            warnings: validated
                .warnings
                .iter()
                .map(|w| format!("{}: {}", w.field, w.message))
                .collect(),
            request: validated.request,
            cost,
        });
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    let currency = shots
        .first()
        .map_or_else(|| "USD".to_string(), |s| s.cost.currency.clone());
    if let Some(other) = shots.iter().find(|s| s.cost.currency != currency) {
        return Ok(Err(vec![Problem {
            shot: Some(format!("\"{}\"", other.shot.name)),
            field: "cost".into(),
            message: format!(
                "is priced in {} while other shots are in {currency}; the total cannot be summed",
                other.cost.currency
            ),
        }]));
    }
    // Checked: an absurd rate card must not wrap the total to $0.00 and pass `max_cost`.
    // The journal stores amounts as SQLite integers, hence the i64 bound.
    let total_micros = shots
        .iter()
        .try_fold(0u64, |sum, s| sum.checked_add(s.cost.total_micros))
        .filter(|&total| i64::try_from(total).is_ok());
    let Some(total_micros) = total_micros else {
        return Ok(Err(vec![Problem {
            shot: None,
            field: "cost".into(),
            message: "the estimated total is too large to count; check the rate card ([run] rates)"
                .into(),
        }]));
    };
    Ok(Ok(Plan {
        shots,
        currency,
        total_micros,
    }))
}

/// A table of the plan for people: one line per shot, then the total.
pub fn table(plan: &Plan, states: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let width = plan
        .shots
        .iter()
        .map(|s| s.shot.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    out.push_str(&format!(
        "{:<width$}  {:<4}  {:<5}  {:>4}  {:<6}  {:>9}  {}\n",
        "shot", "mode", "res", "secs", "aspect", "estimate", "state"
    ));
    for s in &plan.shots {
        let r = &s.request;
        out.push_str(&format!(
            "{:<width$}  {:<4}  {:<5}  {:>4}  {:<6}  {:>9}  {}\n",
            s.shot.name,
            mode_name(r.mode),
            r.resolution.as_deref().unwrap_or("-"),
            r.duration_seconds.map_or("-".into(), |d| d.to_string()),
            r.aspect_ratio.as_deref().unwrap_or("(image)"),
            money(s.cost.total_micros, &s.cost.currency),
            states(&s.shot.name).unwrap_or_else(|| "new".into()),
        ));
        for w in &s.warnings {
            out.push_str(&format!("{:<width$}  warning: {w}\n", ""));
        }
    }
    out.push_str(&format!(
        "{:<width$}  {} shot(s), estimated total {}\n",
        "total",
        plan.shots.len(),
        money(plan.total_micros, &plan.currency)
    ));
    out
}
