//! The admin API: plain HTTP on loopback, JSON in and out. Tests and people steer the simulated cloud
//! with it (scenario, GDS state, faults) and read back what it received (requests, frames, datagrams).

use std::sync::Arc;

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
use crate::scenario::{Scenario, WdmFeatures};
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
        .route("/admin/udp", get(list_udp).delete(clear_udp))
        .route("/admin/hosts/alt", get(get_alt).post(post_alt))
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

/// Sends the body, exactly as posted, as one text frame to every connected WebSocket.
async fn push_event(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    let _: Value = parse(&body)?;
    let text = std::str::from_utf8(&body).map_err(AdminError::bad_request)?;
    let delivered = s.sim.hub.broadcast(text);
    Ok(Json(json!({ "delivered": delivered })))
}

async fn ws_status(State(s): State<AdminState>) -> Json<Value> {
    Json(json!({ "connected": s.sim.hub.connected() }))
}

async fn ws_received(State(s): State<AdminState>) -> Json<Vec<String>> {
    Json(s.sim.hub.received.snapshot())
}

async fn clear_ws_received(State(s): State<AdminState>) -> Json<Value> {
    s.sim.hub.received.clear();
    ok()
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
}

fn normal_closure() -> u16 {
    1000
}

async fn ws_close(State(s): State<AdminState>, body: Bytes) -> AdminResult {
    // An empty body means a normal closure.
    let req: CloseRequest = if body.iter().all(u8::is_ascii_whitespace) {
        parse(b"{}")?
    } else {
        parse(&body)?
    };
    let closed = if req.abort {
        s.sim.hub.abort_all()
    } else {
        s.sim
            .hub
            .close_all(req.code, &req.reason)
            .map_err(AdminError::bad_request)?
    };
    Ok(Json(json!({ "closed": closed })))
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
