//! The local xAPI's defences (docs/security.md, docs/xapi.md) over real sockets: plain `ws://`
//! never reaches a non-loopback listener (a plain request to a TLS listener gets a 400 that
//! says why, a `ws://` URL in the configuration is refused), and wrong passwords lock the
//! client's address out for a while: other addresses are unaffected, nothing logs a
//! password, and the right password works again once the lockout has passed.

use crate::support;

use std::net::SocketAddr;

use roomd::api::xapi::XapiServer;
use roomd::api::xapi::auth::{FAILURE_WINDOW, LOCKOUT, MAX_FAILURES, set_password};
use roomd::config::XapiConfig;
use roomd::platform::systemd::Notifier;
use roomd::shutdown::Tasks;
use roomd::store::StateDir;
use support::{LogCapture, TIMEOUT, auth_protocol};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const ADMIN_PASSWORD: &str = "xapi-security-admin";
/// A wrong guess long enough to be recorded for the log scan: it must never be logged either.
const WRONG_PASSWORD: &str = "wrong-guess-of-the-admin";

/// An xAPI server alone (no daemon, no cloud) on `listen`, with the admin password set.
async fn xapi_server(listen: &str) -> (tempfile::TempDir, Vec<String>, Tasks) {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path().join("state")).unwrap();
    set_password(&state, "admin", ADMIN_PASSWORD).unwrap();
    let (ctx, _status) = support::detached_xapi_context(state, 8);
    let config = XapiConfig {
        listen: vec![listen.parse().unwrap()],
        ..XapiConfig::default()
    };
    let server = XapiServer::bind(&config, ctx).await.unwrap();
    let urls = server.urls();
    let tasks = Tasks::new();
    tasks.spawn(tracing::Span::none(), move |shutdown| {
        server.serve(shutdown)
    });
    (dir, urls, tasks)
}

/// A jsxapi-style login (credentials in the subprotocol) from the loopback address `source`:
/// Ok for a session, else the HTTP status and its Retry-After.
async fn login_from(source: &str, port: u16, password: &str) -> Result<(), (u16, Option<String>)> {
    login_as_from("admin", source, port, password).await
}

/// Logs in as `user` from the loopback address `source`: Ok, or the refusal's status and
/// `Retry-After`.
async fn login_as_from(
    user: &str,
    source: &str,
    port: u16,
    password: &str,
) -> Result<(), (u16, Option<String>)> {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    let stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let mut request = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        auth_protocol(user, password).parse().unwrap(),
    );
    match tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async(request, stream)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => Err((
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        )),
        Ok(Err(e)) => panic!("handshake failed: {e}"),
        Err(_) => panic!("no answer within {TIMEOUT:?}"),
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/ws")
        .parse()
        .unwrap()
}

fn lockout_lines(source: &str) -> usize {
    LogCapture::global()
        .events()
        .iter()
        .filter(|e| {
            e.text
                .contains(&format!("xAPI logins from {source} locked out"))
        })
        .count()
}

// Paused time: the lockout's minute passes with `advance`, not by waiting. The server's
// sockets are real; argon2 runs on the blocking pool, which holds the clock meanwhile.
#[tokio::test(start_paused = true)]
async fn wrong_passwords_lock_the_address_out_until_the_lockout_has_passed() {
    let (_dir, urls, tasks) = xapi_server("127.0.0.1:0").await;
    let port = port_of(&urls[0]);
    let (attacker, neighbour) = ("127.0.0.3", "127.0.0.4");

    for attempt in 1..=MAX_FAILURES {
        assert_eq!(
            login_from(attacker, port, WRONG_PASSWORD).await,
            Err((403, None)),
            "wrong password, attempt {attempt}"
        );
    }
    assert_eq!(lockout_lines(attacker), 1, "the lockout is logged once");
    // Locked out: even the right password is refused without a check, and says for how long.
    assert_eq!(
        login_from(attacker, port, ADMIN_PASSWORD).await,
        Err((429, Some(LOCKOUT.as_secs().to_string())))
    );
    assert_eq!(
        login_from(attacker, port, WRONG_PASSWORD).await,
        Err((429, Some(LOCKOUT.as_secs().to_string())))
    );
    // Per address: another client is not locked out.
    assert_eq!(login_from(neighbour, port, ADMIN_PASSWORD).await, Ok(()));

    tokio::time::advance(LOCKOUT - std::time::Duration::from_secs(1)).await;
    assert_eq!(
        login_from(attacker, port, ADMIN_PASSWORD).await,
        Err((429, Some("1".into())))
    );
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        login_from(attacker, port, ADMIN_PASSWORD).await,
        Ok(()),
        "the right password works once the lockout has passed"
    );
    assert_eq!(
        lockout_lines(attacker),
        1,
        "refusals while locked out are not logged again"
    );
    assert_eq!(lockout_lines(neighbour), 0);

    let events = LogCapture::global().events();
    assert!(
        events.iter().any(|e| e.text.contains(&format!(
            "xAPI login refused for user \"admin\" from {attacker}"
        ))),
        "each wrong password is logged, naming the user and the address"
    );
    assert!(
        !events.iter().any(|e| e.text.contains(WRONG_PASSWORD)),
        "a password reached the log"
    );
    tasks
        .shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test]
async fn fewer_failures_than_the_limit_never_lock_out_and_typed_secrets_stay_unlogged() {
    let (_dir, urls, tasks) = xapi_server("127.0.0.1:0").await;
    let port = port_of(&urls[0]);
    let source = "127.0.0.5";
    // A password typed into the user field: refused (no such user) and never logged.
    let typo = "xapi-password-typed-as-user";
    support::test_run::record_xapi_password(typo);
    for _ in 1..MAX_FAILURES {
        let refused = login_as_from(typo, source, port, "").await;
        assert_eq!(refused, Err((403, None)));
    }
    // One failure short of the limit: the right password still works.
    assert_eq!(login_from(source, port, ADMIN_PASSWORD).await, Ok(()));
    assert_eq!(lockout_lines(source), 0);
    assert!(
        FAILURE_WINDOW >= LOCKOUT,
        "docs/xapi.md: 5 failures a minute, locked for a minute"
    );
    let events = LogCapture::global().events();
    assert!(events.iter().any(|e| e.text.contains(&format!(
        "xAPI login refused for user (unknown user name) from {source}"
    ))));
    assert!(
        !events.iter().any(|e| e.text.contains(typo)),
        "the typed secret was logged"
    );
    tasks
        .shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test]
async fn plain_ws_is_refused_on_a_tls_listener_with_a_reason() {
    // An IPv4-mapped loopback address is not loopback to std: the listener speaks TLS only,
    // yet on Linux it is reachable from this host alone.
    let (_dir, urls, tasks) = xapi_server("[::ffff:127.0.0.1]:0").await;
    assert!(urls[0].starts_with("wss://"), "{urls:?}");
    let port = port_of(&urls[0]);

    // A jsxapi-style upgrade in the clear: refused before anything is checked.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: {}\r\n\r\n",
        auth_protocol("admin", ADMIN_PASSWORD)
    );
    stream.write_all(upgrade.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_string(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("this xAPI listener speaks TLS only: use wss:// (https://)\n"),
        "{answer}"
    );
    let listener = format!("[::ffff:127.0.0.1]:{port}");
    assert!(
        LogCapture::global().contains(&format!("to the TLS listener {listener} refused")),
        "the refusal is logged"
    );
    assert!(
        !LogCapture::global().contains("for user \"admin\" from ::ffff:127.0.0.1"),
        "the credentials sent in the clear were not even checked"
    );

    // Over TLS the same login works.
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        roomd::net::tls::unverified_client_config(),
    ));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls_stream = tls
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let mut request = format!("wss://localhost:{port}/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        auth_protocol("admin", ADMIN_PASSWORD).parse().unwrap(),
    );
    tokio_tungstenite::client_async(request, tls_stream)
        .await
        .expect("wss login");
    tasks
        .shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

#[test]
fn a_ws_url_or_a_plain_switch_in_the_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roomd.toml");
    for (text, expected) in [
        (
            "[xapi]\nlisten = [\"ws://0.0.0.0:8080\"]\n",
            ["roomd.toml:2:", "invalid socket address syntax"],
        ),
        (
            "[xapi]\nplain = true\n",
            ["roomd.toml:2:1:", "unknown key `plain` in [xapi]"],
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let error = roomd::config::load(&path, true).unwrap_err().to_string();
        assert!(
            expected.iter().all(|e| error.contains(e)),
            "{text:?}: {error}"
        );
    }
}

/// A daemon whose xAPI listens on a non-loopback address serves it over TLS only (the
/// configuration cannot ask for plain `ws://` there).
#[tokio::test]
async fn a_daemon_serves_non_loopback_listeners_over_tls_only() {
    let dir = tempfile::tempdir().unwrap();
    let sim = support::start_sim(dir.path()).await;
    let mut config = support::config_for(&sim, dir.path());
    config.xapi.listen = vec![
        "127.0.0.1:0".parse().unwrap(),
        "[::ffff:127.0.0.1]:0".parse().unwrap(),
    ];
    let daemon = support::start_daemon(config, Notifier::disabled()).await;
    let urls = daemon.xapi_urls();
    assert!(urls[0].starts_with("ws://127.0.0.1:"), "{urls:?}");
    assert!(urls[1].starts_with("wss://[::ffff:127.0.0.1]:"), "{urls:?}");
    // Plain HTTP to the TLS listener never reaches the xAPI.
    let port = port_of(&urls[1]);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_string(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer}");
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}
