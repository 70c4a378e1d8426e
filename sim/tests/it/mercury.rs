//! End-to-end tests of the mercury event WebSocket (wire profile §3, docs/wire-profile-choices.md §3)
//! with tokio-tungstenite over rustls, against a device that activated and registered for real.
//!
//! Every wait is bounded and event-driven (the handle's `wait_*` or the next frame on the socket);
//! the few fixed sleeps assert that something does NOT happen and say why.

use roomd_testkit::sim as support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use roomd_sim::{ClosedBy, ConnectionInfo, ConnectionState, Device, Scenario, SimHandle};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use support::{Registered, Result, SimFixture, tls_config};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);
const CODE: &str = "4353450012345678";
/// Long enough for a frame that is on its way to arrive on loopback; used only to show one is not.
const QUIET: Duration = Duration::from_millis(300);

type Ws = WebSocketStream<TlsStream<TcpStream>>;

struct Fixture {
    sim: SimHandle,
    /// Trusts the proxy CA (services) and serves the cleartext admin API.
    http: reqwest::Client,
    token: String,
    /// The registered WDM device id: the mercury registration.
    device: String,
    device_url: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Result<Fixture> {
    fixture_with(Scenario::default()).await
}

/// Starts the simulator with `scenario` plus one device, activates it with an honest SRP client and
/// registers it with WDM.
async fn fixture_with(mut scenario: Scenario) -> Result<Fixture> {
    scenario.devices = vec![Device::new(CODE)];
    let kit = SimFixture::start(scenario, WAIT).await?;
    let Registered {
        token,
        wdm: dev,
        device_url,
        device,
    } = kit.register(CODE).await?;
    let SimFixture { sim, http, dir, .. } = kit;
    assert_eq!(
        dev["webSocketUrl"],
        format!(
            "wss://localhost:{}/mercury/registrations/{device}/messages",
            sim.proxy_addr().port()
        )
    );
    Ok(Fixture {
        sim,
        http,
        token,
        device,
        device_url,
        _dir: dir,
    })
}

impl Fixture {
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        support::admin(&self.http, &self.sim, method, path, body).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let (status, v) = self.admin(reqwest::Method::POST, path, Some(body)).await?;
        assert_eq!(status, 200, "{path}: {v}");
        Ok(v)
    }

    /// Opens a socket on the proxy listener (the `webSocketUrl` host) for `registration`.
    async fn connect(&self, registration: &str) -> Result<Ws> {
        let tcp = TcpStream::connect(self.sim.proxy_addr()).await?;
        let connector = TlsConnector::from(Arc::new(tls_config(self.sim.proxy_ca_pem())?));
        let tls = connector
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let url = format!(
            "wss://localhost:{}/mercury/registrations/{registration}/messages\
             ?outboundWireFormat=text&bufferStates=true&aliasHttpStatus=true&clientTimestamp=1700000000000",
            self.sim.proxy_addr().port()
        );
        let (ws, _resp) = tokio_tungstenite::client_async(url, tls).await?;
        Ok(ws)
    }

    /// Connects, authorizes with the fixture's token and reads the buffer_state event.
    async fn online(&self) -> Result<(Ws, Value)> {
        let mut ws = self.connect(&self.device).await?;
        authorize(&mut ws, &format!("Bearer {}", self.token)).await?;
        let first = next_json(&mut ws).await?;
        assert_eq!(
            first["data"]["eventType"], "mercury.buffer_state",
            "{first}"
        );
        Ok((ws, first))
    }

    async fn connection(&self, id: u64) -> Result<ConnectionInfo> {
        Ok(self
            .sim
            .mercury_connections()
            .into_iter()
            .find(|c| c.id == id)
            .ok_or("no such connection")?)
    }

    /// Waits until connection `id` is closed and returns it.
    async fn closed(&self, id: u64) -> Result<ConnectionInfo> {
        Ok(self
            .sim
            .wait_connection(id, |c| c.state == ConnectionState::Closed, WAIT)
            .await?)
    }
}

async fn authorize(ws: &mut Ws, token: &str) -> Result {
    let frame = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "authorization",
        "data": {"token": token},
        "trackingId": "ROOMD_test_1",
    });
    ws.send(Message::text(frame.to_string())).await?;
    Ok(())
}

async fn send_json(ws: &mut Ws, v: Value) -> Result {
    ws.send(Message::text(v.to_string())).await?;
    Ok(())
}

/// The next text frame, parsed; WebSocket-level pings are skipped, anything else is an error.
async fn next_json(ws: &mut Ws) -> Result<Value> {
    Ok(serde_json::from_str(&next_text(ws).await?)?)
}

async fn next_text(ws: &mut Ws) -> Result<String> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await?
            .ok_or("socket ended")??;
        match msg {
            Message::Text(t) => return Ok(t.as_str().to_owned()),
            Message::Ping(_) | Message::Pong(_) => {}
            other => return Err(format!("expected a text frame, got {other:?}").into()),
        }
    }
}

/// The close frame that must come next: (code, reason). Reads once more so the client's close
/// reply is flushed and the server finishes without its grace wait.
async fn next_close(ws: &mut Ws) -> Result<(u16, String)> {
    let msg = tokio::time::timeout(WAIT, ws.next())
        .await?
        .ok_or("socket ended without a close frame")??;
    let Message::Close(Some(cf)) = msg else {
        return Err(format!("expected a close frame, got {msg:?}").into());
    };
    let _ = tokio::time::timeout(WAIT, ws.next()).await;
    Ok((u16::from(cf.code), cf.reason.as_str().to_owned()))
}

/// The connection ends without a close frame (the server dropped TCP).
async fn expect_no_close_frame(ws: &mut Ws) -> Result {
    match tokio::time::timeout(WAIT, ws.next()).await? {
        None | Some(Err(_)) => Ok(()),
        Some(Ok(m)) => Err(format!("expected the TCP connection to drop, got {m:?}").into()),
    }
}

async fn ack(ws: &mut Ws, id: &Value) -> Result {
    send_json(ws, json!({"messageId": id, "type": "ack"})).await
}

#[tokio::test]
async fn authorization_close_codes() -> Result {
    let f = fixture().await?;
    let cases: [(&str, Option<String>, u16, &str); 5] = [
        (
            &f.device,
            Some("not json".into()),
            4400,
            "bad authorization frame",
        ),
        (
            &f.device,
            Some(json!({"id": "p", "type": "ping"}).to_string()),
            4400,
            "bad authorization frame",
        ),
        (
            &f.device,
            Some(json!({"type": "authorization", "data": {}}).to_string()),
            4400,
            "bad authorization frame",
        ),
        (&f.device, None, 4401, "invalid token"),
        (
            "not-a-device",
            Some(String::new()),
            4403,
            "unknown registration",
        ),
    ];
    for (registration, first, code, reason) in cases {
        let mut ws = f.connect(registration).await?;
        match first {
            Some(text) if text.is_empty() => {
                authorize(&mut ws, &format!("Bearer {}", f.token)).await?;
            }
            Some(text) => ws.send(Message::text(text)).await?,
            None => authorize(&mut ws, "Bearer not-a-token").await?,
        }
        // The close is the first thing the server sends.
        assert_eq!(next_close(&mut ws).await?, (code, reason.to_owned()));
    }
    // A binary first frame is not an authorization frame either.
    let mut ws = f.connect(&f.device).await?;
    ws.send(Message::binary(b"{}".to_vec())).await?;
    assert_eq!(next_close(&mut ws).await?.0, 4400);

    let conns = f
        .sim
        .wait_connections(
            |cs| cs.len() == 6 && cs.iter().all(|c| c.state == ConnectionState::Closed),
            WAIT,
        )
        .await?;
    let codes: Vec<Option<u16>> = conns.iter().map(|c| c.close_code).collect();
    let want = [4400, 4400, 4400, 4401, 4403, 4400].map(Some);
    assert_eq!(codes, want);
    assert!(conns.iter().all(|c| c.closed_by == Some(ClosedBy::Server)));
    assert!(conns.iter().all(|c| c.online_at_ms.is_none()));
    assert_eq!(conns[4].registration, "not-a-device");
    assert!(
        conns[0]
            .query
            .starts_with("outboundWireFormat=text&bufferStates=true"),
        "{}",
        conns[0].query
    );
    assert_eq!(conns[0].listener, "proxy");
    // Every first frame is recorded, the junk one included.
    let received = f.sim.mercury_received();
    assert_eq!(received.len(), 6);
    assert_eq!(
        (received[0].connection, received[0].text.as_str()),
        (1, "not json")
    );
    assert!(received[5].binary);

    // An expired token (the token store's validity) is 4401 too.
    f.sim.expire_access_tokens();
    let mut ws = f.connect(&f.device).await?;
    authorize(&mut ws, &format!("Bearer {}", f.token)).await?;
    assert_eq!(next_close(&mut ws).await?, (4401, "invalid token".into()));
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn authorization_timeout_from_scenario_and_admin() -> Result {
    let scenario = Scenario::from_toml_str("[mercury]\nauth_timeout_secs = 1\n")?;
    let f = fixture_with(scenario).await?;
    let (_, got) = f
        .admin(reqwest::Method::GET, "/admin/mercury/auth-timeout", None)
        .await?;
    assert_eq!(got, json!({"secs": 1.0}));
    let began = Instant::now();
    let mut ws = f.connect(&f.device).await?;
    assert_eq!(
        next_close(&mut ws).await?,
        (1008, "authorization timeout".into())
    );
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // At run time, for sockets opened afterwards.
    let (status, _) = f
        .admin(
            reqwest::Method::PUT,
            "/admin/mercury/auth-timeout",
            Some(json!({"secs": 0.3})),
        )
        .await?;
    assert_eq!(status, 200);
    let mut ws = f.connect(&f.device).await?;
    assert_eq!(next_close(&mut ws).await?.0, 1008);
    let (status, _) = f
        .admin(
            reqwest::Method::PUT,
            "/admin/mercury/auth-timeout",
            Some(json!({"secs": 0})),
        )
        .await?;
    assert_eq!(status, 400);
    assert!(f.sim.mercury_set_auth_timeout(Duration::ZERO).is_err());
    f.sim.mercury_set_auth_timeout(Duration::from_secs(30))?;
    // Authorizing in time: online, and the timer no longer applies.
    let (_ws, _) = f.online().await?;
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn buffer_state_sequence_numbers_and_acks() -> Result {
    let f = fixture().await?;
    // Nobody online: dropped, reported as not delivered.
    let out = f
        .post(
            "/admin/mercury/events",
            json!({"data": {"eventType": "lost.event"}}),
        )
        .await?;
    assert_eq!(out["delivered"], json!([]));
    assert_eq!(out["undelivered"], json!([f.device]));

    let (mut ws, first) = f.online().await?;
    let conn = f.sim.wait_mercury_online(WAIT).await?;
    assert_eq!(conn.registration, f.device);
    assert!(conn.query.contains("clientTimestamp=1700000000000"));
    assert_eq!(
        first["data"],
        json!({"eventType": "mercury.buffer_state",
               "buffer_state": {"conversation": "UNKNOWN", "locus": "UNKNOWN"}})
    );
    assert_eq!(first["sequenceNumber"], 1);
    assert!(uuid::Uuid::parse_str(first["id"].as_str().unwrap_or_default()).is_ok());
    assert!(
        first["trackingId"]
            .as_str()
            .unwrap_or_default()
            .starts_with("roomd-sim_")
    );
    assert!(first["timestamp"].as_u64().unwrap_or_default() > 1_600_000_000_000);

    let one = f
        .post(
            "/admin/mercury/events",
            json!({"data": {"eventType": "locus.difference", "n": 1}}),
        )
        .await?;
    let batch = f
        .post(
            "/admin/mercury/events",
            json!({"events": [{"eventType": "calendar.meeting.create", "n": 2},
                              {"data": {"eventType": "calendar.meeting.update", "n": 3}}]}),
        )
        .await?;
    assert_eq!(one["delivered"][0]["sequenceNumber"], 2);
    assert_eq!(one["delivered"][0]["connection"], conn.id);
    assert_eq!(batch["delivered"][1]["sequenceNumber"], 4);
    let mut ids = vec![first["id"].clone()];
    for (n, want_type) in [
        (1, "locus.difference"),
        (2, "calendar.meeting.create"),
        (3, "calendar.meeting.update"),
    ] {
        let ev = next_json(&mut ws).await?;
        assert_eq!(ev["sequenceNumber"], n + 1);
        assert_eq!(ev["data"]["eventType"], want_type);
        assert_eq!(ev["data"]["n"], n);
        ids.push(ev["id"].clone());
    }
    assert_eq!(ids[1], one["delivered"][0]["id"]);
    // Fresh ids and tracking ids per frame.
    let delivered = f.sim.mercury_delivered(Some(&f.device));
    assert_eq!(delivered.len(), 4);
    let mut tracking: Vec<&str> = delivered.iter().map(|d| d.tracking_id.as_str()).collect();
    tracking.dedup();
    assert_eq!(tracking.len(), 4);

    // Ack the buffer_state and the third event only; junk from the client is recorded and ignored.
    ack(&mut ws, &ids[0]).await?;
    ws.send(Message::text("this is not json")).await?;
    ws.send(Message::text("[1,2,3]")).await?;
    ack(&mut ws, &ids[3]).await?;
    f.sim.wait_acked(ids[3].as_str().ok_or("id")?, WAIT).await?;
    let acked: Vec<bool> = f
        .sim
        .mercury_delivered(None)
        .iter()
        .map(|d| d.acked)
        .collect();
    assert_eq!(acked, vec![true, false, false, true]);
    let (_, acks) = f
        .admin(reqwest::Method::GET, "/admin/mercury/acks", None)
        .await?;
    assert_eq!(acks[0]["messageId"], ids[0]);
    assert_eq!(acks[1]["connection"], conn.id);
    let (_, listed) = f
        .admin(
            reqwest::Method::GET,
            &format!("/admin/mercury/delivered?registration={}", f.device),
            None,
        )
        .await?;
    assert_eq!(listed[3]["sequenceNumber"], 4);
    assert_eq!(listed[3]["eventType"], "calendar.meeting.update");
    assert_eq!(listed[3]["acked"], true);
    let (_, received) = f
        .admin(reqwest::Method::GET, "/admin/mercury/received", None)
        .await?;
    assert_eq!(received[2]["text"], "this is not json");
    assert_eq!(received[2]["connection"], conn.id);

    // Still online after the junk: the next event arrives.
    f.sim.mercury_push_to(
        &f.device,
        json!({"eventType": "device.control", "action": "mute"}),
    )?;
    assert_eq!(next_json(&mut ws).await?["sequenceNumber"], 5);
    // Pushing needs an eventType.
    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/mercury/events",
            Some(json!({"data": {"x": 1}})),
        )
        .await?;
    assert_eq!(status, 400);
    assert!(f.sim.mercury_push(json!("text")).is_err());
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn pongs_answer_mismatch_withhold() -> Result {
    let f = fixture().await?;
    let (mut ws, _) = f.online().await?;
    let id = f.sim.wait_mercury_online(WAIT).await?.id;
    send_json(&mut ws, json!({"id": "p1", "type": "ping"})).await?;
    assert_eq!(next_text(&mut ws).await?, r#"{"type":"pong","id":"p1"}"#);

    f.post("/admin/mercury/pongs", json!({"mode": "mismatch"}))
        .await?;
    send_json(&mut ws, json!({"id": "p2", "type": "ping"})).await?;
    let pong = next_json(&mut ws).await?;
    assert_eq!(pong["type"], "pong");
    assert!(pong["id"].is_string() && pong["id"] != "p2", "{pong}");

    f.sim.mercury_set_pong_mode("withhold")?;
    send_json(&mut ws, json!({"id": "p3", "type": "ping"})).await?;
    // Once the server has read p3, answering again shows p3 got nothing: frames keep their order,
    // so p4's pong being next proves no pong for p3 was sent before it.
    f.sim.wait_connection(id, |c| c.pings == 3, WAIT).await?;
    f.sim.mercury_set_pong_mode("answer")?;
    send_json(&mut ws, json!({"id": "p4", "type": "ping"})).await?;
    assert_eq!(next_json(&mut ws).await?["id"], "p4");
    let c = f
        .sim
        .wait_connection(id, |c| c.pongs_sent == 3, WAIT)
        .await?;
    assert_eq!(c.pings, 4);
    assert!(f.sim.mercury_set_pong_mode("sometimes").is_err());
    let (_, mode) = f
        .admin(reqwest::Method::GET, "/admin/mercury/pongs", None)
        .await?;
    assert_eq!(mode, json!({"mode": "answer"}));
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn skip_sequence_makes_a_gap() -> Result {
    let f = fixture().await?;
    let (mut ws, _) = f.online().await?;
    f.sim.mercury_push(json!({"eventType": "a"}))?;
    assert_eq!(next_json(&mut ws).await?["sequenceNumber"], 2);
    f.post("/admin/mercury/skip-sequence", json!({"count": 3}))
        .await?;
    let out = f.sim.mercury_push(json!({"eventType": "b"}))?;
    assert_eq!(out[0].sequence_number, 6);
    assert_eq!(next_json(&mut ws).await?["sequenceNumber"], 6);
    f.sim.mercury_push(json!({"eventType": "c"}))?;
    assert_eq!(
        next_json(&mut ws).await?["sequenceNumber"],
        7,
        "the skip is used up"
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn shutdown_make_before_break() -> Result {
    let f = fixture().await?;
    let (mut old, _) = f.online().await?;
    let old_id = f.sim.wait_mercury_online(WAIT).await?.id;

    let sent = f.post("/admin/mercury/shutdown", json!({})).await?;
    let frame = next_text(&mut old).await?;
    let shutdown_id = sent["shutdown"][0]["id"].as_str().ok_or("no id")?;
    assert_eq!(
        frame,
        format!(r#"{{"id":"{shutdown_id}","type":"shutdown"}}"#)
    );
    assert_eq!(sent["shutdown"][0]["connection"], old_id);
    assert_eq!(
        f.connection(old_id).await?.state,
        ConnectionState::ShuttingDown
    );
    ack(&mut old, &json!(shutdown_id)).await?;
    f.sim.wait_acked(shutdown_id, WAIT).await?;

    // Still the old socket's events while the new one is not online yet.
    f.sim.mercury_push(json!({"eventType": "e1"}))?;
    let mut new = f.connect(&f.device).await?;
    let new_id = f.sim.wait_connections(|cs| cs.len() == 2, WAIT).await?[1].id;
    f.sim.mercury_push(json!({"eventType": "e2"}))?;
    assert_eq!(
        f.connection(new_id).await?.state,
        ConnectionState::Authorizing
    );
    assert_eq!(
        f.connection(old_id).await?.state,
        ConnectionState::ShuttingDown
    );

    authorize(&mut new, &format!("Bearer {}", f.token)).await?;
    let buffer_state = next_json(&mut new).await?;
    assert_eq!(buffer_state["data"]["eventType"], "mercury.buffer_state");
    assert_eq!(buffer_state["sequenceNumber"], 1);
    f.sim.mercury_push(json!({"eventType": "e3"}))?;
    let e3 = next_json(&mut new).await?;
    assert_eq!(
        (
            e3["data"]["eventType"].as_str(),
            e3["sequenceNumber"].as_u64()
        ),
        (Some("e3"), Some(2))
    );

    // The old socket got e1 and e2, then (only now) 4001.
    for (name, seq) in [("e1", 2), ("e2", 3)] {
        let ev = next_json(&mut old).await?;
        assert_eq!(ev["data"]["eventType"], name);
        assert_eq!(ev["sequenceNumber"], seq);
    }
    assert_eq!(
        next_close(&mut old).await?,
        (4001, "replaced after switchover".into())
    );
    let closed = f.closed(old_id).await?;
    assert_eq!(
        (closed.close_code, closed.closed_by),
        (Some(4001), Some(ClosedBy::Server))
    );
    assert_eq!(f.connection(new_id).await?.state, ConnectionState::Online);
    let by_conn: Vec<(u64, String)> = f
        .sim
        .mercury_delivered(Some(&f.device))
        .into_iter()
        .map(|d| (d.connection, d.event_type))
        .collect();
    assert_eq!(
        by_conn,
        vec![
            (old_id, "mercury.buffer_state".into()),
            (old_id, "e1".into()),
            (old_id, "e2".into()),
            (new_id, "mercury.buffer_state".into()),
            (new_id, "e3".into()),
        ]
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_new_socket_without_shutdown_replaces_with_4000() -> Result {
    let f = fixture().await?;
    let (mut old, _) = f.online().await?;
    let old_id = f.sim.wait_mercury_online(WAIT).await?.id;
    let (mut new, _) = f.online().await?;
    assert_eq!(next_close(&mut old).await?, (4000, "replaced".into()));
    assert_eq!(f.closed(old_id).await?.close_code, Some(4000));
    let online = f.sim.wait_mercury_online(WAIT).await?;
    assert_ne!(online.id, old_id);
    f.sim.mercury_push(json!({"eventType": "x"}))?;
    assert_eq!(next_json(&mut new).await?["sequenceNumber"], 2);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn stall_holds_reads_and_writes() -> Result {
    let f = fixture().await?;
    let (mut ws, _) = f.online().await?;
    let id = f.sim.wait_mercury_online(WAIT).await?.id;
    let stalled = f
        .post("/admin/mercury/stall", json!({"stalled": true}))
        .await?;
    assert_eq!(stalled["connections"], 1);
    f.sim.wait_connection(id, |c| c.stalled, WAIT).await?;
    f.sim.mercury_push(json!({"eventType": "held"}))?;
    send_json(&mut ws, json!({"id": "p1", "type": "ping"})).await?;
    // Nothing may arrive while stalled: neither the event nor a pong. A short wait is the only way
    // to show an absence.
    assert!(
        tokio::time::timeout(QUIET, ws.next()).await.is_err(),
        "a stalled socket wrote"
    );
    let c = f.connection(id).await?;
    assert_eq!(
        (c.pings, c.state),
        (0, ConnectionState::Online),
        "a stalled socket read"
    );

    // Resumed: the held event first, then the ping is read and answered.
    assert_eq!(f.sim.mercury_stall(false), 1);
    assert_eq!(next_json(&mut ws).await?["data"]["eventType"], "held");
    assert_eq!(
        next_json(&mut ws).await?,
        json!({"type": "pong", "id": "p1"})
    );

    // A stalled socket that gets replaced cannot carry a close frame: its TCP is dropped.
    assert!(f.sim.mercury_stall_connection(id, true));
    let (mut next, _) = f.online().await?;
    let closed = f.closed(id).await?;
    assert_eq!(closed.closed_by, Some(ClosedBy::Aborted));
    assert!(
        closed
            .close_reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("replaced"),
        "{closed:?}"
    );
    expect_no_close_frame(&mut ws).await?;

    // An admin close still reaches a stalled socket.
    let next_id = f.sim.wait_mercury_online(WAIT).await?.id;
    assert!(f.sim.mercury_stall_connection(next_id, true));
    let closed = f
        .post(
            "/admin/mercury/close",
            json!({"connection": next_id, "code": 4999, "reason": "bye"}),
        )
        .await?;
    assert_eq!(closed, json!({"closed": 1}));
    assert_eq!(next_close(&mut next).await?, (4999, "bye".into()));
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn raw_and_oversized_frames() -> Result {
    let f = fixture().await?;
    let (mut ws, _) = f.online().await?;
    let id = f.sim.wait_mercury_online(WAIT).await?.id;
    let text = r#"{"id":"r1",  "data":{"eventType":"raw"}}"#;
    let out = f.post("/admin/mercury/raw", json!({"text": text})).await?;
    assert_eq!(out, json!({"connections": [id]}));
    assert_eq!(next_text(&mut ws).await?, text);

    let size = 1024 * 1024 + 1;
    f.post(
        "/admin/mercury/raw",
        json!({"oversized_bytes": size, "trackingId": "big-1"}),
    )
    .await?;
    let big = next_text(&mut ws).await?;
    assert_eq!(big.len(), size);
    let v: Value = serde_json::from_str(&big)?;
    assert_eq!(v["trackingId"], "big-1");
    assert!(v.get("sequenceNumber").is_none());
    assert_eq!(f.sim.mercury_push_oversized(300, "small")?, vec![id]);
    assert_eq!(next_text(&mut ws).await?.len(), 300);
    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/mercury/raw",
            Some(json!({"oversized_bytes": 5})),
        )
        .await?;
    assert_eq!(status, 400);

    // Raw frames use no sequence numbers.
    f.sim.mercury_push(json!({"eventType": "after"}))?;
    assert_eq!(next_json(&mut ws).await?["sequenceNumber"], 2);

    // The older raw route: the body byte for byte to every online socket.
    let resp = f
        .http
        .post(format!("{}/admin/events", f.sim.admin_url()))
        .header("content-type", "application/json")
        .body(r#"{"legacy": 1}"#)
        .send()
        .await?;
    assert_eq!(resp.json::<Value>().await?, json!({"delivered": 1}));
    assert_eq!(next_text(&mut ws).await?, r#"{"legacy": 1}"#);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn feature_toggle_updates_wdm_and_pushes() -> Result {
    let f = fixture().await?;
    let (mut ws, _) = f.online().await?;
    let out = f
        .post(
            "/admin/mercury/feature-toggle",
            json!({"key": "roomd-obtp", "val": "false", "type": "dev"}),
        )
        .await?;
    assert_eq!(out["delivered"][0]["eventType"], "featureToggle_update");
    let ev = next_json(&mut ws).await?;
    assert_eq!(
        ev["data"],
        json!({"eventType": "featureToggle_update",
               "featureToggle": {"key": "roomd-obtp", "val": "false", "type": "dev"}})
    );
    f.sim.mercury_feature_toggle("new-flag", "7", "USER")?;
    assert_eq!(
        next_json(&mut ws).await?["data"]["featureToggle"]["key"],
        "new-flag"
    );

    let dev: Value = f
        .http
        .get(&f.device_url)
        .bearer_auth(&f.token)
        .send()
        .await?
        .json()
        .await?;
    let find = |group: &str, key: &str| {
        dev["features"][group]
            .as_array()
            .and_then(|items| items.iter().find(|t| t["key"] == key))
            .map(|t| t["val"].clone())
    };
    assert_eq!(find("developer", "roomd-obtp"), Some(json!("false")));
    assert_eq!(find("developer", "roomd-max-bookings"), Some(json!("50")));
    assert_eq!(find("user", "new-flag"), Some(json!("7")));
    assert_eq!(find("user", "theme"), Some(json!("dark")));

    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/mercury/feature-toggle",
            Some(json!({"key": "k", "val": "v", "type": "ORG"})),
        )
        .await?;
    assert_eq!(status, 400);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn admin_close_abort_and_listing() -> Result {
    let f = fixture().await?;
    let (mut a, _) = f.online().await?;
    let (status, err) = f
        .admin(
            reqwest::Method::POST,
            "/admin/ws/close",
            Some(json!({"code": 1006})),
        )
        .await?;
    assert_eq!(status, 400, "{err}");
    let (_, n) = f.admin(reqwest::Method::GET, "/admin/ws", None).await?;
    assert_eq!(n, json!({"connected": 1}));
    let closed = f
        .post(
            "/admin/ws/close",
            json!({"code": 1000, "reason": "done (forced)"}),
        )
        .await?;
    assert_eq!(closed, json!({"closed": 1}));
    assert_eq!(next_close(&mut a).await?, (1000, "done (forced)".into()));

    let (mut b, _) = f.online().await?;
    assert_eq!(f.sim.abort_websockets(), 1);
    expect_no_close_frame(&mut b).await?;

    // The client closing is recorded as the client's.
    let (mut c, _) = f.online().await?;
    let c_id = f.sim.wait_mercury_online(WAIT).await?.id;
    c.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 1000u16.into(),
        reason: "Pong not received".into(),
    }))
    .await?;
    let info = f.closed(c_id).await?;
    assert_eq!(
        (
            info.closed_by,
            info.close_code,
            info.close_reason.as_deref()
        ),
        (
            Some(ClosedBy::Client),
            Some(1000),
            Some("Pong not received")
        )
    );

    let conns = f
        .sim
        .wait_connections(
            |cs| cs.iter().all(|c| c.state == ConnectionState::Closed),
            WAIT,
        )
        .await?;
    let by: Vec<Option<ClosedBy>> = conns.iter().map(|c| c.closed_by).collect();
    assert_eq!(
        by,
        vec![
            Some(ClosedBy::Server),
            Some(ClosedBy::Aborted),
            Some(ClosedBy::Client)
        ]
    );
    let (_, listed) = f
        .admin(reqwest::Method::GET, "/admin/mercury/connections", None)
        .await?;
    assert_eq!(listed[0]["state"], "closed");
    assert_eq!(listed[0]["close_code"], 1000);
    assert_eq!(listed[1]["closed_by"], "aborted");
    assert!(listed[2]["opened_at_ms"].as_u64() <= listed[2]["closed_at_ms"].as_u64());
    assert_eq!(f.sim.ws_connected(), 0);
    // With nothing happening, a wait fails at its timeout with a message.
    let err = f
        .sim
        .wait_mercury_online(Duration::from_millis(50))
        .await
        .expect_err("nothing is online");
    assert!(err.to_string().contains("timed out"), "{err}");
    f.sim.shutdown().await;
    Ok(())
}

/// A front-end restart drops the socket without a close frame, refuses connects while down, 409s a
/// second restart meanwhile, and comes back on the same port with the same token and registration.
#[tokio::test]
async fn front_end_restart_drops_refuses_and_keeps_the_state() -> Result {
    let f = fixture().await?;
    let (mut ws, _) = f.online().await?;
    let id = f
        .sim
        .mercury_connections()
        .last()
        .ok_or("no connection")?
        .id;

    let done = f.post("/admin/restart", json!({"down_ms": 400})).await?;
    assert_eq!(done, json!({"aborted_sockets": 1, "down_ms": 400}));
    expect_no_close_frame(&mut ws).await?;
    assert_eq!(
        f.closed(id).await?.closed_by,
        Some(roomd_sim::ClosedBy::Aborted)
    );
    // Closed when the call returned: no connect can get through until the down time is over.
    for addr in [f.sim.https_addr(), f.sim.proxy_addr(), f.sim.alt_addr()] {
        let err = TcpStream::connect(addr)
            .await
            .err()
            .ok_or("connect while down")?;
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{addr}");
    }
    let (status, busy) = f
        .admin(
            reqwest::Method::POST,
            "/admin/restart",
            Some(json!({"down_ms": 1})),
        )
        .await?;
    assert_eq!(status, 409, "{busy}");

    // A device retries with backoff; so does this client, bounded by WAIT.
    let deadline = Instant::now() + WAIT;
    let (mut ws, first) = loop {
        match f.online().await {
            Ok(online) => break online,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "still down");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    };
    assert_eq!(first["sequenceNumber"], 1, "{first}");
    assert_eq!(f.sim.alt_mode(), "serve");
    ws.close(None).await?;
    let dev = f
        .http
        .get(&f.device_url)
        .bearer_auth(&f.token)
        .send()
        .await?;
    assert_eq!(dev.status(), 200, "the device survived the restart");
    Ok(())
}
