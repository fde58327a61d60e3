//! Downloading output videos: streamed to disk with bounded memory, written to a temporary
//! file and renamed into place, so a crash never leaves a half file under the final name.
//!
//! The URLs come from the provider through the plugin, so neither is trusted to point
//! somewhere harmless ([`DownloadPolicy`]), and the file's name is never taken from them: the
//! caller chooses the stem, and the extension follows the content type, which must be a video.

use anyhow::{Context, Result, bail};
use happyhorse_sandbox::Origin;
use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Largest file accepted (a 15 s 1080p clip is tens of MB).
pub const MAX_DOWNLOAD_BYTES: u64 = 2 << 30;
/// How long opening a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a transfer may stall between two reads. A stalled download fails (and the
/// pipeline retries with fresh URLs) instead of hanging; a whole-request timeout would cut
/// off large clips on slow links.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where it is.
    pub path: PathBuf,
    /// Its file name (inside the folder it was downloaded into).
    pub file_name: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// IPv4 ranges no output is fetched from: the IANA IPv4 special-purpose address registry
/// (this network, private, shared/CGNAT, loopback, link-local, protocol assignments,
/// documentation, benchmarking, 6to4 relay, AS112), multicast and the reserved block.
const BLOCKED_V4: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.31.196.0/24",
    "192.52.193.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "192.175.48.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// IPv6 ranges no output is fetched from: the IANA IPv6 special-purpose address registry
/// (unspecified, loopback, IPv4-compatible, discard, IETF assignments including Teredo and
/// ORCHID, documentation, SRv6, unique-local, link-local, site-local, local-use NAT64) and
/// multicast. IPv4-mapped, NAT64 well-known and 6to4 addresses are judged by the IPv4
/// address they carry (see [`blocked_ip`]).
const BLOCKED_V6: &[&str] = &[
    "::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

fn in_v4_ranges(ip: Ipv4Addr) -> bool {
    BLOCKED_V4.iter().any(|net| {
        net.parse::<Ipv4Net>()
            .expect("a valid range in the table")
            .contains(&ip)
    })
}

/// The IPv4 address an IPv6 address stands for, when it has one: IPv4-mapped
/// (`::ffff:a.b.c.d`), the NAT64 well-known prefix (`64:ff9b::a.b.c.d`) and 6to4
/// (`2002:AABB:CCDD::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(v4(s[1], s[2]));
    }
    None
}

/// Whether `ip` is an internal or special-purpose address no output may come from.
pub fn blocked_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => in_v4_ranges(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return in_v4_ranges(v4);
            }
            BLOCKED_V6.iter().any(|net| {
                net.parse::<Ipv6Net>()
                    .expect("a valid range in the table")
                    .contains(&v6)
            })
        }
    }
}

/// Names that always mean this machine (RFC 6761), refused before any lookup.
fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Which output URLs the host will fetch: `https` only, never from an internal or
/// special-purpose address — checked on the URL's literal here, and on every address a name
/// resolves to by the client's resolver ([`client`]) — unless it is the configured API
/// origin itself (the local emulator serves its outputs from there).
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
        let parsed = url::Url::parse(url)?;
        let internal = match parsed.host() {
            Some(url::Host::Ipv4(v4)) => blocked_ip(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => blocked_ip(IpAddr::V6(v6)),
            Some(url::Host::Domain(name)) => is_local_name(name),
            None => true,
        };
        if internal {
            bail!("refusing to download from internal address {origin}");
        }
        Ok(())
    }
}

/// Resolves names for the download client, refusing any name that resolves to an internal
/// or special-purpose address (a DNS name pointing at `127.0.0.1` or `169.254.169.254`), so
/// the check holds for the address actually connected to. The API origin's own host name is
/// resolved without the check. (IP literals never reach a resolver: [`DownloadPolicy::check`]
/// judges them.)
#[derive(Debug, Clone)]
struct GuardedResolver {
    admitted_host: String,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let admitted = host == self.admitted_host;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !admitted && let Some(bad) = addrs.iter().find(|a| blocked_ip(a.ip())) {
                return Err(format!(
                    "refusing to download from {host}: it resolves to the internal address {}",
                    bad.ip()
                )
                .into());
            }
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client for outputs: no redirects (a redirect would bypass the policy's check),
/// every resolved address checked, connect and read timeouts, and no proxy from the
/// environment (`HTTPS_PROXY`, `ALL_PROXY`): a proxy resolves and connects for the client,
/// so the resolver would judge only the proxy's address and an output on an internal name
/// would be fetched through it (the plugins' requests take no proxy either).
pub fn client(policy: &DownloadPolicy) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver {
            admitted_host: policy.api_origin.host.clone(),
        }))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()?)
}

/// The file extension for an output's content type: only videos are accepted (a missing or
/// generic type is taken as the MP4 the API produces).
fn extension_for(content_type: Option<&str>) -> Result<&'static str> {
    let essence = content_type
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match essence.as_str() {
        "" | "video/mp4" | "application/octet-stream" | "binary/octet-stream" => Ok("mp4"),
        "video/webm" => Ok("webm"),
        "video/quicktime" => Ok("mov"),
        other => bail!(
            "the output is {:?}, not a video; refusing to save it",
            crate::untrusted::shown(other)
        ),
    }
}

/// Check `url` against `policy`, then stream it into `dir` as `<stem>.<ext>` (the extension
/// from the content type), through `<stem>.part`. `stem` is the caller's, never the URL's.
pub async fn download(
    client: &reqwest::Client,
    policy: &DownloadPolicy,
    url: &str,
    dir: &Path,
    stem: &str,
) -> Result<Downloaded> {
    policy.check(url)?;
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
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let file_name = format!("{stem}.{}", extension_for(content_type.as_deref())?);
    let dest = dir.join(&file_name);
    tokio::fs::create_dir_all(dir).await?;
    let part = dir.join(format!("{stem}.part"));
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
    tokio::fs::rename(&part, &dest).await?;
    let sha256 = format!("{:x}", hasher.finalize());
    Ok(Downloaded {
        path: dest,
        file_name,
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn policy(api: &str) -> DownloadPolicy {
        DownloadPolicy {
            api_origin: Origin::from_url(api).unwrap(),
        }
    }

    #[test]
    fn refuses_internal_and_plain_http_outputs() {
        let p = policy("http://127.0.0.1:4000");
        assert!(
            p.check("http://127.0.0.1:4000/files/j/output.mp4?sig=1")
                .is_ok()
        );
        assert!(p.check("https://cdn.example.com/x.mp4").is_ok());
        assert!(p.check("https://8.8.8.8/x.mp4").is_ok());
        assert!(p.check("https://[2606:4700::1111]/x.mp4").is_ok());
        for bad in [
            "http://cdn.example.com/x.mp4",
            "https://169.254.169.254/latest",
            "https://10.0.0.1/x",
            "https://127.0.0.1:4001/x",
            "file:///etc/passwd",
            "https://localhost:4000/x",
            "https://LOCALHOST./x",
            "https://api.localhost/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[::ffff:169.254.169.254]/latest",
            "https://[::ffff:10.1.2.3]/x",
            "https://[fe80::1]/x",
            "https://[fd00::1]/x",
            "https://[::1]/x",
            "https://[::]/x",
            "https://[64:ff9b::a9fe:a9fe]/x",
            "https://[2002:7f00:1::]/x",
            "https://[2001:0:4136:e378::1]/x",
            "https://[ff02::1]/x",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://0.1.2.3/x",
            "https://192.0.2.7/x",
            "https://198.18.0.1/x",
            "https://224.0.0.1/x",
            "https://255.255.255.255/x",
            // Spellings the URL parser turns into 127.0.0.1.
            "https://2130706433/x",
            "https://0x7f.1/x",
        ] {
            assert!(p.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_video_content_types_are_saved_and_they_name_the_extension() {
        assert_eq!(extension_for(Some("video/mp4")).unwrap(), "mp4");
        assert_eq!(
            extension_for(Some("Video/WebM; codecs=vp9")).unwrap(),
            "webm"
        );
        assert_eq!(extension_for(None).unwrap(), "mp4");
        assert!(extension_for(Some("text/html")).is_err());
        assert!(extension_for(Some("application/json")).is_err());
    }

    /// A listener on 127.0.0.1 that counts the connections it accepts.
    async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                // The request first (a GET fits one read), then the answer.
                let mut request = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                    .await;
            }
        });
        (port, accepted)
    }

    #[tokio::test]
    async fn names_and_mapped_forms_of_a_local_listener_reach_nothing() {
        let (port, accepted) = counting_listener().await;
        let p = policy("https://api.example.com");
        let client = client(&p).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for url in [
            format!("https://localhost:{port}/x.mp4"),
            format!("https://[::ffff:127.0.0.1]:{port}/x.mp4"),
            format!("https://[::ffff:7f00:1]:{port}/x.mp4"),
            format!("https://127.0.0.1:{port}/x.mp4"),
        ] {
            assert!(
                download(&client, &p, &url, dir.path(), "out")
                    .await
                    .is_err(),
                "{url}"
            );
            // The client alone, with the policy's check skipped: its resolver refuses
            // the name's addresses before connecting.
            if url.contains("localhost") {
                let err = client.get(&url).send().await.unwrap_err();
                assert!(format!("{err:?}").contains("internal address"), "{err:?}");
                let plain = format!("http://localhost:{port}/x.mp4");
                assert!(client.get(&plain).send().await.is_err());
            }
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "a request got through");
    }

    #[tokio::test]
    async fn the_api_origin_by_name_is_still_reached() {
        let (port, accepted) = counting_listener().await;
        let p = policy(&format!("http://localhost:{port}"));
        let client = client(&p).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = download(
            &client,
            &p,
            &format!("http://localhost:{port}/files/j/output.mp4"),
            dir.path(),
            "clip",
        )
        .await
        .unwrap();
        assert_eq!(file.file_name, "clip.mp4");
        assert_eq!(file.bytes, 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }
}
