//! A Wasmtime host for the HappyHorse `video-gen` component.
//!
//! The host treats the component as an untrusted plugin: it decides what the plugin may
//! reach (the egress rules), what it can see (only the environment the host gives it), how
//! much memory and time it may use ([`PluginLimits`]), and it keeps what matters — job ids
//! and downloaded files — outside the sandbox.
//!
//! The layers, each importing only those below it: the `host-demo` binary (`src/main.rs`,
//! `src/cli/`) owns every line a person reads; [`pipeline`] runs storyboards (and holds the
//! session, the poll scheduler and downloads); `sandbox` embeds the component (runtime,
//! plugin, settings, and the egress hook with its budget). The modules are private; this is
//! the public surface:
//!
//! **The embedding**
//! - [`Runtime`]: the engine, the precompiled-component cache and pre-instantiation;
//! - [`RuntimeOptions`]: how the engine is set up (cache folder, pooling, keep-alive);
//! - [`load_component`]: a component from bytes, through the on-disk cache;
//! - [`Plugin`]: one sandboxed instance, with typed, time- and memory-bounded calls;
//! - [`PluginOptions`]: what one instance is given (outbound rules, environment, limits);
//! - [`PluginLimits`]: one instance's memory, CPU-time and wall-time bounds;
//! - [`PluginFailure`]: how a call into a plugin failed outside the contract (trap, time-out);
//! - [`CallResult`]: a call's answer, or the plugin's failure;
//! - [`SandboxPolicy`]: the settings every plugin runs under (deny by default, widened by
//!   config);
//! - [`Sandbox`]: those settings made into per-plugin options, with the shared budget;
//! - [`KEY_ENV`]: the environment variable the component reads its key from;
//! - [`OutboundPolicy`]: one plugin's outgoing-request rules, enforced at the WASI-HTTP hook;
//! - [`Origin`]: a scheme, host and port, the allow-list's unit;
//! - [`RequestBudget`]: the account-wide request budget all plugins share; [`Grant`]: one
//!   request's place in it, from whoever takes it to the wire.
//!
//! **The pipeline and what a run shares**
//! - [`Session`]: the API (real, or the built-in emulator), the component, the sandbox, the
//!   scheduler and the download rules, opened once;
//! - [`ConnectOptions`]: how a session is opened;
//! - [`EMULATOR_KEY`]: the key the built-in emulator accepts;
//! - [`ScheduleConfig`]: how the scheduler spaces polls and learns job times;
//! - [`PollScheduler`]: when each job is polled, so the budget is spent where it pays;
//! - [`PollCounts`]: how a scheduler's polls turned out;
//! - [`DownloadPolicy`]: which addresses outputs may come from, and their size and time caps;
//! - [`download`]: one output streamed to disk with its SHA-256 ([`Downloaded`]);
//! - [`download_client`]: the HTTP client downloads use (checked addresses, no redirects);
//! - [`redact_query`]: a URL without its query (signed URLs carry credentials there);
//! - [`pipeline`]: storyboards run concurrently, journaled, resumable — its entry points
//!   ([`pipeline::run`], [`pipeline::price`], [`pipeline::run_priced`], and
//!   [`pipeline::generate`] / [`pipeline::resume`] for one job) and the types they take and
//!   give back (storyboard, journal, runner, progress, status), re-exported from private
//!   modules; its own docs list the steps.
//!
//! **Words for people**
//! - [`describe`]: a contract error as advice; [`is_transient`]: whether retrying may help;
//! - [`money`]: micro-units as an amount with its currency;
//! - [`check_job_id`], [`job_file_stem`]: a provider's job id checked, and made a file name;
//! - [`shown`], [`shown_lines`]: provider text made safe to show on a terminal;
//! - [`redact`]: the API key removed from a text; [`RedactingMakeWriter`] (and its
//!   [`RedactingStderr`]): the same for logs;
//! - [`api`]: the contract's types, generated from the WIT.
//!
//! The library prints nothing: it returns outcomes, reports progress to an observer the
//! caller gives it ([`pipeline::Observer`]) and logs through `tracing`.
//!
//! # Examples
//!
//! The sandbox's defaults deny everything but the API, and what the host shows or stores
//! passes through its checks:
//!
//! ```rust
//! use host_demo::{Origin, SandboxPolicy, check_job_id, money};
//!
//! let policy = SandboxPolicy::default();
//! assert!(policy.allow.is_empty(), "no origin beyond the API's unless configured");
//! let api = Origin::from_url("https://api.empiriolabs.ai")?;
//! assert_eq!(api.to_string(), "https://api.empiriolabs.ai:443");
//! // A job id names files: one that could climb out of the output folder is refused.
//! assert!(check_job_id("job_0123").is_ok());
//! assert!(check_job_id("../../etc/passwd").is_err());
//! assert_eq!(money(700_000, "USD"), "$0.70");
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! One job through the component, against the built-in emulator (no key: nothing billed).
//! Not run here, as it compiles the component:
//!
//! ```no_run
//! use host_demo::api::VideoRequest;
//! use host_demo::{ConnectOptions, Session, describe};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let session = Session::open(ConnectOptions::default()).await?;
//! let mut plugin = session.plugin().await?;
//! let request = VideoRequest {
//!     model: None,
//!     prompt: "A horse gallops along a beach at dawn".into(),
//!     mode: None,
//!     images: vec![],
//!     aspect_ratio: None,
//!     resolution: None,
//!     duration_seconds: Some(5),
//!     seed: None,
//!     watermark: None,
//! };
//! // The outer error is the plugin's (a trap, a time-out), the inner the contract's.
//! match plugin.submit(&session.client_config, &request).await? {
//!     Ok(job_id) => println!("submitted {job_id}"),
//!     Err(e) => println!("{}", describe(&e)),
//! }
//! # Ok(())
//! # }
//! ```

#![deny(unnameable_types)]

mod advice;
pub mod pipeline;
mod redact;
mod sandbox;
mod untrusted;

/// Host bindings for the component's world, generated from `wit/` (the WIT's own doc
/// comments come through; the glue `bindgen!` adds has none).
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "empiriolabs:happyhorse/happyhorse",
        exports: { default: async },
    });
}

pub use advice::{describe, is_transient, money};
pub use bindings::exports::videogen::api::video_gen as api;
pub use pipeline::download::{
    DownloadPolicy, Downloaded, client as download_client, download, redact_query,
};
pub use pipeline::scheduler::{PollCounts, PollScheduler, ScheduleConfig};
pub use pipeline::session::{ConnectOptions, EMULATOR_KEY, Session};
pub use redact::{RedactingMakeWriter, RedactingStderr, redact};
pub use sandbox::egress::budget::{Grant, RequestBudget};
pub use sandbox::egress::{Origin, OutboundPolicy};
pub use sandbox::plugin::{CallResult, Plugin, PluginFailure, PluginLimits, PluginOptions};
pub use sandbox::runtime::{Runtime, RuntimeOptions, load_component};
pub use sandbox::{KEY_ENV, Sandbox, SandboxPolicy};
pub use untrusted::{check_job_id, job_file_stem, shown, shown_lines};
