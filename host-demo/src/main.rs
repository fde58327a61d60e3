//! `host-demo`: run the HappyHorse component as a sandboxed plugin from the command line.

mod cli;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use cli::events::Events;
use cli::exit::{Exit, RefuseInput, refuse};
use cli::job::{JobBar, Phase, Pickup};
use cli::tee::Tee;
use cli::{say, tell};
use happyhorse_emulator::{Emulator, EmulatorConfig, JobModel, RenderFarm};
use happyhorse_pipeline::{
    ConnectOptions, EMULATOR_KEY, Observer, Session, State, check_job_id, check_shot_total,
    describe, money, request_image, shown, shown_lines,
};
use happyhorse_sandbox::api::{Mode, VideoRequest};
use happyhorse_sandbox::{KEY_ENV, RedactingMakeWriter, SandboxPolicy};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    version,
    about = "Run the HappyHorse 1.1 video-gen component in a sandboxed Wasmtime host",
    after_help = cli::exit::TABLE
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log more: the effective sandbox policy (commands that open a session), the libraries'
    /// own lines, every request.
    #[arg(long, short, global = true)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Generate one video: validate, price, submit, wait with progress, download.
    Generate(GenerateArgs),
    /// Pick up a job submitted earlier by its id: wait for it and download its outputs.
    Resume {
        /// The job id printed by `generate`.
        job_id: String,
        #[command(flatten)]
        output: OutputArg,
        /// Write JSON Lines to stdout instead: one event a line (progress, completed,
        /// downloaded, failed, finished), flushed per line; human text goes to stderr, no
        /// progress bar (the events: docs/pipeline.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Generate every shot of a storyboard: check and price them all, then run them
    /// concurrently, journaled so a re-run resumes and nothing is paid for twice.
    Run {
        #[command(flatten)]
        run: cli::pipeline::RunArgs,
        #[command(flatten)]
        conn: ConnectionArgs,
    },
    /// Show a storyboard's journal: every shot's state, job, estimate and files.
    Status(cli::pipeline::StatusArgs),
    /// Settle a shot whose submit outcome is unknown: attach its job id, or forget it.
    Resolve(cli::pipeline::ResolveArgs),
    /// List the jobs recorded last (per user): state, estimate, files, and the command that
    /// picks each unfinished one up.
    Jobs(cli::jobs::JobsArgs),
    /// Run the local emulator of the EmpirioLabs API until Ctrl-C.
    Emulator(EmulatorArgs),
}

/// How the emulator's jobs behave.
#[derive(Clone, Copy, ValueEnum)]
enum JobsArg {
    /// A render farm: load-dependent queue, heavy-tailed render times, S-curve progress
    /// with noise (seeded, so a run repeats).
    Farm,
    /// Fixed queue and render times, progress rising linearly.
    Linear,
}

#[derive(Args)]
struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// How jobs take their time and report progress.
    #[arg(long, value_enum, default_value_t = JobsArg::Farm)]
    jobs: JobsArg,
    /// `--jobs farm`: multiply the farm's times by this (0.1 runs it ten times faster).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// `--jobs farm`: the seed of its random draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// `--jobs linear`: seconds a job stays queued.
    #[arg(long, default_value_t = 1.0)]
    queued_secs: f64,
    /// `--jobs linear`: seconds a job runs.
    #[arg(long, default_value_t = 4.0)]
    running_secs: f64,
    /// Accept request bodies without a Content-Length (chunked), which a strict server
    /// refuses with 411, as the emulator does by default.
    #[arg(long)]
    accept_chunked: bool,
}

/// How long `generate`, `resume` and `run` wait for jobs by default, in seconds.
const DEFAULT_TIMEOUT_SECS: u64 = 900;

#[derive(Args)]
struct ConnectionArgs {
    /// API key. Without one, the built-in emulator is started and used.
    #[arg(long, env = KEY_ENV, hide_env_values = true)]
    api_key: Option<String>,
    /// API base URL (default: the real service when a key is given).
    #[arg(long)]
    base_url: Option<String>,
    /// Give up waiting after this many seconds (the job goes on; resume it by id).
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_secs: u64,
    /// How long one request may wait for its answer to start, and pause inside it, in
    /// seconds (the component's defaults: 30 and 15). A poll that times out is polled again;
    /// a submit that times out is reported as of unknown outcome, never resent.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=600))]
    request_timeout_secs: Option<u32>,
    /// Where downloaded videos go. Default: `out` for `generate` and `resume`; for `run`,
    /// `out` next to the storyboard (never the working directory: see docs/pipeline.md).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Use this component instead of the one built into the binary.
    #[arg(long)]
    component: Option<PathBuf>,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// The sandbox is deny-by-default; these widen or tighten it explicitly.
#[derive(Args)]
struct SandboxArgs {
    /// Sandbox policy file (TOML; see docs/sandbox.md). Flags below override it.
    #[arg(long)]
    sandbox_config: Option<PathBuf>,
    /// Let plugins also reach this origin (repeatable), e.g. https://cdn.example.com.
    #[arg(long = "allow-origin")]
    allow_origins: Vec<String>,
    /// The account's request budget per minute, shared by all plugins (0 = unlimited).
    #[arg(long)]
    requests_per_minute: Option<u32>,
    /// Memory cap per plugin, MiB.
    #[arg(long)]
    max_memory_mib: Option<u32>,
}

impl SandboxArgs {
    fn policy(self) -> Result<SandboxPolicy> {
        let mut policy = match &self.sandbox_config {
            Some(path) => SandboxPolicy::from_toml_file(path)?,
            None => SandboxPolicy::default(),
        };
        policy.allow.extend(self.allow_origins);
        if let Some(n) = self.requests_per_minute {
            policy.requests_per_minute = n;
        }
        if let Some(n) = self.max_memory_mib {
            policy.max_memory_mib = n;
        }
        Ok(policy)
    }
}

#[derive(Args)]
struct GenerateArgs {
    /// The scene to generate (up to 2,500 characters).
    #[arg(long)]
    prompt: String,
    /// How to interpret the request.
    #[arg(long, value_enum, default_value_t = CliMode::Auto)]
    mode: CliMode,
    /// A reference image: a URL, or a local PNG, JPEG or WebP file sent inline as in a
    /// storyboard (repeat for reference-to-video, up to 9).
    #[arg(long = "image")]
    images: Vec<String>,
    /// Aspect ratio: 16:9, 9:16, 1:1, 4:3 or 3:4 (ignored for image-to-video).
    #[arg(long)]
    aspect_ratio: Option<String>,
    /// Resolution: 720p or 1080p.
    #[arg(long)]
    resolution: Option<String>,
    /// Clip length in seconds, 3 to 15.
    #[arg(long)]
    duration: Option<u32>,
    /// Seed for a repeatable result, 0 to 2147483647.
    #[arg(long, allow_hyphen_values = true)]
    seed: Option<i64>,
    /// Watermark the output.
    #[arg(long)]
    watermark: bool,
    /// Model id.
    #[arg(long)]
    model: Option<String>,
    /// Check and price the request, then stop: nothing is submitted or written.
    #[arg(long)]
    dry_run: bool,
    /// Refuse to submit when the estimate is higher, e.g. `1.50` (the rate card's currency,
    /// USD).
    #[arg(long)]
    max_cost: Option<String>,
    /// Write JSON Lines to stdout instead: one event a line (submitted, progress, completed,
    /// downloaded, failed, finished), flushed per line; human text goes to stderr, no
    /// progress bar (the events: docs/pipeline.md).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    output: OutputArg,
    #[command(flatten)]
    conn: ConnectionArgs,
}

/// How a one-shot's clip is named.
#[derive(Args)]
struct OutputArg {
    /// Save the clip as NAME.mp4 in the output folder (NAME-1, NAME-2, … when the job returns
    /// several) instead of <job id>-0.mp4. Letters, digits, '-', '_' and '.'. A file of that
    /// name is never overwritten: the command is refused first.
    #[arg(long, value_name = "NAME")]
    output: Option<String>,
}

impl OutputArg {
    /// Refuse a name that cannot name a file, before anything starts.
    fn check(&self) -> Result<()> {
        match self
            .output
            .as_deref()
            .and_then(happyhorse_pipeline::output_name_problem)
        {
            Some(problem) => refuse(problem),
            None => Ok(()),
        }
    }

    /// Refuse when the clip would overwrite a file in `out_dir`, before anything is submitted.
    fn check_free(&self, out_dir: &std::path::Path) -> Result<()> {
        let Some(name) = &self.output else {
            return Ok(());
        };
        let taken = happyhorse_pipeline::taken_by_output(out_dir, name);
        if taken.is_empty() {
            return Ok(());
        }
        refuse(format!(
            "--output {name}: {} already holds {} (a clip may have been paid for; it is never overwritten): choose another name or move it",
            out_dir.display(),
            taken.join(", ")
        ))
    }

    /// ` --output NAME` for a printed command, or nothing.
    fn flag(&self) -> String {
        self.output
            .as_deref()
            .map(|name| format!(" --output {}", shell_word(name)))
            .unwrap_or_default()
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum CliMode {
    Auto,
    T2v,
    I2v,
    R2v,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Without -v, only the host's own lines: a library's (a connect error's internals, a
    // retry) would say again, in its words, what the command prints once in the user's.
    // Piped, the pipeline's lines are a storyboard's progress display, so they stay.
    let filter = if cli.verbose {
        "info,host_demo=debug,happyhorse_pipeline=debug,happyhorse_sandbox=debug"
    } else if std::io::stderr().is_terminal() {
        "off,host_demo=info"
    } else {
        "off,host_demo=info,happyhorse_pipeline=info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        // Every log line is redacted before it is written (see `happyhorse_sandbox::redact`).
        .with_writer(RedactingMakeWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // From here, with `--json`, stdout carries events only (`say!` turns to stderr).
    let events = wants_json(&cli.command).then(cli::events::Events::stdout);
    let events = events.as_ref();
    let outcome = match cli.command {
        Command::Generate(args) => generate(args, cli.verbose, events).await,
        Command::Resume {
            job_id,
            output,
            conn,
            ..
        } => resume(job_id, output, conn, cli.verbose, events).await,
        Command::Run { run, conn } => {
            let flags = cli::pipeline::RerunFlags {
                place: conn.place_flags(),
                run_only: conn.run_only_flags() + &run.setting_flags(),
            };
            cli::pipeline::run(run, flags, open_session(conn, cli.verbose), events).await
        }
        Command::Status(args) => cli::pipeline::status(args),
        Command::Resolve(args) => cli::pipeline::resolve(args),
        Command::Jobs(args) => cli::jobs::list(args),
        Command::Emulator(args) => emulator(args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            tell!("error: {}", shown_lines(&format!("{e:#}")));
            let exit = cli::exit::of_error(&e);
            // A script reading events learns the end from the last line, errors included.
            if let Some(events) = events {
                events.finish_early(exit.code(), &format!("{e:#}"));
            }
            exit.into()
        }
    }
}

/// Whether the command was given `--json`.
fn wants_json(command: &Command) -> bool {
    match command {
        Command::Generate(args) => args.json,
        Command::Resume { json, .. } => *json,
        Command::Run { run, .. } => run.json,
        _ => false,
    }
}

impl ConnectionArgs {
    /// The flags a printed command (`run` and `resume` take them all) must repeat to pick the
    /// work up as it was started: the endpoint, the folder, the component, the time bounds and
    /// the sandbox, as given. Never the key: it is read from the environment again.
    fn pickup_flags(&self) -> String {
        self.place_flags() + &self.run_only_flags()
    }

    /// The flags that say where the work is, the endpoint and the folder: what every printed
    /// command repeats (`resolve` takes these two and no others).
    fn place_flags(&self) -> String {
        let mut flags = String::new();
        if let Some(url) = &self.base_url {
            flags.push_str(&format!(" --base-url {}", shell_word(url)));
        }
        if let Some(dir) = &self.out_dir {
            flags.push_str(&format!(
                " --out-dir {}",
                shell_word(&dir.display().to_string())
            ));
        }
        flags
    }

    /// The flags that say how the work runs (the component, the time bounds, the sandbox),
    /// which only `run` and `resume` take.
    fn run_only_flags(&self) -> String {
        let path = |p: &PathBuf| shell_word(&p.display().to_string());
        let mut flags = Vec::new();
        if let Some(component) = &self.component {
            flags.push(format!("--component {}", path(component)));
        }
        if self.timeout_secs != DEFAULT_TIMEOUT_SECS {
            flags.push(format!("--timeout-secs {}", self.timeout_secs));
        }
        if let Some(secs) = self.request_timeout_secs {
            flags.push(format!("--request-timeout-secs {secs}"));
        }
        let sandbox = &self.sandbox;
        if let Some(file) = &sandbox.sandbox_config {
            flags.push(format!("--sandbox-config {}", path(file)));
        }
        for origin in &sandbox.allow_origins {
            flags.push(format!("--allow-origin {}", shell_word(origin)));
        }
        if let Some(n) = sandbox.requests_per_minute {
            flags.push(format!("--requests-per-minute {n}"));
        }
        if let Some(n) = sandbox.max_memory_mib {
            flags.push(format!("--max-memory-mib {n}"));
        }
        flags.iter().map(|flag| format!(" {flag}")).collect()
    }

    /// Refuse a `--base-url` that is not an http(s) URL, before anything starts.
    fn check(&self) -> Result<()> {
        if let Some(url) = &self.base_url {
            let Ok(parsed) = url::Url::parse(url) else {
                // Not echoed: a malformed URL may still carry a password.
                return refuse("--base-url is not a URL: give the API's https:// address");
            };
            // A URL is printed in hints and written in reports: it carries no secret.
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return refuse(
                    "--base-url carries credentials: give the key in EMPIRIOLABS_API_KEY, and the URL without them",
                );
            }
            if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
                return refuse(format!(
                    "--base-url {parsed}: give the API's https:// address (http:// only for a local emulator)"
                ));
            }
            if self.api_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
                return refuse(format!(
                    "--base-url {parsed} needs an API key: set {KEY_ENV} (an external emulator prints the key it accepts)"
                ));
            }
        }
        Ok(())
    }
}

/// `word` quoted for a POSIX shell when it needs it, so a printed command runs as shown.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Refuse an output folder that cannot be made or written, before anything is submitted: a
/// clip paid for and then undeliverable is the worst outcome there is.
fn check_out_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).refused(&format!(
        "the output folder {} cannot be created",
        dir.display()
    ))?;
    write_probe(dir).refused(&format!(
        "the output folder {} is not writable",
        dir.display()
    ))
}

/// A file made and removed in `dir`, to prove it writable.
fn write_probe(dir: &std::path::Path) -> std::io::Result<()> {
    let path = dir.join(format!(".host-demo-write-check-{}", std::process::id()));
    std::fs::write(&path, b"")?;
    std::fs::remove_file(&path)
}

/// Open a session as the flags say, telling the user plainly when it is the emulator.
async fn open_session(conn: ConnectionArgs, verbose: bool) -> Result<(Session, Option<PathBuf>)> {
    conn.check()?;
    let policy = conn.sandbox.policy().refused("the sandbox policy")?;
    let options = ConnectOptions {
        api_key: conn.api_key,
        base_url: conn.base_url,
        component: conn.component,
        wait_deadline: Duration::from_secs(conn.timeout_secs),
        sandbox: policy,
        ..Default::default()
    };
    let started = Instant::now();
    let mut session = Session::open(options).await?;
    if let Some(secs) = conn.request_timeout_secs {
        let ms = Some(secs * 1000);
        session.client_config.first_byte_timeout_ms = ms;
        session.client_config.between_bytes_timeout_ms = ms;
    }
    tracing::debug!(elapsed = ?started.elapsed(), "session ready");
    if session.is_emulated() {
        tell!(
            "No EMPIRIOLABS_API_KEY set: using the built-in emulator at {} (local, nothing is billed).\n\
             Set EMPIRIOLABS_API_KEY to generate with the real HappyHorse 1.1 API.",
            session.base_url()
        );
    }
    if verbose {
        tell!("{}", session.sandbox.describe());
    }
    Ok((session, conn.out_dir))
}

/// Where `generate` and `resume` put clips: `--out-dir` (default `out`), or its `emulator`
/// folder for the built-in emulator, as `run` does: a demo's clip must never be taken for a
/// paid one, nor stand in a real clip's way (`--output` refuses names that are taken).
fn clips_folder(session: &Session, out_dir: Option<PathBuf>) -> PathBuf {
    let out_dir = out_dir.unwrap_or_else(|| PathBuf::from("out"));
    if session.is_emulated() {
        out_dir.join(happyhorse_pipeline::EMULATOR_FOLDER)
    } else {
        out_dir
    }
}

async fn generate(args: GenerateArgs, verbose: bool, events: Option<&Events>) -> Result<ExitCode> {
    if let Some(events) = events {
        events.one_shot(args.output.output.as_deref());
    }
    args.output.check()?;
    let max_cost = args
        .max_cost
        .as_deref()
        .map(cli::pipeline::parse_money)
        .transpose()
        .refused("--max-cost")?;
    let images = local_images(&args.images).refused("--image")?;
    let request = VideoRequest {
        model: args.model,
        prompt: args.prompt,
        mode: Some(match args.mode {
            CliMode::Auto => Mode::Auto,
            CliMode::T2v => Mode::T2v,
            CliMode::I2v => Mode::I2v,
            CliMode::R2v => Mode::R2v,
        }),
        images,
        aspect_ratio: args.aspect_ratio,
        resolution: args.resolution,
        duration_seconds: args.duration,
        seed: args.seed,
        watermark: Some(args.watermark),
    };
    let flags = args.conn.pickup_flags() + &args.output.flag();
    let run_flags = args.conn.run_only_flags();
    let (session, out_dir) = open_session(args.conn, verbose).await?;
    if let Some(events) = events {
        events.connected(&session);
    }
    let out_dir = clips_folder(&session, out_dir);
    let mut plugin = session.plugin().await?;

    let validated = match plugin.validate(&request).await? {
        Ok(v) => v,
        Err(e) => return Ok(refused_with(events, &describe(&e))),
    };
    for w in &validated.warnings {
        tell!("warning: {}: {}", shown(&w.field), shown(&w.message));
    }
    let cost = match plugin.estimate_cost(&validated.request, None).await? {
        Ok(c) => c,
        Err(e) => return Ok(refused_with(events, &describe(&e))),
    };
    if let Some(events) = events {
        events.priced_one(&cost);
    }
    say!(
        "Estimated cost: {} ({} s at {}/s, {})",
        money(cost.total_micros, &cost.currency),
        cost.billed_seconds,
        money(cost.micros_per_second, &cost.currency),
        validated.request.resolution.as_deref().unwrap_or("720p"),
    );
    // Checked and priced by this instance; the run makes its own, as every shot does.
    drop(plugin);
    if let Some(max) = max_cost
        && cost.total_micros > max
    {
        let over = format!(
            "The estimate {} is over --max-cost {}; nothing was submitted.",
            money(cost.total_micros, &cost.currency),
            money(max, &cost.currency)
        );
        return Ok(refused_with(events, &over));
    }
    if args.dry_run {
        say!("Dry run: the request is valid; nothing was submitted.");
        if let Some(events) = events {
            events.dry_run(1);
        }
        return Ok(Exit::Done.into());
    }
    check_out_dir(&out_dir)?;
    args.output.check_free(&out_dir)?;
    // Recorded there before the submit is sent, for `host-demo jobs` and `resume`.
    let registry = cli::jobs::registry_for_generate(&session)?.map(|r| r.picked_up_with(run_flags));
    let bar = JobBar::new(Pickup {
        flags,
        emulated: session.is_emulated(),
    });
    let name = args.output.output.as_deref();
    let tee = events.map(|events| Tee(&bar, events));
    let observer: &dyn Observer = match &tee {
        Some(tee) => tee,
        None => &bar,
    };
    let job = happyhorse_pipeline::generate(
        &session,
        validated.request,
        cost,
        &out_dir,
        name,
        observer,
        registry.as_ref(),
    );
    let Some(ended) = until_ctrl_c(job, &bar).await? else {
        return Ok(stopped(&bar, events));
    };
    if let Some(events) = events {
        cli::job::report_events(&ended, &bar, events);
    }
    Ok(cli::job::report(ended, &out_dir, &bar))
}

async fn resume(
    job_id: String,
    output: OutputArg,
    conn: ConnectionArgs,
    verbose: bool,
    events: Option<&Events>,
) -> Result<ExitCode> {
    if let Some(events) = events {
        events.one_shot(output.output.as_deref());
    }
    if let Err(problem) = check_job_id(&job_id) {
        return Ok(refused_with(events, &problem));
    }
    output.check()?;
    let flags = conn.pickup_flags() + &output.flag();
    let run_flags = conn.run_only_flags();
    let (session, out_dir) = open_session(conn, verbose).await?;
    if let Some(events) = events {
        events.connected(&session);
    }
    let out_dir = clips_folder(&session, out_dir);
    check_out_dir(&out_dir)?;
    output.check_free(&out_dir)?;
    let registry = cli::jobs::registry_for_resume().map(|r| r.picked_up_with(run_flags));
    let bar = JobBar::new(Pickup {
        flags,
        emulated: session.is_emulated(),
    });
    let name = output.output.as_deref();
    let tee = events.map(|events| Tee(&bar, events));
    let observer: &dyn Observer = match &tee {
        Some(tee) => tee,
        None => &bar,
    };
    let job = happyhorse_pipeline::resume(
        &session,
        &job_id,
        &out_dir,
        name,
        observer,
        registry.as_ref(),
    );
    let Some(ended) = until_ctrl_c(job, &bar).await? else {
        return Ok(stopped(&bar, events));
    };
    if let Some(events) = events {
        cli::job::report_events(&ended, &bar, events);
    }
    Ok(cli::job::report(ended, &out_dir, &bar))
}

/// Refuse the request in words and, with `--json`, in the last event: exit 2, nothing sent.
fn refused_with(events: Option<&Events>, reason: &str) -> ExitCode {
    tell!("{reason}");
    if let Some(events) = events {
        events.finish_early(Exit::Refused.code(), reason);
    }
    Exit::Refused.into()
}

/// Drive `job` until it ends, or until Ctrl-C: then `None`. A submit in flight at the first
/// Ctrl-C is let finish, so its job id is printed rather than lost; a second Ctrl-C quits at
/// once.
async fn until_ctrl_c<T>(
    job: impl std::future::Future<Output = Result<T>>,
    bar: &JobBar,
) -> Result<Option<T>> {
    tokio::pin!(job);
    tokio::select! {
        ended = &mut job => return ended.map(Some),
        _ = tokio::signal::ctrl_c() => {}
    }
    if bar.phase() != Phase::Submitting {
        return Ok(None);
    }
    bar.abandon();
    tell!(
        "\nStopping: the submit in flight finishes first, so its job id is not lost. Ctrl-C again to quit at once."
    );
    loop {
        tokio::select! {
            ended = &mut job => return ended.map(Some),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if bar.phase() != Phase::Submitting {
                    return Ok(None);
                }
            }
            _ = tokio::signal::ctrl_c() => {
                tell!("Quit during the submit: whether a job was created (and billed) is unknown. \
                       Look in the provider's dashboard before generating again.");
                std::process::exit(cli::exit::INTERRUPTED);
            }
        }
    }
}

/// What Ctrl-C leaves, on its own lines (and, with `--json`, in the last event): the job
/// submitted and the command that picks it up, or that nothing was.
fn stopped(bar: &JobBar, events: Option<&Events>) -> ExitCode {
    bar.abandon();
    let (state, code) = match bar.phase() {
        Phase::Submitted(job) => {
            tell!("\nStopped. Job {job} was submitted and goes on at the provider.");
            tell!("Pick it up with: {}", bar.pickup(&job));
            (State::Submitted { job_id: job }, Exit::Resumable.code())
        }
        Phase::NotSent | Phase::Submitting => {
            tell!("\nStopped before anything was submitted: nothing was billed.");
            (State::Pending, cli::exit::INTERRUPTED as u8)
        }
    };
    if let Some(events) = events {
        let resume = state.job_id().and_then(|job| bar.pickup_command(job));
        events.finish_one_shot(&state, code, resume, Some("stopped by Ctrl-C".into()));
    }
    ExitCode::from(code)
}

async fn emulator(args: EmulatorArgs) -> Result<ExitCode> {
    let job_model = match args.jobs {
        JobsArg::Farm => {
            if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
                anyhow::bail!("--time-scale must be a positive number");
            }
            JobModel::RenderFarm(RenderFarm {
                seed: args.seed,
                time_scale: args.time_scale,
                ..RenderFarm::default()
            })
        }
        JobsArg::Linear => JobModel::Linear,
    };
    let millis = |secs: f64| Duration::try_from_secs_f64(secs).map_or(0, |d| d.as_millis() as u64);
    let config = EmulatorConfig {
        job_model,
        queued_ms: millis(args.queued_secs),
        running_ms: millis(args.running_secs),
        require_content_length: !args.accept_chunked,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start_on(args.listen, config).await?;
    say!(
        "Emulator of the EmpirioLabs API listening on {}\nUse: EMPIRIOLABS_API_KEY={EMULATOR_KEY} host-demo generate --base-url {} --prompt …",
        emulator.base_url(),
        emulator.base_url()
    );
    tokio::signal::ctrl_c().await?;
    emulator.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// `--image` values as the request carries them: URLs as given, local files read, checked
/// and inlined by the same code a storyboard's images go through ([`request_image`]).
fn local_images(entries: &[String]) -> Result<Vec<String>> {
    let mut sent = Vec::new();
    let mut local_bytes = 0u64;
    for entry in entries {
        let (url, bytes) =
            request_image(std::path::Path::new("."), entry).map_err(anyhow::Error::msg)?;
        local_bytes += bytes;
        sent.push(url);
    }
    check_shot_total(local_bytes).map_err(anyhow::Error::msg)?;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::{Cli, Command};
    use clap::Parser;

    /// The flags a printed resume command carries, for `host-demo generate ARGS`.
    fn pickup_flags(args: &[&str]) -> String {
        let cli = Cli::try_parse_from(
            ["host-demo", "generate", "--prompt", "p"]
                .iter()
                .chain(args),
        )
        .expect("valid arguments");
        match cli.command {
            Command::Generate(args) => args.conn.pickup_flags() + &args.output.flag(),
            _ => unreachable!("a generate command"),
        }
    }

    #[test]
    fn a_printed_command_repeats_everything_given_but_the_key() {
        assert_eq!(pickup_flags(&[]), "");
        assert_eq!(
            pickup_flags(&[
                "--api-key",
                "secret",
                "--base-url",
                "http://127.0.0.1:9",
                "--out-dir",
                "my clips",
                "--component",
                "c.wasm",
                "--timeout-secs",
                "60",
                "--request-timeout-secs",
                "5",
                "--sandbox-config",
                "s.toml",
                "--allow-origin",
                "https://cdn.example",
                "--requests-per-minute",
                "20",
                "--max-memory-mib",
                "32",
                "--output",
                "intro",
            ]),
            " --base-url http://127.0.0.1:9 --out-dir 'my clips' --component c.wasm \
             --timeout-secs 60 --request-timeout-secs 5 --sandbox-config s.toml \
             --allow-origin https://cdn.example --requests-per-minute 20 --max-memory-mib 32 \
             --output intro"
        );
        assert_eq!(
            pickup_flags(&["--timeout-secs", "900"]),
            "",
            "the default is not repeated"
        );
    }

    #[test]
    fn a_printed_run_command_repeats_the_runs_settings_but_never_pay_again() {
        let cli = Cli::try_parse_from([
            "host-demo",
            "run",
            "sb.toml",
            "--max-cost",
            "$5",
            "--concurrency",
            "3",
            "--poll-interval-ms",
            "500",
            "--pay-again",
            "--base-url",
            "http://127.0.0.1:9",
        ])
        .expect("valid arguments");
        let Command::Run { run, conn } = cli.command else {
            unreachable!("a run command")
        };
        assert_eq!(conn.place_flags(), " --base-url http://127.0.0.1:9");
        assert_eq!(
            conn.run_only_flags() + &run.setting_flags(),
            " --max-cost '$5' --concurrency 3 --poll-interval-ms 500"
        );
    }
}
