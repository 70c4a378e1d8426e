//! The Locus routes under `/locus/api/v1` (bearer-protected). Bodies are checked here: malformed
//! JSON or a missing required field answers 400 `{"message":"…"}` naming it; an unknown locus 404.
//! Every request naming a locus is recorded on it (method, path, body), bad ones included.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::model::FarEnd;
use super::{LocusError, MAX_DTMF_TONES};
use crate::state::{AppState, SimState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/loci/call", post(call))
        .route("/loci/meetingInfo", get(meeting_info))
        .route("/loci/{id}", get(get_locus))
        .route("/loci/{id}/sync", get(get_locus))
        .route("/loci/{id}/participant", post(join))
        .route("/loci/{id}/participant/decline", put(decline))
        .route("/loci/{id}/participant/alert", put(alert))
        .route("/loci/{id}/participant/{participant}/leave", put(leave))
        .route("/loci/{id}/controls", patch(controls))
        .route("/loci/{id}/sendDtmf", post(send_dtmf))
}

impl IntoResponse for LocusError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(json!({ "message": self.message() }))).into_response()
    }
}

type Answer = Result<Json<Value>, LocusError>;

fn bad(msg: impl Into<String>) -> LocusError {
    LocusError::BadRequest(msg.into())
}

/// The body as a JSON object.
fn object(body: &[u8]) -> Result<Value, LocusError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    if !v.is_object() {
        return Err(bad("body must be a JSON object"));
    }
    Ok(v)
}

/// The non-empty string at a dotted path (`device.url`), or 400 naming it.
fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, LocusError> {
    let mut cur = v;
    for key in path.split('.') {
        cur = match key.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[key],
        };
    }
    match cur {
        Value::String(s) if !s.trim().is_empty() => Ok(s),
        Value::Null => Err(bad(format!("missing required field {path}"))),
        _ => Err(bad(format!("{path} must be a non-empty string"))),
    }
}

/// The fields every join body needs: `device.url`, `correlationId`, `localMedias[0].localSdp`.
fn join_fields(v: &Value) -> Result<&str, LocusError> {
    let device = string(v, "device.url")?;
    string(v, "correlationId")?;
    if v["localMedias"].as_array().is_none_or(Vec::is_empty) {
        return Err(bad(
            "missing required field localMedias (a non-empty array)",
        ));
    }
    string(v, "localMedias.0.localSdp")?;
    Ok(device)
}

/// The join answer: the locus and the media node's answer to the body's offer (which the node
/// records, to know the device's SSRCs and CSI extension id).
fn join_answer(sim: &SimState, body: &Value, locus: Value) -> Json<Value> {
    let offer = body["localMedias"][0]["localSdp"]
        .as_str()
        .unwrap_or_default();
    Json(json!({
        "locus": locus,
        "mediaConnections": [{
            "mediaId": uuid::Uuid::new_v4().to_string(),
            "remoteSdp": crate::media::answer(sim, offer),
        }],
    }))
}

fn record(sim: &SimState, id: &str, method: &Method, uri: &OriginalUri, body: &[u8]) {
    sim.locus.record(
        id,
        method.as_str(),
        uri.0.path(),
        &String::from_utf8_lossy(body),
    );
}

async fn call(State(app): State<AppState>, uri: OriginalUri, body: Bytes) -> Answer {
    let v = object(&body)?;
    let address = string(&v, "invitee.address")?;
    let device = join_fields(&v)?;
    let sim = &app.sim;
    let (id, dto, far_end) = super::call(
        sim,
        &app.listener.base_url,
        address,
        device,
        &v,
        uri.0.path(),
    );
    if far_end != FarEnd::NoAnswer {
        let delay = Duration::from_millis(sim.with_scenario(|s| s.locus.answer_delay_ms));
        let sim = Arc::clone(sim);
        let shutdown = app.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.wait() => {}
                () = tokio::time::sleep(delay) => super::far_end_responds(&sim, &id, far_end),
            }
        });
    }
    hold_join_answer(&app).await?;
    Ok(join_answer(sim, &v, dto))
}

/// `[locus] join_delay_ms`: the join has happened; its answer waits (a simulator shutting
/// down answers 503 at once).
async fn hold_join_answer(app: &AppState) -> Result<(), LocusError> {
    let delay = Duration::from_millis(app.sim.with_scenario(|s| s.locus.join_delay_ms));
    if delay.is_zero() {
        return Ok(());
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => Ok(()),
        () = app.shutdown.wait() => Err(LocusError::Injected(503, "the simulator is stopping".into())),
    }
}

async fn meeting_info(State(app): State<AppState>, RawQuery(q): RawQuery) -> Answer {
    let address = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "address")
        .map(|(_, v)| v.into_owned())
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| bad("missing required query parameter address"))?;
    let (url, name) = super::meeting_info(&app.sim, &app.listener.base_url, &address);
    Ok(Json(json!({ "locusUrl": url, "meetingName": name })))
}

async fn get_locus(
    State(app): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
) -> Answer {
    record(&app.sim, &id, &method, &uri, b"");
    Ok(Json(app.sim.locus.render(&id, None)?))
}

async fn join(
    State(app): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    body: Bytes,
) -> Answer {
    record(&app.sim, &id, &method, &uri, &body);
    app.sim.locus.render(&id, None)?;
    let v = object(&body)?;
    let device = join_fields(&v)?;
    let target = super::join(&app.sim, &id, device, &v)?;
    let dto = app.sim.locus.render(&target, Some(device))?;
    hold_join_answer(&app).await?;
    Ok(join_answer(&app.sim, &v, dto))
}

async fn decline(
    State(app): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    body: Bytes,
) -> Answer {
    record(&app.sim, &id, &method, &uri, &body);
    app.sim.locus.render(&id, None)?;
    let v = object(&body)?;
    let device = string(&v, "deviceUrl")?;
    let reason = v["reason"].as_str().unwrap_or("BUSY");
    super::decline(&app.sim, &id, device, reason)?;
    Ok(Json(
        json!({ "locus": app.sim.locus.render(&id, Some(device))? }),
    ))
}

async fn alert(
    State(app): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    body: Bytes,
) -> Answer {
    record(&app.sim, &id, &method, &uri, &body);
    app.sim.locus.render(&id, None)?;
    let v = object(&body)?;
    let device = string(&v, "deviceUrl")?;
    super::alert(&app.sim, &id, device)?;
    Ok(Json(
        json!({ "locus": app.sim.locus.render(&id, Some(device))? }),
    ))
}

async fn leave(
    State(app): State<AppState>,
    Path((id, participant)): Path<(String, String)>,
    method: Method,
    uri: OriginalUri,
    body: Bytes,
) -> Answer {
    record(&app.sim, &id, &method, &uri, &body);
    app.sim.locus.render(&id, None)?;
    let v = object(&body)?;
    let device = string(&v, "device.url")?;
    string(&v, "correlationId")?;
    super::leave(&app.sim, &id, &participant, device)?;
    Ok(Json(
        json!({ "locus": app.sim.locus.render(&id, Some(device))? }),
    ))
}

async fn controls(
    State(app): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    body: Bytes,
) -> Answer {
    record(&app.sim, &id, &method, &uri, &body);
    app.sim.locus.render(&id, None)?;
    let v = object(&body)?;
    let held = v["hold"]["held"]
        .as_bool()
        .ok_or_else(|| bad("missing required field hold.held (a boolean)"))?;
    let participant = string(&v, "participantUrl")?;
    let device = super::hold(&app.sim, &id, participant, held)?;
    Ok(Json(
        json!({ "locus": app.sim.locus.render(&id, device.as_deref())? }),
    ))
}

async fn send_dtmf(
    State(app): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    body: Bytes,
) -> Answer {
    record(&app.sim, &id, &method, &uri, &body);
    app.sim.locus.render(&id, None)?;
    let v = object(&body)?;
    let device = string(&v, "deviceUrl")?;
    string(&v, "dtmf.correlationId")?;
    let tones = string(&v, "dtmf.tones")?;
    if tones.len() > MAX_DTMF_TONES {
        return Err(bad(format!(
            "dtmf.tones has {} tones; at most {MAX_DTMF_TONES} per request",
            tones.len()
        )));
    }
    if let Some(c) = tones
        .chars()
        .find(|c| !matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'))
    {
        return Err(bad(format!(
            "dtmf.tones has {c:?}; only 0-9, *, # and A-D are tones"
        )));
    }
    super::dtmf(&app.sim, &id, device, &v["dtmf"]["correlationId"], tones)?;
    Ok(Json(json!({})))
}
