//! The runner's decisions, as pure functions: what to do with a shot in a given state
//! ([`action`]), and where a step's outcome takes it ([`decide`]). The driver
//! ([`super::Runner`]) does the waiting, the calls and the journaling; every rule about a
//! job's life is here, tested on every (state, outcome) pair.

use crate::advice::{describe, is_transient};
use crate::journal::state::{self, Mover};
use crate::journal::{Failure, FileRecord, Stage, State};
use happyhorse_sandbox::api::Error as ApiError;

/// What the driver does with a shot, from its journaled state.
#[derive(Debug, PartialEq)]
pub(crate) enum Action {
    /// Submit it (the budget and the journal first).
    Submit,
    /// Poll its job until the job ends.
    Wait {
        /// The job.
        job_id: String,
    },
    /// Download its outputs.
    Download {
        /// The job.
        job_id: String,
        /// Its output URLs as last seen.
        urls: Vec<String>,
    },
    /// Nothing more this run: show how it ended.
    End {
        /// Whether it ended well.
        ok: bool,
        /// A line for the progress display.
        message: String,
    },
    /// `submitting` at this point means something else wrote the journal: never guess.
    Halt,
}

/// What the driver does with a shot in `state`.
pub(crate) fn action(state: &State) -> Action {
    match state {
        State::Pending => Action::Submit,
        State::Submitted { job_id } => Action::Wait {
            job_id: job_id.clone(),
        },
        State::Completed { job_id, urls } => Action::Download {
            job_id: job_id.clone(),
            urls: urls.clone(),
        },
        State::Downloaded { files, .. } => {
            let total: u64 = files.iter().map(|f| f.bytes).sum();
            Action::End {
                ok: true,
                message: format!("downloaded ({} file(s), {total} bytes)", files.len()),
            }
        }
        State::Failed { failure, .. } => Action::End {
            ok: false,
            message: format!("failed: {}", failure.message),
        },
        State::Unknown { .. } => Action::End {
            ok: false,
            message: "unknown: the submit's answer was lost (see `host-demo resolve`)".into(),
        },
        // Reconciliation turns these `unknown` before a run starts.
        State::Submitting => Action::Halt,
    }
}

/// What one step came back with: the facts a decision needs, already read from the
/// plugin's answer (the driver knows which answer means what at which step).
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// The budget granted the submit: it is about to be sent.
    Granted,
    /// The submit created this job.
    Created {
        /// The job.
        job_id: String,
    },
    /// The submit returned an id the host will not journal; a job may exist.
    UnusableJobId {
        /// What is wrong with it.
        problem: String,
    },
    /// The component could not tell whether the submit created a job.
    AnswerLost {
        /// The component's message.
        message: String,
    },
    /// The provider refused the submit: no job exists.
    Refused {
        /// The contract's error code.
        code: String,
        /// A sentence for a person.
        message: String,
    },
    /// The plugin died during the submit.
    PluginDied {
        /// Whether the sandbox let any request out before it died.
        sent: bool,
        /// What happened.
        failure: String,
    },
    /// The job is still queued or running (or a re-poll told nothing new).
    Working,
    /// The job completed with these output URLs (none is a failure of the job's own, unless
    /// the URLs were asked for again, when the old ones are kept).
    Completed {
        /// The URLs.
        urls: Vec<String>,
    },
    /// The job ended without outputs at the provider (failed, cancelled, expired, forgotten).
    JobEnded {
        /// The provider's code or state.
        code: String,
        /// A sentence for a person.
        message: String,
    },
    /// This run gives up on the step (deadline, a refused key, a plugin that keeps dying,
    /// downloads that keep failing); the next run resumes from the job.
    GaveUp {
        /// Why, as a code.
        code: String,
        /// A sentence for a person.
        message: String,
    },
    /// Every output is on disk.
    Downloaded {
        /// The files.
        files: Vec<FileRecord>,
    },
}

/// Where an outcome takes a shot.
#[derive(Debug, PartialEq)]
pub(crate) enum Decision {
    /// Journal this state.
    To(State),
    /// Stay where it is and carry on (poll again, retry the download).
    Stay,
    /// This outcome cannot happen in this state: a bug, reported rather than journaled.
    Refuse,
}

/// Where `outcome`, seen by a shot in `state`, takes it. Every move this returns is one
/// the journal's table allows the runner ([`state::TRANSITIONS`]).
pub(crate) fn decide(state: &State, outcome: Outcome) -> Decision {
    let job = state.job_id().map(str::to_string);
    let decision = match (state, outcome) {
        (State::Pending, Outcome::Granted) => State::Submitting,
        (State::Submitting, Outcome::Created { job_id }) => State::Submitted { job_id },
        (State::Submitting, Outcome::UnusableJobId { problem }) => State::Unknown {
            failure: Failure::new(
                Stage::Submit,
                "invalid-job-id",
                format!(
                    "the plugin returned an unusable job id ({problem}); a job may have been created"
                ),
            ),
        },
        (State::Submitting, Outcome::AnswerLost { message }) => State::Unknown {
            failure: Failure::new(Stage::Submit, "permanent-submit-outcome-unknown", message),
        },
        (State::Submitting, Outcome::Refused { code, message }) => State::Failed {
            job_id: None,
            failure: Failure::new(Stage::Submit, code, message),
        },
        (
            State::Submitting,
            Outcome::PluginDied {
                sent: false,
                failure,
            },
        ) => State::Failed {
            job_id: None,
            failure: Failure::new(
                Stage::Submit,
                "plugin-failure",
                format!("{failure}; nothing was sent"),
            ),
        },
        (
            State::Submitting,
            Outcome::PluginDied {
                sent: true,
                failure,
            },
        ) => State::Unknown {
            failure: Failure::new(
                Stage::Submit,
                "plugin-failure",
                format!("{failure}; the submit may have reached the provider"),
            ),
        },
        (State::Submitted { .. } | State::Completed { .. }, Outcome::Working) => {
            return Decision::Stay;
        }
        (State::Submitted { job_id }, Outcome::Completed { urls }) if urls.is_empty() => {
            State::Failed {
                job_id: Some(job_id.clone()),
                failure: Failure::new(
                    Stage::Job,
                    "no_outputs",
                    "the job completed without any output URL",
                ),
            }
        }
        // Asked again for fresh URLs and given none: the old ones are retried.
        (State::Completed { .. }, Outcome::Completed { urls }) if urls.is_empty() => {
            return Decision::Stay;
        }
        (
            State::Submitted { job_id } | State::Completed { job_id, .. },
            Outcome::Completed { urls },
        ) => State::Completed {
            job_id: job_id.clone(),
            urls,
        },
        (
            State::Submitted { .. } | State::Completed { .. },
            Outcome::JobEnded { code, message },
        ) => State::Failed {
            job_id: job,
            failure: Failure::new(Stage::Job, code, message),
        },
        (State::Submitted { .. }, Outcome::GaveUp { code, message }) => State::Failed {
            job_id: job,
            failure: Failure::new(Stage::Poll, code, message),
        },
        (State::Completed { .. }, Outcome::GaveUp { code, message }) => State::Failed {
            job_id: job,
            failure: Failure::new(Stage::Download, code, message),
        },
        (State::Completed { job_id, .. }, Outcome::Downloaded { files }) => State::Downloaded {
            job_id: job_id.clone(),
            files,
        },
        _ => return Decision::Refuse,
    };
    debug_assert!(state::allowed(state.kind(), decision.kind(), Mover::Run));
    Decision::To(decision)
}

/// What a poll's error means for the wait: `None` to poll again (the job goes on at the
/// provider whatever one poll met: a hung, refused, garbled or rate-limited answer), else the
/// outcome that ends this run's wait. The job is gone when the provider says it failed; a job
/// the endpoint does not know (404) is given up for this run, never failed: it was submitted
/// to another endpoint, or the endpoint lost it, and only a person can tell which; an error
/// retrying cannot mend ([`is_transient`]: a refused key, a request the sandbox denies, TLS)
/// gives up at once rather than spend the deadline on it, and the next run resumes the job.
pub(crate) fn after_poll_error(error: &ApiError) -> Option<Outcome> {
    match error {
        ApiError::NotFound(_) => Some(Outcome::GaveUp {
            code: Failure::NOT_FOUND.into(),
            message: describe(error),
        }),
        ApiError::JobFailed(f) => Some(Outcome::JobEnded {
            code: f.failure.code.clone(),
            message: f.failure.message.clone(),
        }),
        e if is_transient(e) => None,
        e => Some(Outcome::GaveUp {
            code: super::error_code(e),
            message: describe(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::StateKind;

    fn failure() -> Failure {
        Failure::new(Stage::Poll, "timeout", "gave up")
    }

    /// One state of each kind.
    fn states() -> Vec<State> {
        vec![
            State::Pending,
            State::Submitting,
            State::Submitted {
                job_id: "job_1".into(),
            },
            State::Completed {
                job_id: "job_1".into(),
                urls: vec!["https://cdn.example/a.mp4".into()],
            },
            State::Downloaded {
                job_id: "job_1".into(),
                files: vec![],
            },
            State::Failed {
                job_id: Some("job_1".into()),
                failure: failure(),
            },
            State::Unknown { failure: failure() },
        ]
    }

    /// One outcome of each kind (both ways a plugin can die, and an empty completion).
    fn outcomes() -> Vec<(&'static str, Outcome)> {
        let file = FileRecord {
            path: "a.mp4".into(),
            bytes: 3,
            sha256: "00".into(),
            check: None,
        };
        vec![
            ("granted", Outcome::Granted),
            (
                "created",
                Outcome::Created {
                    job_id: "job_2".into(),
                },
            ),
            (
                "unusable",
                Outcome::UnusableJobId {
                    problem: "a path".into(),
                },
            ),
            (
                "unknown",
                Outcome::AnswerLost {
                    message: "reset".into(),
                },
            ),
            (
                "refused",
                Outcome::Refused {
                    code: "insufficient-credits".into(),
                    message: "no credits".into(),
                },
            ),
            (
                "died-silent",
                Outcome::PluginDied {
                    sent: false,
                    failure: "trap".into(),
                },
            ),
            (
                "died-sent",
                Outcome::PluginDied {
                    sent: true,
                    failure: "trap".into(),
                },
            ),
            ("working", Outcome::Working),
            (
                "completed",
                Outcome::Completed {
                    urls: vec!["https://cdn.example/b.mp4".into()],
                },
            ),
            ("completed-empty", Outcome::Completed { urls: vec![] }),
            (
                "ended",
                Outcome::JobEnded {
                    code: "expired".into(),
                    message: "gone".into(),
                },
            ),
            (
                "gave-up",
                Outcome::GaveUp {
                    code: "timeout".into(),
                    message: "too long".into(),
                },
            ),
            ("downloaded", Outcome::Downloaded { files: vec![file] }),
        ]
    }

    /// What each (state, outcome) pair is expected to do: the state it moves to (`None`:
    /// stays), or refused.
    fn expected(state: StateKind, outcome: &str) -> Result<Option<(StateKind, Option<Stage>)>, ()> {
        use StateKind::*;
        Ok(match (state, outcome) {
            (Pending, "granted") => Some((Submitting, None)),
            (Submitting, "created") => Some((Submitted, None)),
            (Submitting, "unusable" | "unknown" | "died-sent") => {
                Some((Unknown, Some(Stage::Submit)))
            }
            (Submitting, "refused" | "died-silent") => Some((Failed, Some(Stage::Submit))),
            (Submitted | Completed, "working") => None,
            (Submitted, "completed") => Some((Completed, None)),
            (Submitted, "completed-empty") => Some((Failed, Some(Stage::Job))),
            (Completed, "completed") => Some((Completed, None)),
            (Completed, "completed-empty") => None,
            (Submitted | Completed, "ended") => Some((Failed, Some(Stage::Job))),
            (Submitted, "gave-up") => Some((Failed, Some(Stage::Poll))),
            (Completed, "gave-up") => Some((Failed, Some(Stage::Download))),
            (Completed, "downloaded") => Some((Downloaded, None)),
            _ => return Err(()),
        })
    }

    #[test]
    fn every_state_and_outcome_pair_is_decided_as_the_table_allows() {
        let mut pairs = 0;
        for state in states() {
            for (name, outcome) in outcomes() {
                pairs += 1;
                let from = state.kind();
                let decision = decide(&state, outcome);
                match (expected(from, name), decision) {
                    (Err(()), Decision::Refuse) | (Ok(None), Decision::Stay) => {}
                    (Ok(Some((to, stage))), Decision::To(next)) => {
                        assert_eq!(next.kind(), to, "{from} + {name}");
                        assert!(state::allowed(from, to, Mover::Run), "{from} → {to}");
                        let got = match &next {
                            State::Failed { failure, .. } | State::Unknown { failure } => {
                                Some(failure.stage)
                            }
                            _ => None,
                        };
                        assert_eq!(got, stage, "{from} + {name}");
                        // A job, once known, is never forgotten by a move.
                        if let Some(job) = state.job_id() {
                            assert_eq!(next.job_id(), Some(job), "{from} + {name}");
                        }
                    }
                    (want, got) => panic!("{from} + {name}: expected {want:?}, got {got:?}"),
                }
            }
        }
        assert_eq!(pairs, 7 * 13);
    }

    #[test]
    fn the_action_follows_the_journaled_state() {
        for state in states() {
            let action = action(&state);
            match state.kind() {
                StateKind::Pending => assert_eq!(action, Action::Submit),
                StateKind::Submitting => assert_eq!(action, Action::Halt),
                StateKind::Submitted => assert_eq!(
                    action,
                    Action::Wait {
                        job_id: "job_1".into()
                    }
                ),
                StateKind::Completed => assert!(matches!(action, Action::Download { .. })),
                StateKind::Downloaded => assert!(matches!(action, Action::End { ok: true, .. })),
                StateKind::Failed | StateKind::Unknown => {
                    assert!(matches!(action, Action::End { ok: false, .. }))
                }
            }
        }
    }

    #[test]
    fn a_poll_error_ends_the_wait_only_when_polling_again_cannot_help() {
        use happyhorse_sandbox::api::{ApiError as Answer, RateLimit};
        let refused = |status| Answer {
            status,
            code: Some("invalid_api_key".into()),
            message: "no".into(),
        };
        // The job goes on whatever one poll met: polled again.
        for again in [
            ApiError::RateLimited(RateLimit {
                retry_after_ms: Some(1_000),
                message: "slow down".into(),
            }),
            ApiError::ServerError(refused(502)),
            ApiError::MalformedResponse(refused(200)),
        ] {
            assert!(after_poll_error(&again).is_none(), "{again:?}");
        }
        // The endpoint does not know the job: given up for this run, never failed for good.
        let unknown = after_poll_error(&ApiError::NotFound("job_1".into()));
        assert!(
            matches!(unknown, Some(Outcome::GaveUp { code, .. }) if code == Failure::NOT_FOUND)
        );
        // Polling again cannot mend these: this run gives up, the next resumes the job.
        for stuck in [
            ApiError::PermanentUnauthorized(refused(401)),
            ApiError::ExecutionFailed,
        ] {
            assert!(
                matches!(after_poll_error(&stuck), Some(Outcome::GaveUp { .. })),
                "{stuck:?}"
            );
        }
    }

    #[test]
    fn messages_say_what_happened() {
        let Decision::To(State::Failed { failure, .. }) = decide(
            &State::Submitting,
            Outcome::PluginDied {
                sent: false,
                failure: "trap".into(),
            },
        ) else {
            panic!("a plugin that sent nothing fails the submit")
        };
        assert_eq!(failure.message, "trap; nothing was sent");
        assert_eq!(failure.code.as_deref(), Some("plugin-failure"));
    }
}
