//! The HTTP side of an xAPI connection: one request head, then either the WebSocket upgrade
//! (authenticated before the 101, as RoomOS does) or a static touch-panel file.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};

use super::XapiContext;
use super::auth::{Credentials, FAILURE_WINDOW, LOCKOUT, Login, MAX_FAILURES, Role};
use super::session::{self, Peer};
use crate::platform::logging::message_id;
use crate::proto::jsonrpc::MAX_REQUEST_BYTES;

/// Largest request head read.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A client gets this long to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

const INDEX_HTML: &str = include_str!("touch/index.html");
const TOUCH_JS: &str = include_str!("touch/touch.js");
const TOUCH_CSS: &str = include_str!("touch/touch.css");

/// The parts of a request head the xAPI looks at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name).is_some_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    }
}

/// Parses a complete request head (up to and including the blank line); the error names
/// what was wrong.
pub fn parse_head(bytes: &[u8]) -> Result<Option<(RequestHead, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(used)) => {
            let head = RequestHead {
                method: request.method.unwrap_or_default().to_owned(),
                path: request.path.unwrap_or_default().to_owned(),
                headers: request
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
            };
            Ok(Some((head, used)))
        }
        Err(e) => Err(format!("bad HTTP request: {e}")),
    }
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let written = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), written).await;
}

pub(super) async fn plain<S: AsyncWrite + Unpin>(stream: &mut S, status: &str, text: &str) {
    respond(
        stream,
        status,
        &[("Content-Type", "text/plain; charset=utf-8")],
        format!("{text}\n").as_bytes(),
    )
    .await;
}

/// Serves one accepted connection (plain or TLS).
pub async fn serve_connection<S>(
    mut stream: S,
    address: SocketAddr,
    ctx: Arc<XapiContext>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buffer = Vec::with_capacity(2048);
    let read_head = async {
        loop {
            if let Some(found) = parse_head(&buffer)? {
                return Ok(found);
            }
            if buffer.len() >= MAX_HEAD_BYTES {
                return Err(format!("request head over {MAX_HEAD_BYTES} bytes"));
            }
            let mut chunk = [0u8; 2048];
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("reading the request: {e}"))?;
            if n == 0 {
                return Err("connection closed before the request was complete".into());
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
    };
    let (head, used) = match tokio::time::timeout(HEAD_TIMEOUT, read_head).await {
        Ok(Ok(found)) => found,
        Ok(Err(reason)) => {
            tracing::info!(peer = %address, "{reason}");
            plain(&mut stream, "400 Bad Request", "bad request").await;
            return;
        }
        Err(_) => {
            tracing::info!(peer = %address, "no request head within {} s", HEAD_TIMEOUT.as_secs());
            return;
        }
    };
    let path = head.path.split(['?', '#']).next().unwrap_or("");
    if head.method != "GET" {
        respond(
            &mut stream,
            "405 Method Not Allowed",
            &[("Allow", "GET")],
            b"",
        )
        .await;
        return;
    }
    let security: &[(&str, &str)] = &[
        ("Cache-Control", "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
        (
            "Content-Security-Policy",
            "default-src 'self'; connect-src 'self'",
        ),
    ];
    let file = |content_type: &'static str, body: &'static str| (content_type, body);
    let served = match path {
        "/ws" => None,
        "/" => {
            respond(&mut stream, "302 Found", &[("Location", "/touch")], b"").await;
            return;
        }
        // Browsers ask for it on their own; "no content" keeps their consoles clean.
        "/favicon.ico" => {
            respond(&mut stream, "204 No Content", &[], b"").await;
            return;
        }
        "/touch" | "/touch/" | "/touch/index.html" => {
            Some(file("text/html; charset=utf-8", INDEX_HTML))
        }
        "/touch/touch.js" => Some(file("text/javascript; charset=utf-8", TOUCH_JS)),
        "/touch/touch.css" => Some(file("text/css; charset=utf-8", TOUCH_CSS)),
        _ => {
            plain(&mut stream, "404 Not Found", "not found").await;
            return;
        }
    };
    if let Some((content_type, body)) = served {
        let mut headers = vec![("Content-Type", content_type)];
        headers.extend_from_slice(security);
        respond(&mut stream, "200 OK", &headers, body.as_bytes()).await;
        return;
    }
    upgrade(stream, address, head, buffer.split_off(used), ctx, stop).await;
}

async fn upgrade<S>(
    mut stream: S,
    address: SocketAddr,
    head: RequestHead,
    rest: Vec<u8>,
    ctx: Arc<XapiContext>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let key = head.header("sec-websocket-key").map(str::to_owned);
    let is_upgrade = head.has_token("upgrade", "websocket")
        && head.has_token("connection", "upgrade")
        && head.header("sec-websocket-version") == Some("13");
    let Some(key) = key.filter(|_| is_upgrade) else {
        respond(
            &mut stream,
            "426 Upgrade Required",
            &[("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
            b"",
        )
        .await;
        return;
    };
    let from_protocol = head
        .header("sec-websocket-protocol")
        .and_then(Credentials::from_subprotocols);
    let (credentials, echo) = match from_protocol {
        Some((credentials, protocol)) => (Some(credentials), Some(protocol)),
        None => (
            head.header("authorization")
                .and_then(Credentials::from_basic),
            None,
        ),
    };
    let user = credentials
        .as_ref()
        .map(|c| c.user.clone())
        .unwrap_or_default();
    // Only a known user name is logged: whatever else was typed there may be a password.
    let shown_user = match Role::from_user(&user) {
        Some(role) => format!("{:?}", role.user()),
        None if user.is_empty() => "(none given)".to_owned(),
        None => "(unknown user name)".to_owned(),
    };
    let role = match ctx.auth.login(address.ip(), credentials).await {
        Login::Accepted(role) => role,
        Login::Refused { locked_out } => {
            tracing::warn!(
                message_id = message_id::XAPI_LOGIN_REFUSED,
                peer = %address,
                user = %shown_user,
                "xAPI login refused for user {shown_user} from {}",
                address.ip()
            );
            if locked_out {
                tracing::warn!(
                    message_id = message_id::XAPI_LOGIN_REFUSED,
                    peer = %address,
                    "xAPI logins from {} locked out for {} s after {MAX_FAILURES} failed logins within {} s",
                    address.ip(),
                    LOCKOUT.as_secs(),
                    FAILURE_WINDOW.as_secs()
                );
            }
            ctx.status.send_modify(|s| s.xapi.logins_refused += 1);
            plain(&mut stream, "403 Forbidden", "forbidden").await;
            return;
        }
        Login::RateLimited { retry_after } => {
            // Logged once, when the lockout began; a flood of refused attempts must not flood
            // the journal too.
            tracing::debug!(
                peer = %address,
                "xAPI login from {} refused without checking: locked out for {} s more",
                address.ip(),
                retry_after.as_secs_f64().ceil()
            );
            ctx.status.send_modify(|s| s.xapi.logins_refused += 1);
            let retry_after = (retry_after.as_secs_f64().ceil() as u64).max(1).to_string();
            respond(
                &mut stream,
                "429 Too Many Requests",
                &[("Retry-After", retry_after.as_str())],
                b"",
            )
            .await;
            return;
        }
    };
    let sessions = ctx.sessions.fetch_add(1, Ordering::SeqCst) + 1;
    let _release = SessionSlot(ctx.clone());
    if sessions > ctx.max_sessions {
        tracing::warn!(peer = %address, "xAPI session refused: {} sessions already open", ctx.max_sessions);
        plain(&mut stream, "503 Service Unavailable", "too many sessions").await;
        return;
    }
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(key.as_bytes())
    );
    if let Some(protocol) = &echo {
        response.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    response.push_str("\r\n");
    if stream.write_all(response.as_bytes()).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_REQUEST_BYTES))
        .max_frame_size(Some(MAX_REQUEST_BYTES))
        .write_buffer_size(0);
    let ws = WebSocketStream::from_partially_read(stream, rest, WsRole::Server, Some(config)).await;
    ctx.status
        .send_modify(|s| s.xapi.sessions = ctx.sessions.load(Ordering::SeqCst));
    tracing::info!(peer = %address, user = %user, "xAPI session opened by {user} ({:?})", role);
    session::run(
        ws,
        ctx.clone(),
        Peer {
            role,
            user: user.clone(),
            address,
        },
        stop,
    )
    .await;
    tracing::info!(peer = %address, user = %user, "xAPI session closed");
}

/// Gives a session slot back however the session ends.
struct SessionSlot(Arc<XapiContext>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let now = self.0.sessions.fetch_sub(1, Ordering::SeqCst) - 1;
        self.0.status.send_modify(|s| s.xapi.sessions = now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_partially_and_completely() {
        assert_eq!(parse_head(b"GET /ws HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        let (head, used) = parse_head(b"GET /ws HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\nextra")
            .unwrap()
            .unwrap();
        assert_eq!(
            (head.method.as_str(), head.path.as_str(), used),
            ("GET", "/ws", 73)
        );
        assert!(head.has_token("upgrade", "websocket"));
        assert!(head.has_token("connection", "upgrade"));
        assert!(parse_head(b"\x01\x02 nonsense\r\n\r\n").is_err());
    }
}
