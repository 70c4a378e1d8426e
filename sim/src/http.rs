//! Serving an axum router on a TCP listener, over TLS (the cloud services) or cleartext (admin).
//!
//! Hand-rolled rather than `axum::serve` because the cloud side needs rustls with ALPN (h2 and
//! HTTP/1.1) and both sides need per-connection graceful shutdown tied to the simulator's signal.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::shutdown::Shutdown;

/// A client that has not finished the TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an open connection may finish in-flight requests after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Accepts connections until shutdown, then waits for the open ones to drain.
/// Connection tasks live in a `JoinSet`, so aborting this task aborts them too.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: Shutdown,
    name: &'static str,
) {
    serve_until(
        listener,
        tls,
        router,
        shutdown,
        std::future::pending(),
        name,
    )
    .await;
}

/// As [`serve`], but also stops when `stop` resolves; then the listener is closed and every open
/// connection is dropped at once (no draining), as a host that fails would. Returns true when `stop`
/// ended it, false on shutdown.
pub(crate) async fn serve_until(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: Shutdown,
    stop: impl Future<Output = ()>,
    name: &'static str,
) -> bool {
    let mut conns = JoinSet::new();
    tokio::pin!(stop);
    let mut stopped = false;
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.wait() => break,
            () = &mut stop => {
                stopped = true;
                break;
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = conns.join_next() => continue,
            res = listener.accept() => match res {
                Ok(c) => c,
                Err(e) => {
                    // Usually EMFILE; back off instead of spinning on the error. (A listener shut down
                    // by `stop`, the alt host refusing, fails here too until `stop` is seen.)
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = &mut stop => {
                            stopped = true;
                            break;
                        }
                        () = shutdown.wait() => break,
                    }
                }
            },
        };
        // Latency matters more than throughput for small JSON exchanges.
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            match tls {
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                    let stream = tokio::select! {
                        () = shutdown.wait() => return,
                        res = handshake => match res {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(listener = name, %peer, "TLS handshake timed out");
                                return;
                            }
                        },
                    };
                    serve_connection(stream, router, &shutdown, peer, name).await;
                }
                None => serve_connection(tcp, router, &shutdown, peer, name).await,
            }
        });
    }
    drop(listener);
    if stopped {
        conns.abort_all();
    }
    while conns.join_next().await.is_some() {}
    tracing::debug!(listener = name, stopped, "stopped");
    stopped
}

async fn serve_connection<I>(
    io: I,
    router: Router,
    shutdown: &Shutdown,
    peer: SocketAddr,
    name: &'static str,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    // With upgrades, so `GET /mercury` can become a WebSocket.
    let conn =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(router));
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(listener = name, %peer, error = %e, "connection ended with an error");
            }
        }
        () = shutdown.wait() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
        }
    }
}
