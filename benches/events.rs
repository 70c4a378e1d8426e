//! Event-socket figures, each against a baseline measured in the same run over the same
//! loopback TLS WebSocket: a bare client that reads frames and throws them away.
//!
//! 1. Throughput: events/s through roomd's real connection task (TLS, WebSocket, parse,
//!    duplicate check, ack, bus dispatch to a subscriber) on one core, vs the bare reader.
//! 2. Latency at 1,000 events/s: p50/p99 from the server's send to the subscriber's receive,
//!    vs the bare reader's.
//! 3. A 10,000 events/s flood for 10 s, once with a subscriber that keeps up and once with
//!    one that takes 0.2 ms per event (backpressure reaches TCP): peak RSS before and after.
//!
//! `cargo bench --bench events`; `ROOMD_BENCH_EVENTS=N` sets the throughput run's size
//! (default 200,000).

use roomd_testkit::figures;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use roomd::cloud::mercury::connection::{self, Dial, Shared, Timers};
use roomd::events::{EventBus, Namespace};
use roomd::net::tls::TrustStore;
use roomd::net::websocket::Message;
use roomd::secret::Secret;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How the server paces its frames.
#[derive(Debug, Clone, Copy)]
enum Pace {
    AsFastAsPossible(u64),
    PerSecond { rate: u64, seconds: u64 },
}

struct Server {
    port: u16,
    ca_pem: String,
}

/// A TLS WebSocket server that, per connection, answers the authorization frame with a
/// buffer_state and then sends events carrying their send time (µs since `epoch`).
async fn start_server(pace: Pace, epoch: Instant) -> Server {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let ca_pem = cert.pem();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let tls = acceptor.accept(tcp).await.unwrap();
                let ws = tokio_tungstenite::accept_async(tls).await.unwrap();
                let (mut tx, mut rx) = ws.split();
                // The authorization frame, then keep draining acks so the client never blocks.
                let _ = rx.next().await;
                tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
                let online =
                    r#"{"id":"b","data":{"eventType":"mercury.buffer_state"},"sequenceNumber":1}"#;
                tx.send(Message::text(online)).await.unwrap();
                let frame = |seq: u64| {
                    format!(
                        r#"{{"id":"e{seq}","data":{{"eventType":"bench.event","sentUs":{}}},"timestamp":1700000000000,"trackingId":"bench_{seq}","sequenceNumber":{}}}"#,
                        epoch.elapsed().as_micros(),
                        seq + 1
                    )
                };
                match pace {
                    Pace::AsFastAsPossible(n) => {
                        for seq in 1..=n {
                            if tx.feed(Message::text(frame(seq))).await.is_err() {
                                return;
                            }
                        }
                        let _ = tx.flush().await;
                    }
                    Pace::PerSecond { rate, seconds } => {
                        let mut tick =
                            tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
                        for seq in 1..=rate * seconds {
                            tick.tick().await;
                            if tx.send(Message::text(frame(seq))).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                // Keep the socket open until the client is done.
                std::future::pending::<()>().await;
            });
        }
    });
    Server { port, ca_pem }
}

fn tls_for(server: &Server) -> Arc<rustls::ClientConfig> {
    let mut trust = TrustStore::platform();
    trust.add_pem(server.ca_pem.as_bytes(), "bench").unwrap();
    Arc::new(trust.client_config().unwrap())
}

fn url(server: &Server) -> String {
    format!("wss://localhost:{}/mercury", server.port)
}

/// Receive times minus send times, in µs, for `count` events through roomd's pipeline;
/// `per_event` is work the subscriber does per event. Returns (latencies, elapsed).
async fn through_roomd(
    server: &Server,
    count: u64,
    epoch: Instant,
    per_event: Duration,
) -> (Vec<u64>, Duration) {
    let bus = EventBus::new();
    let mut events = bus.subscribe(Namespace::Other, 256);
    let shared = Arc::new(Shared::new(bus, 4096));
    let (reports, mut reports_rx) = mpsc::channel(16);
    let (_control_tx, control) = mpsc::channel(1);
    let timers = Timers {
        ping_interval: Duration::from_secs(3600),
        pong_timeout: Duration::from_secs(3600),
        connect_timeout: Duration::from_secs(10),
        online_timeout: Duration::from_secs(10),
        close_grace: Duration::from_secs(1),
    };
    let dial = Dial {
        id: 1,
        url: url(server),
        access_token: Secret::new("bench-token".into()),
        tls: tls_for(server),
        tracking_id: "bench".into(),
    };
    tokio::spawn(connection::run(dial, timers, shared, reports, control));
    tokio::spawn(async move { while reports_rx.recv().await.is_some() {} });
    let mut latencies = Vec::with_capacity(count as usize);
    let mut started = None;
    for _ in 0..count {
        let event = events.recv().await.expect("event");
        started.get_or_insert_with(Instant::now);
        let sent = event.data["sentUs"].as_u64().unwrap();
        latencies.push((epoch.elapsed().as_micros() as u64).saturating_sub(sent));
        if !per_event.is_zero() {
            spin(per_event);
        }
    }
    (latencies, started.unwrap().elapsed())
}

/// The baseline: a bare client that reads frames and discards them (it only pulls the send
/// time out of the text, without a JSON parse).
async fn through_bare_reader(server: &Server, count: u64, epoch: Instant) -> (Vec<u64>, Duration) {
    let mut socket =
        roomd::net::websocket::connect(&url(server), tls_for(server), &[], Duration::from_secs(10))
            .await
            .unwrap();
    socket.send(Message::text("{}")).await.unwrap();
    let _online = socket.next().await;
    let mut latencies = Vec::with_capacity(count as usize);
    let mut started = None;
    for _ in 0..count {
        let Some(Ok(Message::Text(text))) = socket.next().await else {
            panic!("frame")
        };
        started.get_or_insert_with(Instant::now);
        let at = text.as_str().find("\"sentUs\":").unwrap() + 9;
        let digits: String = text.as_str()[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        latencies
            .push((epoch.elapsed().as_micros() as u64).saturating_sub(digits.parse().unwrap()));
    }
    (latencies, started.unwrap().elapsed())
}

fn spin(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// (VmRSS, VmHWM) in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The client side runs on this thread alone (one core); servers run on their own runtime.
fn client<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn main() {
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let epoch = Instant::now();
    let n: u64 = std::env::var("ROOMD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let start = |pace| servers.block_on(start_server(pace, epoch));
    println!("event socket benchmark ({} events per throughput run)", n);
    figures::about(
        "events through roomd's event-socket connection task (TLS, WebSocket, parse, duplicate check, ack, bus dispatch to a subscriber), client on one core",
        "a bare client on the same loopback TLS WebSocket that reads frames and throws them away",
    );

    let bare = client(through_bare_reader(
        &start(Pace::AsFastAsPossible(n)),
        n,
        epoch,
    ))
    .1;
    let roomd = client(through_roomd(
        &start(Pace::AsFastAsPossible(n)),
        n,
        epoch,
        Duration::ZERO,
    ))
    .1;
    let bare_rate = n as f64 / bare.as_secs_f64();
    let roomd_rate = n as f64 / roomd.as_secs_f64();
    println!("throughput, bare TLS WebSocket reader (baseline): {bare_rate:>10.0} events/s");
    println!(
        "throughput, roomd parse+dedup+ack+dispatch:        {roomd_rate:>10.0} events/s  = {:.2} x baseline",
        roomd_rate / bare_rate
    );
    figures::figure(
        &format!(
            "throughput, {} events as fast as possible",
            figures::number(n as f64)
        ),
        roomd_rate,
        "events/s",
    )
    .against("bare reader", bare_rate)
    .record();

    let paced = Pace::PerSecond {
        rate: 1000,
        seconds: 5,
    };
    let (mut bare_lat, _) = client(through_bare_reader(&start(paced), 5000, epoch));
    let (mut roomd_lat, _) = client(through_roomd(&start(paced), 5000, epoch, Duration::ZERO));
    bare_lat.sort_unstable();
    roomd_lat.sort_unstable();
    let (b50, b99) = (percentile(&bare_lat, 0.5), percentile(&bare_lat, 0.99));
    let (r50, r99) = (percentile(&roomd_lat, 0.5), percentile(&roomd_lat, 0.99));
    println!("latency at 1,000 events/s, bare reader (baseline): p50 {b50} µs, p99 {b99} µs");
    println!(
        "latency at 1,000 events/s, roomd to subscriber:     p50 {r50} µs, p99 {r99} µs  = p99 {:.2} x baseline",
        r99 as f64 / b99.max(1) as f64
    );
    figures::figure("latency at 1,000 events/s, p50", r50 as f64, "µs")
        .against("bare reader p50", b50.max(1) as f64)
        .record();
    figures::figure("latency at 1,000 events/s, p99", r99 as f64, "µs")
        .against("bare reader p99", b99.max(1) as f64)
        .record();

    let counted = Arc::new(AtomicU64::new(0));
    let (rss_before, _) = rss_kib();
    for (label, per_event) in [
        ("keeping up", Duration::ZERO),
        ("0.2 ms per event", Duration::from_micros(200)),
    ] {
        let flood = Pace::PerSecond {
            rate: 10_000,
            seconds: 10,
        };
        // A slow subscriber cannot take all 100,000 within the run; it takes what 10 s allow.
        let take = if per_event.is_zero() { 100_000 } else { 40_000 };
        let (_lat, elapsed) = client(through_roomd(&start(flood), take, epoch, per_event));
        counted.fetch_add(take, Ordering::Relaxed);
        let (rss, hwm) = rss_kib();
        println!(
            "flood 10,000 events/s, subscriber {label}: {take} events in {:.1} s; RSS {:.1} MiB, peak {:.1} MiB",
            elapsed.as_secs_f64(),
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        figures::figure(
            &format!(
                "flood 10,000 events/s, subscriber {label}: {} events in {:.1} s, peak RSS",
                figures::number(take as f64),
                elapsed.as_secs_f64()
            ),
            hwm as f64 / 1024.0,
            "MiB",
        )
        .record();
    }
    let (_, hwm) = rss_kib();
    println!(
        "peak RSS after both floods: {:.1} MiB = {:.2} x the RSS before them ({:.1} MiB)",
        hwm as f64 / 1024.0,
        hwm as f64 / rss_before.max(1) as f64,
        rss_before as f64 / 1024.0
    );
    figures::figure("peak RSS after both floods", hwm as f64 / 1024.0, "MiB")
        .against("RSS before them", rss_before.max(1) as f64 / 1024.0)
        .record();
}
