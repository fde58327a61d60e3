//! How a run reports what happens to its shots: the [`Observer`] the runner calls (it prints
//! nothing itself, so the caller decides what a person sees), the budget line beside the
//! total ([`BudgetView`]), and [`LogObserver`]: one structured `tracing` line per change,
//! which is what a log collector wants (the command line draws bars on a terminal instead).

use crate::journal::State;
use std::path::Path;
use std::time::Duration;

/// Text from the plugin or the provider (failure messages, job ids), fit for a terminal and a
/// log: control characters escaped, secrets redacted.
pub fn displayable(text: &str) -> String {
    happyhorse_sandbox::redact(&crate::untrusted::shown(text)).into_owned()
}

/// What a run reports as its shots move, for whoever shows it: [`LogObserver`], the command
/// line's bars, or anything else. The runner calls these and prints nothing itself.
pub trait Observer: Send + Sync {
    /// A shot moved to `state` (with an optional detail such as the job id).
    fn state(&self, shot: &str, state: &str, detail: &str);
    /// The job's progress, 0.0 to 1.0 (`None`: not reported).
    fn progress(&self, shot: &str, state: &str, fraction: Option<f64>);
    /// A shot ended for this run: downloaded (`ok`) or not, with a last word.
    fn finish(&self, shot: &str, ok: bool, message: &str);
    /// The account's budget in use, every couple of seconds of a storyboard's run.
    fn budget(&self, _view: &BudgetView) {}
    /// A shot's submit created `job_id`, journaled: from here a crash loses nothing, so
    /// this is the moment to tell a person the id to resume by.
    fn submitted(&self, _shot: &str, _job_id: &str) {}
    /// A shot ended for this run at its journaled `state` (downloaded, failed or unknown),
    /// its files named relative to `folder`; called just before [`Observer::finish`] words
    /// it. For an observer that reports the facts rather than a sentence (the command line's
    /// `--json` events: the job, each file's path, size and clip check, the failure's stage).
    fn ended(&self, _shot: &str, _state: &State, _folder: &Path) {}
    /// The run is over: leave the display as it stands.
    fn close(&self) {}
}

/// One `tracing` line per change of a shot; the budget at most every [`BUDGET_LOG_EVERY`].
#[derive(Debug, Default)]
pub struct LogObserver {
    /// When the budget line was last logged.
    budget_logged: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often the budget line is logged when there is no terminal to redraw it on.
const BUDGET_LOG_EVERY: Duration = Duration::from_secs(30);

impl Observer for LogObserver {
    fn state(&self, shot: &str, state: &str, detail: &str) {
        let detail = &displayable(detail);
        if detail.is_empty() {
            tracing::info!(shot, state, "shot");
        } else {
            tracing::info!(shot, state, detail, "shot");
        }
    }

    fn progress(&self, shot: &str, state: &str, fraction: Option<f64>) {
        tracing::debug!(
            shot,
            state,
            progress = progress_percent(fraction),
            "job status"
        );
    }

    fn finish(&self, shot: &str, ok: bool, message: &str) {
        let message = &displayable(message);
        if ok {
            tracing::info!(shot, state = "downloaded", detail = message, "shot");
        } else {
            tracing::warn!(shot, detail = message, "shot did not finish");
        }
    }

    fn budget(&self, view: &BudgetView) {
        let mut logged = self.budget_logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.is_none_or(|t| t.elapsed() >= BUDGET_LOG_EVERY) {
            *logged = Some(std::time::Instant::now());
            tracing::info!(budget = %view.line(), "account");
        }
    }
}

/// A progress fraction as a whole percentage, 0 to 100 (`None`: 0).
pub fn progress_percent(fraction: Option<f64>) -> u64 {
    fraction.map_or(0, |p| (p.clamp(0.0, 1.0) * 100.0).round() as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn provider_text_is_made_inert_before_it_is_shown() {
        let shown = crate::displayable("failed\u{1b}[2J\u{1b}]0;title\u{7}");
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }
}

/// The account's budget in use, as the progress display shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetView {
    /// Requests counted in the provider's current window.
    pub used: usize,
    /// The account's limit per window (0 = unlimited).
    pub per_minute: u32,
    /// Jobs submitted and not yet seen ended.
    pub in_flight: usize,
    /// Shots still to finish in this batch (in flight included).
    pub remaining: usize,
    /// Shots this run has finished so far.
    pub finished: usize,
    /// How long this run has been going.
    pub elapsed: Duration,
    /// Requests this run has spent per finished job so far (0 before the first).
    pub requests_per_job: f64,
}

/// Requests a job costs before any has finished: a submit, a reading and a final poll.
const REQUESTS_PER_JOB_GUESS: f64 = 3.0;

impl BudgetView {
    /// How long until the batch is done: at the pace this run has finished jobs once a few
    /// have, else at the pace the budget allows; `None` when there is nothing to go by.
    pub fn eta(&self) -> Option<Duration> {
        if self.remaining == 0 {
            return Some(Duration::ZERO);
        }
        let observed = (self.finished >= 3 && self.elapsed > Duration::ZERO)
            .then(|| self.finished as f64 / self.elapsed.as_secs_f64() * 60.0);
        let by_budget = (self.per_minute > 0).then(|| {
            let per_job = if self.requests_per_job.is_finite() && self.requests_per_job >= 1.0 {
                self.requests_per_job
            } else {
                REQUESTS_PER_JOB_GUESS
            };
            f64::from(self.per_minute) / per_job
        });
        let per_minute = observed
            .or(by_budget)
            .filter(|r| r.is_finite() && *r > 0.0)?;
        Duration::try_from_secs_f64(self.remaining as f64 / per_minute * 60.0).ok()
    }

    /// `48/50 req/min · 31 in flight · 212 to go, done in ~13 min`.
    pub fn line(&self) -> String {
        let limit = if self.per_minute == 0 {
            "unlimited".to_string()
        } else {
            self.per_minute.to_string()
        };
        let eta = match self.eta() {
            Some(d) if d.is_zero() => "done".to_string(),
            Some(d) if d < Duration::from_secs(90) => format!("done in ~{} s", d.as_secs()),
            Some(d) if d < Duration::from_secs(48 * 3600) => {
                format!("done in ~{} min", (d.as_secs_f64() / 60.0).round())
            }
            _ => "finish unknown".to_string(),
        };
        format!(
            "· {}/{limit} req/min · {} in flight · {} to go, {eta}",
            self.used, self.in_flight, self.remaining
        )
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    fn view() -> BudgetView {
        BudgetView {
            used: 48,
            per_minute: 50,
            in_flight: 31,
            remaining: 100,
            finished: 0,
            elapsed: Duration::from_secs(30),
            requests_per_job: 0.0,
        }
    }

    #[test]
    fn the_finish_comes_from_the_budget_then_from_what_finished() {
        // Nothing finished: 50 a minute at three requests a job, 100 to go: 6 min.
        assert_eq!(view().eta(), Some(Duration::from_secs(360)));
        assert_eq!(
            view().line(),
            "· 48/50 req/min · 31 in flight · 100 to go, done in ~6 min"
        );
        // 32 finished in 2 min: 16 a minute, 100 to go: 6.25 min.
        let going = BudgetView {
            finished: 32,
            elapsed: Duration::from_secs(120),
            ..view()
        };
        assert_eq!(going.eta(), Some(Duration::from_secs(375)));
        let done = BudgetView {
            remaining: 0,
            ..view()
        };
        assert!(done.line().ends_with("0 to go, done"));
    }

    #[test]
    fn absurd_numbers_say_unknown_rather_than_panic() {
        let odd = BudgetView {
            per_minute: 0,
            requests_per_job: f64::NAN,
            remaining: usize::MAX,
            ..view()
        };
        assert_eq!(odd.eta(), None);
        assert!(odd.line().contains("unlimited") && odd.line().ends_with("finish unknown"));
        let slow = BudgetView {
            per_minute: 1,
            requests_per_job: 1e300,
            ..view()
        };
        assert!(slow.line().ends_with("finish unknown"));
    }
}
