//! The other-language packages, built around the release's component by their own build
//! scripts: the Python wheel (`packages/python/build.sh`) and the npm tarball
//! (`packages/node/build.sh`). Each must carry the contract's version.

use crate::release::Release;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// One built package: its path under `dist/` and its bytes.
pub struct BuiltPackage {
    /// `python/happyhorse-0.3.0-py3-none-any.whl` or `npm/happyhorse-0.3.0.tgz`.
    pub path: String,
    /// The file.
    pub bytes: Vec<u8>,
}

/// Builds both packages around `release`'s component, in a scratch folder.
pub fn build_all(root: &Path, release: &Release) -> Result<Vec<BuiltPackage>> {
    let scratch = std::env::temp_dir().join(format!("happyhorse-dist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let built = build_in(root, release, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    built
}

fn build_in(root: &Path, release: &Release, scratch: &Path) -> Result<Vec<BuiltPackage>> {
    let component = scratch.join(release.component_file_name());
    std::fs::write(&component, &release.component)
        .context("writing the component to build with")?;
    let version = &release.version;
    let packages = [
        (
            "python",
            "python3",
            format!("happyhorse-{version}-py3-none-any.whl"),
        ),
        ("node", "npm", format!("happyhorse-{version}.tgz")),
    ];
    let mut built = Vec::new();
    for (package, tool, file) in packages {
        let out = scratch.join(package);
        let script = root.join("packages").join(package).join("build.sh");
        let status = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .arg(&component)
            // Archive timestamps from the commit, not the clock (setuptools and npm read it).
            .env("SOURCE_DATE_EPOCH", release.source.committed_at.to_string())
            .status()
            .with_context(|| format!("running {}", script.display()))?;
        if !status.success() {
            bail!(
                "{} failed ({status}); it needs `{tool}` (and the package index) on this machine",
                script.display()
            );
        }
        let path = out.join(&file);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "{} wrote no {file}: the package's version must be the contract's, {version}",
                script.display()
            )
        })?;
        let dir = if package == "node" { "npm" } else { package };
        built.push(BuiltPackage {
            path: format!("{dir}/{file}"),
            bytes,
        });
    }
    Ok(built)
}
