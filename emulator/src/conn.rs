//! The emulator's connections: counted, unbuffered, and each with a switch that resets it.
//!
//! A handler cannot reach the TCP stream its request came on, yet the classic unknown-outcome
//! case needs exactly that: read the request, do the work (create the job), then drop the
//! connection without a word. [`Listener`] hands every connection a [`ResetSwitch`], which
//! reaches handlers as `ConnectInfo<ConnectionHandle>`; once a handler pulls it, the
//! connection's next write fails and the socket is closed with `SO_LINGER` 0, so the client
//! sees a reset (RST) instead of an answer.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Pulled by a handler to reset the connection its request arrived on.
#[derive(Debug, Default)]
pub(crate) struct ResetSwitch(AtomicBool);

impl ResetSwitch {
    /// The connection's next read or write fails and it is closed with a reset.
    pub fn pull(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn pulled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a handler knows of its connection (axum's `ConnectInfo`).
#[derive(Clone, Debug)]
pub(crate) struct ConnectionHandle {
    /// The switch that resets this connection.
    pub reset: Arc<ResetSwitch>,
}

impl Connected<IncomingStream<'_, Listener>> for ConnectionHandle {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Accepts TCP connections, counting them, and arms each with a [`ResetSwitch`].
pub(crate) struct Listener {
    pub inner: TcpListener,
    pub accepted: Arc<AtomicUsize>,
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = ConnectionHandle;

    async fn accept(&mut self) -> (Connection, ConnectionHandle) {
        loop {
            match self.inner.accept().await {
                Ok((tcp, _)) => {
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                    // Answers are small and written whole; don't let Nagle hold them back.
                    let _ = tcp.set_nodelay(true);
                    let reset = Arc::new(ResetSwitch::default());
                    let handle = ConnectionHandle {
                        reset: reset.clone(),
                    };
                    return (Connection { tcp, reset }, handle);
                }
                // Out of file descriptors and the like: as axum's own listener, wait and retry.
                Err(error) => {
                    tracing::warn!(%error, "emulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<ConnectionHandle> {
        // axum asks only for logging; the handle of the listener itself resets nothing.
        let _: SocketAddr = self.inner.local_addr()?;
        Ok(ConnectionHandle {
            reset: Arc::default(),
        })
    }
}

/// One accepted connection; fails every operation once its switch is pulled.
pub(crate) struct Connection {
    tcp: TcpStream,
    reset: Arc<ResetSwitch>,
}

impl Connection {
    fn check(&self) -> io::Result<()> {
        if !self.reset.pulled() {
            return Ok(());
        }
        // Linger 0: closing the socket sends RST, not an orderly FIN (and never blocks).
        let _ = self.tcp.set_zero_linger();
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "reset by an injected fault",
        ))
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}
