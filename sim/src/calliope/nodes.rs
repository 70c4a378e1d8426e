//! The node sockets: one task per udp socket and per tcp/xtls listener, one per stream connection.
//! Every answer waits the node's RTT (or 1 ms when misbehaving) in its own timer, so retransmits
//! and other clients are never held up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::stun::frame;
use super::{Calliope, Sockets, Transport};
use crate::shutdown::Shutdown;

/// Longest a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves every node socket until shutdown; one task that owns the node tasks.
pub(crate) fn spawn(
    calliope: Arc<Calliope>,
    sockets: Sockets,
    tls: Arc<ServerConfig>,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut set = JoinSet::new();
        let Sockets { udp, tcp, xtls } = sockets;
        for (c, socket) in udp {
            set.spawn(serve_udp(
                Arc::clone(&calliope),
                c,
                Arc::new(socket),
                shutdown.clone(),
            ));
        }
        for (c, listener) in tcp {
            set.spawn(serve_stream(
                Arc::clone(&calliope),
                c,
                listener,
                None,
                shutdown.clone(),
            ));
        }
        let acceptor = TlsAcceptor::from(tls);
        for (c, listener) in xtls {
            set.spawn(serve_stream(
                Arc::clone(&calliope),
                c,
                listener,
                Some(acceptor.clone()),
                shutdown.clone(),
            ));
        }
        drop(shutdown);
        while set.join_next().await.is_some() {}
    })
}

async fn serve_udp(calliope: Arc<Calliope>, c: usize, socket: Arc<UdpSocket>, shutdown: Shutdown) {
    let mut buf = vec![0_u8; 2048];
    loop {
        let (len, from) = tokio::select! {
            () = shutdown.wait() => return,
            res = socket.recv_from(&mut buf) => match res {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "calliope udp receive error");
                    continue;
                }
            },
        };
        let Some((delay, answer)) = calliope.answer(c, Transport::Udp, &buf[..len], from) else {
            continue;
        };
        let socket = Arc::clone(&socket);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.wait() => {}
                () = tokio::time::sleep(delay) => {
                    if let Err(e) = socket.send_to(&answer, from).await {
                        tracing::debug!(%from, error = %e, "calliope udp answer failed");
                    }
                }
            }
        });
    }
}

async fn serve_stream(
    calliope: Arc<Calliope>,
    c: usize,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: Shutdown,
) {
    let transport = if tls.is_some() {
        Transport::Xtls
    } else {
        Transport::Tcp
    };
    loop {
        let (tcp, from) = tokio::select! {
            () = shutdown.wait() => return,
            res = listener.accept() => match res {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "calliope accept error");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let calliope = Arc::clone(&calliope);
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let served = async {
                match tls {
                    None => serve_conn(&calliope, c, transport, tcp, from).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => {
                                serve_conn(&calliope, c, transport, stream, from).await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%from, error = %e, "calliope xtls handshake failed");
                            }
                            Err(_) => tracing::debug!(%from, "calliope xtls handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                () = shutdown.wait() => {}
                () = served => {}
            }
        });
    }
}

/// Reads RFC 4571 frames until EOF; answers each Binding request after its delay, in order. A
/// silent cluster reads and never writes.
async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(
    calliope: &Calliope,
    c: usize,
    transport: Transport,
    mut stream: S,
    from: SocketAddr,
) {
    loop {
        let mut len = [0_u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut msg = vec![0_u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut msg).await.is_err() {
            return;
        }
        let Some((delay, answer)) = calliope.answer(c, transport, &msg, from) else {
            continue;
        };
        tokio::time::sleep(delay).await;
        if stream.write_all(&frame(&answer)).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}
