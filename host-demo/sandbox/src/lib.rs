//! Run the HappyHorse `video-gen` WebAssembly component as an untrusted plugin inside your
//! own Rust program.
//!
//! The host decides what the plugin may reach, what it can see and how much it may hold; the
//! plugin only ever sees a placeholder for the API key. Denied by default, each bound stated:
//!
//! - **Outbound requests**: only the API's origin (plus any the policy allows), through the
//!   WASI-HTTP hook ([`OutboundPolicy`], [`Origin`]); everything else is refused before a
//!   connection is made.
//! - **The key**: held by the host and swapped for the placeholder on requests to the API
//!   origin alone ([`Sandbox::placeholder`]); every sink can pass its text through [`redact`].
//! - **Memory, CPU, wall time, host handles**: per instance ([`PluginLimits`]); a call past a
//!   bound ends as a [`PluginFailure`], never as a hang or a host crash.
//! - **The account's request budget**: one [`RequestBudget`] shared by every plugin of a
//!   [`Sandbox`], so many concurrent jobs never exceed the provider's requests per minute.
//!
//! # Brief overview
//!
//! - [`Runtime`]: the engine, the on-disk cache of the precompiled component, and
//!   pre-instantiation (one per process; cheap instances from it).
//! - [`Sandbox`]: a [`SandboxPolicy`] (what plugins may reach and spend; TOML-readable) bound
//!   to an API address and key; it hands out [`PluginOptions`].
//! - [`Plugin`]: one sandboxed instance with typed calls mirroring the contract ([`api`]):
//!   `validate`, `estimate_cost`, `submit`, `poll`, `wait`, `generate`. Each returns a
//!   [`CallResult`]: the outer error is the plugin's ([`PluginFailure`]: a trap, a time-out),
//!   the inner the contract's ([`api::Error`]).
//!
//! This crate knows nothing of storyboards or journals (that is `happyhorse-pipeline`), starts
//! no runtime of its own (call it from your Tokio runtime) and prints nothing.
//!
//! # Example
//!
//! One generation, sandboxed. `component` is the component's bytes (the release `.wasm`);
//! the full program, against a local emulator, is `examples/generate.rs`.
//!
//! ```no_run
//! use happyhorse_sandbox::api::{ClientConfig, VideoRequest};
//! use happyhorse_sandbox::{Runtime, RuntimeOptions, Sandbox, SandboxPolicy};
//!
//! # #[allow(dead_code)]
//! # async fn demo(component: &[u8], key: String) -> anyhow::Result<()> {
//! let base_url = "https://api.empiriolabs.ai";
//! let sandbox = Sandbox::new(base_url, key, SandboxPolicy::default())?;
//! let runtime = Runtime::new(component, &RuntimeOptions::default())?;
//! let mut plugin = runtime.instantiate(sandbox.plugin_options()).await?;
//! // No `api_key`: the plugin reads the placeholder, the host sends the key.
//! let config = ClientConfig { base_url: Some(base_url.into()), ..Default::default() };
//! let request = VideoRequest {
//!     prompt: "A horse gallops along a beach at dawn".into(),
//!     duration_seconds: Some(5),
//!     ..Default::default()
//! };
//! match plugin.generate(&config, &request).await? {
//!     Ok(result) => println!("{}: {:?}", result.job_id, result.outputs),
//!     Err(error) => println!("the contract's error: {error:?}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The defaults deny everything but the API:
//!
//! ```
//! use happyhorse_sandbox::{Origin, SandboxPolicy};
//!
//! let policy = SandboxPolicy::default();
//! assert!(policy.allow.is_empty(), "no origin beyond the API's unless configured");
//! let api = Origin::from_url("https://api.empiriolabs.ai")?;
//! assert_eq!(api.to_string(), "https://api.empiriolabs.ai:443");
//! # Ok::<(), anyhow::Error>(())
//! ```

#![deny(unnameable_types)]
#![doc(test(attr(deny(warnings))))]

mod contract;
mod egress;
mod http_linker;
mod plugin;
mod redact;
mod runtime;
mod settings;

/// The contract's types (`videogen:api/video-gen`), generated from the WIT.
pub use contract::api;
pub use egress::budget::{Grant, RequestBudget, WINDOW as RATE_WINDOW};
pub use egress::{Origin, OutboundPolicy};
pub use plugin::{CallResult, Plugin, PluginFailure, PluginLimits, PluginOptions};
pub use redact::{
    REDACTED, RedactingMakeWriter, RedactingStderr, contains_secret, redact, redact_json,
    register as register_secret,
};
pub use runtime::{Runtime, RuntimeOptions, default_cache_dir, load_component};
pub use settings::{KEY_ENV, Sandbox, SandboxPolicy};
