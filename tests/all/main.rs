//! The integration tests: the real component, in the real Wasmtime host, against the local
//! emulator and servers the tests start on 127.0.0.1. One test binary, as wasmtime's own
//! `tests/all`: it links the host once, and compiles the component once for every test
//! (`video_gen_tests::runtime`). Run one group with a filter: `cargo test -p video-gen-tests
//! --test all faults::`.

mod cluster;
mod component;
mod connections;
mod contract;
mod faults;
mod hosts;
mod packages;
mod pipeline;
mod release;
mod sandbox;
