//! What every test of the `host-demo` binary needs: the binary, an emulator with jobs of a
//! known length, the binary's environment kept inside the test's own folder, and its output.

// Each test file uses some of these, not all.
#![allow(dead_code)]

use happyhorse_emulator::{Emulator, EmulatorConfig};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

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

/// `host-demo args…` in `home`, to its end.
pub async fn host(args: &[&str], home: &Path) -> Output {
    host_command(home)
        .args(args)
        .current_dir(home)
        .output()
        .await
        .expect("host-demo runs")
}

/// A storyboard of `n` three-second shots (`s1`, `s2`, …) in `dir`, as `trailer.toml`.
pub fn storyboard(dir: &Path, n: usize) -> PathBuf {
    let board = dir.join("trailer.toml");
    let shots: String = (1..=n)
        .map(|i| format!("[[shot]]\nname = \"s{i}\"\nprompt = \"shot {i}\"\nduration = 3\n"))
        .collect();
    std::fs::write(&board, shots).unwrap();
    board
}

/// Start `host-demo args…`, wait until its output (stdout or stderr) holds `ready`, press
/// Ctrl-C (SIGINT), and return everything it printed.
pub async fn interrupt(args: &[&str], home: &Path, ready: &str) -> Output {
    let mut child = host_command(home)
        // The pipeline's progress lines, as a piped run shows them.
        .env("RUST_LOG", "warn,happyhorse_pipeline=info")
        .args(args)
        .current_dir(home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("host-demo starts");
    let seen = Arc::new(Mutex::new(String::new()));
    let collect = |stream: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            let mut all = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                seen.lock().unwrap().push_str(&format!("{line}\n"));
                all.push_str(&format!("{line}\n"));
            }
            all
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !seen.lock().unwrap().contains(ready) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never printed {ready:?}:\n{}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = child.wait().await.unwrap();
    Output {
        status,
        stdout: stdout.await.unwrap().into_bytes(),
        stderr: stderr.await.unwrap().into_bytes(),
    }
}
