//! A shot's states and the one table of moves between them.
//!
//! ```text
//! pending ──► submitting ──► submitted(job) ──► completed(urls) ──► downloaded(files)
//!    ▲            │                │                   │
//!    │            ├─► unknown      └─► failed(error) ◄─┘
//!    └── failed ◄─┘   (answer lost: never resent automatically)
//! ```
//!
//! [`TRANSITIONS`] lists every move a shot may make, who makes it and why; the journal
//! refuses any other ([`super::Journal::transition`]), so a move out of order is a bug that
//! stops a run rather than reaching the provider. The names stored in SQLite are
//! [`StateKind::as_str`]'s, unchanged since the first journal.

use serde::{Deserialize, Serialize};

/// A state without its data: what the journal's `state` column holds and what the
/// transition table is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKind {
    /// Not submitted yet.
    Pending,
    /// A submit is (or was) in flight.
    Submitting,
    /// A job exists.
    Submitted,
    /// The job completed; its outputs are not on disk yet.
    Completed,
    /// Every output is on disk.
    Downloaded,
    /// It failed.
    Failed,
    /// A submit's answer was lost.
    Unknown,
}

impl StateKind {
    /// Every state, in the order of a shot's life.
    pub const ALL: [StateKind; 7] = [
        StateKind::Pending,
        StateKind::Submitting,
        StateKind::Submitted,
        StateKind::Completed,
        StateKind::Downloaded,
        StateKind::Failed,
        StateKind::Unknown,
    ];

    /// The name stored in the journal (and shown to people): these strings are the on-disk
    /// format, so they never change.
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Pending => "pending",
            StateKind::Submitting => "submitting",
            StateKind::Submitted => "submitted",
            StateKind::Completed => "completed",
            StateKind::Downloaded => "downloaded",
            StateKind::Failed => "failed",
            StateKind::Unknown => "unknown",
        }
    }

    /// The state a stored name means, if any.
    pub fn parse(name: &str) -> Option<StateKind> {
        StateKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for StateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who moves a shot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mover {
    /// The runner, driving a shot through its life.
    Run,
    /// A run's start, reconciling the journal with the storyboard.
    Start,
    /// A person, through `host-demo resolve`.
    Person,
}

/// Every move a shot may make: (from, to, who). Anything else is refused.
pub const TRANSITIONS: &[(StateKind, StateKind, Mover)] = {
    use Mover::{Person, Run, Start};
    use StateKind::*;
    &[
        // The submit: committed `submitting` before it is sent, its answer right after.
        (Pending, Submitting, Run),
        (Submitting, Submitted, Run),
        (Submitting, Failed, Run),
        (Submitting, Unknown, Run),
        // The job's end, seen by a poll.
        (Submitted, Completed, Run),
        (Submitted, Failed, Run),
        // Downloads: fresh URLs replace expired ones; the job may be gone by then.
        (Completed, Completed, Run),
        (Completed, Downloaded, Run),
        (Completed, Failed, Run),
        // A run's start: an interrupted submit is unknown (never resent); a refused submit
        // is retried; a poll or download that gave up resumes from its job.
        (Submitting, Unknown, Start),
        (Failed, Pending, Start),
        (Failed, Submitted, Start),
        // A person attaches the job a lost submit created, or starts a shot over.
        (Unknown, Submitted, Person),
        (Submitting, Submitted, Person),
        (Submitting, Pending, Person),
        (Submitted, Pending, Person),
        (Completed, Pending, Person),
        (Downloaded, Pending, Person),
        (Failed, Pending, Person),
        (Unknown, Pending, Person),
    ]
};

/// Whether `by` may move a shot from `from` to `to` ([`TRANSITIONS`]).
pub fn allowed(from: StateKind, to: StateKind, by: Mover) -> bool {
    TRANSITIONS.contains(&(from, to, by))
}

/// The step a failure happened at; it decides what the next run does with the shot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The provider refused the submit: no job exists, nothing was billed; retried next run.
    Submit,
    /// The provider failed, cancelled, expired or forgot the job; a new one would be billed.
    Job,
    /// Polling gave up (deadline, key refused, plugin failures); resumed next run.
    Poll,
    /// Downloading gave up; resumed next run with fresh URLs.
    Download,
}

/// Why a shot failed or is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Where it happened.
    pub stage: Stage,
    /// The provider's or the component's error code, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A sentence for a person.
    pub message: String,
}

impl Failure {
    /// The code a poll answered 404 leaves: the endpoint does not know the job (given up for
    /// the run, never failed for good; `status` says what to do about it).
    pub const NOT_FOUND: &'static str = "not_found";

    /// A failure at `stage` with the provider's or the component's `code`.
    pub fn new(stage: Stage, code: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure {
            stage,
            code: Some(code.into()),
            message: message.into(),
        }
    }
}

/// A downloaded output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The path, relative to the output folder.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Whether it is the clip that was paid for; `None` for files journaled before clips were
    /// checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<crate::clip::ClipCheck>,
}

/// Where a shot stands.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not submitted yet.
    Pending,
    /// A submit is (or was, when found at start-up) in flight.
    Submitting,
    /// The provider accepted it as this job.
    Submitted {
        /// The job.
        job_id: String,
    },
    /// The job completed with these (signed, short-lived) output URLs.
    Completed {
        /// The job.
        job_id: String,
        /// Its output URLs.
        urls: Vec<String>,
    },
    /// Every output is on disk.
    Downloaded {
        /// The job.
        job_id: String,
        /// The files.
        files: Vec<FileRecord>,
    },
    /// It failed; `job_id` is set when a job exists.
    Failed {
        /// The job, if one was created.
        job_id: Option<String>,
        /// Why.
        failure: Failure,
    },
    /// A submit's answer was lost: a job may exist. Never resent without a person deciding.
    Unknown {
        /// What happened.
        failure: Failure,
    },
}

impl State {
    /// Which state this is, without its data.
    pub fn kind(&self) -> StateKind {
        match self {
            State::Pending => StateKind::Pending,
            State::Submitting => StateKind::Submitting,
            State::Submitted { .. } => StateKind::Submitted,
            State::Completed { .. } => StateKind::Completed,
            State::Downloaded { .. } => StateKind::Downloaded,
            State::Failed { .. } => StateKind::Failed,
            State::Unknown { .. } => StateKind::Unknown,
        }
    }

    /// The state's name as stored.
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The checks that failed of this shot's downloaded clips ([`crate::clip`]): paid for and
    /// not delivered. Empty for any other state, and for files journaled before clips were
    /// checked.
    pub fn failed_clip_checks(&self) -> impl Iterator<Item = &crate::clip::ClipCheck> {
        let files = match self {
            State::Downloaded { files, .. } => files.as_slice(),
            _ => &[],
        };
        files
            .iter()
            .filter_map(|f| f.check.as_ref().filter(|c| c.failed()))
    }

    /// The job id, when one is known.
    pub fn job_id(&self) -> Option<&str> {
        match self {
            State::Submitted { job_id }
            | State::Completed { job_id, .. }
            | State::Downloaded { job_id, .. } => Some(job_id),
            State::Failed { job_id, .. } => job_id.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_are_the_first_journals() {
        let names: Vec<&str> = StateKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "pending",
                "submitting",
                "submitted",
                "completed",
                "downloaded",
                "failed",
                "unknown"
            ]
        );
        for kind in StateKind::ALL {
            assert_eq!(StateKind::parse(kind.as_str()), Some(kind));
            // The schema's CHECK constraint admits every name.
            assert!(super::super::schema::SCHEMA.contains(&format!("'{kind}'")));
        }
        assert_eq!(StateKind::parse("Pending"), None);
    }

    #[test]
    fn every_move_is_in_the_table_or_refused() {
        use StateKind::*;
        let mut allowed_moves = 0;
        for from in StateKind::ALL {
            for to in StateKind::ALL {
                for by in [Mover::Run, Mover::Start, Mover::Person] {
                    let expected = match by {
                        Mover::Run => matches!(
                            (from, to),
                            (Pending, Submitting)
                                | (Submitting, Submitted | Failed | Unknown)
                                | (Submitted, Completed | Failed)
                                | (Completed, Completed | Downloaded | Failed)
                        ),
                        Mover::Start => matches!(
                            (from, to),
                            (Submitting, Unknown) | (Failed, Pending | Submitted)
                        ),
                        Mover::Person => {
                            matches!((from, to), (Unknown | Submitting, Submitted))
                                || (to == Pending && from != Pending)
                        }
                    };
                    assert_eq!(allowed(from, to, by), expected, "{from} → {to} by {by:?}");
                    allowed_moves += usize::from(expected);
                }
            }
        }
        assert_eq!(allowed_moves, TRANSITIONS.len(), "no row twice");
        // Nothing leaves `downloaded` but a person starting the shot over, and nothing
        // but a run's start or a person makes a job `submitted` again after a failure.
        assert!(!allowed(Downloaded, Failed, Mover::Run));
        assert!(!allowed(Unknown, Pending, Mover::Start));
        assert!(!allowed(Unknown, Submitting, Mover::Run));
    }
}
