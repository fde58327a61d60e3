//! What `generate` and `resume` show while their one-shot plan runs
//! ([`happyhorse_pipeline::generate`] and [`resume`](happyhorse_pipeline::resume)): the job id once
//! it exists, one progress bar, and a last line saying how the job ended — worded as these commands
//! always have.

use super::events::{Events, stdout_reserved};
use super::exit::Exit;
use happyhorse_pipeline::{Cause, Ended, Observer, Stage, State, describe, shown, shown_lines};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How to pick a job up again, as the user must type it: the flags that chose the endpoint
/// and the folder, never the key.
#[derive(Debug, Clone, Default)]
pub struct Pickup {
    /// ` --base-url … --out-dir …`, as given (empty when neither was).
    pub flags: String,
    /// The built-in emulator: its jobs end with this process, so nothing can be picked up.
    pub emulated: bool,
}

impl Pickup {
    /// The command that picks `job` up, or why none can.
    pub fn resume(&self, job: &str) -> String {
        self.command(job).unwrap_or_else(|| {
            "the built-in emulator's jobs end with this process: there is nothing to resume later (nothing was billed)".into()
        })
    }

    /// The command that picks `job` up; `None` for the built-in emulator's, which end with
    /// this process.
    pub fn command(&self, job: &str) -> Option<String> {
        (!self.emulated).then(|| format!("host-demo resume {job}{}", self.flags))
    }
}

/// Where the one job stands, for Ctrl-C.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Nothing sent yet.
    NotSent,
    /// The submit is on its way: its answer carries the job id.
    Submitting,
    /// The job exists.
    Submitted(String),
}

/// One job's display: a bar on a terminal, a log line per reading anywhere else.
#[derive(Default)]
pub struct JobBar {
    /// Drawn from the first wait on, after the "Submitted job" line, so the two never mix.
    bar: OnceLock<ProgressBar>,
    /// The job, for the log lines.
    job: Mutex<String>,
    /// Where the job stands (`None`: nothing sent yet).
    phase: Mutex<Option<Phase>>,
    /// The highest progress shown: a reading lower than one already shown is not drawn.
    shown: Mutex<u64>,
    /// How to pick the job up again.
    pickup: Pickup,
}

impl JobBar {
    /// A display whose hints carry `pickup`.
    pub fn new(pickup: Pickup) -> JobBar {
        JobBar {
            pickup,
            ..JobBar::default()
        }
    }

    /// Where the job stands.
    pub fn phase(&self) -> Phase {
        self.phase
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or(Phase::NotSent)
    }

    fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = Some(phase);
    }

    /// The command that picks this job up (or why none can).
    pub fn pickup(&self, job: &str) -> String {
        self.pickup.resume(job)
    }

    /// The command that picks this job up, when one can ([`Pickup::command`]).
    pub fn pickup_command(&self, job: &str) -> Option<String> {
        self.pickup.command(job)
    }

    /// Leave the bar where it is, ending its line, before the last words are printed.
    pub fn abandon(&self) {
        if let Some(bar) = self.bar.get() {
            bar.abandon();
        }
    }

    fn bar(&self) -> &ProgressBar {
        self.bar.get_or_init(progress_bar)
    }

    /// Show one reading of the job.
    fn show(&self, position: u64, label: &str) {
        // Forward only: a job's readings may dip (noise, or a scale read differently), and a
        // bar that moves back tells a person the job lost ground it did not.
        let position = {
            let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
            *shown = (*shown).max(position.min(100));
            *shown
        };
        let bar = self.bar();
        bar.set_position(position);
        bar.set_message(happyhorse_sandbox::redact(label).into_owned());
        // On a terminal the bar shows this; elsewhere a log line per reading does, under the
        // binary's target as it always was, so log filters written for it still match. With
        // `--json` the events say it: no line.
        if bar.is_hidden() && !stdout_reserved() {
            let job = self.job.lock().unwrap_or_else(|e| e.into_inner()).clone();
            tracing::info!(target: "host_demo", job = %shown(&job), state = %label, progress = position, "job status");
        }
    }
}

impl Observer for JobBar {
    fn submitted(&self, _shot: &str, job_id: &str) {
        self.set_phase(Phase::Submitted(job_id.to_string()));
        say!("Submitted job {job_id}");
        say!("If interrupted: {}", self.pickup(job_id));
    }

    fn state(&self, _shot: &str, state: &str, detail: &str) {
        match state {
            "submitting" => self.set_phase(Phase::Submitting),
            "submitted" => {
                *self.job.lock().unwrap_or_else(|e| e.into_inner()) = detail.to_string();
                // `resume` never submits, yet its job exists and goes on: Ctrl-C must say
                // so and print the command that picks it up, never "nothing was billed".
                if !detail.is_empty() {
                    self.set_phase(Phase::Submitted(detail.to_string()));
                }
                self.bar();
            }
            "completed" => {
                self.show(100, "completed");
                self.bar().finish_with_message("completed");
            }
            _ => {}
        }
    }

    fn progress(&self, _shot: &str, state: &str, fraction: Option<f64>) {
        self.show(happyhorse_pipeline::progress_percent(fraction), state);
    }

    fn finish(&self, _shot: &str, ok: bool, _message: &str) {
        // The last line is printed by [`report`]; a bar left unfinished stays as it was.
        if let (false, Some(bar)) = (ok, self.bar.get()) {
            bar.abandon();
        }
    }
}

fn progress_bar() -> ProgressBar {
    // With `--json` a script is reading: events, not a bar.
    if !std::io::stderr().is_terminal() || stdout_reserved() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos:>3}% {msg}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Print how the job ended and choose the exit code ([`Exit`]): done when every output is in
/// `out_dir`; resumable while the job may still be picked up; failed when it cannot.
pub fn report(ended: Ended, out_dir: &Path, bar: &JobBar) -> ExitCode {
    let job = ended.state.job_id().unwrap_or("").to_string();
    let exit = exit_of(&ended.state);
    let gave_up = matches!(ended.cause, Some(Cause::Deadline));
    match (&ended.state, ended.cause) {
        (State::Downloaded { files, .. }, _) => {
            for file in files {
                say!(
                    "Downloaded {} ({} bytes, sha256 {})",
                    out_dir.join(&file.path).display(),
                    file.bytes,
                    file.sha256
                );
                match &file.check {
                    Some(check) if check.failed() => tell!(
                        "NOT AS PAID FOR: {}. The file is kept and nothing is resubmitted (that would pay twice): raise it with the provider, quoting job {job}",
                        shown(&check.summary)
                    ),
                    Some(check) => say!("Checked: {}", shown(&check.summary)),
                    None => {}
                }
            }
            return exit.into();
        }
        (_, Some(Cause::Error(e))) => tell!("{}", describe(&e)),
        (_, Some(Cause::UnusableJobId(problem))) => tell!(
            "the plugin returned an unusable job id ({problem}); a job may have been created: \
             check the provider's dashboard before generating again"
        ),
        (_, Some(Cause::JobFailed { code, message })) => {
            tell!("job {job} failed ({}): {}", shown(&code), shown(&message))
        }
        (_, Some(Cause::JobEnded(status))) => tell!("job {job} ended as {}", shown(&status)),
        (_, Some(Cause::Deadline)) => {
            tell!("gave up waiting; the job goes on: {}", bar.pickup(&job))
        }
        (_, Some(Cause::PluginFailed(error) | Cause::Download(error))) => {
            tell!("error: {}", shown_lines(&error))
        }
        // What the journal says, when the runner had nothing to add (a job that completed
        // without outputs).
        (State::Failed { failure, .. } | State::Unknown { failure }, None) => {
            tell!("error: {}", shown_lines(&failure.message))
        }
        (state, None) => tell!("error: the job was left {}", state.name()),
    }
    if exit == Exit::Resumable && !job.is_empty() && !gave_up {
        tell!("The job goes on; pick it up with: {}", bar.pickup(&job));
    }
    exit.into()
}

/// `--json`'s last event for the one job, which ended as `ended`: the exit code [`report`]
/// chooses, and the command that picks the job up while it goes on.
pub fn report_events(ended: &Ended, bar: &JobBar, events: &Events) {
    let exit = exit_of(&ended.state);
    let resume = match (exit, ended.state.job_id()) {
        (Exit::Resumable, Some(job)) => bar.pickup_command(job),
        _ => None,
    };
    events.finish_one_shot(&ended.state, exit.code(), resume, None);
}

/// What a shot's journaled state means for the exit code.
pub fn exit_of(state: &State) -> Exit {
    match state {
        State::Downloaded { .. } if state.failed_clip_checks().next().is_some() => {
            Exit::NotAsPaidFor
        }
        State::Downloaded { .. } => Exit::Done,
        State::Pending
        | State::Submitting
        | State::Unknown { .. }
        | State::Submitted { .. }
        | State::Completed { .. } => Exit::Resumable,
        State::Failed { failure, .. } => match failure.stage {
            Stage::Poll | Stage::Download => Exit::Resumable,
            Stage::Submit | Stage::Job => Exit::Failed,
        },
    }
}
