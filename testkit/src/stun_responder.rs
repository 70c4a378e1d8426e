//! Loopback STUN responders for the reachability tests and bench: a node is a udp socket, a
//! tcp listener and a TLS listener on 127.0.0.1 (certificate from a CA generated at start),
//! answering Binding requests after a per-transport delay, or misbehaving on purpose.
//! Used by roomd's reachability tests (`tests/it/reachability.rs`) and bench.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use roomd::proto::stun;
use roomd::reachability::{Cluster, Transport};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

/// A test CA and a server configuration whose certificate (signed by it) names 127.0.0.1.
#[derive(Debug)]
pub struct TestTls {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl TestTls {
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "reachability test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            server: Arc::new(config),
        }
    }

    /// The probe side: roomd's trust store with the test CA added.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut trust = roomd::net::tls::TrustStore::default();
        trust.add_pem(self.ca_pem.as_bytes(), "test CA").unwrap();
        Arc::new(trust.client_config().unwrap())
    }
}

/// How a node answers a Binding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A Binding success after the transport's delay.
    Answer,
    /// Non-STUN bytes (framed over tcp/xtls) after 1 ms, never the answer.
    Garbage,
    /// A Binding success of another transaction after 1 ms, never the answer.
    WrongTxid,
    /// A Binding error response after 1 ms, never the answer.
    Error,
    /// udp: answers only the n-th datagram of a transaction (1-based); tcp/xtls: answer.
    AnswerNthDatagram(u32),
}

/// One node: per transport the delay before answering, `None` = silent on that transport.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub udp: Option<Duration>,
    pub tcp: Option<Duration>,
    pub xtls: Option<Duration>,
    pub behaviour: Behaviour,
}

impl NodeSpec {
    pub fn answering(udp_ms: u64, tcp_ms: u64, xtls_ms: u64) -> Self {
        Self {
            udp: Some(Duration::from_millis(udp_ms)),
            tcp: Some(Duration::from_millis(tcp_ms)),
            xtls: Some(Duration::from_millis(xtls_ms)),
            behaviour: Behaviour::Answer,
        }
    }

    pub fn silent() -> Self {
        Self {
            udp: None,
            tcp: None,
            xtls: None,
            behaviour: Behaviour::Answer,
        }
    }

    pub fn misbehaving(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            ..Self::answering(5, 5, 5)
        }
    }
}

/// A running node: its addresses and what it received.
#[derive(Debug, Clone)]
pub struct Node {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub xtls: SocketAddr,
    /// Datagrams received on udp.
    pub datagrams: Arc<AtomicU32>,
}

impl Node {
    pub fn cluster(&self) -> Cluster {
        Cluster {
            udp: vec![self.udp],
            tcp: vec![self.tcp],
            xtls: vec![self.xtls],
        }
    }

    pub fn addr(&self, transport: Transport) -> SocketAddr {
        match transport {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
            Transport::Xtls => self.xtls,
        }
    }

    pub fn datagrams(&self) -> u32 {
        self.datagrams.load(Ordering::SeqCst)
    }
}

/// Every responder task; dropping it stops them.
#[derive(Debug, Default)]
pub struct Responders {
    tasks: JoinSet<()>,
}

/// What to send back to a request (and when), per behaviour.
fn reply(
    behaviour: Behaviour,
    delay: Duration,
    txid: stun::TransactionId,
    peer: SocketAddr,
    nth: u32,
) -> Option<(Duration, Vec<u8>)> {
    let soon = Duration::from_millis(1);
    match behaviour {
        Behaviour::Answer => Some((delay, stun::binding_success(txid, peer))),
        Behaviour::Garbage => Some((soon, b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec())),
        Behaviour::WrongTxid => {
            let (other, _) = stun::binding_request();
            Some((soon, stun::binding_success(other, peer)))
        }
        Behaviour::Error => Some((soon, stun::binding_error(txid))),
        Behaviour::AnswerNthDatagram(n) if nth == n => {
            Some((Duration::ZERO, stun::binding_success(txid, peer)))
        }
        Behaviour::AnswerNthDatagram(_) => None,
    }
}

impl Responders {
    pub async fn start(&mut self, spec: &NodeSpec, tls: &TestTls) -> Node {
        let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let xtls = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node = Node {
            udp: udp.local_addr().unwrap(),
            tcp: tcp.local_addr().unwrap(),
            xtls: xtls.local_addr().unwrap(),
            datagrams: Arc::new(AtomicU32::new(0)),
        };
        let behaviour = spec.behaviour;
        {
            let (delay, datagrams) = (spec.udp, node.datagrams.clone());
            self.tasks.spawn(async move {
                let mut buf = [0u8; 1500];
                let mut per_txid: std::collections::HashMap<_, u32> = Default::default();
                loop {
                    let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                        return;
                    };
                    datagrams.fetch_add(1, Ordering::SeqCst);
                    let (Some(delay), Ok(txid)) = (delay, stun::parse_binding_request(&buf[..n]))
                    else {
                        continue;
                    };
                    let nth = per_txid.entry(txid).or_insert(0);
                    *nth += 1;
                    if let Some((after, bytes)) = reply(behaviour, delay, txid, peer, *nth) {
                        let udp = udp.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(after).await;
                            let _ = udp.send_to(&bytes, peer).await;
                        });
                    }
                }
            });
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
        for (listener, delay, secure) in [(tcp, spec.tcp, false), (xtls, spec.xtls, true)] {
            let acceptor = acceptor.clone();
            self.tasks.spawn(async move {
                loop {
                    let Ok((stream, peer)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        if secure {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_framed(stream, peer, delay, behaviour).await;
                            }
                        } else {
                            serve_framed(stream, peer, delay, behaviour).await;
                        }
                    });
                }
            });
        }
        node
    }
}

async fn serve_framed<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    delay: Option<Duration>,
    behaviour: Behaviour,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1500];
    loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some((frame, used)) = stun::decode_frame(&buf) {
            let request = stun::parse_binding_request(frame);
            buf.drain(..used);
            let (Some(delay), Ok(txid)) = (delay, request) else {
                continue;
            };
            let behaviour = match behaviour {
                Behaviour::AnswerNthDatagram(_) => Behaviour::Answer,
                other => other,
            };
            if let Some((after, bytes)) = reply(behaviour, delay, txid, peer, 1) {
                tokio::time::sleep(after).await;
                if stream
                    .write_all(&stun::encode_frame(&bytes).unwrap())
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = stream.flush().await;
            }
        }
    }
}
