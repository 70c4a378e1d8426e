//! WebSocket client connections over our own rustls configuration (the same trust store as
//! HTTP), for the mercury socket and the Meeting Server's events socket.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use tokio_tungstenite::tungstenite::Message;
pub use tokio_tungstenite::tungstenite::protocol::CloseFrame;
pub use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// An open client socket (always TLS: the cloud and the Meeting Server are `wss://` only).
pub type WsStream = WebSocketStream<TlsStream<TcpStream>>;

/// Hard limit on one inbound message; larger ones kill the connection. Protocol code applies
/// its own, smaller limits and drops (not disconnects) frames between the two.
pub const HARD_MESSAGE_LIMIT: usize = 16 << 20;

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum WsConnectError {
    /// invalid websocket URL {url}: {reason}
    Url { url: String, reason: String },
    /// cannot connect to {authority}: {reason}
    Connect { authority: String, reason: String },
    /// TLS handshake with {authority} failed: {reason}
    Tls { authority: String, reason: String },
    /// websocket upgrade at {authority} refused: HTTP {status}
    Refused { authority: String, status: u16 },
    /// websocket handshake with {authority} failed: {reason}
    Handshake { authority: String, reason: String },
    /// connecting to {authority} timed out after {seconds} s
    Timeout { authority: String, seconds: u64 },
}

impl WsConnectError {
    /// The HTTP status of a refused upgrade (401, 503, ...).
    pub fn status(&self) -> Option<u16> {
        match self {
            WsConnectError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Opens `url` (`wss://` only) with `tls`, adding `headers`; the whole set-up is bounded by
/// `timeout`.
pub async fn connect(
    url: &str,
    tls: Arc<rustls::ClientConfig>,
    headers: &[(&'static str, String)],
    timeout: Duration,
) -> Result<WsStream, WsConnectError> {
    let bad_url = |reason: &str| WsConnectError::Url {
        url: redact_query(url),
        reason: reason.to_string(),
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| bad_url(&e.to_string()))?;
    let uri = request.uri().clone();
    if uri.scheme_str() != Some("wss") {
        return Err(bad_url("only wss:// is allowed"));
    }
    let host = uri.host().ok_or_else(|| bad_url("no host"))?.to_string();
    let port = uri.port_u16().unwrap_or(443);
    let authority = format!("{host}:{port}");
    for (name, value) in headers {
        let value = HeaderValue::from_str(value).map_err(|e| bad_url(&e.to_string()))?;
        request.headers_mut().insert(*name, value);
    }
    let server_name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
        .map_err(|e| bad_url(&e.to_string()))?
        .to_owned();
    let config = WebSocketConfig::default()
        .max_message_size(Some(HARD_MESSAGE_LIMIT))
        .max_frame_size(Some(HARD_MESSAGE_LIMIT))
        // Frames go out as soon as they are sent: acks and pings must not sit in a buffer.
        .write_buffer_size(0);
    let open = async {
        let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
            .await
            .map_err(|e| WsConnectError::Connect {
                authority: authority.clone(),
                reason: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        let tls = TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
            .map_err(|e| WsConnectError::Tls {
                authority: authority.clone(),
                reason: e.to_string(),
            })?;
        let (socket, _response) =
            tokio_tungstenite::client_async_with_config(request, tls, Some(config))
                .await
                .map_err(|e| match e {
                    tokio_tungstenite::tungstenite::Error::Http(response) => {
                        WsConnectError::Refused {
                            authority: authority.clone(),
                            status: response.status().as_u16(),
                        }
                    }
                    other => WsConnectError::Handshake {
                        authority: authority.clone(),
                        reason: other.to_string(),
                    },
                })?;
        Ok(socket)
    };
    match tokio::time::timeout(timeout, open).await {
        Ok(result) => result,
        Err(_) => Err(WsConnectError::Timeout {
            authority,
            seconds: timeout.as_secs(),
        }),
    }
}

/// A URL for logs: query parameters (which may carry auth tokens) are cut off.
pub fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_never_reach_logs() {
        assert_eq!(
            redact_query("wss://h/events/v1?authToken=secret"),
            "wss://h/events/v1?…"
        );
        assert_eq!(redact_query("wss://h/x"), "wss://h/x");
    }

    #[tokio::test]
    async fn plain_ws_is_refused() {
        let tls = Arc::new(
            crate::net::tls::TrustStore::platform()
                .client_config()
                .unwrap(),
        );
        let err = connect("ws://127.0.0.1:1/x", tls, &[], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("only wss://"), "{err}");
    }
}
