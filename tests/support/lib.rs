//! Shared set-up for the integration tests: one compiled component per test binary, a
//! fresh emulator on an ephemeral 127.0.0.1 port per test, and a fresh plugin per job.

use happyhorse_emulator::{Emulator, EmulatorConfig};
use happyhorse_sandbox::api::{ClientConfig, PollPolicy, VideoRequest};
use happyhorse_sandbox::{Origin, OutboundPolicy};
use happyhorse_sandbox::{Plugin, PluginLimits, PluginOptions};
use happyhorse_sandbox::{Runtime, RuntimeOptions};
use happyhorse_sandbox::{Sandbox, SandboxPolicy};
use std::sync::OnceLock;

/// The key the emulator accepts by default.
pub const KEY: &str = "emulator-key";

/// The component, compiled once per test binary (and cached on disk across runs: a debug
/// build of Cranelift takes seconds to compile it).
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| load(video_gen_artifacts::HAPPYHORSE))
}

/// The host's default runtime options, caching compiled components next to the built
/// component (inside the target directory) instead of in the user's cache.
pub fn runtime_options() -> RuntimeOptions {
    let built = std::path::Path::new(video_gen_artifacts::HAPPYHORSE_PATH);
    RuntimeOptions {
        cache_dir: built.parent().map(|dir| dir.join("cwasm")),
        ..Default::default()
    }
}

/// `wasm` compiled (or loaded from the cache) with [`runtime_options`].
pub fn load(wasm: &[u8]) -> Runtime {
    Runtime::new(wasm, &runtime_options()).expect("the component loads")
}

/// Emulated jobs that finish in a fraction of a second. The account's request limit is
/// off: these tests poll every few ms on purpose, and the limit has tests of its own.
pub fn fast() -> EmulatorConfig {
    EmulatorConfig {
        queued_ms: 30,
        running_ms: 150,
        rate_limit_per_minute: 0,
        ..EmulatorConfig::linear()
    }
}

/// Start an emulator for one test.
pub async fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("the emulator starts")
}

/// The sandbox the tests run plugins in: the default policy, but no account budget (these
/// tests poll every few ms on purpose; the budget has tests of its own) and a shorter bound
/// on each call.
pub fn test_policy() -> SandboxPolicy {
    SandboxPolicy {
        requests_per_minute: 0,
        call_timeout_secs: 30,
        ..Default::default()
    }
}

/// A sandbox for `emulator` holding `key`.
pub fn sandbox(emulator: &Emulator, key: &str, policy: SandboxPolicy) -> Sandbox {
    Sandbox::new(&emulator.base_url(), key.to_string(), policy).expect("a valid sandbox")
}

/// A plugin in the default sandbox for `emulator`: it sees a placeholder for `key` (nothing at
/// all when `key` is `None`), and the host swaps in the real key on requests to the emulator.
pub async fn plugin_with_key(emulator: &Emulator, key: Option<&str>) -> Plugin {
    let sandbox = sandbox(emulator, key.unwrap_or_default(), test_policy());
    let mut options = sandbox.plugin_options();
    if key.is_none() {
        options.env.clear();
    }
    runtime()
        .instantiate(options)
        .await
        .expect("the plugin instantiates")
}

/// What a plugin gets outside any sandbox: the emulator's key itself and `base_url`'s origin
/// as its only allowed destination.
pub fn options_allowing(base_url: &str) -> PluginOptions {
    PluginOptions {
        env: vec![("EMPIRIOLABS_API_KEY".into(), KEY.into())],
        policy: OutboundPolicy::allow(vec![Origin::from_url(base_url).expect("a URL")]),
        limits: PluginLimits::default(),
    }
}

/// A plugin with the emulator's key.
pub async fn plugin(emulator: &Emulator) -> Plugin {
    plugin_with_key(emulator, Some(KEY)).await
}

/// Polls every few tens of ms, gives up after `deadline_ms`.
pub fn config(emulator: &Emulator, deadline_ms: u64) -> ClientConfig {
    client_config(
        &emulator.base_url(),
        PollPolicy {
            min_interval_ms: 20,
            max_interval_ms: 100,
            deadline_ms,
            max_retries: 3,
        },
    )
}

/// The client configuration for `base_url` with `poll` as the poll policy (the component's
/// other defaults, a 2 s connect timeout).
pub fn client_config(base_url: &str, poll: PollPolicy) -> ClientConfig {
    ClientConfig {
        base_url: Some(base_url.to_string()),
        api_key: None,
        connect_timeout_ms: Some(2_000),
        first_byte_timeout_ms: None,
        between_bytes_timeout_ms: None,
        max_response_bytes: None,
        poll: Some(poll),
    }
}

/// A text-to-video request of `seconds` seconds (the API's default length with `None`).
pub fn t2v_of(prompt: &str, seconds: Option<u32>) -> VideoRequest {
    VideoRequest {
        duration_seconds: seconds,
        ..t2v(prompt)
    }
}

/// A minimal text-to-video request.
pub fn t2v(prompt: &str) -> VideoRequest {
    VideoRequest {
        model: None,
        prompt: prompt.to_string(),
        mode: None,
        images: vec![],
        aspect_ratio: None,
        resolution: None,
        duration_seconds: None,
        seed: None,
        watermark: None,
    }
}

/// The JSON bodies of every submit the emulator received.
pub fn submit_bodies(emulator: &Emulator) -> Vec<serde_json::Value> {
    emulator
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/videos/generations")
        .filter_map(|r| r.body)
        .collect()
}
