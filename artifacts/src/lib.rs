//! The product's WebAssembly component, built by `build.rs` for `wasm32-wasip2`:
//! [`HAPPYHORSE`] / [`HAPPYHORSE_PATH`], the `videogen:api/video-gen` component the host
//! embeds. Test-only components live in `video-gen-test-artifacts` (`tests/artifacts`).

include!(concat!(env!("OUT_DIR"), "/components.rs"));
