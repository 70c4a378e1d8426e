//! End-to-end tests of the simulator, in-process on ephemeral ports, over real TLS verified against
//! the generated CA only.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use roomd_sim::{ReceivedRequest, Scenario, SimHandle, SimInfo, SimOptions, start};
use roomd_testkit::sim::start_in_tempdir;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Fixture {
    sim: SimHandle,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Result<Fixture> {
    fixture_with(Scenario::default()).await
}

async fn fixture_with(scenario: Scenario) -> Result<Fixture> {
    let (sim, dir) = start_in_tempdir(scenario).await?;
    let http = client_trusting(sim.ca_pem())?;
    Ok(Fixture {
        sim,
        http,
        _dir: dir,
    })
}

/// A rustls client configuration whose only root is the given CA.
fn tls_config(ca_pem: &str, alpn: &[&[u8]]) -> Result<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let mut cfg = ClientConfig::builder_with_provider(roomd_sim::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

/// One client for both the HTTPS services and the (cleartext) admin API.
fn client_trusting(ca_pem: &str) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(ca_pem, &[])?)
        .timeout(WAIT)
        .build()?)
}

impl Fixture {
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        roomd_testkit::sim::admin(&self.http, &self.sim, method, path, body).await
    }

    async fn health(&self) -> Result<reqwest::Response> {
        Ok(self
            .http
            .get(format!("{}/health", self.sim.gds_url()))
            .header("trackingid", "ROOMD_test_1")
            .send()
            .await?)
    }

    async fn ws_connect(&self) -> Result<WebSocketStream<TlsStream<TcpStream>>> {
        let tcp = TcpStream::connect(self.sim.https_addr()).await?;
        let connector = TlsConnector::from(Arc::new(tls_config(self.sim.ca_pem(), &[])?));
        let tls = connector
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        // Every listener serves mercury; this socket never authorizes (tests/mercury.rs does).
        let url = format!(
            "wss://localhost:{}/mercury/registrations/none/messages?outboundWireFormat=text",
            self.sim.https_addr().port()
        );
        let (ws, _resp) = tokio_tungstenite::client_async(url, tls).await?;
        Ok(ws)
    }
}

fn requests_to<'a>(received: &'a [ReceivedRequest], path: &str) -> Vec<&'a ReceivedRequest> {
    received.iter().filter(|r| r.path == path).collect()
}

#[tokio::test]
async fn gds_health_over_verified_tls_and_recorded() -> Result {
    let f = fixture().await?;
    let resp = f.health().await?;
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await?;
    assert_eq!(doc["serviceName"], "GDS");
    assert_eq!(doc["serviceState"], "online");
    assert_eq!(doc["message"], "Healthy");
    assert_eq!(doc["serviceType"], "REQUIRED");
    assert_eq!(doc["upstreamServices"].as_array().map(Vec::len), Some(3));
    let ts = doc["lastUpdated"].as_str().unwrap_or_default();
    assert_eq!(ts.len(), "2022-04-22T15:38:10.322Z".len(), "{ts}");
    assert!(ts.ends_with('Z'));

    let received = f.sim.received();
    let hits = requests_to(&received, "/gds/health");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].method, "GET");
    assert_eq!(hits[0].header("TrackingID"), Some("ROOMD_test_1"));

    // The admin view is the same data.
    let (status, list) = f
        .admin(reqwest::Method::GET, "/admin/requests", None)
        .await?;
    assert_eq!(status, 200);
    let listed: Vec<ReceivedRequest> = serde_json::from_value(list)?;
    assert_eq!(listed, received);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn state_files_and_info() -> Result {
    let f = fixture().await?;
    assert_eq!(std::fs::read_to_string(f.sim.ca_path())?, f.sim.ca_pem());
    assert!(f.sim.ca_path().is_absolute());
    let dir = f.sim.ca_path().parent().ok_or("ca.pem has no parent")?;
    let written: SimInfo = serde_json::from_str(&std::fs::read_to_string(dir.join("sim.json"))?)?;
    assert_eq!(&written, f.sim.info());

    let (status, info) = f.admin(reqwest::Method::GET, "/admin/info", None).await?;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_value::<SimInfo>(info.clone())?, written);
    assert_eq!(info["https"], f.sim.https_addr().to_string());
    assert_eq!(
        info["base_url"],
        format!("https://localhost:{}", f.sim.https_addr().port())
    );
    assert_eq!(info["gds_url"], format!("{}/gds", f.sim.base_url()));
    assert_eq!(f.sim.admin_url(), format!("http://{}", f.sim.admin_addr()));
    assert_eq!(f.sim.udp_addrs().len(), 1);

    let (status, health) = f.admin(reqwest::Method::GET, "/admin/health", None).await?;
    assert_eq!((status, health), (200, json!({"ok": true})));
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn untrusted_client_is_refused() -> Result {
    let f = fixture().await?;
    // A different run's CA: the server certificate must not verify against it.
    let other = fixture().await?;
    let stranger = client_trusting(other.sim.ca_pem())?;
    let err = stranger
        .get(format!("{}/health", f.sim.gds_url()))
        .send()
        .await
        .expect_err("certificate from another CA must be rejected");
    assert!(err.is_connect(), "{err:?}");
    assert!(requests_to(&f.sim.received(), "/gds/health").is_empty());
    other.sim.shutdown().await;
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn certificate_names_and_alpn() -> Result {
    let f = fixture().await?;
    for (name, alpn, want) in [
        (
            "localhost",
            &[b"h2".as_slice(), b"http/1.1"][..],
            Some(b"h2".as_slice()),
        ),
        (
            "127.0.0.1",
            &[b"http/1.1".as_slice()][..],
            Some(b"http/1.1".as_slice()),
        ),
        ("::1", &[][..], None),
    ] {
        let tcp = TcpStream::connect(f.sim.https_addr()).await?;
        let connector = TlsConnector::from(Arc::new(tls_config(f.sim.ca_pem(), alpn)?));
        let tls = connector
            .connect(ServerName::try_from(name.to_owned())?, tcp)
            .await?;
        assert_eq!(tls.get_ref().1.alpn_protocol(), want, "{name}");
    }
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn gds_state_changes_through_admin_and_handle() -> Result {
    let f = fixture().await?;
    let (status, body) = f
        .admin(
            reqwest::Method::POST,
            "/admin/gds",
            Some(json!({"serviceState": "offline"})),
        )
        .await?;
    assert_eq!((status, body), (200, json!({"serviceState": "offline"})));
    let resp = f.health().await?;
    assert_eq!(resp.status(), 200, "an unhealthy GDS still answers 200");
    let doc: Value = resp.json().await?;
    assert_eq!(doc["serviceState"], "offline");
    assert_eq!(doc["message"], "Unhealthy");

    f.sim.set_gds_state("degraded");
    let doc: Value = f.health().await?.json().await?;
    assert_eq!(doc["serviceState"], "degraded");
    assert_eq!(doc["message"], "Degraded");
    let (_, gds) = f.admin(reqwest::Method::GET, "/admin/gds", None).await?;
    assert_eq!(gds, json!({"serviceState": "degraded"}));

    let (status, err) = f
        .admin(
            reqwest::Method::POST,
            "/admin/gds",
            Some(json!({"state": "online"})),
        )
        .await?;
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown field"),
        "{err}"
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn fault_injection_counts_down_then_serves_normally() -> Result {
    let f = fixture().await?;
    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/faults",
            Some(json!({"path": "/gds/health", "status": 503, "count": 2, "retry_after": 5})),
        )
        .await?;
    assert_eq!(status, 200);
    for _ in 0..2 {
        let resp = f.health().await?;
        assert_eq!(resp.status(), 503);
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );
        let body: Value = resp.json().await?;
        assert!(body["message"].is_string());
    }
    let resp = f.health().await?;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("retry-after").is_none());
    // Faulted requests are recorded too.
    assert_eq!(requests_to(&f.sim.received(), "/gds/health").len(), 3);

    // Prefix faults with a custom body, then cleared before use.
    let body = json!({"message": "maintenance"});
    f.admin(
        reqwest::Method::POST,
        "/admin/faults",
        Some(json!({"path": "/gds/*", "status": 429, "count": 5, "body": body})),
    )
    .await?;
    let resp = f.health().await?;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.json::<Value>().await?, body);
    let (_, armed) = f.admin(reqwest::Method::GET, "/admin/faults", None).await?;
    assert_eq!(armed[0]["count"], 4);
    f.admin(reqwest::Method::DELETE, "/admin/faults", None)
        .await?;
    assert_eq!(f.health().await?.status(), 200);

    let (status, err) = f
        .admin(
            reqwest::Method::POST,
            "/admin/faults",
            Some(json!({"path": "/x", "status": 42})),
        )
        .await?;
    assert_eq!(status, 400, "{err}");
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn recorder_keeps_query_body_and_unrouted_requests() -> Result {
    let f = fixture().await?;
    let resp = f
        .http
        .post(format!("{}/nowhere/yet?max=50&offset=0", f.sim.base_url()))
        .header("authorization", "Bearer t0ken")
        .body(r#"{"a":1}"#)
        .send()
        .await?;
    assert_eq!(resp.status(), 404);
    let received = f.sim.received();
    let hit = requests_to(&received, "/nowhere/yet");
    assert_eq!(hit.len(), 1);
    assert_eq!(hit[0].method, "POST");
    assert_eq!(hit[0].query, "max=50&offset=0");
    assert_eq!(hit[0].body, r#"{"a":1}"#);
    assert_eq!(hit[0].header("authorization"), Some("Bearer t0ken"));
    assert!(hit[0].at_ms > 0);

    let (_, filtered) = f
        .admin(
            reqwest::Method::GET,
            "/admin/requests?path=/gds/health",
            None,
        )
        .await?;
    assert_eq!(filtered, json!([]));
    f.admin(reqwest::Method::DELETE, "/admin/requests", None)
        .await?;
    assert!(f.sim.received().is_empty());
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn udp_echo_and_record() -> Result {
    let f = fixture().await?;
    let target = f.sim.udp_addrs()[0];
    let client = UdpSocket::bind("127.0.0.1:0").await?;
    client.send_to(b"ping", target).await?;
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(WAIT, client.recv_from(&mut buf)).await??;
    assert_eq!((&buf[..n], from), (&b"ping"[..], target));

    let (_, list) = f.admin(reqwest::Method::GET, "/admin/udp", None).await?;
    assert_eq!(list[0]["to"], target.to_string());
    assert_eq!(list[0]["from"], client.local_addr()?.to_string());
    assert_eq!(list[0]["len"], 4);
    assert_eq!(list[0]["hex"], "70696e67");
    f.admin(reqwest::Method::DELETE, "/admin/udp", None).await?;
    assert!(f.sim.udp_received().is_empty());
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn scenario_through_admin() -> Result {
    let scenario =
        Scenario::from_toml_str("[[devices]]\nactivation_code = \"4353450012345678\"\n")?;
    let f = fixture_with(scenario).await?;
    let (_, current) = f
        .admin(reqwest::Method::GET, "/admin/scenario", None)
        .await?;
    assert_eq!(current["devices"][0]["activation_code"], "4353450012345678");
    assert_eq!(current["gds"]["service_state"], "online");

    let (status, replaced) = f
        .admin(
            reqwest::Method::PUT,
            "/admin/scenario",
            Some(json!({"gds": {"service_state": "offline"}, "clusters": [{"name": "c1", "udp": ["127.0.0.1:1"]}]})),
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(replaced["devices"], json!([]));
    assert_eq!(f.sim.scenario().clusters[0].name, "c1");
    assert_eq!(
        f.health().await?.json::<Value>().await?["serviceState"],
        "offline"
    );

    let (status, err) = f
        .admin(
            reqwest::Method::PUT,
            "/admin/scenario",
            Some(json!({"devcies": []})),
        )
        .await?;
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap_or_default()
            .contains("devcies"),
        "{err}"
    );

    let resp = f
        .http
        .post(format!("{}/admin/gds", f.sim.admin_url()))
        .body("not json")
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    assert!(resp.json::<Value>().await?["error"].is_string());
    let (status, _) = f.admin(reqwest::Method::GET, "/admin/nope", None).await?;
    assert_eq!(status, 404);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn refuses_non_loopback_bind() -> Result {
    let dir = tempfile::tempdir()?;
    let mut opts = SimOptions::new(dir.path());
    opts.bind = "0.0.0.0".parse()?;
    let err = start(opts).await.expect_err("non-loopback bind must fail");
    assert!(err.to_string().contains("loopback"), "{err:#}");
    Ok(())
}

#[tokio::test]
async fn shutdown_is_prompt_with_open_connections() -> Result {
    let f = fixture().await?;
    let https = f.sim.https_addr();
    let mut ws = f.ws_connect().await?;
    // A keep-alive HTTP connection stays open in the client's pool.
    assert_eq!(f.health().await?.status(), 200);
    let began = std::time::Instant::now();
    f.sim.shutdown().await;
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    // The WebSocket client was told why.
    let frame = tokio::time::timeout(WAIT, ws.next())
        .await?
        .ok_or("socket ended")??;
    assert!(
        matches!(&frame, Message::Close(Some(cf)) if u16::from(cf.code) == 1001),
        "{frame:?}"
    );
    assert!(
        TcpStream::connect(https).await.is_err(),
        "listener still open"
    );
    Ok(())
}

#[tokio::test]
async fn binary_prints_info_and_stops_on_sigterm() -> Result {
    use tokio::io::AsyncBufReadExt as _;
    let dir = tempfile::tempdir()?;
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/default.toml");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomd-sim"))
        .args([
            "--https-port",
            "0",
            "--proxy-port",
            "0",
            "--alt-port",
            "0",
            "--admin-port",
            "0",
            "--meeting-server-port",
            "0",
            "--udp-port",
            "0",
            "--udp-port",
            "0",
        ])
        .args(["--scenario", scenario, "--log-level", "warn", "--state-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await??
        .ok_or("no start-up line")?;
    let info: SimInfo = serde_json::from_str(&line)?;
    assert_eq!(info.udp.len(), 2);
    let from_file: SimInfo =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sim.json"))?)?;
    assert_eq!(from_file, info);

    let ca = std::fs::read_to_string(&info.ca)?;
    let http = client_trusting(&ca)?;
    let doc: Value = http
        .get(format!("{}/health", info.gds_url))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(doc["serviceState"], "online");
    let scenario: Value = http
        .get(format!("{}/admin/scenario", info.admin_url))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        scenario["devices"][0]["activation_code"],
        "4353450012345678"
    );

    let pid = child.id().ok_or("child already exited")?;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(killed.success());
    let status = tokio::time::timeout(WAIT, child.wait()).await??;
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect(info.https).await.is_err());
    Ok(())
}
