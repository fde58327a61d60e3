//! What finished jobs teach about the ones still running: how long a job of a given clip
//! (length, resolution) takes from creation to its end, and how much of that is left when it
//! reports a given progress — learned online, from nothing but the jobs this account has
//! seen, so the poll scheduler does not depend on any one provider's (or emulator's) shape.
//!
//! The model is deliberately non-parametric. A prediction is the spread of *remaining time*
//! seen by finished jobs of the same class in the same situation: at a similar progress
//! reading (its nearest neighbours), or, when a job says nothing usable, at the same age or
//! later (the survival of the class's total times) among the jobs submitted under a similar
//! *load* — how many other jobs the scheduler was watching (submitted, not yet seen ended).
//! A provider's queue is load-dependent, and the account's own jobs are the part of that
//! load a client can see: on the emulator's render farm the load at submit correlates with
//! the queue wait at 0.66–0.94 (seven time-scaled 15-minute runs, `BENCHMARKS.md` §5). Where a
//! provider's queue ignores this account's load, the conditioning costs sample size (40 jobs
//! nearest in load, among them the most recent, instead of all), and the switch to all jobs
//! once fewer than 5 of the 40 outlived a job is abrupt by design: a job that old is a
//! straggler either way. The load is only used once 40 records of the class (or of all
//! classes, when the class borrows) know theirs. Quantiles, not means, so one straggler
//! moves a prediction by one sample, not by its size. A class seen too rarely borrows from
//! every class, rescaled by clip length.
//!
//! Progress from the network is distrusted: a reading that a later one of the same job
//! undercuts (noise, or a 0–100 job's early `0.8` read as 80 %) is dropped from what a
//! finished job teaches, and a live reading far ahead of what the job's age allows is read as
//! no progress at all.
//!
//! The model is bounded: it keeps the [`CAPACITY`] most recent finished jobs, and none older
//! than [`MAX_AGE`], so it follows a provider whose speed changes. [`Record`]s are plain data,
//! persisted by the pipeline's journal so that the next run starts informed.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Finished jobs remembered (the most recent).
pub const CAPACITY: usize = 400;
/// Finished jobs older than this (by their end, on the wall clock) are forgotten.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Samples a prediction needs before it is trusted.
const MIN_SAMPLES: usize = 5;
/// Neighbours a progress reading is compared with.
const NEIGHBOURS: usize = 16;
/// How far a progress reading may sit from a neighbour's and still count as one.
const NEIGHBOURHOOD: f64 = 0.12;
/// A later reading this much lower than an earlier one proves the earlier one wrong.
const UNDERCUT: f64 = 0.15;
/// A reading is implausible when the job is younger than this share of the age at which
/// finished jobs of its class reached that progress (their 10th percentile).
const PLAUSIBLE_AGE_SHARE: f64 = 0.5;
/// The longest time a record may hold (a day): anything longer is not a render.
const LONGEST_MS: f64 = 24.0 * 60.0 * 60.0 * 1e3;
/// Finished jobs, nearest in load, that a prediction from age alone rests on: enough for
/// its 10th and 90th percentiles to mean something, few enough to stay near the load.
const LOAD_NEIGHBOURS: usize = 40;

/// What a job asks the provider for, the part that decides how long it renders.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct JobClass {
    /// The clip's length, whole seconds (0 when unknown).
    pub clip_secs: u32,
    /// The resolution asked for (empty when unknown).
    pub resolution: String,
}

impl JobClass {
    /// The class of a clip `clip_secs` long at `resolution`.
    pub fn new(clip_secs: u32, resolution: &str) -> Self {
        JobClass {
            clip_secs,
            resolution: resolution.to_string(),
        }
    }

    /// `3s@720p`, the form the journal stores.
    pub fn key(&self) -> String {
        format!("{}s@{}", self.clip_secs, self.resolution)
    }

    /// The class a [`key`](JobClass::key) names; an unreadable key is the unknown class.
    pub fn from_key(key: &str) -> Self {
        key.split_once("s@")
            .and_then(|(secs, res)| Some(JobClass::new(secs.parse().ok()?, res)))
            .unwrap_or_default()
    }
}

/// One progress reading of a job: its age (ms since creation) and the progress it reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Milliseconds since the job was created.
    pub age_ms: f64,
    /// Reported progress, 0–1.
    pub progress: f64,
}

/// A finished job, as the model remembers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// What it rendered.
    pub class: JobClass,
    /// Creation to end, ms.
    pub total_ms: f64,
    /// Its trustworthy progress readings (see [`Record::new`]).
    pub readings: Vec<Reading>,
    /// When it ended, ms since the Unix epoch (for ageing out).
    pub ended_unix_ms: u64,
    /// How many other jobs the scheduler watched (submitted, not yet seen ended) when it was
    /// submitted — the account's jobs in flight as this host knows them, ended ones not yet
    /// noticed included; `None` when unknown (a job this run did not submit, or a record an
    /// older version saved).
    pub load: Option<u32>,
}

impl Record {
    /// A finished job's record, or `None` when its numbers are absurd. Readings that are not
    /// numbers, lie outside the job's life or progress range, or are undercut by a later
    /// reading are dropped.
    pub fn new(
        class: JobClass,
        total_ms: f64,
        readings: &[Reading],
        ended_unix_ms: u64,
    ) -> Option<Record> {
        if !(total_ms.is_finite() && total_ms > 0.0 && total_ms <= LONGEST_MS) {
            return None;
        }
        let sane: Vec<Reading> = readings
            .iter()
            .copied()
            .filter(|r| {
                r.age_ms.is_finite()
                    && (0.0..=total_ms).contains(&r.age_ms)
                    && r.progress.is_finite()
                    && r.progress > 0.0
                    && r.progress < 1.0
            })
            .collect();
        let kept = sane
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                !sane[i + 1..]
                    .iter()
                    .any(|later| later.age_ms >= r.age_ms && later.progress + UNDERCUT < r.progress)
            })
            .map(|(_, r)| *r)
            .collect();
        Some(Record {
            class,
            total_ms,
            readings: kept,
            ended_unix_ms,
            load: None,
        })
    }

    /// The record, knowing the load it was submitted under.
    pub fn with_load(self, load: Option<u32>) -> Record {
        Record { load, ..self }
    }
}

/// The spread of a job's remaining time, ms from the moment of the reading it was predicted
/// from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Remaining {
    /// Ends later than this in nine cases out of ten.
    pub early: f64,
    /// The median.
    pub median: f64,
    /// Ends before this in nine cases out of ten.
    pub late: f64,
    /// How many finished jobs' samples the prediction rests on.
    pub samples: usize,
    /// Whether it rests on the job's progress reading; `false`: on its age alone.
    pub from_reading: bool,
}

/// The model: finished jobs' records, most recent last.
#[derive(Debug, Default, Clone)]
pub struct Learner {
    records: VecDeque<Record>,
    /// Each class's typical total time, kept up to date by [`Learner::refresh`] (every
    /// prediction needs it for every record it pools).
    scales: HashMap<JobClass, f64>,
}

impl Learner {
    /// Remembers a finished job, forgetting the oldest beyond [`CAPACITY`].
    pub fn learn(&mut self, record: Record) {
        if self.records.len() >= CAPACITY {
            self.records.pop_front();
        }
        self.records.push_back(record);
        self.refresh();
    }

    /// Whether it knows enough to predict for `class` at all.
    pub fn knows(&self, class: &JobClass) -> bool {
        self.records.len() >= MIN_SAMPLES && self.scale(class).is_some()
    }

    /// Recomputes every class's typical total time.
    fn refresh(&mut self) {
        let mut by_class: HashMap<JobClass, Vec<f64>> = HashMap::new();
        for r in &self.records {
            by_class
                .entry(r.class.clone())
                .or_default()
                .push(r.total_ms);
        }
        let scales = by_class
            .keys()
            .filter_map(|class| Some((class.clone(), self.compute_scale(class)?)))
            .collect();
        self.scales = scales;
    }

    /// Forgets jobs that ended more than [`MAX_AGE`] before `now_unix_ms`.
    pub fn age_out(&mut self, now_unix_ms: u64) {
        let horizon = now_unix_ms.saturating_sub(MAX_AGE.as_millis() as u64);
        self.records.retain(|r| r.ended_unix_ms >= horizon);
        self.refresh();
    }

    /// How many finished jobs it knows.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The typical total time of `class`: its own median when it has enough jobs, else
    /// every job's time per clip second times this clip's length, else every job's median.
    fn scale(&self, class: &JobClass) -> Option<f64> {
        match self.scales.get(class) {
            Some(&scale) => Some(scale),
            None => self.compute_scale(class),
        }
    }

    fn compute_scale(&self, class: &JobClass) -> Option<f64> {
        let own: Vec<f64> = self
            .records
            .iter()
            .filter(|r| &r.class == class)
            .map(|r| r.total_ms)
            .collect();
        if own.len() >= MIN_SAMPLES.min(3) {
            return quantile(own, 0.5);
        }
        let per_sec: Vec<f64> = self
            .records
            .iter()
            .filter(|r| r.class.clip_secs > 0)
            .map(|r| r.total_ms / f64::from(r.class.clip_secs))
            .collect();
        if class.clip_secs > 0 && !per_sec.is_empty() {
            return quantile(per_sec, 0.5).map(|s| s * f64::from(class.clip_secs));
        }
        quantile(self.records.iter().map(|r| r.total_ms).collect(), 0.5)
    }

    /// Samples of remaining time for `class`, from `samples(record)` of its own records
    /// when there are enough, else of every record rescaled to `class`.
    fn samples<T>(&self, class: &JobClass, of: impl Fn(&Record, f64) -> Vec<T>) -> Option<Vec<T>> {
        let own: Vec<T> = self
            .records
            .iter()
            .filter(|r| &r.class == class)
            .flat_map(|r| of(r, 1.0))
            .collect();
        if own.len() >= MIN_SAMPLES {
            return Some(own);
        }
        let target = self.scale(class)?;
        let pooled: Vec<T> = self
            .records
            .iter()
            .filter_map(|r| {
                let ratio = target / self.scale(&r.class)?;
                ratio.is_finite().then(|| of(r, ratio))
            })
            .flatten()
            .collect();
        (pooled.len() >= MIN_SAMPLES).then_some(pooled)
    }

    /// When a job of `class`, `age_ms` old, reporting `progress` (if any), submitted under
    /// `load` (see [`Record::load`]), will end: the spread of its remaining time, or `None`
    /// when too little is known.
    pub fn predict(
        &self,
        class: &JobClass,
        age_ms: f64,
        progress: Option<f64>,
        load: Option<u32>,
    ) -> Option<Remaining> {
        if !age_ms.is_finite() || age_ms < 0.0 {
            return None;
        }
        let progress = progress
            .filter(|p| p.is_finite() && *p > 0.0 && *p < 1.0)
            .filter(|&p| self.plausible(class, age_ms, p));
        let by_reading = progress.and_then(|p| self.by_progress(class, p));
        let from_reading = by_reading.is_some();
        let remaining = by_reading.or_else(|| self.by_age(class, age_ms, load))?;
        let samples = remaining.len();
        Some(Remaining {
            early: quantile(remaining.clone(), 0.1)?,
            median: quantile(remaining.clone(), 0.5)?,
            late: quantile(remaining, 0.9)?,
            samples,
            from_reading,
        })
    }

    /// Remaining times of finished jobs' readings nearest `progress`.
    fn by_progress(&self, class: &JobClass, progress: f64) -> Option<Vec<f64>> {
        let mut near: Vec<(f64, f64)> = self.samples(class, |r, ratio| {
            r.readings
                .iter()
                .filter(|x| (x.progress - progress).abs() <= NEIGHBOURHOOD)
                .map(|x| {
                    (
                        (x.progress - progress).abs(),
                        (r.total_ms - x.age_ms) * ratio,
                    )
                })
                .collect()
        })?;
        near.sort_by(|a, b| a.0.total_cmp(&b.0));
        near.truncate(NEIGHBOURS);
        (near.len() >= MIN_SAMPLES).then(|| near.into_iter().map(|(_, r)| r).collect())
    }

    /// Remaining times of finished jobs that lived past `age_ms`: of the
    /// [`LOAD_NEIGHBOURS`] submitted under the load nearest `load`, when enough of those
    /// lived that long, else of all of them (a job older than nearly every job like it).
    fn by_age(&self, class: &JobClass, age_ms: f64, load: Option<u32>) -> Option<Vec<f64>> {
        // Ages scale with the class too: compare on the record's own scale.
        let target = self.scale(class)?;
        let own = self
            .records
            .iter()
            .filter(|r| &r.class == class && r.total_ms > age_ms)
            .count();
        let pool_all = own < MIN_SAMPLES;
        let totals: Vec<(Option<u32>, f64)> = self
            .records
            .iter()
            .rev()
            .filter(|r| pool_all || &r.class == class)
            .filter_map(|r| {
                let ratio = if pool_all {
                    target / self.scale(&r.class)?
                } else {
                    1.0
                };
                ratio.is_finite().then_some((r.load, r.total_ms * ratio))
            })
            .collect();
        let near_load = load.and_then(|load| {
            let mut known: Vec<(u32, f64)> = totals
                .iter()
                .filter_map(|&(l, total)| Some((l?.abs_diff(load), total)))
                .collect();
            if known.len() < LOAD_NEIGHBOURS {
                return None;
            }
            // Stable: among equally near, the most recent first.
            known.sort_by_key(|&(distance, _)| distance);
            survivors(
                known.into_iter().take(LOAD_NEIGHBOURS).map(|(_, t)| t),
                age_ms,
            )
        });
        near_load.or_else(|| survivors(totals.into_iter().map(|(_, t)| t), age_ms))
    }

    /// Whether `progress` at `age_ms` is believable: finished jobs of the class took at
    /// least about this long to get there (a 0–100 job's `0.8`, meaning 0.8 %, is read by
    /// the parser as 80 % and arrives far too young).
    fn plausible(&self, class: &JobClass, age_ms: f64, progress: f64) -> bool {
        let ages = self.samples(class, |r, ratio| {
            r.readings
                .iter()
                .filter(|x| (x.progress - progress).abs() <= NEIGHBOURHOOD)
                .map(|x| x.age_ms * ratio)
                .collect()
        });
        match ages.and_then(|ages| quantile(ages, 0.1)) {
            Some(typical) => age_ms >= typical * PLAUSIBLE_AGE_SHARE,
            None => true,
        }
    }
}

/// The remaining times of the `totals` longer than `age_ms`, `None` when too few are.
fn survivors(totals: impl Iterator<Item = f64>, age_ms: f64) -> Option<Vec<f64>> {
    let remaining: Vec<f64> = totals
        .filter(|&total| total > age_ms)
        .map(|total| total - age_ms)
        .collect();
    (remaining.len() >= MIN_SAMPLES).then_some(remaining)
}

/// The `q` quantile (0–1) of `values` (nearest rank), `None` for none.
fn quantile(mut values: Vec<f64>, q: f64) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    values.get(rank).copied()
}

#[cfg(test)]
#[path = "learn_tests.rs"]
mod tests;
