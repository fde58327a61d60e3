//! Reading the journal for people (`host-demo status`), advising on what to do next, and
//! settling shots a person must decide about (`host-demo resolve`).

use crate::advice::money;
use crate::journal::{Failure, Journal, ShotRow, Stage, State, StateKind};
use anyhow::{Result, bail};

/// How a person settles a shot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The job exists (found in the provider's dashboard or usage): attach it, and the next
    /// run polls and downloads it without submitting anything.
    JobId(String),
    /// Start the shot over: the next run submits it again. When a job exists after all, it
    /// is billed too — the person decides that, never the pipeline. A shot whose job is
    /// downloaded or still in flight is refused unless `pay_again`: forgetting it pays again
    /// for what was (or is being) delivered.
    Forget {
        /// Forget a downloaded or in-flight shot anyway.
        pay_again: bool,
    },
}

/// Settle `shot` as a person decided (`host-demo resolve`): apply `resolution` and return a
/// sentence saying what the next run will do.
pub fn settle(journal: &Journal, shot: &str, resolution: &Resolution) -> Result<String> {
    let Some(row) = journal.shot(shot)? else {
        bail!("the journal has no shot named {shot:?} (`host-demo status` lists them)");
    };
    match resolution {
        Resolution::JobId(job_id) => {
            let job_id = job_id.trim();
            // The same rule as a job id from the plugin: it will be polled and may name files.
            if let Err(problem) = crate::untrusted::check_job_id(job_id) {
                bail!("that does not look like a job id: {problem}");
            }
            if !matches!(row.state, State::Unknown { .. } | State::Submitting) {
                bail!(
                    "shot {shot:?} is {}; only a shot whose submit outcome is unknown takes a job id",
                    row.state.name()
                );
            }
            journal.record_decision(
                shot,
                &[StateKind::Unknown, StateKind::Submitting],
                &State::Submitted {
                    job_id: job_id.to_string(),
                },
                &format!("resolved by hand: job {job_id}"),
            )?;
            Ok(format!(
                "shot {shot} is now submitted as job {job_id}: the next run polls and downloads it (a wrong id ends as not found)"
            ))
        }
        Resolution::Forget { pay_again } => {
            // A job that exists and did not fail: delivered, or still on its way (a poll or
            // a download that gave up leaves the job going on at the provider).
            let paid = match &row.state {
                State::Failed { failure, .. } if failure.stage == Stage::Job => false,
                state => state.job_id().is_some(),
            };
            if paid && !pay_again {
                bail!(
                    "shot {shot:?} is {} as job {}: forgetting it makes the next run pay again (an estimated {}) and overwrite its clip; add --pay-again to do that knowingly",
                    row.state.name(),
                    row.state.job_id().unwrap_or("?"),
                    money(row.plan.cost_micros, &row.plan.currency)
                );
            }
            let consequence = match &row.state {
                State::Pending => return Ok(format!("shot {shot} is already pending")),
                State::Unknown { .. } | State::Submitting => {
                    "if the lost submit did create a job, it is billed, and the new one is billed too"
                }
                State::Failed { job_id: None, .. } => "no job exists, so nothing was billed",
                _ => {
                    "its current job is abandoned (and was billed if it completed); the new one is billed again"
                }
            };
            journal.record_decision(
                shot,
                // Any state but `pending`, which `ALL` starts with.
                &StateKind::ALL[1..],
                &State::Pending,
                &format!("forgotten by hand (was {})", row.state.name()),
            )?;
            Ok(format!(
                "shot {shot} is pending again: the next run submits it anew; {consequence}"
            ))
        }
    }
}

/// What to do about a shot that is not downloaded, or `None` when nothing needs doing.
/// `storyboard` is how the user named the file (with the flags every command repeats), to
/// print runnable commands; `run_only` the flags a printed `run` repeats besides.
pub fn advice(row: &ShotRow, storyboard: &str, run_only: &str) -> Option<String> {
    let name = &row.plan.name;
    match &row.state {
        State::Downloaded { job_id, .. } => {
            let wrong: Vec<&str> = row
                .state
                .failed_clip_checks()
                .map(|c| c.summary.as_str())
                .collect();
            (!wrong.is_empty()).then(|| {
                format!(
                    "the clip is not what was paid for ({}). It is kept and nothing is resubmitted (that would pay twice): raise it with the provider, quoting job {job_id}",
                    wrong.join("; ")
                )
            })
        }
        State::Pending | State::Submitted { .. } | State::Completed { .. } => Some(format!(
            "run `host-demo run {storyboard}{run_only}` again to continue"
        )),
        State::Submitting | State::Unknown { .. } => {
            let since = row
                .timings
                .submitting_at
                .map(|t| format!(" created around {}", video_gen_core::time::rfc3339(t)))
                .unwrap_or_default();
            Some(format!(
                "the submit's answer was lost, so a job may exist and be billed: look in the provider's dashboard (or GET /v1/account/usage) for a job{since}, then either \
                 `host-demo resolve {storyboard} {name} --job-id <job-id>` (no new submit) or, if there is none, \
                 `host-demo resolve {storyboard} {name} --forget` (the next run submits it again)"
            ))
        }
        State::Failed { failure, .. } => Some(match failure.stage {
            Stage::Submit => format!(
                "the submit created no job (nothing billed): fix the cause, then run `host-demo run {storyboard}{run_only}` again to retry it"
            ),
            Stage::Job => format!(
                "the provider ended the job without a clip; to try again (billed again), `host-demo resolve {storyboard} {name} --forget`, then run again"
            ),
            // The endpoint it was submitted to (a journal row belongs to one) does not know
            // the job: another run would meet the same 404, so "run again" would go round.
            Stage::Poll if failure.code.as_deref() == Some(Failure::NOT_FOUND) => format!(
                "the endpoint it was submitted to does not know its job (404), so another run meets the same answer. Look for the job in the provider's dashboard: if it is there, run `host-demo run {storyboard}{run_only}` again later (no new submit); if it is gone, `host-demo resolve {storyboard} {name} --forget --pay-again` generates the shot anew (billed again)"
            ),
            Stage::Poll | Stage::Download => format!(
                "the job exists; run `host-demo run {storyboard}{run_only}` again to pick it up (no new submit)"
            ),
        }),
    }
}

/// The journal as a table.
pub fn table(rows: &[ShotRow], in_storyboard: &dyn Fn(&str) -> bool) -> String {
    let width = rows
        .iter()
        .map(|r| r.plan.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<width$}  {:<10}  {:<38}  {:>8}  {:>10}  {:<24}  {}\n",
        "shot", "state", "job", "estimate", "bytes", "updated", "note"
    );
    for row in rows {
        let bytes = match &row.state {
            State::Downloaded { files, .. } => {
                files.iter().map(|f| f.bytes).sum::<u64>().to_string()
            }
            _ => "-".into(),
        };
        let mut note = match &row.state {
            State::Failed { failure, .. } | State::Unknown { failure } => failure.message.clone(),
            State::Downloaded { files, .. } => files
                .iter()
                .map(|f| match &f.check {
                    Some(check) if check.failed() => {
                        format!("{} (NOT AS PAID FOR: {})", f.path, check.summary)
                    }
                    _ => f.path.clone(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        };
        if !in_storyboard(&row.plan.name) {
            note = format!("(no longer in the storyboard) {note}");
        }
        out.push_str(&format!(
            "{:<width$}  {:<10}  {:<38}  {:>8}  {:>10}  {:<24}  {}\n",
            row.plan.name,
            row.state.name(),
            row.state.job_id().unwrap_or("-"),
            money(row.plan.cost_micros, &row.plan.currency),
            bytes,
            video_gen_core::time::rfc3339(row.timings.updated_at),
            note
        ));
    }
    let count = |s: &str| rows.iter().filter(|r| r.state.name() == s).count();
    out.push_str(&format!(
        "{} shot(s): {} downloaded, {} failed, {} unknown, {} unfinished\n",
        rows.len(),
        count("downloaded"),
        count("failed"),
        count("unknown"),
        rows.len() - count("downloaded") - count("failed") - count("unknown"),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Failure, PlannedRow};

    /// A journal whose shot `a` has job `job_1` and ended in `state`.
    fn journal_with(state: &State) -> Journal {
        let journal = Journal::in_memory("https://api.example.com:443").unwrap();
        let plan = PlannedRow {
            name: "a".into(),
            position: 0,
            output: "a".into(),
            fingerprint: "f".into(),
            request: serde_json::json!({}),
            warnings: vec![],
            currency: "USD".into(),
            cost_micros: 700_000,
            billed_seconds: 5,
        };
        journal.adopt(&plan, "job_1").unwrap();
        journal
            .transition("a", StateKind::Submitted, state)
            .unwrap();
        journal
    }

    #[test]
    fn a_job_its_endpoint_does_not_know_is_not_sent_round_to_run_again() {
        let row = |code: &str| {
            let journal = journal_with(&State::Failed {
                job_id: Some("job_1".into()),
                failure: Failure::new(Stage::Poll, code, "m"),
            });
            journal.shots().unwrap().remove(0)
        };
        let lost = advice(&row(Failure::NOT_FOUND), "b.toml", "").unwrap();
        assert!(
            lost.contains("does not know") && lost.contains("--forget --pay-again"),
            "{lost}"
        );
        let slow = advice(&row("timeout"), "b.toml", " --component c.wasm").unwrap();
        assert!(
            slow.contains("`host-demo run b.toml --component c.wasm` again"),
            "{slow}"
        );
    }

    #[test]
    fn forgetting_a_job_that_goes_on_or_was_delivered_needs_pay_again() {
        let job = Some("job_1".to_string());
        for (state, needs) in [
            (
                State::Failed {
                    job_id: job.clone(),
                    failure: Failure::new(Stage::Poll, "timeout", "gave up"),
                },
                true,
            ),
            (
                State::Failed {
                    job_id: job.clone(),
                    failure: Failure::new(Stage::Download, "x", "y"),
                },
                true,
            ),
            (
                State::Failed {
                    job_id: job.clone(),
                    failure: Failure::new(Stage::Job, "failed", "no clip"),
                },
                false,
            ),
        ] {
            let journal = journal_with(&state);
            let refused = settle(&journal, "a", &Resolution::Forget { pay_again: false });
            assert_eq!(refused.is_err(), needs, "{state:?}: {refused:?}");
            if needs {
                assert!(refused.unwrap_err().to_string().contains("$0.70"));
                settle(&journal, "a", &Resolution::Forget { pay_again: true }).unwrap();
            }
        }
    }
}
