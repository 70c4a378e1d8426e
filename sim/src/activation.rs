//! Activation (wire profile §1 steps 2–5): SRP-6a over `/activation/idb/token/v1/actions/srp/*`.
//!
//! Per device of the scenario the service keeps the salt and verifier (never the password after
//! loading). `init` answers B and the salt; `invoke` checks `oauthDataHMAC` under the session's MAC key
//! before decrypting anything, then answers the sealed service data (URLs, proxy CA, tokens).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use num_bigint::BigUint;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::clock::now_ms;
use crate::scenario::{Device, DeviceFault, Scenario};
use crate::srp::{self, Group};
use crate::state::{AppState, SimState, lock};

/// Failed `invoke`s after which an activation id is locked.
pub const MAX_FAILURES: u32 = 5;

/// How long a handshake from `init` stays usable.
const HANDSHAKE_TTL: Duration = Duration::from_secs(300);

/// Path of the `invoke` step, appended to the listener's base URL in `init`'s answer.
const INVOKE_PATH: &str = "/activation/idb/token/v1/actions/srp/invoke";
const REGISTER_PATH: &str = "/activation/idb/token/v1/actions/srp/register";

/// One activation attempt as the simulator judged it (`GET /admin/activations`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationRecord {
    pub activation_id: String,
    /// `ok`, `hmac-failed`, `locked`, `expired`, `unknown`, `used`, or `mitm` (a `fault = "mitm"`
    /// device answered by the fake man in the middle).
    pub outcome: String,
    /// The decrypted device info of a successful invoke.
    pub device_info: Option<Value>,
    pub at_ms: u64,
}

#[derive(Debug)]
struct Code {
    /// The full 16 digits, to notice a changed code on scenario reload.
    code: String,
    salt: Vec<u8>,
    verifier: BigUint,
    used: bool,
    failures: u32,
    locked: bool,
}

#[derive(Debug)]
struct Handshake {
    activation_id: String,
    b: BigUint,
    b_pub: BigUint,
    /// The verifier B was made with: the real one, or the man in the middle's fake.
    verifier: BigUint,
    mitm: bool,
    created: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    codes: HashMap<String, Code>,
    /// By the minimal big-endian bytes of B.
    handshakes: HashMap<Vec<u8>, Handshake>,
    log: Vec<ActivationRecord>,
}

/// SRP state of every activation code.
#[derive(Debug)]
pub(crate) struct Activation {
    group: Group,
    inner: Mutex<Inner>,
}

fn make_code(group: &Group, code: &str) -> Option<Code> {
    let (id, password) = srp::split_code(code)?;
    let salt = srp::random_bytes(16);
    let x = srp::private_key::<Sha256>(&salt, id.as_bytes(), password.as_bytes());
    Some(Code {
        code: code.to_owned(),
        verifier: srp::verifier(group, &x),
        salt,
        used: false,
        failures: 0,
        locked: false,
    })
}

impl Activation {
    pub(crate) fn new(scenario: &Scenario) -> Self {
        let a = Self {
            group: Group::rfc5054_3072(),
            inner: Mutex::new(Inner::default()),
        };
        a.sync(scenario);
        a
    }

    /// Follows the scenario's devices: new codes get a fresh salt and verifier, unchanged ones keep
    /// their state (used, failures), removed ones are forgotten.
    pub(crate) fn sync(&self, scenario: &Scenario) {
        // Every scenario the simulator adopts passes here (start and replacements).
        crate::test_run::record_scenario(scenario);
        let mut fresh = Vec::new();
        {
            let inner = lock(&self.inner);
            for d in &scenario.devices {
                let id = d.activation_id();
                if inner
                    .codes
                    .get(id)
                    .is_none_or(|c| c.code != d.activation_code)
                {
                    fresh.push(d.activation_code.clone());
                }
            }
        }
        // The modular exponentiations happen outside the lock.
        let made: Vec<(String, Code)> = fresh
            .iter()
            .filter_map(|code| make_code(&self.group, code).map(|c| (code[..8].to_owned(), c)))
            .collect();
        let mut inner = lock(&self.inner);
        for (id, code) in made {
            inner.codes.insert(id, code);
        }
        let keep: Vec<&str> = scenario.devices.iter().map(Device::activation_id).collect();
        inner.codes.retain(|id, _| keep.contains(&id.as_str()));
        let Inner {
            codes, handshakes, ..
        } = &mut *inner;
        handshakes.retain(|_, h| codes.contains_key(&h.activation_id));
    }

    fn record(inner: &mut Inner, id: &str, outcome: &str, device_info: Option<Value>) {
        tracing::info!(activation_id = id, outcome, "activation");
        inner.log.push(ActivationRecord {
            activation_id: id.to_owned(),
            outcome: outcome.to_owned(),
            device_info,
            at_ms: now_ms(),
        });
    }

    pub(crate) fn records(&self) -> Vec<ActivationRecord> {
        lock(&self.inner).log.clone()
    }

    /// Clears used, locked and failures; false for an unknown id.
    pub(crate) fn reset(&self, activation_id: &str) -> bool {
        let mut inner = lock(&self.inner);
        let Some(code) = inner.codes.get_mut(activation_id) else {
            return false;
        };
        code.used = false;
        code.locked = false;
        code.failures = 0;
        inner
            .handshakes
            .retain(|_, h| h.activation_id != activation_id);
        tracing::info!(activation_id, "activation code reset");
        true
    }

    /// The state check shared by init and invoke; `Err` is the status and message to answer
    /// (already recorded).
    fn check_usable(
        inner: &mut Inner,
        id: &str,
        device: Option<&Device>,
    ) -> Result<(), (StatusCode, &'static str)> {
        let (Some(code), Some(device)) = (inner.codes.get(id), device) else {
            Self::record(inner, id, "unknown", None);
            return Err((StatusCode::NOT_FOUND, "unknown activation code"));
        };
        let (locked, used) = (code.locked, code.used);
        let refusal = if locked {
            Some(("locked", StatusCode::LOCKED, "activation code locked"))
        } else if device.expired {
            Some(("expired", StatusCode::GONE, "activation code expired"))
        } else if used {
            Some(("used", StatusCode::GONE, "activation code already used"))
        } else {
            None
        };
        match refusal {
            Some((outcome, status, msg)) => {
                Self::record(inner, id, outcome, None);
                Err((status, msg))
            }
            None => Ok(()),
        }
    }
}

fn message(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "message": msg }))).into_response()
}

fn bad_request(msg: &str) -> Response {
    message(StatusCode::BAD_REQUEST, msg)
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/idb/token/v1/actions/srp/init", post(init))
        .route("/idb/token/v1/actions/srp/invoke", post(invoke))
        .route("/idb/token/v1/actions/srp/register", post(register))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitRequest {
    activation_id: String,
}

fn device_for(sim: &SimState, id: &str) -> Option<Device> {
    sim.with_scenario(|s| s.devices.iter().find(|d| d.activation_id() == id).cloned())
}

async fn init(State(app): State<AppState>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<InitRequest>(&body) else {
        return bad_request("body must be {\"activationId\":\"<8 digits>\"}");
    };
    let id = req.activation_id;
    let sim = &app.sim;
    let act = &sim.activation;
    let device = device_for(sim, &id);
    let (salt, real_verifier) = {
        let mut inner = lock(&act.inner);
        if let Err((status, msg)) = Activation::check_usable(&mut inner, &id, device.as_ref()) {
            return message(status, msg);
        }
        let code = &inner.codes[&id];
        (code.salt.clone(), code.verifier.clone())
    };
    let mitm = device.is_some_and(|d| d.fault == DeviceFault::Mitm);
    let group = &act.group;
    let verifier = if mitm {
        // A man in the middle does not know the verifier; it makes one up.
        srp::verifier(group, &srp::random_secret(32))
    } else {
        real_verifier
    };
    let b = srp::random_secret(32);
    let b_pub = srp::server_public::<Sha256>(group, &verifier, &b);
    let b_b64 = srp::encode_int(&b_pub);
    {
        let mut inner = lock(&act.inner);
        let now = Instant::now();
        inner
            .handshakes
            .retain(|_, h| h.activation_id != id && now.duration_since(h.created) < HANDSHAKE_TTL);
        inner.handshakes.insert(
            b_pub.to_bytes_be(),
            Handshake {
                activation_id: id.clone(),
                b,
                b_pub,
                verifier,
                mitm,
                created: now,
            },
        );
    }
    tracing::info!(activation_id = %id, mitm, "srp init");
    Json(json!({
        "srpB": b_b64,
        "srpS": srp::b64(&salt),
        "srpGroup": "3072",
        "version": "v1.0",
        "url": format!("{}{INVOKE_PATH}", app.listener.base_url),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvokeRequest {
    srp_a: String,
    srp_b: String,
    oauth_data: String,
    #[serde(rename = "oauthDataHMAC")]
    oauth_data_hmac: String,
}

async fn invoke(State(app): State<AppState>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<InvokeRequest>(&body) else {
        return bad_request("body must be {\"srpA\",\"srpB\",\"oauthData\",\"oauthDataHMAC\"}");
    };
    let sim = &app.sim;
    let act = &sim.activation;
    let group = &act.group;
    let Some(b_pub) = srp::decode_int(&req.srp_b) else {
        return bad_request("unknown handshake");
    };
    // Single use: a failed attempt needs a new init.
    let handshake = {
        let mut inner = lock(&act.inner);
        match inner.handshakes.remove(&b_pub.to_bytes_be()) {
            Some(h) if h.created.elapsed() < HANDSHAKE_TTL => h,
            _ => return bad_request("unknown handshake"),
        }
    };
    let id = handshake.activation_id.clone();
    let device = device_for(sim, &id);
    {
        let mut inner = lock(&act.inner);
        if let Err((status, msg)) = Activation::check_usable(&mut inner, &id, device.as_ref()) {
            return message(status, msg);
        }
    }
    let Some(device) = device else {
        return message(StatusCode::NOT_FOUND, "unknown activation code");
    };

    let a_pub = srp::decode_int(&req.srp_a).filter(|a| !srp::is_degenerate(group, a));
    let keys = a_pub.map(|a_pub| {
        let u = srp::scrambler::<Sha256>(group, &a_pub, &handshake.b_pub);
        let s = srp::server_secret(group, &a_pub, &handshake.verifier, &u, &handshake.b);
        srp::keys_from_secret(&s)
    });

    if handshake.mitm {
        // The fake cannot check or read oauthData; it answers with keys only it has.
        let keys = keys.unwrap_or_else(|| srp::SessionKeys::derive(&srp::random_bytes(32)));
        let life = sim.with_scenario(|s| s.tokens.clone());
        let fake_tokens = crate::tokens::Issued {
            access_token: crate::tokens::new_token(),
            expires_in: life.access_lifetime_secs,
            refresh_token: crate::tokens::new_token(),
            refresh_token_expires_in: life.refresh_lifetime_secs,
        };
        let data = service_data(sim, &device, &fake_tokens);
        let env = keys.seal(data.to_string().as_bytes());
        Activation::record(&mut lock(&act.inner), &id, "mitm", None);
        return sealed_answer(&app, env);
    }

    let verified = keys
        .as_ref()
        .is_some_and(|k| k.verify(&req.oauth_data, &req.oauth_data_hmac));
    let Some(keys) = keys.filter(|_| verified) else {
        let mut inner = lock(&act.inner);
        if let Some(code) = inner.codes.get_mut(&id) {
            code.failures += 1;
            if code.failures >= MAX_FAILURES {
                code.locked = true;
                tracing::warn!(activation_id = %id, "activation code locked after {MAX_FAILURES} failures");
            }
        }
        Activation::record(&mut inner, &id, "hmac-failed", None);
        return message(StatusCode::UNAUTHORIZED, "srp verification failed");
    };
    let Ok(plain) = keys.decrypt(&req.oauth_data) else {
        return bad_request("oauthData does not decrypt");
    };
    let Ok(device_info) = serde_json::from_slice::<Value>(&plain) else {
        return bad_request("oauthData is not JSON");
    };
    if !device_info.is_object() {
        return bad_request("oauthData must be a JSON object");
    }

    {
        let mut inner = lock(&act.inner);
        if let Some(code) = inner.codes.get_mut(&id) {
            code.used = true;
        }
        Activation::record(&mut inner, &id, "ok", Some(device_info));
    }
    let life = sim.with_scenario(|s| s.tokens.clone());
    let issued = sim.tokens.issue(device.org_id(), &life);
    let data = service_data(sim, &device, &issued);
    let mut env = keys.seal(data.to_string().as_bytes());
    if device.fault == DeviceFault::TamperHmac {
        env.hmac = flip_bit(&env.hmac);
    }
    sealed_answer(&app, env)
}

/// The service data plaintext (wire profile §1 step 5).
fn service_data(sim: &SimState, device: &Device, tokens: &crate::tokens::Issued) -> Value {
    let svc = &sim.endpoints.service_base;
    let mut data = json!({
        "deviceIdentifier": uuid::Uuid::new_v4().to_string(),
        "orgId": device.org_id(),
        "serviceUrls": {
            "u2c": format!("{svc}/u2c"),
            "wdm": format!("{svc}/wdm/api/v1"),
            "calendar": format!("{svc}/calendar/api/v1"),
            "calliope": format!("{svc}/calliope"),
            "locus": format!("{svc}/locus/api/v1"),
            "kms": format!("{svc}/kms"),
            "identity": format!("{svc}/identity"),
        },
        "tokens": tokens.to_json(),
    });
    if device.trust_list {
        data["trustList"] = json!([sim.endpoints.proxy_ca_pem]);
    }
    data
}

fn sealed_answer(app: &AppState, env: srp::Envelope) -> Response {
    Json(json!({
        "serviceData": env.data,
        "serviceDataHMAC": env.hmac,
        "url": format!("{}{REGISTER_PATH}", app.listener.base_url),
    }))
    .into_response()
}

/// The same base64 HMAC with its lowest bit flipped.
fn flip_bit(hmac_b64: &str) -> String {
    let mut raw = srp::unb64(hmac_b64).unwrap_or_default();
    if let Some(first) = raw.first_mut() {
        *first ^= 1;
    }
    srp::b64(&raw)
}

async fn register() -> StatusCode {
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(codes: &[&str]) -> Scenario {
        Scenario {
            devices: codes.iter().map(|c| Device::new(*c)).collect(),
            ..Scenario::default()
        }
    }

    #[test]
    fn verifier_matches_password_and_sync_keeps_state() {
        let act = Activation::new(&scenario(&["4353450012345678"]));
        let (salt, v) = {
            let inner = lock(&act.inner);
            let c = &inner.codes["43534500"];
            (c.salt.clone(), c.verifier.clone())
        };
        assert_eq!(salt.len(), 16);
        let x = srp::private_key::<Sha256>(&salt, b"43534500", b"12345678");
        assert_eq!(srp::verifier(&act.group, &x), v);

        lock(&act.inner)
            .codes
            .get_mut("43534500")
            .expect("code")
            .used = true;
        act.sync(&scenario(&["4353450012345678", "1111111122222222"]));
        assert!(
            lock(&act.inner).codes["43534500"].used,
            "unchanged code keeps its state"
        );
        act.sync(&scenario(&["4353450099999999"]));
        let inner = lock(&act.inner);
        assert!(!inner.codes["43534500"].used, "a changed code starts fresh");
        assert!(!inner.codes.contains_key("11111111"));
    }

    #[test]
    fn reset_clears_state() {
        let act = Activation::new(&scenario(&["4353450012345678"]));
        {
            let mut inner = lock(&act.inner);
            let c = inner.codes.get_mut("43534500").expect("code");
            c.used = true;
            c.locked = true;
            c.failures = 5;
        }
        assert!(act.reset("43534500"));
        assert!(!act.reset("00000000"));
        let inner = lock(&act.inner);
        let c = &inner.codes["43534500"];
        assert!(!c.used && !c.locked && c.failures == 0);
    }

    #[test]
    fn flip_bit_changes_one_bit() {
        let h = srp::b64(&[0u8; 32]);
        let f = flip_bit(&h);
        let raw = srp::unb64(&f).expect("b64");
        assert_eq!(raw[0], 1);
        assert!(raw[1..].iter().all(|b| *b == 0));
    }
}
