//! WDM, device registration (wire profile §2): `POST /wdm/api/v1/devices` registers, `GET`/`PUT`/`DELETE`
//! on the returned `url` read, refresh (`If-None-Match` → 304) and unregister. Bearer-protected.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Map, Value, json};

use crate::auth::Grant;
use crate::clock::iso8601_millis;
use crate::scenario::{FeatureToggle, WdmFeatures};
use crate::state::{AppState, lock};

#[derive(Debug, Clone)]
struct Device {
    id: String,
    device_identifier: String,
    user_id: String,
    org_id: String,
    /// The last registration body (POST or PUT).
    registration: Map<String, Value>,
    features: Value,
    etag: u64,
    created: SystemTime,
    modified: SystemTime,
    /// `url` as of the last registration (for the admin listing).
    url: String,
}

#[derive(Debug, Default)]
struct Inner {
    devices: BTreeMap<String, Device>,
    last_etag: u64,
}

impl Inner {
    fn next_etag(&mut self) -> u64 {
        self.last_etag += 1;
        self.last_etag
    }
}

/// Registered devices.
#[derive(Debug, Default)]
pub(crate) struct WdmStore {
    inner: Mutex<Inner>,
}

impl WdmStore {
    /// Every device as the service would answer it, by id.
    pub(crate) fn list(&self, ws_base: &str) -> Vec<Value> {
        let inner = lock(&self.inner);
        inner
            .devices
            .values()
            .map(|d| d.to_json(&d.url, ws_base))
            .collect()
    }

    /// Whether `id` is a registered device (mercury's 4403 check).
    pub(crate) fn contains(&self, id: &str) -> bool {
        lock(&self.inner).devices.contains_key(id)
    }

    /// Ids of every registered device.
    pub(crate) fn ids(&self) -> Vec<String> {
        lock(&self.inner).devices.keys().cloned().collect()
    }

    pub(crate) fn delete(&self, id: &str) -> bool {
        lock(&self.inner).devices.remove(id).is_some()
    }

    /// Replaces the features of every device, giving each a new etag.
    pub(crate) fn set_features(&self, features: &WdmFeatures) {
        let rendered = render_features(features, SystemTime::now());
        let mut inner = lock(&self.inner);
        let ids: Vec<String> = inner.devices.keys().cloned().collect();
        for id in ids {
            let etag = inner.next_etag();
            if let Some(d) = inner.devices.get_mut(&id) {
                d.features = rendered.clone();
                d.etag = etag;
                d.modified = SystemTime::now();
            }
        }
    }
}

impl Device {
    fn to_json(&self, url: &str, ws_base: &str) -> Value {
        let mut body = self.registration.clone();
        let fields = [
            ("url", json!(url)),
            (
                "webSocketUrl",
                json!(format!(
                    "{ws_base}/mercury/registrations/{}/messages",
                    self.id
                )),
            ),
            ("deviceIdentifier", json!(self.device_identifier)),
            ("userId", json!(self.user_id)),
            ("orgId", json!(self.org_id)),
            ("features", self.features.clone()),
            ("creationTime", json!(iso8601_millis(self.created))),
            ("modificationTime", json!(iso8601_millis(self.modified))),
        ];
        for (k, v) in fields {
            body.insert(k.to_owned(), v);
        }
        Value::Object(body)
    }
}

/// Features as WDM answers them: `{developer:[{key,val,mutable,type,lastModified}],...}`.
pub(crate) fn render_features(f: &WdmFeatures, at: SystemTime) -> Value {
    let when = iso8601_millis(at);
    let group = |items: &[FeatureToggle], kind: &str| -> Value {
        items
            .iter()
            .map(|t| {
                json!({
                    "key": t.key,
                    "val": t.val,
                    "mutable": t.mutable,
                    "type": t.kind.as_deref().unwrap_or(kind),
                    "lastModified": when,
                })
            })
            .collect()
    };
    json!({
        "developer": group(&f.developer, "DEV"),
        "entitlement": group(&f.entitlement, "ENTITLEMENT"),
        "user": group(&f.user, "USER"),
    })
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/devices", post(register))
        .route("/devices/{id}", get(get_device).put(refresh).delete(delete))
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "message": "device not found" })),
    )
        .into_response()
}

fn bad_request(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "message": msg }))).into_response()
}

/// `https://<authority the client used>`: the URI's authority (HTTP/2) or the Host header (HTTP/1.1).
fn authority_of(req_uri: &axum::http::Uri, headers: &HeaderMap, fallback: &str) -> String {
    req_uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| fallback.to_owned())
}

fn device_url(authority: &str, id: &str) -> String {
    format!("https://{authority}/wdm/api/v1/devices/{id}")
}

fn ws_base(app: &AppState) -> String {
    format!("wss://localhost:{}", app.sim.endpoints.proxy_port)
}

fn with_etag(status: StatusCode, etag: u64, body: Value) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// The registration body and its `deviceIdentifier`; `Err` is the 400 message.
fn parse_registration(body: &[u8]) -> Result<(Map<String, Value>, String), &'static str> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Err("body must be a JSON object");
    };
    let Some(identifier) = map
        .get("deviceIdentifier")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
    else {
        return Err("deviceIdentifier is required");
    };
    Ok((map, identifier))
}

async fn register(
    State(app): State<AppState>,
    Extension(grant): Extension<Grant>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, crate::recorder::MAX_BODY_BYTES).await else {
        return bad_request("body unreadable");
    };
    let (registration, identifier) = match parse_registration(&body) {
        Ok(r) => r,
        Err(msg) => return bad_request(msg),
    };
    let authority = authority_of(&parts.uri, &parts.headers, "localhost");
    let features = app
        .sim
        .with_scenario(|s| render_features(&s.wdm.features, SystemTime::now()));
    let now = SystemTime::now();
    let mut inner = lock(&app.sim.wdm.inner);
    let etag = inner.next_etag();
    let existing = inner
        .devices
        .values()
        .find(|d| d.device_identifier == identifier)
        .map(|d| d.id.clone());
    let device = match existing.and_then(|id| inner.devices.get_mut(&id)) {
        Some(d) => {
            d.registration = registration;
            d.etag = etag;
            d.modified = now;
            d.org_id = grant.org_id;
            d.url = device_url(&authority, &d.id);
            d.clone()
        }
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            let d = Device {
                url: device_url(&authority, &id),
                id: id.clone(),
                device_identifier: identifier,
                user_id: uuid::Uuid::new_v4().to_string(),
                org_id: grant.org_id,
                registration,
                features,
                etag,
                created: now,
                modified: now,
            };
            inner.devices.insert(id, d.clone());
            d
        }
    };
    drop(inner);
    tracing::info!(id = %device.id, etag, "wdm device registered");
    with_etag(
        StatusCode::OK,
        etag,
        device.to_json(&device.url, &ws_base(&app)),
    )
}

async fn get_device(State(app): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let Some(d) = lock(&app.sim.wdm.inner).devices.get(&id).cloned() else {
        return not_found();
    };
    let authority = authority_of(req.uri(), req.headers(), "localhost");
    with_etag(
        StatusCode::OK,
        d.etag,
        d.to_json(&device_url(&authority, &d.id), &ws_base(&app)),
    )
}

/// Compares an `If-None-Match` value with our etag, ignoring quotes and a weak `W/` prefix.
fn etag_matches(if_none_match: &str, etag: u64) -> bool {
    let want = etag.to_string();
    if_none_match.split(',').any(|t| {
        let t = t.trim();
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.trim_matches('"') == want
    })
}

async fn refresh(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let mut inner = lock(&app.sim.wdm.inner);
    let Some(current) = inner.devices.get(&id) else {
        return not_found();
    };
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, current.etag));
    if unchanged {
        let etag = current.etag;
        drop(inner);
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        return resp;
    }
    let (registration, _identifier) = match parse_registration(&body) {
        Ok(r) => r,
        Err(msg) => return bad_request(msg),
    };
    let etag = inner.next_etag();
    let Some(d) = inner.devices.get_mut(&id) else {
        return not_found();
    };
    d.registration = registration;
    d.etag = etag;
    d.modified = SystemTime::now();
    let d = d.clone();
    drop(inner);
    let authority = authority_of(&uri, &headers, "localhost");
    with_etag(
        StatusCode::OK,
        etag,
        d.to_json(&device_url(&authority, &d.id), &ws_base(&app)),
    )
}

async fn delete(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    if app.sim.wdm.delete(&id) {
        tracing::info!(%id, "wdm device unregistered");
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_comparison() {
        assert!(etag_matches("\"7\"", 7));
        assert!(etag_matches("7", 7));
        assert!(etag_matches("W/\"7\"", 7));
        assert!(etag_matches("\"1\", \"7\"", 7));
        assert!(!etag_matches("\"8\"", 7));
    }

    #[test]
    fn features_render_with_group_types() {
        let f = render_features(&WdmFeatures::default(), std::time::UNIX_EPOCH);
        assert_eq!(f["developer"][0]["key"], "roomd-obtp");
        assert_eq!(f["developer"][0]["val"], "true");
        assert_eq!(f["developer"][0]["type"], "DEV");
        assert_eq!(f["developer"][1]["val"], "50");
        assert_eq!(f["entitlement"][0]["type"], "ENTITLEMENT");
        assert_eq!(f["user"][0]["val"], "dark");
        assert_eq!(f["user"][0]["mutable"], true);
        assert_eq!(f["user"][0]["lastModified"], "1970-01-01T00:00:00.000Z");
    }
}
