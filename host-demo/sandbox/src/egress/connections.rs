//! Keep-alive connections for the requests the policy admits, shared by every plugin of a
//! [`Runtime`](crate::runtime::Runtime).
//!
//! Wasmtime's `default_send_request` opens a new TCP connection (and, for `https`, does a
//! full TLS handshake with a freshly built root store) for every request: on loopback that
//! doubles the cost of a submit + poll, and against a real API it adds one to two round
//! trips to each poll. [`Connections`] sends the same requests over a pool of HTTP/1.1
//! connections instead, keyed by origin, with the same error codes the default sender gives
//! the guest — which matters, because the guest decides from them whether a refused submit
//! may have reached the server (and been paid for).
//!
//! Reuse never makes a submit's fate unknown where a fresh connection would not have:
//! - only idempotent requests (the polls) ride reused connections. A server may close an
//!   idle connection at any moment (its keep-alive timeout, a restart, a drain), and a
//!   request written into one that is already closing fails with no answer — for a `POST`
//!   that is "the job may exist", so every non-idempotent request (the submit) opens a
//!   connection of its own. A test kills the server under a pooled connection to prove it;
//! - a connection is reused only while it has been idle for less than the idle timeout
//!   (default [`DEFAULT_IDLE_TIMEOUT`], below the shortest keep-alive common servers use,
//!   Node.js's 5 s), so a poll rarely races a server closing an idle connection, and a
//!   failed poll is retried by the guest anyway;
//! - a request is re-sent on a new connection only when hyper knows it was never written
//!   (`retry_canceled_requests`); once written, a failure is reported, never retried.

use anyhow::Result;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// How long an unused connection is kept for reuse.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// How long opening a connection (TCP and TLS) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A pool of keep-alive connections. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Connections {
    /// For idempotent requests: connections are kept and reused.
    pooled: Client<Connector, WasiBody>,
    /// For the rest: a new connection each, closed after its response.
    fresh: Client<Connector, WasiBody>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").finish_non_exhaustive()
    }
}

impl Connections {
    /// A pool that keeps a connection for `idle_timeout` after its last response and gives
    /// up opening one after `connect_timeout`.
    pub fn new(idle_timeout: Duration, connect_timeout: Duration) -> Result<Connections> {
        let connector = Connector {
            tls: Arc::new(tls_config()?),
            connect_timeout,
        };
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(idle_timeout)
            // Only a request hyper never wrote is re-sent (see the module comment).
            .retry_canceled_requests(true);
        let pooled = builder.build(connector.clone());
        let fresh = builder.pool_max_idle_per_host(0).build(connector);
        Ok(Connections { pooled, fresh })
    }

    /// Send `request` (absolute URI, already admitted by the policy) and return its
    /// response, with failures as the WASI-HTTP error codes the default sender would give.
    ///
    /// `options.first_byte_timeout` and `between_bytes_timeout` are honoured as Wasmtime's
    /// default sender does (a missing one is 600 s there too; the policy always sets both);
    /// the connect timeout is the pool's (the connection may be shared).
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(UNSET_TIMEOUT);
        let between_bytes = options
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(UNSET_TIMEOUT);
        let client = if request.method().is_idempotent() {
            &self.pooled
        } else {
            &self.fresh
        };
        let response = tokio::time::timeout(first_byte, client.request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(|e| wasi_error(&e))?;
        Ok(response.map(|body| {
            let body = body.map_err(|e| {
                if e.is_timeout() {
                    Error::HttpResponseTimeout
                } else {
                    Error::Hyper(e)
                }
            });
            BetweenBytes::new(body, between_bytes).boxed_unsync()
        }))
    }
}

/// What Wasmtime's default sender uses for a timeout the request options leave unset.
const UNSET_TIMEOUT: Duration = Duration::from_secs(600);

/// A response body that fails with `ConnectionReadTimeout` (as Wasmtime's default sender's
/// does) when no frame arrives for `limit`: a server that sends its head and then goes
/// silent, or stops halfway, cannot hold the reader — and the plugin's call — open.
struct BetweenBytes<B> {
    inner: B,
    timer: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl<B> BetweenBytes<B> {
    fn new(inner: B, limit: Duration) -> Self {
        BetweenBytes {
            inner,
            timer: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl<B> hyper::body::Body for BetweenBytes<B>
where
    B: hyper::body::Body<Error = Error> + Unpin,
{
    type Data = B::Data;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.limit;
                this.timer.as_mut().reset(next);
                Poll::Ready(frame)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The rustls configuration shared by every `https` connection: Mozilla's roots (as
/// Wasmtime's default sender uses), built once instead of per request.
fn tls_config() -> Result<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Why a connection could not be opened, kept typed so the guest gets the same code as from
/// Wasmtime's default sender (a refused connection means the request was never sent).
#[derive(Debug)]
enum ConnectFailure {
    Timeout,
    Tcp(io::Error),
    Tls(io::Error),
    BadUri(&'static str),
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectFailure::Timeout => write!(f, "connection timed out"),
            ConnectFailure::Tcp(e) => write!(f, "connection error: {e}"),
            ConnectFailure::Tls(e) => write!(f, "TLS error: {e}"),
            ConnectFailure::BadUri(why) => write!(f, "unusable URI: {why}"),
        }
    }
}

impl StdError for ConnectFailure {}

impl ConnectFailure {
    fn to_wasi(&self) -> Error {
        // `io::Error` is not `Clone`; its kind and message are what the conversion reads.
        let copy = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        match self {
            ConnectFailure::Timeout => Error::ConnectionTimeout,
            ConnectFailure::Tcp(e) => Error::Connect(copy(e)),
            ConnectFailure::Tls(e) => Error::Tls(copy(e)),
            ConnectFailure::BadUri(_) => Error::HttpRequestUriInvalid,
        }
    }
}

/// The WASI-HTTP error for a failed request.
fn wasi_error(error: &hyper_util::client::legacy::Error) -> Error {
    let mut cause = error.source();
    while let Some(e) = cause {
        if let Some(failure) = e.downcast_ref::<ConnectFailure>() {
            return failure.to_wasi();
        }
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            return hyper_error(hyper);
        }
        cause = e.source();
    }
    Error::InternalError(Some(error.to_string()))
}

/// What the guest is told about a failure after the connection was open. Every one of these
/// may have happened after the request reached the server, and the guest treats them so.
fn hyper_error(error: &hyper::Error) -> Error {
    // The guest's own body stream failing carries its code through.
    let mut cause = error.source();
    while let Some(e) = cause {
        if let Some(code) =
            e.downcast_ref::<wasmtime_wasi_http::p2::bindings::http::types::ErrorCode>()
        {
            return Error::from(code.clone());
        }
        cause = e.source();
    }
    if error.is_timeout() {
        Error::HttpResponseTimeout
    } else if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        Error::ConnectionTerminated
    } else {
        Error::HttpProtocolError
    }
}

/// Opens plain or TLS connections to an origin, as Wasmtime's default sender does.
#[derive(Clone)]
struct Connector {
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = ConnectFailure;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectFailure>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectFailure>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let timeout = this.connect_timeout;
            tokio::time::timeout(timeout, this.connect(uri))
                .await
                .map_err(|_| ConnectFailure::Timeout)?
                .map(TokioIo::new)
        })
    }
}

impl Connector {
    async fn connect(self, uri: http::Uri) -> Result<Stream, ConnectFailure> {
        let host = uri.host().ok_or(ConnectFailure::BadUri("no host"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(ConnectFailure::BadUri("not http(s)")),
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((bare_host, port))
            .await
            .map_err(ConnectFailure::Tcp)?;
        // Requests are written as headers then body: without this, Nagle's algorithm holds
        // the body back until the headers are acknowledged.
        tcp.set_nodelay(true).map_err(ConnectFailure::Tcp)?;
        if !https {
            return Ok(Stream::Plain(tcp));
        }
        let name = rustls::pki_types::ServerName::try_from(bare_host.to_string())
            .map_err(|_| ConnectFailure::BadUri("not a valid TLS server name"))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls)
            .connect(name, tcp)
            .await
            .map_err(ConnectFailure::Tls)?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// One connection, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
