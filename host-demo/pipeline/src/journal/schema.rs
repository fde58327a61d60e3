//! The journal's tables, and how a journal from an earlier version is brought up to date.

use anyhow::Result;
use rusqlite::Connection;

/// The journal's file name inside the output folder.
pub const FILE_NAME: &str = "journal.sqlite";
/// The lock file's name inside the output folder.
pub(super) const LOCK_NAME: &str = "journal.lock";
/// The schema version written to `PRAGMA user_version`. Adding a nullable column
/// (`learned_jobs.load`) does not change it: versions that do not know the column read and
/// write the journal as before.
pub(super) const SCHEMA_VERSION: i64 = 1;

pub(super) const SCHEMA: &str = "
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
pub(super) fn create_schema(conn: &mut Connection) -> Result<()> {
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
