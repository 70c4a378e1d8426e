//! The local xAPI (wire profile §8, `docs/xapi.md`): JSON-RPC 2.0 over WebSocket at `/ws`,
//! compatible with the `jsxapi` client, and the touch-panel page at `/touch`. Plain `ws://`
//! on loopback listeners only; every other listener is TLS.

pub mod auth;
pub mod commands;
pub mod document;
pub mod http;
pub mod session;
pub mod tree;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::XapiConfig;
use crate::platform::logging::message_id;
use crate::shutdown::Shutdown;
use crate::status::DeviceStatus;
use crate::store::StateDir;
use auth::Authenticator;
use commands::Backends;
use document::Configuration;

pub const CERT_FILE: &str = "xapi-cert.pem";
pub const KEY_FILE: &str = "xapi-key.pem";

/// Everything a session reaches.
#[derive(Debug)]
pub struct XapiContext {
    pub backends: Backends,
    pub status: watch::Sender<DeviceStatus>,
    pub configuration: watch::Sender<Configuration>,
    pub state: StateDir,
    /// `Network[n]`, read once at start.
    pub network: Value,
    pub started: Instant,
    pub auth: Authenticator,
    pub max_sessions: usize,
    pub(crate) sessions: AtomicUsize,
}

impl XapiContext {
    pub fn new(
        backends: Backends,
        status: watch::Sender<DeviceStatus>,
        configuration: watch::Sender<Configuration>,
        state: StateDir,
        started: Instant,
        max_sessions: usize,
    ) -> Self {
        Self {
            backends,
            status,
            configuration,
            auth: Authenticator::new(state.clone()),
            state,
            network: document::network_document(),
            started,
            max_sessions: max_sessions.max(1),
            sessions: AtomicUsize::new(0),
        }
    }
}

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum XapiError {
    /// xAPI: cannot listen on {address}: {source}
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    /// xAPI TLS: {0}
    Tls(String),
}

/// A bound listener and whether it speaks TLS.
struct Listener {
    socket: TcpListener,
    tls: Option<TlsAcceptor>,
    url: String,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("url", &self.url).finish()
    }
}

/// The bound xAPI listeners, ready to serve.
#[derive(Debug)]
pub struct XapiServer {
    listeners: Vec<Listener>,
    ctx: Arc<XapiContext>,
}

impl XapiServer {
    /// Binds every configured listener (TLS for the non-loopback ones).
    pub async fn bind(config: &XapiConfig, ctx: XapiContext) -> Result<Self, XapiError> {
        let needs_tls = config.listen.iter().any(|a| !a.ip().is_loopback());
        let tls = if needs_tls {
            Some(TlsAcceptor::from(Arc::new(server_tls(config, &ctx.state)?)))
        } else {
            None
        };
        let mut listeners = Vec::new();
        for address in &config.listen {
            let socket = TcpListener::bind(address)
                .await
                .map_err(|source| XapiError::Bind {
                    address: *address,
                    source,
                })?;
            let bound = socket.local_addr().map_err(|source| XapiError::Bind {
                address: *address,
                source,
            })?;
            let secure = !address.ip().is_loopback();
            let url = format!("{}://{bound}/ws", if secure { "wss" } else { "ws" });
            listeners.push(Listener {
                socket,
                tls: if secure { tls.clone() } else { None },
                url,
            });
        }
        let urls: Vec<String> = listeners.iter().map(|l| l.url.clone()).collect();
        ctx.status.send_modify(|s| s.xapi.listeners = urls);
        Ok(Self {
            listeners,
            ctx: Arc::new(ctx),
        })
    }

    /// `ws://127.0.0.1:8080/ws`, ... (the bound ports, also when the configuration said 0).
    pub fn urls(&self) -> Vec<String> {
        self.listeners.iter().map(|l| l.url.clone()).collect()
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.socket.local_addr().ok())
            .collect()
    }

    /// Accepts connections until shutdown, then closes every session ("going away").
    pub async fn serve(self, mut shutdown: Shutdown) {
        for listener in &self.listeners {
            tracing::info!(message_id = message_id::XAPI_LISTENING, url = %listener.url, "xAPI listening on {}", listener.url);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut accepts = JoinSet::new();
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(16);
        for listener in self.listeners {
            let conn_tx = conn_tx.clone();
            accepts.spawn(async move {
                loop {
                    match listener.socket.accept().await {
                        Ok((stream, address)) => {
                            let _ = stream.set_nodelay(true);
                            if conn_tx
                                .send((stream, address, listener.tls.clone()))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Err(e) => {
                            // Out of descriptors and the like: wait rather than spin.
                            tracing::error!("xAPI accept on {} failed: {e}", listener.url);
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                    }
                }
            });
        }
        drop(conn_tx);
        loop {
            tokio::select! {
                accepted = conn_rx.recv() => {
                    let Some((stream, address, tls)) = accepted else { break };
                    let (ctx, stop) = (self.ctx.clone(), stop_rx.clone());
                    connections.spawn(async move {
                        match tls {
                            None if !admits_plain(address.ip()) => refuse_plain_peer(&stream, address),
                            None => http::serve_connection(stream, address, ctx, stop).await,
                            Some(acceptor) => {
                                let mut stream = stream;
                                if starts_in_plaintext(&stream).await {
                                    refuse_plaintext(&mut stream, address).await;
                                    return;
                                }
                                match tokio::time::timeout(http::HEAD_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(stream)) => http::serve_connection(stream, address, ctx, stop).await,
                                    Ok(Err(e)) => tracing::info!(peer = %address, "xAPI TLS handshake failed: {e}"),
                                    Err(_) => tracing::info!(peer = %address, "xAPI TLS handshake timed out"),
                                }
                            }
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = shutdown.recv() => break,
            }
        }
        accepts.abort_all();
        let _ = stop_tx.send(true);
        let drained = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(2), drained)
            .await
            .is_err()
        {
            connections.abort_all();
        }
    }
}

/// Whether a plain `ws://` listener serves `peer`: loopback clients only. Plain listeners are
/// bound to loopback addresses, but port forwarding (`route_localnet`, DNAT) can still deliver
/// a remote client to them; credentials must never cross a network in the clear.
pub fn admits_plain(peer: std::net::IpAddr) -> bool {
    peer.to_canonical().is_loopback()
}

fn refuse_plain_peer(stream: &tokio::net::TcpStream, peer: SocketAddr) {
    let listener = stream
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    tracing::warn!(
        peer = %peer,
        "xAPI connection from {peer} to the plain ws:// listener {listener} refused: plain ws:// \
         serves loopback clients only (port forwarding?); remote clients use a wss:// listener"
    );
}

/// The first byte of a TLS connection is a handshake record (22); a plain HTTP or WebSocket
/// request starts with a method name instead.
async fn starts_in_plaintext(stream: &tokio::net::TcpStream) -> bool {
    const TLS_HANDSHAKE_RECORD: u8 = 22;
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(http::HEAD_TIMEOUT, stream.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] != TLS_HANDSHAKE_RECORD && first[0].is_ascii_alphabetic()
    )
}

/// Answers a plain HTTP request on a TLS listener with a 400 that says what to use instead.
async fn refuse_plaintext(stream: &mut tokio::net::TcpStream, peer: SocketAddr) {
    use tokio::io::AsyncReadExt as _;
    let listener = stream
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    tracing::warn!(
        peer = %peer,
        "xAPI: plain HTTP from {peer} to the TLS listener {listener} refused: \
         non-loopback listeners speak wss:// (https://) only"
    );
    // Read the request first: closing with unread bytes would reset the connection before
    // the client sees the answer.
    let mut request = [0u8; 8192];
    let _ = tokio::time::timeout(http::HEAD_TIMEOUT, stream.read(&mut request)).await;
    http::plain(
        stream,
        "400 Bad Request",
        "this xAPI listener speaks TLS only: use wss:// (https://)",
    )
    .await;
}

/// The TLS identity: configured files, or the device certificate generated on first start.
fn server_tls(config: &XapiConfig, state: &StateDir) -> Result<rustls::ServerConfig, XapiError> {
    let (cert_path, key_path) = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) => {
            ensure_device_certificate(state)?;
            (state.file(CERT_FILE), state.file(KEY_FILE))
        }
        _ => {
            return Err(XapiError::Tls(
                "set both xapi.tls_cert_file and xapi.tls_key_file, or neither".into(),
            ));
        }
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| XapiError::Tls(format!("{}: {e}", path.display())))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(&cert_path)?)
        .collect::<Result<_, _>>()
        .map_err(|e| XapiError::Tls(format!("{}: {e}", cert_path.display())))?;
    if chain.is_empty() {
        return Err(XapiError::Tls(format!(
            "{} holds no certificate",
            cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&key_path)?)
        .map_err(|e| XapiError::Tls(format!("{}: {e}", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| XapiError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| XapiError::Tls(format!("certificate and key do not match: {e}")))
}

/// Generates the self-signed device certificate (key 0600) unless it exists.
fn ensure_device_certificate(state: &StateDir) -> Result<(), XapiError> {
    if state.file(CERT_FILE).exists() && state.file(KEY_FILE).exists() {
        return Ok(());
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "roomd".into());
    let certified = rcgen::generate_simple_self_signed(vec![host.clone(), "localhost".into()])
        .map_err(|e| XapiError::Tls(format!("generating the device certificate: {e}")))?;
    let store = |name: &str, pem: String| {
        state
            .write_atomic(name, pem.as_bytes())
            .map_err(|e| XapiError::Tls(e.to_string()))
    };
    store(KEY_FILE, certified.key_pair.serialize_pem())?;
    store(CERT_FILE, certified.cert.pem())?;
    tracing::info!("generated the xAPI device certificate for {host:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_listeners_admit_loopback_clients_only() {
        for loopback in ["127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1"] {
            assert!(admits_plain(loopback.parse().unwrap()), "{loopback}");
        }
        for remote in [
            "192.0.2.7",
            "10.0.0.1",
            "0.0.0.0",
            "::",
            "2001:db8::1",
            "::ffff:192.0.2.7",
        ] {
            assert!(!admits_plain(remote.parse().unwrap()), "{remote}");
        }
    }
}
