//! What `host-demo jobs` lists: the jobs recorded last in both of the registry's tables — the
//! one-shot jobs (`generate`, `resume`) and the storyboard submits (`run`) — newest first.
//! A storyboard shot's state is in its journal, not here: each submit's is read from the
//! journal it names (read only, each journal once), when that journal still has its job.

use super::{OneShotJob, Registry};
use crate::journal::{Journal, ShotRow};
use anyhow::Result;
use rusqlite::params;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;

/// A storyboard shot's submit, as the registry has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryboardSubmit {
    /// The journal that sent it (`<output>/journal.sqlite`): its state is there.
    pub journal: PathBuf,
    /// The shot's name in it.
    pub shot: String,
    /// The job it created, once the answer was recorded.
    pub job_id: Option<String>,
    /// Where it was sent (`None`: recorded before endpoints were).
    pub endpoint: Option<String>,
    /// When it was recorded (Unix ms).
    pub at: i64,
    /// The shot's state in its journal (`downloaded`, `failed`, …), when the journal can be
    /// read and still has this submit's job there.
    pub state: Option<String>,
    /// The shot's estimate there, micro-units of `currency`, with the state.
    pub cost_micros: Option<u64>,
    /// The estimate's currency, with the state.
    pub currency: Option<String>,
}

impl StoryboardSubmit {
    /// The facts as JSON, the time as RFC 3339.
    pub fn json(&self) -> Value {
        let estimate = match (self.cost_micros, &self.currency) {
            (Some(micros), Some(currency)) => json!({
                "micros": micros,
                "currency": currency,
                "amount": crate::advice::money(micros, currency),
            }),
            _ => Value::Null,
        };
        json!({
            "kind": "storyboard",
            "recorded_at": video_gen_core::time::rfc3339(self.at),
            "endpoint": self.endpoint,
            "job_id": self.job_id,
            "state": self.state,
            "estimate": estimate,
            "journal": self.journal,
            "shot": self.shot,
        })
    }

    /// Fill in the state and estimate from the journal's `rows` (`None`: unreadable).
    fn read_from(&mut self, rows: Option<&[ShotRow]>) {
        let row = rows.into_iter().flatten().find(|row| {
            row.plan.name == self.shot
                && self.endpoint.as_ref().is_none_or(|e| *e == row.endpoint)
                // A shot forgotten and submitted again is another job: not this one's state.
                && (self.job_id.is_none() || row.state.job_id() == self.job_id.as_deref())
        });
        if let Some(row) = row {
            self.state = Some(row.state.name().to_string());
            self.cost_micros = Some(row.plan.cost_micros);
            self.currency = Some(row.plan.currency.clone());
        }
    }
}

/// One job of [`Registry::recent`].
#[derive(Debug, Clone, PartialEq)]
pub enum RecentJob {
    /// A job `generate` submitted or `resume` picked up.
    OneShot(OneShotJob),
    /// A storyboard shot's submit.
    Storyboard(StoryboardSubmit),
}

impl RecentJob {
    /// When it was recorded (Unix ms).
    pub fn at(&self) -> i64 {
        match self {
            RecentJob::OneShot(job) => job.created_at,
            RecentJob::Storyboard(submit) => submit.at,
        }
    }
}

impl Registry {
    /// The `limit` storyboard submits recorded last, newest first.
    pub fn storyboard_submits(&self, limit: usize) -> Result<Vec<StoryboardSubmit>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT journal, shot, job_id, endpoint, at FROM submits
             ORDER BY at DESC LIMIT ?1",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![limit], |r| {
            Ok(StoryboardSubmit {
                journal: PathBuf::from(r.get::<_, String>(0)?),
                shot: r.get(1)?,
                job_id: r.get(2)?,
                endpoint: r.get(3)?,
                at: r.get(4)?,
                state: None,
                cost_micros: None,
                currency: None,
            })
        })?;
        let mut submits: Vec<StoryboardSubmit> = rows.collect::<rusqlite::Result<_>>()?;
        // Each journal read once; one that cannot be (gone, another version's) leaves its
        // submits' states unknown.
        let mut journals: HashMap<PathBuf, Option<Vec<ShotRow>>> = HashMap::new();
        for submit in &mut submits {
            let rows = journals.entry(submit.journal.clone()).or_insert_with(|| {
                Journal::open_read_only(&submit.journal)
                    .and_then(|j| j.shots())
                    .ok()
            });
            submit.read_from(rows.as_deref());
        }
        Ok(submits)
    }

    /// The `limit` jobs recorded last, of both kinds, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<RecentJob>> {
        let mut jobs: Vec<RecentJob> = self
            .one_shots(limit)?
            .into_iter()
            .map(RecentJob::OneShot)
            .chain(
                self.storyboard_submits(limit)?
                    .into_iter()
                    .map(RecentJob::Storyboard),
            )
            .collect();
        // Stable: of two recorded in the same millisecond, the one-shot job lists first.
        jobs.sort_by_key(|job| std::cmp::Reverse(job.at()));
        jobs.truncate(limit);
        Ok(jobs)
    }
}
