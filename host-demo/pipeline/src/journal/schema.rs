//! The journal's tables, and how a journal from an earlier version is brought up to date.

use anyhow::Result;
use rusqlite::Connection;

/// The journal's file name inside the output folder.
pub const FILE_NAME: &str = "journal.sqlite";
/// The lock file's name inside the output folder.
pub(super) const LOCK_NAME: &str = "journal.lock";
/// The schema version written to `PRAGMA user_version`. Adding a nullable column
/// (`learned_jobs.load`) did not change it; keying shots by endpoint did (2): a version that
/// does not know endpoints would read another endpoint's jobs as its own.
pub(super) const SCHEMA_VERSION: i64 = 2;
/// What a shot journaled before endpoints were recorded is marked with, until a run adopts it.
pub(super) const UNKNOWN_ENDPOINT: &str = "";

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shots (
    endpoint       TEXT NOT NULL,
    name           TEXT NOT NULL,
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
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (endpoint, name)
);
CREATE TABLE IF NOT EXISTS learned_jobs (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    class     TEXT NOT NULL,
    total_ms  REAL NOT NULL,
    readings  TEXT NOT NULL,
    ended_at  INTEGER NOT NULL,
    load      INTEGER,
    endpoint  TEXT
);
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT,
    shot   TEXT NOT NULL,
    at     INTEGER NOT NULL,
    state  TEXT NOT NULL,
    detail TEXT
);
";

/// The shots table of schema 1: keyed by name alone, with no endpoint.
const SHOTS_V1_COLUMNS: &str = "name, position, output, fingerprint, request, warnings, currency,
    cost_micros, billed_seconds, state, job_id, urls, files, error, created_at, submitting_at,
    submitted_at, completed_at, downloaded_at, ended_at, updated_at";

/// Creates what is missing of the schema, in one transaction (a crash leaves the journal as
/// it was): the tables; `learned_jobs.load` on a journal from before it existed; and, on a
/// journal from before endpoints were recorded, [`UNKNOWN_ENDPOINT`] as the endpoint of every
/// shot, learned job and event, for the first real endpoint's run to adopt.
pub(super) fn create_schema(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction()?;
    let has = |table: &str, column: &str| -> Result<bool> {
        Ok(tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
            [table, column],
            |r| r.get(0),
        )?)
    };
    let v1_shots = has("shots", "name")? && !has("shots", "endpoint")?;
    if v1_shots {
        tx.execute_batch("ALTER TABLE shots RENAME TO shots_v1;")?;
    }
    if has("learned_jobs", "seq")? && !has("learned_jobs", "load")? {
        // The load a job was submitted under; rows written before have none.
        tx.execute_batch("ALTER TABLE learned_jobs ADD COLUMN load INTEGER;")?;
    }
    let v1_learned = has("learned_jobs", "seq")? && !has("learned_jobs", "endpoint")?;
    if v1_learned {
        tx.execute_batch("ALTER TABLE learned_jobs ADD COLUMN endpoint TEXT;")?;
    }
    if has("events", "seq")? && !has("events", "endpoint")? {
        tx.execute_batch("ALTER TABLE events ADD COLUMN endpoint TEXT;")?;
    }
    tx.execute_batch(SCHEMA)?;
    let legacy = UNKNOWN_ENDPOINT;
    if v1_shots {
        tx.execute(
            &format!(
                "INSERT INTO shots (endpoint, {SHOTS_V1_COLUMNS})
                 SELECT ?1, {SHOTS_V1_COLUMNS} FROM shots_v1"
            ),
            [legacy],
        )?;
        tx.execute_batch("DROP TABLE shots_v1;")?;
        tx.execute(
            "UPDATE events SET endpoint = ?1 WHERE endpoint IS NULL",
            [legacy],
        )?;
    }
    if v1_learned {
        tx.execute(
            "UPDATE learned_jobs SET endpoint = ?1 WHERE endpoint IS NULL",
            [legacy],
        )?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}
