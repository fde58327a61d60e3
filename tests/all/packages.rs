//! The Python wheel and the npm package as their users get them: built by `cargo xtask dist`,
//! then installed from `dist/` into a fresh venv and a fresh npm project outside the
//! repository (`packages/python/test-wheel.sh`, `packages/node/test-package.sh`), type-checked
//! there (`mypy --strict`, `tsc --strict`) and run against an emulator this test starts.
//!
//! The installs fetch pytest, mypy and TypeScript from the package indexes, the one network
//! these machines reach.

use crate::release::{VERSION, xtask};
use happyhorse_emulator::{Emulator, EmulatorConfig};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tokio::sync::OnceCell;
use video_gen_tests::*;

use crate::hosts::{run, workspace};

type Test = Result<(), Box<dyn std::error::Error>>;

/// One `cargo xtask dist` for the package tests, into `target/test-dist` (replaced each run).
pub(crate) async fn dist() -> &'static PathBuf {
    static DIST: OnceCell<PathBuf> = OnceCell::const_new();
    DIST.get_or_init(|| async {
        let out = workspace().join("target/test-dist");
        let built = xtask(&["dist", "--out", out.to_str().expect("a UTF-8 path")]).await;
        assert!(built.success, "{}", built.describe());
        out
    })
    .await
}

/// Jobs that take a few seconds, as the packages' tests expect (a wait that is aborted must
/// find its job unfinished); no request limit, which has tests of its own.
async fn package_emulator() -> Emulator {
    emulator(EmulatorConfig {
        queued_ms: 1000,
        running_ms: 2000,
        rate_limit_per_minute: 0,
        ..EmulatorConfig::linear()
    })
    .await
}

/// Runs a package's own test script on `artifact` against a fresh emulator; returns what it
/// printed and how many jobs reached the emulator.
async fn run_package_tests(script: &str, artifact: PathBuf) -> (crate::hosts::Run, usize) {
    assert!(artifact.is_file(), "dist wrote no {}", artifact.display());
    let emu = package_emulator().await;
    let mut command = Command::new("bash");
    command
        .arg(workspace().join(script))
        .arg(&artifact)
        .arg(emu.base_url());
    let ran = run(command, Duration::from_secs(900)).await;
    (ran, emu.jobs_created())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_wheel_from_dist_installs_type_checks_and_generates() -> Test {
    let wheel = dist()
        .await
        .join(format!("python/happyhorse-{VERSION}-py3-none-any.whl"));
    let (ran, jobs) = run_package_tests("packages/python/test-wheel.sh", wheel).await;
    assert!(ran.success, "{}", ran.describe());
    assert!(
        ran.stdout.contains(" passed") && !ran.stdout.contains(" failed"),
        "pytest's summary\n{}",
        ran.describe()
    );
    assert!(
        ran.stdout.matches("Success: no issues found").count() == 2,
        "mypy --strict on the consumer and on the installed package\n{}",
        ran.describe()
    );
    assert!(jobs > 0, "the installed package reached the emulator");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_package_from_dist_installs_type_checks_and_generates() -> Test {
    let tarball = dist().await.join(format!("npm/happyhorse-{VERSION}.tgz"));
    let (ran, jobs) = run_package_tests("packages/node/test-package.sh", tarball).await;
    assert!(ran.success, "{}", ran.describe());
    assert!(ran.stdout.contains("tsc: no errors"), "{}", ran.describe());
    assert!(
        ran.stdout.contains("# fail 0") || ran.stdout.contains("ℹ fail 0"),
        "node --test's summary\n{}",
        ran.describe()
    );
    assert!(jobs > 0, "the installed package reached the emulator");
    Ok(())
}

/// Both packages carry the contract's version (dist would not find them otherwise; this says
/// which file to change).
#[test]
fn package_versions_are_the_contracts() {
    let pyproject =
        std::fs::read_to_string(workspace().join("packages/python/pyproject.toml")).unwrap();
    assert!(
        pyproject.contains(&format!("version = \"{VERSION}\"")),
        "packages/python/pyproject.toml's version is not {VERSION}"
    );
    let package: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("packages/node/package.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(package["version"], VERSION, "packages/node/package.json");
    assert_eq!(package["name"], "happyhorse");
}
