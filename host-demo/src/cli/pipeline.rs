//! The `run`, `status` and `resolve` subcommands: flags, printing and exit codes.

use super::events::Events;
use super::exit::{Exit, RefuseInput, refuse};
use super::job::exit_of;
use super::progress::Progress;
use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args};
use happyhorse_pipeline::{
    BUILT_IN_EMULATOR, INDEX_FILE, Journal, MANIFEST_FILE, Observer, REAL_BASE_URL, Resolution,
    RunConfig, RunOutcome, Session, ShotRow, ShowRun, State, Storyboard, clips_not_as_paid_for,
    default_state_dir, money, output_dir, price, resolution_advice, run_priced, settle, shot_json,
    shown, status_table,
};
use happyhorse_sandbox::Origin;
use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `host-demo run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The storyboard: TOML, or JSON when the name ends in `.json` (see docs/pipeline.md).
    pub storyboard: PathBuf,
    /// Refuse to start when the estimated total is higher, e.g. `12.50` (the rate card's
    /// currency, USD). Overrides the storyboard's `[run] max_cost`.
    #[arg(long)]
    pub max_cost: Option<String>,
    /// Check and price every shot, then stop: nothing is submitted or written.
    #[arg(long)]
    pub dry_run: bool,
    /// Shots in flight at once (default: the storyboard's `[run] concurrency`, else 48).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: Option<u16>,
    /// Shortest spacing of one job's polls, in ms. By default the session's scheduler
    /// decides: it reads a job's progress once and polls again just after the predicted
    /// end (jobs reporting no progress follow the component's hint, 5–15 s, 0.5–2 s against
    /// the built-in emulator).
    #[arg(long)]
    pub poll_interval_ms: Option<u64>,
    /// Submit shots whose exact request was already submitted — under another shot name, or
    /// from another output folder (the per-user registry knows) — and pay for them again.
    /// Without it such a run is refused before anything is sent.
    #[arg(long)]
    pub pay_again: bool,
    /// Write JSON Lines to stdout instead: one event a line (submitted, progress, completed,
    /// downloaded, failed per shot; finished), flushed per line; the price table and human
    /// text go to stderr, no progress bars (the events: docs/pipeline.md).
    #[arg(long)]
    pub json: bool,
}

impl RunArgs {
    /// The run's own settings as given, for a printed `run` command: the budget, the
    /// concurrency and the poll floor. Never `--pay-again` (a printed command must not pay
    /// again unasked) nor `--dry-run`.
    pub fn setting_flags(&self) -> String {
        let mut flags = String::new();
        if let Some(cost) = &self.max_cost {
            flags.push_str(&format!(" --max-cost {}", crate::shell_word(cost)));
        }
        if let Some(n) = self.concurrency {
            flags.push_str(&format!(" --concurrency {n}"));
        }
        if let Some(ms) = self.poll_interval_ms {
            flags.push_str(&format!(" --poll-interval-ms {ms}"));
        }
        flags
    }
}

/// `host-demo status`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["storyboard", "journal"])))]
pub struct StatusArgs {
    /// The storyboard whose journal to show.
    pub storyboard: Option<PathBuf>,
    /// Or the journal file itself (`<output>/journal.sqlite`).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// The `--out-dir` the run was given, if any (default: `out` next to the storyboard).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Print JSON (the manifest's shot entries) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `host-demo resolve`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("decision").required(true).args(["job_id", "forget"])))]
pub struct ResolveArgs {
    /// The storyboard.
    pub storyboard: PathBuf,
    /// The shot to settle.
    pub shot: String,
    /// The job the lost submit created (from the provider's dashboard or usage): the next run
    /// polls and downloads it, submitting nothing.
    #[arg(long)]
    pub job_id: Option<String>,
    /// Start the shot over: the next run submits it again (billed again if a job exists).
    #[arg(long)]
    pub forget: bool,
    /// With `--forget` on a shot whose job is downloaded or still in flight: forget it
    /// anyway, knowing the next run pays again.
    #[arg(long)]
    pub pay_again: bool,
    /// The `--out-dir` the run was given, if any (default: `out` next to the storyboard).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// The API base URL the shot's job was submitted to (default: the one endpoint the
    /// journal has the shot under, else the real service).
    #[arg(long)]
    pub base_url: Option<String>,
}

/// Parse an amount such as `12.5`, `$12.50` or `0.7` into micro-units, exactly.
pub fn parse_money(text: &str) -> Result<u64> {
    let t = text.trim().trim_start_matches('$');
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 6 {
        bail!("{text:?} is not an amount such as 12.50");
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse()? };
    let frac: u64 = format!("{frac:0<6}").parse()?;
    whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(frac))
        .context("the amount is too large")
}

/// The flags a run's printed commands repeat, as given.
pub struct RerunFlags {
    /// ` --base-url … --out-dir …`: where the work is, for every command.
    pub place: String,
    /// The component, time bounds and sandbox flags, which only `run` takes again.
    pub run_only: String,
}

/// `host-demo run`: `open` opens the session (after the storyboard was read, so a missing
/// file fails before an emulator starts) and gives the `--out-dir`, if one was given.
pub async fn run(
    args: RunArgs,
    flags: RerunFlags,
    open: impl Future<Output = Result<(Session, Option<PathBuf>)>>,
    events: Option<&Events>,
) -> Result<ExitCode> {
    let max_cost_micros = args
        .max_cost
        .as_deref()
        .map(parse_money)
        .transpose()
        .refused("--max-cost")?;
    let storyboard = Storyboard::load(&args.storyboard)
        .refused(&format!("the storyboard {}", args.storyboard.display()))?;
    let state_dir = default_state_dir()?;
    let (session, out_root) = open.await?;
    if let Some(events) = events {
        events.connected(&session);
    }
    let config = RunConfig {
        out_root,
        state_dir: Some(state_dir),
        pay_again: args.pay_again,
        max_cost_micros,
        concurrency: args.concurrency.map(usize::from),
        dry_run: args.dry_run,
        poll_interval: args.poll_interval_ms.map(Duration::from_millis),
        deadline: None,
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tell!(
                "\nStopping: submits in flight finish and are journaled, nothing new starts. \
                 Ctrl-C again to quit at once (a shot caught mid-submit then becomes `unknown`)."
            );
            let _ = stop_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                tell!("Quit at once: `host-demo status` shows what was submitted.");
                std::process::exit(super::exit::INTERRUPTED);
            }
        }
    });
    let outcome = match price(&storyboard, &session, &config).await {
        Ok(Ok(priced)) => {
            // Shown before anything is sent: what each shot costs and where it stands.
            say!("{}", priced.table.trim_end_matches('\n'));
            let terminal = std::io::stderr().is_terminal();
            if let Some(events) = events {
                events.priced_run(&priced.plan);
            }
            let show: ShowRun = &|shots, done| -> Box<dyn Observer> {
                match events {
                    Some(events) => Box::new(events.clone()),
                    None => Box::new(Progress::new(shots, done, terminal)),
                }
            };
            run_priced(priced, &storyboard, &session, &config, show, stop).await
        }
        Ok(Err(problems)) => Ok(RunOutcome::Invalid(problems)),
        Err(e) => Err(e),
    };
    ctrl_c.abort();
    let rerun = format!(
        "{}{}",
        crate::shell_word(&args.storyboard.display().to_string()),
        flags.place
    );
    let outcome = outcome?;
    if let Some(events) = events {
        let resume = format!("host-demo run {rerun}{}", flags.run_only);
        events.finish_run(&outcome, outcome_code(&outcome), &resume);
    }
    Ok(print_outcome(outcome, &rerun, &flags.run_only))
}

/// The exit code of a run that ended as `outcome`: what [`print_outcome`] returns.
pub fn outcome_code(outcome: &RunOutcome) -> u8 {
    match outcome {
        RunOutcome::Invalid(_)
        | RunOutcome::OverBudget { .. }
        | RunOutcome::Conflicts(_)
        | RunOutcome::Repeats(_) => Exit::Refused.code(),
        RunOutcome::DryRun(_) => Exit::Done.code(),
        RunOutcome::Finished(summary) => summary_code(summary),
    }
}

/// Print how a run ended, and choose the exit code. `storyboard` is the storyboard as the
/// printed commands must name it, with the flags that chose its endpoint and folder;
/// `run_only` the flags a printed `run` also repeats.
pub fn print_outcome(outcome: RunOutcome, storyboard: &str, run_only: &str) -> ExitCode {
    match outcome {
        RunOutcome::Invalid(problems) => {
            tell!(
                "The storyboard has {} problem(s); nothing was submitted:",
                problems.len()
            );
            for p in &problems {
                tell!("  - {}", shown(&p.to_string()));
            }
            Exit::Refused.into()
        }
        RunOutcome::OverBudget { plan, max_micros } => {
            tell!(
                "The estimated total {} is over the budget of {}; nothing was submitted. \
                 Raise --max-cost (or [run] max_cost), or trim the storyboard.",
                money(plan.total_micros, &plan.currency),
                money(max_micros, &plan.currency)
            );
            Exit::Refused.into()
        }
        RunOutcome::Conflicts(conflicts) => {
            tell!(
                "These shots changed in the storyboard after they were submitted; nothing was submitted:"
            );
            for (name, what) in &conflicts {
                tell!(
                    "  - {name}: {what}. Undo the edit to keep that job, or `host-demo resolve {storyboard} {name} --forget` to generate it anew (billed again)."
                );
            }
            Exit::Refused.into()
        }
        RunOutcome::Repeats(repeats) => {
            tell!(
                "These shots ask for exactly what was already submitted (and paid for); nothing was submitted:"
            );
            for (name, what) in &repeats {
                tell!("  - {name}: {}", shown(what));
            }
            tell!("Run again with --pay-again to generate them anew, billed again.");
            Exit::Refused.into()
        }
        RunOutcome::DryRun(plan) => {
            say!(
                "Dry run: {} shot(s) valid, estimated {}; nothing was submitted.",
                plan.shots.len(),
                money(plan.total_micros, &plan.currency)
            );
            Exit::Done.into()
        }
        RunOutcome::Finished(summary) => print_summary(&summary, storyboard, run_only),
    }
}

/// The end of a run that ran: what was downloaded, what needs doing, the money, the code.
fn print_summary(
    summary: &happyhorse_pipeline::RunSummary,
    storyboard: &str,
    run_only: &str,
) -> ExitCode {
    let emulated = summary.endpoint == BUILT_IN_EMULATOR;
    {
        {
            let done = summary
                .rows
                .iter()
                .filter(|r| r.state.name() == "downloaded")
                .count();
            say!(
                "{done}/{} shot(s) downloaded into {} (contact sheet: {}, manifest: {}).",
                summary.rows.len(),
                summary.out_dir.display(),
                summary.out_dir.join(INDEX_FILE).display(),
                summary.out_dir.join(MANIFEST_FILE).display(),
            );
            let wrong = clips_not_as_paid_for(&summary.rows);
            if wrong > 0 {
                tell!(
                    "{wrong} clip(s) downloaded are NOT what was paid for (kept, not resubmitted; each is named below)."
                );
            }
            for (name, error) in &summary.errors {
                tell!("  - {name}: error: {}", shown(error));
            }
            if let Some(why) = &summary.halted {
                tell!(
                    "Stopped at the first refusal, nothing more was sent: {}",
                    shown(why)
                );
            }
            for name in &summary.restarted {
                tell!(
                    "  - {name}: its job was the built-in emulator's, which ended with that process: submitted anew (nothing is billed)"
                );
            }
            for row in &summary.rows {
                let hint = if emulated && !matches!(row.state, State::Downloaded { .. }) {
                    Some(format!(
                        "the built-in emulator's jobs end with this process: run `host-demo run {storyboard}{run_only}` again to generate it anew (nothing is billed)"
                    ))
                } else {
                    resolution_advice(row, storyboard, run_only)
                };
                if let Some(hint) = hint {
                    let job = row
                        .state
                        .job_id()
                        .map_or_else(String::new, |j| format!(" (job {})", shown(j)));
                    tell!(
                        "  - {} is {}{job}: {}",
                        row.plan.name,
                        row.state.name(),
                        shown(&hint)
                    );
                }
            }
            for row in &summary.elsewhere {
                tell!(
                    "  - {} also has {} at {} ({}): kept there; this run's clips are {}'s",
                    row.plan.name,
                    row.state
                        .job_id()
                        .map_or_else(|| "a submit".to_string(), |j| format!("job {j}")),
                    endpoint_name(&row.endpoint),
                    row.state.name(),
                    endpoint_name(&summary.endpoint),
                );
            }
            print_money(&summary.rows, emulated);
            ExitCode::from(summary_code(summary))
        }
    }
}

/// An endpoint as a person reads it.
fn endpoint_name(endpoint: &str) -> String {
    match endpoint {
        "" => "an endpoint not recorded".into(),
        e => e.to_string(),
    }
}

/// The run's money, on its last line: what the shots cost as estimated, and what of it was
/// billed (a job exists) or not.
fn print_money(rows: &[ShotRow], emulated: bool) {
    let Some(currency) = rows.first().map(|r| r.plan.currency.clone()) else {
        return;
    };
    let total: u64 = rows.iter().map(|r| r.plan.cost_micros).sum();
    if emulated {
        say!(
            "Money: {} estimated at the real service's rates; nothing billed (the built-in emulator).",
            money(total, &currency)
        );
        return;
    }
    let billed: u64 = rows
        .iter()
        .filter(|r| r.state.job_id().is_some())
        .map(|r| r.plan.cost_micros)
        .sum();
    let unknown: u64 = rows
        .iter()
        .filter(|r| matches!(r.state, State::Unknown { .. } | State::Submitting))
        .map(|r| r.plan.cost_micros)
        .sum();
    let mut line = format!(
        "Money: {} estimated for {} shot(s); {} for the jobs that exist (billed by the provider per second of video)",
        money(total, &currency),
        rows.len(),
        money(billed, &currency),
    );
    if unknown > 0 {
        line.push_str(&format!(
            "; {} for submits whose outcome is unknown",
            money(unknown, &currency)
        ));
    }
    say!("{line}.");
}

/// The exit code of a finished run: a job that exists and is not finished comes first (the
/// printed command picks it up), then a halt (a refused key, no credits), then Ctrl-C before
/// any job existed, then anything else left to pick up, then a clip not as paid for (billed
/// and wrong: a person must look), then failures (nothing billed), else done.
fn summary_code(summary: &happyhorse_pipeline::RunSummary) -> u8 {
    let exits: Vec<(Exit, bool)> = summary
        .rows
        .iter()
        .map(|r| (exit_of(&r.state), r.state.job_id().is_some()))
        .collect();
    let resumable_job = exits.contains(&(Exit::Resumable, true));
    let exit = if resumable_job && summary.endpoint != BUILT_IN_EMULATOR {
        Exit::Resumable
    } else if summary.halted.is_some() {
        Exit::Failed
    } else if summary.stopped {
        return super::exit::INTERRUPTED as u8;
    } else if !summary.errors.is_empty() || exits.iter().any(|(e, _)| *e == Exit::Resumable) {
        Exit::Resumable
    } else if exits.iter().any(|(e, _)| *e == Exit::NotAsPaidFor) {
        Exit::NotAsPaidFor
    } else if exits.iter().any(|(e, _)| *e == Exit::Failed) {
        Exit::Failed
    } else {
        Exit::Done
    };
    exit.code()
}

fn journal_path(
    storyboard: Option<&Path>,
    journal: Option<&Path>,
    out_dir: Option<&Path>,
) -> Result<PathBuf> {
    match (journal, storyboard) {
        (Some(j), _) => Ok(j.to_path_buf()),
        (None, Some(s)) => Ok(Journal::path_in(&output_dir(s, out_dir)?)),
        (None, None) => bail!("give a storyboard or --journal"),
    }
}

/// `host-demo status`: the journal as a table (or JSON). Works during a run.
pub fn status(args: StatusArgs) -> Result<ExitCode> {
    let path = journal_path(
        args.storyboard.as_deref(),
        args.journal.as_deref(),
        args.out_dir.as_deref(),
    )?;
    let journal = Journal::open_read_only(&path)?;
    let rows = journal.shots()?;
    // Names in the current storyboard, to flag journal entries it no longer lists.
    let listed: Option<Vec<String>> = args
        .storyboard
        .as_deref()
        .and_then(|s| Storyboard::load(s).ok())
        .map(|sb| sb.shots.into_iter().map(|s| s.name).collect());
    if args.json {
        let shots: Vec<_> = rows.iter().map(shot_json).collect();
        say!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "journal": path, "shots": shots }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    say!("Journal: {}", path.display());
    let storyboard_shown = args.storyboard.as_deref().map_or_else(
        || "<storyboard>".to_string(),
        |s| crate::shell_word(&s.display().to_string()),
    );
    let out_flag = args.out_dir.as_deref().map_or_else(String::new, |d| {
        format!(" --out-dir {}", crate::shell_word(&d.display().to_string()))
    });
    let mut endpoints: Vec<&str> = rows.iter().map(|r| r.endpoint.as_str()).collect();
    endpoints.dedup();
    endpoints.sort_unstable();
    endpoints.dedup();
    for endpoint in endpoints {
        let here: Vec<ShotRow> = rows
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .cloned()
            .collect();
        say!("Endpoint: {}", endpoint_name(endpoint));
        let shown_table = status_table(&here, &|name: &str| {
            listed.as_ref().is_none_or(|l| l.iter().any(|n| n == name))
        });
        // Failure messages in the table are the provider's: inert, line by line.
        for line in shown_table.lines() {
            say!("{}", shown(line));
        }
        let rerun = format!("{storyboard_shown}{}{out_flag}", base_url_flag(endpoint));
        for row in &here {
            let hint = if endpoint == BUILT_IN_EMULATOR
                && !matches!(row.state, State::Downloaded { .. })
            {
                Some("the built-in emulator's jobs ended with its process: a run without a key generates it anew (nothing is billed)".to_string())
            } else {
                resolution_advice(row, &rerun, "")
            };
            if let Some(hint) = hint {
                say!("  - {}: {}", row.plan.name, shown(&hint));
            }
        }
    }
    Ok(Exit::Done.into())
}

/// The `--base-url` a command needs to reach `endpoint` (none for the real service).
fn base_url_flag(endpoint: &str) -> String {
    let real = Origin::from_url(REAL_BASE_URL).map(|o| o.to_string()).ok();
    if endpoint.is_empty() || endpoint == BUILT_IN_EMULATOR || real.as_deref() == Some(endpoint) {
        String::new()
    } else {
        format!(" --base-url {}", crate::shell_word(endpoint))
    }
}

/// `host-demo resolve`: settle one shot (takes the journal's lock: not during a run).
pub fn resolve(args: ResolveArgs) -> Result<ExitCode> {
    let dir = output_dir(&args.storyboard, args.out_dir.as_deref())?;
    let path = Journal::path_in(&dir);
    if !path.is_file() {
        return refuse(format!(
            "no journal in {}: the storyboard has not been run yet (or was run with another --out-dir)",
            dir.display()
        ));
    }
    let endpoint = match &args.base_url {
        // Not echoed: a malformed URL may still carry a password.
        Some(url) => Origin::from_url(url).refused("--base-url")?.to_string(),
        None => {
            // The one endpoint the journal has the shot under; the real service when none.
            let mut found: Vec<String> = Journal::open_read_only(&path)
                .and_then(|j| j.shots())
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.plan.name == args.shot && r.endpoint != BUILT_IN_EMULATOR)
                .map(|r| r.endpoint)
                .collect();
            found.dedup();
            match found.as_slice() {
                [one] if !one.is_empty() => one.clone(),
                [] | [_] => Origin::from_url(REAL_BASE_URL)?.to_string(),
                many => {
                    return refuse(format!(
                        "shot {:?} has jobs at {}: say which with --base-url",
                        args.shot,
                        many.join(" and ")
                    ));
                }
            }
        }
    };
    let journal = Journal::open(&dir, &endpoint)?;
    let resolution = match args.job_id {
        Some(job) => Resolution::JobId(job),
        None => Resolution::Forget {
            pay_again: args.pay_again,
        },
    };
    let settled = settle(&journal, &args.shot, &resolution).refused("resolve")?;
    say!("{} (endpoint {endpoint})", shown(&settled));
    Ok(Exit::Done.into())
}

#[cfg(test)]
mod tests {
    use super::parse_money;

    #[test]
    fn money_parses_exactly() {
        assert_eq!(parse_money("12.5").unwrap(), 12_500_000);
        assert_eq!(parse_money("$0.70").unwrap(), 700_000);
        assert_eq!(parse_money("3").unwrap(), 3_000_000);
        assert_eq!(parse_money(".14").unwrap(), 140_000);
        for bad in ["", ".", "1.2.3", "-1", "1e3", "0.0000001", "abc"] {
            assert!(parse_money(bad).is_err(), "{bad}");
        }
    }
}
