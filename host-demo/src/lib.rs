//! A Wasmtime host for the HappyHorse `video-gen` component.
//!
//! The host treats the component as an untrusted plugin: it decides what the plugin may
//! reach ([`policy`]), what it can see (only the environment the host gives it), how much
//! memory and time it may use ([`plugin::PluginLimits`]), and it keeps what matters — job
//! ids and downloaded files — outside the sandbox.
//!
//! - [`session`]: the real API or the built-in emulator, the component, the sandbox;
//! - [`sandbox`]: the policy every plugin runs under (deny by default, widened by config);
//! - [`runtime`]: the engine, the precompiled-component cache and pre-instantiation;
//! - [`plugin`]: one sandboxed instance and typed, time- and memory-bounded calls into it;
//! - [`policy`]: the outbound rules, enforced at the WASI-HTTP `send_request` hook;
//! - [`budget`]: the account-wide request budget all plugins share;
//! - [`schedule`]: when each job is polled, so that budget is spent where it pays;
//! - [`download`]: streaming outputs to disk with a checksum;
//! - [`advice`]: turning contract errors into advice for people (and which are transient);
//! - [`untrusted`]: job ids and provider text made safe to name files and to show;
//! - [`redact`]: the API key removed from everything the host writes;
//! - [`pipeline`]: a storyboard of shots run concurrently, journaled, resumable.
//!
//! The library prints nothing: it returns outcomes, reports progress through
//! [`pipeline::progress`] and logs through `tracing`. The `host-demo` binary (`src/main.rs`,
//! `src/cli/`) owns every line a person reads.

pub mod advice;
pub mod budget;
pub mod connections;
pub mod download;
pub mod learn;
pub mod pipeline;
pub mod plugin;
pub mod policy;
mod predict;
pub mod redact;
pub mod runtime;
pub mod sandbox;
pub mod schedule;
pub mod session;
pub mod untrusted;

/// Host bindings for the component's world, generated from `wit/` (the WIT's own doc
/// comments come through; the glue `bindgen!` adds has none).
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "empiriolabs:happyhorse/happyhorse",
        exports: { default: async },
    });
}

pub use bindings::exports::videogen::api::video_gen as api;
