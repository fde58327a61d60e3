//! Builds the product's component for wasm32-wasip2 (see `components.rs`) and stamps its
//! metadata into it. Test-only components are built by the dev-only `tests/artifacts` crate,
//! so a user's build of the host never compiles them.

#[path = "components.rs"]
mod components;

use std::env;
use std::path::PathBuf;
use wasm_encoder::{ComponentSection, CustomSection};
use wasm_metadata::{AddMetadata, AddMetadataField};

/// The component's one-line description. Kept short: the component must stay within its
/// 240 KiB limit (BENCHMARKS.md §4), and every byte here ships in it.
const DESCRIPTION: &str = "HappyHorse 1.1 video generation (EmpirioLabs API) for WASI 0.2 hosts";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let world = manifest_dir.join("../wit/world.wit");
    let (name, version) = world_package(&world);
    // The crates (and the User-Agent the component sends) carry the workspace's version; the
    // contract test fails when it differs from the world's, this says so at once.
    let crates = env::var("CARGO_PKG_VERSION").expect("cargo sets it");
    if crates != version {
        println!(
            "cargo:warning=wit/world.wit is {name}@{version} but the workspace version is \
             {crates}: release them together (Cargo.toml, CHANGELOG.md)"
        );
    }
    let metadata = Metadata {
        name,
        version,
        licenses: env::var("CARGO_PKG_LICENSE").expect("the workspace sets a license"),
        source: env::var("CARGO_PKG_REPOSITORY").expect("the workspace sets a repository"),
    };
    components::build_and_expose(
        &[("happyhorse-component", "HAPPYHORSE")],
        &["guest"],
        &|_, wasm| metadata.stamp(&wasm),
    );
}

/// What the component says about itself, in the sections `wasm-tools metadata show` reads.
struct Metadata {
    /// The world's package, `empiriolabs:happyhorse`.
    name: String,
    /// The world's package version: the component's version is its contract's, read from the
    /// WIT so the two cannot drift apart.
    version: String,
    /// An SPDX expression, the workspace's `license`.
    licenses: String,
    /// The workspace's `repository`.
    source: String,
}

impl Metadata {
    /// `wasm` with its name in the `component-name` section (through `wasm-metadata`, which
    /// keeps the names already there and the `producers` section) and the `version`,
    /// `description`, `licenses` and `source` custom sections appended, each holding its value
    /// as UTF-8, as `wasm-metadata` writes them. Those four are encoded here rather than with
    /// `wasm-metadata`'s `oci` feature for the reason given in Cargo.toml; the contract test
    /// reads them back with that feature's reader.
    fn stamp(&self, wasm: &[u8]) -> Vec<u8> {
        let mut add = AddMetadata::default();
        add.name = AddMetadataField::Set(self.name.clone());
        let mut out = add
            .to_wasm(wasm)
            .expect("wasm-metadata reads the component it stamps");
        for (section, value) in [
            ("version", self.version.as_str()),
            ("description", DESCRIPTION),
            ("licenses", self.licenses.as_str()),
            ("source", self.source.as_str()),
        ] {
            CustomSection {
                name: section.into(),
                data: value.as_bytes().into(),
            }
            .append_to_component(&mut out);
        }
        out
    }
}

/// The name and version of the package `world` declares (`package ns:name@1.2.3;`).
fn world_package(world: &std::path::Path) -> (String, String) {
    let text = std::fs::read_to_string(world)
        .unwrap_or_else(|e| panic!("reading {}: {e}", world.display()));
    let declared = text
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("package "))
        .and_then(|rest| rest.trim_end().strip_suffix(';'))
        .and_then(|id| id.split_once('@'))
        .unwrap_or_else(|| {
            panic!(
                "{} declares no versioned package (`package ns:name@x.y.z;`)",
                world.display()
            )
        });
    (declared.0.trim().to_string(), declared.1.trim().to_string())
}
