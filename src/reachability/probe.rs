//! STUN Binding probes over udp, tcp (RFC 4571) and xtls (TLS, then RFC 4571), each bounded
//! by the probe timeout, and [`run_discovery`], which probes the first node of every
//! transport of every cluster at once, at most `max_in_flight` sockets open at a time.
//!
//! Anything that arrives and is not the answer (not STUN, another transaction id, an error
//! response) is counted, logged once per probe, and the probe keeps waiting on the same
//! socket until its timeout.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::proto::stun::{self, StunError, TransactionId};

use super::discovery::ClusterDocument;
use super::report::{ClusterResult, ReachabilityReport, Transport, TransportResult};

/// How probes run (`[reachability]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOptions {
    /// How long a probe waits for its answer, connect and TLS handshake included.
    pub timeout: Duration,
    /// Most probe sockets open at once.
    pub max_in_flight: usize,
    /// When udp requests go out, from the first send (0, 100, 300, 700 ms: retransmits
    /// after 100, 200 and 400 ms, the same transaction id each time).
    pub udp_schedule: Vec<Duration>,
}

/// The udp send times of wire profile §6.
pub const UDP_SCHEDULE_MS: [u64; 4] = [0, 100, 300, 700];

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(1000),
            max_in_flight: 256,
            udp_schedule: UDP_SCHEDULE_MS
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
        }
    }
}

impl ProbeOptions {
    pub fn from_config(config: &crate::config::ReachabilityConfig) -> Self {
        Self {
            timeout: Duration::from_millis(config.probe_timeout_ms.max(1)),
            max_in_flight: config.max_in_flight.max(1),
            ..Self::default()
        }
    }
}

/// Counters a probe keeps while it runs (readable after a timeout cut it short).
#[derive(Debug, Default)]
struct Tally {
    sent: u32,
    ignored: u32,
}

impl Tally {
    /// Counts an answer that is not ours; the first one per probe is logged.
    fn ignore(&mut self, transport: Transport, node: SocketAddr, error: &StunError) {
        self.ignored += 1;
        if self.ignored == 1 {
            tracing::warn!(
                "STUN {transport} probe of {node}: ignoring a response that is not the answer ({error}); still waiting"
            );
        } else {
            tracing::debug!("STUN {transport} probe of {node}: another ignored response ({error})");
        }
    }
}

/// Sends one STUN Binding to `node` over `transport` and waits for its answer. `tls` is the
/// trust for xtls (udp and tcp need none: a call's connectivity check probes udp without it).
pub async fn probe(
    transport: Transport,
    node: SocketAddr,
    options: &ProbeOptions,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> TransportResult {
    let deadline = Instant::now() + options.timeout;
    let mut tally = Tally::default();
    let exchange = async {
        match transport {
            Transport::Udp => udp(node, options, deadline, &mut tally).await,
            Transport::Tcp => {
                let stream = TcpStream::connect(node).await.map_err(io_failure)?;
                let _ = stream.set_nodelay(true);
                framed(stream, transport, node, &mut tally).await
            }
            Transport::Xtls => {
                let tls = tls.ok_or("no TLS trust configured for xtls")?;
                let stream = TcpStream::connect(node).await.map_err(io_failure)?;
                let _ = stream.set_nodelay(true);
                let name = rustls_pki_types::ServerName::IpAddress(node.ip().into());
                let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                framed(stream, transport, node, &mut tally).await
            }
        }
    };
    let outcome = match tokio::time::timeout_at(deadline, exchange).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "timed out after {} ms",
            options.timeout.as_millis()
        )),
    };
    if tally.ignored > 1 {
        tracing::debug!(
            "STUN {transport} probe of {node}: {} responses ignored",
            tally.ignored
        );
    }
    let (rtt, mapped, failure) = match outcome {
        Ok((rtt, mapped)) => (Some(rtt), Some(mapped), None),
        Err(reason) => (None, None, Some(reason)),
    };
    TransportResult {
        node,
        rtt,
        mapped,
        requests_sent: tally.sent,
        ignored: tally.ignored,
        failure,
    }
}

fn io_failure(e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

/// udp: the request at each scheduled time (same transaction id), the RTT from the first send.
async fn udp(
    node: SocketAddr,
    options: &ProbeOptions,
    deadline: Instant,
    tally: &mut Tally,
) -> Result<(Duration, SocketAddr), String> {
    let local: SocketAddr = if node.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io_failure)?;
    socket.connect(node).await.map_err(io_failure)?;
    let (txid, request) = stun::binding_request();
    let start = Instant::now();
    let mut schedule = options.udp_schedule.iter().map(|offset| start + *offset);
    let mut next_send = schedule.next().or(Some(start));
    let mut buf = [0u8; 2048];
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_send.unwrap_or(deadline)), if next_send.is_some_and(|at| at < deadline) => {
                socket.send(&request).await.map_err(io_failure)?;
                tally.sent += 1;
                next_send = schedule.next();
            }
            received = socket.recv(&mut buf) => {
                let n = received.map_err(io_failure)?;
                match answer(&buf[..n], txid) {
                    Ok(mapped) => return Ok((start.elapsed(), mapped)),
                    Err(e) => tally.ignore(Transport::Udp, node, &e),
                }
            }
        }
    }
}

fn answer(bytes: &[u8], txid: TransactionId) -> Result<SocketAddr, StunError> {
    stun::parse_binding_response(bytes, txid)
}

/// tcp and xtls: the request in RFC 4571 framing, then frames until the answer.
async fn framed<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    transport: Transport,
    node: SocketAddr,
    tally: &mut Tally,
) -> Result<(Duration, SocketAddr), String> {
    let (txid, request) = stun::binding_request();
    let frame = stun::encode_frame(&request).ok_or("request too long")?;
    let start = Instant::now();
    stream.write_all(&frame).await.map_err(io_failure)?;
    stream.flush().await.map_err(io_failure)?;
    tally.sent += 1;
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.map_err(io_failure)?;
        if n == 0 {
            return Err("closed by the node without an answer".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some((frame, used)) = stun::decode_frame(&buf) {
            match answer(frame, txid) {
                Ok(mapped) => return Ok((start.elapsed(), mapped)),
                Err(e) => tally.ignore(transport, node, &e),
            }
            buf.drain(..used);
        }
    }
}

/// Probes the first node of every transport of every cluster, all at once with at most
/// `options.max_in_flight` sockets open, and reports what answered. Usable without HTTP:
/// the document can come from anywhere.
pub async fn run_discovery(
    clusters: &ClusterDocument,
    options: &ProbeOptions,
    tls: Arc<rustls::ClientConfig>,
) -> ReachabilityReport {
    let started_at = SystemTime::now();
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
    let in_flight = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let options = Arc::new(options.clone());
    let mut results: Vec<ClusterResult> = clusters
        .clusters
        .iter()
        .map(|(name, _)| ClusterResult::new(name.clone()))
        .collect();
    let mut probes = tokio::task::JoinSet::new();
    for (index, (_, cluster)) in clusters.clusters.iter().enumerate() {
        for transport in Transport::ALL {
            let Some(node) = cluster.probe_target(transport) else {
                continue;
            };
            let (permits, in_flight, options, tls) = (
                Arc::clone(&permits),
                Arc::clone(&in_flight),
                Arc::clone(&options),
                Arc::clone(&tls),
            );
            probes.spawn(async move {
                // Never closed, so this always holds a permit.
                let _permit = permits.acquire_owned().await.ok();
                let open = in_flight.0.fetch_add(1, Ordering::SeqCst) + 1;
                in_flight.1.fetch_max(open, Ordering::SeqCst);
                let result = probe(transport, node, &options, Some(&tls)).await;
                in_flight.0.fetch_sub(1, Ordering::SeqCst);
                (index, transport, result)
            });
        }
    }
    while let Some(joined) = probes.join_next().await {
        match joined {
            Ok((index, transport, result)) => {
                *results[index].slot(transport) = Some(result);
            }
            Err(e) => tracing::error!("CalliopeDiscovery: a probe task failed: {e}"),
        }
    }
    ReachabilityReport {
        started_at,
        duration: started.elapsed(),
        clusters: results,
        peak_in_flight: in_flight.1.load(Ordering::SeqCst),
    }
}
