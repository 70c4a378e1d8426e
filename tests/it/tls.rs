//! TLS to the simulator: verified against the trust store, and a clear error when the
//! server's certificate does not chain to a trusted CA.

use crate::support;

use std::time::Duration;

use roomd::cloud::gds::GdsClient;
use roomd::net::http::{HttpClient, HttpError};
use roomd::net::tls::TrustStore;
use support::*;

#[tokio::test]
async fn trusting_the_sim_ca_verifies_and_reads_health() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let trust = TrustStore::with_files(&[sim.ca_path().to_path_buf()]).unwrap();
    let client = GdsClient::new(
        HttpClient::new(&trust, Duration::from_secs(10)).unwrap(),
        &sim.gds_url(),
    );
    let report = client.health().await.unwrap();
    assert!(report.document.is_online());
    assert_eq!(report.document.service_name.as_deref(), Some("GDS"));
    sim.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_certificate_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    // Platform roots only: the sim's test CA is not among them.
    let client = GdsClient::new(
        HttpClient::new(&TrustStore::platform(), Duration::from_secs(10)).unwrap(),
        &sim.gds_url(),
    );
    let err = client.health().await.unwrap_err();
    assert!(
        matches!(err, HttpError::UntrustedCertificate { .. }),
        "wrong error kind: {err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "TLS certificate of {}/health is not trusted",
            sim.gds_url()
        )),
        "{message}"
    );
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(
        message.ends_with("is its CA in the trust store?"),
        "{message}"
    );
    assert!(sim.received().is_empty(), "no request got through");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_body_that_is_not_health_json_is_a_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    sim.arm_fault(roomd_sim::Fault {
        path: "/gds/health".into(),
        method: None,
        status: 200,
        count: 1,
        retry_after: None,
        body: Some(serde_json::json!({"hello": "world"})),
    })
    .unwrap();
    let trust = TrustStore::with_files(&[sim.ca_path().to_path_buf()]).unwrap();
    let client = GdsClient::new(
        HttpClient::new(&trust, Duration::from_secs(10)).unwrap(),
        &sim.gds_url(),
    );
    let err = client.health().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}/health sent a body that is not valid GDS health JSON: GDS health document has no `serviceState`",
            sim.gds_url()
        )
    );
    sim.shutdown().await;
}
