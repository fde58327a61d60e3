//! What finished jobs taught the scheduler, kept in the journal so the next run starts
//! knowing it (bounded: the most recent `learn::CAPACITY` jobs).

use super::Journal;
use crate::scheduler::learn::{JobClass, Reading, Record};
use anyhow::Result;

impl Journal {
    /// Remembers finished jobs' timings for the scheduler's learner (see
    /// `learn`), keeping only the most recent `learn::CAPACITY`.
    pub fn save_learned(&self, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let endpoint = self.endpoint()?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for r in records {
            let readings: Vec<[f64; 2]> =
                r.readings.iter().map(|x| [x.age_ms, x.progress]).collect();
            tx.execute(
                "INSERT INTO learned_jobs (class, total_ms, readings, ended_at, load, endpoint)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    r.class.key(),
                    r.total_ms,
                    serde_json::to_string(&readings)?,
                    i64::try_from(r.ended_unix_ms).unwrap_or(i64::MAX),
                    r.load,
                    endpoint
                ],
            )?;
        }
        // Each endpoint keeps its own most recent: one provider's timings say nothing of
        // another's (least of all the built-in emulator's of the real service's).
        tx.execute(
            "DELETE FROM learned_jobs WHERE endpoint = ?2 AND seq NOT IN
                (SELECT seq FROM learned_jobs WHERE endpoint = ?2 ORDER BY seq DESC LIMIT ?1)",
            rusqlite::params![
                i64::try_from(crate::scheduler::learn::CAPACITY).unwrap_or(i64::MAX),
                endpoint
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The finished jobs' timings an earlier run against this journal's endpoint saved,
    /// oldest first. Rows that do not read back as a sane record (a hand-edited journal) are
    /// skipped.
    pub fn learned(&self) -> Result<Vec<Record>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT class, total_ms, readings, ended_at, load FROM learned_jobs
             WHERE ?1 IS NULL OR endpoint = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([&self.endpoint], |row| {
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
}
