//! What every test of the `host-demo` binary needs: the binary, an emulator with jobs of a
//! known length, the binary's environment kept inside the test's own folder, and its output.

// Each test file uses some of these, not all.
#![allow(dead_code)]

use happyhorse_emulator::{Emulator, EmulatorConfig};
use std::path::Path;
use std::process::Output;

/// The key the emulator accepts by default.
pub const KEY: &str = "emulator-key";
/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_host-demo");

/// An emulator whose jobs queue `queued_ms` and then run `running_ms` (linear, so a test
/// knows when they end), with the account limit off.
pub async fn emulator(queued_ms: u64, running_ms: u64) -> Emulator {
    emulator_with(EmulatorConfig {
        queued_ms,
        running_ms,
        ..EmulatorConfig::linear()
    })
    .await
}

/// An emulator with `config`, the account limit off.
pub async fn emulator_with(config: EmulatorConfig) -> Emulator {
    Emulator::start(EmulatorConfig {
        rate_limit_per_minute: 0,
        ..config
    })
    .await
    .expect("the emulator starts")
}

/// `host-demo`, with the emulator's key, warnings only, and the component cache and the
/// per-user registry of submits inside `home` (never the user's own).
pub fn host_command(home: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .env("EMPIRIOLABS_API_KEY", KEY)
        .env("RUST_LOG", "warn")
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("HAPPYHORSE_STATE_DIR", home.join("state"))
        .stdin(std::process::Stdio::null());
    command
}

/// Everything a run printed, stdout then stderr.
pub fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
