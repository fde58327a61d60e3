//! What a person watching a storyboard's run sees: on a terminal, one live bar per shot (its
//! state and the job's progress) and a total; anywhere else (a pipe, a CI log), the
//! pipeline's [`LogObserver`] lines.

use happyhorse_pipeline::{BudgetView, LogObserver, Observer, displayable, progress_percent};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::time::Duration;

/// The display of one run.
pub enum Progress {
    /// Live bars on stderr.
    Bars(Bars),
    /// Log lines.
    Log(LogObserver),
}

/// One bar per shot and the total, on stderr.
pub struct Bars {
    _multi: MultiProgress,
    shots: HashMap<String, ProgressBar>,
    total: ProgressBar,
}

impl Progress {
    /// Bars on stderr when `terminal`, logs otherwise. `shots` are (name, state) in order;
    /// `done` of them are already finished.
    pub fn new(shots: &[(String, String)], done: u64, terminal: bool) -> Progress {
        if terminal {
            Progress::Bars(Bars::new(shots, done))
        } else {
            Progress::Log(LogObserver::default())
        }
    }
}

impl Bars {
    fn new(shots: &[(String, String)], done: u64) -> Bars {
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
        Bars {
            _multi: multi,
            shots: bars,
            total,
        }
    }
}

impl Observer for Progress {
    fn state(&self, shot: &str, state: &str, detail: &str) {
        match self {
            Progress::Bars(b) => {
                let detail = &displayable(detail);
                if let Some(bar) = b.shots.get(shot) {
                    bar.set_message(if detail.is_empty() {
                        state.to_string()
                    } else {
                        format!("{state} {detail}")
                    });
                }
            }
            Progress::Log(log) => log.state(shot, state, detail),
        }
    }

    fn progress(&self, shot: &str, state: &str, fraction: Option<f64>) {
        match self {
            Progress::Bars(b) => {
                if let Some(bar) = b.shots.get(shot) {
                    // Forward only: a dip in a job's readings is not the job losing ground.
                    bar.set_position(bar.position().max(progress_percent(fraction)));
                    bar.set_message(state.to_string());
                }
            }
            Progress::Log(log) => log.progress(shot, state, fraction),
        }
    }

    fn finish(&self, shot: &str, ok: bool, message: &str) {
        match self {
            Progress::Bars(b) => {
                let message = displayable(message);
                if let Some(bar) = b.shots.get(shot) {
                    if ok {
                        bar.set_position(100);
                        bar.finish_with_message(message);
                        b.total.inc(1);
                    } else {
                        bar.abandon_with_message(message);
                    }
                }
            }
            Progress::Log(log) => log.finish(shot, ok, message),
        }
    }

    /// Shows the account's budget in use beside the total: requests in the last window
    /// against the limit, jobs in flight, and when the batch should be done.
    fn budget(&self, view: &BudgetView) {
        match self {
            Progress::Bars(b) => b.total.set_message(view.line()),
            Progress::Log(log) => log.budget(view),
        }
    }

    /// Leave the display as it stands: unfinished bars are abandoned, not cleared.
    fn close(&self) {
        if let Progress::Bars(b) = self {
            for bar in b.shots.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
            b.total.finish();
        }
    }
}
