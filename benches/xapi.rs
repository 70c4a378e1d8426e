//! xAPI feedback latency: from a state change (the status watch updated, as a command or a
//! cloud event does it) until each of 20 subscribed clients has the feedback frame, p50/p99,
//! against a baseline measured in the same run: a bare tokio-tungstenite server that writes an
//! already-built feedback frame to the same 20 loopback sockets.
//!
//! `cargo bench --bench xapi`; `ROOMD_BENCH_ROUNDS=N` sets the number of changes (default 1000).

use roomd_testkit::figures;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use roomd::api::xapi::XapiServer;
use roomd::api::xapi::auth::set_password;
use roomd::config::XapiConfig;
use roomd::shutdown::Tasks;
use roomd::store::StateDir;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const CLIENTS: usize = 20;

/// Spawns a reader per client that reports (client, volume, arrival) for each feedback frame.
fn read_feedback<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    client: usize,
    out: mpsc::UnboundedSender<(usize, u64, Instant)>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let (_, mut read) = ws.split();
        while let Some(Ok(Message::Text(text))) = read.next().await {
            let at = Instant::now();
            let value: Value = serde_json::from_str(text.as_str()).unwrap();
            if let Some(volume) = value["params"]["Status"]["Audio"]["Volume"].as_u64() {
                let _ = out.send((client, volume, at));
            }
        }
    });
}

/// Latencies (µs) of `rounds` changes × 20 clients; `change(level)` makes the change.
async fn measure(
    rounds: usize,
    mut arrivals: mpsc::UnboundedReceiver<(usize, u64, Instant)>,
    change: impl Fn(u64),
) -> Vec<u64> {
    let mut latencies = Vec::with_capacity(rounds * CLIENTS);
    for round in 0..rounds {
        let level = (round % 90 + 1) as u64;
        let t0 = Instant::now();
        change(level);
        let mut seen = 0;
        while seen < CLIENTS {
            let (_, volume, at) = tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
                .await
                .expect("feedback within 10 s")
                .unwrap();
            if volume == level {
                latencies.push(at.duration_since(t0).as_micros() as u64);
                seen += 1;
            }
        }
    }
    latencies.sort_unstable();
    latencies
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn roomd_latencies(rounds: usize) -> Vec<u64> {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path().join("state")).unwrap();
    set_password(&state, "admin", "bench-password").unwrap();
    let (ctx, status) = roomd_testkit::daemon::detached_xapi_context(state, 64);
    let config = XapiConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..XapiConfig::default()
    };
    let server = XapiServer::bind(&config, ctx).await.unwrap();
    let url = server.urls()[0].clone();
    let tasks = Tasks::new();
    tasks.spawn(tracing::Span::none(), move |shutdown| {
        server.serve(shutdown)
    });
    let auth = format!(
        "auth-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("admin:bench-password")
    );
    let (tx, rx) = mpsc::unbounded_channel();
    for client in 0..CLIENTS {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", auth.parse().unwrap());
        let stream = TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches("/ws"))
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .unwrap();
        let subscribe = json!({"jsonrpc": "2.0", "id": "1", "method": "xFeedback/Subscribe", "params": {"Query": ["Status", "Audio", "Volume"]}});
        ws.send(Message::text(subscribe.to_string())).await.unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        assert!(reply.to_text().unwrap().contains("\"Id\""));
        read_feedback(ws, client, tx.clone());
    }
    let status = Arc::new(status);
    let latencies = measure(rounds, rx, |level| {
        status.send_modify(|s| s.controls.volume = level as u8)
    })
    .await;
    tasks.shutdown(Duration::from_secs(5)).await.unwrap();
    latencies
}

async fn bare_latencies(rounds: usize) -> Vec<u64> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut servers = Vec::new();
    for client in 0..CLIENTS {
        let connect = tokio::spawn(async move {
            let stream = TcpStream::connect(address).await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio_tungstenite::client_async(format!("ws://{address}/ws"), stream)
                .await
                .unwrap()
                .0
        });
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let server = tokio_tungstenite::accept_async(stream).await.unwrap();
        read_feedback(connect.await.unwrap(), client, tx.clone());
        servers.push(server);
    }
    // One writer task per socket, as the xAPI has one session task per client.
    let (level_tx, _) = tokio::sync::broadcast::channel::<u64>(16);
    for mut server in servers {
        let mut levels = level_tx.subscribe();
        tokio::spawn(async move {
            while let Ok(level) = levels.recv().await {
                let text = json!({"jsonrpc": "2.0", "method": "xFeedback/Event", "params": {"Id": 1, "Status": {"Audio": {"Volume": level}}}}).to_string();
                server.send(Message::text(text)).await.unwrap();
            }
        });
    }
    measure(rounds, rx, |level| {
        let _ = level_tx.send(level);
    })
    .await
}

fn main() {
    let rounds: usize = std::env::var("ROOMD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    figures::about(
        &format!(
            "xAPI feedback latency: a state change (the status watch updated) until each of {CLIENTS} subscribed loopback WebSocket clients has the feedback frame, {rounds} changes"
        ),
        "a bare tokio-tungstenite server writing an already-built feedback frame to the same number of loopback sockets",
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Warm-up rounds so both sides run with warm caches and established connections.
        let _ = bare_latencies(50).await;
        let bare = bare_latencies(rounds).await;
        let roomd = roomd_latencies(rounds).await;
        let (b50, b99) = (percentile(&bare, 0.50), percentile(&bare, 0.99));
        let (r50, r99) = (percentile(&roomd, 0.50), percentile(&roomd, 0.99));
        println!(
            "xAPI feedback latency, {rounds} changes x {CLIENTS} subscribed clients (loopback ws)"
        );
        println!("  bare tungstenite broadcast: p50 {b50} us, p99 {b99} us");
        println!("  roomd xAPI:                 p50 {r50} us, p99 {r99} us");
        println!(
            "  ratio roomd/bare:           p50 {:.2}x, p99 {:.2}x",
            r50 as f64 / b50.max(1) as f64,
            r99 as f64 / b99.max(1) as f64
        );
        figures::figure("feedback latency, p50", r50 as f64, "µs")
            .against("bare broadcast p50", b50.max(1) as f64)
            .record();
        figures::figure("feedback latency, p99", r99 as f64, "µs")
            .against("bare broadcast p99", b99.max(1) as f64)
            .record();
    });
}
