//! A one-shot job's row in the per-user registry, kept in step with its journaled state:
//! recorded `submitting` before the submit can be sent (`generate`), or `submitted` when
//! `resume` picks the job up; given the job id the moment the submit's answer is journaled
//! (the runner calls [`JobRecord::created`]); and told where the job ended — also when the
//! command is stopped half-way, as Ctrl-C does by dropping the job's future ([`Tracking`]).
//!
//! The registry is a record for people and for `resume`, not the job's journal: once the
//! submit is recorded, a later write that fails is logged and the job carries on (its id is
//! printed and journaled in memory; the row stays on the safe side, as "outcome unknown").

use crate::journal::{Journal, Stage, State};
use crate::registry::{JobEnd, JobFile, JobState, Known, NewJob, Registry};
use crate::runner::{Cause, Ended};
use anyhow::Result;

/// A one-shot job's row in the registry.
#[derive(Debug)]
pub(crate) struct JobRecord<'r> {
    registry: &'r Registry,
    row: i64,
}

impl<'r> JobRecord<'r> {
    /// Record `job`, whose submit is about to be sent: before it can be, so that a crash
    /// from here on leaves it `submitting` (outcome unknown), never unrecorded.
    pub(crate) fn submitting(registry: &'r Registry, job: &NewJob<'_>) -> Result<JobRecord<'r>> {
        let row = registry.record_submitting(job)?;
        Ok(JobRecord { registry, row })
    }

    /// Record that `job_id` is being picked up (`resume`); returns the record (none for a
    /// job the registry has as downloaded: its row stays as it is) and, when the registry
    /// has the job from its `generate`, the request and estimate it was paid for.
    pub(crate) fn resumed(
        registry: &'r Registry,
        job: &NewJob<'_>,
        job_id: &str,
    ) -> Result<(Option<JobRecord<'r>>, Option<Known>)> {
        let (row, known) = registry.record_resumed(job, job_id)?;
        Ok((row.map(|row| JobRecord { registry, row }), known))
    }

    /// The submit's answer created `job_id`, journaled: recorded at once, so a crash while
    /// the job is waited for leaves it resumable by `host-demo jobs`' command.
    pub(crate) fn created(&self, job_id: &str) {
        if let Err(e) = self.registry.record_created(self.row, job_id) {
            // The job id was printed and is journaled; only `jobs` will not show it.
            tracing::warn!(job = %crate::untrusted::shown(job_id), error = %format!("{e:#}"), "could not note the job in the registry");
        }
    }

    /// Record `end`, or leave the row as it is when `None`.
    fn end(&self, end: Option<JobEnd>) {
        let Some(end) = end else { return };
        if let Err(e) = self.registry.record_end(self.row, &end) {
            tracing::warn!(state = end.state.as_str(), error = %format!("{e:#}"), "could not note where the job ended in the registry");
        }
    }
}

/// How the one-shot plan stopped, for [`end_of`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stop<'c> {
    /// The runner handed the shot back, ended by this (if it said).
    Ended(Option<&'c Cause>),
    /// The command stopped waiting for it (Ctrl-C): the future was dropped.
    Interrupted,
    /// An error outside the journal's states (a plugin that could not be made).
    Error(&'c str),
}

/// Where a shot the journal left in `state` ended, as the registry records it; `None` leaves
/// the row `submitting`: a submit sent (or maybe sent) and never answered is of unknown
/// outcome, and saying anything else could make someone send it again.
pub(crate) fn end_of(state: &State, stop: Stop<'_>) -> Option<JobEnd> {
    let job_id = state.job_id().map(str::to_string);
    let end = |state: JobState, detail: String| JobEnd {
        state,
        job_id: job_id.clone(),
        detail: Some(detail),
        files: vec![],
    };
    Some(match (state, stop) {
        (State::Submitting, _) => return None,
        (State::Pending, Stop::Error(e)) => end(JobState::NotSent, e.to_string()),
        (State::Pending, _) => end(
            JobState::NotSent,
            "stopped before the submit was sent: nothing was billed".into(),
        ),
        (State::Submitted { .. } | State::Completed { .. }, Stop::Interrupted) => end(
            JobState::Stopped,
            "stopped while waiting; the job goes on at the provider".into(),
        ),
        (State::Submitted { .. } | State::Completed { .. }, Stop::Error(e)) => {
            end(JobState::Resumable, e.to_string())
        }
        (State::Submitted { .. } | State::Completed { .. }, Stop::Ended(cause)) => end(
            JobState::Resumable,
            cause.map_or_else(|| "not finished".into(), sentence),
        ),
        (State::Downloaded { files, .. }, _) => {
            let not_as_paid_for: Vec<String> = state
                .failed_clip_checks()
                .map(|c| format!("NOT AS PAID FOR: {}", c.summary))
                .collect();
            JobEnd {
                state: JobState::Downloaded,
                job_id: job_id.clone(),
                detail: (!not_as_paid_for.is_empty()).then(|| not_as_paid_for.join("; ")),
                files: files
                    .iter()
                    .map(|f| JobFile {
                        path: f.path.clone(),
                        bytes: f.bytes,
                        sha256: f.sha256.clone(),
                        verdict: f.check.as_ref().and_then(|c| {
                            serde_json::to_value(c.verdict)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                        }),
                    })
                    .collect(),
            }
        }
        (State::Failed { failure, .. }, _) => match failure.stage {
            // As `generate` exits: a poll or a download that gave up is picked up again.
            Stage::Poll | Stage::Download => end(JobState::Resumable, failure.message.clone()),
            Stage::Submit | Stage::Job => end(JobState::Failed, failure.message.clone()),
        },
        (State::Unknown { failure }, _) => end(JobState::Unknown, failure.message.clone()),
    })
}

/// What ended a shot, in a sentence for the registry.
fn sentence(cause: &Cause) -> String {
    match cause {
        Cause::Error(e) => crate::advice::describe(e),
        Cause::UnusableJobId(problem) => {
            format!("the plugin returned an unusable job id ({problem}); a job may exist")
        }
        Cause::JobFailed { code, message } => format!("failed ({code}): {message}"),
        Cause::JobEnded(status) => format!("ended as {status}"),
        Cause::Deadline => "gave up waiting; the job goes on at the provider".into(),
        Cause::PluginFailed(e) | Cause::Download(e) => e.clone(),
    }
}

/// Keeps a one-shot job's row in step while its plan runs: [`Tracking::finish`] records where
/// it ended; dropped unfinished (the command stopped waiting), it records that from the
/// journal's state.
pub(crate) struct Tracking<'a> {
    record: Option<&'a JobRecord<'a>>,
    journal: &'a Journal,
    shot: &'a str,
    done: bool,
}

impl<'a> Tracking<'a> {
    /// Track `shot` of `journal` for `record` (nothing, without one).
    pub(crate) fn new(
        record: Option<&'a JobRecord<'a>>,
        journal: &'a Journal,
        shot: &'a str,
    ) -> Tracking<'a> {
        Tracking {
            record,
            journal,
            shot,
            done: false,
        }
    }

    /// Record how the plan ended.
    pub(crate) fn finish(mut self, result: &Result<Ended>) {
        self.done = true;
        let Some(record) = self.record else { return };
        match result {
            Ok(ended) => record.end(end_of(&ended.state, Stop::Ended(ended.cause.as_ref()))),
            Err(e) => {
                let message = crate::observe::displayable(&format!("{e:#}"));
                self.record_from_journal(record, Stop::Error(&message));
            }
        }
    }

    /// Record where the journal has the shot, as `stop` ended it.
    fn record_from_journal(&self, record: &JobRecord<'_>, stop: Stop<'_>) {
        match self.journal.shot(self.shot) {
            Ok(Some(row)) => record.end(end_of(&row.state, stop)),
            // The row stays as last recorded: `submitting` at worst, the safe side.
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not read the job's state to note it in the registry")
            }
        }
    }
}

impl Drop for Tracking<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(record) = self.record {
            self.record_from_journal(record, Stop::Interrupted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Failure, FileRecord};

    fn job(id: &str) -> Option<String> {
        Some(id.to_string())
    }

    #[test]
    fn a_submit_without_an_answer_is_left_unknown_whatever_stopped_it() {
        for stop in [Stop::Ended(None), Stop::Interrupted, Stop::Error("boom")] {
            assert_eq!(end_of(&State::Submitting, stop), None);
        }
        let lost = end_of(
            &State::Unknown {
                failure: Failure::new(Stage::Submit, "lost", "the answer was lost"),
            },
            Stop::Ended(None),
        )
        .unwrap();
        assert_eq!(lost.state, JobState::Unknown);
    }

    #[test]
    fn each_end_is_recorded_as_generate_exits() {
        let submitted = State::Submitted {
            job_id: "job_1".into(),
        };
        let stopped = end_of(&submitted, Stop::Interrupted).unwrap();
        assert_eq!(
            (stopped.state, stopped.job_id.clone()),
            (JobState::Stopped, job("job_1"))
        );
        let gave_up = end_of(&submitted, Stop::Ended(Some(&Cause::Deadline))).unwrap();
        assert_eq!(gave_up.state, JobState::Resumable);
        assert!(gave_up.detail.unwrap().contains("gave up waiting"));
        let not_sent = end_of(&State::Pending, Stop::Interrupted).unwrap();
        assert_eq!(not_sent.state, JobState::NotSent);
        let poll = State::Failed {
            job_id: job("job_1"),
            failure: Failure::new(Stage::Poll, "timeout", "gave up"),
        };
        assert_eq!(
            end_of(&poll, Stop::Ended(None)).unwrap().state,
            JobState::Resumable
        );
        let failed = State::Failed {
            job_id: job("job_1"),
            failure: Failure::new(Stage::Job, "failed", "no clip"),
        };
        let failed = end_of(&failed, Stop::Ended(None)).unwrap();
        assert_eq!(
            (failed.state, failed.detail.as_deref()),
            (JobState::Failed, Some("no clip"))
        );
        let downloaded = State::Downloaded {
            job_id: "job_1".into(),
            files: vec![FileRecord {
                path: "job_1-0.mp4".into(),
                bytes: 3,
                sha256: "abc".into(),
                check: None,
            }],
        };
        let downloaded = end_of(&downloaded, Stop::Ended(None)).unwrap();
        assert_eq!(downloaded.state, JobState::Downloaded);
        assert_eq!(downloaded.files[0].path, "job_1-0.mp4");
        assert_eq!(downloaded.detail, None);
    }
}
