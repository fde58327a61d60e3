//! `host-demo jobs`: the jobs recorded last in the per-user registry — what `generate`
//! submitted and `resume` picked up, and `run`'s storyboard submits — with their state,
//! estimate and files, and for each unfinished one the command that picks it up (never the
//! key, never a resend). Also opens the registry `generate` and `resume` record their jobs in.

use crate::shell_word;
use anyhow::{Context, Result};
use clap::Args;
use happyhorse_pipeline::{
    JobState, OneShotJob, REAL_BASE_URL, RecentJob, Registry, Session, StoryboardSubmit,
    default_state_dir, shown,
};
use serde_json::{Value, json};
use std::process::ExitCode;

/// `host-demo jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// How many jobs to list, newest first.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
    /// Print JSON (`{"registry": …, "jobs": [{…, "resume", "advice"}]}`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The registry `generate` records its job in before the submit is sent. A job at a real
/// endpoint is never sent unrecorded: when the registry cannot be opened the command stops
/// here (exit 1), nothing sent. The built-in emulator bills nothing, so a demo goes on
/// without it.
pub fn registry_for_generate(session: &Session) -> Result<Option<Registry>> {
    match default_state_dir().and_then(|dir| Registry::open(&dir)) {
        Ok(registry) => Ok(Some(registry)),
        Err(e) if session.is_emulated() => {
            tracing::warn!(error = %format!("{e:#}"), "the per-user registry cannot be opened: this demo job is not recorded");
            Ok(None)
        }
        Err(e) => Err(e.context(format!(
            "opening the per-user registry, where every job is recorded before it is sent (set {} to a writable folder); nothing was sent",
            happyhorse_pipeline::STATE_DIR_ENV
        ))),
    }
}

/// The registry `resume` notes its job in. Nothing is sent or paid for by a resume, so it
/// goes on without one (and says so in a log line).
pub fn registry_for_resume() -> Option<Registry> {
    match default_state_dir().and_then(|dir| Registry::open(&dir)) {
        Ok(registry) => Some(registry),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "the per-user registry cannot be opened: this job is not noted there");
            None
        }
    }
}

/// `host-demo jobs`.
pub fn list(args: JobsArgs) -> Result<ExitCode> {
    // This command opens no session; the key, if set, is still never printed.
    if let Ok(key) = std::env::var(happyhorse_sandbox::KEY_ENV) {
        happyhorse_sandbox::register_secret(&key);
    }
    let dir = default_state_dir()?;
    let path = Registry::path_in(&dir);
    let jobs: Vec<Value> = match Registry::open_existing(&dir)
        .with_context(|| format!("reading the per-user registry {}", path.display()))?
    {
        Some(registry) => registry
            .recent(usize::try_from(args.limit).unwrap_or(usize::MAX))?
            .iter()
            .map(entry)
            .collect(),
        None => vec![],
    };
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&json!({ "registry": path, "jobs": jobs }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        say!("No jobs recorded yet (the registry: {}).", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    say!("{}", table(&jobs));
    tell!(
        "Newest first, from {}. A resume command needs the key in {}; it never submits.",
        path.display(),
        happyhorse_sandbox::KEY_ENV
    );
    Ok(ExitCode::SUCCESS)
}

/// One job as `--json` prints it: the registry's facts, the command that picks it up (or
/// `null`) and a sentence saying what to do.
fn entry(job: &RecentJob) -> Value {
    match job {
        RecentJob::OneShot(job) => {
            let mut value = job.json();
            value["resume"] = json!(resume_command(job));
            value["advice"] = json!(advice(job));
            value
        }
        RecentJob::Storyboard(submit) => {
            let mut value = submit.json();
            value["resume"] = Value::Null;
            value["advice"] = json!(storyboard_advice(submit));
            value
        }
    }
}

/// The command that picks `job` up, when one can: a job that exists, is not over, and lives
/// at an endpoint that outlives this process. It names the endpoint, where the files go, and
/// the flags the job was started with (the component, time bounds, sandbox), as `generate`'s
/// own hint does; never the key, which is read from the environment again.
pub fn resume_command(job: &OneShotJob) -> Option<String> {
    if job.emulated || !job.state.unfinished() {
        return None;
    }
    Some(pickup(job, job.job_id.as_deref()?))
}

/// `host-demo resume JOB` with the flags that find `job`'s endpoint and folder.
fn pickup(job: &OneShotJob, job_id: &str) -> String {
    let mut command = format!("host-demo resume {}", shell_word(job_id));
    if let Some(url) = job
        .base_url
        .as_deref()
        .filter(|url| url.trim_end_matches('/') != REAL_BASE_URL.trim_end_matches('/'))
    {
        command.push_str(&format!(" --base-url {}", shell_word(url)));
    }
    command.push_str(&format!(
        " --out-dir {}",
        shell_word(&job.out_dir.display().to_string())
    ));
    if let Some(name) = &job.output {
        command.push_str(&format!(" --output {}", shell_word(name)));
    }
    // Recorded as printed (quoted by `shell_word` then), never read as a path.
    command.push_str(&happyhorse_pipeline::displayable(&job.pickup_flags));
    command
}

/// What to do about `job`, in a sentence. A submit of unknown outcome is never answered with
/// "send it again": only the provider knows whether it was billed.
pub fn advice(job: &OneShotJob) -> String {
    let detail = job
        .detail
        .as_deref()
        .map(|d| format!(": {}", shown(d)))
        .unwrap_or_default();
    match job.state {
        JobState::Downloaded => {
            let files: Vec<String> = job
                .files
                .iter()
                .map(|f| shown(&job.out_dir.join(&f.path).display().to_string()).into_owned())
                .collect();
            format!("downloaded {}{detail}", files.join(", "))
        }
        JobState::Failed => format!("failed{detail}; nothing to pick up"),
        JobState::NotSent => "never sent: nothing was billed".into(),
        _ if job.emulated => {
            "the built-in emulator's jobs end with its process: nothing to resume (nothing was billed)"
                .into()
        }
        JobState::Submitting | JobState::Unknown => format!(
            "outcome unknown — check the provider's dashboard for a job created around {}{detail}; \
             if it lists one, pick it up with `{}`, else it was not billed. Do not generate it again before you know",
            job_recorded_at(job),
            pickup(job, "JOB_ID")
        ),
        JobState::Submitted => format!(
            "submitted (still waited for, unless its command ended){detail}; pick it up with `{}`",
            resume_command(job).unwrap_or_default()
        ),
        JobState::Stopped | JobState::Resumable => format!(
            "not finished{detail}; pick it up with `{}`",
            resume_command(job).unwrap_or_default()
        ),
    }
}

/// When `job` was recorded, as `--json` shows it.
fn job_recorded_at(job: &OneShotJob) -> String {
    job.json()["recorded_at"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// What to do about a storyboard's submit: its journal says, and its storyboard's `run`
/// (which this registry does not know) picks it up.
fn storyboard_advice(submit: &StoryboardSubmit) -> String {
    let journal = submit.journal.display().to_string();
    if submit.journal.is_file() {
        let state = submit
            .state
            .as_deref()
            .map(|s| format!(", {}", shown(s)))
            .unwrap_or_default();
        format!(
            "shot {} of a storyboard{state}: `host-demo status --journal {}` shows it and what to do",
            shown(&submit.shot),
            shell_word(&journal)
        )
    } else {
        format!(
            "shot {} of a storyboard whose journal {} is gone",
            shown(&submit.shot),
            shown(&journal)
        )
    }
}

/// The jobs as a table for a terminal: a line of facts each, and the next step beneath it.
fn table(jobs: &[Value]) -> String {
    let text = |v: &Value, key: &str| shown(v[key].as_str().unwrap_or("-")).into_owned();
    let mut out = format!(
        "{:<24}  {:<10}  {:<10}  {:>8}  {:<28}  {}\n",
        "recorded", "kind", "state", "estimate", "endpoint", "job"
    );
    for job in jobs {
        let kind = match job["kind"].as_str() {
            Some("storyboard") => "run".to_string(),
            _ if job["emulated"].as_bool() == Some(true) => "generate*".to_string(),
            _ => "generate".to_string(),
        };
        let endpoint = match job["endpoint"].as_str() {
            Some(endpoint) => shown(endpoint).into_owned(),
            None => "(not recorded)".into(),
        };
        out.push_str(&format!(
            "{:<24}  {:<10}  {:<10}  {:>8}  {:<28}  {}\n",
            text(job, "recorded_at"),
            kind,
            text(job, "state"),
            shown(job["estimate"]["amount"].as_str().unwrap_or("-")),
            endpoint,
            text(job, "job_id"),
        ));
        out.push_str(&format!("    {}\n", text(job, "advice")));
    }
    if jobs.iter().any(|j| j["emulated"].as_bool() == Some(true)) {
        out.push_str("* on the built-in emulator: nothing billed, nothing to resume\n");
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn job(state: JobState, job_id: Option<&str>) -> OneShotJob {
        OneShotJob {
            row: 1,
            endpoint: "http://127.0.0.1:9".into(),
            base_url: Some("http://127.0.0.1:9".into()),
            emulated: false,
            job_id: job_id.map(str::to_string),
            state,
            detail: None,
            request: None,
            cost_micros: Some(420_000),
            currency: Some("USD".into()),
            out_dir: PathBuf::from("/my clips"),
            output: Some("intro".into()),
            files: vec![],
            created_at: 0,
            updated_at: 0,
            pickup_flags: String::new(),
        }
    }

    #[test]
    fn an_unfinished_job_gets_the_command_that_picks_it_up() {
        for state in [JobState::Submitted, JobState::Stopped, JobState::Resumable] {
            assert_eq!(
                resume_command(&job(state, Some("job_1"))).as_deref(),
                Some(
                    "host-demo resume job_1 --base-url http://127.0.0.1:9 --out-dir '/my clips' --output intro"
                )
            );
        }
        let mut started = job(JobState::Stopped, Some("job_1"));
        started.pickup_flags = " --component c.wasm --timeout-secs 60".into();
        assert_eq!(
            resume_command(&started).as_deref(),
            Some(
                "host-demo resume job_1 --base-url http://127.0.0.1:9 --out-dir '/my clips' --output intro --component c.wasm --timeout-secs 60"
            ),
            "the flags the job was started with, as generate's own hint repeats them"
        );
        let mut real = job(JobState::Resumable, Some("job_1"));
        real.base_url = Some(format!("{REAL_BASE_URL}/"));
        real.output = None;
        assert_eq!(
            resume_command(&real).as_deref(),
            Some("host-demo resume job_1 --out-dir '/my clips'"),
            "the default endpoint needs no flag"
        );
    }

    #[test]
    fn a_submit_of_unknown_outcome_is_never_sent_round_again() {
        for state in [JobState::Submitting, JobState::Unknown] {
            let job = job(state, None);
            assert_eq!(resume_command(&job), None);
            let advice = advice(&job);
            assert!(
                advice.starts_with("outcome unknown — check the provider's dashboard"),
                "{advice}"
            );
            assert!(!advice.contains("host-demo generate"), "{advice}");
            assert!(advice.contains("host-demo resume JOB_ID"), "{advice}");
        }
    }

    #[test]
    fn ended_and_emulated_jobs_have_nothing_to_resume() {
        for state in [JobState::Downloaded, JobState::Failed, JobState::NotSent] {
            assert_eq!(resume_command(&job(state, Some("job_1"))), None);
        }
        let mut demo = job(JobState::Stopped, Some("job_1"));
        demo.emulated = true;
        assert_eq!(resume_command(&demo), None);
        assert!(advice(&demo).contains("nothing to resume"));
        let json = entry(&RecentJob::OneShot(demo));
        assert_eq!(json["resume"], Value::Null);
        assert!(table(&[json]).contains("generate*"));
    }
}
