//! The admin API: plain HTTP on loopback, JSON in and out. Tests and people steer the simulated cloud
//! with it (scenario, GDS state, faults, mercury events) and read back what it received (requests,
//! WebSocket frames and acks, datagrams).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::alt::AltMode;
use crate::faults::Fault;
use crate::mercury::{self, PongMode};
use crate::scenario::{MAX_AUTH_TIMEOUT_SECS, Scenario, WdmFeatures};
use crate::server::SimInfo;
use crate::state::SimState;

#[derive(Debug, Clone)]
pub(crate) struct AdminState {
    pub sim: Arc<SimState>,
    pub info: Arc<SimInfo>,
}

/// An admin error: a status and a message, answered as `{"error": message}`.
#[derive(Debug)]
struct AdminError(StatusCode, String);

impl AdminError {
    fn bad_request(e: impl std::fmt::Display) -> Self {
        Self(StatusCode::BAD_REQUEST, e.to_string())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type AdminResult = Result<Json<Value>, AdminError>;

/// Parses a JSON body ourselves so every client error is a JSON message naming the problem.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body)
        .map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))
}

fn ok() -> Json<Value> {
    Json(json!({ "ok": true }))
}

pub(crate) fn router(state: AdminState) -> Router {
    Router::new()
        .route("/admin/health", get(|| async { ok() }))
        .route("/admin/info", get(info))
        .route("/admin/scenario", get(get_scenario).put(put_scenario))
        .route("/admin/gds", get(get_gds).post(post_gds))
        .route(
            "/admin/faults",
            get(list_faults).post(arm_fault).delete(clear_faults),
        )
        .route("/admin/requests", get(list_requests).delete(clear_requests))
        .route("/admin/events", post(push_event))
        .route("/admin/ws", get(ws_status))
        .route(
            "/admin/ws/received",
            get(ws_received).delete(clear_ws_received),
        )
        .route("/admin/ws/close", post(ws_close))
        .route("/admin/mercury/events", post(mercury_events))
        .route("/admin/mercury/raw", post(mercury_raw))
        .route("/admin/mercury/shutdown", post(mercury_shutdown))
        .route("/admin/mercury/pongs", get(get_pongs).post(post_pongs))
        .route("/admin/mercury/stall", post(mercury_stall))
        .route("/admin/mercury/skip-sequence", post(mercury_skip))
        .route(
            "/admin/mercury/auth-timeout",
            get(get_auth_timeout).put(put_auth_timeout),
        )
        .route(
            "/admin/mercury/feature-toggle",
            post(mercury_feature_toggle),
        )
        .route("/admin/mercury/connections", get(mercury_connections))
        .route(
            "/admin/mercury/received",
            get(mercury_received).delete(clear_ws_received),
        )
        .route("/admin/mercury/delivered", get(mercury_delivered))
        .route("/admin/mercury/acks", get(mercury_acks))
        .route("/admin/mercury/close", post(ws_close))
        .route("/admin/udp", get(list_udp).delete(clear_udp))
        .route("/admin/hosts/alt", get(get_alt).post(post_alt))
        .route("/admin/restart", post(post_restart))
        .route("/admin/activations", get(list_activations))
        .route("/admin/activation/reset", post(reset_activation))
        .route("/admin/tokens", get(list_tokens))
        .route("/admin/tokens/expire-access", post(expire_access))
        .route("/admin/tokens/revoke-refresh", post(revoke_refresh))
        .route("/admin/wdm/devices", get(list_wdm_devices))
        .route("/admin/wdm/devices/{id}", delete(delete_wdm_device))
        .route("/admin/wdm/features", put(put_wdm_features))
        .fallback(|| async { AdminError(StatusCode::NOT_FOUND, "no such admin route".to_owned()) })
        .with_state(state)
}

async fn info(State(s): State<AdminState>) -> Json<SimInfo> {
    Json((*s.info).clone())
}

async fn get_scenario(State(s): State<AdminState>) -> Json<Scenario> {
    Json(s.sim.scenario())
}

/// Replaces the whole scenario; answers the scenario now in force.
async fn put_scenario(
    State(s): State<AdminState>,
    body: Bytes,
) -> Result<Json<Scenario>, AdminError> {
    let text = std::str::from_utf8(&body).map_err(AdminError::bad_request)?;
    let scenario =
        Scenario::from_json_str(text).map_err(|e| AdminError::bad_request(format!("{e:#}")))?;
    s.sim.replace_scenario(scenario.clone());
    tracing::info!("scenario replaced through the admin API");
    Ok(Json(scenario))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GdsChange {
    service_state: String,
}

async fn get_gds(State(s): State<AdminState>) -> Json<Value> {
    let state = s.sim.with_scenario(|sc| sc.gds.service_state.clone());
    Json(json!({ "serviceState": state }))
}

async fn post_gds(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let change: GdsChange = parse(&body)?;
    if change.service_state.trim().is_empty() {
        return Err(AdminError::bad_request("serviceState must not be empty"));
    }
    s.sim.set_gds_state(&change.service_state);
    tracing::info!(state = %change.service_state, "GDS state changed");
    Ok(Json(json!({ "serviceState": change.service_state })))
}

async fn list_faults(State(s): State<AdminState>) -> Json<Vec<Fault>> {
    Json(s.sim.faults.list())
}

async fn arm_fault(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let fault: Fault = parse(&body)?;
    s.sim
        .faults
        .arm(fault.clone())
        .map_err(AdminError::bad_request)?;
    tracing::info!(path = %fault.path, status = fault.status, count = fault.count, "fault armed");
    Ok(Json(json!({ "armed": fault })))
}

async fn clear_faults(State(s): State<AdminState>) -> Json<Value> {
    s.sim.faults.clear();
    ok()
}

#[derive(Debug, Deserialize)]
struct RequestFilter {
    /// Only requests with exactly this path.
    path: Option<String>,
}

async fn list_requests(
    State(s): State<AdminState>,
    Query(filter): Query<RequestFilter>,
) -> Json<Value> {
    let mut requests = s.sim.requests.snapshot();
    if let Some(path) = filter.path {
        requests.retain(|r| r.path == path);
    }
    Json(json!(requests))
}

async fn clear_requests(State(s): State<AdminState>) -> Json<Value> {
    s.sim.requests.clear();
    ok()
}

/// Sends the body, exactly as posted, as one text frame to the online mercury socket of every
/// registration.
async fn push_event(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let _: Value = parse(&body)?;
    let text = std::str::from_utf8(&body).map_err(AdminError::bad_request)?;
    let delivered = mercury::push_raw(&s.sim, None, text).len();
    Ok(Json(json!({ "delivered": delivered })))
}

async fn ws_status(State(s): State<AdminState>) -> Json<Value> {
    Json(json!({ "connected": s.sim.mercury.open_count() }))
}

async fn ws_received(State(s): State<AdminState>) -> Json<Vec<String>> {
    Json(
        s.sim
            .mercury
            .received()
            .into_iter()
            .map(|f| f.text)
            .collect(),
    )
}

async fn clear_ws_received(State(s): State<AdminState>) -> Json<Value> {
    s.sim.mercury.clear_received();
    ok()
}

/// A body that may be empty: empty means `{}`.
fn parse_or_default<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        parse(b"{}")
    } else {
        parse(body)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseRequest {
    #[serde(default = "normal_closure")]
    code: u16,
    #[serde(default)]
    reason: String,
    /// Drop the connections without a close frame instead (the client sees 1006).
    #[serde(default)]
    abort: bool,
    /// Only this connection id; all open ones when absent.
    #[serde(default)]
    connection: Option<u64>,
}

fn normal_closure() -> u16 {
    1000
}

async fn ws_close(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let req: CloseRequest = parse_or_default(&body)?;
    let closed = if req.abort {
        s.sim.mercury.abort(req.connection)
    } else {
        s.sim
            .mercury
            .close(req.connection, req.code, &req.reason)
            .map_err(AdminError::bad_request)?
    };
    Ok(Json(json!({ "closed": closed })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsRequest {
    /// One event's `data` (`{"eventType":..,..}`).
    data: Option<Value>,
    /// Several, in order: each a `data` object, or `{"data":{..}}`.
    events: Option<Vec<Value>>,
    /// Only this registration (WDM device id); every registration when absent.
    registration: Option<String>,
}

/// `{"data":{..}}` in a batch is unwrapped; a bare data object is taken as is.
fn unwrap_data(v: Value) -> Value {
    match v {
        Value::Object(mut m) if !m.contains_key("eventType") && m.contains_key("data") => {
            m.remove("data").unwrap_or(Value::Null)
        }
        other => other,
    }
}

async fn mercury_events(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let req: EventsRequest = parse(&body)?;
    let datas = match (req.data, req.events) {
        (Some(d), None) => vec![d],
        (None, Some(list)) => list.into_iter().map(unwrap_data).collect(),
        _ => {
            return Err(AdminError::bad_request(
                "give exactly one of data or events",
            ));
        }
    };
    let out = mercury::push(&s.sim, req.registration.as_deref(), &datas)
        .map_err(|e| AdminError::bad_request(format!("{e:#}")))?;
    Ok(Json(json!(out)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    /// Sent byte for byte.
    text: Option<String>,
    /// Build a valid event frame of exactly this many bytes instead.
    oversized_bytes: Option<usize>,
    /// The oversized frame's `trackingId` (default `roomd-sim_<uuid>`).
    #[serde(rename = "trackingId")]
    tracking_id: Option<String>,
    registration: Option<String>,
}

async fn mercury_raw(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let req: RawRequest = parse(&body)?;
    let registration = req.registration.as_deref();
    let connections = match (req.text, req.oversized_bytes) {
        (Some(text), None) => mercury::push_raw(&s.sim, registration, &text),
        (None, Some(n)) => {
            mercury::push_oversized(&s.sim, registration, n, req.tracking_id.as_deref())
                .map_err(|e| AdminError::bad_request(format!("{e:#}")))?
        }
        _ => {
            return Err(AdminError::bad_request(
                "give exactly one of text or oversized_bytes",
            ));
        }
    };
    Ok(Json(json!({ "connections": connections })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Selector {
    registration: Option<String>,
}

async fn mercury_shutdown(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let req: Selector = parse_or_default(&body)?;
    let sent = s.sim.mercury.shutdown(req.registration.as_deref());
    Ok(Json(json!({ "shutdown": sent })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PongRequest {
    mode: String,
}

async fn get_pongs(State(s): State<AdminState>) -> Json<Value> {
    Json(json!({ "mode": s.sim.mercury.pong_mode().as_str() }))
}

async fn post_pongs(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let req: PongRequest = parse(&body)?;
    let mode = PongMode::parse(&req.mode).map_err(AdminError::bad_request)?;
    s.sim.mercury.set_pong_mode(mode);
    Ok(Json(json!({ "mode": mode.as_str() })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StallRequest {
    stalled: bool,
    connection: Option<u64>,
}

async fn mercury_stall(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let req: StallRequest = parse(&body)?;
    let n = s.sim.mercury.stall(req.connection, req.stalled);
    Ok(Json(json!({ "stalled": req.stalled, "connections": n })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SkipRequest {
    count: u64,
}

async fn mercury_skip(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let req: SkipRequest = parse(&body)?;
    s.sim.mercury.skip_sequence(req.count);
    Ok(Json(json!({ "count": req.count })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthTimeoutRequest {
    secs: f64,
}

async fn get_auth_timeout(State(s): State<AdminState>) -> Json<Value> {
    Json(json!({ "secs": s.sim.mercury.auth_timeout().as_secs_f64() }))
}

async fn put_auth_timeout(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let req: AuthTimeoutRequest = parse(&body)?;
    #[allow(clippy::cast_precision_loss)]
    let max = MAX_AUTH_TIMEOUT_SECS as f64;
    if !(req.secs > 0.0 && req.secs <= max) {
        return Err(AdminError::bad_request(format!(
            "secs must be more than 0 and at most {MAX_AUTH_TIMEOUT_SECS}"
        )));
    }
    s.sim
        .mercury
        .set_auth_timeout(Duration::from_secs_f64(req.secs));
    Ok(Json(json!({ "secs": req.secs })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureToggleRequest {
    key: String,
    val: String,
    #[serde(rename = "type")]
    kind: String,
}

async fn mercury_feature_toggle(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let req: FeatureToggleRequest = parse(&body)?;
    let out = mercury::feature_toggle(&s.sim, &req.key, &req.val, &req.kind)
        .map_err(|e| AdminError::bad_request(format!("{e:#}")))?;
    Ok(Json(json!(out)))
}

async fn mercury_connections(State(s): State<AdminState>) -> Json<Value> {
    Json(json!(s.sim.mercury.connections()))
}

async fn mercury_received(State(s): State<AdminState>) -> Json<Value> {
    Json(json!(s.sim.mercury.received()))
}

#[derive(Debug, Deserialize)]
struct DeliveredFilter {
    registration: Option<String>,
}

async fn mercury_delivered(
    State(s): State<AdminState>,
    Query(filter): Query<DeliveredFilter>,
) -> Json<Value> {
    Json(json!(
        s.sim.mercury.delivered(filter.registration.as_deref())
    ))
}

async fn mercury_acks(State(s): State<AdminState>) -> Json<Value> {
    Json(json!(s.sim.mercury.acks()))
}

async fn list_udp(State(s): State<AdminState>) -> Json<Value> {
    Json(json!(s.sim.udp.snapshot()))
}

async fn clear_udp(State(s): State<AdminState>) -> Json<Value> {
    s.sim.udp.clear();
    ok()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AltChange {
    mode: String,
}

async fn get_alt(State(s): State<AdminState>) -> Json<Value> {
    Json(json!({ "mode": s.sim.alt.mode().as_str() }))
}

async fn post_alt(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let change: AltChange = parse(&body)?;
    let mode = AltMode::parse(&change.mode).map_err(AdminError::bad_request)?;
    s.sim
        .alt
        .set_mode(mode)
        .map_err(|e| AdminError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    Ok(Json(json!({ "mode": mode.as_str() })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartRequest {
    down_ms: u64,
}

async fn post_restart(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let req: RestartRequest = parse(&body)?;
    let done = s
        .sim
        .restart(std::time::Duration::from_millis(req.down_ms))
        .map_err(|e| AdminError(StatusCode::CONFLICT, format!("{e:#}")))?;
    Ok(Json(json!(done)))
}

async fn list_activations(State(s): State<AdminState>) -> Json<Value> {
    Json(json!(s.sim.activation.records()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    activation_id: String,
}

async fn reset_activation(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let req: ResetRequest = parse(&body)?;
    if !s.sim.activation.reset(&req.activation_id) {
        return Err(AdminError(
            StatusCode::NOT_FOUND,
            format!("no device with activation id {}", req.activation_id),
        ));
    }
    Ok(ok())
}

async fn list_tokens(State(s): State<AdminState>) -> Json<Value> {
    let (access, refresh) = s.sim.tokens.all();
    Json(json!({ "access": access, "refresh": refresh }))
}

async fn expire_access(State(s): State<AdminState>) -> Json<Value> {
    let n = s.sim.tokens.expire_access();
    tracing::info!(n, "access tokens expired");
    Json(json!({ "expired": n }))
}

async fn revoke_refresh(State(s): State<AdminState>) -> Json<Value> {
    let n = s.sim.tokens.revoke_refresh();
    tracing::info!(n, "refresh tokens revoked");
    Json(json!({ "revoked": n }))
}

async fn list_wdm_devices(State(s): State<AdminState>) -> Json<Value> {
    let ws_base = format!("wss://localhost:{}", s.info.proxy.port());
    Json(json!(s.sim.wdm.list(&ws_base)))
}

async fn delete_wdm_device(State(s): State<AdminState>, Path(id): Path<String>) -> AdminResult {
    if !s.sim.wdm.delete(&id) {
        return Err(AdminError(
            StatusCode::NOT_FOUND,
            format!("no wdm device {id}"),
        ));
    }
    tracing::info!(%id, "wdm device deleted through the admin API");
    Ok(ok())
}

async fn put_wdm_features(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let value: Value = parse(&body)?;
    let features =
        WdmFeatures::from_json(value).map_err(|e| AdminError::bad_request(format!("{e:#}")))?;
    s.sim.set_wdm_features(features.clone());
    tracing::info!("wdm features replaced");
    Ok(Json(json!(features)))
}
