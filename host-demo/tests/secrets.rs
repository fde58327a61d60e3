//! The API key never appears in anything the host prints — at any log level, on success or
//! failure — while the real component, which never sees it, still authenticates with it.

mod common;

use common::{host_command, printed};
use happyhorse_emulator::{Emulator, EmulatorConfig};
use std::process::Output;

const SECRET: &str = "sk-live-THIS-KEY-MUST-NEVER-BE-PRINTED-0123456789abcdef";

/// `host-demo args…` with `key` and logging at `log`, its cache and registry inside `home`.
async fn run_host(args: &[&str], key: &str, log: &str, home: &std::path::Path) -> Output {
    host_command(home)
        .args(args)
        .env("EMPIRIOLABS_API_KEY", key)
        .env("RUST_LOG", log)
        .output()
        .await
        .expect("host-demo runs")
}

/// An emulator whose one accepted key is [`SECRET`], jobs of a quarter second.
async fn emulator_accepting_secret() -> Emulator {
    common::emulator_with(EmulatorConfig {
        api_keys: vec![SECRET.into()],
        queued_ms: 50,
        running_ms: 200,
        ..EmulatorConfig::linear()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_never_printed() {
    let emulator = emulator_accepting_secret().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let home = dir.path();
    let base = emulator.base_url();
    let generate = [
        "--verbose",
        "generate",
        "--prompt",
        "A horse gallops along a beach at sunset.",
        "--base-url",
        &base,
        "--out-dir",
        out.to_str().expect("utf-8 path"),
    ];

    // Compile the component into the cache first: Cranelift's own trace output is huge
    // and has nothing to do with requests.
    let first = run_host(&generate, SECRET, "info", home).await;
    assert!(first.status.success(), "{}", printed(&first));

    // Everything, at trace level: hyper, WASI-HTTP, the policy hook, reqwest, the CLI.
    let traced = run_host(&generate, SECRET, "trace", home).await;
    let text = printed(&traced);
    assert!(traced.status.success(), "{text}");
    assert!(text.contains("Downloaded"), "{text}");
    assert!(!text.contains(SECRET), "the key was printed");

    // A key the provider refuses: the error path must not echo it either.
    let refused = "sk-live-REFUSED-KEY-ALSO-SECRET-9876543210";
    let failed = run_host(&generate, refused, "trace", home).await;
    let text = printed(&failed);
    assert!(!failed.status.success());
    assert!(text.contains("invalid_api_key"), "{text}");
    assert!(!text.contains(refused), "the refused key was printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_provider_echoes_back_is_never_printed() {
    use happyhorse_emulator::{Fault, Route};
    let emulator = emulator_accepting_secret().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let base = emulator.base_url();
    let echo = |status: u16| Fault::Status {
        status,
        code: "invalid_request".into(),
        message: format!("your key {SECRET} is not allowed to do that"),
        retry_after: None,
    };

    // `generate`: the refusal's message is printed on stderr.
    emulator.push_fault(Route::Submit, echo(400));
    let out = dir.path().join("out");
    let generate = [
        "generate",
        "--prompt",
        "A horse.",
        "--base-url",
        &base,
        "--out-dir",
        out.to_str().expect("utf-8 path"),
    ];
    let failed = run_host(&generate, SECRET, "info", home).await;
    let text = printed(&failed);
    assert!(!failed.status.success());
    assert!(
        text.contains("[REDACTED]"),
        "the echo was not exercised: {text}"
    );
    assert!(!text.contains(SECRET), "the echoed key was printed: {text}");

    // Nor in the per-user registry, which keeps the refusal's words: not in what `jobs`
    // prints without the key set (nothing to redact with there), nor in its files.
    let listed = host_command(home)
        .env_remove("EMPIRIOLABS_API_KEY")
        .args(["jobs", "--json"])
        .output()
        .await
        .expect("host-demo runs");
    let text = printed(&listed);
    assert!(text.contains("[REDACTED]"), "the refusal is listed: {text}");
    assert!(!text.contains(SECRET), "the echoed key was listed: {text}");
    for file in std::fs::read_dir(home.join("state")).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the echoed key was stored"
        );
    }

    // `run`: the shot's failure is printed, logged and shown in the summary.
    emulator.push_fault(Route::Submit, echo(400));
    let board = dir.path().join("sb.toml");
    std::fs::write(
        &board,
        "[[shot]]\nname = \"a\"\nprompt = \"p\"\nduration = 3\n",
    )
    .unwrap();
    let run = run_host(
        &[
            "run",
            board.to_str().unwrap(),
            "--base-url",
            &base,
            "--requests-per-minute",
            "0",
            "--poll-interval-ms",
            "20",
        ],
        SECRET,
        "trace",
        home,
    )
    .await;
    let text = printed(&run);
    assert!(!run.status.success(), "{text}");
    assert!(
        text.contains("[REDACTED]"),
        "the echo was not exercised: {text}"
    );
    assert!(!text.contains(SECRET), "the echoed key was printed");
}
