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

/// The display of one run.
pub struct Progress {
    bars: Option<Bars>,
}

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
            return Progress { bars: None };
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
        }
    }

    /// A shot moved to `state` (with an optional detail such as the job id).
    pub fn state(&self, shot: &str, state: &str, detail: &str) {
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
    pub fn progress(&self, shot: &str, state: &str, fraction: Option<f64>) {
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
    pub fn finish(&self, shot: &str, ok: bool, message: &str) {
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

    /// Stop drawing (the summary is printed after this).
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

#[cfg(test)]
mod tests {
    #[test]
    fn provider_text_is_made_inert_before_it_is_shown() {
        let shown = super::clean("failed\u{1b}[2J\u{1b}]0;title\u{7}");
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }
}
