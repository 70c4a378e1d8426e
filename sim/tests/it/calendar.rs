//! End-to-end tests of the calendar service and the KMS (wire profile §4,
//! docs/wire-profile-choices.md §4) against a device that activated and registered for real: paging
//! with `Link` headers, date ranges, one event by base64url id, JWE fields decrypted with the key
//! from `/kms/keys` (aes-gcm here, independently of the simulator), plaintext bookings, KMS key
//! availability, list page faults, the mercury events admin changes emit, and bulk creation.
//!
//! Every wait is bounded and event-driven (the next frame on the socket, with a timeout).

use roomd_testkit::sim as support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use futures_util::{SinkExt as _, StreamExt as _};
use roomd_sim::{
    BookingPatch, BookingSpec, BulkSpec, Device, EventMode, PageFault, Scenario, SimHandle,
};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use support::{Registered, Result, SimFixture, tls_config};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);
const CODE: &str = "4353450012345678";
/// A date range wide enough for every booking the tests make.
const WIDE: &str = "fromDate=2000-01-01T00:00:00.000Z&toDate=2100-01-01T00:00:00.000Z";

type Ws = WebSocketStream<TlsStream<TcpStream>>;

struct Fixture {
    sim: SimHandle,
    /// Trusts the proxy CA (services) and serves the cleartext admin API.
    http: reqwest::Client,
    token: String,
    /// The registered WDM device id: the mercury registration.
    device: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Result<Fixture> {
    fixture_with(Scenario::default()).await
}

/// Starts the simulator with `scenario` plus one device, activates it with an honest SRP client and
/// registers it with WDM.
async fn fixture_with(mut scenario: Scenario) -> Result<Fixture> {
    scenario.devices = vec![Device::new(CODE)];
    let kit = SimFixture::start(scenario, WAIT).await?;
    let Registered { token, device, .. } = kit.register(CODE).await?;
    let SimFixture { sim, http, dir, .. } = kit;
    Ok(Fixture {
        sim,
        http,
        token,
        device,
        _dir: dir,
    })
}

/// An answer: status, `Link` header, JSON body (`Null` when there is none).
struct Answer {
    status: u16,
    link: Option<String>,
    body: Value,
}

impl Fixture {
    /// `https://localhost:<proxy>/calendar/api/v1`: the calendar link resolved to the proxy host.
    fn calendar(&self) -> String {
        format!("{}/calendar/api/v1", self.sim.service_base_url())
    }

    async fn get(&self, url: &str) -> Result<Answer> {
        let resp = self.http.get(url).bearer_auth(&self.token).send().await?;
        let status = resp.status().as_u16();
        let link = resp
            .headers()
            .get("link")
            .map(|v| v.to_str().map(str::to_owned))
            .transpose()?;
        let text = resp.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        Ok(Answer { status, link, body })
    }

    /// `GET {kms}/keys?uri=<percent-encoded uri>`.
    async fn kms(&self, uri: &str) -> Result<Answer> {
        let resp = self
            .http
            .get(format!("{}/kms/keys", self.sim.service_base_url()))
            .query(&[("uri", uri)])
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok(Answer {
            status,
            link: None,
            body: resp.json().await?,
        })
    }

    /// The key bytes the KMS hands out for `uri`.
    async fn key(&self, uri: &str) -> Result<Vec<u8>> {
        let a = self.kms(uri).await?;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["uri"], uri);
        assert_eq!(a.body["jwk"]["kty"], "oct");
        let k = URL_SAFE_NO_PAD.decode(a.body["jwk"]["k"].as_str().ok_or("k")?)?;
        assert_eq!(k.len(), 32);
        Ok(k)
    }

    /// Follows `next` links from `first` to the end; every page's items, in order.
    async fn all_pages(&self, first: &str) -> Result<Vec<Vec<Value>>> {
        let mut pages = Vec::new();
        let mut url = Some(first.to_owned());
        while let Some(u) = url {
            let a = self.get(&u).await?;
            assert_eq!(a.status, 200, "{u}: {}", a.body);
            pages.push(a.body["items"].as_array().ok_or("items")?.clone());
            url = a.link.as_deref().map(next_url).transpose()?;
            assert!(pages.len() <= 1000, "Link loop");
        }
        Ok(pages)
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        support::admin(&self.http, &self.sim, method, path, body).await
    }

    /// Opens a socket on the proxy listener, authorizes and reads the buffer_state event.
    async fn online(&self) -> Result<Ws> {
        let tcp = TcpStream::connect(self.sim.proxy_addr()).await?;
        let connector = TlsConnector::from(Arc::new(tls_config(self.sim.proxy_ca_pem())?));
        let tls = connector
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let url = format!(
            "wss://localhost:{}/mercury/registrations/{}/messages?outboundWireFormat=text",
            self.sim.proxy_addr().port(),
            self.device
        );
        let (mut ws, _resp) = tokio_tungstenite::client_async(url, tls).await?;
        let auth = json!({"id": "a1", "type": "authorization",
                          "data": {"token": format!("Bearer {}", self.token)}});
        ws.send(Message::text(auth.to_string())).await?;
        let first = next_json(&mut ws).await?;
        assert_eq!(first["data"]["eventType"], "mercury.buffer_state");
        Ok(ws)
    }
}

/// The URL of a `<url>; rel="next"` header.
fn next_url(link: &str) -> Result<String> {
    let rest = link.strip_prefix('<').ok_or("Link starts with <")?;
    let (url, params) = rest.split_once('>').ok_or("Link has >")?;
    assert_eq!(params, "; rel=\"next\"");
    Ok(url.to_owned())
}

async fn next_json(ws: &mut Ws) -> Result<Value> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await?
            .ok_or("socket ended")??;
        match msg {
            Message::Text(t) => return Ok(serde_json::from_str(t.as_str())?),
            Message::Ping(_) | Message::Pong(_) => {}
            other => return Err(format!("expected a text frame, got {other:?}").into()),
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn b64url(s: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// Decrypts a compact JWE (dir + A256GCM) the way a client must: AAD = the first segment's ASCII.
/// Checks the header names `kid`.
fn decrypt(key: &[u8], compact: &str, kid: &str) -> Result<String> {
    let parts: Vec<&str> = compact.split('.').collect();
    let [protected, cek, iv, ciphertext, tag] = parts[..] else {
        return Err(format!("{compact:?} is not 5 segments").into());
    };
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(protected)?)?;
    assert_eq!(
        header,
        json!({"alg": "dir", "enc": "A256GCM", "kid": kid}),
        "{compact}"
    );
    assert_eq!(cek, "", "dir: empty encrypted key");
    let iv = URL_SAFE_NO_PAD.decode(iv)?;
    assert_eq!(iv.len(), 12);
    let tag = URL_SAFE_NO_PAD.decode(tag)?;
    assert_eq!(tag.len(), 16);
    open(
        key,
        protected.as_bytes(),
        &iv,
        &URL_SAFE_NO_PAD.decode(ciphertext)?,
        &tag,
    )
}

fn open(key: &[u8], aad: &[u8], iv: &[u8], ciphertext: &[u8], tag: &[u8]) -> Result<String> {
    let cipher = Aes256Gcm::new_from_slice(key)?;
    let mut sealed = ciphertext.to_vec();
    sealed.extend_from_slice(tag);
    let plain = cipher
        .decrypt(Nonce::from_slice(iv), Payload { msg: &sealed, aad })
        .map_err(|_| "AES-GCM authentication failed")?;
    Ok(String::from_utf8(plain)?)
}

/// A booking with every field, at an absolute start.
fn full_spec(id: &str, start: &str, encrypted: bool) -> BookingSpec {
    BookingSpec {
        id: Some(id.into()),
        series_id: Some("series-1".into()),
        location: Some("Room 7, floor 2".into()),
        organizer_id: Some("d3701784-bbe3-41ff-afc6-b14086d26d4f".into()),
        organizer_name: "Ada Lovelace".into(),
        organizer_email: "ada@example.invalid".into(),
        start: Some(start.into()),
        start_in_mins: None,
        duration_mins: 45,
        webex_uri: Some("123456@webex.sim.invalid".into()),
        webex_url: Some("https://webex.sim.invalid/m/123456".into()),
        meeting_join_uri: Some("join@webex.sim.invalid".into()),
        meeting_join_url: Some("https://webex.sim.invalid/j/123456".into()),
        space_uri: Some("space@webex.sim.invalid".into()),
        space_url: Some("https://webex.sim.invalid/s/1".into()),
        call_uri: Some("sip:call@webex.sim.invalid".into()),
        encrypted,
        recurring: true,
        ..BookingSpec::new("CLUS 2022 Test Meeting \u{1F4C5}", 0)
    }
}

/// Pointer → plaintext of every encrypted or URI field of [`full_spec`].
const FULL_FIELDS: [(&str, &str); 11] = [
    ("/encryptedSubject", "CLUS 2022 Test Meeting \u{1F4C5}"),
    ("/encryptedLocation", "Room 7, floor 2"),
    ("/encryptedOrganizerName", "Ada Lovelace"),
    ("/encryptedOrganizerEmail", "ada@example.invalid"),
    ("/webexURI", "123456@webex.sim.invalid"),
    ("/webexURL", "https://webex.sim.invalid/m/123456"),
    ("/meetingJoinInfo/meetingJoinURI", "join@webex.sim.invalid"),
    (
        "/meetingJoinInfo/meetingJoinURL",
        "https://webex.sim.invalid/j/123456",
    ),
    ("/spaceURI", "space@webex.sim.invalid"),
    ("/spaceURL", "https://webex.sim.invalid/s/1"),
    ("/callURI", "sip:call@webex.sim.invalid"),
];

#[tokio::test]
async fn list_pages_follow_link_headers_to_the_end() -> Result {
    let f = fixture_with(Scenario::from_toml_str("bookings = []\n")?).await?;
    let bulk = json!({"count": 95, "start_in_mins": -30, "spacing_mins": 1, "encrypted": false});
    let (status, out) = f
        .admin(
            reqwest::Method::POST,
            "/admin/calendar/bookings/bulk",
            Some(bulk),
        )
        .await?;
    assert_eq!(status, 200, "{out}");
    let created: Vec<String> = serde_json::from_value(out["ids"].clone())?;
    assert_eq!(created.len(), 95);
    assert_eq!(out["delivered"], json!([]));

    // The seed's catch-up shape, with max=10: 10 pages, the last one of 5.
    let first = format!(
        "{}/calendarEvents?max=10&offset=0&{WIDE}&compact=true",
        f.calendar()
    );
    let a = f.get(&first).await?;
    assert_eq!(a.status, 200);
    let port = f.sim.proxy_addr().port();
    assert_eq!(
        a.link.as_deref(),
        Some(
            format!(
                "<https://localhost:{port}/calendar/api/v1/calendarEvents?max=10&offset=10&{WIDE}&compact=true>; rel=\"next\""
            )
            .as_str()
        )
    );
    let pages = f.all_pages(&first).await?;
    assert_eq!(pages.len(), 10);
    assert!(pages[..9].iter().all(|p| p.len() == 10));
    assert_eq!(pages[9].len(), 5);
    let seen: Vec<String> = pages.iter().flat_map(|p| ids(p)).collect();
    assert_eq!(seen, created, "every id once, in start order");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 95);
    assert_eq!(pages[0][0]["encryptedSubject"], "Bulk meeting 1");

    // Defaults (max 50, offset 0) and the cap (max 200); the Link names the effective max.
    let a = f.get(&format!("{}/calendarEvents", f.calendar())).await?;
    assert_eq!(a.body["items"].as_array().map(Vec::len), Some(50));
    assert_eq!(
        a.link.as_deref().map(next_url).transpose()?,
        Some(format!(
            "https://localhost:{port}/calendar/api/v1/calendarEvents?max=50&offset=50"
        ))
    );
    let a = f
        .get(&format!(
            "{}/calendarEvents?max=5000&offset=90",
            f.calendar()
        ))
        .await?;
    assert_eq!(
        ids(a.body["items"].as_array().ok_or("items")?),
        created[90..]
    );
    assert_eq!(a.link, None);
    let a = f
        .get(&format!("{}/calendarEvents?max=10&offset=95", f.calendar()))
        .await?;
    assert_eq!((a.body["items"].clone(), a.link), (json!([]), None));

    // The Link follows the host the client used: the alt listener here.
    let alt = format!(
        "https://localhost:{}/calendar/api/v1/calendarEvents?max=90",
        f.sim.alt_addr().port()
    );
    let a = f.get(&alt).await?;
    assert_eq!(
        a.link.as_deref().map(next_url).transpose()?,
        Some(format!("{alt}&offset=90"))
    );

    // Over HTTP/1.1 the Host header names the authority.
    let h1 = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(f.sim.proxy_ca_pem())?)
        .http1_only()
        .timeout(WAIT)
        .build()?;
    let resp = h1
        .get(format!(
            "{}/calendarEvents?max=90&compact=true",
            f.calendar()
        ))
        .bearer_auth(&f.token)
        .send()
        .await?;
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let link = resp.headers().get("link").ok_or("no Link")?.to_str()?;
    assert_eq!(
        next_url(link)?,
        format!(
            "https://localhost:{port}/calendar/api/v1/calendarEvents?max=90&compact=true&offset=90"
        )
    );

    // Bad numbers and dates are 400 with a message; no token is 401.
    for query in [
        "max=0",
        "max=ten",
        "offset=-1",
        "fromDate=yesterday",
        "toDate=2022-04-25",
        "fromDate=2022-04-26T00:00:00Z&toDate=2022-04-25T00:00:00Z",
    ] {
        let a = f
            .get(&format!("{}/calendarEvents?{query}", f.calendar()))
            .await?;
        assert_eq!(a.status, 400, "{query}");
        assert!(a.body["message"].as_str().is_some(), "{query}: {}", a.body);
    }
    let resp = f
        .http
        .get(format!("{}/calendarEvents", f.calendar()))
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    // Served requests are recorded.
    let recorded = f.sim.calendar_requests();
    assert!(recorded.len() >= 17);
    assert!(
        recorded
            .iter()
            .all(|r| r.path.starts_with("/calendar/api/v1/calendarEvents"))
    );
    assert!(recorded.iter().any(|r| r.listener == "alt"));
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn date_range_selects_overlapping_meetings() -> Result {
    let f = fixture_with(Scenario::from_toml_str("bookings = []\n")?).await?;
    for (id, start, mins) in [
        ("early", "2030-01-01T08:00:00.000Z", 60),  // ends 09:00
        ("long", "2030-01-01T08:30:00.000Z", 120),  // 08:30-10:30
        ("inside", "2030-01-01T09:15:00.000Z", 30), // 09:15-09:45
        ("b-same", "2030-01-01T09:15:00.000Z", 15), // same start: id order
        ("late", "2030-01-01T10:00:00.000Z", 30),   // starts at toDate
    ] {
        f.sim.calendar_create(
            BookingSpec {
                id: Some(id.into()),
                start: Some(start.into()),
                start_in_mins: None,
                duration_mins: mins,
                ..BookingSpec::new(id, 0)
            },
            EventMode::None,
        )?;
    }
    let list = |from: &str, to: &str| {
        format!(
            "{}/calendarEvents?max=50&offset=0&fromDate={from}&toDate={to}&compact=true",
            f.calendar()
        )
    };
    let a = f
        .get(&list(
            "2030-01-01T09:00:00.000Z",
            "2030-01-01T10:00:00.000Z",
        ))
        .await?;
    assert_eq!(
        ids(a.body["items"].as_array().ok_or("items")?),
        ["long", "b-same", "inside"]
    );
    // Offsets work on the filtered list; the other zone notation is the same instant.
    let a = f
        .get(&format!(
            "{}/calendarEvents?max=1&offset=1&fromDate=2030-01-01T10:00:00%2B01:00&toDate=2030-01-01T11:00:00.000%2B01:00",
            f.calendar()
        ))
        .await?;
    assert_eq!(ids(a.body["items"].as_array().ok_or("items")?), ["b-same"]);
    assert!(a.link.is_some());
    // Ending exactly at fromDate is out.
    let a = f
        .get(&list(
            "2030-01-01T10:30:00.000Z",
            "2030-01-02T00:00:00.000Z",
        ))
        .await?;
    assert_eq!(a.body, json!({"items": []}));
    let a = f
        .get(&list(
            "2030-01-01T09:59:59.999Z",
            "2030-01-01T10:00:00.001Z",
        ))
        .await?;
    assert_eq!(
        ids(a.body["items"].as_array().ok_or("items")?),
        ["long", "late"]
    );
    // Only fromDate: everything still running then or later.
    let a = f
        .get(&format!(
            "{}/calendarEvents?fromDate=2030-01-01T09:50:00.000Z",
            f.calendar()
        ))
        .await?;
    assert_eq!(
        ids(a.body["items"].as_array().ok_or("items")?),
        ["long", "late"]
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn one_event_by_base64url_id() -> Result {
    let f = fixture_with(Scenario::from_toml_str("bookings = []\n")?).await?;
    let uuid = "e02c6c66-70ba-65b5-8b1f-c68afad768b9";
    f.sim.calendar_create(
        full_spec(uuid, "2030-01-01T09:00:00.000Z", true),
        EventMode::None,
    )?;
    f.sim.calendar_create(
        BookingSpec {
            id: Some("abcd".into()),
            ..BookingSpec::new("padded", 60)
        },
        EventMode::None,
    )?;
    // The seed's resource id.
    let rid = "ZTAyYzZjNjYtNzBiYS02NWI1LThiMWYtYzY4YWZhZDc2OGI5";
    let a = f
        .get(&format!(
            "{}/calendarEvents/{rid}?compact=true",
            f.calendar()
        ))
        .await?;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["id"], uuid);
    assert_eq!(
        a.body["links"],
        json!([{"href": format!("https://calendar.sim.invalid/calendar/api/v1/calendarEvents/{rid}"),
                "rel": "self"}])
    );
    // "abcd" is YWJjZA without padding, YWJjZA== with.
    for rid in ["YWJjZA", "YWJjZA=="] {
        let a = f
            .get(&format!(
                "{}/calendarEvents/{rid}?compact=true",
                f.calendar()
            ))
            .await?;
        assert_eq!(
            (a.status, a.body["id"].clone()),
            (200, json!("abcd")),
            "{rid}"
        );
        assert_eq!(
            a.body["encryptedSubject"]
                .as_str()
                .map(|s| s.split('.').count()),
            Some(5)
        );
    }
    assert_eq!(
        f.sim.calendar_booking("abcd").map(|b| b.resource_id),
        Some("YWJjZA".into())
    );
    // Unknown, undecodable, and (after a delete) gone: 404 with the message.
    f.sim.calendar_delete("abcd", EventMode::None)?;
    for rid in ["YWJjZA", &b64url(b"nope"), "%21%21%21", "YWJjZB"] {
        let a = f
            .get(&format!("{}/calendarEvents/{rid}", f.calendar()))
            .await?;
        assert_eq!(
            (a.status, a.body),
            (404, json!({"message": "calendar event not found"})),
            "{rid}"
        );
    }
    // The generic faults still apply to the one-event route (prefix with *).
    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/faults",
            Some(
                json!({"path": "/calendar/api/v1/calendarEvents/*", "status": 503,
                         "retry_after": 2}),
            ),
        )
        .await?;
    assert_eq!(status, 200);
    let resp = f
        .http
        .get(format!("{}/calendarEvents/{rid}", f.calendar()))
        .bearer_auth(&f.token)
        .send()
        .await?;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"2"[..])
    );
    assert_eq!(
        f.get(&format!("{}/calendarEvents/{rid}", f.calendar()))
            .await?
            .status,
        200
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn jwe_fields_decrypt_with_the_kms_key() -> Result {
    let f = fixture_with(Scenario::from_toml_str(
        "[kms]\nkeys = [\"default\", \"team-2\"]\n",
    )?)
    .await?;
    let mut spec = full_spec("enc-1", "2030-01-01T09:00:00.000Z", true);
    spec.key = "team-2".into();
    f.sim.calendar_create(spec, EventMode::None)?;
    let rid = b64url(b"enc-1");
    let dto = f
        .get(&format!(
            "{}/calendarEvents/{rid}?compact=true",
            f.calendar()
        ))
        .await?
        .body;
    let kid = "kms://kms.sim.invalid/keys/team-2";
    assert_eq!(f.sim.kms_key_url("team-2"), kid);
    assert_eq!(dto["encryptionKeyUrl"], kid);
    // Plaintext fields.
    assert_eq!(dto["start"], "2030-01-01T09:00:00.000Z");
    assert_eq!(dto["durationMinutes"], 45);
    assert_eq!(dto["organizer"], "d3701784-bbe3-41ff-afc6-b14086d26d4f");
    assert_eq!(dto["seriesId"], "series-1");
    assert_eq!(dto["meetingJoinType"], "WEBEX");
    assert_eq!(dto["isRecurring"], true);
    let key = f.key(kid).await?;
    for (path, want) in FULL_FIELDS {
        let jwe = dto.pointer(path).and_then(Value::as_str).ok_or(path)?;
        assert_eq!(decrypt(&key, jwe, kid)?, want, "{path}");
    }
    // The other key does not open it.
    let other = f.key("kms://kms.sim.invalid/keys/default").await?;
    assert_ne!(other, key);
    let subject = dto["encryptedSubject"].as_str().ok_or("subject")?;
    let seg: Vec<&str> = subject.split('.').collect();
    let (iv, ct, tag) = (
        URL_SAFE_NO_PAD.decode(seg[2])?,
        URL_SAFE_NO_PAD.decode(seg[3])?,
        URL_SAFE_NO_PAD.decode(seg[4])?,
    );
    assert!(open(&other, seg[0].as_bytes(), &iv, &ct, &tag).is_err());
    // AAD is the first segment's ASCII: a tampered header (another kid, or the same header with
    // padding or re-encoded with the standard alphabet) does not authenticate; no AAD neither.
    let tampered =
        b64url(br#"{"alg":"dir","enc":"A256GCM","kid":"kms://kms.sim.invalid/keys/default"}"#);
    assert!(open(&key, tampered.as_bytes(), &iv, &ct, &tag).is_err());
    let padded = format!("{}=", seg[0]);
    assert!(open(&key, padded.as_bytes(), &iv, &ct, &tag).is_err());
    let standard = STANDARD.encode(URL_SAFE_NO_PAD.decode(seg[0])?);
    if standard != seg[0] {
        assert!(open(&key, standard.as_bytes(), &iv, &ct, &tag).is_err());
    }
    assert!(open(&key, b"", &iv, &ct, &tag).is_err());
    assert_eq!(
        open(&key, seg[0].as_bytes(), &iv, &ct, &tag)?,
        FULL_FIELDS[0].1
    );
    // A fresh IV per encryption: every field differs between two renderings, and within one.
    let again = f
        .get(&format!("{}/calendarEvents/{rid}", f.calendar()))
        .await?
        .body;
    let mut ivs = HashSet::new();
    for d in [&dto, &again] {
        for (path, _) in FULL_FIELDS {
            let jwe = d.pointer(path).and_then(Value::as_str).ok_or(path)?;
            ivs.insert(jwe.split('.').nth(2).ok_or("iv")?.to_owned());
        }
    }
    assert_eq!(ivs.len(), 2 * FULL_FIELDS.len());
    // The list renders the same fields; the admin DTO route too.
    let list = f
        .get(&format!("{}/calendarEvents?{WIDE}", f.calendar()))
        .await?
        .body;
    let item = &list["items"][0];
    assert_eq!(
        decrypt(&key, item["encryptedSubject"].as_str().ok_or("s")?, kid)?,
        FULL_FIELDS[0].1
    );
    let (status, admin_dto) = f
        .admin(
            reqwest::Method::GET,
            "/admin/calendar/bookings/enc-1/dto",
            None,
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        decrypt(&key, admin_dto["callURI"].as_str().ok_or("c")?, kid)?,
        "sip:call@webex.sim.invalid"
    );
    // Field set and order.
    let keys: Vec<&str> = dto
        .as_object()
        .ok_or("object")?
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "seriesId",
            "start",
            "durationMinutes",
            "organizer",
            "encryptedOrganizerName",
            "encryptedOrganizerEmail",
            "encryptionKeyUrl",
            "encryptedSubject",
            "encryptedLocation",
            "meetingJoinType",
            "meetingJoinInfo",
            "webexURI",
            "webexURL",
            "spaceURI",
            "spaceURL",
            "callURI",
            "isRecurring",
            "links"
        ]
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn plaintext_bookings_carry_plain_fields() -> Result {
    let f = fixture_with(Scenario::from_toml_str("bookings = []\n")?).await?;
    f.sim.calendar_create(
        full_spec("plain-1", "2030-01-01T09:00:00.000Z", false),
        EventMode::None,
    )?;
    f.sim.calendar_create(
        BookingSpec {
            id: Some("bare".into()),
            start: Some("2030-01-01T12:00:00.000Z".into()),
            start_in_mins: None,
            encrypted: false,
            join_type: "SIP".into(),
            ..BookingSpec::new("No join info", 0)
        },
        EventMode::None,
    )?;
    let list = f
        .get(&format!("{}/calendarEvents?{WIDE}", f.calendar()))
        .await?
        .body;
    let dto = &list["items"][0];
    for (path, want) in FULL_FIELDS {
        assert_eq!(
            dto.pointer(path).and_then(Value::as_str),
            Some(want),
            "{path}"
        );
    }
    assert_eq!(
        dto["encryptionKeyUrl"],
        "kms://kms.sim.invalid/keys/default"
    );
    let organizer = f.sim.calendar_booking("bare").ok_or("bare")?.organizer_id;
    assert_eq!(
        list["items"][1],
        json!({
            "id": "bare",
            "start": "2030-01-01T12:00:00.000Z",
            "durationMinutes": 30,
            "organizer": organizer,
            "encryptedOrganizerName": "Sim Organizer",
            "encryptedOrganizerEmail": "organizer@sim.invalid",
            "encryptionKeyUrl": "kms://kms.sim.invalid/keys/default",
            "encryptedSubject": "No join info",
            "meetingJoinType": "SIP",
            "isRecurring": false,
            "links": [{"href": format!("https://calendar.sim.invalid/calendar/api/v1/calendarEvents/{}", b64url(b"bare")),
                       "rel": "self"}],
        })
    );
    // Ground truth.
    let (_, truth) = f
        .admin(reqwest::Method::GET, "/admin/calendar/bookings", None)
        .await?;
    assert_eq!(truth[0]["title"], FULL_FIELDS[0].1);
    assert_eq!(truth[0]["obtp_eligible"], true);
    assert_eq!(truth[0]["join_uri"], "123456@webex.sim.invalid");
    assert_eq!(truth[0]["end"], "2030-01-01T09:45:00.000Z");
    assert_eq!(truth[1]["obtp_eligible"], false);
    assert_eq!(truth[1]["join_uri"], Value::Null);
    assert_eq!(truth[1]["encrypted"], false);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn kms_key_missing_is_404_then_back() -> Result {
    let f = fixture().await?;
    f.sim
        .calendar_create(BookingSpec::new("Secret", 5), EventMode::None)?;
    let uri = f.sim.kms_key_url("default");
    let k = f.key(&uri).await?;
    let (status, key) = f
        .admin(
            reqwest::Method::POST,
            "/admin/kms/keys",
            Some(json!({"name": "default", "missing": true})),
        )
        .await?;
    assert_eq!((status, key["missing"].clone()), (200, json!(true)));
    let a = f.kms(&uri).await?;
    assert_eq!(
        (a.status, a.body),
        (404, json!({"message": "key not found"}))
    );
    // The calendar keeps serving the (now undecryptable) booking.
    let list = f
        .get(&format!("{}/calendarEvents?{WIDE}", f.calendar()))
        .await?;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    f.sim.kms_set_missing("default", false)?;
    assert_eq!(f.key(&uri).await?, k, "a key never changes");
    // Unknown keys, other schemes, no uri, no token.
    for bad in [
        "kms://kms.sim.invalid/keys/nope",
        "default",
        "https://kms.sim.invalid/keys/default",
    ] {
        assert_eq!(f.kms(bad).await?.status, 404, "{bad}");
    }
    let a = f
        .get(&format!("{}/kms/keys", f.sim.service_base_url()))
        .await?;
    assert_eq!(a.status, 400);
    let resp = f
        .http
        .get(format!("{}/kms/keys", f.sim.service_base_url()))
        .query(&[("uri", &uri)])
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    // New keys at run time; unknown names cannot be marked missing through the handle.
    let (status, added) = f
        .admin(
            reqwest::Method::POST,
            "/admin/kms/keys",
            Some(json!({"name": "late"})),
        )
        .await?;
    assert_eq!(
        (status, added["uri"].clone()),
        (200, json!("kms://kms.sim.invalid/keys/late"))
    );
    assert_eq!(
        b64url(&f.key("kms://kms.sim.invalid/keys/late").await?),
        added["k"]
    );
    assert!(f.sim.kms_set_missing("never", true).is_err());
    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/kms/keys",
            Some(json!({"name": "a/b"})),
        )
        .await?;
    assert_eq!(status, 400);
    let names: Vec<String> = f.sim.kms_keys().into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["default", "late"]);
    // An unknown key for a booking is refused.
    let (status, err) = f
        .admin(
            reqwest::Method::POST,
            "/admin/calendar/bookings",
            Some(json!({"title": "x", "start_in_mins": 1, "key": "nope"})),
        )
        .await?;
    assert_eq!(status, 400, "{err}");
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn page_three_fails_once() -> Result {
    let f = fixture_with(Scenario::from_toml_str("bookings = []\n")?).await?;
    let created = f.sim.calendar_bulk(BulkSpec {
        encrypted: false,
        ..BulkSpec::new(35)
    })?;
    let (status, armed) = f
        .admin(
            reqwest::Method::POST,
            "/admin/calendar/faults",
            Some(json!({"fail_page": 3, "status": 500, "count": 1})),
        )
        .await?;
    assert_eq!(status, 200, "{armed}");
    let mut url = Some(format!(
        "{}/calendarEvents?max=10&offset=0&{WIDE}",
        f.calendar()
    ));
    let mut seen = Vec::new();
    let mut statuses = Vec::new();
    while let Some(u) = url.take() {
        let a = f.get(&u).await?;
        statuses.push(a.status);
        if a.status == 500 {
            assert_eq!(
                a.body,
                json!({"message": "Internal Server Error (fault injected by roomd-sim)"})
            );
            assert!(u.contains("offset=20"), "{u}");
            url = Some(u); // retry the same page
            continue;
        }
        seen.extend(ids(a.body["items"].as_array().ok_or("items")?));
        url = a.link.as_deref().map(next_url).transpose()?;
    }
    assert_eq!(statuses, [200, 200, 500, 200, 200]);
    assert_eq!(seen, created);
    assert!(f.sim.calendar_faults().is_empty());
    // Through the handle: twice, with Retry-After; page 1 with max=50 is offset 0..49.
    f.sim.calendar_page_fault(PageFault {
        retry_after: Some(3),
        ..PageFault::new(1, 503, 2)
    })?;
    for _ in 0..2 {
        let resp = f
            .http
            .get(format!("{}/calendarEvents?offset=49", f.calendar()))
            .bearer_auth(&f.token)
            .send()
            .await?;
        assert_eq!(resp.status(), 503);
        assert_eq!(
            resp.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"3"[..])
        );
    }
    assert_eq!(
        f.get(&format!("{}/calendarEvents", f.calendar()))
            .await?
            .status,
        200
    );
    f.sim.calendar_fail_page(2, 500, 5)?;
    let (_, listed) = f
        .admin(reqwest::Method::GET, "/admin/calendar/faults", None)
        .await?;
    assert_eq!(listed, json!([{"fail_page": 2, "status": 500, "count": 5}]));
    let (status, _) = f
        .admin(reqwest::Method::DELETE, "/admin/calendar/faults", None)
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        f.get(&format!("{}/calendarEvents?max=10&offset=10", f.calendar()))
            .await?
            .status,
        200
    );
    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/calendar/faults",
            Some(json!({"fail_page": 0, "status": 500})),
        )
        .await?;
    assert_eq!(status, 400);
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn admin_changes_emit_mercury_events() -> Result {
    let f = fixture_with(Scenario::from_toml_str("bookings = []\n")?).await?;
    let mut ws = f.online().await?;
    let kid = f.sim.kms_key_url("default");
    let key = f.key(&kid).await?;

    // Create, full: the DTO as the service serves it.
    let (status, made) = f
        .admin(
            reqwest::Method::POST,
            "/admin/calendar/bookings",
            Some(
                json!({"id": "m-1", "title": "Design review", "start": "2030-01-01T09:00:00.000Z",
                        "webex_uri": "m1@webex.sim.invalid", "location": "Room 1"}),
            ),
        )
        .await?;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["eventType"], "calendar.meeting.create");
    assert_eq!(made["booking"]["id"], "m-1");
    assert_eq!(made["undelivered"], json!([]));
    let ev = next_json(&mut ws).await?;
    assert_eq!(ev["id"], made["delivered"][0]["id"]);
    assert_eq!(ev["sequenceNumber"], 2);
    assert_eq!(ev["data"]["eventType"], "calendar.meeting.create");
    let dto = &ev["data"]["calendarMeetingExternal"];
    assert_eq!(dto["id"], "m-1");
    assert_eq!(dto["start"], "2030-01-01T09:00:00.000Z");
    assert_eq!(
        decrypt(&key, dto["encryptedSubject"].as_str().ok_or("s")?, &kid)?,
        "Design review"
    );
    assert_eq!(
        decrypt(&key, dto["webexURI"].as_str().ok_or("w")?, &kid)?,
        "m1@webex.sim.invalid"
    );

    // Create, minimal: id and start only; the client then fetches the DTO.
    let (_, made) = f
        .admin(
            reqwest::Method::POST,
            "/admin/calendar/bookings",
            Some(json!({"title": "Minimal", "start": "2030-01-01T10:00:00.000Z", "event": "minimal"})),
        )
        .await?;
    let id = made["booking"]["id"].as_str().ok_or("id")?.to_owned();
    assert_eq!(id.len(), 36, "a new uuid");
    let ev = next_json(&mut ws).await?;
    assert_eq!(ev["sequenceNumber"], 3);
    assert_eq!(
        ev["data"],
        json!({"eventType": "calendar.meeting.create.minimal",
               "calendarMeetingExternal": {"id": id, "start": "2030-01-01T10:00:00.000Z"}})
    );
    let fetched = f
        .get(&format!(
            "{}/calendarEvents/{}?compact=true",
            f.calendar(),
            b64url(id.as_bytes())
        ))
        .await?;
    assert_eq!(
        decrypt(
            &key,
            fetched.body["encryptedSubject"].as_str().ok_or("s")?,
            &kid
        )?,
        "Minimal"
    );

    // Update, full (through the handle), then minimal (admin PATCH).
    let patch = BookingPatch {
        title: Some("Design review (moved)".into()),
        start: Some("2030-01-01T09:30:00.000Z".into()),
        location: Some(None),
        ..BookingPatch::default()
    };
    let changed = f.sim.calendar_update("m-1", patch, EventMode::Full)?;
    assert_eq!(
        changed.event_type.as_deref(),
        Some("calendar.meeting.update")
    );
    assert_eq!(changed.booking.location, None);
    let ev = next_json(&mut ws).await?;
    assert_eq!(ev["id"].as_str(), Some(changed.delivered[0].id.as_str()));
    assert_eq!(ev["data"]["eventType"], "calendar.meeting.update");
    let dto = &ev["data"]["calendarMeetingExternal"];
    assert_eq!(dto["start"], "2030-01-01T09:30:00.000Z");
    assert_eq!(dto.get("encryptedLocation"), None);
    assert_eq!(
        decrypt(&key, dto["encryptedSubject"].as_str().ok_or("s")?, &kid)?,
        "Design review (moved)"
    );
    let (status, _) = f
        .admin(
            reqwest::Method::PATCH,
            "/admin/calendar/bookings/m-1",
            Some(json!({"duration_mins": 90, "event": "minimal"})),
        )
        .await?;
    assert_eq!(status, 200);
    let ev = next_json(&mut ws).await?;
    assert_eq!(
        ev["data"],
        json!({"eventType": "calendar.meeting.update.minimal",
               "calendarMeetingExternal": {"id": "m-1", "start": "2030-01-01T09:30:00.000Z"}})
    );

    // No event: nothing is sent, so the delete that follows is the very next frame (seq + 1).
    let quiet = f.sim.calendar_update(
        "m-1",
        BookingPatch {
            title: Some("Silent change".into()),
            ..BookingPatch::default()
        },
        EventMode::None,
    )?;
    assert_eq!((quiet.event_type, quiet.delivered.len()), (None, 0));
    let (status, deleted) = f
        .admin(
            reqwest::Method::DELETE,
            &format!("/admin/calendar/bookings/{id}"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(deleted["eventType"], "calendar.meeting.delete");
    let ev = next_json(&mut ws).await?;
    assert_eq!(ev["sequenceNumber"], 6);
    assert_eq!(
        ev["data"],
        json!({"eventType": "calendar.meeting.delete", "calendarMeetingExternal": {"id": id}})
    );
    let (status, _) = f
        .admin(
            reqwest::Method::DELETE,
            "/admin/calendar/bookings/m-1?event=none",
            None,
        )
        .await?;
    assert_eq!(status, 200);
    // Errors: unknown id, taken id, minimal delete, bad event, unknown field.
    for (method, path, body, want) in [
        (
            reqwest::Method::DELETE,
            "/admin/calendar/bookings/m-1",
            None,
            404,
        ),
        (
            reqwest::Method::PATCH,
            "/admin/calendar/bookings/nope",
            Some(json!({"title": "x"})),
            404,
        ),
        (
            reqwest::Method::POST,
            "/admin/calendar/bookings",
            Some(json!({"title": "x"})),
            400,
        ),
        (
            reqwest::Method::POST,
            "/admin/calendar/bookings",
            Some(json!({"title": "x", "start_in_mins": 1, "event": "loud"})),
            400,
        ),
        (
            reqwest::Method::POST,
            "/admin/calendar/bookings",
            Some(json!({"title": "x", "start_in_mins": 1, "colour": "red"})),
            400,
        ),
    ] {
        let (status, body) = f.admin(method, path, body).await?;
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["error"].is_string());
    }
    f.sim.calendar_create(
        BookingSpec {
            id: Some("dup".into()),
            ..BookingSpec::new("x", 1)
        },
        EventMode::None,
    )?;
    let (status, _) = f
        .admin(
            reqwest::Method::POST,
            "/admin/calendar/bookings",
            Some(json!({"id": "dup", "title": "x", "start_in_mins": 1, "event": "none"})),
        )
        .await?;
    assert_eq!(status, 409);
    assert!(f.sim.calendar_delete("dup", EventMode::Minimal).is_err());
    // The deletes went out; what is left is the ground truth.
    let left: Vec<String> = f
        .sim
        .calendar_bookings()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(left, ["dup"]);
    // Nothing else was delivered: 5 calendar events after the buffer state.
    let delivered = f.sim.mercury_delivered(Some(&f.device));
    let types: Vec<&str> = delivered.iter().map(|d| d.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "mercury.buffer_state",
            "calendar.meeting.create",
            "calendar.meeting.create.minimal",
            "calendar.meeting.update",
            "calendar.meeting.update.minimal",
            "calendar.meeting.delete",
        ]
    );
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn bulk_ten_thousand_is_fast() -> Result {
    let f = fixture_with(Scenario::from_toml_str("bookings = []\n")?).await?;
    let began = Instant::now();
    let (status, out) = f
        .admin(
            reqwest::Method::POST,
            "/admin/calendar/bookings/bulk",
            Some(
                json!({"count": 10_000, "start_in_mins": -60, "spacing_mins": 0,
                        "encrypted": true, "event": "none"}),
            ),
        )
        .await?;
    let took = began.elapsed();
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["ids"].as_array().map(Vec::len), Some(10_000));
    // How fast is for the benchmark (benches/calendar.rs); here only that it completes.
    eprintln!("bulk of 10 000 took {took:?}");
    let began = Instant::now();
    let more = f.sim.calendar_bulk(BulkSpec {
        start_in_mins: 600,
        encrypted: false,
        ..BulkSpec::new(10_000)
    })?;
    assert_eq!(more.len(), 10_000);
    eprintln!("second bulk of 10 000 took {:?}", began.elapsed());
    assert_eq!(f.sim.calendar_bookings().len(), 20_000);

    // Paging the first 10 000 (same start: id order) at the cap of 200: 50 pages.
    let mut created: Vec<String> = serde_json::from_value(out["ids"].clone())?;
    created.sort();
    let began = Instant::now();
    let pages = f
        .all_pages(&format!(
            "{}/calendarEvents?max=200&offset=0&fromDate=2000-01-01T00:00:00.000Z&toDate={}",
            f.calendar(),
            f.sim.calendar_bookings()[10_000].start
        ))
        .await?;
    let took = began.elapsed();
    assert_eq!(pages.len(), 50);
    let seen: Vec<String> = pages.iter().flat_map(|p| ids(p)).collect();
    assert_eq!(seen, created);
    eprintln!("paging 10 000 took {took:?}");
    assert_eq!(f.sim.calendar_clear(), 20_000);
    let (_, listed) = f
        .admin(reqwest::Method::GET, "/admin/calendar/bookings", None)
        .await?;
    assert_eq!(listed, json!([]));
    f.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn scenario_bookings_are_served_and_survive_unrelated_changes() -> Result {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/default.toml");
    let f = fixture_with(Scenario::from_path(&path)?).await?;
    let truth = f.sim.calendar_bookings();
    assert_eq!(truth.len(), 3);
    assert_eq!(
        truth[0].join_uri.as_deref(),
        Some("weekly-sync@webex.sim.invalid")
    );
    assert_eq!(truth[1].join_type, "TEAMS");
    assert_eq!(
        truth[1].join_uri.as_deref(),
        Some("partner-review@teams.sim.invalid")
    );
    assert!(!truth[2].obtp_eligible);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let in_10 = i128::from(truth[0].start_ms) - now as i128;
    assert!((9 * 60_000..=10 * 60_000).contains(&in_10), "{in_10}");
    let list = f
        .get(&format!("{}/calendarEvents?{WIDE}", f.calendar()))
        .await?
        .body;
    assert_eq!(
        ids(list["items"].as_array().ok_or("items")?),
        truth.iter().map(|b| b.id.clone()).collect::<Vec<_>>()
    );
    // A scenario change elsewhere keeps the bookings (and their generated ids).
    let mut scenario = f.sim.scenario();
    scenario.gds.service_state = "degraded".into();
    f.sim.set_scenario(scenario.clone())?;
    assert_eq!(f.sim.calendar_bookings(), truth);
    // New bookings replace them; keys stay.
    let k = f.sim.kms_keys();
    scenario.bookings = vec![BookingSpec {
        id: Some("only".into()),
        ..BookingSpec::new("Only", 5)
    }];
    let (status, _) = f
        .admin(
            reqwest::Method::PUT,
            "/admin/scenario",
            Some(serde_json::to_value(&scenario)?),
        )
        .await?;
    assert_eq!(status, 200);
    let ids: Vec<String> = f
        .sim
        .calendar_bookings()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(ids, ["only"]);
    assert_eq!(f.sim.kms_keys(), k);
    f.sim.shutdown().await;
    Ok(())
}
