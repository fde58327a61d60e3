//! Build the component(s) with a nested `cargo build --target wasm32-wasip2`, the way
//! wasmtime's `test-programs-artifacts` does, so that `cargo run`/`cargo test` on a fresh
//! clone needs no manual wasm step beyond `rustup target add wasm32-wasip2`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Packages built for wasm32-wasip2, and the name each artifact is exposed under.
const COMPONENTS: &[(&str, &str)] = &[
    ("happyhorse-component", "HAPPYHORSE"),
    // Misbehaves on purpose; the sandbox tests run it in the real host.
    ("hostile-guest", "HOSTILE"),
    ("happyhorse-serverless", "SERVERLESS"), // examples/serverless, composed by tests/hosts.rs
];

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest_dir
        .parent()
        .expect("artifacts/ sits in the workspace");
    // Every component's sources, and the contract they share.
    for dir in ["guest", "wit", "tests/guests", "examples/serverless"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );

    // Shared by every build of this profile (build, check, clippy) so the guest is built
    // once, but kept out of the outer cargo's own lock. OUT_DIR is <profile>/build/<x>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(3)
        .unwrap_or(&out_dir)
        .join("wasm-guests");

    build(workspace, &target_dir);
    let mut generated = String::new();
    for (package, name) in COMPONENTS {
        let wasm = target_dir
            .join("wasm32-wasip2")
            .join("guest")
            .join(format!("{}.wasm", package.replace('-', "_")));
        let dest = out_dir.join(format!("{package}.wasm"));
        std::fs::copy(&wasm, &dest)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", wasm.display(), dest.display()));
        generated.push_str(&format!(
            "/// Path of the built `{package}` component.\n\
             pub const {name}_PATH: &str = {dest:?};\n\
             /// Bytes of the built `{package}` component.\n\
             pub const {name}: &[u8] = include_bytes!({dest:?});\n"
        ));
    }
    std::fs::write(out_dir.join("components.rs"), generated).expect("writing components.rs");
}

/// One nested cargo invocation for every component: they share dependencies.
fn build(workspace: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "guest"])
        .env("CARGO_TARGET_DIR", target_dir)
        // Flags meant for the host build must not leak into the wasm build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS");
    for (package, _) in COMPONENTS {
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
