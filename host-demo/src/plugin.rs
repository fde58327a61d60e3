//! One sandboxed instance of the component, and typed, time-bounded calls into it.

use crate::api::{
    ClientConfig, CostEstimate, Error as ApiError, JobResult, JobStatus, ResolutionRate,
    ValidatedRequest, VideoRequest,
};
use crate::bindings::{Happyhorse, HappyhorsePre};
use crate::policy::OutboundPolicy;
use anyhow::Result;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How much of the guest's stderr is kept to explain a trap (a Rust guest that runs out of
/// memory says "memory allocation of N bytes failed" there just before it aborts).
const STDERR_CAPACITY: usize = 16 * 1024;

/// Bounds on one plugin instance.
#[derive(Debug, Clone)]
pub struct PluginLimits {
    /// Largest linear memory, bytes.
    pub max_memory_bytes: usize,
    /// CPU time one call may spend running guest code (waiting on I/O does not count).
    pub max_cpu_per_call: Duration,
    /// Wall-clock bound on each call (a `wait` needs its poll deadline plus slack).
    pub call_timeout: Duration,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            max_memory_bytes: 64 << 20,
            max_cpu_per_call: Duration::from_secs(10),
            call_timeout: Duration::from_secs(20 * 60),
        }
    }
}

/// Caps linear memory and remembers whether it had to refuse growth, so a trap that follows
/// is reported as "out of memory" rather than as whatever the guest did next.
struct MemoryCap {
    max_bytes: usize,
    refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        8
    }

    fn memories(&self) -> usize {
        8
    }

    fn tables(&self) -> usize {
        8
    }
}

/// What a new instance is given.
#[derive(Debug, Clone, Default)]
pub struct PluginOptions {
    /// The instance's whole environment (`wasi:cli/environment`); nothing is inherited.
    pub env: Vec<(String, String)>,
    /// Where it may send requests.
    pub policy: OutboundPolicy,
    /// Its memory and time bounds.
    pub limits: PluginLimits,
}

/// The store data of one instance.
pub struct PluginState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    memory: MemoryCap,
    policy: OutboundPolicy,
    /// Epoch ticks the current call has spent running guest code.
    cpu_ticks: u64,
    cpu_limit_ticks: u64,
    cpu_exhausted: bool,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.policy,
        }
    }
}

/// A call that ended without the component returning: the instance is unusable after it.
#[derive(Debug)]
pub enum PluginFailure {
    /// The call ran past its wall-clock bound.
    Deadline {
        /// The function called.
        function: &'static str,
        /// The bound.
        after: Duration,
    },
    /// The call used more CPU time than allowed and was interrupted.
    CpuExhausted {
        /// The function called.
        function: &'static str,
        /// The limit.
        limit: Duration,
    },
    /// The guest needed more memory than allowed and trapped.
    MemoryExhausted {
        /// The function called.
        function: &'static str,
        /// The limit, bytes.
        limit: usize,
    },
    /// The guest trapped (a panic, an `unreachable`, …).
    Trap {
        /// The function called.
        function: &'static str,
        /// What Wasmtime reported.
        reason: String,
        /// The end of what the guest wrote to stderr, if anything.
        stderr: String,
    },
    /// An earlier failure left this instance dead.
    Dead,
}

impl std::fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginFailure::Deadline { function, after } => write!(
                f,
                "the plugin's `{function}` call was stopped after {after:?} (its wall-clock limit); \
                 the job, if submitted, goes on: resume it by id"
            ),
            PluginFailure::CpuExhausted { function, limit } => write!(
                f,
                "the plugin's `{function}` call used more than {limit:?} of CPU time and was stopped"
            ),
            PluginFailure::MemoryExhausted { function, limit } => write!(
                f,
                "the plugin's `{function}` call needed more than {} MiB of memory and was stopped",
                limit >> 20
            ),
            PluginFailure::Trap {
                function,
                reason,
                stderr,
            } => {
                write!(f, "the plugin trapped in `{function}`: {reason}")?;
                if !stderr.is_empty() {
                    write!(f, " (guest stderr: {stderr})")?;
                }
                Ok(())
            }
            PluginFailure::Dead => write!(
                f,
                "this plugin instance failed earlier and cannot be used; create a new one"
            ),
        }
    }
}

impl std::error::Error for PluginFailure {}

/// One instance of the component in its own store.
pub struct Plugin {
    store: Store<PluginState>,
    bindings: Happyhorse,
    stderr: MemoryOutputPipe,
    call_timeout: Duration,
    max_cpu_per_call: Duration,
    dead: bool,
}

impl Plugin {
    pub(crate) async fn instantiate(
        engine: &Engine,
        pre: &HappyhorsePre<PluginState>,
        options: PluginOptions,
    ) -> Result<Plugin> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // No preopened directories, no sockets, no name lookups: the only way out is
        // wasi:http, where the policy sits. Nothing from the host's environment is inherited.
        let wasi = WasiCtx::builder()
            .envs(&options.env)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let tick = crate::runtime::EPOCH_TICK.as_micros().max(1);
        let cpu_limit_ticks =
            u64::try_from(options.limits.max_cpu_per_call.as_micros() / tick).unwrap_or(u64::MAX);
        let state = PluginState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            memory: MemoryCap {
                max_bytes: options.limits.max_memory_bytes,
                refused: false,
            },
            policy: options.policy,
            cpu_ticks: 0,
            cpu_limit_ticks: cpu_limit_ticks.max(1),
            cpu_exhausted: false,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.memory);
        // The callback runs once per epoch tick spent executing guest code: count those
        // against the call's CPU budget, and otherwise yield to the executor so a guest
        // spinning on CPU cannot keep the wall-clock timeout (or other jobs) from running.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut store| {
            let state = store.data_mut();
            state.cpu_ticks += 1;
            if state.cpu_ticks > state.cpu_limit_ticks {
                state.cpu_exhausted = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Yield(1))
        });
        let bindings = pre.instantiate_async(&mut store).await?;
        Ok(Plugin {
            store,
            bindings,
            stderr,
            call_timeout: options.limits.call_timeout,
            max_cpu_per_call: options.limits.max_cpu_per_call,
            dead: false,
        })
    }

    /// The policy this instance runs under (its counters show what it tried).
    pub fn policy(&self) -> &OutboundPolicy {
        &self.store.data().policy
    }

    /// Refuse calls into an instance an earlier failure killed; start a call's CPU count.
    fn begin(&mut self) -> Result<(), PluginFailure> {
        if self.dead {
            return Err(PluginFailure::Dead);
        }
        self.store.data_mut().cpu_ticks = 0;
        self.store.set_epoch_deadline(1);
        Ok(())
    }

    /// Interpret a bounded call: anything but the component's own result kills the instance
    /// (a trapped store cannot be trusted, and a timed-out call left it mid-execution).
    fn settle<T>(
        &mut self,
        function: &'static str,
        outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, PluginFailure> {
        match outcome {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(trap)) => {
                self.dead = true;
                let state = self.store.data();
                Err(if state.cpu_exhausted {
                    PluginFailure::CpuExhausted {
                        function,
                        limit: self.max_cpu_per_call,
                    }
                } else if state.memory.refused {
                    PluginFailure::MemoryExhausted {
                        function,
                        limit: state.memory.max_bytes,
                    }
                } else {
                    PluginFailure::Trap {
                        function,
                        reason: format!("{trap:#}"),
                        stderr: tail(&self.stderr),
                    }
                })
            }
            Err(_) => {
                self.dead = true;
                Err(PluginFailure::Deadline {
                    function,
                    after: self.call_timeout,
                })
            }
        }
    }
}

/// Call one export of the instance under its wall-clock bound.
macro_rules! bounded_call {
    ($plugin:ident, $name:literal, $method:ident($($arg:expr),*)) => {{
        $plugin.begin()?;
        let call = $plugin
            .bindings
            .videogen_api_video_gen()
            .$method(&mut $plugin.store, $($arg),*);
        let outcome = tokio::time::timeout($plugin.call_timeout, call).await;
        $plugin.settle($name, outcome)
    }};
}

/// The result of a call: the component's own answer, or why there was none.
pub type CallResult<T> = Result<Result<T, ApiError>, PluginFailure>;

impl Plugin {
    /// `validate`: no network.
    pub async fn validate(&mut self, request: &VideoRequest) -> CallResult<ValidatedRequest> {
        bounded_call!(self, "validate", call_validate(request))
    }

    /// `estimate-cost`: no network.
    pub async fn estimate_cost(
        &mut self,
        request: &VideoRequest,
        rates: Option<&[ResolutionRate]>,
    ) -> CallResult<CostEstimate> {
        bounded_call!(self, "estimate-cost", call_estimate_cost(request, rates))
    }

    /// `submit`: one job.
    pub async fn submit(
        &mut self,
        config: &ClientConfig,
        request: &VideoRequest,
    ) -> CallResult<String> {
        bounded_call!(self, "submit", call_submit(config, request))
    }

    /// `poll`: one reading.
    pub async fn poll(&mut self, config: &ClientConfig, job: &str) -> CallResult<JobStatus> {
        let job = job.to_string();
        bounded_call!(self, "poll", call_poll(config, &job))
    }

    /// `wait`: until terminal or the policy's deadline.
    pub async fn wait(&mut self, config: &ClientConfig, job: &str) -> CallResult<JobResult> {
        let job = job.to_string();
        bounded_call!(self, "wait", call_wait(config, &job))
    }

    /// `generate`: submit + wait.
    pub async fn generate(
        &mut self,
        config: &ClientConfig,
        request: &VideoRequest,
    ) -> CallResult<JobResult> {
        bounded_call!(self, "generate", call_generate(config, request))
    }
}

/// The last lines of the guest's stderr, for error messages.
fn tail(pipe: &MemoryOutputPipe) -> String {
    let bytes = pipe.contents();
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    let start = text.char_indices().rev().nth(500).map_or(0, |(i, _)| i);
    text[start..].to_string()
}
