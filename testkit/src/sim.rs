//! The simulator as its own tests drive it: started in a temporary directory, TLS clients that
//! trust one of its CAs, an honest SRP activation client and a WDM registration. Nothing here
//! knows roomd's types: these are the wire profile's messages, written out.

use std::time::Duration;

use roomd_sim::srp::{self, Envelope, Group};
use roomd_sim::{Scenario, SimHandle, SimOptions};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::{Value, json};
use sha2::Sha256;
use tempfile::TempDir;

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Starts the simulator with `scenario` on port 0, its state in a fresh temporary directory
/// (removed when the returned directory is dropped).
pub async fn start_in_tempdir(scenario: Scenario) -> Result<(SimHandle, TempDir)> {
    let dir = tempfile::tempdir()?;
    let mut opts = SimOptions::new(dir.path().join("state"));
    opts.scenario = scenario;
    let sim = roomd_sim::start(opts).await?;
    Ok((sim, dir))
}

/// `method path` on the simulator's admin API through `client` (the admin API takes either
/// CA's client), with an optional JSON body: the status and the JSON answer (`Null` when the
/// body is empty or not JSON).
pub async fn admin(
    client: &reqwest::Client,
    sim: &SimHandle,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let mut req = client.request(method, format!("{}{path}", sim.admin_url()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// A simulator in a temporary directory ([`start_in_tempdir`]) and a client for each of its
/// two CAs, every request bounded by the timeout given to [`SimFixture::start`].
#[derive(Debug)]
pub struct SimFixture {
    pub sim: SimHandle,
    /// Trusts `ca.pem` only: the main listener (GDS, activation) and the cleartext admin API.
    pub main: reqwest::Client,
    /// Trusts `proxy-ca.pem` only: the proxy and alt listeners (the services) and the admin API.
    pub http: reqwest::Client,
    pub dir: TempDir,
}

/// A device activated with an honest SRP client and registered with WDM.
#[derive(Debug)]
pub struct Registered {
    /// The access token of the activation.
    pub token: String,
    /// WDM's answer to the registration.
    pub wdm: Value,
    /// The WDM device URL (`device.url` of every Locus request).
    pub device_url: String,
    /// The device id, the last segment of the URL: the mercury registration.
    pub device: String,
}

impl SimFixture {
    pub async fn start(scenario: Scenario, timeout: Duration) -> Result<Self> {
        let (sim, dir) = start_in_tempdir(scenario).await?;
        let main = client_trusting(sim.ca_pem(), timeout)?;
        let http = client_trusting(sim.proxy_ca_pem(), timeout)?;
        Ok(Self {
            sim,
            main,
            http,
            dir,
        })
    }

    /// Activates `code` (one of the scenario's devices); returns the access token.
    pub async fn activate(&self, code: &str) -> Result<String> {
        activate(&self.sim, &self.main, code).await
    }

    /// Activates `code` and registers the device with WDM.
    pub async fn register(&self, code: &str) -> Result<Registered> {
        let token = self.activate(code).await?;
        let wdm = register_device(&self.sim, &self.http, &token).await?;
        let device_url = wdm["url"].as_str().ok_or("no url")?.to_owned();
        let device = device_url.rsplit('/').next().ok_or("no id")?.to_owned();
        Ok(Registered {
            token,
            wdm,
            device_url,
            device,
        })
    }
}

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
