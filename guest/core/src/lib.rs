//! The pure core of the HappyHorse `video-gen` component.
//!
//! Everything that decides *what* to send and *how to read* the answer lives here, apart
//! from the WASI edges, so it is tested natively with `cargo test`:
//!
//! - [`validate`]: every documented rule, all violations at once, defaults filled in;
//! - [`cost`]: price estimates from a (overridable) rate card;
//! - [`wire`]: the submit body as the provider documents it;
//! - [`parse`]: tolerant reading of job, submit and error responses;
//! - [`backoff`]: retry delays with jitter, `Retry-After`, and poll spacing;
//! - [`client`]: the protocol driver (submit once, poll, wait) over a [`client::Transport`].

pub mod backoff;
pub mod client;
pub mod cost;
pub mod limits;
pub mod model;
pub mod parse;
pub mod validate;
pub mod wire;

pub use model::*;
