//! The trust store every TLS client uses: the platform roots (Mozilla's set, compiled in
//! through webpki-roots so an image without `ca-certificates` still works) plus extra CAs
//! from configuration (and, after activation, the service data's `trustList`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum TlsError {
    /// cannot read CA file {path}: {source}
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// CA file {origin} is not valid PEM: {reason}
    Pem { origin: String, reason: String },
    /// CA file {origin} holds no certificate
    Empty { origin: String },
    /// certificate {index} of {origin} cannot be used as a trust anchor: {reason}
    Anchor {
        origin: String,
        index: usize,
        reason: String,
    },
    /// TLS set-up failed: {0}
    Config(String),
}

#[derive(Debug, Clone)]
pub struct TrustStore {
    roots: RootCertStore,
    extra: usize,
}

impl Default for TrustStore {
    fn default() -> Self {
        Self::platform()
    }
}

impl TrustStore {
    /// Only the platform roots.
    pub fn platform() -> Self {
        Self {
            roots: RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            extra: 0,
        }
    }

    /// Platform roots plus every certificate in `files`.
    pub fn with_files(files: &[PathBuf]) -> Result<Self, TlsError> {
        let mut store = Self::platform();
        for path in files {
            store.add_file(path)?;
        }
        Ok(store)
    }

    pub fn add_file(&mut self, path: &Path) -> Result<usize, TlsError> {
        let pem = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.add_pem(&pem, &path.display().to_string())
    }

    /// Adds every certificate of a PEM bundle; returns how many.
    pub fn add_pem(&mut self, pem: &[u8], origin: &str) -> Result<usize, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Pem {
                origin: origin.to_string(),
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::Empty {
                origin: origin.to_string(),
            });
        }
        for (index, cert) in certs.iter().enumerate() {
            self.roots.add(cert.clone()).map_err(|e| TlsError::Anchor {
                origin: origin.to_string(),
                index,
                reason: e.to_string(),
            })?;
        }
        self.extra += certs.len();
        Ok(certs.len())
    }

    /// How many CAs were added beyond the platform roots.
    pub fn extra_count(&self) -> usize {
        self.extra
    }

    /// A verifying client configuration (TLS 1.2 and 1.3, ring provider).
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        Ok(config)
    }
}

impl TrustStore {
    /// A verifying client configuration that also presents `chain`/`key` (PEM files) when
    /// the server asks for a client certificate (mutual TLS).
    pub fn client_config_with_certificate(
        &self,
        chain: &Path,
        key: &Path,
    ) -> Result<rustls::ClientConfig, TlsError> {
        use rustls_pki_types::PrivateKeyDer;
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let origin = chain.display().to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(chain)?)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Pem {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::Empty { origin });
        }
        let key = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| TlsError::Pem {
            origin: key.display().to_string(),
            reason: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(certs, key)
            .map_err(|e| TlsError::Config(format!("client certificate: {e}")))
    }
}

/// A client configuration that does not verify the server's certificate chain. Only for
/// activation (wire profile §1.6): SRP authenticates both ends there, and a TLS-inspecting
/// proxy whose CA only arrives in the service data's `trustList` must not break it.
/// Handshake signatures are still checked, so the session keys are the server's.
pub fn unverified_client_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyCertificate(provider.clone()));
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_roots_are_present() {
        let store = TrustStore::platform();
        assert!(store.roots.len() > 50);
        assert_eq!(store.extra_count(), 0);
        store.client_config().unwrap();
    }

    #[test]
    fn garbage_and_empty_pem_are_named_errors() {
        let mut store = TrustStore::platform();
        let err = store
            .add_pem(b"no certificates here\n", "x.pem")
            .unwrap_err();
        assert_eq!(err.to_string(), "CA file x.pem holds no certificate");
        let err = store
            .add_pem(
                b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                "y.pem",
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("CA file y.pem is not valid PEM"),
            "{err}"
        );
    }

    #[test]
    fn missing_file_is_named() {
        let err = TrustStore::with_files(&["/nonexistent/ca.pem".into()]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read CA file /nonexistent/ca.pem")
        );
    }
}
