//! The workspace's WebAssembly components, built by `build.rs` for `wasm32-wasip2`.
//!
//! - [`HAPPYHORSE`] / [`HAPPYHORSE_PATH`]: the `videogen:api/video-gen` component;
//! - [`HOSTILE`] / [`HOSTILE_PATH`]: a test component of the same world that attacks its
//!   host (see `tests/guests/hostile`).

include!(concat!(env!("OUT_DIR"), "/components.rs"));
