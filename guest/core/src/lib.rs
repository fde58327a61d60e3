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
//!
//! # Example
//!
//! What a provider says about time, and how long to wait before a retry:
//!
//! ```rust
//! use std::time::{Duration, SystemTime};
//! use video_gen_core::backoff::retry_delay_ms;
//! use video_gen_core::time::{parse_retry_after, parse_timestamp_ms, rfc3339};
//!
//! // A `429` whose `Retry-After` is an HTTP-date 30 s from now.
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 07:28:00 GMT
//! let asked = parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now);
//! assert_eq!(asked, Some(30_000));
//! // The first retry waits at least that, plus up to 10 % of jitter.
//! let delay = retry_delay_ms(0, asked, 0x5eed);
//! assert!((30_000..=33_000).contains(&delay));
//! // A job's `created_at`, read and written back.
//! let created = parse_timestamp_ms("2025-01-02T03:04:05.678+00:00").unwrap();
//! assert_eq!(rfc3339(created as i64), "2025-01-02T03:04:05.678Z");
//! ```

pub mod backoff;
pub mod client;
pub mod model;
pub mod provider;
pub mod time;

pub use model::*;
pub use provider::Provider;
