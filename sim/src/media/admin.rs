//! `/admin/media*`: the media node's sessions and records, the node's SCR presets, the
//! acknowledgement switch and the far-end meeting (active speaker, participants joining and
//! leaving). JSON in and out; errors `{"error": "..."}` with 400 or 409.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::participants::MeetingError;
use super::scr::Preset;
use crate::state::SimState;

#[derive(Debug)]
struct Error(StatusCode, String);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<MeetingError> for Error {
    /// An unknown participant is the request's fault (400); a full meeting or its last
    /// participant leaving conflicts with the meeting's state (409).
    fn from(e: MeetingError) -> Self {
        let status = match e {
            MeetingError::NotInMeeting(_) => StatusCode::BAD_REQUEST,
            MeetingError::Full | MeetingError::LastOne => StatusCode::CONFLICT,
        };
        Self(status, e.to_string())
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
        .route("/admin/media/active-speaker", post(active_speaker))
        .route("/admin/media/participants/add", post(add_participant))
        .route("/admin/media/participants/remove", post(remove_participant))
        .with_state(sim)
}

async fn snapshot(State(sim): Sim) -> Json<Value> {
    Json(super::node(&sim).snapshot())
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParticipantBody {
    participant: u8,
}

/// An empty object (an empty body is taken as one).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

async fn active_speaker(State(sim): Sim, body: Bytes) -> Answer {
    let b: ParticipantBody = parse(&body)?;
    let at_ms = super::node(&sim).set_active_speaker(b.participant)?;
    Ok(Json(
        json!({ "activeSpeaker": b.participant, "atMs": at_ms }),
    ))
}

async fn add_participant(State(sim): Sim, body: Bytes) -> Answer {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let _: EmptyBody = parse(&body)?;
    }
    let n = super::node(&sim).add_participant()?;
    Ok(Json(json!({ "participant": n })))
}

async fn remove_participant(State(sim): Sim, body: Bytes) -> Answer {
    let b: ParticipantBody = parse(&body)?;
    let active = super::node(&sim).remove_participant(b.participant)?;
    Ok(Json(
        json!({ "removed": b.participant, "activeSpeaker": active }),
    ))
}
