//! The per-user registry of submitted requests: which request fingerprints this user's runs
//! have sent, from which journal. A journal only knows its own folder; the registry lets a run
//! notice that the same shot was already paid for from another one (the storyboard copied
//! elsewhere, run with another `--out-dir`), and refuse to pay again unless told to.
//!
//! It also keeps the one-shot jobs (`one_shots`: what `generate` submitted and `resume` picked
//! up, with their request, estimate, state and files) and lists the latest of both kinds for
//! `host-demo jobs` (`recent`).
//!
//! It lives in `$HAPPYHORSE_STATE_DIR` when set (tests set it), else
//! `$XDG_STATE_HOME/happyhorse`, else `~/.local/state/happyhorse`, as `submits.sqlite`. A
//! request is recorded *before* it is sent, so a crash cannot leave a paid submit unrecorded.

mod one_shots;
mod recent;
#[cfg(test)]
mod tests_one_shots;

pub(crate) use one_shots::{JobEnd, Known, NewJob};
pub use one_shots::{JobFile, JobState, OneShotJob};
pub use recent::{RecentJob, StoryboardSubmit};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The environment variable that overrides where the registry lives.
pub const STATE_DIR_ENV: &str = "HAPPYHORSE_STATE_DIR";
/// The registry's file name inside the state folder.
pub const FILE_NAME: &str = "submits.sqlite";

/// `endpoint` is the API origin a submit went to (`Session::endpoint`): a request is paid
/// for at one endpoint, so only a submit to the same endpoint is a repeat. Submits recorded
/// before endpoints were (`NULL`) count for every endpoint: the safe side.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS submits (
    fingerprint TEXT NOT NULL,
    journal     TEXT NOT NULL,
    shot        TEXT NOT NULL,
    job_id      TEXT,
    at          INTEGER NOT NULL,
    endpoint    TEXT,
    UNIQUE (fingerprint, journal, shot, endpoint)
);
";

/// Brings a registry from before endpoints were recorded up to date, in one transaction:
/// its rows keep a `NULL` endpoint. A registry from before one-shot jobs were recorded gains
/// their table in the same transaction.
fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let old: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('submits') WHERE name = 'fingerprint')
         AND NOT EXISTS (SELECT 1 FROM pragma_table_info('submits') WHERE name = 'endpoint')",
        [],
        |r| r.get(0),
    )?;
    if old {
        tx.execute_batch("ALTER TABLE submits RENAME TO submits_v1;")?;
    }
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(one_shots::SCHEMA)?;
    if old {
        tx.execute_batch(
            "INSERT INTO submits (fingerprint, journal, shot, job_id, at)
             SELECT fingerprint, journal, shot, job_id, at FROM submits_v1;
             DROP TABLE submits_v1;",
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The per-user state folder, from the environment (see the module's documentation).
pub fn default_state_dir() -> Result<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var(STATE_DIR_ENV) {
        return Ok(dir);
    }
    if let Some(dir) = var("XDG_STATE_HOME") {
        return Ok(dir.join("happyhorse"));
    }
    var("HOME")
        .map(|home| home.join(".local/state/happyhorse"))
        .with_context(|| {
            format!("no HOME, XDG_STATE_HOME or {STATE_DIR_ENV} to keep the registry of submits in")
        })
}

/// A submit recorded from another journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The journal file that sent it.
    pub journal: String,
    /// The shot's name there.
    pub shot: String,
    /// The job it created, when the answer was recorded.
    pub job_id: Option<String>,
}

/// A row of `SELECT journal, shot, job_id`.
fn recorded(r: &rusqlite::Row<'_>) -> rusqlite::Result<Recorded> {
    Ok(Recorded {
        journal: r.get(0)?,
        shot: r.get(1)?,
        job_id: r.get(2)?,
    })
}

/// The open registry.
#[derive(Debug)]
pub struct Registry {
    conn: Mutex<Connection>,
    /// The flags a printed `resume` of this process's one-shot jobs repeats (the component,
    /// time bounds, sandbox: never the key), recorded with each ([`Registry::picked_up_with`]).
    pickup_flags: String,
}

impl Registry {
    /// Open (creating it if needed) the registry in `dir`.
    pub fn open(dir: &Path) -> Result<Registry> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        let mut conn =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        // Several runs (processes) share it.
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
        conn.execute_batch("PRAGMA synchronous=FULL;")?;
        migrate(&mut conn)?;
        Ok(Registry {
            conn: Mutex::new(conn),
            pickup_flags: String::new(),
        })
    }

    /// This registry, recording with every one-shot job it records or picks up the flags
    /// (` --component … --timeout-secs …`, as a printed command carries them; never the
    /// key) that `host-demo jobs` must repeat in the `resume` command it lists, so that
    /// command picks the job up as the one `generate` printed would.
    pub fn picked_up_with(mut self, flags: String) -> Registry {
        self.pickup_flags = flags;
        self
    }

    /// Open the registry in `dir` if there is one (bringing it up to date), without creating
    /// anything: `None` when no run or job has recorded anything there yet.
    pub fn open_existing(dir: &Path) -> Result<Option<Registry>> {
        if !Registry::path_in(dir).is_file() {
            return Ok(None);
        }
        Registry::open(dir).map(Some)
    }

    /// The registry's file in `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record that `shot` of `journal` is about to send `fingerprint` — unless another
    /// journal already did (and `pay_again` is not set): then nothing is recorded and that
    /// earlier submit is returned. The check and the record are one write transaction, so
    /// two runs (processes) that both passed their start-of-run check cannot both claim the
    /// same request: the second finds the first.
    pub(crate) fn claim(
        &self,
        fingerprint: &str,
        endpoint: &str,
        journal: &Path,
        shot: &str,
        pay_again: bool,
    ) -> Result<Option<Recorded>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if !pay_again {
            let earlier = tx
                .query_row(
                    "SELECT journal, shot, job_id FROM submits
                     WHERE fingerprint = ?1 AND journal != ?2
                       AND (endpoint = ?3 OR endpoint IS NULL) ORDER BY at LIMIT 1",
                    params![fingerprint, journal.to_string_lossy(), endpoint],
                    recorded,
                )
                .optional()?;
            if earlier.is_some() {
                return Ok(earlier);
            }
        }
        tx.execute(
            "INSERT INTO submits (fingerprint, journal, shot, at, endpoint)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO UPDATE SET at = excluded.at",
            params![
                fingerprint,
                journal.to_string_lossy(),
                shot,
                crate::journal::now_ms(),
                endpoint
            ],
        )?;
        tx.commit()?;
        Ok(None)
    }

    /// Record the job a recorded submit created.
    pub(crate) fn record_job(
        &self,
        fingerprint: &str,
        endpoint: &str,
        journal: &Path,
        shot: &str,
        job_id: &str,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE submits SET job_id = ?4
             WHERE fingerprint = ?1 AND journal = ?2 AND shot = ?3 AND endpoint = ?5",
            params![
                fingerprint,
                journal.to_string_lossy(),
                shot,
                job_id,
                endpoint
            ],
        )?;
        Ok(())
    }

    /// Submits of `fingerprint` to `endpoint` (or to an endpoint not recorded) from journals
    /// other than `journal`.
    pub(crate) fn elsewhere(
        &self,
        fingerprint: &str,
        endpoint: &str,
        journal: &Path,
    ) -> Result<Vec<Recorded>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT journal, shot, job_id FROM submits
             WHERE fingerprint = ?1 AND journal != ?2 AND (endpoint = ?3 OR endpoint IS NULL)
             ORDER BY at",
        )?;
        let rows = stmt.query_map(
            params![fingerprint, journal.to_string_lossy(), endpoint],
            recorded,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The endpoint the tests' submits go to.
    const E: &str = "https://api.example.com:443";

    #[test]
    fn a_submit_is_found_from_other_journals_only() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        let (a, b) = (
            Path::new("/x/a/journal.sqlite"),
            Path::new("/y/journal.sqlite"),
        );
        assert_eq!(r.claim("f1", E, a, "shot", false).unwrap(), None);
        r.record_job("f1", E, a, "shot", "job_1").unwrap();
        assert!(r.elsewhere("f1", E, a).unwrap().is_empty());
        assert!(r.elsewhere("f2", E, b).unwrap().is_empty());
        let found = r.elsewhere("f1", E, b).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].job_id.as_deref(), Some("job_1"));
        // Another process sees it too.
        let again = Registry::open(dir.path()).unwrap();
        assert_eq!(again.elsewhere("f1", E, b).unwrap(), found);
    }

    #[test]
    fn a_claim_from_another_journal_finds_the_first_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path()).unwrap();
        let (a, b) = (
            Path::new("/a/journal.sqlite"),
            Path::new("/b/journal.sqlite"),
        );
        assert_eq!(r.claim("f", E, a, "one", false).unwrap(), None);
        // The same journal again (a retried submit, two shots asking the same): allowed.
        assert_eq!(r.claim("f", E, a, "two", false).unwrap(), None);
        let earlier = r
            .claim("f", E, b, "one", false)
            .unwrap()
            .expect("a's claim");
        assert_eq!(earlier.journal, "/a/journal.sqlite");
        assert!(
            r.elsewhere("f", E, a).unwrap().is_empty(),
            "b recorded a refused claim"
        );
        // --pay-again records it whatever came before.
        assert_eq!(r.claim("f", E, b, "one", true).unwrap(), None);
        assert_eq!(r.elsewhere("f", E, a).unwrap().len(), 1);
    }
}
