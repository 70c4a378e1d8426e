//! The mercury event WebSocket (wire profile §3, `docs/wire-profile-choices.md` §3), server side:
//! `GET /mercury/registrations/{id}/messages`.
//!
//! - `frames`: the exact frames sent and how client frames are read.
//! - `hub`: every socket and registration: who is online, sequence numbers, make-before-break,
//!   the logs (client frames, acks, delivered events) and the admin settings (pongs, stall, skip).
//! - `socket`: one task per socket: authorizing → online → (shutting-down) → closed.
//!
//! This module holds the public types and the operations that need the rest of the simulator
//! (WDM devices, the feature store).

mod frames;
mod hub;
mod socket;

use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::scenario::FeatureToggle;
use crate::state::{AppState, SimState};

pub(crate) use hub::Hub;

/// Where a socket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionState {
    /// Upgraded; waiting for the authorization frame.
    Authorizing,
    /// Authorized; receives its registration's events.
    Online,
    /// Got `shutdown`; still receives events until a new socket of its registration is online.
    ShuttingDown,
    /// The server queued a close (admin or replacement); the close frame follows the queued frames.
    Closing,
    Closed,
}

/// Who ended a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClosedBy {
    /// The server sent a close frame (`close_code`, `close_reason`).
    Server,
    /// The client sent a close frame (`close_code`, `close_reason` are the client's).
    Client,
    /// The server dropped the TCP connection without a close frame (admin abort, or a close of a
    /// stalled socket that only an admin close frame may break).
    Aborted,
    /// The connection ended without a close frame from either side (client vanished, I/O error).
    Dropped,
}

/// One socket as `GET /admin/mercury/connections` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// Connection id, counting from 1 per simulator run.
    pub id: u64,
    /// The `{id}` of the URL path (a WDM device id when the socket got online).
    pub registration: String,
    /// The listener the socket came in on: `main`, `proxy` or `alt`.
    pub listener: String,
    pub state: ConnectionState,
    /// The upgrade request's raw query string, without `?`.
    pub query: String,
    pub opened_at_ms: u64,
    pub online_at_ms: Option<u64>,
    pub closed_at_ms: Option<u64>,
    pub close_code: Option<u16>,
    pub close_reason: Option<String>,
    pub closed_by: Option<ClosedBy>,
    /// Client `ping` frames read.
    pub pings: u64,
    /// `pong` frames sent (a `mismatch` pong counts; a withheld one does not).
    pub pongs_sent: u64,
    /// The server neither reads nor writes this socket (admin stall).
    pub stalled: bool,
    /// `sequenceNumber` of the last event sent on this socket (0: none yet).
    pub last_sequence: u64,
}

/// One event frame handed to a socket (also the log entry of `GET /admin/mercury/delivered`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredEvent {
    /// The frame's `id` (fresh per socket), what the client acks.
    pub id: String,
    pub registration: String,
    pub connection: u64,
    #[serde(rename = "sequenceNumber")]
    pub sequence_number: u64,
    #[serde(rename = "eventType")]
    pub event_type: String,
    #[serde(rename = "trackingId")]
    pub tracking_id: String,
    /// When it was queued to the socket; also the frame's `timestamp`.
    pub at_ms: u64,
    /// The client acked this id (as of the moment the log was read).
    pub acked: bool,
}

/// What one push did: the frames handed to sockets, and the registrations that had no online
/// socket (or a full queue) and so missed at least one event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushOutcome {
    pub delivered: Vec<DeliveredEvent>,
    pub undelivered: Vec<String>,
}

/// A non-event frame the server sent (`shutdown`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentFrame {
    pub id: String,
    pub registration: String,
    pub connection: u64,
}

/// One text (or binary) frame a client sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedFrame {
    pub connection: u64,
    pub registration: String,
    /// The frame's text; a binary frame's bytes as lossy UTF-8.
    pub text: String,
    #[serde(default)]
    pub binary: bool,
    pub at_ms: u64,
}

/// One `{"messageId","type":"ack"}` a client sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRecord {
    #[serde(rename = "messageId")]
    pub message_id: String,
    pub connection: u64,
    pub registration: String,
    pub at_ms: u64,
}

/// How the server answers client pings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PongMode {
    /// `{"type":"pong","id":<same>}` (default).
    #[default]
    Answer,
    /// No answer: the client's pong timeout fires.
    Withhold,
    /// A pong with a fresh id, not the ping's.
    Mismatch,
}

impl PongMode {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "answer" => Ok(Self::Answer),
            "withhold" => Ok(Self::Withhold),
            "mismatch" => Ok(Self::Mismatch),
            other => bail!("unknown pong mode {other:?}; use answer, withhold or mismatch"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answer => "answer",
            Self::Withhold => "withhold",
            Self::Mismatch => "mismatch",
        }
    }
}

/// `GET /mercury/registrations/{id}/messages`: upgrades; the socket task authorizes and serves it.
pub(crate) async fn upgrade(
    State(app): State<AppState>,
    Path(registration): Path<String>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    // Registered before answering 101, so the admin sees the socket as soon as the client does.
    let io = app
        .sim
        .mercury
        .open(&registration, query.unwrap_or_default(), app.listener.name);
    let sim = Arc::clone(&app.sim);
    let shutdown = app.shutdown.clone();
    ws.on_upgrade(move |ws| socket::run(ws, io, registration, sim, shutdown))
}

/// Registrations a push without a target goes to: every WDM device and every registration with a
/// socket receiving events.
fn targets(sim: &SimState, registration: Option<&str>) -> Vec<String> {
    if let Some(r) = registration {
        return vec![r.to_owned()];
    }
    let mut all = sim.wdm.ids();
    all.extend(sim.mercury.receiving_registrations());
    all.sort();
    all.dedup();
    all
}

/// Checks that every `data` is an object with a non-empty string `eventType`.
fn validate_data(datas: &[Value]) -> anyhow::Result<()> {
    for (i, d) in datas.iter().enumerate() {
        let ok = d
            .get("eventType")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty());
        if !d.is_object() || !ok {
            bail!("event {i}: data must be an object with a non-empty string eventType");
        }
    }
    Ok(())
}

/// Wraps each `data` in an event frame per online socket (to `registration`, or to all), in order.
pub(crate) fn push(
    sim: &SimState,
    registration: Option<&str>,
    datas: &[Value],
) -> anyhow::Result<PushOutcome> {
    validate_data(datas)?;
    Ok(sim.mercury.push(&targets(sim, registration), datas))
}

/// Sends `text` byte for byte to the online socket of `registration` (or of every registration);
/// returns the connection ids.
pub(crate) fn push_raw(sim: &SimState, registration: Option<&str>, text: &str) -> Vec<u64> {
    sim.mercury.push_raw(&targets(sim, registration), text)
}

/// A valid event frame of exactly `bytes` bytes (see `frames::oversized`), sent like [`push_raw`].
pub(crate) fn push_oversized(
    sim: &SimState,
    registration: Option<&str>,
    bytes: usize,
    tracking_id: Option<&str>,
) -> anyhow::Result<Vec<u64>> {
    let tracking = tracking_id.map_or_else(frames::new_tracking_id, str::to_owned);
    let text = frames::oversized(bytes, &frames::new_id(), crate::clock::now_ms(), &tracking)?;
    Ok(push_raw(sim, registration, &text))
}

/// Sets one WDM feature toggle on every device (and future registrations), then pushes
/// `featureToggle_update` with `featureToggle: {key, val, type}` (`type` as given) to every
/// registration. `type` is `DEV`, `USER` or `ENTITLEMENT`, case-insensitive.
pub(crate) fn feature_toggle(
    sim: &SimState,
    key: &str,
    val: &str,
    kind: &str,
) -> anyhow::Result<PushOutcome> {
    if key.trim().is_empty() {
        bail!("featureToggle key must not be empty");
    }
    let mut features = sim.with_scenario(|s| s.wdm.features.clone());
    let group = match kind.to_ascii_uppercase().as_str() {
        "DEV" => &mut features.developer,
        "USER" => &mut features.user,
        "ENTITLEMENT" => &mut features.entitlement,
        other => bail!("unknown featureToggle type {other:?}; use DEV, USER or ENTITLEMENT"),
    };
    match group.iter_mut().find(|t| t.key == key) {
        Some(t) => val.clone_into(&mut t.val),
        None => group.push(FeatureToggle::new(key, val)),
    }
    let features = crate::scenario::WdmFeatures::from_json(
        serde_json::to_value(&features).context("serialising features")?,
    )?;
    sim.set_wdm_features(features);
    let data = json!({
        "eventType": "featureToggle_update",
        "featureToggle": {"key": key, "val": val, "type": kind},
    });
    push(sim, None, &[data])
}
