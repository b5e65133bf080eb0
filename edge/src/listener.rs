//! `serve`: the accept loop every agent's HTTP listener runs. Unlike `axum::serve` it
//! bounds how long a request head may take (`header_read_timeout_ms`), how long a
//! connection may sit idle (`idle_timeout_secs`), and how many connections are open
//! (`max_connections`, `max_connections_per_address`). socket.io rides the same listener,
//! so its polling requests and websockets count against the same caps; an upgraded
//! websocket keeps its slot until its socket closes.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use crate::config::EdgeConfig;
use crate::connection_caps::{ConnectionCaps, ConnectionSlot};
use crate::events::EdgeEvents;

/// The two ends of the connection a request came on, put in every request's extensions
/// (the Host check needs the address the client dialled).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionAddrs {
    /// This server's end.
    pub local: SocketAddr,
    /// The client's end.
    pub peer: SocketAddr,
}

/// The accept loop stopped.
#[derive(Debug, thiserror::Error)]
#[error("http server stopped: {0}")]
pub struct ServeError(#[from] io::Error);

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets open requests
/// finish (graceful: keep-alive connections close after their current request).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &EdgeConfig,
    events: Arc<EdgeEvents>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let caps = ConnectionCaps::new(
        config.max_connections,
        config.max_connections_per_address,
        events.clone(),
    );
    let idle = Duration::from_secs(config.idle_timeout_secs.max(1));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(config.header_read_timeout_ms.max(1)));
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: the process is out of descriptors for a moment;
                    // pausing beats a hot loop, and the caps keep this rare.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = caps.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        let local = match stream.local_addr() {
            Ok(l) => l,
            Err(_) => continue,
        };
        let addrs = ConnectionAddrs { local, peer };
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(TrackedStream {
            inner: stream,
            activity: activity.clone(),
            _slot: slot,
        });
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(addrs);
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move { Ok::<_, Infallible>(router.call(req).await.unwrap_or_else(|e| match e {})) }
        });
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let events = events.clone();
        tracker.spawn(async move {
            let conn = builder.serve_connection_with_upgrades(io, service);
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = activity.idle_for(idle) => {
                    EdgeEvents::bump(&events.closed_idle);
                    tracing::debug!(%peer, "closing an idle HTTP connection");
                    return;
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                EdgeEvents::bump(&events.connection_errors);
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// When a connection last moved a byte, as milliseconds since it opened.
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Resolves once no byte has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.last();
            tokio::time::sleep_until(last + idle).await;
            if self.last() <= last {
                return;
            }
        }
    }
}

/// A client socket that records its traffic and holds its place under the caps until it
/// is dropped (after an upgrade, too: the websocket owns it then).
struct TrackedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
    _slot: ConnectionSlot,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_for_waits_out_activity() {
        let a = Arc::new(Activity::new());
        let watch = {
            let a = a.clone();
            tokio::spawn(async move { a.idle_for(Duration::from_secs(60)).await })
        };
        tokio::time::sleep(Duration::from_secs(50)).await;
        a.touch();
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert!(!watch.is_finished(), "touched 50 s ago: not idle yet");
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(watch.is_finished());
    }
}
