//! The pipeline: a storyboard in, finished clips out — concurrent, durable, never billed
//! twice, every job run in the `happyhorse-sandbox` crate's sandbox. `host-demo run storyboard.toml` is [`price`] then [`run_priced`] (or [`run`],
//! both at once); the steps are:
//!
//! 1. `storyboard` ([`Storyboard`]): read the file (TOML or JSON), apply run-wide defaults,
//!    load local images as data URLs (`images` holds that assumption, in one place:
//!    [`request_image`]);
//! 2. `plan` ([`check_plan`]): validate every shot with the component and price it — any
//!    problem anywhere and nothing is submitted; `--max-cost` and `--dry-run` stop here;
//! 3. `journal` ([`Journal`]): bring the SQLite journal in line with the storyboard (an
//!    interrupted submit becomes `unknown`, never resent); a shot whose exact request was
//!    already submitted under another name, or from another journal per the per-user
//!    `registry`, is refused unless the run is told to pay again;
//! 4. `runner` ([`Runner`]): drive each shot from its journaled state, a few at a time, each
//!    with its own plugin instance, shown by an [`Observer`] ([`LogObserver`] logs; the command
//!    line draws bars);
//! 5. `reports`: `manifest.json` and the `index.html` contact sheet, from the journal.
//!
//! `run` strings the steps together ([`run`], or [`price`] then [`run_priced`]).
//!
//! `one_shot` runs one job through the same runner, journaled in memory: [`generate`] and
//! [`resume`], for `host-demo generate` and `resume`.
//!
//! `status` reads the journal for `host-demo status` ([`status_table`]) and settles shots
//! for `host-demo resolve` ([`settle`]). Beside the steps: `session` (what every run shares:
//! the API's address and key, the compiled component, the sandbox, the scheduler), `scheduler`
//! (when each job is polled, so the account's request budget is spent where it pays: it learns
//! the provider's job times and predicts each job's end) and `download` (outputs streamed to
//! disk with a checksum, from addresses that are checked).
//!
//! The modules are private. What the command line, the tests and the benchmark use is
//! re-exported here, with the types in those items' signatures, renamed where the module's
//! name carried the meaning (`check_plan`, `status_table`, `resolution_advice`, `INDEX_FILE`,
//! `MANIFEST_FILE`); `unnameable_types` is denied, so a public signature cannot name a type
//! a caller cannot. The library prints nothing: it returns outcomes, reports progress to the
//! observer its caller gives it and logs through `tracing`.
//!
//! # Example
//!
//! A storyboard run against the built-in emulator (no key: nothing is billed). Not run here,
//! as it compiles the component:
//!
//! ```no_run
//! use happyhorse_pipeline::{ConnectOptions, RunConfig, RunOutcome, Session, Storyboard, run};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let session = Session::open(ConnectOptions::default()).await?;
//! let storyboard = Storyboard::load("storyboard.toml".as_ref())?;
//! let (_stop, stop) = tokio::sync::watch::channel(false);
//! match run(&storyboard, &session, &RunConfig::default(), stop).await? {
//!     RunOutcome::Finished(summary) => println!("complete: {}", summary.complete()),
//!     other => println!("nothing submitted: {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

#![deny(unnameable_types)]

mod advice;
mod clip;
mod download;
mod images;
mod job_record;
mod journal;
mod observe;
mod one_shot;
mod plan;
mod progress;
mod registry;
mod reports;
mod run;
mod runner;
mod scheduler;
mod session;
mod status;
mod storyboard;
mod untrusted;

pub use advice::{describe, is_transient, money};
pub use clip::{
    ClipCheck, DURATION_TOLERANCE_MS, Found, Frame, PaidFor, ReadError, Verdict,
    inspect as inspect_clip, judge as judge_clip,
};
pub use download::{DownloadPolicy, Downloaded, client as download_client, download, redact_query};
pub use images::{check_shot_total, request_image};
pub use journal::{
    Failure, FileRecord, Journal, PlannedRow, Reconciled, ShotRow, Stage, State, StateKind, Timings,
};
pub use observe::{BudgetView, LogObserver, Observer, displayable, progress_percent};
pub use one_shot::{generate, resume};
pub use plan::{Plan, PlannedShot, check as check_plan};
pub use progress::{ProgressScale, ScaledProgress};
pub use registry::{
    JobFile, JobState, OneShotJob, RecentJob, Registry, STATE_DIR_ENV, StoryboardSubmit,
    default_state_dir,
};
pub use reports::{
    INDEX as INDEX_FILE, MANIFEST as MANIFEST_FILE, clips_not_as_paid_for, shot_json,
};
pub use run::{
    EMULATOR_FOLDER, Priced, RunConfig, RunOutcome, RunSummary, ShowRun, price, run, run_priced,
};
pub use runner::{Cause, DEFAULT_CONCURRENCY, Ended, Runner, RunnerOptions};
pub use scheduler::learn::{JobClass, Reading as JobReading, Record as LearnedJob};
pub use scheduler::{PollCounts, PollScheduler, ScheduleConfig};
pub use session::{BUILT_IN_EMULATOR, ConnectOptions, EMULATOR_KEY, REAL_BASE_URL, Session};
pub use status::{Resolution, advice as resolution_advice, settle, table as status_table};
pub use storyboard::{
    ImageSource, Problem, RunSettings, Shot, Storyboard, output_dir, output_name_problem,
    taken_by_output,
};
pub use untrusted::{check_job_id, job_file_stem, shown, shown_lines};
