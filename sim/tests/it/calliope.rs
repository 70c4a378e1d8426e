//! Media reachability (wire profile §6, docs/wire-profile-choices.md §6) against real sockets: the
//! discovery document, STUN Binding over udp, tcp (RFC 4571) and xtls (TLS + RFC 4571) answered
//! after the injected RTT with the right transaction id and XOR-MAPPED-ADDRESS, silent clusters,
//! the ground truth and the misbehave modes. STUN is encoded here by hand, independently of the
//! simulator. Every wait is bounded.

use roomd_testkit::sim as support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomd_sim::{Device, Scenario, SimHandle};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use support::{Result, SimFixture, tls_config};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;

const WAIT: Duration = Duration::from_secs(10);
const CODE: &str = "4353450012345678";
/// Longer than the largest injected RTT (150 ms) with room for a loaded machine: "no answer
/// before this" is what a silent node must show.
const QUIET: Duration = Duration::from_millis(600);
const COOKIE: u32 = 0x2112_A442;

struct Fixture {
    sim: SimHandle,
    http: reqwest::Client,
    token: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Result<Fixture> {
    let scenario = Scenario {
        devices: vec![Device::new(CODE)],
        ..Scenario::default()
    };
    let kit = SimFixture::start(scenario, WAIT).await?;
    let token = kit.activate(CODE).await?;
    let SimFixture { sim, http, dir, .. } = kit;
    Ok(Fixture {
        sim,
        http,
        token,
        _dir: dir,
    })
}

fn request(txid: [u8; 12]) -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x00];
    m.extend_from_slice(&COOKIE.to_be_bytes());
    m.extend_from_slice(&txid);
    m
}

fn txid() -> [u8; 12] {
    rand::random()
}

/// A Binding success's transaction id and XOR-MAPPED-ADDRESS; `None` for anything else.
fn parse_success(msg: &[u8]) -> Option<([u8; 12], SocketAddr)> {
    if msg.len() < 20 || msg[0..2] != [0x01, 0x01] || msg[4..8] != COOKIE.to_be_bytes() {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    let body = msg.get(20..20 + len)?;
    let mut id = [0_u8; 12];
    id.copy_from_slice(&msg[8..20]);
    let mut i = 0;
    while i + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[i], body[i + 1]]);
        let alen = usize::from(u16::from_be_bytes([body[i + 2], body[i + 3]]));
        let v = body.get(i + 4..i + 4 + alen)?;
        if kind == 0x0020 && v.len() == 8 && v[1] == 0x01 {
            let port = u16::from_be_bytes([v[2], v[3]]) ^ 0x2112;
            let ip = u32::from_be_bytes([v[4], v[5], v[6], v[7]]) ^ COOKIE;
            return Some((id, SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)));
        }
        i += 4 + alen.div_ceil(4) * 4;
    }
    None
}

fn addr(v: &Value) -> Result<SocketAddr> {
    Ok(v["addr"].as_str().ok_or("addr")?.parse()?)
}

fn rtt(v: &Value) -> Result<Duration> {
    Ok(Duration::from_millis(v["rtt_ms"].as_u64().ok_or("rtt_ms")?))
}

/// One udp probe: the answer bytes and how long it took; `None` when nothing came within `wait`.
async fn udp_probe(
    node: SocketAddr,
    msg: &[u8],
    wait: Duration,
) -> Result<Option<(Vec<u8>, Duration, SocketAddr)>> {
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let local = sock.local_addr()?;
    let t0 = Instant::now();
    sock.send_to(msg, node).await?;
    let mut buf = vec![0_u8; 2048];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(r) => {
            let (n, from) = r?;
            assert_eq!(from, node);
            Ok(Some((buf[..n].to_vec(), t0.elapsed(), local)))
        }
        Err(_) => Ok(None),
    }
}

async fn framed_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    msg: &[u8],
    wait: Duration,
) -> Result<Option<(Vec<u8>, Duration)>> {
    let t0 = Instant::now();
    let mut out = u16::try_from(msg.len())?.to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let read = async {
        let mut len = [0_u8; 2];
        stream.read_exact(&mut len).await?;
        let mut body = vec![0_u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    match tokio::time::timeout(wait, read).await {
        Ok(body) => Ok(Some((body?, t0.elapsed()))),
        Err(_) => Ok(None),
    }
}

async fn tcp_probe(
    node: SocketAddr,
    msg: &[u8],
    wait: Duration,
) -> Result<Option<(Vec<u8>, Duration, SocketAddr)>> {
    let mut tcp = TcpStream::connect(node).await?;
    let local = tcp.local_addr()?;
    Ok(framed_exchange(&mut tcp, msg, wait)
        .await?
        .map(|(b, d)| (b, d, local)))
}

async fn xtls_probe(
    sim: &SimHandle,
    node: SocketAddr,
    msg: &[u8],
    wait: Duration,
) -> Result<Option<(Vec<u8>, Duration, SocketAddr)>> {
    let tcp = TcpStream::connect(node).await?;
    let local = tcp.local_addr()?;
    let connector = TlsConnector::from(Arc::new(tls_config(sim.ca_pem())?));
    let mut tls = tokio::time::timeout(
        WAIT,
        connector.connect(ServerName::IpAddress(node.ip().into()), tcp),
    )
    .await??;
    Ok(framed_exchange(&mut tls, msg, wait)
        .await?
        .map(|(b, d)| (b, d, local)))
}

async fn probe(
    sim: &SimHandle,
    transport: &str,
    node: SocketAddr,
    msg: &[u8],
    wait: Duration,
) -> Result<Option<(Vec<u8>, Duration, SocketAddr)>> {
    match transport {
        "udp" => udp_probe(node, msg, wait).await,
        "tcp" => tcp_probe(node, msg, wait).await,
        _ => xtls_probe(sim, node, msg, wait).await,
    }
}

#[tokio::test]
async fn discovery_lists_every_cluster_with_cache_control() -> Result {
    let f = fixture().await?;
    let url = format!(
        "{}/calliope/api/discovery/v1/clusters",
        f.sim.service_base_url()
    );
    let resp = f.http.get(&url).send().await?;
    assert_eq!(resp.status(), 401, "bearer required");
    let resp = f.http.get(&url).bearer_auth(&f.token).send().await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .map(|v| v.to_str())
            .transpose()?,
        Some("max-age=7200")
    );
    let doc: Value = resp.json().await?;
    let clusters = doc["clusters"].as_object().ok_or("clusters")?;
    assert_eq!(clusters.len(), 210);
    let truth = f.sim.calliope();
    let listed = truth["clusters"].as_array().ok_or("admin clusters")?;
    assert_eq!(listed.len(), 210);
    assert_eq!(listed.iter().filter(|c| c["silent"] == true).count(), 44);
    for c in listed {
        let name = c["name"].as_str().ok_or("name")?;
        assert!(name.starts_with("sim-c"), "{name}");
        let entry = &clusters[name];
        for t in ["udp", "tcp", "xtls"] {
            assert_eq!(entry[t], json!([c[t]["addr"]]), "{name} {t}");
            let r = c[t]["rtt_ms"].as_u64().ok_or("rtt")?;
            assert!((5..=150).contains(&r), "{name} {t} {r}");
        }
    }
    assert!(clusters.contains_key("sim-c001.sim-c001.sim.invalid"));
    // The admin API serves the same document as the handle.
    let admin: Value = f
        .http
        .get(format!("{}/admin/calliope", f.sim.admin_url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(admin["best"], truth["best"]);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ground_truth_best_is_unique_with_margin() -> Result {
    let f = fixture().await?;
    let truth = f.sim.calliope();
    let clusters = truth["clusters"].as_array().ok_or("clusters")?;
    for t in ["udp", "tcp", "xtls"] {
        let best = &truth["best"][t];
        let best_rtt = best["rtt_ms"].as_u64().ok_or("best rtt")?;
        let best_cluster = best["cluster"].as_str().ok_or("best cluster")?;
        let mut others: Vec<u64> = clusters
            .iter()
            .filter(|c| c["silent"] == false && c["name"] != best_cluster)
            .map(|c| c[t]["rtt_ms"].as_u64().unwrap_or(0))
            .collect();
        others.sort_unstable();
        assert!(
            others[0] >= best_rtt + 10,
            "{t}: best {best_rtt}, next {}",
            others[0]
        );
        let owner = clusters
            .iter()
            .find(|c| c["name"] == best_cluster)
            .ok_or("best cluster listed")?;
        assert_eq!(owner["silent"], false);
        assert_eq!(owner[t]["addr"], best["addr"]);
    }
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn stun_answers_on_every_transport_after_the_rtt() -> Result {
    let f = fixture().await?;
    let truth = f.sim.calliope();
    let clusters = truth["clusters"].as_array().ok_or("clusters")?;
    let slow = clusters
        .iter()
        .filter(|c| c["silent"] == false)
        .max_by_key(|c| c["udp"]["rtt_ms"].as_u64().unwrap_or(0))
        .ok_or("a slow cluster")?;
    for t in ["udp", "tcp", "xtls"] {
        for node in [&truth["best"][t], &slow[t]] {
            let id = txid();
            let (answer, took, local) = probe(&f.sim, t, addr(node)?, &request(id), WAIT)
                .await?
                .ok_or("no answer")?;
            let (got, mapped) = parse_success(&answer).ok_or("not a Binding success")?;
            assert_eq!(got, id, "{t}: same transaction id");
            assert_eq!(mapped, local, "{t}: XOR-MAPPED-ADDRESS is the sender");
            assert!(took >= rtt(node)?, "{t}: {took:?} < {:?}", rtt(node)?);
        }
    }
    let probes = &f.sim.calliope()["probes"];
    assert_eq!(probes, &json!({"udp": 2, "tcp": 2, "xtls": 2}));
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn udp_retransmits_and_non_stun_input() -> Result {
    let f = fixture().await?;
    let node = addr(&f.sim.calliope()["best"]["udp"])?;
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    // Not STUN: ignored. Then the same request twice (a retransmit): two answers, same id.
    sock.send_to(b"GET / HTTP/1.1\r\n\r\n this is not STUN", node)
        .await?;
    let id = txid();
    sock.send_to(&request(id), node).await?;
    sock.send_to(&request(id), node).await?;
    let mut buf = vec![0_u8; 2048];
    for _ in 0..2 {
        let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf)).await??;
        let (got, _) = parse_success(&buf[..n]).ok_or("Binding success")?;
        assert_eq!(got, id);
    }
    assert_eq!(
        f.sim.calliope()["probes"]["udp"],
        2,
        "only STUN requests count"
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn silent_clusters_never_answer() -> Result {
    let f = fixture().await?;
    let truth = f.sim.calliope();
    let silent = truth["clusters"]
        .as_array()
        .ok_or("clusters")?
        .iter()
        .find(|c| c["silent"] == true)
        .ok_or("a silent cluster")?
        .clone();
    let (r1, r2, r3) = (request(txid()), request(txid()), request(txid()));
    let (udp, tcp, xtls) = tokio::join!(
        probe(&f.sim, "udp", addr(&silent["udp"])?, &r1, QUIET),
        probe(&f.sim, "tcp", addr(&silent["tcp"])?, &r2, QUIET),
        probe(&f.sim, "xtls", addr(&silent["xtls"])?, &r3, QUIET),
    );
    assert!(udp?.is_none(), "udp answered");
    assert!(tcp?.is_none(), "tcp answered");
    assert!(xtls?.is_none(), "xtls answered");
    let after = f.sim.calliope();
    let c = after["clusters"]
        .as_array()
        .ok_or("clusters")?
        .iter()
        .find(|c| c["name"] == silent["name"])
        .ok_or("listed")?
        .clone();
    for t in ["udp", "tcp", "xtls"] {
        assert_eq!(c[t]["probes"], 1, "{t}: the request was received");
    }
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn misbehaving_clusters_never_send_the_right_answer() -> Result {
    let f = fixture().await?;
    let truth = f.sim.calliope();
    let best = truth["best"]["udp"]["cluster"]
        .as_str()
        .ok_or("best")?
        .to_owned();
    let cluster = truth["clusters"]
        .as_array()
        .ok_or("clusters")?
        .iter()
        .find(|c| c["name"] == best.as_str())
        .ok_or("listed")?
        .clone();
    assert!(
        f.sim
            .calliope_misbehave("sim-c999.nope", "garbage")
            .is_err()
    );
    assert!(f.sim.calliope_misbehave(&best, "loud").is_err());

    f.sim.calliope_misbehave(&best, "garbage")?;
    for t in ["udp", "tcp", "xtls"] {
        let id = txid();
        let (answer, _, _) = probe(&f.sim, t, addr(&cluster[t])?, &request(id), WAIT)
            .await?
            .ok_or("garbage comes back")?;
        assert!(answer.len() >= 20, "{t}");
        assert!(parse_success(&answer).is_none(), "{t}: garbage is not STUN");
        assert_ne!(answer[0] & 0xC0, 0, "{t}: not STUN's first bits");
    }

    // Through the admin API this time.
    let resp = f
        .http
        .post(format!("{}/admin/calliope/misbehave", f.sim.admin_url()))
        .json(&json!({"cluster": best, "mode": "wrong_txid"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    for t in ["udp", "tcp", "xtls"] {
        let id = txid();
        let (answer, _, _) = probe(&f.sim, t, addr(&cluster[t])?, &request(id), WAIT)
            .await?
            .ok_or("an answer")?;
        let (got, _) = parse_success(&answer).ok_or("well-formed success")?;
        assert_ne!(got, id, "{t}: another transaction id");
    }
    // A udp client waiting for its own id: only the wrong one arrives, nothing else follows.
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let id = txid();
    sock.send_to(&request(id), addr(&cluster["udp"])?).await?;
    let mut buf = vec![0_u8; 2048];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf)).await??;
    assert_ne!(parse_success(&buf[..n]).map(|a| a.0), Some(id));
    assert!(
        tokio::time::timeout(QUIET, sock.recv_from(&mut buf))
            .await
            .is_err(),
        "the right answer never follows"
    );

    f.sim.calliope_misbehave(&best, "normal")?;
    let id = txid();
    let (answer, _, _) = probe(&f.sim, "udp", addr(&cluster["udp"])?, &request(id), WAIT)
        .await?
        .ok_or("normal again")?;
    assert_eq!(parse_success(&answer).map(|a| a.0), Some(id));
    let resp = f
        .http
        .post(format!("{}/admin/calliope/misbehave", f.sim.admin_url()))
        .json(&json!({"cluster": best, "mode": "odd"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    f.sim.shutdown().await;
    Ok(())
}
