//! What `generate` and `resume` show while their one-shot plan runs
//! ([`happyhorse_pipeline::generate`] and [`resume`](happyhorse_pipeline::resume)): the job id once
//! it exists, one progress bar, and a last line saying how the job ended — worded as these commands
//! always have.

use happyhorse_pipeline::{Cause, Ended, Observer, State, describe, shown, shown_lines};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// One job's display: a bar on a terminal, a log line per reading anywhere else.
#[derive(Default)]
pub struct JobBar {
    /// Drawn from the first wait on, after the "Submitted job" line, so the two never mix.
    bar: OnceLock<ProgressBar>,
    /// The job, for the log lines.
    job: Mutex<String>,
}

impl JobBar {
    fn bar(&self) -> &ProgressBar {
        self.bar.get_or_init(progress_bar)
    }

    /// Show one reading of the job.
    fn show(&self, position: u64, label: &str) {
        let bar = self.bar();
        bar.set_position(position);
        bar.set_message(happyhorse_sandbox::redact(label).into_owned());
        // On a terminal the bar shows this; elsewhere a log line per reading does, under the
        // binary's target as it always was, so log filters written for it still match.
        if bar.is_hidden() {
            let job = self.job.lock().unwrap_or_else(|e| e.into_inner()).clone();
            tracing::info!(target: "host_demo", job = %shown(&job), state = %label, progress = position, "job status");
        }
    }
}

impl Observer for JobBar {
    fn submitted(&self, _shot: &str, job_id: &str) {
        say!("Submitted job {job_id} (if interrupted: host-demo resume {job_id})");
    }

    fn state(&self, _shot: &str, state: &str, detail: &str) {
        match state {
            "submitted" => {
                *self.job.lock().unwrap_or_else(|e| e.into_inner()) = detail.to_string();
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
        self.show(fraction.map_or(0, |p| (p * 100.0).round() as u64), state);
    }

    fn finish(&self, _shot: &str, ok: bool, _message: &str) {
        // The last line is printed by [`report`]; a bar left unfinished stays as it was.
        if let (false, Some(bar)) = (ok, self.bar.get()) {
            bar.abandon();
        }
    }
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
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

/// Print how the job ended and choose the exit code: 0 when every output is in `out_dir`.
pub fn report(ended: Ended, out_dir: &Path) -> ExitCode {
    let job = ended.state.job_id().unwrap_or("").to_string();
    match (ended.state, ended.cause) {
        (State::Downloaded { files, .. }, _) => {
            for file in &files {
                say!(
                    "Downloaded {} ({} bytes, sha256 {})",
                    out_dir.join(&file.path).display(),
                    file.bytes,
                    file.sha256
                );
            }
            return ExitCode::SUCCESS;
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
            tell!("gave up waiting; the job goes on: host-demo resume {job}")
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
    ExitCode::FAILURE
}
