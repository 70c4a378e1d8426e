//! Fuzz seeds from the simulator's real wire output: `scripts/fuzz.sh --seed` runs this with
//! `ROOMD_FUZZ_SEEDS_DIR` set, then merges what it wrote into `fuzz/corpus/<target>/` keeping
//! only inputs that add coverage. Without the variable the test does nothing.
//!
//! It plays the device: activates, registers, opens the event socket, and records the bytes
//! the simulator sends back (HTTP bodies, event frames, STUN answers, its CA files) under the
//! fuzz target that parses them on the device.

use roomd_testkit::sim as support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use roomd_sim::{BookingSpec, EventMode, Scenario, SimOptions, start};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use support::{Result, activate_recording, client_trusting, register_device, tls_config};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(20);
const CODE: &str = "4353450012345678";

struct Seeds {
    dir: PathBuf,
    count: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) -> Result {
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
        self.count += 1;
        Ok(())
    }
}

#[tokio::test]
async fn write_fuzz_seeds() -> Result {
    let Some(dir) = std::env::var_os("ROOMD_FUZZ_SEEDS_DIR") else {
        eprintln!(
            "ROOMD_FUZZ_SEEDS_DIR not set: no fuzz seeds written (scripts/fuzz.sh --seed sets it)"
        );
        return Ok(());
    };
    let mut seeds = Seeds {
        dir: PathBuf::from(dir),
        count: 0,
    };
    let state = tempfile::tempdir()?;
    let scenario = Scenario {
        devices: vec![roomd_sim::Device::new(CODE)],
        ..Default::default()
    };
    let mut opts = SimOptions::new(state.path().join("state"));
    opts.scenario = scenario;
    let sim = start(opts).await?;
    let main = client_trusting(sim.ca_pem(), WAIT)?;
    let http = client_trusting(sim.proxy_ca_pem(), WAIT)?;

    // GDS health, online and with a failing upstream.
    let gds = main
        .get(format!("{}/health", sim.gds_url()))
        .send()
        .await?
        .bytes()
        .await?;
    seeds.put("gds_health", "sim-online.json", &gds)?;

    // Activation and the cloud's JSON answers.
    let mut bodies = Vec::new();
    let token = activate_recording(&sim, &main, CODE, &mut bodies).await?;
    for (name, body) in &bodies {
        seeds.put("cloud_json", name, body)?;
    }
    let dev = register_device(&sim, &http, &token).await?;
    seeds.put("cloud_json", "wdm-device.json", dev.to_string().as_bytes())?;
    let catalog = http
        .get(format!(
            "{}/u2c/catalog?format=hostmap",
            sim.service_base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await?
        .bytes()
        .await?;
    seeds.put("cloud_json", "u2c-hostmap.json", &catalog)?;
    let device_url = dev["url"].as_str().ok_or("url")?.to_owned();
    let device = device_url.rsplit('/').next().ok_or("id")?.to_owned();

    // The event socket: every frame the simulator sends.
    let tcp = TcpStream::connect(sim.proxy_addr()).await?;
    let tls = TlsConnector::from(Arc::new(tls_config(sim.proxy_ca_pem())?))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let url = format!(
        "wss://localhost:{}/mercury/registrations/{device}/messages?outboundWireFormat=text",
        sim.proxy_addr().port()
    );
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await?;
    ws.send(Message::text(
        json!({"id": "seed", "type": "authorization", "data": {"token": format!("Bearer {token}")}})
            .to_string(),
    ))
    .await?;
    sim.wait_mercury_online(WAIT).await?;

    // Calendar: bookings of every shape, pushed as full and minimal events, listed and fetched.
    let cal = format!("{}/calendar/api/v1/calendarEvents", sim.service_base_url());
    let specs = [
        json!({"title": "Seed meeting", "start_in_mins": 30, "duration_mins": 45,
               "webex_uri": "seed@webex.sim.invalid", "location": "Room 1"}),
        json!({"title": "Seed series", "start_in_mins": 120, "series_id": "series-1",
               "join_type": "TEAMS", "meeting_join_uri": "teams@sim.invalid"}),
        json!({"title": "Ünïcödé ☃", "start_in_mins": -30, "duration_mins": 90}),
    ];
    let mut ids = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let spec: BookingSpec = serde_json::from_value(spec.clone())?;
        let mode = if i == 1 {
            EventMode::Minimal
        } else {
            EventMode::Full
        };
        ids.push(sim.calendar_create(spec, mode)?.booking.id);
    }
    sim.calendar_delete(&ids[2], EventMode::Full)?;
    let page = http
        .get(format!("{cal}?max=1"))
        .bearer_auth(&token)
        .send()
        .await?;
    if let Some(link) = page.headers().get("link") {
        seeds.put("calendar_dto", "link-header", link.as_bytes())?;
    }
    seeds.put("calendar_dto", "page.json", &page.bytes().await?)?;
    let one = http
        .get(format!("{cal}/{}", roomd_sim::resource_id(&ids[0])))
        .bearer_auth(&token)
        .send()
        .await?
        .bytes()
        .await?;
    seeds.put("calendar_dto", "event.json", &one)?;
    if let Some(subject) = serde_json::from_slice::<Value>(&one)?["encryptedSubject"].as_str() {
        seeds.put("calendar_dto", "jwe", subject.as_bytes())?;
    }

    // Locus: a call's join answer (full DTO), then its deltas arrive on the socket.
    let locus_base = format!("{}/locus/api/v1", sim.service_base_url());
    let answer: Value = http
        .post(format!("{locus_base}/loci/call"))
        .bearer_auth(&token)
        .json(&json!({
            "invitee": {"address": "seed@webex.sim.invalid"},
            "device": {"url": device_url, "deviceType": "TP_ENDPOINT"},
            "correlationId": "seed-dial",
            "localMedias": [{"localSdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"}],
        }))
        .send()
        .await?
        .json()
        .await?;
    seeds.put(
        "locus_dto",
        "join-answer-locus.json",
        answer["locus"].to_string().as_bytes(),
    )?;

    // The rest of the socket's repertoire.
    sim.mercury_push(json!({"eventType": "device.control", "action": "volume.set", "level": 40}))?;
    sim.mercury_feature_toggle("roomd-obtp", "true", "USER")?;
    sim.mercury_shutdown();

    // Read until the socket has been quiet for a moment: the answer's deltas come after a delay.
    let mut frames = 0;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await
    {
        let Message::Text(text) = message else {
            continue;
        };
        frames += 1;
        seeds.put(
            "mercury_envelope",
            &format!("frame-{frames:02}"),
            text.as_bytes(),
        )?;
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let data = &frame["data"];
        let event_type = data["eventType"].as_str().unwrap_or_default();
        if event_type.starts_with("locus.") {
            seeds.put(
                "locus_dto",
                &format!("event-{frames:02}.json"),
                data.to_string().as_bytes(),
            )?;
        }
        if event_type.starts_with("calendar.") {
            seeds.put(
                "calendar_dto",
                &format!("event-{frames:02}.json"),
                data.to_string().as_bytes(),
            )?;
        }
        if let Some(id) = frame["id"].as_str() {
            ws.send(Message::text(
                json!({"messageId": id, "type": "ack"}).to_string(),
            ))
            .await?;
        }
    }

    // STUN: a Binding request to the simulator's UDP port, and its answer.
    let udp = UdpSocket::bind("127.0.0.1:0").await?;
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(b"roomd-seed01");
    for addr in sim.udp_addrs() {
        udp.send_to(&request, addr).await?;
        let mut buf = vec![0u8; 1500];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), udp.recv(&mut buf)).await {
            seeds.put(
                "stun_message",
                &format!("binding-answer-{}", addr.port()),
                &buf[..n],
            )?;
        }
    }

    // Trust bundles: the simulator's CA files, as an integrator would install them.
    for file in ["ca.pem", "proxy-ca.pem", "cms-ca.pem"] {
        let path: &Path = &state.path().join("state").join(file);
        if let Ok(pem) = std::fs::read(path) {
            seeds.put("trust_bundle", file, &pem)?;
        }
    }

    eprintln!(
        "wrote {} fuzz seed(s) to {}",
        seeds.count,
        seeds.dir.display()
    );
    assert!(frames >= 5, "only {frames} event frames arrived");
    sim.shutdown().await;
    Ok(())
}
