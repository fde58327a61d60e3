//! How a shot's state is written as a row's columns and read back, and the event log each
//! change appends to: the one place that knows the columns.

use super::state::{Failure, State, StateKind};
use super::{PlannedRow, ShotRow, Timings, redact};
use anyhow::{Context, Result, bail};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, params};
use serde_json::Value;

pub(super) const COLUMNS: &str =
    "name, position, output, fingerprint, request, warnings, currency, cost_micros,
    billed_seconds, state, job_id, urls, files, error, created_at, submitting_at, submitted_at,
    completed_at, downloaded_at, ended_at, updated_at, endpoint";

/// Read a row; the outer error is SQLite's, the inner one a row that does not make sense.
pub(super) fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ShotRow>> {
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
        endpoint: r.get(21)?,
    }))
}

/// The columns a state sets besides `state` itself.
#[derive(Default)]
pub(super) struct Columns<'a> {
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
pub(super) fn set_state(
    conn: &Connection,
    endpoint: &str,
    name: &str,
    state: &State,
    now: i64,
) -> Result<()> {
    let c = Columns::of(state)?;
    // `stamp` is one of the fixed column names above, never user input.
    let stamp_sql = c
        .stamp
        .map_or_else(String::new, |col| format!(", {col} = ?7"));
    let changed = conn.execute(
        &format!(
            "UPDATE shots SET state = ?2, job_id = ?3, urls = ?4, files = ?5, error = ?6,
                updated_at = ?7{stamp_sql} WHERE name = ?1 AND endpoint = ?8"
        ),
        params![
            name,
            state.name(),
            c.job_id,
            c.urls.as_deref().map(redact),
            c.files.as_deref().map(redact),
            c.error.as_deref().map(redact),
            now,
            endpoint
        ],
    )?;
    if changed != 1 {
        bail!("shot {name:?} is not in the journal");
    }
    event(conn, endpoint, name, now, state.name(), c.detail.as_deref())
}

/// A plan's columns as `?1`–`?9` of the statements that write them (a new shot, a shot
/// refreshed from the storyboard), in the table's order.
pub(super) fn planned_values(plan: &PlannedRow) -> Result<Vec<Sql>> {
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
pub(super) fn insert(
    conn: &Connection,
    endpoint: &str,
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
            cost_micros, billed_seconds, state, job_id, created_at, submitted_at, updated_at,
            endpoint)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?12, ?14)",
        rusqlite::params_from_iter(planned_values(plan)?.into_iter().chain([
            Sql::Text(state.as_str().into()),
            job_id.map_or(Sql::Null, |j| Sql::Text(j.into())),
            Sql::Integer(now),
            job_id.map_or(Sql::Null, |_| Sql::Integer(now)),
            Sql::Text(endpoint.into()),
        ])),
    )?;
    event(conn, endpoint, &plan.name, now, state.as_str(), Some(why))
}

pub(super) fn event(
    conn: &Connection,
    endpoint: &str,
    shot: &str,
    at: i64,
    state: &str,
    detail: Option<&str>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO events (shot, at, state, detail, endpoint) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![shot, at, state, detail.map(redact), endpoint],
    )?;
    Ok(())
}
