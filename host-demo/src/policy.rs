//! What a plugin may reach: an allow-list of origins, enforced at the WASI-HTTP boundary.
//!
//! Every outgoing request from the component passes through
//! [`WasiHttpHooks::send_request`]; a request to an origin that is not on the list is refused
//! with `HttpRequestDenied` before any connection is opened, and logged. The `Host` header
//! cannot be forged around this check: WASI-HTTP forbids guests from setting it, and the
//! connection is made to the URI's authority, which is what is checked.

use anyhow::{Context, Result, bail};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// A scheme, host and port: what one allow-list entry admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal, lowercase.
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
            .with_context(|| format!("{url:?} has no host"))?
            .to_ascii_lowercase();
        let port = parsed
            .port_or_known_default()
            .with_context(|| format!("{url:?} has no port"))?;
        Ok(Origin { scheme, host, port })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// The outbound policy of one plugin instance. Cheap to clone: clones share the counters.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Arc<Vec<Origin>>,
    sent: Arc<AtomicUsize>,
    denied: Arc<AtomicUsize>,
}

impl OutboundPolicy {
    /// Admit exactly these origins (an empty list denies everything).
    pub fn allow(origins: Vec<Origin>) -> Self {
        OutboundPolicy {
            allowed: Arc::new(origins),
            ..Default::default()
        }
    }

    /// The admitted origins.
    pub fn allowed(&self) -> &[Origin] {
        &self.allowed
    }

    /// Requests let through so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Requests refused so far.
    pub fn denied(&self) -> usize {
        self.denied.load(Ordering::Relaxed)
    }

    /// Whether a request to `uri` may be sent.
    pub fn admits(&self, uri: &http::Uri) -> bool {
        let Some(host) = uri.host() else {
            return false;
        };
        let scheme = uri.scheme_str().unwrap_or("https");
        let default_port = if scheme == "http" { 80 } else { 443 };
        let port = uri.port_u16().unwrap_or(default_port);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allowed
            .iter()
            .any(|o| o.scheme == scheme && o.port == port && o.host.eq_ignore_ascii_case(host))
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                ),
                wasmtime_wasi_http::Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> ResponseFuture {
        let uri = request.uri().clone();
        if !self.admits(&uri) {
            self.denied.fetch_add(1, Ordering::Relaxed);
            // Only the origin and path are logged: never headers, which carry the key.
            tracing::warn!(
                method = %request.method(),
                host = uri.host().unwrap_or(""),
                port = uri.port_u16(),
                path = uri.path(),
                "plugin request denied: origin not on the allow-list"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(method = %request.method(), %uri, "plugin request");
        let default = wasmtime_wasi_http::default_hooks();
        default.send_request(request, options, fut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_only_listed_origins() {
        let p = OutboundPolicy::allow(vec![Origin::from_url("http://127.0.0.1:8080/v1").unwrap()]);
        let ok: http::Uri = "http://127.0.0.1:8080/v1/jobs/x".parse().unwrap();
        assert!(p.admits(&ok));
        for bad in [
            "http://127.0.0.1:8081/v1/jobs/x",
            "https://127.0.0.1:8080/",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost:8080/",
            "http://evil.example/",
        ] {
            assert!(!p.admits(&bad.parse().unwrap()), "{bad}");
        }
    }

    #[test]
    fn default_ports_are_explicit() {
        let p = OutboundPolicy::allow(vec![
            Origin::from_url("https://api.empiriolabs.ai").unwrap(),
        ]);
        assert!(p.admits(&"https://API.empiriolabs.ai:443/v1".parse().unwrap()));
        assert!(!p.admits(&"https://api.empiriolabs.ai:8443/v1".parse().unwrap()));
    }
}
