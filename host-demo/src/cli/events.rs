//! `--json` on `generate`, `resume` and `run`: what happens, as JSON Lines on stdout — one
//! object a line, flushed per line — for a script or a workflow host to act on as it goes.
//!
//! [`Events`] is an [`Observer`], as the human displays are (`job.rs`, `progress.rs`), and
//! knows what the runner does not carry: the endpoint, the estimates, how the command ended.
//! Every line is an [`Event`]; the last is `finished` (with the exit code and totals), or
//! `dry_run` for `--dry-run`. While events are written, stdout is theirs alone: `say!` prints
//! to stderr instead ([`stdout_reserved`]), and no progress bar is drawn.

use super::exit::Exit;
use super::job::exit_of;
use happyhorse_pipeline::{
    Observer, Plan, RunOutcome, Session, ShotRow, Stage, State, Verdict, displayable, money,
};
use happyhorse_sandbox::api::CostEstimate;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Set once events own stdout: from then on the human lines go to stderr.
static STDOUT_RESERVED: AtomicBool = AtomicBool::new(false);

/// Whether stdout carries `--json` events, so nothing else may be printed there.
pub fn stdout_reserved() -> bool {
    STDOUT_RESERVED.load(Ordering::Relaxed)
}

/// What an event is about. Every event carries all of these (`null` when unknown), so a
/// reader never has to look back to know which job a line speaks of.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Subject {
    /// The storyboard's shot; for `generate` and `resume` the `--output` name, or `null`.
    /// `null` on `run`'s `dry_run` and `finished`, which are about the whole run.
    pub shot: Option<String>,
    /// The job, once one exists.
    pub job_id: Option<String>,
    /// Where the job lives: the API's origin (scheme, host, port), or `built-in emulator`, as
    /// the journal and `status --json` name it; `null` when refused before one was chosen.
    pub endpoint: Option<String>,
    /// Whether that is the built-in emulator, whose jobs bill nothing and end with the process.
    pub emulated: Option<bool>,
    /// The estimate, in millionths of `currency`: the shot's, or the whole run's on `run`'s
    /// `dry_run` and `finished`; `null` when unknown (`resume` knows only the job id).
    pub cost_micros: Option<u64>,
    /// The estimate's currency (`USD`).
    pub currency: Option<String>,
}

/// Shots by where they ended, on `finished`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Downloaded (whatever their clip check says).
    pub downloaded: usize,
    /// Ended for good: the provider failed the job, or refused the submit.
    pub failed: usize,
    /// A job that goes on, or may exist (a submit whose answer was lost): to pick up.
    pub in_flight: usize,
    /// Not submitted (a run stopped before their turn).
    pub pending: usize,
}

impl Totals {
    /// The totals of shots in `states`.
    pub fn of<'s>(states: impl IntoIterator<Item = &'s State>) -> Totals {
        let mut totals = Totals::default();
        for state in states {
            let count = match state {
                State::Downloaded { .. } => &mut totals.downloaded,
                State::Pending => &mut totals.pending,
                State::Failed { failure, .. }
                    if matches!(failure.stage, Stage::Submit | Stage::Job) =>
                {
                    &mut totals.failed
                }
                _ => &mut totals.in_flight,
            };
            *count += 1;
        }
        totals
    }
}

/// One line of `--json` output. The docs' table (docs/pipeline.md) lists the same.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// This process submitted the shot and journaled its job (a job picked up by `resume`,
    /// or submitted by an earlier run, has none).
    Submitted {
        /// The shot and its job.
        #[serde(flatten)]
        on: Subject,
    },
    /// The job's state or progress changed (repeated readings are not repeated).
    Progress {
        /// The shot and its job.
        #[serde(flatten)]
        on: Subject,
        /// `queued` or `running`.
        state: String,
        /// 0 to 1, in hundredths; `null` when the provider reports none.
        fraction: Option<f64>,
    },
    /// The job finished at the provider; its outputs are downloaded next.
    Completed {
        /// The shot and its job.
        #[serde(flatten)]
        on: Subject,
    },
    /// One output file is on disk (a job with several outputs has one event each).
    Downloaded {
        /// The shot and its job.
        #[serde(flatten)]
        on: Subject,
        /// The file, in the output folder as given (relative to the working directory when
        /// that was relative).
        path: String,
        /// Its size.
        bytes: u64,
        /// Its SHA-256, hex.
        sha256: String,
        /// Whether it is what was paid for (`matches`, `mismatch`, `unreadable`,
        /// `unchecked`); `null` when it was not checked.
        verdict: Option<Verdict>,
        /// The check in words ("paid for …, received …" when it falls short).
        check: Option<String>,
    },
    /// The shot ended this run without its clip.
    Failed {
        /// The shot and its job.
        #[serde(flatten)]
        on: Subject,
        /// The journal's state: `failed`, `unknown` (a submit whose answer was lost: a job
        /// may exist), or `null` when the host itself could not go on (a journal it could not
        /// write).
        state: Option<String>,
        /// Where it failed: `submit`, `job`, `poll`, `download`.
        stage: Option<Stage>,
        /// The provider's or the component's error code, when there is one.
        code: Option<String>,
        /// What happened, in plain words.
        reason: String,
        /// Whether the job can be picked up without paying again (see `resume_command`).
        resumable: bool,
    },
    /// `--dry-run`: checked and priced, nothing submitted; the only event.
    DryRun {
        /// The estimate (the whole run's for `run`).
        #[serde(flatten)]
        on: Subject,
        /// How many shots were checked and priced.
        shots: usize,
    },
    /// The command's last line.
    Finished {
        /// The job (`generate`, `resume`), the endpoint, the whole estimate.
        #[serde(flatten)]
        on: Subject,
        /// The process's exit code (the table in `host-demo --help`).
        exit_code: u8,
        /// Shots by where they ended.
        #[serde(flatten)]
        totals: Totals,
        /// The estimates of the shots whose job exists (what the provider bills per second
        /// of video), but not of jobs the provider failed; 0 on the built-in emulator;
        /// `null` when a price is unknown (a `resume` of a job the registry does not know).
        billed_micros: Option<u64>,
        /// The command that picks the work up, exactly as the human hint prints it, when
        /// there is work left to pick up; `null` otherwise (and for a `generate` on the
        /// built-in emulator, whose jobs end with the process).
        resume_command: Option<String>,
        /// Why it ended early or refused, in plain words; `null` when it ran to its end.
        reason: Option<String>,
    },
}

/// What the events observer knows of one shot.
#[derive(Debug, Default)]
struct ShotFacts {
    job_id: Option<String>,
    cost: Option<(u64, String)>,
    /// The last progress event: its state and hundredths.
    progress: Option<(String, Option<u64>)>,
    /// Its end was reported (`ended`), so `finish` has nothing to add.
    ended: bool,
}

/// What the events observer knows of the command.
#[derive(Debug, Default)]
struct Facts {
    endpoint: Option<String>,
    emulated: Option<bool>,
    /// `Some` for `generate` and `resume`: their one shot's name on every event (the
    /// `--output` name, or `None`), whatever the runner calls it.
    one_shot: Option<Option<String>>,
    /// The whole estimate: the run's, or the one shot's.
    total: Option<(u64, String)>,
    shots: HashMap<String, ShotFacts>,
    /// The last line (`finished` or `dry_run`) is written: nothing follows it.
    finished: bool,
}

/// The `--json` events of one command: an [`Observer`] for the runner, and the command's
/// own lines (`dry_run`, `finished`). Cloned handles write to the same stream.
#[derive(Clone)]
pub struct Events {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    facts: Arc<Mutex<Facts>>,
}

impl Events {
    /// Events on stdout, which from now on carries nothing else.
    pub fn stdout() -> Events {
        STDOUT_RESERVED.store(true, Ordering::Relaxed);
        Events::writing_to(Box::new(std::io::stdout()))
    }

    /// Events written to `out` (a test's buffer); stdout is left alone.
    pub fn writing_to(out: Box<dyn Write + Send>) -> Events {
        Events {
            out: Arc::new(Mutex::new(out)),
            facts: Arc::new(Mutex::new(Facts::default())),
        }
    }

    fn facts(&self) -> MutexGuard<'_, Facts> {
        self.facts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every event from here on names `session`'s endpoint.
    pub fn connected(&self, session: &Session) {
        self.at_endpoint(session.endpoint(), session.is_emulated());
    }

    fn at_endpoint(&self, endpoint: String, emulated: bool) {
        let mut facts = self.facts();
        facts.endpoint = Some(endpoint);
        facts.emulated = Some(emulated);
    }

    /// `generate` or `resume`: one job, named `output` (the `--output` name) on every event.
    pub fn one_shot(&self, output: Option<&str>) {
        self.facts().one_shot = Some(output.map(str::to_string));
    }

    /// The one shot's estimate (`generate`).
    pub fn priced_one(&self, cost: &CostEstimate) {
        self.facts().total = Some((cost.total_micros, cost.currency.clone()));
    }

    /// A storyboard's estimates: each shot's, and the total.
    pub fn priced_run(&self, plan: &Plan) {
        let mut facts = self.facts();
        facts.total = Some((plan.total_micros, plan.currency.clone()));
        for planned in &plan.shots {
            let cost = (planned.cost.total_micros, planned.cost.currency.clone());
            facts
                .shots
                .entry(planned.shot.name.clone())
                .or_default()
                .cost = Some(cost);
        }
    }

    /// What an event about `shot` (the runner's name for it; `None`: the whole command) says
    /// it is about.
    fn subject(facts: &Facts, shot: Option<&str>) -> Subject {
        let known = shot.and_then(|s| facts.shots.get(s));
        let (name, cost) = match (&facts.one_shot, shot) {
            (Some(output), _) => (output.clone(), facts.total.clone()),
            (None, Some(shot)) => (Some(shot.to_string()), known.and_then(|k| k.cost.clone())),
            (None, None) => (None, facts.total.clone()),
        };
        let job_id = match (&facts.one_shot, known) {
            (_, Some(k)) if k.job_id.is_some() => k.job_id.clone(),
            // The one job, whatever the runner called its shot.
            (Some(_), _) => facts.shots.values().find_map(|k| k.job_id.clone()),
            _ => None,
        };
        Subject {
            shot: name,
            job_id,
            endpoint: facts.endpoint.clone(),
            emulated: facts.emulated,
            cost_micros: cost.as_ref().map(|(micros, _)| *micros),
            currency: cost.map(|(_, currency)| currency),
        }
    }

    /// Write `event` as one line, flushed: a reader acts on it at once. Nothing follows the
    /// last line; a stdout that is gone (the reader quit) is let be, as the jobs go on.
    fn emit(&self, facts: &mut Facts, event: &Event) {
        if facts.finished {
            return;
        }
        if matches!(event, Event::Finished { .. } | Event::DryRun { .. }) {
            facts.finished = true;
        }
        // Every string is looked at as a value, before JSON escapes it, so the key is found
        // however it is spelled and the line stays valid JSON. Written from the event itself
        // when nothing needed redacting: its fields then keep their order, `event` first.
        let written = serde_json::to_value(event).and_then(|value| {
            let redacted = happyhorse_sandbox::redact_json(&value);
            if redacted == value {
                serde_json::to_string(event)
            } else {
                Ok(redacted.to_string())
            }
        });
        let line = match written {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(error = %e, "an event could not be written as JSON");
                return;
            }
        };
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            tracing::debug!(error = %e, "an event could not be written");
        }
    }

    /// `--dry-run`'s one line: `shots` checked and priced at the estimate already given.
    pub fn dry_run(&self, shots: usize) {
        let mut facts = self.facts();
        let on = Events::subject(&facts, None);
        self.emit(&mut facts, &Event::DryRun { on, shots });
    }

    /// The last line of `generate` or `resume`, whose one shot stands at `state`.
    pub fn finish_one_shot(
        &self,
        state: &State,
        exit_code: u8,
        resume_command: Option<String>,
        reason: Option<String>,
    ) {
        let mut facts = self.facts();
        let cost = facts.total.as_ref().map(|(micros, _)| *micros);
        let billed = billed(facts.emulated, [(state, cost)]);
        let mut on = Events::subject(&facts, None);
        on.job_id = state.job_id().map(str::to_string).or(on.job_id);
        let finished = Event::Finished {
            on,
            exit_code,
            totals: Totals::of([state]),
            billed_micros: billed,
            resume_command,
            reason,
        };
        self.emit(&mut facts, &finished);
    }

    /// The last line of a command refused or stopped by an error before its shots ran (or
    /// outside them): `exit_code` and the reason in words. Nothing when the last line is
    /// already written.
    pub fn finish_early(&self, exit_code: u8, reason: &str) {
        let mut facts = self.facts();
        let finished = Event::Finished {
            on: Events::subject(&facts, None),
            exit_code,
            totals: Totals::default(),
            billed_micros: None,
            resume_command: None,
            reason: Some(displayable(reason)),
        };
        self.emit(&mut facts, &finished);
    }

    /// The last line of `run`, which ended as `outcome` with `exit_code`; `rerun` is the
    /// command that carries the run on (`host-demo run …`, as the hints print it).
    pub fn finish_run(&self, outcome: &RunOutcome, exit_code: u8, rerun: &str) {
        let summary = match outcome {
            RunOutcome::DryRun(plan) => return self.dry_run(plan.shots.len()),
            RunOutcome::Finished(summary) => summary,
            refused => return self.finish_early(exit_code, &refusal(refused)),
        };
        let mut facts = self.facts();
        let rows = &summary.rows;
        let left = summary.stopped || !summary.errors.is_empty() || rows.iter().any(run_again);
        let reason = summary
            .halted
            .as_ref()
            .map(|why| format!("stopped at the first refusal, nothing more was sent: {why}"))
            .or_else(|| summary.stopped.then(|| "stopped by Ctrl-C".to_string()))
            .map(|why| displayable(&why));
        let finished = Event::Finished {
            on: Events::subject(&facts, None),
            exit_code,
            totals: Totals::of(rows.iter().map(|r| &r.state)),
            billed_micros: billed(
                facts.emulated,
                rows.iter().map(|r| (&r.state, Some(r.plan.cost_micros))),
            ),
            resume_command: left.then(|| rerun.to_string()),
            reason,
        };
        self.emit(&mut facts, &finished);
    }
}

/// Whether running the storyboard again carries `row` on (no `resolve` needed first).
fn run_again(row: &ShotRow) -> bool {
    match &row.state {
        State::Pending | State::Submitted { .. } | State::Completed { .. } => true,
        State::Failed { failure, .. } => matches!(failure.stage, Stage::Poll | Stage::Download),
        _ => false,
    }
}

/// Why a run was refused before anything was sent, in a line.
fn refusal(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::Invalid(problems) => format!(
            "the storyboard has {} problem(s); nothing was submitted: {}",
            problems.len(),
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
        RunOutcome::OverBudget { plan, max_micros } => format!(
            "the estimated total {} is over the budget of {}; nothing was submitted",
            money(plan.total_micros, &plan.currency),
            money(*max_micros, &plan.currency)
        ),
        RunOutcome::Conflicts(conflicts) => format!(
            "shots changed in the storyboard after they were submitted; nothing was submitted: {}",
            pairs(conflicts)
        ),
        RunOutcome::Repeats(repeats) => format!(
            "shots ask for exactly what was already submitted (and paid for); nothing was submitted (--pay-again generates them anew, billed again): {}",
            pairs(repeats)
        ),
        RunOutcome::DryRun(_) | RunOutcome::Finished(_) => String::new(),
    }
}

/// `name: what; name: what`.
fn pairs(list: &[(String, String)]) -> String {
    list.iter()
        .map(|(name, what)| format!("{name}: {what}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the shots at `states` (each with its estimate, if known) bill: the estimates of those
/// whose job exists, but not of a job the provider failed (a failed generation is not
/// charged); nothing on the built-in emulator; `None` when one of them has no price.
fn billed<'s>(
    emulated: Option<bool>,
    states: impl IntoIterator<Item = (&'s State, Option<u64>)>,
) -> Option<u64> {
    if emulated == Some(true) {
        return Some(0);
    }
    states
        .into_iter()
        .filter(|(state, _)| state.job_id().is_some() && !failed_by_provider(state))
        .try_fold(0u64, |sum, (_, cost)| sum.checked_add(cost?))
}

/// Whether the provider ended the shot's job without a clip.
fn failed_by_provider(state: &State) -> bool {
    matches!(state, State::Failed { failure, .. } if failure.stage == Stage::Job)
}

/// A progress reading in whole hundredths (`None`: not reported, or not a number).
fn hundredths(fraction: Option<f64>) -> Option<u64> {
    fraction
        .filter(|f| f.is_finite())
        .map(|f| (f.clamp(0.0, 1.0) * 100.0).round() as u64)
}

impl Observer for Events {
    fn state(&self, shot: &str, state: &str, detail: &str) {
        let mut facts = self.facts();
        match state {
            // `wait` names the job it watches, also one this process did not submit.
            "submitted" if !detail.is_empty() => {
                facts.shots.entry(shot.to_string()).or_default().job_id = Some(detail.to_string());
            }
            "completed" => {
                let on = Events::subject(&facts, Some(shot));
                self.emit(&mut facts, &Event::Completed { on });
            }
            _ => {}
        }
    }

    fn progress(&self, shot: &str, state: &str, fraction: Option<f64>) {
        let mut facts = self.facts();
        let reading = (state.to_string(), hundredths(fraction));
        let known = facts.shots.entry(shot.to_string()).or_default();
        // Only a change is news: the scheduler's polls may read the same value many times.
        if known.progress.as_ref() == Some(&reading) {
            return;
        }
        known.progress = Some(reading.clone());
        let on = Events::subject(&facts, Some(shot));
        let (state, hundredths) = reading;
        let fraction = hundredths.map(|h| h as f64 / 100.0);
        self.emit(
            &mut facts,
            &Event::Progress {
                on,
                state,
                fraction,
            },
        );
    }

    fn submitted(&self, shot: &str, job_id: &str) {
        let mut facts = self.facts();
        facts.shots.entry(shot.to_string()).or_default().job_id = Some(job_id.to_string());
        let on = Events::subject(&facts, Some(shot));
        self.emit(&mut facts, &Event::Submitted { on });
    }

    fn ended(&self, shot: &str, state: &State, folder: &Path) {
        let mut facts = self.facts();
        let known = facts.shots.entry(shot.to_string()).or_default();
        known.ended = true;
        if let Some(job) = state.job_id() {
            known.job_id = Some(job.to_string());
        }
        let on = Events::subject(&facts, Some(shot));
        match state {
            State::Downloaded { files, .. } => {
                for file in files {
                    let downloaded = Event::Downloaded {
                        on: on.clone(),
                        path: folder.join(&file.path).display().to_string(),
                        bytes: file.bytes,
                        sha256: file.sha256.clone(),
                        verdict: file.check.as_ref().map(|c| c.verdict),
                        check: file.check.as_ref().map(|c| displayable(&c.summary)),
                    };
                    self.emit(&mut facts, &downloaded);
                }
            }
            State::Failed { failure, .. } | State::Unknown { failure } => {
                let message = displayable(&failure.message);
                let reason = match state {
                    State::Unknown { .. } => format!(
                        "the submit's answer was lost, so a job may exist and be billed: look in the provider's dashboard before submitting again ({message})"
                    ),
                    _ => message,
                };
                let failed = Event::Failed {
                    on,
                    state: Some(state.name().to_string()),
                    stage: Some(failure.stage),
                    code: failure.code.as_deref().map(displayable),
                    reason,
                    // A lost submit has no job to pick up: it needs `resolve`, not a re-run.
                    resumable: state.job_id().is_some() && exit_of(state) == Exit::Resumable,
                };
                self.emit(&mut facts, &failed);
            }
            _ => {}
        }
    }

    fn finish(&self, shot: &str, ok: bool, message: &str) {
        let mut facts = self.facts();
        let known = facts.shots.entry(shot.to_string()).or_default();
        // Ended in the journal's terms: `ended` said it all. Otherwise the host could not go
        // on with the shot (a journal it could not write), which only `message` tells.
        if ok || std::mem::replace(&mut known.ended, true) {
            return;
        }
        let on = Events::subject(&facts, Some(shot));
        let reason = displayable(message.strip_prefix("error: ").unwrap_or(message));
        let failed = Event::Failed {
            on,
            state: None,
            stage: None,
            code: None,
            reason,
            resumable: true,
        };
        self.emit(&mut facts, &failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use happyhorse_pipeline::{Failure, FileRecord};
    use serde_json::{Value, json};

    /// A buffer the events are written to, read back by the test.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        /// Every line, each parsed: a line that is not JSON fails the test.
        fn events(&self) -> Vec<Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
            text.lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .collect()
        }
    }

    fn events() -> (Events, Buffer) {
        let buffer = Buffer::default();
        let events = Events::writing_to(Box::new(buffer.clone()));
        events.at_endpoint("https://api.example:443".into(), false);
        (events, buffer)
    }

    fn cost() -> CostEstimate {
        CostEstimate {
            currency: "USD".into(),
            billed_seconds: 5,
            micros_per_second: 140_000,
            total_micros: 700_000,
        }
    }

    fn downloaded() -> State {
        State::Downloaded {
            job_id: "job_1".into(),
            files: vec![FileRecord {
                path: "intro.mp4".into(),
                bytes: 42,
                sha256: "ab".into(),
                check: None,
            }],
        }
    }

    #[test]
    fn each_event_is_one_object_tagged_in_snake_case_with_its_subject() {
        let on = Subject {
            shot: Some("s1".into()),
            job_id: Some("job_1".into()),
            endpoint: Some("built-in emulator".into()),
            emulated: Some(true),
            cost_micros: Some(420_000),
            currency: Some("USD".into()),
        };
        let line = serde_json::to_value(Event::DryRun { on, shots: 1 }).unwrap();
        assert_eq!(
            line,
            json!({
                "event": "dry_run", "shot": "s1", "job_id": "job_1",
                "endpoint": "built-in emulator", "emulated": true,
                "cost_micros": 420_000, "currency": "USD", "shots": 1,
            })
        );
        let finished = Event::Finished {
            on: Subject::default(),
            exit_code: 3,
            totals: Totals {
                in_flight: 1,
                ..Totals::default()
            },
            billed_micros: None,
            resume_command: Some("host-demo resume job_1".into()),
            reason: None,
        };
        let line = serde_json::to_value(finished).unwrap();
        assert_eq!(line["event"], "finished");
        assert_eq!(line["exit_code"], 3);
        assert_eq!(line["in_flight"], 1, "the totals are flattened: {line}");
        // Unknown fields are there, as null: a reader can index any of them.
        assert_eq!(line["job_id"], Value::Null);
        assert_eq!(line["billed_micros"], Value::Null);
        assert!(line.as_object().unwrap().contains_key("endpoint"));
    }

    #[test]
    fn a_one_shot_reports_its_job_from_submit_to_finish() {
        let (events, buffer) = events();
        events.one_shot(Some("intro"));
        events.priced_one(&cost());
        events.state("job", "submitting", "");
        events.submitted("job", "job_1");
        events.state("job", "submitted", "job_1");
        events.progress("job", "queued", Some(0.0));
        events.progress("job", "queued", Some(0.0));
        events.progress("job", "running", Some(0.5));
        events.progress("job", "running", Some(0.501));
        events.progress("job", "running", None);
        events.state("job", "completed", "");
        events.ended("job", &downloaded(), Path::new("out"));
        events.finish("job", true, "downloaded");
        events.finish_one_shot(&downloaded(), 0, None, None);
        // Nothing follows the last line.
        events.finish_early(1, "late");

        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.lines().all(|line| line.starts_with(r#"{"event":""#)),
            "`event` comes first: {text}"
        );
        let lines = buffer.events();
        let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "submitted",
                "progress",
                "progress",
                "progress",
                "completed",
                "downloaded",
                "finished"
            ],
            "repeated readings are not repeated: {lines:?}"
        );
        for line in &lines {
            assert_eq!(line["job_id"], "job_1", "{line}");
            assert_eq!(line["shot"], "intro", "{line}");
            assert_eq!(line["endpoint"], "https://api.example:443", "{line}");
            assert_eq!(line["cost_micros"], 700_000, "{line}");
        }
        assert_eq!(lines[2]["fraction"], 0.5);
        assert_eq!(lines[3]["fraction"], Value::Null);
        assert_eq!(
            lines[5]["path"],
            Path::new("out/intro.mp4").display().to_string()
        );
        assert_eq!(lines[5]["bytes"], 42);
        assert_eq!(lines[5]["verdict"], Value::Null);
        let finished = &lines[6];
        assert_eq!(finished["exit_code"], 0);
        assert_eq!(finished["downloaded"], 1);
        assert_eq!(finished["billed_micros"], 700_000);
    }

    #[test]
    fn a_failure_says_why_and_whether_the_job_can_be_picked_up() {
        let (events, buffer) = events();
        events.submitted("s1", "job_1");
        let gave_up = State::Failed {
            job_id: Some("job_1".into()),
            failure: Failure::new(Stage::Poll, "timeout", "gave up waiting\u{1b}[2J"),
        };
        events.ended("s1", &gave_up, Path::new("out"));
        events.finish("s1", false, "failed: gave up waiting");
        // A shot the host could not go on with says so, once.
        events.finish("s2", false, "error: the journal could not be written");
        events.finish("s2", false, "error: again");
        let lines = buffer.events();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[1]["event"], "failed");
        assert_eq!(lines[1]["stage"], "poll");
        assert_eq!(lines[1]["code"], "timeout");
        assert_eq!(lines[1]["resumable"], true);
        let reason = lines[1]["reason"].as_str().unwrap();
        assert!(!reason.chars().any(char::is_control), "{reason:?}");
        assert_eq!(lines[2]["shot"], "s2");
        assert_eq!(lines[2]["state"], Value::Null);
        assert_eq!(lines[2]["reason"], "the journal could not be written");
    }

    #[test]
    fn a_refusal_before_any_endpoint_still_ends_with_finished() {
        let buffer = Buffer::default();
        let events = Events::writing_to(Box::new(buffer.clone()));
        events.finish_early(2, "--max-cost: \"abc\" is not an amount");
        let lines = buffer.events();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["event"], "finished");
        assert_eq!(lines[0]["exit_code"], 2);
        assert_eq!(lines[0]["endpoint"], Value::Null);
        assert_eq!(lines[0]["downloaded"], 0);
    }

    #[test]
    fn the_key_never_reaches_an_event() {
        let key = "events-test-key-5d1f2a9c";
        happyhorse_sandbox::register_secret(key);
        let (events, buffer) = events();
        events.finish_early(1, &format!("the provider echoed {key}"));
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains(key), "{text}");
        assert!(text.contains(happyhorse_sandbox::REDACTED), "{text}");
    }

    #[test]
    fn totals_and_billing_follow_the_journal_states() {
        let failed = |stage| State::Failed {
            job_id: None,
            failure: Failure::new(stage, "x", "y"),
        };
        let submitted = State::Submitted {
            job_id: "job_2".into(),
        };
        let states = [
            downloaded(),
            submitted.clone(),
            State::Pending,
            failed(Stage::Submit),
            failed(Stage::Download),
        ];
        assert_eq!(
            Totals::of(&states),
            Totals {
                downloaded: 1,
                failed: 1,
                in_flight: 2,
                pending: 1,
            }
        );
        let priced = [(&downloaded(), Some(5)), (&submitted, Some(7))];
        assert_eq!(billed(Some(false), priced), Some(12));
        assert_eq!(
            billed(Some(true), priced),
            Some(0),
            "the emulator bills nothing"
        );
        assert_eq!(billed(Some(false), [(&submitted, None)]), None);
        assert_eq!(billed(Some(false), [(&State::Pending, None)]), Some(0));
    }
}
