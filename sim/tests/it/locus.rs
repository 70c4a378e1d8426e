//! Locus call control (wire profile §5, docs/wire-profile-choices.md §5) end to end against a device
//! that activated, registered with WDM and holds an online mercury socket: dialling, meetings,
//! incoming calls, decline, hold, DTMF, leave, the delta fault modes, sync, move and bad input.
//! Every wait is bounded and event-driven (the next frame on the socket, with a timeout).

use roomd_testkit::sim as support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use roomd_sim::{CalliopeScenario, Device, Fault, LocusScenario, Scenario, SimHandle};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use support::{Registered, Result, SimFixture, tls_config};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);
const CODE: &str = "4353450012345678";

type Ws = WebSocketStream<TlsStream<TcpStream>>;

struct Fixture {
    sim: SimHandle,
    http: reqwest::Client,
    token: String,
    /// The WDM device URL (the `device.url` of every request).
    device_url: String,
    device: String,
    ws: Ws,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Result<Fixture> {
    let scenario = Scenario {
        devices: vec![Device::new(CODE)],
        locus: LocusScenario {
            answer_delay_ms: 0,
            ..LocusScenario::default()
        },
        calliope: CalliopeScenario {
            enabled: false,
            ..CalliopeScenario::default()
        },
        ..Scenario::default()
    };
    let kit = SimFixture::start(scenario, WAIT).await?;
    let Registered {
        token,
        device_url,
        device,
        ..
    } = kit.register(CODE).await?;
    let SimFixture { sim, http, dir, .. } = kit;
    let ws = online(&sim, &device, &token).await?;
    Ok(Fixture {
        sim,
        http,
        token,
        device_url,
        device,
        ws,
        _dir: dir,
    })
}

/// Opens a mercury socket on the proxy listener, authorizes and reads the buffer_state event.
async fn online(sim: &SimHandle, device: &str, token: &str) -> Result<Ws> {
    let tcp = TcpStream::connect(sim.proxy_addr()).await?;
    let connector = TlsConnector::from(Arc::new(tls_config(sim.proxy_ca_pem())?));
    let tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let url = format!(
        "wss://localhost:{}/mercury/registrations/{device}/messages?outboundWireFormat=text",
        sim.proxy_addr().port()
    );
    let (mut ws, _resp) = tokio_tungstenite::client_async(url, tls).await?;
    let auth = json!({"id": "a1", "type": "authorization",
                      "data": {"token": format!("Bearer {token}")}});
    ws.send(Message::text(auth.to_string())).await?;
    let first = next_json(&mut ws).await?;
    assert_eq!(first["data"]["eventType"], "mercury.buffer_state");
    Ok(ws)
}

async fn next_json(ws: &mut Ws) -> Result<Value> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await?
            .ok_or("socket ended")??;
        match msg {
            Message::Text(t) => return Ok(serde_json::from_str(t.as_str())?),
            Message::Ping(_) | Message::Pong(_) => {}
            other => return Err(format!("expected a text frame, got {other:?}").into()),
        }
    }
}

impl Fixture {
    fn locus_base(&self) -> String {
        format!("{}/locus/api/v1", self.sim.service_base_url())
    }

    /// The next `locus.*` event's data (`eventType`, `locus`).
    async fn event(&mut self) -> Result<Value> {
        loop {
            let frame = next_json(&mut self.ws).await?;
            let data = frame["data"].clone();
            if data["eventType"]
                .as_str()
                .is_some_and(|t| t.starts_with("locus."))
            {
                return Ok(data);
            }
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&str>,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        Ok((status, body))
    }

    async fn post(&self, url: &str, body: &Value) -> Result<(u16, Value)> {
        self.send(reqwest::Method::POST, url, Some(&body.to_string()))
            .await
    }

    async fn put(&self, url: &str, body: &Value) -> Result<(u16, Value)> {
        self.send(reqwest::Method::PUT, url, Some(&body.to_string()))
            .await
    }

    async fn patch(&self, url: &str, body: &Value) -> Result<(u16, Value)> {
        self.send(reqwest::Method::PATCH, url, Some(&body.to_string()))
            .await
    }

    async fn get(&self, url: &str) -> Result<(u16, Value)> {
        self.send(reqwest::Method::GET, url, None).await
    }

    fn join_body(&self, correlation: &str) -> Value {
        json!({
            "device": {"url": self.device_url, "deviceType": "TP_ENDPOINT"},
            "correlationId": correlation,
            "localMedias": [{"localSdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"}],
            "reachability": {"sim-c001.sim-c001.sim.invalid": {
                "udp": {"reachable": true, "latencyInMilliseconds": 12},
                "tcp": {"reachable": false}}},
        })
    }

    /// Dials `address`: the join answer.
    async fn dial(&self, address: &str) -> Result<Value> {
        let mut body = self.join_body("corr-dial");
        body["invitee"] = json!({"address": address});
        let (status, answer) = self
            .post(&format!("{}/loci/call", self.locus_base()), &body)
            .await?;
        assert_eq!(status, 200, "{answer}");
        Ok(answer)
    }

    async fn hold(&self, locus: &Value, held: bool) -> Result<Value> {
        let url = format!("{}/controls", locus["url"].as_str().ok_or("url")?);
        let body = json!({"hold": {"held": held}, "participantUrl": locus["self"]["url"]});
        let (status, answer) = self.patch(&url, &body).await?;
        assert_eq!(status, 200, "{answer}");
        Ok(answer["locus"].clone())
    }

    fn admin_locus(&self, url: &Value) -> Result<Value> {
        let all = self.sim.loci();
        Ok(all["loci"]
            .as_array()
            .ok_or("loci")?
            .iter()
            .find(|l| &l["url"] == url)
            .ok_or("locus listed")?
            .clone())
    }
}

fn last_entry(seq: &Value) -> u64 {
    seq["entries"]
        .as_array()
        .and_then(|e| e.last())
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

fn participant<'a>(locus: &'a Value, state: &str, local: bool) -> Option<&'a Value> {
    let self_id = &locus["self"]["id"];
    locus["participants"]
        .as_array()?
        .iter()
        .find(|p| p["state"] == state && ((&p["id"] == self_id) == local))
}

/// The port of the first `a=candidate` line of an SDP.
fn candidate_port(sdp: &str) -> Option<u16> {
    let line = sdp.lines().find(|l| l.starts_with("a=candidate:"))?;
    line.split_whitespace().nth(5)?.parse().ok()
}

#[tokio::test]
async fn dial_answers_then_hold_dtmf_leave() -> Result {
    let mut f = fixture().await?;
    let answer = f.dial("bob@example.com").await?;
    let locus = &answer["locus"];
    assert!(locus.get("baseSequence").is_none(), "a full DTO");
    assert_eq!(locus["fullState"]["type"], "CALL");
    assert_eq!(locus["fullState"]["state"], "INITIALIZING");
    assert_eq!(locus["self"]["state"], "JOINED");
    assert_eq!(locus["self"]["devices"][0]["url"], json!(f.device_url));
    assert_eq!(locus["self"]["controls"]["hold"]["held"], false);
    assert!(locus["self"]["status"]["csis"].is_array());
    let url = locus["url"].as_str().ok_or("url")?.to_owned();
    assert!(
        url.starts_with(&format!("{}/loci/", f.locus_base())),
        "{url}"
    );
    assert_eq!(locus["syncUrl"], json!(format!("{url}/sync")));
    let bob = participant(locus, "NOTIFIED", false).ok_or("invitee NOTIFIED")?;
    assert_eq!(bob["person"]["name"], "bob");
    assert!(
        last_entry(&locus["sequence"]) > 259_000_000_000_000,
        "{}",
        locus["sequence"]
    );
    for key in ["host", "info", "controls", "mediaShares", "replaces"] {
        assert!(locus.get(key).is_some(), "{key}");
    }

    // The remote SDP names the media node, which answers STUN at once.
    let media = &answer["mediaConnections"][0];
    assert!(media["mediaId"].as_str().is_some_and(|m| m.len() == 36));
    let sdp = media["remoteSdp"].as_str().ok_or("remoteSdp")?;
    for line in ["v=0", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"] {
        assert!(sdp.lines().any(|l| l == line), "{line} in {sdp}");
    }
    assert!(sdp.contains("m=audio ") && sdp.contains("m=video "));
    let port = candidate_port(sdp).ok_or("candidate")?;
    assert_eq!(port, f.sim.media_node_addr().port());
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    req.extend_from_slice(&[9_u8; 12]);
    sock.send_to(&req, f.sim.media_node_addr()).await?;
    let mut buf = [0_u8; 256];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf)).await??;
    assert!(n >= 32 && buf[0..2] == [0x01, 0x01] && buf[8..20] == [9_u8; 12]);

    // The far end answers: a delta based on the sequence we have.
    let ev = f.event().await?;
    assert_eq!(ev["eventType"], "locus.difference");
    let delta = &ev["locus"];
    assert_eq!(delta["baseSequence"], locus["sequence"]);
    let step = last_entry(&delta["sequence"]) - last_entry(&locus["sequence"]);
    assert!((1..=3).contains(&step), "{step}");
    assert_eq!(delta["fullState"]["state"], "ACTIVE");
    assert_eq!(delta["self"]["id"], locus["self"]["id"]);
    let changed = delta["participants"].as_array().ok_or("participants")?;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["id"], bob["id"]);
    assert_eq!(changed[0]["state"], "JOINED");

    // Sync and GET give the full DTO at the delta's sequence.
    for u in [format!("{url}/sync"), url.clone()] {
        let (status, full) = f.get(&u).await?;
        assert_eq!(status, 200);
        assert_eq!(full["sequence"], delta["sequence"]);
        assert!(full.get("baseSequence").is_none());
        assert_eq!(full["participants"].as_array().map(Vec::len), Some(2));
    }

    // Hold and resume.
    let held = f.hold(locus, true).await?;
    assert_eq!(held["self"]["controls"]["hold"]["held"], true);
    let ev = f.event().await?;
    assert_eq!(ev["locus"]["self"]["controls"]["hold"]["held"], true);
    assert_eq!(ev["locus"]["baseSequence"], delta["sequence"]);
    let resumed = f.hold(locus, false).await?;
    assert_eq!(resumed["self"]["controls"]["hold"]["held"], false);
    f.event().await?;

    // DTMF.
    let dtmf =
        json!({"deviceUrl": f.device_url, "dtmf": {"correlationId": "d1", "tones": "12*#AD"}});
    let (status, body) = f.post(&format!("{url}/sendDtmf"), &dtmf).await?;
    assert_eq!((status, body), (200, json!({})));
    let too_many = json!({"deviceUrl": f.device_url, "dtmf": {"correlationId": "d2", "tones": "1".repeat(33)}});
    let (status, body) = f.post(&format!("{url}/sendDtmf"), &too_many).await?;
    assert_eq!(status, 400, "{body}");
    let bad = json!({"deviceUrl": f.device_url, "dtmf": {"correlationId": "d3", "tones": "12E"}});
    assert_eq!(f.post(&format!("{url}/sendDtmf"), &bad).await?.0, 400);

    // Leave ends the CALL.
    let self_id = locus["self"]["id"].as_str().ok_or("self id")?;
    let leave = json!({"device": {"url": f.device_url, "deviceType": "TP_ENDPOINT"}, "correlationId": "corr-dial"});
    let (status, left) = f
        .put(&format!("{url}/participant/{self_id}/leave"), &leave)
        .await?;
    assert_eq!(status, 200, "{left}");
    assert_eq!(left["locus"]["fullState"]["state"], "ENDED");
    assert_eq!(left["locus"]["self"]["state"], "LEFT");
    let ev = f.event().await?;
    assert_eq!(ev["locus"]["fullState"]["state"], "ENDED");

    // The admin saw it all.
    let admin = f.admin_locus(&json!(url))?;
    assert_eq!(admin["type"], "CALL");
    assert_eq!(admin["state"], "ENDED");
    assert_eq!(admin["dtmf"][0]["tones"], "12*#AD");
    assert_eq!(admin["dtmf"].as_array().map(Vec::len), Some(1));
    assert_eq!(admin["joins"][0]["correlationId"], "corr-dial");
    assert_eq!(
        admin["joins"][0]["reachability"]["sim-c001.sim-c001.sim.invalid"]["udp"]["latencyInMilliseconds"],
        12
    );
    let methods: Vec<&str> = admin["requests"]
        .as_array()
        .ok_or("requests")?
        .iter()
        .filter_map(|r| r["method"].as_str())
        .collect();
    assert_eq!(
        methods,
        [
            "POST", "GET", "GET", "PATCH", "PATCH", "POST", "POST", "POST", "PUT"
        ]
    );
    assert!(f.sim.loci()["mediaNode"]["bindingRequests"].as_u64() >= Some(1));
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn far_end_declines_or_never_answers() -> Result {
    let mut f = fixture().await?;
    let declined = f.dial("decline-carol@example.com").await?;
    let ev = f.event().await?;
    assert_eq!(ev["locus"]["url"], declined["locus"]["url"]);
    assert_eq!(ev["locus"]["fullState"]["state"], "INACTIVE");
    assert_eq!(ev["locus"]["participants"][0]["state"], "DECLINED");

    let silent = f.dial("noanswer-dave@example.com").await?;
    // Hold makes a delta; had the far end answered, its delta would come first.
    f.hold(&silent["locus"], true).await?;
    let ev = f.event().await?;
    assert_eq!(ev["locus"]["url"], silent["locus"]["url"]);
    assert_eq!(ev["locus"]["fullState"]["state"], "INITIALIZING");
    assert_eq!(ev["locus"]["self"]["controls"]["hold"]["held"], true);
    let admin = f.admin_locus(&silent["locus"]["url"])?;
    assert!(
        admin["participants"]
            .as_array()
            .ok_or("participants")?
            .iter()
            .any(|p| p["state"] == "NOTIFIED")
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn meeting_info_then_join() -> Result {
    let mut f = fixture().await?;
    let info_url = format!(
        "{}/loci/meetingInfo?address=standup%40team.webex.com",
        f.locus_base()
    );
    let (status, info) = f.get(&info_url).await?;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["meetingName"], "standup");
    let locus_url = info["locusUrl"].as_str().ok_or("locusUrl")?.to_owned();
    let (_, again) = f.get(&info_url).await?;
    assert_eq!(
        again["locusUrl"], info["locusUrl"],
        "same address, same meeting"
    );

    let (status, joined) = f
        .post(&format!("{locus_url}/participant"), &f.join_body("corr-m"))
        .await?;
    assert_eq!(status, 200, "{joined}");
    let locus = &joined["locus"];
    assert_eq!(locus["url"], json!(locus_url));
    assert_eq!(
        locus["fullState"],
        json!({"state": "ACTIVE", "type": "MEETING"})
    );
    assert_eq!(locus["self"]["state"], "JOINED");
    assert_eq!(locus["host"]["id"], locus["participants"][0]["id"]);
    assert_eq!(locus["participants"][0]["state"], "JOINED");
    assert_eq!(locus["info"]["webExMeetingName"], "standup");
    assert!(joined["mediaConnections"][0]["remoteSdp"].is_string());
    let ev = f.event().await?;
    assert_eq!(ev["eventType"], "locus.difference");
    assert_eq!(ev["locus"]["sequence"], locus["sequence"]);
    assert_eq!(ev["locus"]["participants"][0]["id"], locus["self"]["id"]);

    // Leaving a meeting does not end it.
    let self_id = locus["self"]["id"].as_str().ok_or("self")?;
    let leave = json!({"device": {"url": f.device_url}, "correlationId": "corr-m"});
    let (status, left) = f
        .put(&format!("{locus_url}/participant/{self_id}/leave"), &leave)
        .await?;
    assert_eq!(status, 200);
    assert_eq!(left["locus"]["fullState"]["state"], "ACTIVE");
    assert_eq!(left["locus"]["self"]["state"], "LEFT");
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn incoming_call_alert_accept_and_hangup() -> Result {
    let mut f = fixture().await?;
    let url = f.sim.locus_incoming("alice@example.com", "Alice")?;
    let ev = f.event().await?;
    assert_eq!(ev["eventType"], "locus.participant_alerted");
    let locus = &ev["locus"];
    assert_eq!(locus["url"], json!(url));
    assert!(locus.get("baseSequence").is_none());
    assert_eq!(locus["fullState"]["type"], "CALL");
    assert_eq!(locus["self"]["state"], "NOTIFIED");
    assert!(
        locus["self"]["devices"][0]["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&f.device))
    );
    let alice = participant(locus, "JOINED", false).ok_or("caller JOINED")?;
    assert_eq!(alice["person"]["name"], "Alice");

    let (status, alerted) = f
        .put(
            &format!("{url}/participant/alert"),
            &json!({"deviceUrl": f.device_url}),
        )
        .await?;
    assert_eq!(status, 200, "{alerted}");
    assert_eq!(f.admin_locus(&json!(url))?["ringing"], true);

    let (status, accepted) = f
        .post(&format!("{url}/participant"), &f.join_body("corr-in"))
        .await?;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["locus"]["fullState"]["state"], "ACTIVE");
    assert_eq!(accepted["locus"]["self"]["state"], "JOINED");
    let ev = f.event().await?;
    assert_eq!(ev["eventType"], "locus.difference");
    assert_eq!(ev["locus"]["baseSequence"], locus["sequence"]);
    assert_eq!(ev["locus"]["self"]["state"], "JOINED");

    f.sim.locus_hangup(&url)?;
    let ev = f.event().await?;
    assert_eq!(ev["locus"]["fullState"]["state"], "ENDED");
    assert_eq!(ev["locus"]["participants"][0]["state"], "LEFT");
    assert_eq!(ev["locus"]["self"]["state"], "JOINED");
    assert!(f.sim.locus_hangup(&url).is_err(), "already ended");
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn declining_an_incoming_call_ends_it() -> Result {
    let mut f = fixture().await?;
    // Through the admin API this time.
    let resp: Value = f
        .http
        .post(format!("{}/admin/locus/incoming", f.sim.admin_url()))
        .json(&json!({"caller": "erin@example.com", "name": "Erin"}))
        .send()
        .await?
        .json()
        .await?;
    let url = resp["locusUrl"].as_str().ok_or("locusUrl")?.to_owned();
    f.event().await?;
    let (status, declined) = f
        .put(
            &format!("{url}/participant/decline"),
            &json!({"deviceUrl": f.device_url, "reason": "BUSY"}),
        )
        .await?;
    assert_eq!(status, 200, "{declined}");
    assert_eq!(declined["locus"]["self"]["state"], "DECLINED");
    assert_eq!(declined["locus"]["self"]["reason"], "BUSY");
    assert_eq!(declined["locus"]["fullState"]["state"], "ENDED");
    let ev = f.event().await?;
    assert_eq!(ev["locus"]["fullState"]["state"], "ENDED");
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn delta_fault_modes() -> Result {
    let mut f = fixture().await?;
    let answer = f.dial("noanswer-frank@example.com").await?;
    let locus = answer["locus"].clone();

    // skip: the next delta never comes; the one after has a base we never saw.
    f.sim.locus_deltas("skip", 1)?;
    let skipped = f.hold(&locus, true).await?;
    let after = f.hold(&locus, false).await?;
    let ev = f.event().await?;
    assert_eq!(ev["locus"]["sequence"], after["sequence"]);
    assert_eq!(ev["locus"]["baseSequence"], skipped["sequence"]);
    assert_ne!(ev["locus"]["baseSequence"], locus["sequence"]);

    // reorder: two deltas held, then sent newest first.
    f.sim.locus_deltas("reorder", 2)?;
    let first = f.hold(&locus, true).await?;
    let second = f.hold(&locus, false).await?;
    let a = f.event().await?;
    let b = f.event().await?;
    assert_eq!(a["locus"]["sequence"], second["sequence"]);
    assert_eq!(a["locus"]["baseSequence"], first["sequence"]);
    assert_eq!(b["locus"]["sequence"], first["sequence"]);
    assert_eq!(b["locus"]["baseSequence"], after["sequence"]);

    // force_desync: baseSequence = sequence, once.
    let resp = f
        .http
        .post(format!("{}/admin/locus/deltas", f.sim.admin_url()))
        .json(&json!({"mode": "force_desync", "count": 1}))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let d = f.hold(&locus, true).await?;
    let ev = f.event().await?;
    assert_eq!(ev["locus"]["sequence"], d["sequence"]);
    assert_eq!(ev["locus"]["baseSequence"], d["sequence"]);
    let n = f.hold(&locus, false).await?;
    let ev = f.event().await?;
    assert_eq!(ev["locus"]["baseSequence"], d["sequence"], "normal again");
    assert_eq!(ev["locus"]["sequence"], n["sequence"]);

    assert!(f.sim.locus_deltas("shuffle", 1).is_err());
    assert_eq!(f.sim.loci()["deltas"]["mode"], "normal");
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn sequences_fold_beyond_ten_entries() -> Result {
    let mut f = fixture().await?;
    let answer = f.dial("noanswer-gina@example.com").await?;
    let locus = answer["locus"].clone();
    let mut last = locus.clone();
    for i in 0..12 {
        last = f.hold(&locus, i % 2 == 0).await?;
        f.event().await?;
    }
    let seq = &last["sequence"];
    let entries = seq["entries"].as_array().ok_or("entries")?;
    assert_eq!(entries.len(), 10);
    let start = seq["rangeStart"].as_u64().ok_or("rangeStart")?;
    let end = seq["rangeEnd"].as_u64().ok_or("rangeEnd")?;
    assert_eq!(start, last_entry(&locus["sequence"]));
    assert!(start < end && end < entries[0].as_u64().unwrap_or(0));
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_failing_sync_url_leaves_get_locus_working() -> Result {
    let f = fixture().await?;
    let answer = f.dial("noanswer-hal@example.com").await?;
    let url = answer["locus"]["url"].as_str().ok_or("url")?.to_owned();
    let path = url
        .strip_prefix(&f.sim.service_base_url())
        .ok_or("path")?
        .to_owned();
    f.sim.arm_fault(Fault {
        path: format!("{path}/sync"),
        method: Some("GET".into()),
        status: 503,
        count: 1,
        retry_after: None,
        body: None,
    })?;
    let (status, _) = f.get(&format!("{url}/sync")).await?;
    assert_eq!(status, 503);
    let (status, full) = f.get(&url).await?;
    assert_eq!(status, 200);
    assert_eq!(full["url"], json!(url));
    let (status, _) = f.get(&format!("{url}/sync")).await?;
    assert_eq!(status, 200, "one use only");
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn move_event_and_fail_modes() -> Result {
    let mut f = fixture().await?;
    let (_, info) = f
        .get(&format!(
            "{}/loci/meetingInfo?address=origin@x.webex.com",
            f.locus_base()
        ))
        .await?;
    let old = info["locusUrl"].as_str().ok_or("locusUrl")?.to_owned();
    let (_, joined) = f
        .post(&format!("{old}/participant"), &f.join_body("c1"))
        .await?;
    f.event().await?;
    let self_id = joined["locus"]["self"]["id"]
        .as_str()
        .ok_or("self")?
        .to_owned();

    let new = f.sim.locus_move(&old, "Space 2", Some("leave"))?;
    let ev = f.event().await?;
    assert_eq!(ev["eventType"], "locus.participant_moved");
    let dest = &ev["locus"];
    assert_eq!(dest["url"], json!(new));
    assert!(dest.get("baseSequence").is_none());
    assert_eq!(dest["replaces"], json!([{"locusUrl": old}]));
    assert_eq!(dest["self"]["state"], "IDLE");
    assert_eq!(dest["self"]["reason"], "MOVED");
    assert_eq!(dest["info"]["webExMeetingName"], "Space 2");
    assert_eq!(dest["fullState"]["type"], "MEETING");

    let leave = json!({"device": {"url": f.device_url}, "correlationId": "c1"});
    let leave_url = format!("{old}/participant/{self_id}/leave");
    assert_eq!(f.put(&leave_url, &leave).await?.0, 500, "fail mode leave");
    assert_eq!(f.put(&leave_url, &leave).await?.0, 200, "once");
    let (status, moved) = f
        .post(&format!("{new}/participant"), &f.join_body("c2"))
        .await?;
    assert_eq!(status, 200);
    assert_eq!(moved["locus"]["self"]["state"], "JOINED");
    assert_eq!(moved["locus"]["self"]["reason"], Value::Null);

    // fail join: the destination's join answers 403 once.
    let resp: Value = f
        .http
        .post(format!(
            "{}/admin/locus/{}/move",
            f.sim.admin_url(),
            new.rsplit('/').next().unwrap_or_default()
        ))
        .json(&json!({"name": "Space 3", "fail": "join"}))
        .send()
        .await?
        .json()
        .await?;
    let third = resp["locusUrl"].as_str().ok_or("locusUrl")?.to_owned();
    assert_eq!(
        f.post(&format!("{third}/participant"), &f.join_body("c3"))
            .await?
            .0,
        403
    );
    // wrong_meeting: the join answers another meeting's locus.
    let fourth = f.sim.locus_move(&third, "Space 4", Some("wrong_meeting"))?;
    let (status, wrong) = f
        .post(&format!("{fourth}/participant"), &f.join_body("c4"))
        .await?;
    assert_eq!(status, 200);
    assert_ne!(wrong["locus"]["url"], json!(fourth));
    assert!(f.sim.locus_move(&fourth, "x", Some("sideways")).is_err());
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn bad_input_is_400_and_unknown_loci_404() -> Result {
    let f = fixture().await?;
    let call = format!("{}/loci/call", f.locus_base());
    let (status, body) = f
        .send(reqwest::Method::POST, &call, Some("{not json"))
        .await?;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("JSON")),
        "{body}"
    );
    let mut no_invitee = f.join_body("c");
    let (status, body) = f.post(&call, &no_invitee).await?;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("invitee.address")),
        "{body}"
    );
    no_invitee["invitee"] = json!({"address": "bob@example.com"});
    no_invitee["device"] = json!({"deviceType": "TP_ENDPOINT"});
    let (status, body) = f.post(&call, &no_invitee).await?;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("device.url")),
        "{body}"
    );

    let (status, body) = f
        .get(&format!("{}/loci/meetingInfo", f.locus_base()))
        .await?;
    assert_eq!(status, 400, "{body}");

    let unknown = format!(
        "{}/loci/00000000-0000-0000-0000-000000000000",
        f.locus_base()
    );
    assert_eq!(f.get(&unknown).await?.0, 404);
    assert_eq!(f.get(&format!("{unknown}/sync")).await?.0, 404);
    let (status, body) = f
        .post(&format!("{unknown}/participant"), &f.join_body("c"))
        .await?;
    assert_eq!(status, 404);
    assert!(body["message"].is_string());
    let answer = f.dial("noanswer-ian@example.com").await?;
    let url = answer["locus"]["url"].as_str().ok_or("url")?;
    let (status, body) = f
        .patch(
            &format!("{url}/controls"),
            &json!({"hold": {"held": "yes"}}),
        )
        .await?;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("hold.held")),
        "{body}"
    );
    let (status, _) = f
        .put(
            &format!("{url}/participant/nobody/leave"),
            &json!({"device": {"url": f.device_url}, "correlationId": "c"}),
        )
        .await?;
    assert_eq!(status, 404);
    // Bad requests are recorded on the locus too.
    let admin = f.admin_locus(&json!(url))?;
    assert_eq!(admin["requests"].as_array().map(Vec::len), Some(3));
    let resp = f
        .http
        .post(format!("{url}/sendDtmf"))
        .json(&json!({}))
        .send()
        .await?;
    assert_eq!(resp.status(), 401, "bearer required");
    f.sim.shutdown().await;
    Ok(())
}
