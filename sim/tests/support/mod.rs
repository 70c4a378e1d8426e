//! Helpers shared by the simulator's integration tests: TLS clients that trust one of the
//! simulator's CAs, an honest SRP activation client and a WDM registration.

#![allow(dead_code)]

use std::time::Duration;

use roomd_sim::SimHandle;
use roomd_sim::srp::{self, Envelope, Group};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::{Value, json};
use sha2::Sha256;

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A rustls client configuration whose only roots are the certificates in `ca_pem`.
pub fn tls_config(ca_pem: &str) -> Result<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    Ok(
        ClientConfig::builder_with_provider(roomd_sim::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// An HTTP client trusting `ca_pem` only (it also reaches the cleartext admin API).
pub fn client_trusting(ca_pem: &str, timeout: Duration) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(ca_pem)?)
        .timeout(timeout)
        .build()?)
}

/// SRP init + invoke as an honest client; returns the access token from the service data.
pub async fn activate(sim: &SimHandle, main: &reqwest::Client, code: &str) -> Result<String> {
    activate_recording(sim, main, code, &mut Vec::new()).await
}

/// As [`activate`], also recording each answer's body (init, invoke, the decrypted service
/// data) as (file name, bytes), for fuzz seeds.
pub async fn activate_recording(
    sim: &SimHandle,
    main: &reqwest::Client,
    code: &str,
    bodies: &mut Vec<(String, Vec<u8>)>,
) -> Result<String> {
    let (id, password) = code.split_at(8);
    let base = sim.activation_url();
    let init = main
        .post(format!("{base}/idb/token/v1/actions/srp/init"))
        .json(&json!({ "activationId": id }))
        .send()
        .await?
        .bytes()
        .await?;
    bodies.push(("srp-init.json".into(), init.to_vec()));
    let init: Value = serde_json::from_slice(&init)?;
    let salt = srp::unb64(init["srpS"].as_str().ok_or("srpS")?).ok_or("srpS b64")?;
    let b_b64 = init["srpB"].as_str().ok_or("srpB")?.to_owned();
    let b_pub = srp::decode_int(&b_b64).ok_or("srpB b64")?;
    let group = Group::rfc5054_3072();
    let x = srp::private_key::<Sha256>(&salt, id.as_bytes(), password.as_bytes());
    let a = srp::random_secret(32);
    let a_pub = srp::client_public(&group, &a);
    let u = srp::scrambler::<Sha256>(&group, &a_pub, &b_pub);
    let keys = srp::keys_from_secret(&srp::client_secret::<Sha256>(&group, &b_pub, &x, &a, &u));
    let info = json!({"deviceIdentifier": "00000000-abcd-0000-abcd-000000000000",
        "systemName": "s53300", "systemVersion": "roomd 0.1.0", "model": "m", "serial": "s"});
    let env = keys.seal(info.to_string().as_bytes());
    let url = init["url"].as_str().ok_or("url")?.to_owned();
    let body = main
        .post(url)
        .json(&json!({"srpA": srp::b64(&group.pad(&a_pub)), "srpB": b_b64,
            "oauthData": env.data, "oauthDataHMAC": env.hmac}))
        .send()
        .await?
        .bytes()
        .await?;
    bodies.push(("srp-invoke.json".into(), body.to_vec()));
    let body: Value = serde_json::from_slice(&body)?;
    let plain = keys.open(&Envelope {
        data: body["serviceData"]
            .as_str()
            .ok_or("serviceData")?
            .to_owned(),
        hmac: body["serviceDataHMAC"].as_str().ok_or("hmac")?.to_owned(),
    })?;
    bodies.push(("service-data.json".into(), plain.clone()));
    let data: Value = serde_json::from_slice(&plain)?;
    Ok(data["tokens"]["access_token"]
        .as_str()
        .ok_or("no access token")?
        .to_owned())
}

/// Registers a device with WDM (seed 000's body) using `token`; returns WDM's answer.
pub async fn register_device(
    sim: &SimHandle,
    http: &reqwest::Client,
    token: &str,
) -> Result<Value> {
    let resp = http
        .post(format!("{}/wdm/api/v1/devices", sim.service_base_url()))
        .bearer_auth(token)
        .json(&json!({
            "deviceIdentifier": "00000000-abcd-0000-abcd-000000000000",
            "systemName": "s53300",
            "systemVersion": "roomd 0.1.0",
            "deviceType": "TP_ENDPOINT",
            "model": "roomd reference device",
            "name": "Simulated Room",
            "localizedModel": "roomd reference device",
            "capabilities": {"groupCallSupported": true},
            "isDeviceManaged": true,
        }))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    Ok(resp.json().await?)
}
