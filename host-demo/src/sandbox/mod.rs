//! The embedding: the component as an untrusted plugin, and everything that bounds it.
//!
//! - [`runtime`]: the engine, the precompiled-component cache and pre-instantiation;
//! - `http_linker`: Wasmtime's WASI-HTTP, with the one fix a reused plugin needs (request
//!   options freed after `handle`);
//! - [`plugin`]: one sandboxed instance and typed, time- and memory-bounded calls into it;
//! - [`settings`]: the policy every plugin runs under (deny by default, widened by config);
//! - [`egress`]: the WASI-HTTP hook and its rules (origins, the key swap, the budget,
//!   connections).
//!
//! Nothing here knows the pipeline exists: a scheduler hands the egress hook a budget grant
//! and reads back what was sent.

pub(crate) mod egress;
mod http_linker;
pub(crate) mod plugin;
pub(crate) mod runtime;
mod settings;

pub use settings::{KEY_ENV, Sandbox, SandboxPolicy};
