//! A session: which API the plugins talk to (the real one, or the built-in emulator when
//! no key is given), the compiled component, and the sandbox every plugin runs in.

use crate::download::DownloadPolicy;
use crate::scheduler::{PollScheduler, ScheduleConfig};
use anyhow::{Context, Result, bail};
use happyhorse_emulator::{Emulator, EmulatorConfig, JobModel, RenderFarm};
use happyhorse_sandbox::Origin;
use happyhorse_sandbox::Plugin;
use happyhorse_sandbox::api::{ClientConfig, PollPolicy};
use happyhorse_sandbox::{Runtime, RuntimeOptions};
use happyhorse_sandbox::{Sandbox, SandboxPolicy};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The provider's public endpoint.
pub const REAL_BASE_URL: &str = happyhorse_core::limits::DEFAULT_BASE_URL;
/// The key the built-in emulator accepts.
pub const EMULATOR_KEY: &str = "emulator-key";
/// The endpoint the built-in emulator's jobs are journaled under: its address changes with
/// every process, and its jobs end with the process, so they never count for another.
pub const BUILT_IN_EMULATOR: &str = "built-in emulator";

/// How to open a session.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The API key; `None` (or empty) starts the built-in emulator instead.
    pub api_key: Option<String>,
    /// The API base URL; `None` is the real service (with a key).
    pub base_url: Option<String>,
    /// A component file to load instead of the one built into the binary.
    pub component: Option<PathBuf>,
    /// How long `wait`-style loops may take before handing back the job id.
    pub wait_deadline: Duration,
    /// What plugins may reach and spend.
    pub sandbox: SandboxPolicy,
    /// The emulator's settings, when one is started.
    pub emulator: EmulatorConfig,
    /// Engine settings; `max_memory_bytes` is replaced by the sandbox's `max-memory-mib`.
    pub runtime: RuntimeOptions,
    /// When the pipeline polls each job; `None`: the defaults for the real service, or ten
    /// times faster for the built-in emulator (whose jobs take seconds).
    pub schedule: Option<ScheduleConfig>,
    /// The window the provider counts `requests-per-minute` in: a minute, except for an
    /// emulator whose clock runs faster (benchmarks).
    pub rate_window: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            api_key: None,
            base_url: None,
            component: None,
            wait_deadline: Duration::from_secs(15 * 60),
            sandbox: SandboxPolicy::default(),
            // A render farm ten times faster than real time (as the scheduler's timings are
            // scaled below): realistic in shape, seconds long for a demo.
            emulator: EmulatorConfig {
                job_model: JobModel::RenderFarm(RenderFarm {
                    time_scale: 0.1,
                    ..RenderFarm::default()
                }),
                ..EmulatorConfig::default()
            },
            runtime: RuntimeOptions::default(),
            schedule: None,
            rate_window: happyhorse_sandbox::RATE_WINDOW,
        }
    }
}

/// An open session. Share it (`Arc<Session>`) between concurrent jobs: every plugin it
/// creates draws on the same request budget.
pub struct Session {
    /// The compiled, pre-instantiated component.
    pub runtime: Runtime,
    /// The sandbox plugins run in.
    pub sandbox: Sandbox,
    /// The configuration passed to the component's networked calls.
    pub client_config: ClientConfig,
    /// Which output URLs the host will download.
    pub downloads: DownloadPolicy,
    /// The in-process emulator, when no key was given.
    pub emulator: Option<Emulator>,
    /// When each job is polled, inside the sandbox's request budget.
    pub scheduler: Arc<PollScheduler>,
}

impl Session {
    /// Start the emulator if needed, load the component, set up the sandbox.
    pub async fn open(options: ConnectOptions) -> Result<Session> {
        let key = options.api_key.filter(|k| !k.trim().is_empty());
        let (base_url, key, emulator) = match key {
            Some(key) => {
                let base = options
                    .base_url
                    .unwrap_or_else(|| REAL_BASE_URL.to_string());
                (base, key, None)
            }
            None => {
                if options.base_url.is_some() {
                    bail!(
                        "a base URL needs an API key: set EMPIRIOLABS_API_KEY (an external emulator prints the key it accepts)"
                    );
                }
                let emulator = Emulator::start(options.emulator).await?;
                (
                    emulator.base_url(),
                    EMULATOR_KEY.to_string(),
                    Some(emulator),
                )
            }
        };
        let api_origin = Origin::from_url(&base_url)?;
        let wasm = match &options.component {
            Some(path) => {
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
            }
            None => video_gen_artifacts::HAPPYHORSE.to_vec(),
        };
        if emulator.is_none() {
            // Whatever path the key takes back out (an echoing provider, a hostile plugin),
            // every sink of the host redacts it.
            happyhorse_sandbox::register_secret(&key);
        }
        let sandbox =
            Sandbox::new(&base_url, key, options.sandbox)?.with_rate_window(options.rate_window);
        let schedule = options.schedule.unwrap_or_else(|| {
            if emulator.is_some() {
                ScheduleConfig::default().scaled(10.0)
            } else {
                ScheduleConfig::default()
            }
        });
        let scheduler = Arc::new(PollScheduler::new(sandbox.budget().clone(), schedule));
        // The engine's memory reservation (and the pool's per-memory cap) must hold what the
        // sandbox lets a plugin grow to.
        let runtime_options = RuntimeOptions {
            max_memory_bytes: sandbox.policy().max_memory_bytes(),
            ..options.runtime
        };
        let runtime = Runtime::new(&wasm, &runtime_options)?;
        let deadline_ms = u64::try_from(options.wait_deadline.as_millis()).unwrap_or(u64::MAX);
        // Emulated jobs take seconds: poll often enough for a lively demo. Against the real
        // service, the component's defaults (5 s backing off to 15 s) apply.
        let poll = if emulator.is_some() {
            PollPolicy {
                min_interval_ms: 500,
                max_interval_ms: 2_000,
                deadline_ms,
                max_retries: 4,
            }
        } else {
            PollPolicy {
                min_interval_ms: 5_000,
                max_interval_ms: 15_000,
                deadline_ms,
                max_retries: 4,
            }
        };
        Ok(Session {
            client_config: ClientConfig {
                base_url: Some(base_url),
                api_key: None,
                connect_timeout_ms: None,
                first_byte_timeout_ms: None,
                between_bytes_timeout_ms: None,
                max_response_bytes: None,
                poll: Some(poll),
            },
            downloads: DownloadPolicy {
                api_origin: api_origin.clone(),
            },
            runtime,
            sandbox,
            emulator,
            scheduler,
        })
    }

    /// How long a run waits for one job unless told otherwise: the poll deadline
    /// (`--timeout-secs`), else 15 minutes.
    pub fn wait_deadline(&self) -> Duration {
        Duration::from_millis(
            self.client_config
                .poll
                .map_or(15 * 60 * 1000, |p| p.deadline_ms),
        )
    }

    /// Where this session's jobs live, as the journal and the registry record them: the
    /// API's origin (scheme, host and port), or [`BUILT_IN_EMULATOR`]. A job belongs to the
    /// endpoint it was submitted to; no other endpoint knows it.
    pub fn endpoint(&self) -> String {
        if self.is_emulated() {
            return BUILT_IN_EMULATOR.to_string();
        }
        self.downloads.api_origin.to_string()
    }

    /// Whether this session talks to the built-in emulator.
    pub fn is_emulated(&self) -> bool {
        self.emulator.is_some()
    }

    /// The API base URL.
    pub fn base_url(&self) -> &str {
        self.client_config
            .base_url
            .as_deref()
            .unwrap_or(REAL_BASE_URL)
    }

    /// A fresh plugin instance inside the sandbox.
    pub async fn plugin(&self) -> Result<Plugin> {
        self.runtime
            .instantiate(self.sandbox.plugin_options())
            .await
    }
}
