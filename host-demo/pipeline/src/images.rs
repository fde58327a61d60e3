//! Local reference images, and the one assumption the pipeline makes about uploads.
//!
//! The provider documents `image` as "string (URL or upload)" but publishes no upload
//! format and no upload endpoint. **Assumption:** an upload is a base64 `data:` URL
//! (`data:image/png;base64,…`) in the same `image` field a URL would go in — the common
//! convention of comparable APIs, and what the component's validation and the emulator
//! accept. This module is the only place that turns a file into what is sent: if the provider
//! documents another upload mechanism, only [`load`] changes.
//!
//! Files are checked before anything is sent: they must be PNG, JPEG or WebP (recognised by
//! their first bytes, not their name) and no larger than [`MAX_IMAGE_BYTES`]; a shot's local
//! images together must stay under [`MAX_SHOT_IMAGE_BYTES`]. The bounds are ours, not the
//! provider's (it publishes none): base64 grows a file by a third, and the request is held in
//! the sandboxed plugin's memory (64 MiB by default) several times over while it is
//! validated and encoded — measured, 7 MiB of images in one request fit, 8 MiB do not.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Largest local image accepted, bytes.
pub const MAX_IMAGE_BYTES: u64 = 4 << 20;

/// Largest total of one shot's local images, bytes: with a margin under what a submit through
/// a 64 MiB plugin holds.
pub const MAX_SHOT_IMAGE_BYTES: u64 = 5 << 20;

/// A local image, read, checked and encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    /// The media type recognised from the content (`image/png`, `image/jpeg`, `image/webp`).
    pub media_type: &'static str,
    /// Size of the file, bytes.
    pub bytes: u64,
    /// SHA-256 of the file, hex: identifies it in the journal and the manifest instead of the
    /// (large) data URL.
    pub sha256: String,
    /// What is sent in the request's `image` field.
    pub data_url: String,
}

/// Whether a storyboard's image entry names a remote or inline image (sent as written) rather
/// than a local file.
pub fn is_url(entry: &str) -> bool {
    let lower = entry.get(..8).unwrap_or(entry).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("data:")
}

/// The scheme of a URL that is not one a request carries (`ftp://…`, `file://…`), so it is
/// never read as a local path named `ftp:`.
fn other_scheme(entry: &str) -> Option<&str> {
    let (scheme, _) = entry.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then_some(scheme)
}

/// Read `path`, check it, and encode it as a data URL. The error is a sentence for a person.
/// The file is opened once and read with a cap, so a file that grows (or a special file that
/// claims a small size) between the check and the read is still bounded.
pub fn load(path: &Path) -> Result<LocalImage, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    let data = read_capped(file, MAX_IMAGE_BYTES).map_err(cannot)?;
    let Some(data) = data else {
        return Err(format!(
            "{} is larger than {} MiB; local images may be at most that (host a larger one and give its https:// URL)",
            path.display(),
            MAX_IMAGE_BYTES >> 20
        ));
    };
    let media_type = sniff(&data).ok_or_else(|| {
        format!(
            "{} is not a PNG, JPEG or WebP image (judged by its content, not its name)",
            path.display()
        )
    })?;
    let sha256 = format!("{:x}", Sha256::digest(&data));
    let data_url = format!(
        "data:{media_type};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&data)
    );
    Ok(LocalImage {
        media_type,
        bytes: data.len() as u64,
        sha256,
        data_url,
    })
}

/// Everything `reader` holds, or `None` when that is more than `cap` bytes (never reading
/// more than one byte past it).
fn read_capped(reader: impl Read, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    reader.take(cap.saturating_add(1)).read_to_end(&mut data)?;
    Ok((data.len() as u64 <= cap).then_some(data))
}

/// One image entry (a storyboard's `images`, `generate --image`) as the request carries it:
/// a URL as written, or a local file (relative to `base`) loaded by `load`. Also returns
/// the local file's size (0 for a URL), for [`check_shot_total`].
pub fn request_image(base: &Path, entry: &str) -> Result<(String, u64), String> {
    if is_url(entry) {
        return Ok((entry.to_string(), 0));
    }
    if let Some(scheme) = other_scheme(entry) {
        return Err(format!(
            "{entry:?} is a {scheme}: URL, which the provider cannot fetch: give an https:// URL, or a local PNG, JPEG or WebP file"
        ));
    }
    let image = load(&base.join(entry))?;
    Ok((image.data_url, image.bytes))
}

/// Refuse a request whose local images together exceed `MAX_SHOT_IMAGE_BYTES`.
pub fn check_shot_total(local_bytes: u64) -> Result<(), String> {
    if local_bytes > MAX_SHOT_IMAGE_BYTES {
        return Err(format!(
            "the local images total {local_bytes} bytes; at most {} MiB per request are sent inline (host some and give their https:// URLs)",
            MAX_SHOT_IMAGE_BYTES >> 20
        ));
    }
    Ok(())
}

/// The media type of an image by its signature.
fn sniff(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_of_another_scheme_is_named_never_read_as_a_path() {
        for entry in [
            "ftp://example.com/a.png",
            "file:///etc/passwd",
            "s3://bucket/a.png",
        ] {
            let error = request_image(Path::new("."), entry).unwrap_err();
            assert!(
                error.contains("https://") && !error.contains("cannot read"),
                "{error}"
            );
        }
        // A relative path is still a path.
        let error = request_image(Path::new("."), "no-such.png").unwrap_err();
        assert!(error.contains("cannot read"), "{error}");
    }

    #[test]
    fn recognises_images_by_content() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn urls_pass_through_and_paths_do_not() {
        assert!(is_url("https://x.example/a.png"));
        assert!(is_url("HTTP://x.example/a.png"));
        assert!(is_url("data:image/png;base64,AAAA"));
        assert!(!is_url("refs/a.png"));
        assert!(!is_url("/abs/https.png"));
        assert!(!is_url("é"));
    }

    #[test]
    fn files_are_checked_and_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a.png");
        std::fs::write(&png, b"\x89PNG\r\n\x1a\n0123").unwrap();
        let image = load(&png).unwrap();
        assert_eq!(image.media_type, "image/png");
        assert_eq!(image.bytes, 12);
        assert!(
            image
                .data_url
                .starts_with("data:image/png;base64,iVBORw0KGgo")
        );

        let text = dir.path().join("b.png");
        std::fs::write(&text, b"not an image").unwrap();
        assert!(load(&text).unwrap_err().contains("not a PNG"));

        let big = dir.path().join("c.png");
        std::fs::write(&big, vec![0u8; MAX_IMAGE_BYTES as usize + 1]).unwrap();
        assert!(load(&big).unwrap_err().contains("at most"));
        assert!(load(&dir.path().join("missing.png")).is_err());
    }

    #[test]
    fn reading_stops_one_byte_past_the_cap() {
        // An endless source (as a file growing under the reader would be) ends the read.
        let endless = std::io::repeat(7);
        assert_eq!(read_capped(endless, 1 << 20).unwrap(), None);
        assert_eq!(read_capped(&b"abc"[..], 3).unwrap(), Some(b"abc".to_vec()));
    }

    #[test]
    fn request_images_are_urls_or_inlined_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"\x89PNG\r\n\x1a\n0123").unwrap();
        let (url, bytes) = request_image(dir.path(), "a.png").unwrap();
        assert!(url.starts_with("data:image/png;base64,"));
        assert_eq!(bytes, 12);
        assert_eq!(
            request_image(dir.path(), "https://x.example/a.png").unwrap(),
            ("https://x.example/a.png".to_string(), 0)
        );
        assert!(check_shot_total(MAX_SHOT_IMAGE_BYTES + 1).is_err());
    }
}
