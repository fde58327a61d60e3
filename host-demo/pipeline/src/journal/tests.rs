//! The journal against real SQLite files: transitions, reconciliation, locks, redaction,
//! older rows and what finished jobs taught.

use super::*;
use crate::scheduler::learn::{JobClass, Reading, Record};
use rusqlite::params;

/// The endpoint the tests' journals are scoped to.
const E: &str = "https://api.example.com:443";

fn plan(name: &str, fingerprint: &str) -> PlannedRow {
    PlannedRow {
        name: name.into(),
        position: 0,
        output: name.into(),
        fingerprint: fingerprint.into(),
        request: serde_json::json!({"prompt": "p"}),
        warnings: vec![],
        currency: "USD".into(),
        cost_micros: 700_000,
        billed_seconds: 5,
    }
}

#[test]
fn an_adopted_job_starts_submitted_in_a_journal_that_leaves_no_file() {
    let j = Journal::in_memory(E).unwrap();
    j.adopt(&plan("job", "f"), "job_7").unwrap();
    let row = j.shot("job").unwrap().unwrap();
    assert_eq!(
        row.state,
        State::Submitted {
            job_id: "job_7".into()
        }
    );
    assert!(row.timings.submitted_at.is_some());
    // Adopted once: a second adoption would overwrite what the first run did.
    assert!(j.adopt(&plan("job", "f"), "job_8").is_err());
    // From here it moves as any shot does.
    let done = State::Completed {
        job_id: "job_7".into(),
        urls: vec!["https://cdn.example/a.mp4".into()],
    };
    j.transition("job", StateKind::Submitted, &done).unwrap();
}

#[test]
fn an_interrupted_submit_becomes_unknown_and_a_refused_one_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), E).unwrap();
    j.reconcile(&[plan("a", "f"), plan("b", "f"), plan("c", "f")])
        .unwrap();
    j.transition("a", StateKind::Pending, &State::Submitting)
        .unwrap();
    j.transition("b", StateKind::Pending, &State::Submitting)
        .unwrap();
    let refused = State::Failed {
        job_id: None,
        failure: Failure {
            stage: Stage::Submit,
            code: Some("insufficient_credits".into()),
            message: "no credits".into(),
        },
    };
    j.transition("b", StateKind::Submitting, &refused).unwrap();
    j.transition("c", StateKind::Pending, &State::Submitting)
        .unwrap();
    j.transition(
        "c",
        StateKind::Submitting,
        &State::Submitted {
            job_id: "job_1".into(),
        },
    )
    .unwrap();
    drop(j);

    let j = Journal::open(dir.path(), E).unwrap();
    let r = j
        .reconcile(&[plan("a", "f"), plan("b", "f"), plan("c", "f")])
        .unwrap();
    assert_eq!(r.interrupted, vec!["a"]);
    assert_eq!(r.requeued, vec!["b"]);
    let shots = j.shots().unwrap();
    assert_eq!(shots[0].state.name(), "unknown");
    assert_eq!(shots[1].state, State::Pending);
    assert_eq!(
        shots[2].state,
        State::Submitted {
            job_id: "job_1".into()
        }
    );
    assert!(shots[0].timings.submitting_at.is_some());
    // Out-of-order transitions are refused.
    assert!(
        j.transition("a", StateKind::Pending, &State::Submitting)
            .is_err()
    );
}

#[test]
fn editing_a_submitted_shot_is_a_conflict_that_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), E).unwrap();
    j.reconcile(&[plan("a", "f1"), plan("b", "f1")]).unwrap();
    j.transition("a", StateKind::Pending, &State::Submitting)
        .unwrap();
    j.transition(
        "a",
        StateKind::Submitting,
        &State::Submitted {
            job_id: "job_1".into(),
        },
    )
    .unwrap();
    j.transition("b", StateKind::Pending, &State::Submitting)
        .unwrap();
    let r = j.reconcile(&[plan("a", "f2"), plan("b", "f1")]).unwrap();
    assert_eq!(r.conflicts.len(), 1);
    assert!(r.conflicts[0].1.contains("job_1"));
    assert_eq!(
        j.shot("b").unwrap().unwrap().state,
        State::Submitting,
        "rolled back"
    );
    // A pending shot may change freely.
    let r = j
        .reconcile(&[plan("a", "f1"), plan("b", "f1"), plan("c", "x")])
        .unwrap();
    assert!(r.conflicts.is_empty());
}

#[test]
fn a_registered_secret_is_never_stored() {
    let secret = "sk-journal-SECRET-0123456789";
    happyhorse_sandbox::register_secret(secret);
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), E).unwrap();
    j.reconcile(&[plan("a", "f")]).unwrap();
    j.transition("a", StateKind::Pending, &State::Submitting)
        .unwrap();
    let failure = State::Unknown {
        failure: Failure {
            stage: Stage::Submit,
            code: None,
            message: format!("the provider said: bad key {secret}"),
        },
    };
    j.transition("a", StateKind::Submitting, &failure).unwrap();
    drop(j);
    let bytes = std::fs::read(Journal::path_in(dir.path())).unwrap();
    let wal = std::fs::read(dir.path().join("journal.sqlite-wal")).unwrap_or_default();
    for file in [bytes, wal] {
        assert!(
            !file.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the key reached the journal's files"
        );
    }
}

#[test]
fn one_run_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Journal::open(dir.path(), E).unwrap();
    let second = Journal::open(dir.path(), E).err().unwrap();
    assert!(second.to_string().contains("another host-demo run"));
    // Reading is always possible.
    let reader = Journal::open_read_only(&Journal::path_in(dir.path())).unwrap();
    assert!(reader.shots().unwrap().is_empty());
}

#[test]
fn rows_written_by_earlier_versions_read_back_as_the_same_states() {
    // Rows as every earlier host-demo wrote them: the state's name as text, and the
    // columns it needs.
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), E).unwrap();
    let failure = r#"{"stage":"poll","code":"timeout","message":"gave up"}"#;
    let rows = [
        ("a", "pending", None, None, None, None),
        ("b", "submitting", None, None, None, None),
        ("c", "submitted", Some("job_c"), None, None, None),
        (
            "d",
            "completed",
            Some("job_d"),
            Some(r#"["https://x/d.mp4"]"#),
            None,
            None,
        ),
        (
            "e",
            "downloaded",
            Some("job_e"),
            None,
            Some(r#"[{"path":"e.mp4","bytes":3,"sha256":"00"}]"#),
            None,
        ),
        ("f", "failed", Some("job_f"), None, None, Some(failure)),
        ("g", "unknown", None, None, None, Some(failure)),
    ];
    for (position, (name, state, job, urls, files, error)) in rows.into_iter().enumerate() {
        j.conn()
            .execute(
                "INSERT INTO shots (name, position, output, fingerprint, request, warnings,
                    currency, cost_micros, billed_seconds, state, job_id, urls, files, error,
                    created_at, updated_at, endpoint)
                 VALUES (?1, ?2, ?1, 'f', '{}', '[]', 'USD', 0, 5, ?3, ?4, ?5, ?6, ?7, 0, 0, ?8)",
                params![name, position as i64, state, job, urls, files, error, E],
            )
            .unwrap();
    }
    let read: Vec<(String, StateKind)> = j
        .shots()
        .unwrap()
        .into_iter()
        .map(|r| (r.state.name().to_string(), r.state.kind()))
        .collect();
    let expected: Vec<(String, StateKind)> = StateKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), *k))
        .collect();
    assert_eq!(read, expected);
}

#[test]
fn what_finished_jobs_taught_survives_the_run_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let class = JobClass::new(3, "720p");
    let record = |total: f64| {
        Record::new(
            class.clone(),
            total,
            &[Reading {
                age_ms: 10_000.0,
                progress: 0.25,
            }],
            1_700_000_000_000,
        )
        .unwrap()
        .with_load(Some(total as u32 % 50))
    };
    {
        let journal = Journal::open(dir.path(), E).unwrap();
        assert!(journal.learned().unwrap().is_empty());
        let many: Vec<Record> = (0..crate::scheduler::learn::CAPACITY + 10)
            .map(|i| record(40_000.0 + i as f64))
            .collect();
        journal.save_learned(&many).unwrap();
    }
    // The next run reads them back, the oldest beyond the bound gone.
    let journal = Journal::open(dir.path(), E).unwrap();
    let learned = journal.learned().unwrap();
    assert_eq!(learned.len(), crate::scheduler::learn::CAPACITY);
    assert_eq!(learned[0], record(40_010.0));
    // A hand-edited row that makes no sense is skipped, not fatal.
    journal
        .conn()
        .execute(
            "INSERT INTO learned_jobs (class, total_ms, readings, ended_at) VALUES ('x', -1, 'nonsense', -5)",
            [],
        )
        .unwrap();
    assert_eq!(
        journal.learned().unwrap().len(),
        crate::scheduler::learn::CAPACITY
    );
}

#[test]
fn an_in_memory_journal_keeps_what_finished_jobs_taught() {
    // `generate` and `resume` run on one: it must take the same rows as a file's.
    let journal = Journal::in_memory(E).unwrap();
    let record = Record::new(JobClass::new(3, "720p"), 45_000.0, &[], 1_700_000_000_000)
        .unwrap()
        .with_load(Some(3));
    journal.save_learned(std::slice::from_ref(&record)).unwrap();
    assert_eq!(journal.learned().unwrap(), [record]);
}

#[test]
fn a_journal_written_before_loads_were_kept_reads_on() {
    // As the journal was written before `load`, with one learned job.
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(Journal::path_in(dir.path())).unwrap();
        conn.execute_batch(
            "CREATE TABLE learned_jobs (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, class TEXT NOT NULL,
                total_ms REAL NOT NULL, readings TEXT NOT NULL, ended_at INTEGER NOT NULL);
             INSERT INTO learned_jobs (class, total_ms, readings, ended_at)
                VALUES ('3s@720p', 45000, '[[20000,0.4]]', 1700000000000);
             PRAGMA user_version=1;",
        )
        .unwrap();
    }
    let journal = Journal::open(dir.path(), E).unwrap();
    let old = journal.learned().unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!((old[0].total_ms, old[0].load), (45_000.0, None));
    journal
        .save_learned(&[old[0].clone().with_load(Some(7))])
        .unwrap();
    drop(journal);
    // Opened again, nothing is migrated twice and both rows read back.
    let loads: Vec<Option<u32>> = Journal::open(dir.path(), E)
        .unwrap()
        .learned()
        .unwrap()
        .iter()
        .map(|r| r.load)
        .collect();
    assert_eq!(loads, [None, Some(7)]);
}

#[test]
fn one_endpoint_never_sees_uses_or_forgets_anothers_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let other = "http://127.0.0.1:8787";
    {
        let j = Journal::open(dir.path(), other).unwrap();
        j.reconcile(&[plan("a", "f")]).unwrap();
        j.transition("a", StateKind::Pending, &State::Submitting)
            .unwrap();
        let job = State::Submitted {
            job_id: "job_1".into(),
        };
        j.transition("a", StateKind::Submitting, &job).unwrap();
    }
    let j = Journal::open(dir.path(), E).unwrap();
    assert!(j.shots().unwrap().is_empty(), "not this endpoint's");
    assert!(j.shot("a").unwrap().is_none());
    j.reconcile(&[plan("a", "f")]).unwrap();
    assert_eq!(j.shot("a").unwrap().unwrap().state, State::Pending);
    let elsewhere = j.elsewhere().unwrap();
    assert_eq!(elsewhere.len(), 1);
    assert_eq!(
        (elsewhere[0].endpoint.as_str(), elsewhere[0].state.job_id()),
        (other, Some("job_1"))
    );
    drop(j);
    // Back at the first endpoint, its job is as it was.
    let j = Journal::open(dir.path(), other).unwrap();
    assert_eq!(j.shot("a").unwrap().unwrap().state.job_id(), Some("job_1"));
    // Read only, both are there, each with its endpoint.
    let all = Journal::open_read_only(&Journal::path_in(dir.path()))
        .unwrap()
        .shots()
        .unwrap();
    assert_eq!(all.len(), 2);
}

/// A journal as schema 1 wrote it: shots keyed by name alone, one job submitted.
fn journal_v1(dir: &Path) {
    let conn = Connection::open(Journal::path_in(dir)).unwrap();
    conn.execute_batch(
        "CREATE TABLE shots (
            name TEXT PRIMARY KEY, position INTEGER NOT NULL, output TEXT NOT NULL,
            fingerprint TEXT NOT NULL, request TEXT NOT NULL, warnings TEXT NOT NULL,
            currency TEXT NOT NULL, cost_micros INTEGER NOT NULL, billed_seconds INTEGER NOT NULL,
            state TEXT NOT NULL, job_id TEXT, urls TEXT, files TEXT, error TEXT,
            created_at INTEGER NOT NULL, submitting_at INTEGER, submitted_at INTEGER,
            completed_at INTEGER, downloaded_at INTEGER, ended_at INTEGER,
            updated_at INTEGER NOT NULL);
         CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, shot TEXT NOT NULL,
            at INTEGER NOT NULL, state TEXT NOT NULL, detail TEXT);
         INSERT INTO shots (name, position, output, fingerprint, request, warnings, currency,
            cost_micros, billed_seconds, state, job_id, created_at, updated_at)
            VALUES ('a', 0, 'a', 'f', '{}', '[]', 'USD', 700000, 5, 'submitted', 'job_1', 0, 0);
         PRAGMA user_version=1;",
    )
    .unwrap();
}

#[test]
fn a_journal_from_before_endpoints_is_adopted_by_the_first_real_endpoint_never_the_emulator() {
    let dir = tempfile::tempdir().unwrap();
    journal_v1(dir.path());
    // A keyless demo first: the paid job is not the emulator's to reset.
    {
        let demo = Journal::open(dir.path(), crate::session::BUILT_IN_EMULATOR).unwrap();
        assert!(demo.shots().unwrap().is_empty());
        assert!(demo.restart_lost_jobs("gone").unwrap().is_empty());
        let elsewhere = demo.elsewhere().unwrap();
        assert_eq!(
            (elsewhere[0].endpoint.as_str(), elsewhere[0].state.job_id()),
            ("", Some("job_1"))
        );
    }
    // The first real endpoint adopts it, job and all, and says so.
    let j = Journal::open(dir.path(), E).unwrap();
    let a = j.shot("a").unwrap().unwrap();
    assert_eq!((a.endpoint.as_str(), a.state.job_id()), (E, Some("job_1")));
    assert!(
        j.events("a")
            .unwrap()
            .iter()
            .any(|(_, state, _)| state == "adopted")
    );
}

#[test]
fn the_built_in_emulators_lost_jobs_start_over_and_downloads_stay() {
    let j = Journal::in_memory(crate::session::BUILT_IN_EMULATOR).unwrap();
    j.reconcile(&[plan("a", "f"), plan("b", "g")]).unwrap();
    for name in ["a", "b"] {
        j.transition(name, StateKind::Pending, &State::Submitting)
            .unwrap();
        j.transition(
            name,
            StateKind::Submitting,
            &State::Submitted {
                job_id: format!("job_{name}"),
            },
        )
        .unwrap();
    }
    j.transition(
        "b",
        StateKind::Submitted,
        &State::Completed {
            job_id: "job_b".into(),
            urls: vec!["http://x/b.mp4".into()],
        },
    )
    .unwrap();
    j.transition(
        "b",
        StateKind::Completed,
        &State::Downloaded {
            job_id: "job_b".into(),
            files: vec![],
        },
    )
    .unwrap();
    assert_eq!(j.restart_lost_jobs("gone").unwrap(), ["a"]);
    assert_eq!(j.shot("a").unwrap().unwrap().state, State::Pending);
    assert_eq!(j.shot("b").unwrap().unwrap().state.name(), "downloaded");
}
