//! Downloading output videos: streamed to disk with bounded memory, written to a temporary
//! file and renamed into place, so a crash never leaves a half file under the final name.

use crate::policy::Origin;
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Largest file accepted (a 15 s 1080p clip is tens of MB).
pub const MAX_DOWNLOAD_BYTES: u64 = 2 << 30;

/// A file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where it is.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// Which output URLs the host will fetch. The URLs come from the provider through the
/// plugin, so neither is trusted to point somewhere harmless: plain-HTTP and private or
/// link-local addresses are refused unless they are the configured API origin itself (the
/// local emulator serves its outputs from there).
#[derive(Debug, Clone)]
pub struct DownloadPolicy {
    /// The API origin, always admitted.
    pub api_origin: Origin,
}

impl DownloadPolicy {
    /// Check `url` before any connection is made.
    pub fn check(&self, url: &str) -> Result<()> {
        let origin = Origin::from_url(url)?;
        if origin == self.api_origin {
            return Ok(());
        }
        if origin.scheme != "https" {
            bail!("refusing to download {origin}: only https outputs are fetched");
        }
        if let Ok(ip) = origin.host.trim_matches(['[', ']']).parse::<IpAddr>() {
            let internal = match ip {
                IpAddr::V4(v4) => {
                    v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()
                }
                IpAddr::V6(v6) => {
                    v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00
                }
            };
            if internal {
                bail!("refusing to download from internal address {origin}");
            }
        }
        Ok(())
    }
}

/// Stream `url` into `dest`, through `dest` + `.part`.
pub async fn download(client: &reqwest::Client, url: &str, dest: &Path) -> Result<Downloaded> {
    let mut response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("requesting {}", redact_query(url)))?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "downloading {} failed with HTTP {status}",
            redact_query(url)
        );
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOWNLOAD_BYTES)
    {
        bail!("the output is larger than {MAX_DOWNLOAD_BYTES} bytes");
    }
    if let Some(dir) = dest.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let part = dest.with_extension("part");
    let mut file = tokio::fs::File::create(&part)
        .await
        .with_context(|| format!("creating {}", part.display()))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await.context("reading the output")? {
        bytes += chunk.len() as u64;
        if bytes > MAX_DOWNLOAD_BYTES {
            drop(file);
            let _ = tokio::fs::remove_file(&part).await;
            bail!("the output is larger than {MAX_DOWNLOAD_BYTES} bytes");
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await?;
    }
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&part, dest).await?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Downloaded {
        path: dest.to_path_buf(),
        bytes,
        sha256,
    })
}

/// A URL for logs and errors: signed output URLs carry their signature in the query.
pub fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_internal_and_plain_http_outputs() {
        let p = DownloadPolicy {
            api_origin: Origin::from_url("http://127.0.0.1:4000").unwrap(),
        };
        assert!(
            p.check("http://127.0.0.1:4000/files/j/output.mp4?sig=1")
                .is_ok()
        );
        assert!(p.check("https://cdn.example.com/x.mp4").is_ok());
        for bad in [
            "http://cdn.example.com/x.mp4",
            "https://169.254.169.254/latest",
            "https://10.0.0.1/x",
            "https://127.0.0.1:4001/x",
            "file:///etc/passwd",
        ] {
            assert!(p.check(bad).is_err(), "{bad}");
        }
    }
}
