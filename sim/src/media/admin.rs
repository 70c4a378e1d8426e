//! `/admin/media*`: the media node's sessions and records, the node's SCR presets and the
//! acknowledgement switch. JSON in and out; errors `{"error": "..."}` with 400 or 409.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::scr::Preset;
use crate::state::SimState;

#[derive(Debug)]
struct Error(StatusCode, String);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Answer = Result<Json<Value>, Error>;
type Sim = State<Arc<SimState>>;

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

pub(crate) fn router(sim: Arc<SimState>) -> Router {
    Router::new()
        .route("/admin/media", get(snapshot))
        .route("/admin/media/scr", post(scr))
        .route("/admin/media/acks", post(acks))
        .with_state(sim)
}

async fn snapshot(State(sim): Sim) -> Json<Value> {
    Json(sim.media.snapshot())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScrBody {
    preset: String,
}

async fn scr(State(sim): Sim, body: Bytes) -> Answer {
    let b: ScrBody = parse(&body)?;
    let preset =
        Preset::parse(&b.preset).map_err(|e| Error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let seqnos = sim
        .media
        .send_scr(preset)
        .map_err(|e| Error(StatusCode::CONFLICT, e.to_string()))?;
    Ok(Json(json!({ "seqnos": seqnos })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcksBody {
    drop: bool,
}

async fn acks(State(sim): Sim, body: Bytes) -> Answer {
    let b: AcksBody = parse(&body)?;
    sim.media.set_drop_acks(b.drop);
    Ok(Json(json!({ "dropAcks": b.drop })))
}
