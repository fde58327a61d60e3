//! The contract's WIT packages encoded as wasm (`wasm-tools component wit --wasm` does the
//! same), for callers that depend on the contract alone: `videogen:api` and the world that
//! implements it, `empiriolabs:happyhorse`.

use anyhow::{Context, Result};
use std::path::Path;
use wit_parser::Resolve;

/// One encoded package.
pub struct EncodedPackage {
    /// `videogen-api@0.3.0`: the package's id as a file name (as in `wit/released/`).
    pub file_stem: String,
    /// The package's binary encoding.
    pub wasm: Vec<u8>,
}

/// Every package under `wit_dir` (the world and its `deps/`), each encoded on its own.
pub fn encode_all(wit_dir: &Path) -> Result<Vec<EncodedPackage>> {
    let mut resolve = Resolve::default();
    resolve
        .push_dir(wit_dir)
        .with_context(|| format!("reading the WIT in {}", wit_dir.display()))?;
    let mut packages = Vec::new();
    for (id, package) in resolve.packages.iter() {
        let name = &package.name;
        let version = name
            .version
            .as_ref()
            .with_context(|| format!("WIT package {name} has no version"))?;
        let wasm = wit_component::encode(&resolve, id)
            .with_context(|| format!("encoding WIT package {name}"))?;
        packages.push(EncodedPackage {
            file_stem: format!("{}-{}@{version}", name.namespace, name.name),
            wasm,
        });
    }
    packages.sort_by(|a, b| a.file_stem.cmp(&b.file_stem));
    Ok(packages)
}
