//! Test-only WebAssembly components, built by `build.rs` for `wasm32-wasip2`:
//!
//! - [`HOSTILE`] / [`HOSTILE_PATH`]: a component of the product's world that attacks its host
//!   (`tests/guests/hostile`);
//! - [`SERVERLESS`] / [`SERVERLESS_PATH`]: the serverless example (`examples/serverless`),
//!   which imports the video-gen interface and is composed with the component by `wac`.

include!(concat!(env!("OUT_DIR"), "/components.rs"));
