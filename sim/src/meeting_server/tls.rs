//! The Meeting Server's own CA ("roomd-sim meeting server CA"), the `localhost` certificate it signs
//! for the listener, a client certificate for mutual TLS (seed 003's client certificate plus trust
//! bundle idea), and a client-certificate verifier that follows `require_client_cert` at run time.

use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName as TlsName, RootCertStore, ServerConfig};

use super::CMS_CA_COMMON_NAME;
use crate::tls::{common_name, generate_ca, provider, sign_server_certificate};

/// Subject common name of the client certificate the simulator writes.
pub(crate) const CLIENT_COMMON_NAME: &str = "roomd-sim meeting server client";

/// The generated CA, server and client material.
pub(crate) struct CmsTls {
    pub ca_pem: String,
    pub client_cert_pem: String,
    /// PKCS#8 PEM.
    pub client_key_pem: String,
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

impl std::fmt::Debug for CmsTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmsTls").finish_non_exhaustive()
    }
}

impl CmsTls {
    pub(crate) fn generate() -> anyhow::Result<Self> {
        let (ca_cert, ca_key) = generate_ca(CMS_CA_COMMON_NAME)?;
        let (server_cert, server_key) = sign_server_certificate(&ca_cert, &ca_key)?;

        let client_key = KeyPair::generate().context("generating the client key")?;
        let mut client_params = CertificateParams::new(Vec::<String>::new())?;
        client_params.distinguished_name = common_name(CLIENT_COMMON_NAME);
        client_params.is_ca = IsCa::NoCa;
        client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params
            .signed_by(&client_key, &ca_cert, &ca_key)
            .context("signing the client certificate")?;

        Ok(Self {
            ca_pem: ca_cert.pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            ca_der: ca_cert.der().clone(),
            server_chain: vec![server_cert.der().clone()],
            server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
        })
    }

    /// The listener's configuration: HTTP/1.1 only (the events socket is an HTTP/1.1 upgrade), no
    /// session resumption (so a run-time switch of `required` applies to the next connection), and
    /// a client certificate demanded exactly when `required()` says so.
    pub(crate) fn server_config(
        &self,
        required: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> anyhow::Result<Arc<ServerConfig>> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .context("trusting the meeting server CA for client certificates")?;
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .context("building the client certificate verifier")?;
        let verifier = Arc::new(Switchable { inner, required });
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                self.server_chain.clone(),
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )
            .context("installing the meeting server certificate")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }
}

/// Verifies client certificates against the Meeting Server CA; asks for (and demands) one only
/// while `required()` holds.
struct Switchable {
    inner: Arc<dyn ClientCertVerifier>,
    required: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl std::fmt::Debug for Switchable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switchable")
            .field("required", &(self.required)())
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for Switchable {
    fn offer_client_auth(&self) -> bool {
        (self.required)()
    }

    fn client_auth_mandatory(&self) -> bool {
        (self.required)()
    }

    fn root_hint_subjects(&self) -> &[TlsName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn material_and_switch() {
        let m = CmsTls::generate().expect("material");
        assert!(m.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(m.client_key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let flag = Arc::new(AtomicBool::new(false));
        let f = Arc::clone(&flag);
        let required: Arc<dyn Fn() -> bool + Send + Sync> =
            Arc::new(move || f.load(Ordering::SeqCst));
        let mut roots = RootCertStore::empty();
        roots.add(m.ca_der.clone()).expect("root");
        let verifier = Switchable {
            inner: WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .expect("verifier"),
            required: Arc::clone(&required),
        };
        assert!(!verifier.offer_client_auth() && !verifier.client_auth_mandatory());
        flag.store(true, Ordering::SeqCst);
        assert!(verifier.offer_client_auth() && verifier.client_auth_mandatory());
        let config = m.server_config(required).expect("config");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
