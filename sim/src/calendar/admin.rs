//! `/admin/calendar/*` and `/admin/kms/*`: bookings (create, update, delete with or without a mercury
//! event, bulk create, ground truth, rendered DTO), list page faults and KMS key availability.
//! Merged into the admin router; same conventions: JSON in and out, errors `{"error": "..."}` with
//! 400, 404 or 409.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::{BookingPatch, BookingSpec, BulkSpec, CalendarError, EventMode, PageFault, dto};
use crate::state::SimState;

#[derive(Debug)]
struct Error(StatusCode, String);

impl From<CalendarError> for Error {
    fn from(e: CalendarError) -> Self {
        let status = match e {
            CalendarError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CalendarError::NotFound(_) => StatusCode::NOT_FOUND,
            CalendarError::Conflict(_) => StatusCode::CONFLICT,
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
type Sim = State<Arc<SimState>>;

fn bad(msg: impl std::fmt::Display) -> Error {
    Error(StatusCode::BAD_REQUEST, msg.to_string())
}

fn to_json(v: impl serde::Serialize) -> Json<Value> {
    Json(serde_json::to_value(v).unwrap_or(Value::Null))
}

/// Parses a JSON body; an empty body is `{}`.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

/// A JSON object body split into its `event` (default `dflt`) and the rest, parsed as `T`.
fn parse_with_event<T: DeserializeOwned>(
    body: &[u8],
    dflt: EventMode,
) -> Result<(T, EventMode), Error> {
    let mut map: Map<String, Value> = parse(body)?;
    let mode = match map.remove("event") {
        None => dflt,
        Some(v) => serde_json::from_value(v)
            .map_err(|e| bad(format!("invalid event (full, minimal or none): {e}")))?,
    };
    let rest = serde_json::from_value(Value::Object(map))
        .map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    Ok((rest, mode))
}

pub(crate) fn router(sim: Arc<SimState>) -> Router {
    Router::new()
        .route(
            "/admin/calendar/bookings",
            get(list_bookings).post(create).delete(clear),
        )
        .route("/admin/calendar/bookings/bulk", post(bulk))
        .route(
            "/admin/calendar/bookings/{id}",
            get(get_booking).patch(update).delete(delete),
        )
        .route("/admin/calendar/bookings/{id}/dto", get(get_dto))
        .route(
            "/admin/calendar/faults",
            get(list_faults).post(arm_fault).delete(clear_faults),
        )
        .route("/admin/calendar/requests", get(requests))
        .route("/admin/kms/keys", get(list_keys).post(post_key))
        .with_state(sim)
}

async fn list_bookings(State(sim): Sim) -> Json<Value> {
    to_json(sim.calendar.truths())
}

async fn create(State(sim): Sim, body: Bytes) -> Answer {
    let (spec, mode): (BookingSpec, _) = parse_with_event(&body, EventMode::Full)?;
    Ok(to_json(super::create(&sim, &spec, mode)?))
}

async fn clear(State(sim): Sim) -> Json<Value> {
    let n = sim.calendar.clear();
    tracing::info!(n, "calendar bookings cleared");
    Json(json!({ "deleted": n }))
}

async fn bulk(State(sim): Sim, body: Bytes) -> Answer {
    let spec: BulkSpec = parse(&body)?;
    Ok(to_json(super::bulk(&sim, &spec)?))
}

async fn get_booking(State(sim): Sim, Path(id): Path<String>) -> Answer {
    let (b, _) = sim
        .calendar
        .get(&id)
        .ok_or_else(|| Error(StatusCode::NOT_FOUND, format!("no booking {id:?}")))?;
    Ok(to_json(b.truth()))
}

async fn get_dto(State(sim): Sim, Path(id): Path<String>) -> Answer {
    let (b, key) = sim
        .calendar
        .get(&id)
        .ok_or_else(|| Error(StatusCode::NOT_FOUND, format!("no booking {id:?}")))?;
    Ok(Json(dto::render(&b, key.as_ref())))
}

async fn update(State(sim): Sim, Path(id): Path<String>, body: Bytes) -> Answer {
    let (patch, mode): (BookingPatch, _) = parse_with_event(&body, EventMode::Full)?;
    Ok(to_json(super::update(&sim, &id, &patch, mode)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventOnly {
    event: Option<EventMode>,
}

/// `event` from the body (`{"event":"none"}`) or the query (`?event=none`); default `full`.
async fn delete(
    State(sim): Sim,
    Path(id): Path<String>,
    Query(q): Query<EventOnly>,
    body: Bytes,
) -> Answer {
    let from_body: EventOnly = parse(&body)?;
    let mode = from_body.event.or(q.event).unwrap_or(EventMode::Full);
    Ok(to_json(super::delete(&sim, &id, mode)?))
}

async fn list_faults(State(sim): Sim) -> Json<Value> {
    to_json(sim.calendar.faults())
}

async fn arm_fault(State(sim): Sim, body: Bytes) -> Answer {
    let fault: PageFault = parse(&body)?;
    sim.calendar.arm_fault(fault.clone())?;
    tracing::info!(
        page = fault.fail_page,
        status = fault.status,
        count = fault.count,
        "calendar page fault armed"
    );
    Ok(Json(json!({ "armed": fault })))
}

async fn clear_faults(State(sim): Sim) -> Json<Value> {
    sim.calendar.clear_faults();
    Json(json!({ "ok": true }))
}

/// Recorded requests to the calendar and the KMS, oldest first.
async fn requests(State(sim): Sim) -> Json<Value> {
    to_json(super::handle::calendar_requests(&sim))
}

async fn list_keys(State(sim): Sim) -> Json<Value> {
    to_json(sim.calendar.kms_keys())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyChange {
    name: String,
    missing: Option<bool>,
}

/// Makes the key if the KMS lacks it; sets `missing` when given.
async fn post_key(State(sim): Sim, body: Bytes) -> Answer {
    let change: KeyChange = parse(&body)?;
    let key = sim.calendar.kms_upsert(&change.name, change.missing)?;
    tracing::info!(name = %key.name, missing = key.missing, "KMS key changed");
    Ok(to_json(key))
}
