//! The local xAPI over real sockets and, for the write-ordering rules, over a recording
//! stream: every error code, auth before the upgrade, feedback shape (list ids, ghosts),
//! one frame per write, the Subscribe reply before its feedback, code-less close → 1000.

use crate::support;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use roomd::api::control::{self, ControlRequest, ControlResponse};
use roomd::api::xapi::CERT_FILE;
use roomd::api::xapi::auth::{Role, set_password};
use roomd::api::xapi::session::{self, Peer};
use roomd::status::DeviceStatus;
use roomd::store::StateDir;
use serde_json::{Value, json};
use support::{LogCapture, TIMEOUT, auth_protocol, next_json, xapi_connect as connect};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

const ADMIN_PASSWORD: &str = "admin-password";
const PANEL_PASSWORD: &str = "panel-password";

type Client<S> = WebSocketStream<S>;

/// An in-process daemon with the xAPI on an ephemeral loopback port and both users set.
async fn daemon(dir: &std::path::Path) -> (roomd_sim::SimHandle, roomd::daemon::Daemon, String) {
    let sim = support::start_sim(dir).await;
    let config = support::config_for(&sim, dir);
    let state = StateDir::open(config.state_dir()).unwrap();
    set_password(&state, "admin", ADMIN_PASSWORD).unwrap();
    set_password(&state, "touchpanel", PANEL_PASSWORD).unwrap();
    let daemon =
        support::start_daemon(config, roomd::platform::systemd::Notifier::disabled()).await;
    let url = daemon.xapi_urls()[0].clone();
    (sim, daemon, url)
}

async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut Client<S>,
    id: &str,
    method: &str,
    params: Value,
) -> Value {
    let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    ws.send(Message::text(request.to_string())).await.unwrap();
    loop {
        let message = next_json(ws).await;
        if message.get("id") == Some(&json!(id)) {
            return message;
        }
        assert_eq!(
            message["method"], "xFeedback/Event",
            "only feedback may come between a request and its reply: {message}"
        );
    }
}

fn error_code(reply: &Value) -> i64 {
    reply["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("an error reply: {reply}"))
}

#[tokio::test]
async fn credentials_are_checked_before_the_upgrade_and_failures_rate_limited() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (_sim, _daemon, url) = daemon(dir.path()).await;
    assert!(connect(&url, "admin", ADMIN_PASSWORD).await.is_ok());
    assert!(connect(&url, "touchpanel", PANEL_PASSWORD).await.is_ok());
    // Basic auth works as well as the subprotocol.
    let mut request = url.as_str().into_client_request().unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
    request
        .headers_mut()
        .insert("Authorization", format!("Basic {basic}").parse().unwrap());
    let stream = TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches("/ws"))
        .await
        .unwrap();
    assert!(
        tokio_tungstenite::client_async(request, stream)
            .await
            .is_ok()
    );
    for attempt in 0..5 {
        assert_eq!(
            connect(&url, "admin", "wrong").await.err(),
            Some(403),
            "attempt {attempt}"
        );
    }
    assert_eq!(
        connect(&url, "admin", ADMIN_PASSWORD).await.err(),
        Some(429),
        "after 5 failures the address is refused without a check"
    );
    assert!(LogCapture::global().contains("xAPI login refused for user \"admin\""));
    assert!(!LogCapture::global().this_test_contains("wrong"));
}

#[tokio::test]
async fn every_error_code_over_a_real_socket() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (_sim, _daemon, url) = daemon(dir.path()).await;
    let mut admin = connect(&url, "admin", ADMIN_PASSWORD).await.unwrap();
    let mut panel = connect(&url, "touchpanel", PANEL_PASSWORD).await.unwrap();

    admin
        .send(Message::text(
            r#"{"jsonrpc":"2.0","id":"p1","method":"xGet","params":"#,
        ))
        .await
        .unwrap();
    let reply = next_json(&mut admin).await;
    assert_eq!((error_code(&reply), &reply["id"]), (-32700, &json!("p1")));
    admin
        .send(Message::text(
            r#"{"jsonrpc":"1.0","id":"v1","method":"xGet"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(error_code(&next_json(&mut admin).await), -32600);
    let cases = [
        ("xDoc", json!({}), -32601),
        ("xCommand/Coffee/Brew", json!({}), -32601),
        ("xGet", json!({"Path": ["Status", "Nope"]}), -32602),
        ("xGet", json!({}), -32602),
        ("xFeedback/Subscribe", json!({"Query": ["Bogus"]}), -32602),
        (
            "xFeedback/Subscribe",
            json!({"Query": ["Status", "Audio", "Nope"]}),
            -32602,
        ),
        ("xFeedback/Unsubscribe", json!({"Id": 99}), -32602),
        ("xCommand/Audio/Volume/Set", json!({}), -32602),
        ("xCommand/Audio/Volume/Set", json!({"Level": 101}), -32602),
        (
            "xCommand/Video/Layout/LayoutFamily/Set",
            json!({"LayoutFamily": "grid"}),
            -32602,
        ),
        (
            "xSet",
            json!({"Path": ["Configuration", "Nope"], "Value": 1}),
            -32602,
        ),
        (
            "xSet",
            json!({"Path": ["Configuration", "Audio", "DefaultVolume"], "Value": 500}),
            -32602,
        ),
        ("xCommand/Bookings/Get", json!({"Id": "webex-999"}), 1),
        (
            "xCommand/Dial",
            json!({"Number": "sip:someone@example.invalid"}),
            1,
        ),
        ("xCommand/Dial", json!({"BookingId": "webex-999"}), 1),
        ("xCommand/Call/Accept", json!({}), 1),
        ("xCommand/Call/Hold", json!({"CallId": "first"}), -32602),
        ("xCommand/Call/DTMFSend", json!({"CallId": 1}), -32602),
        (
            "xCommand/SystemUnit/Activate",
            json!({"Code": "12"}),
            -32602,
        ),
    ];
    for (i, (method, params, code)) in cases.into_iter().enumerate() {
        let reply = call(&mut admin, &format!("c{i}"), method, params.clone()).await;
        assert_eq!(error_code(&reply), code, "{method} {params}: {reply}");
    }
    // The touch panel may not change configuration or activate.
    let reply = call(
        &mut panel,
        "t1",
        "xSet",
        json!({"Path": ["Configuration", "SystemUnit", "Name"], "Value": "x"}),
    )
    .await;
    assert_eq!(error_code(&reply), -31999);
    let reply = call(
        &mut panel,
        "t2",
        "xCommand/SystemUnit/Activate",
        json!({"Code": "4353-4500-1234-5678"}),
    )
    .await;
    assert_eq!(error_code(&reply), -31999);
    // ... but reads, subscribes and runs room commands.
    let reply = call(
        &mut panel,
        "t3",
        "xCommand/Audio/Microphones/Mute",
        json!({}),
    )
    .await;
    assert_eq!(reply["result"], json!({}));
    let reply = call(
        &mut panel,
        "t4",
        "xGet",
        json!({"Path": ["Status", "Audio", "Microphones", "Mute"]}),
    )
    .await;
    assert_eq!(reply["result"], "On");
    // The admin's configuration change is stored and read back; the socket is still fine.
    let reply = call(
        &mut admin,
        "s1",
        "xSet",
        json!({"Path": "Configuration/SystemUnit/Name", "Value": "Huddle 3"}),
    )
    .await;
    assert_eq!(reply["result"], Value::Null, "{reply}");
    let reply = call(
        &mut panel,
        "g1",
        "xGet",
        json!({"Path": ["configuration", "systemunit", "name"]}),
    )
    .await;
    assert_eq!(reply["result"], "Huddle 3");
    let reply = call(
        &mut admin,
        "b1",
        "xCommand/Bookings/List",
        json!({"Limit": 2}),
    )
    .await;
    let bookings = reply["result"]["Booking"].as_array().unwrap();
    assert!(bookings.len() <= 2);
    assert!(LogCapture::global().contains("bad request from admin"));
}

#[tokio::test]
async fn the_device_certificate_serves_tls_on_non_loopback_listeners() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = support::start_sim(dir.path()).await;
    let mut config = support::config_for(&sim, dir.path());
    config.xapi.listen = vec!["0.0.0.0:0".parse().unwrap()];
    let state = StateDir::open(config.state_dir()).unwrap();
    set_password(&state, "admin", ADMIN_PASSWORD).unwrap();
    let daemon =
        support::start_daemon(config, roomd::platform::systemd::Notifier::disabled()).await;
    let url = daemon.xapi_urls()[0].clone();
    assert!(url.starts_with("wss://0.0.0.0:"), "{url}");
    let port = url.rsplit(':').next().unwrap().trim_end_matches("/ws");
    let address = format!("127.0.0.1:{port}");
    let cert = std::fs::read_to_string(state.file(CERT_FILE)).unwrap();
    assert!(cert.contains("BEGIN CERTIFICATE"));

    // Plain HTTP on the TLS port gets no xAPI.
    let mut plain = TcpStream::connect(&address).await.unwrap();
    plain
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("101"));

    let tls =
        tokio_rustls::TlsConnector::from(Arc::new(roomd::net::tls::unverified_client_config()));
    let stream = TcpStream::connect(&address).await.unwrap();
    let stream = tls
        .connect("localhost".try_into().unwrap(), stream)
        .await
        .expect("TLS handshake");
    let presented = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    let on_disk = rustls_pki_types::pem::PemObject::from_pem_slice(cert.as_bytes()).unwrap();
    assert_eq!(
        presented, on_disk,
        "the device certificate is what the listener presents"
    );
    let mut request = format!("wss://localhost:{port}/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        auth_protocol("admin", ADMIN_PASSWORD).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    let reply = call(
        &mut ws,
        "1",
        "xGet",
        json!({"Path": ["Status", "SystemUnit", "ProductId"]}),
    )
    .await;
    assert_eq!(reply["result"], "roomd");
}

#[tokio::test]
async fn roomd_passwd_sets_a_password_through_the_daemon() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = support::start_sim(dir.path()).await;
    let config = support::config_for(&sim, dir.path());
    let socket = config.control_socket();
    let daemon =
        support::start_daemon(config, roomd::platform::systemd::Notifier::disabled()).await;
    let url = daemon.xapi_urls()[0].clone();
    assert_eq!(
        connect(&url, "touchpanel", "new panel password")
            .await
            .err(),
        Some(403)
    );
    let answer = control::request(
        &socket,
        &ControlRequest::Passwd {
            user: "touchpanel".into(),
            password: roomd::secret::Secret::new("new panel password".into()),
        },
    )
    .await
    .unwrap();
    assert!(matches!(answer, ControlResponse::Done { .. }), "{answer:?}");
    assert!(
        connect(&url, "touchpanel", "new panel password")
            .await
            .is_ok()
    );
    let answer = control::request(
        &socket,
        &ControlRequest::Passwd {
            user: "admin".into(),
            password: roomd::secret::Secret::new("short".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        answer,
        ControlResponse::error("the password must have at least 8 characters")
    );
    assert!(!LogCapture::global().contains("new panel password"));
}

/// A stream that records every write the server makes.
struct Recording<S> {
    inner: S,
    writes: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recording<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recording<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            this.writes.lock().unwrap().push(buf[..*n].to_vec());
        }
        result
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

struct SessionRig {
    client: Client<tokio::io::DuplexStream>,
    writes: Arc<Mutex<Vec<Vec<u8>>>>,
    status: watch::Sender<DeviceStatus>,
    state_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
    session: tokio::task::JoinHandle<()>,
}

/// One session over an in-memory pipe whose server side records its writes.
async fn session_rig(role: Role) -> SessionRig {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let state = StateDir::open(&state_dir).unwrap();
    let (ctx, status) = support::detached_xapi_context(state, 4);
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let writes = Arc::new(Mutex::new(Vec::new()));
    let server = WebSocketStream::from_raw_socket(
        Recording {
            inner: server_io,
            writes: writes.clone(),
        },
        WsRole::Server,
        Some(
            tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .write_buffer_size(0),
        ),
    )
    .await;
    let (_stop_tx, stop) = watch::channel(false);
    let peer = Peer {
        role,
        user: "tester".into(),
        address: "127.0.0.1:1".parse().unwrap(),
    };
    let session = tokio::spawn(async move {
        let _keep = _stop_tx;
        session::run(server, Arc::new(ctx), peer, stop).await
    });
    let client = WebSocketStream::from_raw_socket(client_io, WsRole::Client, None).await;
    SessionRig {
        client,
        writes,
        status,
        state_dir,
        _dir: dir,
        session,
    }
}

/// The text of each unmasked server frame in one write.
fn frames_in(write: &[u8]) -> Vec<String> {
    let mut frames = Vec::new();
    let mut rest = write;
    while rest.len() >= 2 {
        let len = match rest[1] & 0x7f {
            126 => (usize::from(rest[2]) << 8 | usize::from(rest[3]), 4),
            127 => panic!("no 64-bit frames expected"),
            n => (usize::from(n), 2),
        };
        frames.push(String::from_utf8_lossy(&rest[len.1..len.1 + len.0]).into_owned());
        rest = &rest[len.1 + len.0..];
    }
    frames
}

#[tokio::test]
async fn subscribe_reply_precedes_its_feedback_in_separate_writes() {
    LogCapture::global();
    let mut rig = session_rig(Role::Admin).await;
    let reply = call(
        &mut rig.client,
        "s1",
        "xFeedback/Subscribe",
        json!({"Query": ["Status", "Audio"], "NotifyCurrentValue": true}),
    )
    .await;
    assert_eq!(reply["result"], json!({"Id": 1}));
    let current = next_json(&mut rig.client).await;
    assert_eq!(current["params"]["Id"], 1);
    assert_eq!(current["params"]["Status"]["Audio"]["Volume"], 50);
    rig.status.send_modify(|s| s.controls.volume = 61);
    let change = next_json(&mut rig.client).await;
    assert_eq!(
        change["params"],
        json!({"Id": 1, "Status": {"Audio": {"Volume": 61}}})
    );

    let writes = rig.writes.lock().unwrap().clone();
    let frames: Vec<Vec<String>> = writes.iter().map(|w| frames_in(w)).collect();
    assert!(
        frames.iter().all(|f| f.len() == 1),
        "one frame per write: {frames:?}"
    );
    let position = |needle: &str| frames.iter().position(|f| f[0].contains(needle)).unwrap();
    assert!(position("\"id\":\"s1\"") < position("\"Volume\":50"));
}

#[tokio::test]
async fn list_feedback_carries_ids_and_ghosts_one_notification_per_subscription() {
    LogCapture::global();
    let mut rig = session_rig(Role::TouchPanel).await;
    for (id, query) in [
        ("a", json!(["Status", "Bookings"])),
        ("b", json!("Status/Bookings/Joinable")),
        ("c", json!(["Status", "Audio"])),
    ] {
        let reply = call(
            &mut rig.client,
            id,
            "xFeedback/Subscribe",
            json!({"Query": query}),
        )
        .await;
        assert!(reply["result"]["Id"].is_u64());
    }
    rig.status
        .send_modify(|s| s.bookings.joinable = vec!["webex-3".into(), "webex-4".into()]);
    let first = next_json(&mut rig.client).await;
    let second = next_json(&mut rig.client).await;
    assert_eq!(
        first["params"],
        json!({"Id": 1, "Status": {"Bookings": {"Joinable": [{"id": 3, "Id": "webex-3"}, {"id": 4, "Id": "webex-4"}]}}})
    );
    assert_eq!(
        second["params"]["Id"], 2,
        "one notification per matching subscription, none for Audio"
    );
    rig.status
        .send_modify(|s| s.bookings.joinable = vec!["webex-4".into()]);
    let removal = next_json(&mut rig.client).await;
    assert_eq!(
        removal["params"]["Status"]["Bookings"]["Joinable"],
        json!([{"id": 3, "ghost": "True"}])
    );
    let _ = next_json(&mut rig.client).await;
    // A request without an id (a notification) runs but is never answered; the next reply
    // answers the next id the client sent.
    rig.client
        .send(Message::text(
            r#"{"jsonrpc":"2.0","method":"xCommand/Audio/Volume/Set","params":{"Level":20}}"#,
        ))
        .await
        .unwrap();
    rig.client
        .send(Message::text("garbage without an id"))
        .await
        .unwrap();
    let feedback = next_json(&mut rig.client).await;
    assert_eq!(
        feedback["params"],
        json!({"Id": 3, "Status": {"Audio": {"Volume": 20}}})
    );
    let reply = call(
        &mut rig.client,
        "z",
        "xGet",
        json!({"Path": ["Status", "Audio", "Volume"]}),
    )
    .await;
    assert_eq!(reply["result"], 20);
    let reply = call(
        &mut rig.client,
        "u",
        "xFeedback/Unsubscribe",
        json!({"Id": 3}),
    )
    .await;
    assert_eq!(reply["result"], true);
}

#[tokio::test]
async fn internal_error_when_configuration_cannot_be_saved() {
    LogCapture::global();
    let mut rig = session_rig(Role::Admin).await;
    std::fs::remove_dir_all(&rig.state_dir).unwrap();
    std::fs::write(&rig.state_dir, b"not a directory").unwrap();
    let reply = call(
        &mut rig.client,
        "x",
        "xSet",
        json!({"Path": ["Configuration", "Audio", "DefaultVolume"], "Value": 40}),
    )
    .await;
    assert_eq!(error_code(&reply), -32603, "{reply}");
    let reply = call(
        &mut rig.client,
        "y",
        "xGet",
        json!({"Path": ["Configuration", "Audio", "DefaultVolume"]}),
    )
    .await;
    assert_eq!(reply["result"], 50, "nothing changed");
}

#[tokio::test]
async fn a_close_without_a_code_is_answered_with_1000() {
    LogCapture::global();
    let mut rig = session_rig(Role::Admin).await;
    rig.client.send(Message::Close(None)).await.unwrap();
    let answer = tokio::time::timeout(TIMEOUT, rig.client.next())
        .await
        .unwrap();
    match answer {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected a close with 1000, got {other:?}"),
    }
    tokio::time::timeout(TIMEOUT, rig.session)
        .await
        .unwrap()
        .unwrap();
}
