//! The workspace's WebAssembly components, built by `build.rs` for `wasm32-wasip2`.
//!
//! - [`HAPPYHORSE`] / [`HAPPYHORSE_PATH`]: the `videogen:api/video-gen` component.

include!(concat!(env!("OUT_DIR"), "/components.rs"));
