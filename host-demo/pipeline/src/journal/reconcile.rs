//! A run's start: the journal brought in line with the storyboard in one transaction, so an
//! interrupted submit becomes `unknown` (never resent) and an edited shot that has a job is a
//! conflict that changes nothing.

use super::rows::{COLUMNS, event, insert, planned_values, read_row, set_state};
use super::state::{self, Failure, Mover, Stage, State, StateKind};
use super::{Journal, PlannedRow, Reconciled, now_ms};
use anyhow::{Result, bail};
use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, params};

impl Journal {
    /// Bring the journal in line with the storyboard before a run, in one transaction: add
    /// new shots; refresh shots nothing was billed for; turn interrupted submits `unknown`;
    /// requeue refused submits and given-up polls or downloads. When a shot that has a job
    /// was edited in the storyboard, nothing at all is changed and the conflicts are returned.
    pub fn reconcile(&self, planned: &[PlannedRow]) -> Result<Reconciled> {
        let endpoint = self.endpoint()?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut out = Reconciled::default();
        let now = now_ms();
        for plan in planned {
            let existing = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM shots WHERE name = ?1 AND endpoint = ?2"),
                    [plan.name.as_str(), endpoint],
                    read_row,
                )
                .optional()?
                .transpose()?;
            let Some(row) = existing else {
                insert(&tx, endpoint, plan, None, now, "added from the storyboard")?;
                continue;
            };
            let nothing_billed = match &row.state {
                State::Pending => true,
                State::Failed {
                    job_id: None,
                    failure,
                } => failure.stage == Stage::Submit,
                _ => false,
            };
            if nothing_billed {
                let requeue = row.state != State::Pending;
                if requeue {
                    checked(&row.state, &State::Pending)?;
                }
                tx.execute(
                    "UPDATE shots SET position = ?2, output = ?3, fingerprint = ?4, request = ?5,
                        warnings = ?6, currency = ?7, cost_micros = ?8, billed_seconds = ?9,
                        state = ?11, error = NULL, updated_at = ?10
                     WHERE name = ?1 AND endpoint = ?12",
                    rusqlite::params_from_iter(planned_values(plan)?.into_iter().chain([
                        Sql::Integer(now),
                        Sql::Text(StateKind::Pending.as_str().into()),
                        Sql::Text(endpoint.into()),
                    ])),
                )?;
                if requeue {
                    event(
                        &tx,
                        endpoint,
                        &plan.name,
                        now,
                        StateKind::Pending.as_str(),
                        Some("the provider refused the last submit: no job exists, retrying"),
                    )?;
                    out.requeued.push(plan.name.clone());
                }
                continue;
            }
            if row.plan.fingerprint != plan.fingerprint {
                let what = match row.state.job_id() {
                    Some(job) => format!("it was already submitted as job {job}"),
                    None => format!("it is {}", row.state.name()),
                };
                out.conflicts.push((plan.name.clone(), what));
                continue;
            }
            // Same request: follow storyboard reordering and renamed outputs.
            tx.execute(
                "UPDATE shots SET position = ?2, output = ?3 WHERE name = ?1 AND endpoint = ?4",
                params![plan.name, plan.position, plan.output, endpoint],
            )?;
            match &row.state {
                State::Submitting => {
                    let since = row.timings.submitting_at.map_or_else(String::new, |t| {
                        format!(" (started {})", video_gen_core::time::rfc3339(t))
                    });
                    let failure = Failure::new(
                        Stage::Submit,
                        "interrupted",
                        format!(
                            "the run stopped while this shot's submit was in flight{since}: a job may or may not exist"
                        ),
                    );
                    let state = State::Unknown { failure };
                    checked(&row.state, &state)?;
                    set_state(&tx, endpoint, &plan.name, &state, now)?;
                    out.interrupted.push(plan.name.clone());
                }
                State::Failed {
                    job_id: Some(job_id),
                    failure,
                } if matches!(failure.stage, Stage::Poll | Stage::Download) => {
                    let state = State::Submitted {
                        job_id: job_id.clone(),
                    };
                    checked(&row.state, &state)?;
                    set_state(&tx, endpoint, &plan.name, &state, now)?;
                    out.requeued.push(plan.name.clone());
                }
                _ => {}
            }
        }
        if out.conflicts.is_empty() {
            tx.commit()?;
        } else {
            tx.rollback()?;
            out.interrupted.clear();
            out.requeued.clear();
        }
        Ok(out)
    }
}

/// A run's start may make this move ([`state::TRANSITIONS`]); an error rolls the whole
/// reconciliation back.
fn checked(from: &State, to: &State) -> Result<()> {
    if !state::allowed(from.kind(), to.kind(), Mover::Start) {
        bail!(
            "refusing to make a {} shot {} at the run's start",
            from.name(),
            to.name()
        );
    }
    Ok(())
}
