//! An xAPI client as jsxapi and the touch panel are: a WebSocket logged in with the auth
//! subprotocol, JSON-RPC frames.

use crate::{TIMEOUT, test_run};

/// The jsxapi login subprotocol: `auth-<base64url("user:password")>`.
pub fn auth_protocol(user: &str, password: &str) -> String {
    use base64::Engine;
    test_run::record_xapi_password(password);
    format!(
        "auth-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{user}:{password}"))
    )
}

/// An xAPI WebSocket client logged in the jsxapi way (and checking the subprotocol echo), or
/// the HTTP status the server refused the upgrade with.
pub async fn xapi_connect(
    url: &str,
    user: &str,
    password: &str,
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        auth_protocol(user, password).parse().unwrap(),
    );
    let host = url.trim_start_matches("ws://").trim_end_matches("/ws");
    let stream = tokio::net::TcpStream::connect(host).await.unwrap();
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, response)) => {
            assert_eq!(
                response.headers()["sec-websocket-protocol"],
                auth_protocol(user, password).as_str(),
                "the auth subprotocol is echoed"
            );
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("handshake failed: {e}"),
    }
}

/// The next text frame as JSON (bounded by [`TIMEOUT`]); other frames are skipped.
pub async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("valid frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}
