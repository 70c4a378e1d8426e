//! End-to-end tests of activation, identity, bearer auth, U2C, WDM and the proxy/alt listeners, over
//! real TLS, with a small SRP client of our own built on `roomd_sim::srp`.

use roomd_testkit::sim as support;

use std::time::Duration;

use num_bigint::BigUint;
use roomd_sim::srp::{self, Envelope, Group, SessionKeys};
use roomd_sim::{Device, DeviceFault, Fault, Scenario, SimHandle, SimInfo};
use serde_json::{Value, json};
use sha2::Sha256;
use support::{Result, SimFixture, tls_config};

const WAIT: Duration = Duration::from_secs(20);
const CODE: &str = "4353450012345678";
const ID: &str = "43534500";
const INIT: &str = "/activation/idb/token/v1/actions/srp/init";
const INVOKE: &str = "/activation/idb/token/v1/actions/srp/invoke";

struct Fixture {
    sim: SimHandle,
    /// Trusts `ca.pem` only: the main listener and the admin API.
    main: reqwest::Client,
    /// Trusts `proxy-ca.pem` only: the proxy and alt listeners.
    proxy: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn scenario_with(devices: Vec<Device>) -> Scenario {
    Scenario {
        devices,
        ..Scenario::default()
    }
}

async fn fixture_with(scenario: Scenario) -> Result<Fixture> {
    let SimFixture {
        sim,
        main,
        http: proxy,
        dir,
    } = SimFixture::start(scenario, WAIT).await?;
    Ok(Fixture {
        sim,
        main,
        proxy,
        _dir: dir,
    })
}

async fn fixture() -> Result<Fixture> {
    fixture_with(scenario_with(vec![Device::new(CODE)])).await
}

/// Status and JSON body (Null when the body is empty or not JSON).
async fn read(resp: reqwest::Response) -> Result<(u16, Value)> {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

impl Fixture {
    async fn post_main(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        read(
            self.main
                .post(format!("{}{path}", self.sim.base_url()))
                .json(body)
                .send()
                .await?,
        )
        .await
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        support::admin(&self.main, &self.sim, method, path, body).await
    }

    async fn refresh(&self, refresh_token: &str) -> Result<(u16, Value)> {
        read(
            self.proxy
                .post(format!(
                    "{}/identity/access_token",
                    self.sim.service_base_url()
                ))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "grant_type=refresh_token&refresh_token={refresh_token}"
                ))
                .send()
                .await?,
        )
        .await
    }

    async fn catalog(&self, base: &str, token: Option<&str>) -> Result<reqwest::Response> {
        let mut req = self.proxy.get(format!("{base}/u2c/catalog?format=hostmap"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Ok(req.send().await?)
    }
}

/// How the test client plays its part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Play {
    Honest,
    WrongPassword,
}

/// The outcome of init + invoke as an honest client sees it.
struct Exchange {
    status: u16,
    body: Value,
    keys: SessionKeys,
}

fn device_info() -> Value {
    json!({
        "deviceIdentifier": "00000000-abcd-0000-abcd-000000000000",
        "systemName": "s53300",
        "systemVersion": "roomd 0.1.0",
        "model": "roomd reference device",
        "serial": "FOC00000001",
    })
}

/// Runs init and invoke against the main listener with our own SRP client.
async fn activate(f: &Fixture, code: &str, play: Play) -> Result<Exchange> {
    let (id, password) = code.split_at(8);
    let (status, init) = f.post_main(INIT, &json!({ "activationId": id })).await?;
    assert_eq!(status, 200, "init: {init}");
    assert_eq!(init["srpGroup"], "3072");
    assert_eq!(init["version"], "v1.0");
    let url = init["url"].as_str().ok_or("no url")?.to_owned();
    assert_eq!(url, format!("{}{INVOKE}", f.sim.base_url()));
    let salt = srp::unb64(init["srpS"].as_str().ok_or("no srpS")?).ok_or("srpS b64")?;
    let b_b64 = init["srpB"].as_str().ok_or("no srpB")?.to_owned();
    let b_pub = srp::decode_int(&b_b64).ok_or("srpB b64")?;
    assert_eq!(srp::encode_int(&b_pub), b_b64, "B is sent minimal");

    let group = Group::rfc5054_3072();
    assert!(!srp::is_degenerate(&group, &b_pub));
    let password = match play {
        Play::Honest => password.to_owned(),
        Play::WrongPassword => "00000000".to_owned(),
    };
    let x = srp::private_key::<Sha256>(&salt, id.as_bytes(), password.as_bytes());
    let a = srp::random_secret(32);
    let a_pub = srp::client_public(&group, &a);
    let u = srp::scrambler::<Sha256>(&group, &a_pub, &b_pub);
    let s = srp::client_secret::<Sha256>(&group, &b_pub, &x, &a, &u);
    let keys = srp::keys_from_secret(&s);
    let env = keys.seal(device_info().to_string().as_bytes());
    let resp = f
        .main
        .post(url)
        .json(&json!({
            // Padded to 384 bytes: the server accepts padded or minimal.
            "srpA": srp::b64(&group.pad(&a_pub)),
            "srpB": b_b64,
            "oauthData": env.data,
            "oauthDataHMAC": env.hmac,
        }))
        .send()
        .await?;
    let (status, body) = read(resp).await?;
    Ok(Exchange { status, body, keys })
}

fn envelope(body: &Value) -> Result<Envelope> {
    Ok(Envelope {
        data: body["serviceData"]
            .as_str()
            .ok_or("no serviceData")?
            .to_owned(),
        hmac: body["serviceDataHMAC"]
            .as_str()
            .ok_or("no serviceDataHMAC")?
            .to_owned(),
    })
}

/// Activates honestly and returns the decrypted service data.
async fn service_data(f: &Fixture, code: &str) -> Result<Value> {
    let ex = activate(f, code, Play::Honest).await?;
    assert_eq!(ex.status, 200, "{}", ex.body);
    let plain = ex.keys.open(&envelope(&ex.body)?)?;
    Ok(serde_json::from_slice(&plain)?)
}

async fn access_token(f: &Fixture) -> Result<(String, String)> {
    let data = service_data(f, CODE).await?;
    Ok((
        data["tokens"]["access_token"]
            .as_str()
            .ok_or("no access token")?
            .to_owned(),
        data["tokens"]["refresh_token"]
            .as_str()
            .ok_or("no refresh token")?
            .to_owned(),
    ))
}

fn hex(s: &str) -> BigUint {
    let digits: String = s.split_whitespace().collect();
    BigUint::parse_bytes(digits.as_bytes(), 16).unwrap_or_default()
}

#[test]
fn srp_math_matches_rfc5054_appendix_b() {
    use sha1::Sha1;
    let group = Group::rfc5054_1024();
    let salt = hex("BEB25379 D1A8581E B5A72767 3A2441EE").to_bytes_be();
    let k = srp::multiplier::<Sha1>(&group);
    assert_eq!(k, hex("7556AA04 5AEF2CDD 07ABAF0F 665C3E81 8913186F"));
    let x = srp::private_key::<Sha1>(&salt, b"alice", b"password123");
    assert_eq!(x, hex("94B7555A ABE9127C C58CCF49 93DB6CF8 4D16C124"));
    let v = srp::verifier(&group, &x);
    assert_eq!(
        v,
        hex(
            "7E273DE8 696FFC4F 4E337D05 B4B375BE B0DDE156 9E8FA00A 9886D812
             9BADA1F1 822223CA 1A605B53 0E379BA4 729FDC59 F105B478 7E5186F5
             C671085A 1447B52A 48CF1970 B4FB6F84 00BBF4CE BFBB1681 52E08AB5
             EA53D15C 1AFF87B2 B9DA6E04 E058AD51 CC72BFC9 033B564E 26480D78
             E955A5E2 9E7AB245 DB2BE315 E2099AFB"
        )
    );
    let a = hex("60975527 035CF2AD 1989806F 0407210B C81EDC04 E2762A56 AFD529DD DA2D4393");
    let b = hex("E487CB59 D31AC550 471E81F0 0F6928E0 1DDA08E9 74A004F4 9E61F5D1 05284D20");
    let a_pub = srp::client_public(&group, &a);
    assert_eq!(
        a_pub,
        hex(
            "61D5E490 F6F1B795 47B0704C 436F523D D0E560F0 C64115BB 72557EC4
             4352E890 3211C046 92272D8B 2D1A5358 A2CF1B6E 0BFCF99F 921530EC
             8E393561 79EAE45E 42BA92AE ACED8251 71E1E8B9 AF6D9C03 E1327F44
             BE087EF0 6530E69F 66615261 EEF54073 CA11CF58 58F0EDFD FE15EFEA
             B349EF5D 76988A36 72FAC47B 0769447B"
        )
    );
    let b_pub = srp::server_public::<Sha1>(&group, &v, &b);
    assert_eq!(
        b_pub,
        hex(
            "BD0C6151 2C692C0C B6D041FA 01BB152D 4916A1E7 7AF46AE1 05393011
             BAF38964 DC46A067 0DD125B9 5A981652 236F99D9 B681CBF8 7837EC99
             6C6DA044 53728610 D0C6DDB5 8B318885 D7D82C7F 8DEB75CE 7BD4FBAA
             37089E6F 9C6059F3 88838E7A 00030B33 1EB76840 910440B1 B27AAEAE
             EB4012B7 D7665238 A8E3FB00 4B117B58"
        )
    );
    let u = srp::scrambler::<Sha1>(&group, &a_pub, &b_pub);
    assert_eq!(u, hex("CE38B959 3487DA98 554ED47D 70A7AE5F 462EF019"));
    let premaster = hex(
        "B0DC82BA BCF30674 AE450C02 87745E79 90A3381F 63B387AA F271A10D
         233861E3 59B48220 F7C4693C 9AE12B0A 6F67809F 0876E2D0 13800D6C
         41BB59B6 D5979B5C 00A172B4 A2A5903A 0BDCAF8A 709585EB 2AFAFA8F
         3499B200 210DCC1F 10EB3394 3CD67FC8 8A2F39A4 BE5BEC4E C0A3212D
         C346D7E4 74B29EDE 8A469FFE CA686E5A",
    );
    assert_eq!(srp::server_secret(&group, &a_pub, &v, &u, &b), premaster);
    assert_eq!(
        srp::client_secret::<Sha1>(&group, &b_pub, &x, &a, &u),
        premaster
    );
}

/// The 3072-bit N is RFC 3526's `2^3072 − 2^3008 − 1 + 2^64·(⌊2^2942·π⌋ + 1690314)`, checked with π
/// computed here (Machin's formula in fixed point), so the constant has no typo.
#[test]
fn group_3072_is_the_rfc_prime() {
    fn atan_inv(x: u32, one: &BigUint) -> (BigUint, BigUint) {
        // Sum of positive and negative terms of atan(1/x)·one, kept apart to stay unsigned.
        let (mut pos, mut neg) = (BigUint::default(), BigUint::default());
        let x = BigUint::from(x);
        let x2 = &x * &x;
        let mut term = one / &x;
        let mut n = 1u32;
        while term != BigUint::default() {
            let t = &term / n;
            if (n / 2) % 2 == 0 {
                pos += t;
            } else {
                neg += t;
            }
            term /= &x2;
            n += 2;
        }
        (pos, neg)
    }
    let guard = 64u32;
    let one = BigUint::from(1u8) << (2942 + guard);
    let (p5, n5) = atan_inv(5, &one);
    let (p239, n239) = atan_inv(239, &one);
    // π = 16·atan(1/5) − 4·atan(1/239)
    let pi = (p5 * 16u32 + n239 * 4u32) - (n5 * 16u32 + p239 * 4u32);
    let floor = pi >> guard;
    let two = BigUint::from(2u8);
    let n = two.pow(3072) - two.pow(3008) - 1u32 + two.pow(64) * (floor + 1_690_314u32);
    let group = Group::rfc5054_3072();
    assert_eq!(group.n, n);
    assert_eq!(group.g, BigUint::from(5u8));
}

#[tokio::test]
async fn activation_happy_path_delivers_service_data() -> Result {
    let f = fixture().await?;
    let ex = activate(&f, CODE, Play::Honest).await?;
    assert_eq!(ex.status, 200, "{}", ex.body);
    assert_eq!(
        ex.body["url"],
        format!(
            "{}/activation/idb/token/v1/actions/srp/register",
            f.sim.base_url()
        )
    );
    let env = envelope(&ex.body)?;
    assert!(ex.keys.verify(&env.data, &env.hmac));
    let data: Value = serde_json::from_slice(&ex.keys.open(&env)?)?;

    let svc = f.sim.service_base_url();
    assert_eq!(
        svc,
        format!("https://localhost:{}", f.sim.proxy_addr().port())
    );
    assert_eq!(data["serviceUrls"]["u2c"], format!("{svc}/u2c"));
    assert_eq!(data["serviceUrls"]["wdm"], format!("{svc}/wdm/api/v1"));
    assert_eq!(data["serviceUrls"]["identity"], format!("{svc}/identity"));
    assert_eq!(
        data["serviceUrls"]["calendar"],
        format!("{svc}/calendar/api/v1")
    );
    assert_eq!(data["serviceUrls"]["locus"], format!("{svc}/locus/api/v1"));
    assert_eq!(data["serviceUrls"]["kms"], format!("{svc}/kms"));
    assert_eq!(data["serviceUrls"]["calliope"], format!("{svc}/calliope"));
    assert_eq!(data["trustList"], json!([f.sim.proxy_ca_pem()]));
    assert_eq!(data["orgId"], roomd_sim::DEFAULT_ORG_ID);
    assert_eq!(data["deviceIdentifier"].as_str().map(str::len), Some(36));
    let tokens = &data["tokens"];
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 1_209_600);
    assert_eq!(tokens["refresh_token_expires_in"], 5_184_000);
    let access = tokens["access_token"].as_str().ok_or("access")?;
    let refresh = tokens["refresh_token"].as_str().ok_or("refresh")?;
    assert_eq!(access.len(), 43);
    assert_eq!(
        f.sim.tokens(),
        (vec![access.to_owned()], vec![refresh.to_owned()])
    );

    let records = f.sim.activations();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].activation_id, ID);
    assert_eq!(records[0].outcome, "ok");
    assert_eq!(records[0].device_info, Some(device_info()));
    let (status, listed) = f
        .admin(reqwest::Method::GET, "/admin/activations", None)
        .await?;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["outcome"], "ok");
    assert_eq!(listed[0]["device_info"]["serial"], "FOC00000001");

    // The register step exists (the agent may skip it).
    let (status, _) = f
        .post_main("/activation/idb/token/v1/actions/srp/register", &json!({}))
        .await?;
    assert_eq!(status, 204);

    // Used now.
    let (status, body) = f.post_main(INIT, &json!({ "activationId": ID })).await?;
    assert_eq!(
        (status, body),
        (410, json!({"message": "activation code already used"}))
    );
    assert_eq!(f.sim.activations()[1].outcome, "used");

    // Reset through the admin API makes it usable again.
    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/activation/reset",
            Some(json!({"activation_id": ID})),
        )
        .await?;
    assert_eq!(status, 200);
    let again = service_data(&f, CODE).await?;
    assert_ne!(again["tokens"]["access_token"], json!(access));
    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/activation/reset",
            Some(json!({"activation_id": "99999999"})),
        )
        .await?;
    assert_eq!(status, 404);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn wrong_password_fails_then_locks_after_five() -> Result {
    let f = fixture().await?;
    for i in 0..roomd_sim::MAX_FAILURES {
        let ex = activate(&f, CODE, Play::WrongPassword).await?;
        assert_eq!(
            (ex.status, ex.body),
            (401, json!({"message": "srp verification failed"})),
            "attempt {i}"
        );
    }
    let (status, body) = f.post_main(INIT, &json!({ "activationId": ID })).await?;
    assert_eq!(
        (status, body),
        (423, json!({"message": "activation code locked"}))
    );
    let outcomes: Vec<String> = f.sim.activations().into_iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        ["hmac-failed"; 5]
            .into_iter()
            .chain(["locked"])
            .collect::<Vec<_>>()
    );
    assert!(f.sim.activations().iter().all(|r| r.device_info.is_none()));
    assert!(
        f.sim.tokens().0.is_empty(),
        "no token for a failed activation"
    );

    // The handshake is single-use: replaying an old B is unknown.
    assert!(f.sim.reset_activation(ID));
    assert!(!f.sim.reset_activation("99999999"));
    let (status, init) = f.post_main(INIT, &json!({ "activationId": ID })).await?;
    assert_eq!(status, 200);
    let replay =
        json!({"srpA": "AQ==", "srpB": init["srpB"], "oauthData": "AA==", "oauthDataHMAC": "AA=="});
    let (status, _) = f.post_main(INVOKE, &replay).await?;
    assert_eq!(
        status, 401,
        "A = 1 is a valid group element but the HMAC is wrong"
    );
    let (status, body) = f.post_main(INVOKE, &replay).await?;
    assert_eq!(
        (status, body),
        (400, json!({"message": "unknown handshake"}))
    );

    // A ≡ 0 mod N is refused.
    let (_, init) = f.post_main(INIT, &json!({ "activationId": ID })).await?;
    let n = srp::b64(&Group::rfc5054_3072().n.to_bytes_be());
    let (status, _) = f
        .post_main(
            INVOKE,
            &json!({"srpA": n, "srpB": init["srpB"], "oauthData": "AA==", "oauthDataHMAC": "AA=="}),
        )
        .await?;
    assert_eq!(status, 401);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn unknown_and_expired_codes() -> Result {
    let f = fixture_with(scenario_with(vec![
        Device::new(CODE),
        Device {
            expired: true,
            ..Device::new("1111111122222222")
        },
    ]))
    .await?;
    let (status, body) = f
        .post_main(INIT, &json!({ "activationId": "99999999" }))
        .await?;
    assert_eq!(
        (status, body),
        (404, json!({"message": "unknown activation code"}))
    );
    let (status, body) = f
        .post_main(INIT, &json!({ "activationId": "11111111" }))
        .await?;
    assert_eq!(
        (status, body),
        (410, json!({"message": "activation code expired"}))
    );
    let (status, _) = f.post_main(INIT, &json!({ "id": "x" })).await?;
    assert_eq!(status, 400);
    let outcomes: Vec<(String, String)> = f
        .sim
        .activations()
        .into_iter()
        .map(|r| (r.activation_id, r.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("99999999".to_owned(), "unknown".to_owned()),
            ("11111111".to_owned(), "expired".to_owned())
        ]
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn tampered_and_mitm_service_data_do_not_verify() -> Result {
    let f = fixture_with(scenario_with(vec![
        Device {
            fault: DeviceFault::TamperHmac,
            ..Device::new(CODE)
        },
        Device {
            fault: DeviceFault::Mitm,
            ..Device::new("1111111122222222")
        },
    ]))
    .await?;

    let ex = activate(&f, CODE, Play::Honest).await?;
    assert_eq!(ex.status, 200);
    let env = envelope(&ex.body)?;
    assert!(
        !ex.keys.verify(&env.data, &env.hmac),
        "tampered HMAC must not verify"
    );
    assert!(matches!(ex.keys.open(&env), Err(srp::EnvelopeError::Hmac)));
    // Only the HMAC was touched: the data itself is the honest server's.
    let data: Value = serde_json::from_slice(&ex.keys.decrypt(&env.data)?)?;
    assert!(data["tokens"]["access_token"].is_string());

    let ex = activate(&f, "1111111122222222", Play::Honest).await?;
    assert_eq!(
        ex.status, 200,
        "the man in the middle answers without checking"
    );
    let env = envelope(&ex.body)?;
    assert!(
        !ex.keys.verify(&env.data, &env.hmac),
        "MITM HMAC must not verify"
    );
    assert!(
        ex.keys.decrypt(&env.data).is_err(),
        "nor decrypt under the honest keys"
    );
    let last = f.sim.activations().pop().ok_or("no record")?;
    assert_eq!(
        (last.activation_id.as_str(), last.outcome.as_str()),
        ("11111111", "mitm")
    );
    // The MITM did not consume the code nor issue real tokens.
    assert_eq!(f.sim.tokens().0.len(), 1);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn trust_list_and_org_follow_the_scenario() -> Result {
    let f = fixture_with(scenario_with(vec![Device {
        trust_list: false,
        org_id: Some("org-42".into()),
        ..Device::new(CODE)
    }]))
    .await?;
    let data = service_data(&f, CODE).await?;
    assert!(data.get("trustList").is_none(), "{data}");
    assert_eq!(data["orgId"], "org-42");
    let token = data["tokens"]["access_token"].as_str().ok_or("token")?;
    let reg = f
        .proxy
        .post(format!("{}/wdm/api/v1/devices", f.sim.service_base_url()))
        .bearer_auth(token)
        .json(&registration())
        .send()
        .await?;
    let (status, body) = read(reg).await?;
    assert_eq!(status, 200);
    assert_eq!(body["orgId"], "org-42");
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn refresh_flow_and_invalid_grant() -> Result {
    let f = fixture_with(Scenario {
        devices: vec![Device::new(CODE)],
        tokens: roomd_sim::TokensScenario {
            access_lifetime_secs: 3600,
            refresh_lifetime_secs: 7200,
        },
        ..Scenario::default()
    })
    .await?;
    let (access, refresh) = access_token(&f).await?;
    let (status, body) = f.refresh(&refresh).await?;
    assert_eq!(status, 200, "{body}");
    let new_access = body["access_token"].as_str().ok_or("access")?.to_owned();
    assert_ne!(new_access, access);
    assert_eq!(body["refresh_token"], refresh);
    assert_eq!(body["expires_in"], 3600);
    assert!(
        body["refresh_token_expires_in"]
            .as_u64()
            .is_some_and(|s| s <= 7200 && s > 7000)
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "spark:all");

    // Both access tokens work until expired.
    let svc = f.sim.service_base_url();
    assert_eq!(f.catalog(&svc, Some(&access)).await?.status(), 200);
    assert_eq!(f.catalog(&svc, Some(&new_access)).await?.status(), 200);
    let (status, n) = f
        .admin(reqwest::Method::POST, "/admin/tokens/expire-access", None)
        .await?;
    assert_eq!((status, n), (200, json!({"expired": 2})));
    assert_eq!(f.catalog(&svc, Some(&new_access)).await?.status(), 401);
    let (status, body) = f.refresh(&refresh).await?;
    assert_eq!(status, 200);
    let third = body["access_token"].as_str().ok_or("access")?.to_owned();
    assert_eq!(f.catalog(&svc, Some(&third)).await?.status(), 200);

    let (_, listed) = f.admin(reqwest::Method::GET, "/admin/tokens", None).await?;
    assert_eq!(listed["access"], json!([access, new_access, third]));
    assert_eq!(listed["refresh"], json!([refresh]));

    let rejected = json!({"error": "invalid_grant", "error_description": "refresh token rejected"});
    assert_eq!(f.refresh("not-a-token").await?, (400, rejected.clone()));
    let (status, _) = f
        .admin(reqwest::Method::POST, "/admin/tokens/revoke-refresh", None)
        .await?;
    assert_eq!(status, 200);
    assert_eq!(f.refresh(&refresh).await?, (400, rejected));
    // Revoking refresh tokens leaves access tokens alone.
    assert_eq!(f.catalog(&svc, Some(&third)).await?.status(), 200);

    let resp = f
        .proxy
        .post(format!("{svc}/identity/access_token"))
        .body("grant_type=password&username=x")
        .send()
        .await?;
    assert_eq!(read(resp).await?.1["error"], "unsupported_grant_type");
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn bearer_is_required_after_activation() -> Result {
    let f = fixture().await?;
    let svc = f.sim.service_base_url();
    for token in [None, Some("forged")] {
        let resp = f.catalog(&svc, token).await?;
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        assert_eq!(
            resp.json::<Value>().await?,
            json!({"message": "invalid or expired token"})
        );
    }
    let resp = f
        .proxy
        .get(format!("{svc}/wdm/api/v1/devices/x"))
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    let resp = f
        .proxy
        .post(format!("{svc}/wdm/api/v1/devices"))
        .header("authorization", "Basic eDp5")
        .json(&registration())
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    // GDS, activation and identity need none.
    assert_eq!(
        f.main
            .get(format!("{}/gds/health", f.sim.base_url()))
            .send()
            .await?
            .status(),
        200
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn hostmap_resolves_logical_hosts_to_alt_then_proxy() -> Result {
    let f = fixture().await?;
    let (access, _) = access_token(&f).await?;
    let resp = f.catalog(&f.sim.service_base_url(), Some(&access)).await?;
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await?;
    assert_eq!(doc["format"], "hostmap");
    let alt = format!("localhost:{}", f.sim.alt_addr().port());
    let proxy = format!("localhost:{}", f.sim.proxy_addr().port());
    for (name, path) in [
        ("wdm", "/wdm/api/v1"),
        ("identity", "/identity"),
        ("calendar", "/calendar/api/v1"),
        ("locus", "/locus/api/v1"),
        ("kms", "/kms"),
        ("calliope", "/calliope"),
        ("u2c", "/u2c"),
    ] {
        let host = format!("{name}.sim.invalid");
        assert_eq!(doc["serviceLinks"][name], format!("https://{host}{path}"));
        assert_eq!(
            doc["hostCatalog"][&host],
            json!([
                {"host": alt, "ttl": -1, "priority": 1, "id": format!("urn:TEAM:sim-east_a:{name}")},
                {"host": proxy, "ttl": -1, "priority": 5, "id": format!("urn:TEAM:sim-west_b:{name}")},
            ])
        );
    }
    let resp = f
        .proxy
        .get(format!(
            "{}/u2c/catalog?format=services",
            f.sim.service_base_url()
        ))
        .bearer_auth(&access)
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn alt_host_modes_serve_503_refuse() -> Result {
    let f = fixture().await?;
    let (access, _) = access_token(&f).await?;
    let alt = format!("https://localhost:{}", f.sim.alt_addr().port());
    assert_eq!(f.catalog(&alt, Some(&access)).await?.status(), 200);
    assert_eq!(f.sim.alt_mode(), "serve");

    let (status, body) = f
        .admin(
            reqwest::Method::POST,
            "/admin/hosts/alt",
            Some(json!({"mode": "503"})),
        )
        .await?;
    assert_eq!((status, body), (200, json!({"mode": "503"})));
    let resp = f.catalog(&alt, Some(&access)).await?;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.json::<Value>().await?,
        json!({"message": "host failing"})
    );
    // The fallback keeps working.
    assert_eq!(
        f.catalog(&f.sim.service_base_url(), Some(&access))
            .await?
            .status(),
        200
    );

    f.sim.set_alt_mode("refuse")?;
    let err = tokio::net::TcpStream::connect(f.sim.alt_addr())
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // The pooled connection from before is dropped too (once the alt task has run).
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.catalog(&alt, Some(&access))
        .await
        .expect_err("no connection to a refusing host");
    let (_, mode) = f
        .admin(reqwest::Method::GET, "/admin/hosts/alt", None)
        .await?;
    assert_eq!(mode, json!({"mode": "refuse"}));

    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/hosts/alt",
            Some(json!({"mode": "serve"})),
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(f.catalog(&alt, Some(&access)).await?.status(), 200);
    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/hosts/alt",
            Some(json!({"mode": "down"})),
        )
        .await?;
    assert_eq!(status, 400);
    assert!(f.sim.set_alt_mode("down").is_err());

    // Requests are recorded with the listener that took them, 503s included.
    let alt_paths: Vec<String> = f
        .sim
        .received()
        .into_iter()
        .filter(|r| r.listener == "alt")
        .map(|r| r.path)
        .collect();
    assert_eq!(alt_paths, ["/u2c/catalog"; 3]);
    f.sim.shutdown().await;
    Ok(())
}

fn registration() -> Value {
    json!({
        "deviceIdentifier": "00000000-abcd-0000-abcd-000000000000",
        "systemName": "s53300",
        "systemVersion": "roomd 0.1.0",
        "deviceType": "TP_ENDPOINT",
        "model": "roomd reference device",
        "name": "Simulated Room",
        "localizedModel": "roomd reference device",
        "capabilities": {"groupCallSupported": true},
        "isDeviceManaged": true,
    })
}

fn etag_of(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn wdm_register_refresh_delete() -> Result {
    let f = fixture().await?;
    let (access, _) = access_token(&f).await?;
    let svc = f.sim.service_base_url();
    let resp = f
        .proxy
        .post(format!("{svc}/wdm/api/v1/devices"))
        .bearer_auth(&access)
        .json(&registration())
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let etag = etag_of(&resp).ok_or("no etag")?;
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let dev: Value = resp.json().await?;
    let url = dev["url"].as_str().ok_or("url")?.to_owned();
    let id = url.rsplit('/').next().ok_or("id")?.to_owned();
    assert_eq!(url, format!("{svc}/wdm/api/v1/devices/{id}"));
    assert_eq!(
        dev["webSocketUrl"],
        format!(
            "wss://localhost:{}/mercury/registrations/{id}/messages",
            f.sim.proxy_addr().port()
        )
    );
    assert_eq!(
        dev["deviceIdentifier"],
        "00000000-abcd-0000-abcd-000000000000"
    );
    assert_eq!(dev["orgId"], roomd_sim::DEFAULT_ORG_ID);
    assert_eq!(dev["name"], "Simulated Room");
    assert_eq!(dev["deviceType"], "TP_ENDPOINT");
    assert_eq!(dev["userId"].as_str().map(str::len), Some(36));
    assert!(
        dev["creationTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(dev["modificationTime"].is_string());
    let dev_features = &dev["features"]["developer"];
    assert_eq!(dev_features[0]["key"], "roomd-obtp");
    assert_eq!(dev_features[0]["val"], "true");
    assert_eq!(dev_features[0]["mutable"], true);
    assert!(dev_features[0]["lastModified"].is_string());
    assert_eq!(dev_features[1]["val"], "50");
    assert_eq!(dev["features"]["entitlement"][0]["key"], "webex-squared");
    assert_eq!(dev["features"]["user"][0]["val"], "dark");

    // GET the url, through the alt host too (the url follows the Host the client used).
    let got = f.proxy.get(&url).bearer_auth(&access).send().await?;
    assert_eq!(etag_of(&got).as_deref(), Some(etag.as_str()));
    assert_eq!(
        got.json::<Value>().await?["deviceIdentifier"],
        dev["deviceIdentifier"]
    );
    let alt_url = url.replace(
        &format!(":{}/", f.sim.proxy_addr().port()),
        &format!(":{}/", f.sim.alt_addr().port()),
    );
    let via_alt: Value = f
        .proxy
        .get(&alt_url)
        .bearer_auth(&access)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(via_alt["url"], alt_url);

    // Refresh with the current etag: 304, no body.
    let put = |etag: String| {
        f.proxy
            .put(&url)
            .bearer_auth(&access)
            .header("if-none-match", etag)
            .json(&registration())
            .send()
    };
    let resp = put(etag.clone()).await?;
    assert_eq!(resp.status(), 304);
    assert!(resp.bytes().await?.is_empty());

    // New features change every etag.
    f.sim
        .set_wdm_features(json!({"developer": [{"key": "roomd-obtp", "val": "false"}]}))?;
    let resp = put(etag.clone()).await?;
    assert_eq!(resp.status(), 200);
    let etag2 = etag_of(&resp).ok_or("etag")?;
    assert_ne!(etag2, etag);
    let body: Value = resp.json().await?;
    assert_eq!(
        body["features"]["developer"],
        json!([{
            "key": "roomd-obtp", "val": "false", "mutable": true, "type": "DEV",
            "lastModified": body["features"]["developer"][0]["lastModified"],
        }])
    );
    assert_eq!(body["features"]["user"], json!([]));
    assert_eq!(put(etag2.clone()).await?.status(), 304);
    let (status, _) = f
        .admin(
            reqwest::Method::PUT,
            "/admin/wdm/features",
            Some(json!({"user": [{"key": "theme", "val": "light"}]})),
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(put(etag2.clone()).await?.status(), 200);
    let (status, _) = f
        .admin(
            reqwest::Method::PUT,
            "/admin/wdm/features",
            Some(json!({"usr": []})),
        )
        .await?;
    assert_eq!(status, 400);

    // Re-registering the same deviceIdentifier keeps the id.
    let resp = f
        .proxy
        .post(format!("{svc}/wdm/api/v1/devices"))
        .bearer_auth(&access)
        .json(&registration())
        .send()
        .await?;
    let etag3 = etag_of(&resp).ok_or("etag")?;
    let again: Value = resp.json().await?;
    assert_eq!(again["url"], url);
    assert_ne!(etag3, etag2);
    assert_eq!(again["features"]["user"][0]["val"], "light");
    assert_eq!(f.sim.wdm_devices().len(), 1);
    let (_, listed) = f
        .admin(reqwest::Method::GET, "/admin/wdm/devices", None)
        .await?;
    assert_eq!(listed[0]["url"], url);

    // Deleted by the admin: the agent's refresh sees 404 and registers again (a new id).
    let (status, _) = f
        .admin(
            reqwest::Method::DELETE,
            &format!("/admin/wdm/devices/{id}"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    let resp = put(etag3).await?;
    assert_eq!(
        read(resp).await?,
        (404, json!({"message": "device not found"}))
    );
    assert!(!f.sim.delete_wdm_device(&id));
    let resp = f
        .proxy
        .post(format!("{svc}/wdm/api/v1/devices"))
        .bearer_auth(&access)
        .json(&registration())
        .send()
        .await?;
    let fresh: Value = resp.json().await?;
    assert_ne!(fresh["url"], url);

    // Unregister.
    let fresh_url = fresh["url"].as_str().ok_or("url")?;
    let resp = f
        .proxy
        .delete(fresh_url)
        .bearer_auth(&access)
        .send()
        .await?;
    assert_eq!(resp.status(), 204);
    let resp = f.proxy.get(fresh_url).bearer_auth(&access).send().await?;
    assert_eq!(resp.status(), 404);
    assert!(f.sim.wdm_devices().is_empty());

    let resp = f
        .proxy
        .post(format!("{svc}/wdm/api/v1/devices"))
        .bearer_auth(&access)
        .json(&json!({"name": "no identifier"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn proxy_and_alt_certificates_chain_to_the_proxy_ca_only() -> Result {
    let f = fixture().await?;
    let from_file = std::fs::read_to_string(f.sim.proxy_ca_path())?;
    assert_eq!(from_file, f.sim.proxy_ca_pem());
    assert_ne!(f.sim.proxy_ca_pem(), f.sim.ca_pem());
    for addr in [f.sim.proxy_addr(), f.sim.alt_addr()] {
        let url = format!("https://localhost:{}/gds/health", addr.port());
        let err = f
            .main
            .get(&url)
            .send()
            .await
            .expect_err("ca.pem must not verify the proxy");
        assert!(err.is_connect(), "{err:?}");
        assert_eq!(f.proxy.get(&url).send().await?.status(), 200);
    }
    // And the main listener does not verify with the proxy CA.
    let err = f
        .proxy
        .get(format!("{}/health", f.sim.gds_url()))
        .send()
        .await
        .expect_err("proxy CA must not verify the main listener");
    assert!(err.is_connect(), "{err:?}");

    let dir = f.sim.ca_path().parent().ok_or("no parent")?;
    let info: SimInfo = serde_json::from_str(&std::fs::read_to_string(dir.join("sim.json"))?)?;
    assert_eq!(&info, f.sim.info());
    assert_eq!(info.proxy, f.sim.proxy_addr());
    assert_eq!(info.alt, f.sim.alt_addr());
    assert_eq!(info.proxy_ca, f.sim.proxy_ca_path().to_string_lossy());
    assert_eq!(info.service_base_url, f.sim.service_base_url());
    assert_eq!(
        info.activation_url,
        format!("{}/activation", f.sim.base_url())
    );
    let (_, admin_info) = f.admin(reqwest::Method::GET, "/admin/info", None).await?;
    assert_eq!(admin_info["proxy_ca"], info.proxy_ca);
    assert_eq!(admin_info["activation_url"], info.activation_url);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn faults_apply_on_every_listener() -> Result {
    let f = fixture().await?;
    f.sim.arm_fault(Fault {
        path: "/gds/health".into(),
        method: None,
        status: 429,
        count: 3,
        retry_after: Some(7),
        body: None,
    })?;
    let bases = [
        (f.sim.base_url(), &f.main),
        (f.sim.service_base_url(), &f.proxy),
        (
            format!("https://localhost:{}", f.sim.alt_addr().port()),
            &f.proxy,
        ),
    ];
    for (base, client) in &bases {
        let resp = client.get(format!("{base}/gds/health")).send().await?;
        assert_eq!(resp.status(), 429, "{base}");
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
    }
    for (base, client) in &bases {
        assert_eq!(
            client
                .get(format!("{base}/gds/health"))
                .send()
                .await?
                .status(),
            200
        );
    }
    let listeners: Vec<String> = f.sim.received().into_iter().map(|r| r.listener).collect();
    assert_eq!(listeners, ["main", "proxy", "alt", "main", "proxy", "alt"]);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn scenario_reload_keeps_unchanged_codes() -> Result {
    let f = fixture().await?;
    let _ = access_token(&f).await?;
    let mut scenario = f.sim.scenario();
    scenario.devices.push(Device::new("1111111122222222"));
    f.sim.set_scenario(scenario)?;
    let (status, _) = f.post_main(INIT, &json!({ "activationId": ID })).await?;
    assert_eq!(status, 410, "still used");
    let data = service_data(&f, "1111111122222222").await?;
    assert!(data["tokens"]["access_token"].is_string());
    f.sim.shutdown().await;
    Ok(())
}

/// Over HTTP/2 the authority comes from the request URI, not a Host header: URLs must still follow it.
/// And activation answers URLs of the listener it was reached on.
#[tokio::test]
async fn urls_follow_the_listener_and_authority_over_h2() -> Result {
    let f = fixture().await?;
    let (access, _) = access_token(&f).await?;
    let mut cfg = tls_config(f.sim.proxy_ca_pem())?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let h2 = reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .timeout(WAIT)
        .build()?;
    let base = format!("https://127.0.0.1:{}", f.sim.proxy_addr().port());
    let resp = h2
        .post(format!("{base}/wdm/api/v1/devices"))
        .bearer_auth(&access)
        .json(&registration())
        .send()
        .await?;
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let dev: Value = resp.json().await?;
    assert!(
        dev["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("{base}/wdm/api/v1/devices/"))),
        "{dev}"
    );

    let mut scenario = f.sim.scenario();
    scenario.devices.push(Device::new("1111111122222222"));
    f.sim.set_scenario(scenario)?;
    let resp = h2
        .post(format!("{}{INIT}", f.sim.service_base_url()))
        .json(&json!({"activationId": "11111111"}))
        .send()
        .await?;
    let init: Value = resp.json().await?;
    assert_eq!(init["url"], format!("{}{INVOKE}", f.sim.service_base_url()));
    f.sim.shutdown().await;
    Ok(())
}
