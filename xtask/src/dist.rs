//! `cargo xtask dist`: the release files, written whole or not at all.
//!
//! ```text
//! dist/
//!   happyhorse-0.3.0.wasm                  the component, the bytes the tests load
//!   wit/empiriolabs-happyhorse@0.3.0.wasm  the world's WIT package, encoded
//!   wit/videogen-api@0.3.0.wasm            the contract's WIT package, encoded
//!   python/happyhorse-0.3.0-py3-none-any.whl  the Python package (packages/python)
//!   npm/happyhorse-0.3.0.tgz               the npm package (packages/node)
//!   release.json                           version, revision, dirty, every file's digest
//!   SHA256SUMS                             `sha256sum -c SHA256SUMS` checks every file above
//! ```

use crate::release::{Release, sha256_hex};
use crate::source::Source;
use crate::{Failure, packages, wit_packages, workspace_root};
use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};

/// The file that marks a folder as written by `dist` (and so safe to replace).
const RELEASE_JSON: &str = "release.json";
/// The checksums file, in `sha256sum`'s format.
const SHA256SUMS: &str = "SHA256SUMS";

/// What `release.json` records.
#[derive(Serialize)]
struct ReleaseRecord<'a> {
    name: &'a str,
    version: &'a str,
    world: String,
    revision: String,
    /// True when the tree differed from its commit: these files are not that commit's.
    dirty: bool,
    /// What differed (`git status --porcelain` lines), when dirty.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    changes: &'a [String],
    created: String,
    files: Vec<FileRecord>,
}

/// One file of the release.
#[derive(Serialize)]
struct FileRecord {
    path: String,
    sha256: String,
    bytes: usize,
}

/// Writes the release into `out` (default `dist/` at the workspace root).
pub fn run(out: Option<PathBuf>) -> Result<(), Failure> {
    let root = workspace_root();
    let out = out.unwrap_or_else(|| root.join("dist"));
    check_replaceable(&out).map_err(Failure::Refused)?;

    let release = Release::product(Source::read(&root))?;
    let mut files = vec![(release.component_file_name(), release.component.clone())];
    for package in wit_packages::encode_all(&root.join("wit"))? {
        files.push((format!("wit/{}.wasm", package.file_stem), package.wasm));
    }
    for package in packages::build_all(&root, &release)? {
        files.push((package.path, package.bytes));
    }
    let records: Vec<FileRecord> = files
        .iter()
        .map(|(path, bytes)| FileRecord {
            path: path.clone(),
            sha256: sha256_hex(bytes),
            bytes: bytes.len(),
        })
        .collect();
    let record = ReleaseRecord {
        name: &release.name,
        version: &release.version,
        world: release.world(),
        revision: release.source.revision(),
        dirty: release.source.is_dirty(),
        changes: &release.source.changes,
        created: release.created().to_rfc3339(),
        files: records,
    };
    let mut json = serde_json::to_vec_pretty(&record).context("encoding release.json")?;
    json.push(b'\n');
    files.push((RELEASE_JSON.to_string(), json));
    let mut sums: Vec<String> = files
        .iter()
        .map(|(path, bytes)| format!("{}  {path}\n", sha256_hex(bytes)))
        .collect();
    sums.sort_by(|a, b| a[66..].cmp(&b[66..]));
    files.push((SHA256SUMS.to_string(), sums.concat().into_bytes()));

    write_whole(&out, &files)?;
    report(&out, &release, &files);
    Ok(())
}

/// Refuses an `out` that is a file, or a non-empty folder that is not exactly an earlier
/// `dist`'s: its `release.json` names this component and lists every file in it. Replacing
/// anything else would delete someone's files.
fn check_replaceable(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(anyhow!("{} exists and is not a folder", out.display()));
    }
    let present = files_under(out)?;
    if present.is_empty() || is_earlier_dist(out, &present) {
        Ok(())
    } else {
        Err(anyhow!(
            "{} holds files that `cargo xtask dist` did not write; choose another --out or \
             empty it",
            out.display()
        ))
    }
}

/// True when `present` (the files under `out`) are exactly what its `release.json` lists, plus
/// that file and `SHA256SUMS`, and the release is this component's.
fn is_earlier_dist(out: &Path, present: &[String]) -> bool {
    let Ok(text) = fs::read(out.join(RELEASE_JSON)) else {
        return false;
    };
    let Ok(record) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return false;
    };
    if record["name"] != "empiriolabs:happyhorse" {
        return false;
    }
    let Some(files) = record["files"].as_array() else {
        return false;
    };
    let mut listed: Vec<String> = files
        .iter()
        .filter_map(|f| f["path"].as_str().map(str::to_string))
        .chain([RELEASE_JSON.to_string(), SHA256SUMS.to_string()])
        .collect();
    listed.sort();
    listed == present
}

/// Every file under `dir`, relative, with `/` separators, sorted; folders are walked, not
/// listed.
fn files_under(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in fs::read_dir(&next).with_context(|| format!("reading {}", next.display()))? {
            let path = entry
                .with_context(|| format!("reading {}", next.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Writes `files` into a staging folder beside `out`, then puts it in `out`'s place (the old
/// one moved aside first, deleted last): a failure part-way leaves the previous release.
fn write_whole(out: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    let name = out
        .file_name()
        .with_context(|| format!("{} names no folder", out.display()))?
        .to_string_lossy();
    let staging = out.with_file_name(format!(".{name}.partial"));
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .with_context(|| format!("removing the leftover {}", staging.display()))?;
    }
    for (path, bytes) in files {
        let file = staging.join(path);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&file, bytes).with_context(|| format!("writing {}", file.display()))?;
    }
    let previous = out.with_file_name(format!(".{name}.previous"));
    if previous.exists() {
        fs::remove_dir_all(&previous)
            .with_context(|| format!("removing the leftover {}", previous.display()))?;
    }
    if out.exists() {
        fs::rename(out, &previous)
            .with_context(|| format!("moving the previous release aside from {}", out.display()))?;
    }
    if let Err(error) = fs::rename(&staging, out) {
        // Put the previous release back; the new one stays in the staging folder.
        if previous.exists() {
            let _ = fs::rename(&previous, out);
        }
        return Err(error).with_context(|| format!("moving the release to {}", out.display()));
    }
    if previous.exists() {
        fs::remove_dir_all(&previous)
            .with_context(|| format!("removing the previous release {}", previous.display()))?;
    }
    Ok(())
}

fn report(out: &Path, release: &Release, files: &[(String, Vec<u8>)]) {
    println!(
        "{} {} (component {}) in {}",
        release.name,
        release.version,
        release.component_digest(),
        out.display()
    );
    for (path, bytes) in files {
        println!("  {path:<40} {:>9} B", bytes.len());
    }
    if release.source.is_dirty() {
        let shown: Vec<&str> = release
            .source
            .changes
            .iter()
            .take(5)
            .map(String::as_str)
            .collect();
        eprintln!(
            "warning: the tree differs from commit {} ({} change(s): {}{}); release.json says \
             `\"dirty\": true` and the revision `{}`. Commit, then run again for a release.",
            release.source.commit,
            release.source.changes.len(),
            shown.join(", "),
            if release.source.changes.len() > shown.len() {
                ", …"
            } else {
                ""
            },
            release.source.revision(),
        );
    } else {
        println!("  from commit {} (clean tree)", release.source.commit);
    }
}
