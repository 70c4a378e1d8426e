//! `GET /admin/calliope` (clusters, nodes, RTTs, ground truth `best`, probe counts) and
//! `POST /admin/calliope/misbehave {"cluster","mode"}`. Errors are `{"error": "..."}` with 400/404.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Misbehave;
use crate::state::SimState;

pub(crate) fn router(sim: Arc<SimState>) -> Router {
    Router::new()
        .route("/admin/calliope", get(snapshot))
        .route("/admin/calliope/misbehave", post(misbehave))
        .with_state(sim)
}

async fn snapshot(State(sim): State<Arc<SimState>>) -> Json<Value> {
    Json(sim.calliope.snapshot())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MisbehaveBody {
    cluster: String,
    mode: String,
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": msg.to_string() }))).into_response()
}

async fn misbehave(State(sim): State<Arc<SimState>>, body: Bytes) -> Response {
    let b: MisbehaveBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    let mode = match Misbehave::parse(&b.mode) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match sim.calliope.misbehave(&b.cluster, mode) {
        Ok(()) => Json(json!({ "ok": true, "cluster": b.cluster, "mode": b.mode })).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}
