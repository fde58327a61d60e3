//! What a person watching sees: on a terminal, one live bar per shot (its state and the
//! job's progress) and a total; anywhere else (a pipe, a CI log), one structured `tracing`
//! line per change, which is what a log collector wants.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::time::Duration;

/// Text from the plugin or the provider (failure messages, job ids), fit for a terminal and a
/// log: control characters escaped, secrets redacted.
fn clean(text: &str) -> String {
    crate::redact::redact(&crate::untrusted::shown(text)).into_owned()
}

/// What a run reports as its shots move, for whoever shows it: [`Progress`] for a
/// storyboard, the CLI's own bar for `generate` and `resume`. The runner calls these and
/// prints nothing itself, so the caller decides what a person sees.
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
}

/// The display of one run.
pub struct Progress {
    bars: Option<Bars>,
    /// When the budget line was last logged (no terminal): once every [`BUDGET_LOG_EVERY`].
    budget_logged: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often the budget line is logged when there is no terminal to redraw it on.
const BUDGET_LOG_EVERY: Duration = Duration::from_secs(30);

struct Bars {
    _multi: MultiProgress,
    shots: HashMap<String, ProgressBar>,
    total: ProgressBar,
}

impl Progress {
    /// Bars on stderr when `terminal`, logs otherwise. `shots` are (name, state) in order;
    /// `done` of them are already finished.
    pub fn new(shots: &[(String, String)], done: u64, terminal: bool) -> Progress {
        if !terminal {
            return Progress {
                bars: None,
                budget_logged: Default::default(),
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let width = shots
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(4)
            .min(32);
        let style = ProgressStyle::with_template(&format!(
            "{{spinner}} {{prefix:<{width}}} [{{bar:30}}] {{pos:>3}}% {{msg}}"
        ))
        .expect("a valid template")
        .progress_chars("=> ");
        let mut bars = HashMap::new();
        for (name, state) in shots {
            let bar = multi.add(ProgressBar::new(100));
            bar.set_style(style.clone());
            bar.set_prefix(name.clone());
            bar.set_message(state.clone());
            bar.enable_steady_tick(Duration::from_millis(150));
            bars.insert(name.clone(), bar);
        }
        let total = multi.add(ProgressBar::new(shots.len() as u64));
        total.set_style(
            ProgressStyle::with_template(&format!(
                "  {{prefix:<{width}}} [{{bar:30}}] {{pos}}/{{len}} downloaded {{msg}}"
            ))
            .expect("a valid template")
            .progress_chars("## "),
        );
        total.set_prefix("total");
        total.set_position(done);
        Progress {
            bars: Some(Bars {
                _multi: multi,
                shots: bars,
                total,
            }),
            budget_logged: Default::default(),
        }
    }

    /// Leave the display as it stands: unfinished bars are abandoned, not cleared.
    pub fn close(&self) {
        if let Some(b) = &self.bars {
            for bar in b.shots.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
            b.total.finish();
        }
    }
}

impl Observer for Progress {
    /// A shot moved to `state` (with an optional detail such as the job id).
    fn state(&self, shot: &str, state: &str, detail: &str) {
        let detail = &clean(detail);
        match &self.bars {
            Some(b) => {
                if let Some(bar) = b.shots.get(shot) {
                    bar.set_message(if detail.is_empty() {
                        state.to_string()
                    } else {
                        format!("{state} {detail}")
                    });
                }
            }
            None if detail.is_empty() => tracing::info!(shot, state, "shot"),
            None => tracing::info!(shot, state, detail, "shot"),
        }
    }

    /// The job's progress, 0.0 to 1.0 (`None`: not reported).
    fn progress(&self, shot: &str, state: &str, fraction: Option<f64>) {
        let percent = fraction.map_or(0, |p| (p.clamp(0.0, 1.0) * 100.0).round() as u64);
        match &self.bars {
            Some(b) => {
                if let Some(bar) = b.shots.get(shot) {
                    bar.set_position(percent);
                    bar.set_message(state.to_string());
                }
            }
            None => tracing::debug!(shot, state, progress = percent, "job status"),
        }
    }

    /// A shot ended: downloaded (`ok`) or not, with a last word.
    fn finish(&self, shot: &str, ok: bool, message: &str) {
        let message = &clean(message);
        match &self.bars {
            Some(b) => {
                if let Some(bar) = b.shots.get(shot) {
                    if ok {
                        bar.set_position(100);
                        bar.finish_with_message(message.to_string());
                        b.total.inc(1);
                    } else {
                        bar.abandon_with_message(message.to_string());
                    }
                }
            }
            None if ok => tracing::info!(shot, state = "downloaded", detail = message, "shot"),
            None => tracing::warn!(shot, detail = message, "shot did not finish"),
        }
    }

    /// Shows the account's budget in use beside the total: requests in the last window
    /// against the limit, jobs in flight, and when the batch should be done.
    fn budget(&self, view: &BudgetView) {
        let line = view.line();
        match &self.bars {
            Some(b) => b.total.set_message(line),
            None => {
                let mut logged = self.budget_logged.lock().unwrap_or_else(|e| e.into_inner());
                if logged.is_none_or(|t| t.elapsed() >= BUDGET_LOG_EVERY) {
                    *logged = Some(std::time::Instant::now());
                    tracing::info!(budget = %line, "account");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn provider_text_is_made_inert_before_it_is_shown() {
        let shown = super::clean("failed\u{1b}[2J\u{1b}]0;title\u{7}");
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
