//! Two observers as one: `generate --json` and `resume --json` keep their job display's
//! bookkeeping (the phase Ctrl-C reads, the hints it prints to stderr) and write events too.

use happyhorse_pipeline::{BudgetView, Observer, State};
use std::path::Path;

/// Tells `.0` and then `.1` everything the runner reports.
pub struct Tee<'a>(pub &'a dyn Observer, pub &'a dyn Observer);

impl Observer for Tee<'_> {
    fn state(&self, shot: &str, state: &str, detail: &str) {
        self.0.state(shot, state, detail);
        self.1.state(shot, state, detail);
    }

    fn progress(&self, shot: &str, state: &str, fraction: Option<f64>) {
        self.0.progress(shot, state, fraction);
        self.1.progress(shot, state, fraction);
    }

    fn finish(&self, shot: &str, ok: bool, message: &str) {
        self.0.finish(shot, ok, message);
        self.1.finish(shot, ok, message);
    }

    fn budget(&self, view: &BudgetView) {
        self.0.budget(view);
        self.1.budget(view);
    }

    fn submitted(&self, shot: &str, job_id: &str) {
        self.0.submitted(shot, job_id);
        self.1.submitted(shot, job_id);
    }

    fn ended(&self, shot: &str, state: &State, folder: &Path) {
        self.0.ended(shot, state, folder);
        self.1.ended(shot, state, folder);
    }

    fn close(&self) {
        self.0.close();
        self.1.close();
    }
}
