//! `/admin/locus*`: ring the devices (incoming call), hang up, move, delta fault modes, and the
//! listing of every locus. JSON in and out, errors `{"error": "..."}` with 400, 404 or 409.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::LocusError;
use crate::state::SimState;

#[derive(Debug)]
struct Error(LocusError);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(json!({ "error": self.0.message() }))).into_response()
    }
}

impl From<LocusError> for Error {
    fn from(e: LocusError) -> Self {
        Self(e)
    }
}

type Answer = Result<Json<Value>, Error>;
type Sim = State<Arc<SimState>>;

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| Error(LocusError::BadRequest(format!("invalid JSON body: {e}"))))
}

pub(crate) fn router(sim: Arc<SimState>) -> Router {
    Router::new()
        .route("/admin/locus", get(list))
        .route("/admin/locus/incoming", post(incoming))
        .route("/admin/locus/deltas", post(deltas))
        .route("/admin/locus/{id}/hangup", post(hangup))
        .route("/admin/locus/{id}/move", post(move_devices))
        .route("/admin/locus/{id}/participants", post(add_participant))
        .with_state(sim)
}

async fn list(State(sim): Sim) -> Json<Value> {
    Json(sim.locus.snapshot(
        sim.endpoints.media_node,
        sim.media.binding_requests.load(Ordering::Relaxed),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Incoming {
    caller: String,
    #[serde(default)]
    name: String,
}

async fn incoming(State(sim): Sim, body: Bytes) -> Answer {
    let b: Incoming = parse(&body)?;
    let url = super::incoming(&sim, &b.caller, &b.name)?;
    let id = super::resolve_id(&url).to_owned();
    Ok(Json(json!({ "locusUrl": url, "id": id })))
}

async fn hangup(State(sim): Sim, Path(id): Path<String>) -> Answer {
    super::hangup(&sim, &id)?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewParticipant {
    name: String,
}

async fn add_participant(State(sim): Sim, Path(id): Path<String>, body: Bytes) -> Answer {
    let b: NewParticipant = parse(&body)?;
    let url = super::add_participant(&sim, &id, &b.name)?;
    Ok(Json(json!({ "participantUrl": url })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    name: String,
    #[serde(default)]
    fail: Option<String>,
}

async fn move_devices(State(sim): Sim, Path(id): Path<String>, body: Bytes) -> Answer {
    let b: Move = parse(&body)?;
    let (url, new_id) = super::r#move(&sim, &id, &b.name, b.fail.as_deref())?;
    Ok(Json(json!({ "locusUrl": url, "id": new_id })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Deltas {
    mode: String,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

async fn deltas(State(sim): Sim, body: Bytes) -> Answer {
    let b: Deltas = parse(&body)?;
    super::set_delta_mode(&sim, &b.mode, b.count)?;
    Ok(Json(
        json!({ "ok": true, "mode": b.mode, "count": b.count }),
    ))
}
