//! TLS material: a throw-away test CA generated at every start and a server certificate it signs.
//!
//! Clients trust only `ca.pem`; the sim never needs a certificate from outside. Keys live in memory only,
//! so a leaked `ca.pem` is worthless after the sim stops.

use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Subject common name of the generated CA.
pub const CA_COMMON_NAME: &str = "roomd-sim test CA";

/// Subject common name of the second CA, standing for a TLS-inspecting proxy's CA: it signs the
/// certificate of the proxy and alt listeners and reaches the device only in the `trustList`.
pub const PROXY_CA_COMMON_NAME: &str = "roomd-sim proxy CA";

/// Names the server certificate is valid for: every way a loopback client may address the sim.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The generated CA (PEM) and a ready server configuration using the certificate it signed.
#[derive(Debug)]
pub(crate) struct TlsMaterial {
    pub ca_pem: String,
    pub server_config: Arc<ServerConfig>,
}

/// The one crypto provider of the simulator: ring (aws-lc-rs is deliberately not linked).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The main listener's CA and certificate.
pub(crate) fn generate() -> anyhow::Result<TlsMaterial> {
    generate_with_ca(CA_COMMON_NAME)
}

/// A fresh CA named `ca_name` and a `localhost` server certificate it signs.
pub(crate) fn generate_with_ca(ca_name: &str) -> anyhow::Result<TlsMaterial> {
    let (ca_cert, ca_key) = generate_ca(ca_name)?;
    let (server_cert, server_key) = sign_server_certificate(&ca_cert, &ca_key)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![server_cert.der().clone()];
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("installing the server certificate")?;
    // h2 first: clients that offer it get it; WebSocket clients offer nothing and get HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    Ok(TlsMaterial {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(config),
    })
}

/// A self-signed CA named `ca_name`: its certificate and key (the key never leaves memory).
pub(crate) fn generate_ca(ca_name: &str) -> anyhow::Result<(Certificate, KeyPair)> {
    let ca_key = KeyPair::generate().with_context(|| format!("generating the {ca_name} key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = common_name(ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .with_context(|| format!("self-signing the {ca_name}"))?;
    Ok((ca_cert, ca_key))
}

/// A `localhost` server certificate (every name in [`SERVER_NAMES`]) signed by the CA.
pub(crate) fn sign_server_certificate(
    ca_cert: &Certificate,
    ca_key: &KeyPair,
) -> anyhow::Result<(Certificate, KeyPair)> {
    let server_key = KeyPair::generate().context("generating the server key")?;
    // rcgen turns names that parse as IP addresses into iPAddress SANs, the rest into dNSName SANs.
    let mut server_params = CertificateParams::new(
        SERVER_NAMES
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
    )
    .context("server certificate names")?;
    server_params.distinguished_name = common_name("localhost");
    server_params.is_ca = IsCa::NoCa;
    server_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params
        .signed_by(&server_key, ca_cert, ca_key)
        .context("signing the server certificate")?;
    Ok((server_cert, server_key))
}

pub(crate) fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_ca_pem_and_alpn() {
        let m = generate().expect("tls material");
        assert!(m.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            m.server_config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let proxy = generate_with_ca(PROXY_CA_COMMON_NAME).expect("proxy material");
        assert_ne!(proxy.ca_pem, m.ca_pem);
    }
}
