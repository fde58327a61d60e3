//! What any video provider's `video-gen` component shares, free of WASI and of any one
//! provider, so it is tested natively and reused unchanged by a second provider's component:
//!
//! - [`model`]: requests, jobs and errors, mirroring the WIT `videogen:api/video-gen` names;
//! - [`provider`]: the [`Provider`] trait a provider's crate implements (its rules, wire
//!   format and answers — HappyHorse's are in `happyhorse-core`);
//! - [`client`]: the protocol driver (submit once, poll, wait; retries, time bounds, "never
//!   pay twice") over a [`client::Transport`] and a [`client::Env`];
//! - [`backoff`]: retry delays with jitter and poll spacing;
//! - [`time`]: `Retry-After`, timestamps and civil dates, without a date crate (the host and
//!   the emulator read and write time through it too).

pub mod backoff;
pub mod client;
pub mod model;
pub mod provider;
pub mod time;

pub use model::*;
pub use provider::Provider;
