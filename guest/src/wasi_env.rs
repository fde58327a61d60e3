//! Time and randomness from WASI (`wasi:clocks`, `wasi:random` through std).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use video_gen_core::client::Env;

/// The component's clocks and entropy.
pub struct WasiEnv {
    start: Instant,
    draws: u64,
}

impl WasiEnv {
    /// A monotonic origin for this call.
    pub fn new() -> Self {
        WasiEnv {
            start: Instant::now(),
            draws: 0,
        }
    }
}

impl Env for WasiEnv {
    fn now_unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn monotonic_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn sleep_ms(&mut self, ms: u64) {
        // std on wasm32-wasip2 sleeps by blocking on a wasi:clocks pollable: the host
        // regains control and can interrupt or time out the call meanwhile.
        std::thread::sleep(Duration::from_millis(ms));
    }

    fn random_u64(&mut self) -> u64 {
        // std seeds RandomState from wasi:random; hashing a counter with it gives jitter
        // without another dependency (no cryptographic use).
        self.draws = self.draws.wrapping_add(1);
        RandomState::new().hash_one(self.draws)
    }
}
