//! Builds wasm32-wasip2 components with a nested `cargo build --target wasm32-wasip2`, the way
//! wasmtime's `test-programs-artifacts` does, so that `cargo run`/`cargo test` on a fresh
//! clone needs no manual wasm step beyond `rustup target add wasm32-wasip2`.
//!
//! Shared by two build scripts: `artifacts/build.rs` (the product's component) and
//! `tests/artifacts/build.rs` (test-only components), each with its own list.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Build `components` (package, and the name its artifact is exposed under), pass each one's
/// bytes through `finish` (package, bytes), write `$OUT_DIR/components.rs` with a `NAME` byte
/// array and a `NAME_PATH` for each, and tell cargo to rerun when anything under `watch` (paths
/// relative to the workspace) changes.
pub fn build_and_expose(
    components: &[(&str, &str)],
    watch: &[&str],
    finish: &dyn Fn(&str, Vec<u8>) -> Vec<u8>,
) {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = workspace_root(&manifest_dir);
    for dir in watch.iter().chain(&["wit", "Cargo.lock"]) {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }

    // One nested target directory beside the host's profile directory (`target/debug/…`),
    // shared by every build script: its lock serialises them, and artifacts of the same
    // dependency built with other features coexist under their own hashes.
    let target_dir = out_dir
        .ancestors()
        .nth(3)
        .unwrap_or(&out_dir)
        .join("wasm-guests");

    build(&workspace, &target_dir, components);
    let mut generated = String::new();
    for (package, name) in components {
        let wasm = target_dir
            .join("wasm32-wasip2")
            .join("guest")
            .join(format!("{}.wasm", package.replace('-', "_")));
        let dest = out_dir.join(format!("{package}.wasm"));
        let bytes = std::fs::read(&wasm)
            .unwrap_or_else(|e| panic!("reading the built {}: {e}", wasm.display()));
        std::fs::write(&dest, finish(package, bytes))
            .unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
        generated.push_str(&format!(
            "/// Path of the built `{package}` component.\n\
             pub const {name}_PATH: &str = {dest:?};\n\
             /// The built `{package}` component.\n\
             pub const {name}: &[u8] = include_bytes!({dest:?});\n"
        ));
    }
    std::fs::write(out_dir.join("components.rs"), generated).expect("writing components.rs");
}

/// The workspace's root: the nearest ancestor of `dir` whose `Cargo.toml` has `[workspace]`.
fn workspace_root(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
        })
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

fn build(workspace: &Path, target_dir: &Path, components: &[(&str, &str)]) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "guest"])
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS");
    for (package, _) in components {
        command.args(["--package", package]);
    }
    let status = command
        .status()
        .expect("running cargo for the wasm32-wasip2 build");
    if !status.success() {
        panic!(
            "building the components for wasm32-wasip2 failed (the compiler's output is above). \
             If the target is missing, run `rustup target add wasm32-wasip2`."
        );
    }
}
