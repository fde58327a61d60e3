//! The journal: every shot's state, in SQLite, committed before the next step starts.
//!
//! A shot's states and the one table of moves between them are in [`state`]; this module
//! stores them and refuses any move the table does not list.
//!
//! The rule that keeps a crash from paying twice: `submitting` is committed *before* the
//! submit is sent, and the job id *immediately* after it returns. A shot found `submitting`
//! when a run starts was interrupted between the two: its job may or may not exist, so it
//! becomes `unknown` and is not sent again until a person settles it with
//! `host-demo resolve` (attach the job id, or forget the shot to generate it anew).
//!
//! A `failed` shot remembers the stage it failed at, which decides what the next run does:
//! a submit the provider refused (no job exists, nothing billed) is retried; a job the provider
//! failed stays failed (a new one would be billed: `resolve --forget` asks for it); a poll or
//! download that gave up resumes from its job id.
//!
//! One run at a time: the journal's folder holds a lock file that a run (and `resolve`) holds
//! exclusively; the operating system releases it when the process dies, even by `kill -9`.
//! SQLite runs in WAL mode with `synchronous=FULL`, so `status` can read during a run and a
//! committed transition survives a crash of the process or the machine.

use anyhow::{Context, Result, bail};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Everything written into the journal from outside (failure messages, URLs, the request)
/// goes through the one redaction of [`crate::redact`]: the key is never stored.
fn redact(text: &str) -> String {
    crate::redact::redact(text).into_owned()
}
use crate::pipeline::scheduler::learn::{JobClass, Reading, Record};
use std::time::{SystemTime, UNIX_EPOCH};

pub mod state;
pub use state::{Failure, FileRecord, Mover, Stage, State, StateKind};

/// The journal's file name inside the output folder.
pub const FILE_NAME: &str = "journal.sqlite";
/// The lock file's name inside the output folder.
const LOCK_NAME: &str = "journal.lock";
/// The schema version written to `PRAGMA user_version`. Adding a nullable column
/// (`learned_jobs.load`) does not change it: versions that do not know the column read and
/// write the journal as before.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shots (
    name           TEXT PRIMARY KEY,
    position       INTEGER NOT NULL,
    output         TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    request        TEXT NOT NULL,
    warnings       TEXT NOT NULL,
    currency       TEXT NOT NULL,
    cost_micros    INTEGER NOT NULL,
    billed_seconds INTEGER NOT NULL,
    state          TEXT NOT NULL CHECK (state IN
                   ('pending','submitting','submitted','completed','downloaded','failed','unknown')),
    job_id         TEXT,
    urls           TEXT,
    files          TEXT,
    error          TEXT,
    created_at     INTEGER NOT NULL,
    submitting_at  INTEGER,
    submitted_at   INTEGER,
    completed_at   INTEGER,
    downloaded_at  INTEGER,
    ended_at       INTEGER,
    updated_at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS learned_jobs (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    class     TEXT NOT NULL,
    total_ms  REAL NOT NULL,
    readings  TEXT NOT NULL,
    ended_at  INTEGER NOT NULL,
    load      INTEGER
);
CREATE TABLE IF NOT EXISTS events (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    shot   TEXT NOT NULL,
    at     INTEGER NOT NULL,
    state  TEXT NOT NULL,
    detail TEXT
);
";

/// Creates what is missing of the schema, in one transaction (a crash leaves the journal as
/// it was): the tables, and `learned_jobs.load` on a journal from before it existed.
fn create_schema(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(SCHEMA)?;
    let has_load: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('learned_jobs') WHERE name = 'load')",
        [],
        |r| r.get(0),
    )?;
    if !has_load {
        // The load a job was submitted under; rows written before have none.
        tx.execute_batch("ALTER TABLE learned_jobs ADD COLUMN load INTEGER;")?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// When a shot passed each step (ms since the Unix epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timings {
    /// First journaled.
    pub created_at: i64,
    /// Last submit started.
    pub submitting_at: Option<i64>,
    /// Job id recorded.
    pub submitted_at: Option<i64>,
    /// Job seen completed.
    pub completed_at: Option<i64>,
    /// Files on disk.
    pub downloaded_at: Option<i64>,
    /// Failed or found unknown.
    pub ended_at: Option<i64>,
    /// Last change.
    pub updated_at: i64,
}

/// One shot as journaled: what was planned for it, and what has happened since.
#[derive(Debug, Clone, PartialEq)]
pub struct ShotRow {
    /// The shot as planned (its name is the journal's key).
    pub plan: PlannedRow,
    /// Where it stands.
    pub state: State,
    /// When it got there.
    pub timings: Timings,
}

/// A shot as the current storyboard plans it, for [`Journal::reconcile`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRow {
    /// Its name (the key).
    pub name: String,
    /// Its place in the storyboard.
    pub position: i64,
    /// Its output file stem.
    pub output: String,
    /// A hash of the normalized request, to notice a storyboard edited under a submitted shot.
    pub fingerprint: String,
    /// The normalized request, images described rather than included.
    pub request: Value,
    /// What `validate` warned about.
    pub warnings: Vec<String>,
    /// The estimate's currency.
    pub currency: String,
    /// The estimate, micro-units.
    pub cost_micros: u64,
    /// Seconds the estimate bills.
    pub billed_seconds: u32,
}

/// What [`Journal::reconcile`] found.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Shots whose storyboard entry changed after they were submitted: nothing was changed.
    pub conflicts: Vec<(String, String)>,
    /// Shots found `submitting` (an interrupted submit), now `unknown`.
    pub interrupted: Vec<String>,
    /// Shots put back in line: refused submits (retried) and given-up polls or downloads
    /// (resumed from their job).
    pub requeued: Vec<String>,
}

/// An open journal.
pub struct Journal {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Held for the journal's lifetime when opened for writing.
    _lock: Option<File>,
}

impl Journal {
    /// The journal file of an output folder.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Open (creating it if needed) the journal in `dir` for a run, taking the folder's lock.
    pub fn open(dir: &Path) -> Result<Journal> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock_path = dir.join(LOCK_NAME);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another host-demo run (or resolve) is using {}; wait for it to end (`host-demo status` shows its progress)",
                dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()));
            }
        }
        let path = Self::path_in(dir);
        let mut conn =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!(
                "{} could not be switched to WAL mode ({mode})",
                path.display()
            );
        }
        conn.execute_batch("PRAGMA synchronous=FULL;")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            bail!(
                "{} was written by a newer host-demo (schema {version}); use that version",
                path.display()
            );
        }
        create_schema(&mut conn)?;
        Ok(Journal {
            conn: Mutex::new(conn),
            path,
            _lock: Some(lock),
        })
    }

    /// A journal in memory, gone with the process: the one-shot plan of `generate` and
    /// `resume`, which leave no file beside their outputs (and take no folder lock, so two of
    /// them may write into one output folder, as they always could). Their crash safety is
    /// the job id they print as soon as it exists.
    pub fn in_memory() -> Result<Journal> {
        let mut conn = Connection::open_in_memory().context("opening an in-memory journal")?;
        create_schema(&mut conn)?;
        Ok(Journal {
            conn: Mutex::new(conn),
            path: PathBuf::from(":memory:"),
            _lock: None,
        })
    }

    /// Journal a job submitted elsewhere (`host-demo resume <job-id>`, an earlier
    /// `generate`'s) as a new shot that starts `submitted`: it is polled and downloaded,
    /// never submitted. Refused when a shot of that name is journaled already, so nothing
    /// a run did is overwritten.
    pub fn adopt(&self, plan: &PlannedRow, job_id: &str) -> Result<()> {
        let conn = self.conn();
        insert(
            &conn,
            plan,
            Some(job_id),
            now_ms(),
            "a job submitted earlier, picked up by its id",
        )
        .with_context(|| format!("journaling job {job_id} as shot {:?}", plan.name))
    }

    /// Remembers finished jobs' timings for the scheduler's learner (see
    /// `learn`), keeping only the most recent `learn::CAPACITY`.
    pub fn save_learned(&self, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for r in records {
            let readings: Vec<[f64; 2]> =
                r.readings.iter().map(|x| [x.age_ms, x.progress]).collect();
            tx.execute(
                "INSERT INTO learned_jobs (class, total_ms, readings, ended_at, load) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    r.class.key(),
                    r.total_ms,
                    serde_json::to_string(&readings)?,
                    i64::try_from(r.ended_unix_ms).unwrap_or(i64::MAX),
                    r.load
                ],
            )?;
        }
        tx.execute(
            "DELETE FROM learned_jobs WHERE seq <= (SELECT MAX(seq) FROM learned_jobs) - ?1",
            [i64::try_from(crate::pipeline::scheduler::learn::CAPACITY).unwrap_or(i64::MAX)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The finished jobs' timings an earlier run saved, oldest first. Rows that do not
    /// read back as a sane record (a hand-edited journal) are skipped.
    pub fn learned(&self) -> Result<Vec<Record>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT class, total_ms, readings, ended_at, load FROM learned_jobs ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, f64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, Option<i64>>(4)?,
            ))
        })?;
        let mut records = Vec::new();
        for row in rows {
            let (class, total_ms, readings, ended_at, load) = row?;
            let readings: Vec<[f64; 2]> = serde_json::from_str(&readings).unwrap_or_default();
            let readings: Vec<Reading> = readings
                .into_iter()
                .map(|[age_ms, progress]| Reading { age_ms, progress })
                .collect();
            let load = load.and_then(|load| u32::try_from(load).ok());
            records.extend(
                Record::new(
                    JobClass::from_key(&class),
                    total_ms,
                    &readings,
                    u64::try_from(ended_at).unwrap_or(0),
                )
                .map(|record| record.with_load(load)),
            );
        }
        Ok(records)
    }

    /// Open an existing journal to read it (`status`); works while a run holds the lock.
    pub fn open_read_only(path: &Path) -> Result<Journal> {
        if !path.is_file() {
            bail!(
                "no journal at {}: the storyboard has not been run yet",
                path.display()
            );
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Journal {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            _lock: None,
        })
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so the connection is still good.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every shot, in storyboard order.
    pub fn shots(&self) -> Result<Vec<ShotRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM shots ORDER BY position, name"
        ))?;
        let rows = stmt.query_map([], read_row)?;
        rows.map(|r| r?).collect()
    }

    /// One shot.
    pub fn shot(&self, name: &str) -> Result<Option<ShotRow>> {
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM shots WHERE name = ?1"),
                [name],
                read_row,
            )
            .optional()?;
        row.transpose()
    }

    /// Bring the journal in line with the storyboard before a run, in one transaction: add
    /// new shots; refresh shots nothing was billed for; turn interrupted submits `unknown`;
    /// requeue refused submits and given-up polls or downloads. When a shot that has a job
    /// was edited in the storyboard, nothing at all is changed and the conflicts are returned.
    pub fn reconcile(&self, planned: &[PlannedRow]) -> Result<Reconciled> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut out = Reconciled::default();
        let now = now_ms();
        for plan in planned {
            let existing = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM shots WHERE name = ?1"),
                    [&plan.name],
                    read_row,
                )
                .optional()?
                .transpose()?;
            let Some(row) = existing else {
                insert(&tx, plan, None, now, "added from the storyboard")?;
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
                     WHERE name = ?1",
                    rusqlite::params_from_iter(planned_values(plan)?.into_iter().chain([
                        Sql::Integer(now),
                        Sql::Text(StateKind::Pending.as_str().into()),
                    ])),
                )?;
                if requeue {
                    event(
                        &tx,
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
                "UPDATE shots SET position = ?2, output = ?3 WHERE name = ?1",
                params![plan.name, plan.position, plan.output],
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
                    set_state(&tx, &plan.name, &state, now)?;
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
                    set_state(&tx, &plan.name, &state, now)?;
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

    /// Move `name` from `from` to `to` on the runner's behalf, committed before this
    /// returns. Refuses (and changes nothing) when the shot is not `from`, or when
    /// `state::TRANSITIONS` has no such move: a transition out of order is a bug that must
    /// not reach the provider.
    pub fn transition(&self, name: &str, from: StateKind, to: &State) -> Result<()> {
        self.move_shot(name, &[from], to, Mover::Run)
    }

    /// Move `name` from one of `from` to `to`, as `by`, checked as [`Journal::transition`].
    fn move_shot(&self, name: &str, from: &[StateKind], to: &State, by: Mover) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: Option<String> = tx
            .query_row("SELECT state FROM shots WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(current) = current else {
            bail!("shot {name:?} is not in the journal");
        };
        let current_kind = StateKind::parse(&current);
        if !current_kind.is_some_and(|k| from.contains(&k) && state::allowed(k, to.kind(), by)) {
            let from: Vec<&str> = from.iter().map(|k| k.as_str()).collect();
            bail!(
                "shot {name:?} is {current}, not {}; refusing to make it {}",
                from.join(" or "),
                to.name()
            );
        }
        set_state(&tx, name, to, now_ms())?;
        tx.commit()?;
        Ok(())
    }

    /// Record a person's decision (`resolve`) in the event log as well as the state.
    pub fn record_decision(
        &self,
        name: &str,
        from: &[StateKind],
        to: &State,
        detail: &str,
    ) -> Result<()> {
        self.move_shot(name, from, to, Mover::Person)?;
        let conn = self.conn();
        event(&conn, name, now_ms(), to.name(), Some(detail))?;
        Ok(())
    }

    /// The event log of one shot: (time, state, detail), oldest first.
    pub fn events(&self, name: &str) -> Result<Vec<(i64, String, Option<String>)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT at, state, detail FROM events WHERE shot = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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

const COLUMNS: &str =
    "name, position, output, fingerprint, request, warnings, currency, cost_micros,
    billed_seconds, state, job_id, urls, files, error, created_at, submitting_at, submitted_at,
    completed_at, downloaded_at, ended_at, updated_at";

/// Read a row; the outer error is SQLite's, the inner one a row that does not make sense.
fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ShotRow>> {
    let state: String = r.get(9)?;
    let job_id: Option<String> = r.get(10)?;
    let urls: Option<String> = r.get(11)?;
    let files: Option<String> = r.get(12)?;
    let error: Option<String> = r.get(13)?;
    let request: String = r.get(4)?;
    let warnings: String = r.get(5)?;
    let name: String = r.get(0)?;
    let parsed = (|| -> Result<(State, Value, Vec<String>)> {
        let job = || job_id.clone().context("a job id is missing");
        let failure = || -> Result<Failure> {
            Ok(serde_json::from_str(
                error.as_deref().context("the error is missing")?,
            )?)
        };
        let Some(kind) = StateKind::parse(&state) else {
            bail!("unknown state {state:?}");
        };
        let state = match kind {
            StateKind::Pending => State::Pending,
            StateKind::Submitting => State::Submitting,
            StateKind::Submitted => State::Submitted { job_id: job()? },
            StateKind::Completed => State::Completed {
                job_id: job()?,
                urls: serde_json::from_str(urls.as_deref().unwrap_or("[]"))?,
            },
            StateKind::Downloaded => State::Downloaded {
                job_id: job()?,
                files: serde_json::from_str(files.as_deref().unwrap_or("[]"))?,
            },
            StateKind::Failed => State::Failed {
                job_id: job_id.clone(),
                failure: failure()?,
            },
            StateKind::Unknown => State::Unknown {
                failure: failure()?,
            },
        };
        Ok((
            state,
            serde_json::from_str(&request)?,
            serde_json::from_str(&warnings)?,
        ))
    })();
    let (state, request, warnings) = match parsed {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.context(format!("journal row of shot {name:?}")))),
    };
    let cost: i64 = r.get(7)?;
    Ok(Ok(ShotRow {
        plan: PlannedRow {
            name,
            position: r.get(1)?,
            output: r.get(2)?,
            fingerprint: r.get(3)?,
            request,
            warnings,
            currency: r.get(6)?,
            cost_micros: u64::try_from(cost).unwrap_or(0),
            billed_seconds: r.get(8)?,
        },
        state,
        timings: Timings {
            created_at: r.get(14)?,
            submitting_at: r.get(15)?,
            submitted_at: r.get(16)?,
            completed_at: r.get(17)?,
            downloaded_at: r.get(18)?,
            ended_at: r.get(19)?,
            updated_at: r.get(20)?,
        },
    }))
}

/// The columns a state sets besides `state` itself.
#[derive(Default)]
struct Columns<'a> {
    job_id: Option<&'a str>,
    urls: Option<String>,
    files: Option<String>,
    error: Option<String>,
    /// The timing column stamped with the transition's time.
    stamp: Option<&'static str>,
    /// The event log's detail.
    detail: Option<String>,
}

impl<'a> Columns<'a> {
    fn of(state: &'a State) -> Result<Columns<'a>> {
        Ok(match state {
            State::Pending => Columns::default(),
            State::Submitting => Columns {
                stamp: Some("submitting_at"),
                ..Default::default()
            },
            State::Submitted { job_id } => Columns {
                job_id: Some(job_id),
                stamp: Some("submitted_at"),
                detail: Some(job_id.clone()),
                ..Default::default()
            },
            State::Completed { job_id, urls } => Columns {
                job_id: Some(job_id),
                urls: Some(serde_json::to_string(urls)?),
                stamp: Some("completed_at"),
                detail: Some(format!("{} output(s)", urls.len())),
                ..Default::default()
            },
            State::Downloaded { job_id, files } => Columns {
                job_id: Some(job_id),
                files: Some(serde_json::to_string(files)?),
                stamp: Some("downloaded_at"),
                detail: Some(
                    files
                        .iter()
                        .map(|f| format!("{} ({} bytes)", f.path, f.bytes))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                ..Default::default()
            },
            State::Failed { job_id, failure } => Columns {
                job_id: job_id.as_deref(),
                error: Some(serde_json::to_string(failure)?),
                stamp: Some("ended_at"),
                detail: Some(failure.message.clone()),
                ..Default::default()
            },
            State::Unknown { failure } => Columns {
                error: Some(serde_json::to_string(failure)?),
                stamp: Some("ended_at"),
                detail: Some(failure.message.clone()),
                ..Default::default()
            },
        })
    }
}

/// Write `state` into the row (and the event log), stamping the step's time.
fn set_state(conn: &Connection, name: &str, state: &State, now: i64) -> Result<()> {
    let c = Columns::of(state)?;
    // `stamp` is one of the fixed column names above, never user input.
    let stamp_sql = c
        .stamp
        .map_or_else(String::new, |col| format!(", {col} = ?7"));
    let changed = conn.execute(
        &format!(
            "UPDATE shots SET state = ?2, job_id = ?3, urls = ?4, files = ?5, error = ?6,
                updated_at = ?7{stamp_sql} WHERE name = ?1"
        ),
        params![
            name,
            state.name(),
            c.job_id,
            c.urls.as_deref().map(redact),
            c.files.as_deref().map(redact),
            c.error.as_deref().map(redact),
            now
        ],
    )?;
    if changed != 1 {
        bail!("shot {name:?} is not in the journal");
    }
    event(conn, name, now, state.name(), c.detail.as_deref())
}

/// A plan's columns as `?1`–`?9` of the statements that write them (a new shot, a shot
/// refreshed from the storyboard), in the table's order.
fn planned_values(plan: &PlannedRow) -> Result<Vec<Sql>> {
    Ok(vec![
        Sql::Text(plan.name.clone()),
        Sql::Integer(plan.position),
        Sql::Text(plan.output.clone()),
        Sql::Text(plan.fingerprint.clone()),
        Sql::Text(redact(&plan.request.to_string())),
        Sql::Text(serde_json::to_string(&plan.warnings)?),
        Sql::Text(plan.currency.clone()),
        Sql::Integer(plan.cost_micros as i64),
        Sql::Integer(plan.billed_seconds.into()),
    ])
}

/// A new shot from its plan, with the event that says why: `pending`, or `submitted` as
/// `job_id` when the job exists already ([`Journal::adopt`]). A shot of that name already
/// journaled is refused by the table's key.
fn insert(
    conn: &Connection,
    plan: &PlannedRow,
    job_id: Option<&str>,
    now: i64,
    why: &str,
) -> Result<()> {
    let state = match job_id {
        Some(_) => StateKind::Submitted,
        None => StateKind::Pending,
    };
    conn.execute(
        "INSERT INTO shots (name, position, output, fingerprint, request, warnings, currency,
            cost_micros, billed_seconds, state, job_id, created_at, submitted_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?12)",
        rusqlite::params_from_iter(planned_values(plan)?.into_iter().chain([
            Sql::Text(state.as_str().into()),
            job_id.map_or(Sql::Null, |j| Sql::Text(j.into())),
            Sql::Integer(now),
            job_id.map_or(Sql::Null, |_| Sql::Integer(now)),
        ])),
    )?;
    event(conn, &plan.name, now, state.as_str(), Some(why))
}

fn event(conn: &Connection, shot: &str, at: i64, state: &str, detail: Option<&str>) -> Result<()> {
    conn.execute(
        "INSERT INTO events (shot, at, state, detail) VALUES (?1, ?2, ?3, ?4)",
        params![shot, at, state, detail.map(redact)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let j = Journal::in_memory().unwrap();
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
        let j = Journal::open(dir.path()).unwrap();
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

        let j = Journal::open(dir.path()).unwrap();
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
        let j = Journal::open(dir.path()).unwrap();
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
        crate::redact::register(secret);
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
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
        let _first = Journal::open(dir.path()).unwrap();
        let second = Journal::open(dir.path()).err().unwrap();
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
        let j = Journal::open(dir.path()).unwrap();
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
                        created_at, updated_at)
                     VALUES (?1, ?2, ?1, 'f', '{}', '[]', 'USD', 0, 5, ?3, ?4, ?5, ?6, ?7, 0, 0)",
                    params![name, position as i64, state, job, urls, files, error],
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
            let journal = Journal::open(dir.path()).unwrap();
            assert!(journal.learned().unwrap().is_empty());
            let many: Vec<Record> = (0..crate::pipeline::scheduler::learn::CAPACITY + 10)
                .map(|i| record(40_000.0 + i as f64))
                .collect();
            journal.save_learned(&many).unwrap();
        }
        // The next run reads them back, the oldest beyond the bound gone.
        let journal = Journal::open(dir.path()).unwrap();
        let learned = journal.learned().unwrap();
        assert_eq!(learned.len(), crate::pipeline::scheduler::learn::CAPACITY);
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
            crate::pipeline::scheduler::learn::CAPACITY
        );
    }

    #[test]
    fn an_in_memory_journal_keeps_what_finished_jobs_taught() {
        // `generate` and `resume` run on one: it must take the same rows as a file's.
        let journal = Journal::in_memory().unwrap();
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
        let journal = Journal::open(dir.path()).unwrap();
        let old = journal.learned().unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!((old[0].total_ms, old[0].load), (45_000.0, None));
        journal
            .save_learned(&[old[0].clone().with_load(Some(7))])
            .unwrap();
        drop(journal);
        // Opened again, nothing is migrated twice and both rows read back.
        let loads: Vec<Option<u32>> = Journal::open(dir.path())
            .unwrap()
            .learned()
            .unwrap()
            .iter()
            .map(|r| r.load)
            .collect();
        assert_eq!(loads, [None, Some(7)]);
    }
}
