//! The allow-list's unit: a scheme, host and port, normalized in one place so an origin
//! from a configured URL and one from a plugin's request compare equal.

use anyhow::{Context, Result, bail};

/// A scheme, host and port: what one allow-list entry admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal, lowercase; an IPv6 literal without its brackets (`::1`).
    pub host: String,
    /// Port (the scheme's default when the URL names none).
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute `http(s)` URL.
    pub fn from_url(url: &str) -> Result<Origin> {
        let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
        let scheme = parsed.scheme().to_string();
        if scheme != "http" && scheme != "https" {
            bail!("{url:?} is not an http(s) URL");
        }
        let host = parsed
            .host_str()
            .with_context(|| format!("{url:?} has no host"))?;
        let port = parsed
            .port_or_known_default()
            .with_context(|| format!("{url:?} has no port"))?;
        Ok(Origin::new(scheme, host, port))
    }

    /// The one place a host is normalized, so an origin from a configured URL and one from
    /// a request's URI compare equal: lowercase, and an IPv6 literal without its brackets
    /// (`url` keeps them in `http://[::1]:8080`, `http::Uri` keeps them too, and each side
    /// used to strip them or not on its own).
    /// An IPv6 literal is also written in its canonical form: `url` compresses it, a
    /// guest's URI may not.
    fn new(scheme: String, host: &str, port: u16) -> Origin {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let host = match bare.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => bare.to_ascii_lowercase(),
        };
        Origin { scheme, host, port }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// The origin a request will connect to.
pub(crate) fn origin_of(uri: &http::Uri) -> Option<Origin> {
    let host = uri.host()?;
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    Some(Origin::new(
        scheme,
        host,
        uri.port_u16().unwrap_or(default_port),
    ))
}
