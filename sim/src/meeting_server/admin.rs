//! `/admin/meeting-server/*`: steer the simulated Meeting Server (conference model, script, silence,
//! closing sockets, limits) and read what it saw (connections, frames, violations). Merged into the
//! admin router; same conventions: JSON in and out, errors `{"error": "..."}` with 400/404/409.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    CmsCallFields, CmsConfigPatch, CmsError, CmsParticipantFields, CmsScriptOptions, MeetingServer,
};

#[derive(Debug)]
struct Error(StatusCode, String);

impl From<CmsError> for Error {
    fn from(e: CmsError) -> Self {
        let status = match e {
            CmsError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CmsError::NotFound(_) => StatusCode::NOT_FOUND,
            CmsError::Conflict(_) => StatusCode::CONFLICT,
        };
        Self(status, e.to_string())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Answer = Result<Json<Value>, Error>;

/// Parses a JSON body; an empty body is `{}`.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| Error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

fn to_json(v: impl serde::Serialize) -> Json<Value> {
    Json(serde_json::to_value(v).unwrap_or(Value::Null))
}

type Cms = State<Arc<MeetingServer>>;

pub(super) fn router(cms: Arc<MeetingServer>) -> Router {
    let base = "/admin/meeting-server";
    Router::new()
        .route(base, get(snapshot))
        .route(&format!("{base}/config"), get(get_config).put(put_config))
        .route(&format!("{base}/calls"), get(list_calls).post(create_call))
        .route(
            &format!("{base}/calls/{{call}}"),
            get(get_call).patch(update_call),
        )
        .route(&format!("{base}/calls/{{call}}/end"), post(end_call))
        .route(
            &format!("{base}/calls/{{call}}/participants"),
            post(add_participant),
        )
        .route(
            &format!("{base}/calls/{{call}}/participants/{{participant}}"),
            patch(update_participant).delete(remove_participant),
        )
        .route(
            &format!("{base}/calls/{{call}}/participants/{{participant}}/move"),
            post(move_participant),
        )
        .route(&format!("{base}/script"), get(get_script).post(run_script))
        .route(&format!("{base}/silence"), post(silence))
        .route(&format!("{base}/close"), post(close))
        .route(&format!("{base}/connections"), get(connections))
        .route(
            &format!("{base}/connections/{{id}}/frames"),
            get(connection_frames),
        )
        .route(&format!("{base}/frames"), get(all_frames))
        .route(
            &format!("{base}/violations"),
            get(violations).delete(clear_violations),
        )
        .route(&format!("{base}/tokens/expire"), post(expire_tokens))
        .with_state(cms)
}

async fn snapshot(State(cms): Cms) -> Json<Value> {
    to_json(cms.snapshot())
}

async fn get_config(State(cms): Cms) -> Json<Value> {
    to_json(cms.config())
}

async fn put_config(State(cms): Cms, body: Bytes) -> Answer {
    let patch: CmsConfigPatch = parse(&body)?;
    let config = cms
        .set_config(&patch)
        .map_err(|e| Error(StatusCode::BAD_REQUEST, format!("{e:#}")))?;
    tracing::info!(?config, "meeting server config changed");
    Ok(to_json(config))
}

async fn list_calls(State(cms): Cms) -> Json<Value> {
    to_json(cms.calls())
}

async fn create_call(State(cms): Cms, body: Bytes) -> Answer {
    let fields: CmsCallFields = parse(&body)?;
    Ok(to_json(cms.create_call(&fields)?))
}

async fn get_call(State(cms): Cms, Path(call): Path<String>) -> Answer {
    Ok(to_json(cms.call(&call)?))
}

async fn update_call(State(cms): Cms, Path(call): Path<String>, body: Bytes) -> Answer {
    let fields: CmsCallFields = parse(&body)?;
    Ok(to_json(cms.update_call(&call, &fields)?))
}

async fn end_call(State(cms): Cms, Path(call): Path<String>) -> Answer {
    cms.end_call(&call)?;
    Ok(Json(json!({ "ok": true })))
}

async fn add_participant(State(cms): Cms, Path(call): Path<String>, body: Bytes) -> Answer {
    let fields: CmsParticipantFields = parse(&body)?;
    Ok(to_json(cms.add_participant(&call, &fields)?))
}

async fn update_participant(
    State(cms): Cms,
    Path((call, participant)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let fields: CmsParticipantFields = parse(&body)?;
    Ok(to_json(cms.update_participant(
        &call,
        &participant,
        &fields,
    )?))
}

async fn remove_participant(
    State(cms): Cms,
    Path((call, participant)): Path<(String, String)>,
) -> Answer {
    cms.remove_participant(&call, &participant)?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveRequest {
    /// The call to move into (default: the same call).
    #[serde(default)]
    to_call: Option<String>,
    /// The new participant's GUID (default: a fresh one).
    #[serde(default)]
    participant: Option<String>,
}

async fn move_participant(
    State(cms): Cms,
    Path((call, participant)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let req: MoveRequest = parse(&body)?;
    let moved =
        cms.move_participant(&call, &participant, req.to_call.as_deref(), req.participant)?;
    Ok(to_json(moved))
}

async fn get_script(State(cms): Cms) -> Json<Value> {
    to_json(cms.snapshot().script)
}

async fn run_script(State(cms): Cms, body: Bytes) -> Answer {
    let opts: CmsScriptOptions = parse(&body)?;
    Ok(to_json(cms.start_script(&opts)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceRequest {
    silent: bool,
    #[serde(default)]
    connection: Option<u64>,
}

async fn silence(State(cms): Cms, body: Bytes) -> Answer {
    let req: SilenceRequest = parse(&body)?;
    cms.set_silent(req.silent, req.connection)?;
    tracing::info!(silent = req.silent, connection = ?req.connection, "meeting server silence");
    Ok(Json(
        json!({ "silent": req.silent, "connection": req.connection }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseRequest {
    #[serde(default = "normal_closure")]
    code: u16,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    abort: bool,
    #[serde(default)]
    connection: Option<u64>,
}

fn normal_closure() -> u16 {
    1000
}

async fn close(State(cms): Cms, body: Bytes) -> Answer {
    let req: CloseRequest = parse(&body)?;
    let closed = cms.close_sockets(req.code, &req.reason, req.abort, req.connection)?;
    Ok(Json(json!({ "closed": closed })))
}

async fn connections(State(cms): Cms) -> Json<Value> {
    to_json(cms.snapshot().connections)
}

async fn connection_frames(State(cms): Cms, Path(id): Path<u64>) -> Answer {
    let frames = cms
        .frames(id)
        .ok_or_else(|| Error(StatusCode::NOT_FOUND, format!("no connection {id}")))?;
    Ok(to_json(frames))
}

async fn all_frames(State(cms): Cms) -> Json<Value> {
    let all: Vec<Value> = cms
        .all_frames()
        .into_iter()
        .map(|(id, frames)| json!({ "connection": id, "frames": frames }))
        .collect();
    Json(Value::Array(all))
}

async fn violations(State(cms): Cms) -> Json<Value> {
    to_json(cms.violations())
}

async fn clear_violations(State(cms): Cms) -> Json<Value> {
    cms.clear_violations();
    Json(json!({ "ok": true }))
}

async fn expire_tokens(State(cms): Cms) -> Json<Value> {
    Json(json!({ "expired": cms.expire_tokens() }))
}
