//! A TLS server no trust store of the tests holds: a CA generated at test time signs its
//! `localhost`/`127.0.0.1` certificate. It counts the handshakes clients begin and complete and
//! the bytes they send after one, and keeps the last handshake error (the alert a refusing
//! client sends, e.g. `UnknownCA`). Nothing is answered: a client that verifies never gets that far.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::TIMEOUT;

/// What the server saw so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSeen {
    /// TCP connections, each a handshake begun.
    pub attempts: usize,
    /// Handshakes that failed (the client refused the certificate, or hung up).
    pub refused: usize,
    /// Handshakes that completed (a client that trusted the certificate).
    pub completed: usize,
    /// Bytes received over completed handshakes (a request sent to an untrusted server).
    pub request_bytes: usize,
    /// The last failed handshake's error.
    pub last_error: Option<String>,
}

#[derive(Debug)]
pub struct UntrustedTlsServer {
    addr: SocketAddr,
    seen: watch::Receiver<TlsSeen>,
    task: JoinHandle<()>,
}

impl UntrustedTlsServer {
    pub async fn start() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "untrusted test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone(), ca.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = watch::channel(TlsSeen::default());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                tx.send_modify(|s| s.attempts += 1);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(mut stream) => {
                            tx.send_modify(|s| s.completed += 1);
                            let mut buf = [0u8; 4096];
                            while let Ok(Ok(n)) =
                                tokio::time::timeout(TIMEOUT, stream.read(&mut buf)).await
                            {
                                if n == 0 {
                                    break;
                                }
                                tx.send_modify(|s| s.request_bytes += n);
                            }
                        }
                        Err(e) => tx.send_modify(|s| {
                            s.refused += 1;
                            s.last_error = Some(e.to_string());
                        }),
                    }
                });
            }
        });
        Self { addr, seen, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://localhost:<port>` (the certificate's name, as a cloud URL would use).
    pub fn base_url(&self) -> String {
        format!("https://localhost:{}", self.port())
    }

    fn seen(&self) -> TlsSeen {
        self.seen.borrow().clone()
    }

    /// Waits (bounded) until `refused` handshakes failed (or one completed, which the caller's
    /// assertions then catch), and returns what the server saw.
    pub async fn wait_refusals(&self, refused: usize) -> TlsSeen {
        let mut seen = self.seen.clone();
        let wait = seen.wait_for(|s| s.refused >= refused || s.completed > 0);
        match tokio::time::timeout(TIMEOUT, wait).await {
            Ok(Ok(found)) => found.clone(),
            _ => panic!(
                "fewer than {refused} refused handshakes at the untrusted server: {:?}",
                self.seen()
            ),
        }
    }
}

impl Drop for UntrustedTlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
