//! End-to-end tests of the simulated Meeting Server events listener (seed 001, wire profile §9),
//! with a tokio-tungstenite client over a tokio-rustls stream that trusts only `cms-ca.pem`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use roomd_sim::{
    CmsCallFields, CmsConfigPatch, CmsParticipantFields, CmsScript, CmsSnapshot,
    CmsSubscriptionState, MeetingServerScenario, Scenario, SimHandle, SimInfo,
};
use roomd_testkit::sim::start_in_tempdir;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{self, Message};

const WAIT: Duration = Duration::from_secs(10);

/// How long a test watches for something that must NOT happen (a message held back by the ack
/// gate or by silence). Short: the server would send at once if it were going to.
const QUIET: Duration = Duration::from_millis(300);

/// The call GUID of seed 001 §5.
const GUID: &str = "97c771ae-fc2e-4257-b129-30ee818e034b";

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

type Ws = WebSocketStream<TlsStream<TcpStream>>;

struct Fixture {
    sim: SimHandle,
    /// Trusts `cms-ca.pem`, presents no client certificate.
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> Result<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let builder = ClientConfig::builder_with_provider(roomd_sim::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match identity {
        Some((cert_pem, key_pem)) => {
            let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
            builder.with_client_auth_cert(certs, key)?
        }
        None => builder.with_no_client_auth(),
    })
}

async fn fixture_with(scenario: Scenario) -> Result<Fixture> {
    let (sim, dir) = start_in_tempdir(scenario).await?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(sim.cms_ca_pem(), None)?)
        .timeout(WAIT)
        .build()?;
    Ok(Fixture {
        sim,
        http,
        _dir: dir,
    })
}

async fn fixture() -> Result<Fixture> {
    fixture_with(Scenario::default()).await
}

impl Fixture {
    /// `POST /api/v1/authTokens` with the default credentials.
    async fn token(&self) -> Result<String> {
        token_with(&self.http, &self.sim.meeting_server_url()).await
    }

    /// Opens an events socket; `Ok(Err(status))` when the server answered the upgrade with an
    /// HTTP status instead of 101.
    async fn try_connect(
        &self,
        token: &str,
        with_cert: bool,
    ) -> Result<std::result::Result<Client, u16>> {
        let identity = with_cert.then(|| {
            (
                self.sim.cms_client_cert_pem(),
                self.sim.cms_client_key_pem(),
            )
        });
        let config = client_config(self.sim.cms_ca_pem(), identity)?;
        let tcp = TcpStream::connect(self.sim.meeting_server_addr()).await?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let url = format!(
            "wss://localhost:{}/events/v1?authToken={token}",
            self.sim.meeting_server_addr().port()
        );
        match tokio_tungstenite::client_async(url, tls).await {
            Ok((ws, _)) => {
                let id = self
                    .sim
                    .meeting_server()
                    .open_connections()
                    .map(|c| c.id)
                    .max()
                    .ok_or("no open connection after the upgrade")?;
                Ok(Ok(Client { ws, next_id: 1, id }))
            }
            Err(tungstenite::Error::Http(resp)) => Ok(Err(resp.status().as_u16())),
            Err(e) => Err(e.into()),
        }
    }

    async fn connect_with(&self, token: &str) -> Result<Client> {
        self.try_connect(token, false)
            .await?
            .map_err(|status| format!("upgrade refused with {status}").into())
    }

    async fn connect(&self) -> Result<Client> {
        let token = self.token().await?;
        self.connect_with(&token).await
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        roomd_testkit::sim::admin(&self.http, &self.sim, method, path, body).await
    }

    async fn wait(
        &self,
        what: &str,
        pred: impl FnMut(&CmsSnapshot) -> bool,
    ) -> Result<CmsSnapshot> {
        self.sim
            .wait_meeting_server(pred, WAIT)
            .await
            .map_err(|e| format!("{what}: {e:#}").into())
    }
}

async fn token_with(http: &reqwest::Client, base: &str) -> Result<String> {
    let resp = http
        .post(format!("{base}/api/v1/authTokens"))
        .basic_auth("roomd", Some("roomd-secret"))
        .send()
        .await?;
    if resp.status() != 200 {
        return Err(format!("authTokens answered {}", resp.status()).into());
    }
    Ok(resp
        .headers()
        .get("x-cisco-cms-auth-token")
        .ok_or("no X-Cisco-CMS-Auth-Token")?
        .to_str()?
        .to_owned())
}

/// An events client: numbers its own messages, acks the server's on request.
struct Client {
    ws: Ws,
    next_id: u64,
    /// The simulator's id for this connection.
    id: u64,
}

impl Client {
    async fn next_frame(&mut self) -> Result<Message> {
        Ok(tokio::time::timeout(WAIT, self.ws.next())
            .await
            .map_err(|_| "timed out waiting for a frame")?
            .ok_or("socket ended")??)
    }

    /// The next frame, which must be JSON text: (raw text, parsed).
    async fn next_json(&mut self) -> Result<(String, Value)> {
        match self.next_frame().await? {
            Message::Text(t) => {
                let text = t.as_str().to_owned();
                let v = serde_json::from_str(&text)?;
                Ok((text, v))
            }
            other => Err(format!("expected a text frame, got {other:?}").into()),
        }
    }

    async fn send_json(&mut self, v: &Value) -> Result {
        self.ws.send(Message::text(v.to_string())).await?;
        Ok(())
    }

    /// Sends `{"type":"message","message":{"messageId":<next>, ...body}}`; answers the id.
    async fn message(&mut self, body: Value) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = serde_json::Map::new();
        message.insert("messageId".into(), json!(id));
        message.extend(body.as_object().ok_or("body is not an object")?.clone());
        self.send_json(&json!({ "type": "message", "message": message }))
            .await?;
        Ok(id)
    }

    async fn expect_ack(&mut self, id: Value, status: &str) -> Result {
        let (_, v) = self.next_json().await?;
        let want = json!({"type": "messageAck", "messageAck": {"messageId": id, "status": status}});
        if v != want {
            return Err(format!("expected {want}, got {v}").into());
        }
        Ok(())
    }

    /// The next server message (not acked yet).
    async fn expect_message(&mut self) -> Result<Value> {
        let (_, v) = self.next_json().await?;
        if v["type"] != "message" {
            return Err(format!("expected a message, got {v}").into());
        }
        Ok(v["message"].clone())
    }

    async fn ack(&mut self, id: u64) -> Result {
        self.send_json(
            &json!({"type": "messageAck", "messageAck": {"messageId": id, "status": "success"}}),
        )
        .await
    }

    /// The next server message, acked.
    async fn take(&mut self) -> Result<Value> {
        let m = self.expect_message().await?;
        let id = m["messageId"].as_u64().ok_or("message without messageId")?;
        self.ack(id).await?;
        Ok(m)
    }

    /// Sends a subscribeRequest and expects its `success` ack.
    async fn subscribe(&mut self, subscriptions: Value) -> Result {
        let id = self
            .message(json!({"type": "subscribeRequest", "subscriptions": subscriptions}))
            .await?;
        self.expect_ack(json!(id), "success").await
    }

    /// Fails if any frame arrives within `d`.
    async fn nothing_for(&mut self, d: Duration) -> Result {
        match tokio::time::timeout(d, self.ws.next()).await {
            Err(_) => Ok(()),
            Ok(frame) => Err(format!("expected silence, got {frame:?}").into()),
        }
    }

    /// The next frame must be a close frame: (code, reason).
    async fn expect_close(&mut self) -> Result<(u16, String)> {
        match self.next_frame().await? {
            Message::Close(Some(cf)) => Ok((u16::from(cf.code), cf.reason.as_str().to_owned())),
            other => Err(format!("expected a close frame, got {other:?}").into()),
        }
    }
}

fn kinds(s: &CmsSnapshot) -> Vec<&str> {
    s.violations.iter().map(|v| v.kind.as_str()).collect()
}

#[tokio::test]
async fn listener_info_files_and_auth() -> Result {
    let f = fixture().await?;
    let info = f.sim.info().clone();
    assert_eq!(info.meeting_server, f.sim.meeting_server_addr());
    assert_eq!(
        info.meeting_server_url,
        format!("https://localhost:{}", info.meeting_server.port())
    );
    assert_eq!(std::fs::read_to_string(&info.cms_ca)?, f.sim.cms_ca_pem());
    assert_ne!(f.sim.cms_ca_pem(), f.sim.ca_pem());
    assert_eq!(
        std::fs::read_to_string(f.sim.cms_client_cert_path())?,
        f.sim.cms_client_cert_pem()
    );
    let key = std::fs::read_to_string(f.sim.cms_client_key_path())?;
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(f.sim.cms_client_key_path())?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let dir = f.sim.ca_path().parent().ok_or("no state dir")?;
    let written: SimInfo = serde_json::from_str(&std::fs::read_to_string(dir.join("sim.json"))?)?;
    assert_eq!(written, info);
    assert_eq!(f.sim.cms_ca_path(), dir.join("cms-ca.pem"));
    let (_, admin_info) = f.admin(reqwest::Method::GET, "/admin/info", None).await?;
    assert_eq!(admin_info["meeting_server_url"], info.meeting_server_url);

    // Credentials.
    let url = format!("{}/api/v1/authTokens", f.sim.meeting_server_url());
    let resp = f.http.post(&url).send().await?;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let resp = f
        .http
        .post(&url)
        .basic_auth("roomd", Some("wrong"))
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    let token = f.token().await?;
    assert!(uuid_like(&token), "{token}");

    // Token checks come before the upgrade; a token opens several sockets.
    assert_eq!(f.try_connect("nope", false).await?.err(), Some(401));
    let a = f.connect_with(&token).await?;
    let b = f.connect_with(&token).await?;
    assert_ne!(a.id, b.id);
    let plain = f
        .http
        .get(format!(
            "{}/events/v1?authToken={token}",
            f.sim.meeting_server_url()
        ))
        .send()
        .await?;
    assert_eq!(plain.status(), 400, "a GET that is not an upgrade");
    let (_, expired) = f
        .admin(
            reqwest::Method::POST,
            "/admin/meeting-server/tokens/expire",
            None,
        )
        .await?;
    assert_eq!(expired, json!({"expired": 1}));
    assert_eq!(f.try_connect(&token, false).await?.err(), Some(401));

    let recorded: Vec<_> = f
        .sim
        .received()
        .into_iter()
        .filter(|r| r.listener == "meeting_server")
        .map(|r| r.path)
        .collect();
    assert!(recorded.iter().any(|p| p == "/api/v1/authTokens"));
    assert!(recorded.iter().any(|p| p == "/events/v1"));
    f.sim.shutdown().await;
    Ok(())
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

/// Seed 001 §5, message by message, with the guide's own numbers.
#[tokio::test]
async fn seed_001_section_5_flow() -> Result {
    let f = fixture().await?;
    let mut c = f.connect().await?;
    c.next_id = 8;
    let id = c
        .message(json!({"type": "subscribeRequest", "subscriptions": [
            {"index": 3, "type": "calls", "elements": ["name", "participants"]}
        ]}))
        .await?;
    assert_eq!(id, 8);
    c.expect_ack(json!(8), "success").await?;
    // Byte for byte as the guide shows it (key order included).
    let (raw, _) = c.next_json().await?;
    assert_eq!(
        raw,
        r#"{"type":"message","message":{"messageId":1,"type":"subscriptionUpdate","subscriptions":[{"index":3,"state":"pending"}]}}"#
    );
    c.ack(1).await?;
    assert_eq!(
        c.take().await?,
        json!({"messageId": 2, "type": "subscriptionUpdate", "subscriptions": [{"index": 3, "state": "active"}]})
    );

    f.sim.cms_create_call(CmsCallFields {
        call: Some(GUID.into()),
        name: Some("Andy's coSpace".into()),
        ..CmsCallFields::default()
    })?;
    assert_eq!(
        c.take().await?,
        json!({"messageId": 3, "type": "callListUpdate", "subscriptionIndex": 3, "updates": [
            {"call": GUID, "updateType": "add", "name": "Andy's coSpace", "participants": 0}
        ]})
    );
    let alice = f.sim.cms_add_participant(
        GUID,
        CmsParticipantFields {
            name: Some("Alice".into()),
            uri: Some("alice".into()),
            ..CmsParticipantFields::default()
        },
    )?;
    assert_eq!(
        c.take().await?,
        json!({"messageId": 4, "type": "callListUpdate", "subscriptionIndex": 3, "updates": [
            {"call": GUID, "updateType": "update", "participants": 1}
        ]})
    );

    // Step 9: the complete set again, now with callRoster and callInfo for the call.
    let id = c
        .message(json!({"type": "subscribeRequest", "subscriptions": [
            {"index": 1, "type": "callRoster", "call": GUID, "elements": ["name", "uri", "state", "importance"]},
            {"index": 2, "type": "callInfo", "call": GUID, "elements": ["name", "participants", "streaming"]},
            {"index": 3, "type": "calls", "elements": ["name", "participants"]}
        ]}))
        .await?;
    assert_eq!(id, 9);
    c.expect_ack(json!(9), "success").await?;
    assert_eq!(
        c.take().await?,
        json!({"messageId": 5, "type": "subscriptionUpdate", "subscriptions": [
            {"index": 1, "state": "pending"}, {"index": 2, "state": "pending"}
        ]})
    );
    assert_eq!(
        c.take().await?,
        json!({"messageId": 6, "type": "subscriptionUpdate", "subscriptions": [
            {"index": 1, "state": "active"}, {"index": 2, "state": "active"}
        ]})
    );
    assert_eq!(
        c.take().await?,
        json!({"messageId": 7, "type": "rosterUpdate", "subscriptionIndex": 1, "updates": [
            {"participant": alice.participant, "updateType": "add", "name": "Alice", "uri": "alice",
             "state": "connected", "importance": null}
        ]})
    );
    assert_eq!(
        c.take().await?,
        json!({"messageId": 8, "type": "callInfoUpdate", "subscriptionIndex": 2,
               "callInfo": {"name": "Andy's coSpace", "participants": 1, "streaming": "inactive"}})
    );

    // A second participant: the roster add, then the count on callInfo and calls (index order).
    let bob = f.sim.cms_add_participant(
        GUID,
        CmsParticipantFields {
            name: Some("Bob".into()),
            uri: Some("bob".into()),
            direction: Some("outgoing".into()),
            state: Some("ringing".into()),
            ..CmsParticipantFields::default()
        },
    )?;
    assert_eq!(
        c.take().await?,
        json!({"messageId": 9, "type": "rosterUpdate", "subscriptionIndex": 1, "updates": [
            {"participant": bob.participant, "updateType": "add", "name": "Bob", "uri": "bob",
             "state": "ringing", "importance": null}
        ]})
    );
    assert_eq!(
        c.take().await?,
        json!({"messageId": 10, "type": "callInfoUpdate", "subscriptionIndex": 2, "callInfo": {"participants": 2}})
    );
    assert_eq!(
        c.take().await?,
        json!({"messageId": 11, "type": "callListUpdate", "subscriptionIndex": 3, "updates": [
            {"call": GUID, "updateType": "update", "participants": 2}
        ]})
    );
    // Only changed, subscribed elements: videoMuted is not subscribed, state and importance are.
    f.sim.cms_update_participant(
        GUID,
        &bob.participant,
        CmsParticipantFields {
            video_muted: Some(true),
            ..CmsParticipantFields::default()
        },
    )?;
    f.sim.cms_update_participant(
        GUID,
        &bob.participant,
        CmsParticipantFields {
            state: Some("connected".into()),
            importance: Some(Some(5)),
            ..CmsParticipantFields::default()
        },
    )?;
    assert_eq!(
        c.take().await?,
        json!({"messageId": 12, "type": "rosterUpdate", "subscriptionIndex": 1, "updates": [
            {"participant": bob.participant, "updateType": "update", "state": "connected", "importance": 5}
        ]})
    );

    // The simulator's view: every frame in order, the set, nothing outstanding.
    let snap = f
        .wait("the last ack", |s| {
            s.connection(c.id)
                .is_some_and(|x| x.awaiting_ack.is_none() && x.messages_sent == 12)
        })
        .await?;
    let conn = snap.connection(c.id).ok_or("connection")?;
    assert_eq!(conn.messages_received, 2);
    assert_eq!(
        conn.subscriptions
            .iter()
            .map(|s| (s.index, s.state))
            .collect::<Vec<_>>(),
        vec![
            (1, CmsSubscriptionState::Active),
            (2, CmsSubscriptionState::Active),
            (3, CmsSubscriptionState::Active)
        ]
    );
    assert!(snap.violations.is_empty(), "{:?}", snap.violations);
    let frames = f.sim.cms_frames(c.id).ok_or("frames")?;
    let sent_ids: Vec<u64> = frames
        .iter()
        .filter(|fr| fr.body["type"] == "message" && fr.direction == roomd_sim::CmsDirection::Sent)
        .filter_map(|fr| fr.body["message"]["messageId"].as_u64())
        .collect();
    assert_eq!(sent_ids, (1..=12).collect::<Vec<_>>());
    assert_eq!(
        frames.len(),
        2 + 2 + 12 + 12,
        "2 requests, 2 acks, 12 messages, 12 acks"
    );
    let (status, listed) = f
        .admin(
            reqwest::Method::GET,
            &format!("/admin/meeting-server/connections/{}/frames", c.id),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(frames.len()));
    f.sim.shutdown().await;
    Ok(())
}

/// The scripted conference through the admin API: the client discovers the call, subscribes to
/// its roster, sees three joins and the move (remove + add with movedParticipant), then the end.
#[tokio::test]
async fn scripted_conference_move_and_end() -> Result {
    let f = fixture().await?;
    let mut c = f.connect().await?;
    let calls = json!({"index": 1, "type": "calls", "elements": ["name", "participants"]});
    c.subscribe(json!([calls])).await?;
    assert_eq!(c.take().await?["subscriptions"][0]["state"], "pending");
    assert_eq!(c.take().await?["subscriptions"][0]["state"], "active");

    let (status, plan) = f
        .admin(
            reqwest::Method::POST,
            "/admin/meeting-server/script",
            Some(json!({"call": GUID})),
        )
        .await?;
    assert_eq!(status, 200, "{plan}");
    let plan: CmsScript = serde_json::from_value(plan)?;
    assert_eq!(
        (plan.call.as_str(), plan.name.as_str()),
        (GUID, "Andy's coSpace")
    );
    assert_eq!(plan.participants.len(), 3);
    assert_eq!(plan.bridge, f.sim.meeting_server().bridge);

    let m = c.take().await?;
    assert_eq!(
        m["updates"],
        json!([{"call": GUID, "updateType": "add", "name": "Andy's coSpace", "participants": 0}])
    );
    // The script waits for a roster subscription, since this socket watches the call list.
    let roster_elements = json!([
        "name",
        "uri",
        "state",
        "direction",
        "canMove",
        "movedParticipant",
        "movedParticipantCallBridge"
    ]);
    c.subscribe(json!([calls, {"index": 2, "type": "callRoster", "call": GUID, "elements": roster_elements}]))
        .await?;
    assert_eq!(
        c.take().await?["subscriptions"],
        json!([{"index": 2, "state": "pending"}])
    );
    assert_eq!(
        c.take().await?["subscriptions"],
        json!([{"index": 2, "state": "active"}])
    );
    let people = [
        ("Alice", "alice", "incoming"),
        ("Bob", "bob", "outgoing"),
        ("Carol", "carol", "incoming"),
    ];
    for (n, (name, uri, direction)) in people.iter().enumerate() {
        let m = c.take().await?;
        assert_eq!(
            (
                m["type"].clone(),
                m["subscriptionIndex"].clone(),
                m["updates"].clone()
            ),
            (
                json!("rosterUpdate"),
                json!(2),
                json!([{
                    "participant": plan.participants[n], "updateType": "add", "name": name, "uri": uri,
                    "state": "connected", "direction": direction, "canMove": true
                }])
            )
        );
        let m = c.take().await?;
        assert_eq!(
            m["updates"],
            json!([{"call": GUID, "updateType": "update", "participants": n + 1}])
        );
    }
    // The move: Bob leaves, a new participant arrives carrying where it came from.
    let m = c.take().await?;
    assert_eq!(
        m["updates"],
        json!([{"participant": plan.participants[1], "updateType": "remove"}])
    );
    assert_eq!(c.take().await?["updates"][0]["participants"], 2);
    let m = c.take().await?;
    assert_eq!(
        m["updates"],
        json!([{"participant": plan.moved, "updateType": "add", "name": "Bob", "uri": "bob",
                "state": "connected", "direction": "outgoing", "canMove": true,
                "movedParticipant": plan.participants[1], "movedParticipantCallBridge": plan.bridge}])
    );
    assert_eq!(c.take().await?["updates"][0]["participants"], 3);
    let snap = f
        .wait("the script to finish", |s| {
            s.script.as_ref().is_some_and(|x| x.done)
        })
        .await?;
    let script = snap.script.as_ref().ok_or("script")?;
    assert_eq!((script.completed, script.error.as_deref()), (5, None));
    let call = snap.call(GUID).ok_or("the call stays up")?;
    let names: Vec<&str> = call.roster.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Alice", "Carol", "Bob"]);

    // A second script while the call is up: 409.
    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/meeting-server/script",
            Some(json!({"call": GUID})),
        )
        .await?;
    assert_eq!(status, 409);

    // The end: calls remove, then the roster subscription is deactivated.
    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            &format!("/admin/meeting-server/calls/{GUID}/end"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        c.take().await?["updates"],
        json!([{"call": GUID, "updateType": "remove"}])
    );
    assert_eq!(
        c.take().await?,
        json!({"messageId": 17, "type": "subscriptionUpdate", "subscriptions": [{"index": 2, "state": "deactivated"}]})
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn connection_and_subscription_limits() -> Result {
    let f = fixture().await?;
    let token = f.token().await?;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(f.connect_with(&token).await?);
    }
    assert_eq!(f.try_connect(&token, false).await?.err(), Some(503));
    let snap = f.sim.meeting_server();
    assert_eq!(kinds(&snap), ["max_connections"]);
    assert_eq!(snap.violations[0].connection, None);
    assert_eq!(snap.open_connections().count(), 5);

    // A closed socket frees its slot.
    let mut last = clients.pop().ok_or("no client")?;
    last.ws.close(None).await?;
    f.wait("the socket to close", |s| s.open_connections().count() == 4)
        .await?;
    let closed = f.sim.cms_connections();
    let closed = closed
        .iter()
        .find(|x| x.id == last.id)
        .ok_or("closed conn")?;
    assert_eq!(closed.close.as_ref().map(|x| x.by.as_str()), Some("client"));
    clients.push(f.connect_with(&token).await?);

    // 101 subscriptions: failure, nothing changes.
    let c = &mut clients[0];
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"index": i, "type": "calls"}))
        .collect();
    let id = c
        .message(json!({"type": "subscribeRequest", "subscriptions": too_many}))
        .await?;
    c.expect_ack(json!(id), "failure").await?;
    c.nothing_for(QUIET).await?;
    let snap = f.sim.meeting_server();
    assert!(
        snap.connection(c.id)
            .is_some_and(|x| x.subscriptions.is_empty())
    );
    assert_eq!(kinds(&snap), ["max_connections", "max_subscriptions"]);
    // 100 is fine.
    let enough: Vec<Value> = (0..100)
        .map(|i| json!({"index": i, "type": "calls"}))
        .collect();
    c.subscribe(Value::Array(enough)).await?;
    let m = c.take().await?;
    assert_eq!(m["subscriptions"].as_array().map(Vec::len), Some(100));
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ack_gating_and_ack_timeout() -> Result {
    let f = fixture().await?;
    f.sim.set_cms_config(CmsConfigPatch {
        ack_timeout_secs: Some(2),
        ..CmsConfigPatch::default()
    })?;
    let mut c = f.connect().await?;
    c.subscribe(json!([{"index": 1, "type": "calls"}])).await?;
    let pending = c.expect_message().await?;
    assert_eq!(pending["messageId"], 1);
    // Not acked: the "active" update waits behind it.
    c.nothing_for(QUIET).await?;
    let snap = f.sim.meeting_server();
    let conn = snap.connection(c.id).ok_or("connection")?;
    assert_eq!((conn.awaiting_ack, conn.queued), (Some(1), 1));
    // An ack for another id changes nothing.
    c.ack(7).await?;
    c.nothing_for(QUIET).await?;
    c.ack(1).await?;
    let active = c.take().await?;
    assert_eq!(
        (
            active["messageId"].clone(),
            active["subscriptions"][0]["state"].clone()
        ),
        (json!(2), json!("active"))
    );
    // Message 3 never acked: the server gives up after the ack timeout.
    f.sim.cms_create_call(CmsCallFields::default())?;
    assert_eq!(c.expect_message().await?["messageId"], 3);
    assert_eq!(
        c.expect_close().await?,
        (1008, "messageAck timeout".to_owned())
    );
    let snap = f
        .wait("the socket to close", |s| s.open_connections().count() == 0)
        .await?;
    assert_eq!(kinds(&snap), ["ack_timeout"]);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn unsupported_frames_close_with_1003_bad_messages_are_nacked() -> Result {
    let f = fixture().await?;
    let fragment = Message::Frame(Frame::message(
        b"{\"type\":".to_vec(),
        OpCode::Data(Data::Text),
        false,
    ));
    for (msg, kind) in [
        (Message::Ping(b"hi".to_vec().into()), "ping_frame"),
        (Message::Binary(vec![1u8, 2, 3].into()), "binary_frame"),
        (Message::Pong(Vec::new().into()), "pong_frame"),
        (fragment, "fragmented_frame"),
    ] {
        let mut c = f.connect().await?;
        c.ws.send(msg).await?;
        let (code, _) = c.expect_close().await?;
        assert_eq!(code, 1003, "{kind}");
        let snap = f
            .wait("the violation", |s| {
                s.violations.iter().any(|v| v.kind == kind)
            })
            .await?;
        let v = snap
            .violations
            .iter()
            .find(|v| v.kind == kind)
            .ok_or("violation")?;
        assert_eq!(v.connection, Some(c.id));
    }

    // Not JSON, an unknown message, an unknown envelope: ack failure, the socket stays.
    let mut c = f.connect().await?;
    c.ws.send(Message::text("hello")).await?;
    c.expect_ack(Value::Null, "failure").await?;
    let id = c.message(json!({"type": "callRosterRequest"})).await?;
    c.expect_ack(json!(id), "failure").await?;
    c.send_json(&json!({"type": "hello", "message": {"messageId": 42}}))
        .await?;
    c.expect_ack(json!(42), "failure").await?;
    let id = c
        .message(json!({"type": "subscribeRequest", "subscriptions": [{"index": 1, "type": "callInfo"}]}))
        .await?;
    c.expect_ack(json!(id), "failure").await?;
    c.subscribe(json!([{"index": 1, "type": "calls"}])).await?;
    assert_eq!(c.take().await?["type"], "subscriptionUpdate");
    let frames = f.sim.cms_frames(c.id).ok_or("frames")?;
    assert_eq!(
        frames[0].body,
        json!("hello"),
        "non-JSON text is kept as a string"
    );
    let snap = f.sim.meeting_server();
    assert_eq!(
        snap.violations
            .iter()
            .filter(|v| v.connection == Some(c.id))
            .map(|v| v.kind.as_str())
            .collect::<Vec<_>>(),
        ["invalid_message"; 4]
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn mutual_tls_when_required() -> Result {
    let f = fixture_with(Scenario {
        meeting_server: MeetingServerScenario {
            require_client_cert: true,
            ..MeetingServerScenario::default()
        },
        ..Scenario::default()
    })
    .await?;
    let base = f.sim.meeting_server_url();
    assert!(
        token_with(&f.http, &base).await.is_err(),
        "no client certificate: the handshake fails"
    );
    let with_cert = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(
            f.sim.cms_ca_pem(),
            Some((f.sim.cms_client_cert_pem(), f.sim.cms_client_key_pem())),
        )?)
        .timeout(WAIT)
        .build()?;
    let token = token_with(&with_cert, &base).await?;
    assert!(f.try_connect(&token, false).await.is_err());
    let mut c = f
        .try_connect(&token, true)
        .await?
        .map_err(|s| format!("refused with {s}"))?;
    c.subscribe(json!([{"index": 1, "type": "calls"}])).await?;
    assert_eq!(c.take().await?["type"], "subscriptionUpdate");

    // A certificate from another CA is refused too.
    let other = fixture().await?;
    let stranger = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(
            f.sim.cms_ca_pem(),
            Some((
                other.sim.cms_client_cert_pem(),
                other.sim.cms_client_key_pem(),
            )),
        )?)
        .timeout(WAIT)
        .build()?;
    assert!(token_with(&stranger, &base).await.is_err());
    other.sim.shutdown().await;

    // Switched off at run time: the next connection needs no certificate.
    let (status, config) = f
        .admin(
            reqwest::Method::PUT,
            "/admin/meeting-server/config",
            Some(json!({"require_client_cert": false})),
        )
        .await?;
    assert_eq!(
        (status, config["require_client_cert"].clone()),
        (200, json!(false))
    );
    assert!(!f.sim.scenario().meeting_server.require_client_cert);
    let token = f.token().await?;
    f.connect_with(&token).await?;
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn silence_keeps_tcp_open_then_resumes() -> Result {
    let f = fixture().await?;
    let mut c = f.connect().await?;
    c.subscribe(json!([{"index": 1, "type": "calls"}])).await?;
    c.take().await?;
    c.take().await?;
    f.wait("the ack of message 2", |s| {
        s.connection(c.id).is_some_and(|x| x.awaiting_ack.is_none())
    })
    .await?;
    f.sim.cms_set_silent(true, Some(c.id))?;
    let call = f.sim.cms_create_call(CmsCallFields::default())?;
    let id = c
        .message(
            json!({"type": "subscribeRequest", "subscriptions": [{"index": 1, "type": "calls"}]}),
        )
        .await?;
    // Neither the call nor an ack: the server neither sends nor reads, and does not close.
    c.nothing_for(QUIET).await?;
    let snap = f.sim.meeting_server();
    let conn = snap.connection(c.id).ok_or("connection")?;
    assert!(conn.open && conn.silent);
    assert_eq!((conn.queued, conn.messages_received), (1, 1));

    // A second socket is unaffected.
    let mut other = f.connect().await?;
    other
        .subscribe(json!([{"index": 1, "type": "calls"}]))
        .await?;

    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/meeting-server/silence",
            Some(json!({"silent": false})),
        )
        .await?;
    assert_eq!(status, 200);
    // The queued add goes out and the request sent meanwhile is acked (which first depends on
    // whether the socket had read the request just before the silence began).
    let (_, first) = c.next_json().await?;
    let (_, second) = c.next_json().await?;
    let ack = json!({"type": "messageAck", "messageAck": {"messageId": id, "status": "success"}});
    assert!(first == ack || second == ack, "{first} / {second}");
    let m = if first == ack { second } else { first };
    assert_eq!(
        (
            m["message"]["messageId"].clone(),
            m["message"]["updates"][0]["call"].clone()
        ),
        (json!(3), json!(call.call))
    );
    c.ack(3).await?;

    // Shutdown closes every socket with 1001.
    f.sim.shutdown().await;
    assert_eq!(c.expect_close().await?.0, 1001);
    Ok(())
}

/// The fine-grained admin routes: calls, participants, moves between calls, lockState per resource,
/// closing sockets, config validation.
#[tokio::test]
async fn admin_routes_drive_the_model() -> Result {
    use reqwest::Method;
    let f = fixture().await?;
    let (status, a) = f
        .admin(
            Method::POST,
            "/admin/meeting-server/calls",
            Some(json!({"name": "Room A"})),
        )
        .await?;
    assert_eq!(status, 200, "{a}");
    let a_id = a["call"].as_str().ok_or("call id")?.to_owned();
    assert_eq!(
        (
            a["participants"].clone(),
            a["lockState"].clone(),
            a["callType"].clone()
        ),
        (json!(0), json!("unlocked"), json!("coSpace"))
    );
    let (status, _) = f
        .admin(
            Method::POST,
            "/admin/meeting-server/calls",
            Some(json!({"call": a_id})),
        )
        .await?;
    assert_eq!(status, 409);

    let mut c = f.connect().await?;
    c.subscribe(json!([
        {"index": 1, "type": "calls", "elements": ["lockState", "recording"]},
        {"index": 2, "type": "callInfo", "call": a_id, "elements": ["lockState", "joinAudioMuteOverride"]},
        {"index": 3, "type": "callInfo", "call": "no-such-call"}
    ]))
    .await?;
    c.take().await?;
    assert_eq!(
        c.take().await?["subscriptions"],
        json!([{"index": 1, "state": "active"}, {"index": 2, "state": "active"}, {"index": 3, "state": "deactivated"}])
    );
    assert_eq!(
        c.take().await?["updates"],
        json!([{"call": a_id, "updateType": "add", "lockState": "notLocked", "recording": "inactive"}])
    );
    assert_eq!(
        c.take().await?["callInfo"],
        json!({"lockState": "unlocked", "joinAudioMuteOverride": false})
    );

    let path = format!("/admin/meeting-server/calls/{a_id}");
    let (status, _) = f
        .admin(Method::PATCH, &path, Some(json!({"recording": "on"})))
        .await?;
    assert_eq!(status, 400);
    let (status, _) = f
        .admin(Method::PATCH, &path, Some(json!({"colour": "red"})))
        .await?;
    assert_eq!(status, 400, "unknown fields are rejected");
    let (status, patched) = f
        .admin(Method::PATCH, &path, Some(json!({"lockState": "locked"})))
        .await?;
    assert_eq!(
        (status, patched["lockState"].clone()),
        (200, json!("locked"))
    );
    assert_eq!(
        c.take().await?["updates"],
        json!([{"call": a_id, "updateType": "update", "lockState": "locked"}])
    );
    assert_eq!(c.take().await?["callInfo"], json!({"lockState": "locked"}));

    let (status, dana) = f
        .admin(
            Method::POST,
            &format!("{path}/participants"),
            Some(json!({"name": "Dana", "direction": "outgoing"})),
        )
        .await?;
    assert_eq!(status, 200, "{dana}");
    let dana_id = dana["participant"]
        .as_str()
        .ok_or("participant id")?
        .to_owned();
    assert_eq!(
        (
            dana["uri"].clone(),
            dana["state"].clone(),
            dana["canMove"].clone()
        ),
        (json!("dana"), json!("connected"), json!(true))
    );
    let (status, muted) = f
        .admin(
            Method::PATCH,
            &format!("{path}/participants/{dana_id}"),
            Some(json!({"audioMuted": true, "importance": 3, "layout": "speakerOnly"})),
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        (muted["audioMuted"].clone(), muted["importance"].clone()),
        (json!(true), json!(3))
    );
    let (status, b) = f
        .admin(
            Method::POST,
            "/admin/meeting-server/calls",
            Some(json!({"name": "Room B"})),
        )
        .await?;
    assert_eq!(status, 200);
    let b_id = b["call"].as_str().ok_or("call id")?.to_owned();
    let (status, moved) = f
        .admin(
            Method::POST,
            &format!("{path}/participants/{dana_id}/move"),
            Some(json!({"to_call": b_id})),
        )
        .await?;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["movedParticipant"], json!(dana_id));
    assert_eq!(
        moved["movedParticipantCallBridge"],
        json!(f.sim.meeting_server().bridge)
    );
    let (_, calls) = f
        .admin(Method::GET, "/admin/meeting-server/calls", None)
        .await?;
    assert_eq!(
        calls
            .as_array()
            .ok_or("calls")?
            .iter()
            .map(|c| c["participants"].clone())
            .collect::<Vec<_>>(),
        [json!(0), json!(1)]
    );
    let moved_id = moved["participant"].as_str().ok_or("moved id")?;
    let (status, _) = f
        .admin(
            Method::DELETE,
            &format!("/admin/meeting-server/calls/{b_id}/participants/{moved_id}"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    let (status, _) = f
        .admin(Method::POST, "/admin/meeting-server/calls/nope/end", None)
        .await?;
    assert_eq!(status, 404);

    // Messages so far for the socket: calls add for B, then counts are not subscribed on index 1.
    assert_eq!(
        c.take().await?["updates"],
        json!([{"call": b_id, "updateType": "add", "lockState": "notLocked", "recording": "inactive"}])
    );

    // Config validation.
    let (status, _) = f
        .admin(
            Method::PUT,
            "/admin/meeting-server/config",
            Some(json!({"ack_timeout_secs": 0})),
        )
        .await?;
    assert_eq!(status, 400);
    let (status, _) = f
        .admin(
            Method::PUT,
            "/admin/meeting-server/config",
            Some(json!({"max_sockets": 1})),
        )
        .await?;
    assert_eq!(status, 400);
    let (status, config) = f
        .admin(
            Method::PUT,
            "/admin/meeting-server/config",
            Some(json!({"max_subscriptions": 2})),
        )
        .await?;
    assert_eq!(
        (status, config["max_subscriptions"].clone()),
        (200, json!(2))
    );

    // Listing and closing.
    let (_, conns) = f
        .admin(Method::GET, "/admin/meeting-server/connections", None)
        .await?;
    assert_eq!(conns[0]["subscriptions"][2]["state"], "deactivated");
    let (_, all) = f
        .admin(Method::GET, "/admin/meeting-server/frames", None)
        .await?;
    assert_eq!(all[0]["connection"], json!(c.id));
    let (status, _) = f
        .admin(
            Method::POST,
            "/admin/meeting-server/close",
            Some(json!({"code": 1006})),
        )
        .await?;
    assert_eq!(status, 400, "1006 cannot be sent");
    let (_, closed) = f
        .admin(
            Method::POST,
            "/admin/meeting-server/close",
            Some(json!({"code": 4000, "reason": "bye"})),
        )
        .await?;
    assert_eq!(closed, json!({"closed": 1}));
    assert_eq!(c.expect_close().await?, (4000, "bye".to_owned()));
    let snap = f
        .wait("the socket to close", |s| s.open_connections().count() == 0)
        .await?;
    let close = snap
        .connection(c.id)
        .and_then(|x| x.close.clone())
        .ok_or("close")?;
    assert_eq!((close.code, close.by.as_str()), (Some(4000), "server"));
    let (_, v) = f
        .admin(Method::GET, "/admin/meeting-server/violations", None)
        .await?;
    assert_eq!(v, json!([]));
    f.sim.shutdown().await;
    Ok(())
}
