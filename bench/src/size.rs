//! Figure 4: the component's size — the `.wasm` the host embeds (built with the workspace's
//! `[profile.guest]`), where its bytes go, and the same component built with the default
//! `release` profile as the baseline.

use crate::common;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Options of the size figure.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    /// Skip building the baseline with the default `release` profile (about a minute the
    /// first time, then cached under the target directory).
    #[arg(long)]
    pub no_baseline: bool,
}

/// The component's size limit (the 200 KiB target was retired for `serde_json`).
const LIMIT_BYTES: usize = 240 * 1024;

/// Run the figure and print it.
pub fn run(args: Args) -> Result<()> {
    common::heading("4. Component size");
    let wasm = video_gen_artifacts::HAPPYHORSE;
    let parts = breakdown(wasm)?;
    println!(
        "the component the host embeds ([profile.guest]): {} bytes",
        wasm.len()
    );
    println!("{:<58} {:>9} {:>7}", "where the bytes go", "bytes", "share");
    for (name, bytes) in &parts {
        println!(
            "{:<58} {:>9} {:>6.1}%",
            name,
            bytes,
            100.0 * *bytes as f64 / wasm.len() as f64
        );
    }
    if !args.no_baseline {
        match release_baseline() {
            Ok((path, bytes)) => println!(
                "baseline: default `release` profile: {bytes} bytes ({}); the size profile is {:.2}× that",
                path.display(),
                wasm.len() as f64 / bytes as f64
            ),
            Err(e) => println!("baseline: could not build with the release profile: {e:#}"),
        }
    }
    println!(
        "figure: {} bytes = {:.1} KiB (limit ≤ 240 KiB = {LIMIT_BYTES} bytes; the 200 KiB target is retired: {})",
        wasm.len(),
        wasm.len() as f64 / 1024.0,
        common::verdict(wasm.len() <= LIMIT_BYTES)
    );
    println!();
    Ok(())
}

/// Build the component with the default `release` profile into its own target directory.
fn release_baseline() -> Result<(PathBuf, usize)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("bench/ sits in the workspace")?;
    // OUT_DIR of the artifacts crate is <target>/<profile>/build/<x>/out.
    let target = Path::new(video_gen_artifacts::HAPPYHORSE_PATH)
        .ancestors()
        .nth(4)
        .context("the component's path is inside the target directory")?
        .join("bench-size-release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--package",
            "happyhorse-component",
            "--quiet",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()?;
    if !status.success() {
        bail!("cargo build --release for wasm32-wasip2 failed");
    }
    let path = target
        .join("wasm32-wasip2")
        .join("release")
        .join("happyhorse_component.wasm");
    let bytes = std::fs::metadata(&path)?.len() as usize;
    Ok((path, bytes))
}

/// Sizes of the parts of a component binary: each core module's code, data and custom
/// sections, the component's own custom sections, and the type and linking information.
pub fn breakdown(wasm: &[u8]) -> Result<Vec<(String, usize)>> {
    let mut parts: Vec<(String, usize)> = Vec::new();
    let mut type_info = 0;
    let mut core_modules = 0;
    for section in sections(wasm, 8)? {
        match section.id {
            // A core module: broken down further.
            1 => {
                core_modules += 1;
                let module = &wasm[section.start..section.end];
                let mut other = 0;
                for inner in sections(module, 8)? {
                    let size = inner.end - inner.start;
                    match inner.id {
                        10 => parts.push((format!("core module {core_modules}: code"), size)),
                        11 => parts.push((format!("core module {core_modules}: data"), size)),
                        0 => parts.push((
                            format!("core module {core_modules}: custom `{}`", inner.name),
                            size,
                        )),
                        _ => other += size,
                    }
                }
                parts.push((
                    format!("core module {core_modules}: types, imports, exports, tables …"),
                    other,
                ));
            }
            0 => parts.push((
                format!("component custom section `{}`", section.name),
                section.end - section.start,
            )),
            _ => type_info += section.end - section.start,
        }
    }
    parts.push((
        "component types, imports, exports, canonical ABI glue".into(),
        type_info,
    ));
    parts.retain(|(_, bytes)| *bytes > 0);
    Ok(parts)
}

struct Section {
    id: u8,
    name: String,
    start: usize,
    end: usize,
}

/// The sections of a module or component starting at `offset` (after the 8-byte preamble).
fn sections(bytes: &[u8], offset: usize) -> Result<Vec<Section>> {
    let mut out = Vec::new();
    let mut at = offset;
    while at < bytes.len() {
        let id = bytes[at];
        let (size, header) = leb128(&bytes[at + 1..])?;
        let start = at + 1 + header;
        let end = start + size;
        if end > bytes.len() {
            bail!("a section runs past the end of the binary");
        }
        let name = if id == 0 {
            let (len, n) = leb128(&bytes[start..])?;
            String::from_utf8_lossy(&bytes[start + n..start + n + len]).into_owned()
        } else {
            String::new()
        };
        // The section's own header counts toward it, so the parts add up to the file.
        out.push(Section {
            id,
            name,
            start: if id == 1 { start } else { at },
            end,
        });
        at = end;
    }
    Ok(out)
}

fn leb128(bytes: &[u8]) -> Result<(usize, usize)> {
    let mut value = 0usize;
    for (i, byte) in bytes.iter().enumerate().take(5) {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    bail!("bad LEB128")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_account_for_the_whole_component() {
        let wasm = video_gen_artifacts::HAPPYHORSE;
        let parts = breakdown(wasm).unwrap();
        let total: usize = parts.iter().map(|(_, b)| b).sum();
        // Only the preambles (8 bytes each) and the nested modules' section headers are
        // left out.
        assert!(
            total <= wasm.len() && total + 64 > wasm.len(),
            "{total} of {}",
            wasm.len()
        );
        assert!(parts.iter().any(|(name, _)| name == "core module 1: code"));
    }
}
