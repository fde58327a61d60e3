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
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Everything written into the journal from outside (failure messages, URLs, the request)
/// goes through the one redaction of [`happyhorse_sandbox::redact`]: the key is never stored.
fn redact(text: &str) -> String {
    happyhorse_sandbox::redact(text).into_owned()
}

mod learned;
mod reconcile;
mod rows;
mod schema;
pub mod state;
#[cfg(test)]
mod tests;

pub use schema::FILE_NAME;
pub use state::{Failure, FileRecord, Mover, Stage, State, StateKind};

use crate::session::BUILT_IN_EMULATOR;
use rows::{COLUMNS, event, insert, read_row, set_state};
use schema::{LOCK_NAME, SCHEMA_VERSION, UNKNOWN_ENDPOINT, create_schema};

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
    /// Where its job lives: the API origin it is (or was to be) submitted to, or
    /// `BUILT_IN_EMULATOR` (empty: journaled before endpoints were recorded, not yet adopted).
    pub endpoint: String,
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

/// An open journal. One opened for a run sees and changes only its endpoint's shots: a job
/// belongs to the endpoint it was submitted to, and no other endpoint's run reuses, fails or
/// forgets it. One opened to read ([`Journal::open_read_only`]) sees every endpoint's.
pub struct Journal {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The endpoint whose shots this journal reads and writes; `None`: every endpoint's,
    /// read only.
    endpoint: Option<String>,
    /// Held for the journal's lifetime when opened for writing.
    _lock: Option<File>,
}

impl Journal {
    /// The journal file of an output folder.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Open (creating it if needed) the journal in `dir` for a run against `endpoint`
    /// (`Session::endpoint`), taking the folder's lock. Shots journaled before endpoints were
    /// recorded are adopted by the first real endpoint that opens it (said in their event
    /// log); until then every run lists them as an endpoint not recorded.
    pub fn open(dir: &Path, endpoint: &str) -> Result<Journal> {
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
        // The built-in emulator never adopts: its jobs cannot outlive it, so a job journaled
        // before endpoints were recorded is some real endpoint's (a keyless demo's would be
        // reset and paid for again there).
        if endpoint != BUILT_IN_EMULATOR {
            adopt_unknown(&mut conn, endpoint)?;
        }
        Ok(Journal {
            conn: Mutex::new(conn),
            path,
            endpoint: Some(endpoint.to_string()),
            _lock: Some(lock),
        })
    }

    /// A journal in memory, gone with the process: the one-shot plan of `generate` and
    /// `resume`, which leave no file beside their outputs (and take no folder lock, so two of
    /// them may write into one output folder, as they always could). Their crash safety is
    /// the job id they print as soon as it exists.
    pub fn in_memory(endpoint: &str) -> Result<Journal> {
        let mut conn = Connection::open_in_memory().context("opening an in-memory journal")?;
        create_schema(&mut conn)?;
        Ok(Journal {
            conn: Mutex::new(conn),
            path: PathBuf::from(":memory:"),
            endpoint: Some(endpoint.to_string()),
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
            self.endpoint()?,
            plan,
            Some(job_id),
            now_ms(),
            "a job submitted earlier, picked up by its id",
        )
        .with_context(|| format!("journaling job {job_id} as shot {:?}", plan.name))
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
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            bail!(
                "{} is journal schema {version}, this host-demo reads {SCHEMA_VERSION}: {}",
                path.display(),
                if version > SCHEMA_VERSION {
                    "use the newer host-demo that wrote it"
                } else {
                    "run the storyboard (or `host-demo resolve`) once with this version to bring it up to date"
                }
            );
        }
        Ok(Journal {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            endpoint: None,
            _lock: None,
        })
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The endpoint this journal is scoped to (see [`Journal::open`]); `None` for a
    /// read-only journal, which sees every endpoint's shots.
    pub fn scope(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The endpoint a change is made for: a journal opened read-only changes nothing.
    fn endpoint(&self) -> Result<&str> {
        self.endpoint
            .as_deref()
            .context("a journal opened to read is not changed")
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so the connection is still good.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every shot of this journal's endpoint (of every endpoint, read only), in storyboard
    /// order.
    pub fn shots(&self) -> Result<Vec<ShotRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM shots WHERE ?1 IS NULL OR endpoint = ?1
             ORDER BY position, name, endpoint"
        ))?;
        let rows = stmt.query_map([&self.endpoint], read_row)?;
        rows.map(|r| r?).collect()
    }

    /// The shots of every other endpoint than this journal's: what runs elsewhere left.
    pub fn elsewhere(&self) -> Result<Vec<ShotRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM shots WHERE endpoint IS NOT ?1 ORDER BY position, name, endpoint"
        ))?;
        let rows = stmt.query_map([&self.endpoint], read_row)?;
        rows.map(|r| r?).collect()
    }

    /// One shot of this journal's endpoint.
    pub fn shot(&self, name: &str) -> Result<Option<ShotRow>> {
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM shots WHERE name = ?1 AND endpoint = ?2"),
                [name, self.endpoint()?],
                read_row,
            )
            .optional()?;
        row.transpose()
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
        let endpoint = self.endpoint()?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: Option<String> = tx
            .query_row(
                "SELECT state FROM shots WHERE name = ?1 AND endpoint = ?2",
                [name, endpoint],
                |r| r.get(0),
            )
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
        set_state(&tx, endpoint, name, to, now_ms())?;
        tx.commit()?;
        Ok(())
    }

    /// Put every shot of this endpoint whose job can no longer be reached back to `pending`,
    /// saying `why` in its event log, and return their names: for the built-in emulator,
    /// whose jobs end with the process that started it (nothing was billed, nothing can be
    /// polled). Downloaded shots keep their files; pending ones stay as they are.
    pub fn restart_lost_jobs(&self, why: &str) -> Result<Vec<String>> {
        let endpoint = self.endpoint()?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let names: Vec<String> = tx
            .prepare("SELECT name FROM shots WHERE endpoint = ?1 AND state NOT IN ('pending', 'downloaded') ORDER BY position")?
            .query_map([endpoint], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let now = now_ms();
        for name in &names {
            tx.execute(
                "UPDATE shots SET state = 'pending', job_id = NULL, urls = NULL, files = NULL,
                    error = NULL, updated_at = ?3 WHERE endpoint = ?1 AND name = ?2",
                rusqlite::params![endpoint, name, now],
            )?;
            event(
                &tx,
                endpoint,
                name,
                now,
                StateKind::Pending.as_str(),
                Some(why),
            )?;
        }
        tx.commit()?;
        Ok(names)
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
        event(
            &conn,
            self.endpoint()?,
            name,
            now_ms(),
            to.name(),
            Some(detail),
        )?;
        Ok(())
    }

    /// The event log of one shot: (time, state, detail), oldest first.
    pub fn events(&self, name: &str) -> Result<Vec<(i64, String, Option<String>)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT at, state, detail FROM events
             WHERE shot = ?1 AND (?2 IS NULL OR endpoint = ?2) ORDER BY seq",
        )?;
        let rows = stmt.query_map(rusqlite::params![name, self.endpoint], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Shots (and what finished jobs taught) journaled before endpoints were recorded become
/// `endpoint`'s: the first real endpoint's run after the upgrade is the best witness there
/// is (the manifest names only the last run's endpoint, not where each job went). Said in
/// each shot's event log.
fn adopt_unknown(conn: &mut Connection, endpoint: &str) -> Result<()> {
    let tx = conn.transaction()?;
    let names: Vec<String> = tx
        .prepare("SELECT name FROM shots WHERE endpoint = ?1")?
        .query_map([UNKNOWN_ENDPOINT], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for name in &names {
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM shots WHERE endpoint = ?1 AND name = ?2)",
            [endpoint, name],
            |r| r.get(0),
        )?;
        if taken {
            continue;
        }
        tx.execute(
            "UPDATE shots SET endpoint = ?1 WHERE endpoint = ?2 AND name = ?3",
            [endpoint, UNKNOWN_ENDPOINT, name],
        )?;
        event(
            &tx,
            endpoint,
            name,
            now_ms(),
            "adopted",
            Some("journaled before endpoints were recorded: taken as this endpoint's"),
        )?;
    }
    tx.execute(
        "UPDATE learned_jobs SET endpoint = ?1 WHERE endpoint = ?2",
        [endpoint, UNKNOWN_ENDPOINT],
    )?;
    tx.commit()?;
    Ok(())
}
