//! One sandboxed instance of the component, and typed, time-bounded calls into it.

use crate::contract::api::{
    ClientConfig, CostEstimate, Error as ApiError, JobResult, JobStatus, ResolutionRate,
    ValidatedRequest, VideoRequest,
};
use crate::contract::bindings::{Happyhorse, HappyhorsePre};
use crate::egress::OutboundPolicy;
use anyhow::Result;
use std::future::Future;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

/// How often the engine's epoch advances (the runtime's ticker thread), the unit a plugin's
/// CPU time is counted in: a guest spinning on CPU is interrupted (and made to yield to the
/// async executor) at most this long after its time is up. Here rather than in the runtime so
/// that the plugin, which counts in it, does not depend on the runtime that creates it.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How much of the guest's stderr is kept to explain a trap (a Rust guest that runs out of
/// memory says "memory allocation of N bytes failed" there just before it aborts). Writes
/// beyond it are refused (the stream reports itself closed); stdout goes nowhere.
pub const STDERR_CAPACITY: usize = 16 * 1024;

/// Writes to a request body the host buffers before the connection takes them: wasmtime
/// keeps one more than this in its channel, so a body never holds more than
/// `(1 + OUTGOING_BODY_CHUNKS) × max_request_body_chunk_bytes` on the host.
const OUTGOING_BODY_CHUNKS: usize = 1;

/// Bounds on one plugin instance.
#[derive(Debug, Clone)]
pub struct PluginLimits {
    /// Largest linear memory, bytes.
    pub max_memory_bytes: usize,
    /// CPU time one call may spend running guest code (waiting on I/O does not count).
    pub max_cpu_per_call: Duration,
    /// Wall-clock bound on each call (a `wait` needs its poll deadline plus slack).
    pub call_timeout: Duration,
    /// Host objects (WASI and WASI-HTTP resources: header sets, requests, bodies, streams,
    /// timers, …) the instance may hold at once: the capacity of its resource table.
    pub max_host_resources: usize,
    /// Largest header set (`wasi:http/types.fields`) the instance may build, in bytes of
    /// names and values.
    pub max_header_bytes: usize,
    /// Largest single write into a request body; the host buffers at most two of them per
    /// body.
    pub max_request_body_chunk_bytes: usize,
    /// Most bytes the instance may pass the host in one call (a header list, a body write,
    /// a result — `validate` hands the request's images back, so this must hold them), and
    /// the most random bytes it may ask for at once.
    pub max_host_call_bytes: usize,
}

/// Host memory one table entry may cost beyond what it holds (the slot, the boxed object, a
/// sent request's task), generous.
const ENTRY_OVERHEAD_BYTES: u64 = 4 << 10;
/// What one streamed response may hold in the host while the guest reads it: a frame
/// through the policy's cap plus hyper's read buffer (at most ~400 KiB).
const STREAMED_RESPONSE_BYTES: u64 = 512 << 10;
/// The instance itself: its stack, its tables, its stderr pipe, wasmtime's bookkeeping.
const INSTANCE_BYTES: u64 = 4 << 20;

impl PluginLimits {
    /// The most host memory one instance can make the host hold at once, with at most
    /// `max_concurrent_requests` responses streaming: its linear memory; every table entry
    /// at its largest (a header set, a request body's buffered chunks, or a small response
    /// read ahead of the guest, plus overhead); the responses streaming; the bytes of one
    /// host call (what is copied out of the guest, or the random bytes on their way in); and
    /// the instance itself.
    pub fn host_memory_bound(&self, max_concurrent_requests: usize) -> u64 {
        let per_entry = (self.max_header_bytes as u64)
            .max((1 + OUTGOING_BODY_CHUNKS as u64) * self.max_request_body_chunk_bytes as u64)
            .max(crate::egress::BUFFERED_RESPONSE_BYTES)
            + ENTRY_OVERHEAD_BYTES;
        self.max_memory_bytes as u64
            + self.max_host_resources as u64 * per_entry
            + max_concurrent_requests as u64 * STREAMED_RESPONSE_BYTES
            + self.max_host_call_bytes as u64
            + INSTANCE_BYTES
    }
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            max_memory_bytes: 64 << 20,
            max_cpu_per_call: Duration::from_secs(10),
            call_timeout: Duration::from_secs(20 * 60),
            max_host_resources: 256,
            max_header_bytes: 16 << 10,
            max_request_body_chunk_bytes: 16 << 10,
            max_host_call_bytes: 32 << 20,
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

/// The outbound policy, plus the bound on what a request body may buffer in the host.
struct Hooks {
    policy: OutboundPolicy,
    body_chunk_bytes: usize,
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        self.policy.send_request(request, options, fut)
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        OUTGOING_BODY_CHUNKS
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        self.body_chunk_bytes
    }
}

/// The store data of one instance.
pub struct PluginState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    memory: MemoryCap,
    hooks: Hooks,
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
            hooks: &mut self.hooks,
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
    /// The guest asked the host to hold or move more than its sandbox allows (host
    /// objects, bytes in one call, random bytes), and was stopped.
    HostLimit {
        /// The function called.
        function: &'static str,
        /// Which limit, and its value.
        limit: String,
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
            PluginFailure::HostLimit { function, limit } => write!(
                f,
                "the plugin's `{function}` call tried to make the host hold more than {limit} \
                 and was stopped"
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
    limits: PluginLimits,
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
        let limits = &options.limits;
        let wasi = WasiCtx::builder()
            .envs(&options.env)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(limits.max_host_call_bytes as u64)
            .build();
        // Everything the guest can make the host hold lives in this table or is bounded per
        // entry below: header sets by `max_header_bytes`, request bodies by two chunks.
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_host_resources);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(limits.max_header_bytes);
        let tick = EPOCH_TICK.as_micros().max(1);
        let cpu_limit_ticks =
            u64::try_from(options.limits.max_cpu_per_call.as_micros() / tick).unwrap_or(u64::MAX);
        let state = PluginState {
            wasi,
            http,
            table,
            memory: MemoryCap {
                max_bytes: options.limits.max_memory_bytes,
                refused: false,
            },
            hooks: Hooks {
                policy: options.policy,
                body_chunk_bytes: options.limits.max_request_body_chunk_bytes,
            },
            cpu_ticks: 0,
            cpu_limit_ticks: cpu_limit_ticks.max(1),
            cpu_exhausted: false,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.memory);
        // Caps what one guest-to-host call may make the host copy out of linear memory: a
        // list whose entries all point at the same buffer would otherwise cost the host
        // entries × buffer (wasmtime's default allows 128 MiB per call).
        store.set_hostcall_fuel(options.limits.max_host_call_bytes);
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
            limits: options.limits,
            dead: false,
        })
    }

    /// The policy this instance runs under (its counters show what it tried).
    pub fn policy(&self) -> &OutboundPolicy {
        &self.store.data().hooks.policy
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
                } else if let Some(limit) = host_limit(&trap, &self.limits) {
                    PluginFailure::HostLimit { function, limit }
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

/// Which host-side limit a trap came from, if it came from one. Wasmtime reports a full
/// resource table as a typed error, the others only as text (wasmtime is pinned, and the
/// sandbox tests hit each one).
fn host_limit(trap: &wasmtime::Error, limits: &PluginLimits) -> Option<String> {
    let table_full = trap.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    });
    if table_full {
        return Some(format!(
            "{} host objects (max-host-resources)",
            limits.max_host_resources
        ));
    }
    let text = format!("{trap:#}");
    if text.contains("total size of fields exceeds limit") {
        return Some(format!(
            "{} bytes of headers in one set (max-header-bytes)",
            limits.max_header_bytes
        ));
    }
    let per_call = text.contains("fuel allocated for hostcalls has been exhausted")
        || (text.contains("requested len") && text.contains("exceeds limit"));
    per_call.then(|| {
        format!(
            "{} bytes in one host call (max-host-call-bytes)",
            limits.max_host_call_bytes
        )
    })
}

/// The last lines of the guest's stderr, for error messages.
fn tail(pipe: &MemoryOutputPipe) -> String {
    let bytes = pipe.contents();
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    let start = text.char_indices().rev().nth(500).map_or(0, |(i, _)| i);
    text[start..].to_string()
}
