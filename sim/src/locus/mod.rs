//! Locus call control (wire profile §5, `docs/wire-profile-choices.md` §5), server side.
//!
//! - `model`: loci, participants, sequences and the DTO (full and delta).
//! - `service`: the `/locus/api/v1` routes (call, meetingInfo, join/accept, decline, alert, leave,
//!   controls, sendDtmf, sync, GET locus), bearer-protected, every request recorded per locus.
//! - `admin`: `/admin/locus*`; `handle`: the [`crate::SimHandle`] mirrors.
//!
//! [`Loci`] holds every locus and the delta fault mode behind one mutex. Every change after a
//! locus's creation advances its sequence and sends a `locus.difference` delta (with `self` per
//! device) to every registered device taking part, through the mercury hub; the admin's delta
//! fault modes (`reorder`, `skip`, `force_desync`) act on those deltas only.

mod admin;
mod handle;
mod model;
mod service;

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub(crate) use admin::router as admin_router;
pub use model::MAX_SEQUENCE_ENTRIES;
pub(crate) use service::router as service_router;

use crate::clock::now_ms;
use crate::mercury;
use crate::state::{SimState, lock};
use model::{FarEnd, Locus, LocusType, MoveFail, Participant, Sequence, last_segment, local_part};

/// `[locus]`: call control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocusScenario {
    /// Milliseconds before the far end of an outgoing call answers (or declines); default 500.
    pub answer_delay_ms: u64,
    /// Milliseconds Locus holds its answer to a join (`POST /loci/call`, `POST
    /// /loci/{id}/participant`) after acting on it; default 0. A slow Locus, for clients that
    /// must stay responsive while a join is in flight.
    pub join_delay_ms: u64,
}

impl Default for LocusScenario {
    fn default() -> Self {
        Self {
            answer_delay_ms: 500,
            join_delay_ms: 0,
        }
    }
}

/// Longest `[locus] answer_delay_ms` and `join_delay_ms` (10 minutes).
pub const MAX_ANSWER_DELAY_MS: u64 = 600_000;

impl LocusScenario {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.answer_delay_ms > MAX_ANSWER_DELAY_MS {
            anyhow::bail!("locus.answer_delay_ms must be at most {MAX_ANSWER_DELAY_MS}");
        }
        if self.join_delay_ms > MAX_ANSWER_DELAY_MS {
            anyhow::bail!("locus.join_delay_ms must be at most {MAX_ANSWER_DELAY_MS}");
        }
        Ok(())
    }
}

/// Most DTMF tones in one request.
pub const MAX_DTMF_TONES: usize = 32;

/// Why a locus operation failed; the HTTP status follows the variant.
#[derive(Debug)]
pub(crate) enum LocusError {
    BadRequest(String),
    NotFound(String),
    Conflict(String),
    /// A status a move fail mode asked for (500 leave, 403 join).
    Injected(u16, String),
}

impl LocusError {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::Injected(s, _) => *s,
        }
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            Self::BadRequest(m) | Self::NotFound(m) | Self::Conflict(m) | Self::Injected(_, m) => m,
        }
    }
}

impl std::fmt::Display for LocusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message(), self.status())
    }
}

impl std::error::Error for LocusError {}

type Result<T> = std::result::Result<T, LocusError>;

fn no_locus(id: &str) -> LocusError {
    LocusError::NotFound(format!("no locus {id:?}"))
}

/// What the admin does to the next `locus.difference` deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeltaMode {
    Normal,
    /// Hold the next `count` deltas, then send them newest first.
    Reorder,
    /// Never send the next `count` deltas.
    Skip,
    /// The next `count` deltas carry `baseSequence` = `sequence`.
    ForceDesync,
}

impl DeltaMode {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "normal" => Ok(Self::Normal),
            "reorder" => Ok(Self::Reorder),
            "skip" => Ok(Self::Skip),
            "force_desync" => Ok(Self::ForceDesync),
            other => Err(LocusError::BadRequest(format!(
                "unknown delta mode {other:?}; use reorder, skip, force_desync or normal"
            ))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Reorder => "reorder",
            Self::Skip => "skip",
            Self::ForceDesync => "force_desync",
        }
    }
}

/// Deltas of one change: (registration, event data) per device.
type Batch = Vec<(String, Value)>;

#[derive(Debug)]
struct Inner {
    loci: BTreeMap<String, Locus>,
    /// Ids in creation order.
    order: Vec<String>,
    delta_mode: DeltaMode,
    delta_remaining: u32,
    /// Batches held by `reorder`, oldest first.
    held: Vec<Batch>,
    /// Deltas skipped so far (all time).
    skipped: u64,
}

/// Every locus and the delta fault mode.
#[derive(Debug)]
pub(crate) struct Loci {
    inner: Mutex<Inner>,
}

impl Default for Loci {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                loci: BTreeMap::new(),
                order: Vec::new(),
                delta_mode: DeltaMode::Normal,
                delta_remaining: 0,
                held: Vec::new(),
                skipped: 0,
            }),
        }
    }
}

/// The deltas of one applied change, before the delta fault mode routes them.
struct Change {
    batch: Batch,
}

impl Inner {
    fn insert(&mut self, l: Locus) {
        self.order.push(l.id.clone());
        self.loci.insert(l.id.clone(), l);
    }

    fn get_mut(&mut self, id: &str) -> Result<&mut Locus> {
        let key = resolve_id(id);
        self.loci.get_mut(key).ok_or_else(|| no_locus(key))
    }
}

/// A locus id from an id or a locus URL.
fn resolve_id(id_or_url: &str) -> &str {
    let s = id_or_url.trim_end_matches('/');
    s.rsplit_once("/loci/").map_or(s, |(_, rest)| rest)
}

/// The deltas of a change just applied to `l`: one per local participant's device that is
/// registered, each with its own `self`.
fn deltas(sim: &SimState, l: &Locus, base: &Sequence, changed: &[usize]) -> Batch {
    let registered = sim.wdm.ids();
    l.participants
        .iter()
        .filter(|p| p.local)
        .map(|p| last_segment(&p.device_url).to_owned())
        .filter(|reg| registered.contains(reg))
        .map(|reg| {
            let data = json!({
                "eventType": "locus.difference",
                "locus": l.render_delta(base, changed, Some(&reg)),
            });
            (reg, data)
        })
        .collect()
}

/// Full-DTO events (`locus.participant_alerted`, `locus.participant_moved`) to every registered
/// local participant of `l`.
fn full_events(sim: &SimState, l: &Locus, event_type: &str) -> Batch {
    let registered = sim.wdm.ids();
    l.participants
        .iter()
        .filter(|p| p.local)
        .map(|p| last_segment(&p.device_url).to_owned())
        .filter(|reg| registered.contains(reg))
        .map(|reg| {
            let data = json!({"eventType": event_type, "locus": l.render(Some(&reg))});
            (reg, data)
        })
        .collect()
}

fn send(sim: &SimState, batch: Batch) {
    for (reg, data) in batch {
        let event_type = data["eventType"].as_str().unwrap_or_default().to_owned();
        match mercury::push(sim, Some(&reg), &[data]) {
            Ok(out) if out.delivered.is_empty() => {
                tracing::info!(registration = %reg, %event_type, "locus event not delivered: no online socket");
            }
            Ok(_) => tracing::debug!(registration = %reg, %event_type, "locus event sent"),
            Err(e) => tracing::warn!(error = %e, "locus event refused"),
        }
    }
}

/// Applies a change under the lock: `f` mutates the locus and returns the changed participant
/// indexes (empty: nothing changed, no sequence entry, no delta) and a value for the caller.
fn change<T>(
    sim: &SimState,
    id: &str,
    f: impl FnOnce(&mut Locus) -> Result<(Vec<usize>, T)>,
) -> Result<T> {
    let mut inner = lock(&sim.locus.inner);
    let l = inner.get_mut(id)?;
    let base = l.sequence.clone();
    let (changed, out) = f(l)?;
    let Some(c) = finish(sim, l, &base, &changed) else {
        return Ok(out);
    };
    let to_send = inner.route(c.batch);
    drop(inner);
    for batch in to_send {
        send(sim, batch);
    }
    Ok(out)
}

/// Advances the sequence after a change that touched `changed` (unless empty) and renders deltas.
fn finish(sim: &SimState, l: &mut Locus, base: &Sequence, changed: &[usize]) -> Option<Change> {
    if changed.is_empty() {
        return None;
    }
    l.sequence.advance();
    Some(Change {
        batch: deltas(sim, l, base, changed),
    })
}

impl Inner {
    /// Runs a change's deltas through the delta fault mode; what to send now, in order.
    fn route(&mut self, mut batch: Batch) -> Vec<Batch> {
        if batch.is_empty() {
            return Vec::new();
        }
        let mode = self.delta_mode;
        if mode == DeltaMode::Normal {
            return vec![batch];
        }
        self.delta_remaining = self.delta_remaining.saturating_sub(1);
        let last = self.delta_remaining == 0;
        if last {
            self.delta_mode = DeltaMode::Normal;
        }
        match mode {
            DeltaMode::Normal => vec![batch],
            DeltaMode::Skip => {
                self.skipped += 1;
                tracing::info!("locus delta skipped (admin delta mode skip)");
                Vec::new()
            }
            DeltaMode::ForceDesync => {
                for (_, data) in &mut batch {
                    let seq = data["locus"]["sequence"].clone();
                    data["locus"]["baseSequence"] = seq;
                }
                vec![batch]
            }
            DeltaMode::Reorder => {
                self.held.push(batch);
                if last {
                    let mut held = std::mem::take(&mut self.held);
                    held.reverse();
                    held
                } else {
                    Vec::new()
                }
            }
        }
    }
}

/// The base URL (`https://host:port`) of a locus URL.
fn base_of(locus_url: &str) -> &str {
    locus_url
        .split_once("/locus/api/v1/")
        .map_or(locus_url, |(b, _)| b)
}

/// The body fields every join records.
fn join_record(body: &Value, device_url: &str) -> Value {
    json!({
        "deviceUrl": device_url,
        "correlationId": body["correlationId"],
        "reachability": body.get("reachability").cloned().unwrap_or(Value::Null),
        "at_ms": now_ms(),
    })
}

impl Loci {
    /// Records a request on locus `id` (if it exists).
    pub(crate) fn record(&self, id: &str, method: &str, path: &str, body: &str) {
        let mut inner = lock(&self.inner);
        if let Ok(l) = inner.get_mut(id) {
            let parsed = serde_json::from_str::<Value>(body)
                .unwrap_or_else(|_| Value::String(body.to_owned()));
            l.requests.push(json!({
                "method": method,
                "path": path,
                "body": if body.is_empty() { Value::Null } else { parsed },
                "at_ms": now_ms(),
            }));
        }
    }

    /// The full DTO of a locus, `self` for `device` (or the first local participant).
    pub(crate) fn render(&self, id: &str, device: Option<&str>) -> Result<Value> {
        let inner = lock(&self.inner);
        let key = resolve_id(id);
        inner
            .loci
            .get(key)
            .map(|l| l.render(device))
            .ok_or_else(|| no_locus(key))
    }

    /// The admin listing; `mediaNode` names the media node and the STUN checks it answered.
    pub(crate) fn snapshot(
        &self,
        media_node: std::net::SocketAddr,
        binding_requests: u64,
    ) -> Value {
        let inner = lock(&self.inner);
        json!({
            "loci": inner
                .order
                .iter()
                .filter_map(|id| inner.loci.get(id))
                .map(Locus::admin_json)
                .collect::<Vec<_>>(),
            "deltas": {
                "mode": inner.delta_mode.as_str(),
                "remaining": inner.delta_remaining,
                "held": inner.held.len(),
                "skipped": inner.skipped,
            },
            "mediaNode": {
                "addr": media_node.to_string(),
                "bindingRequests": binding_requests,
            },
        })
    }
}

/// `POST /loci/call`: a CALL locus with the device JOINED and the invitee NOTIFIED. Returns the
/// locus id, its full DTO and how the far end will behave.
pub(crate) fn call(
    sim: &SimState,
    base: &str,
    address: &str,
    device_url: &str,
    body: &Value,
    path: &str,
) -> (String, Value, FarEnd) {
    let name = local_part(address);
    let mut l = Locus::new(base, LocusType::Call, name, address);
    l.participants
        .push(Participant::device(device_url, "JOINED"));
    l.participants
        .push(Participant::remote(name, address, "NOTIFIED"));
    l.host = 0;
    l.far_end = FarEnd::of(address);
    l.joins.push(join_record(body, device_url));
    l.requests
        .push(json!({"method": "POST", "path": path, "body": body, "at_ms": now_ms()}));
    let dto = l.render(Some(device_url));
    let out = (l.id.clone(), dto, l.far_end);
    tracing::info!(locus = %l.id, %address, far_end = ?l.far_end, "locus call created");
    lock(&sim.locus.inner).insert(l);
    out
}

/// The far end of an outgoing call answers (JOINED, ACTIVE) or declines (DECLINED, INACTIVE), if
/// it is still ringing.
pub(crate) fn far_end_responds(sim: &SimState, id: &str, far_end: FarEnd) {
    let res = change(sim, id, |l| {
        let Some(i) = l
            .participants
            .iter()
            .position(|p| !p.local && p.state == "NOTIFIED")
        else {
            return Ok((Vec::new(), ()));
        };
        if l.state != "INITIALIZING" {
            return Ok((Vec::new(), ()));
        }
        match far_end {
            FarEnd::Answer => {
                l.participants[i].state = "JOINED";
                l.state = "ACTIVE";
            }
            FarEnd::Decline => {
                l.participants[i].state = "DECLINED";
                l.participants[i].reason = Some("BUSY".to_owned());
                l.state = "INACTIVE";
            }
            FarEnd::NoAnswer => return Ok((Vec::new(), ())),
        }
        tracing::info!(locus = %l.id, state = l.state, "far end responded");
        Ok((vec![i], ()))
    });
    if let Err(e) = res {
        tracing::debug!(error = %e, "far end response skipped");
    }
}

/// `GET /loci/meetingInfo?address=`: the meeting locus with this address, made (named after the
/// local part, host JOINED, ACTIVE) when unknown. `(locusUrl, meetingName)`.
pub(crate) fn meeting_info(sim: &SimState, base: &str, address: &str) -> (String, String) {
    let mut inner = lock(&sim.locus.inner);
    if let Some(l) = inner.loci.values().find(|l| {
        l.kind == LocusType::Meeting
            && l.state != "ENDED"
            && l.sip_uri.eq_ignore_ascii_case(address)
    }) {
        return (l.url.clone(), l.name.clone());
    }
    let l = new_meeting(base, local_part(address), address);
    let out = (l.url.clone(), l.name.clone());
    tracing::info!(locus = %l.id, %address, "meeting locus created");
    inner.insert(l);
    out
}

/// A MEETING locus, ACTIVE, with its host JOINED.
fn new_meeting(base: &str, name: &str, address: &str) -> Locus {
    let mut l = Locus::new(base, LocusType::Meeting, name, address);
    l.state = "ACTIVE";
    l.participants.push(Participant::remote(
        &format!("{name} host"),
        &format!("host-{}", address),
        "JOINED",
    ));
    l.host = 0;
    l
}

/// `POST /loci/{id}/participant`: join a meeting or accept a call. The locus to answer with (a
/// wrong meeting's id under the `wrong_meeting` fail mode).
pub(crate) fn join(sim: &SimState, id: &str, device_url: &str, body: &Value) -> Result<String> {
    let fail = {
        let mut inner = lock(&sim.locus.inner);
        let l = inner.get_mut(id)?;
        l.joins.push(join_record(body, device_url));
        match l.move_fail {
            Some(f @ (MoveFail::Join | MoveFail::WrongMeeting)) => {
                l.move_fail = None;
                Some((f, base_of(&l.url).to_owned(), l.name.clone()))
            }
            _ => None,
        }
    };
    let target = match fail {
        Some((MoveFail::Join, _, _)) => {
            tracing::info!(locus = %id, "join refused (move fail mode join)");
            return Err(LocusError::Injected(
                403,
                "join refused (roomd-sim move fail mode \"join\")".to_owned(),
            ));
        }
        Some((_, base, name)) => {
            let wrong = new_meeting(
                &base,
                &format!("Not {name}"),
                &format!("wrong-{}@meet.sim.invalid", uuid::Uuid::new_v4()),
            );
            let wid = wrong.id.clone();
            tracing::info!(locus = %id, wrong = %wid, "join answered with another meeting (move fail mode wrong_meeting)");
            lock(&sim.locus.inner).insert(wrong);
            wid
        }
        None => resolve_id(id).to_owned(),
    };
    change(sim, &target, |l| {
        if l.state == "ENDED" {
            return Err(LocusError::Conflict(format!("locus {} has ended", l.id)));
        }
        let i = match l.device_index(device_url) {
            Some(i) => i,
            None => {
                l.participants.push(Participant::device(device_url, "IDLE"));
                l.participants.len() - 1
            }
        };
        let p = &mut l.participants[i];
        p.state = "JOINED";
        p.reason = None;
        p.ringing = false;
        if l.state != "ACTIVE"
            && l.participants
                .iter()
                .any(|p| !p.local && p.state == "JOINED")
        {
            l.state = "ACTIVE";
        }
        tracing::info!(locus = %l.id, "device joined");
        Ok((vec![i], ()))
    })?;
    Ok(target)
}

/// `PUT /loci/{id}/participant/decline`.
pub(crate) fn decline(sim: &SimState, id: &str, device_url: &str, reason: &str) -> Result<()> {
    change(sim, id, |l| {
        let i = l.device_index(device_url).ok_or_else(|| {
            LocusError::NotFound(format!(
                "device {device_url} is not a participant of locus {}",
                l.id
            ))
        })?;
        l.participants[i].state = "DECLINED";
        l.participants[i].reason = Some(reason.to_owned());
        l.participants[i].ringing = false;
        let mut changed = vec![i];
        if l.kind == LocusType::Call {
            end_call(l, &mut changed);
        }
        Ok((changed, ()))
    })
}

/// Ends a CALL: ENDED, and every participant still JOINED or NOTIFIED LEFT.
fn end_call(l: &mut Locus, changed: &mut Vec<usize>) {
    l.state = "ENDED";
    for (j, p) in l.participants.iter_mut().enumerate() {
        if matches!(p.state, "JOINED" | "NOTIFIED") {
            p.state = "LEFT";
            if !changed.contains(&j) {
                changed.push(j);
            }
        }
    }
}

/// `PUT /loci/{id}/participant/alert`: the device is ringing.
pub(crate) fn alert(sim: &SimState, id: &str, device_url: &str) -> Result<()> {
    let mut inner = lock(&sim.locus.inner);
    let l = inner.get_mut(id)?;
    let i = l.device_index(device_url).ok_or_else(|| {
        LocusError::NotFound(format!(
            "device {device_url} is not a participant of locus {}",
            l.id
        ))
    })?;
    l.participants[i].ringing = true;
    Ok(())
}

/// `PUT /loci/{id}/participant/{participantId}/leave`.
pub(crate) fn leave(sim: &SimState, id: &str, participant: &str, device_url: &str) -> Result<()> {
    {
        let mut inner = lock(&sim.locus.inner);
        let l = inner.get_mut(id)?;
        if l.move_fail == Some(MoveFail::Leave) && l.device_index(device_url).is_some() {
            l.move_fail = None;
            tracing::info!(locus = %l.id, "leave fails (move fail mode leave)");
            return Err(LocusError::Injected(
                500,
                "leave failed (roomd-sim move fail mode \"leave\")".to_owned(),
            ));
        }
    }
    change(sim, id, |l| {
        let i = l
            .participants
            .iter()
            .position(|p| p.id == participant)
            .ok_or_else(|| {
                LocusError::NotFound(format!("no participant {participant:?} in locus {}", l.id))
            })?;
        l.participants[i].state = "LEFT";
        l.participants[i].ringing = false;
        let mut changed = vec![i];
        if l.kind == LocusType::Call {
            end_call(l, &mut changed);
        }
        tracing::info!(locus = %l.id, state = l.state, "participant left");
        Ok((changed, ()))
    })
}

/// `PATCH /loci/{id}/controls` with `hold`: sets the participant's `controls.hold.held`.
pub(crate) fn hold(
    sim: &SimState,
    id: &str,
    participant_url: &str,
    held: bool,
) -> Result<Option<String>> {
    change(sim, id, |l| {
        let pid = last_segment(participant_url);
        let i = l
            .participants
            .iter()
            .position(|p| p.id == pid)
            .ok_or_else(|| {
                LocusError::BadRequest(format!(
                    "participantUrl {participant_url:?} is not a participant of locus {}",
                    l.id
                ))
            })?;
        let p = &l.participants[i];
        let device = p.local.then(|| p.device_url.clone());
        if p.held == held {
            return Ok((Vec::new(), device));
        }
        l.participants[i].held = held;
        Ok((vec![i], device))
    })
}

/// `POST /loci/{id}/sendDtmf`: records the tones.
pub(crate) fn dtmf(
    sim: &SimState,
    id: &str,
    device_url: &str,
    correlation: &Value,
    tones: &str,
) -> Result<()> {
    let mut inner = lock(&sim.locus.inner);
    let l = inner.get_mut(id)?;
    l.dtmf.push(json!({
        "deviceUrl": device_url,
        "correlationId": correlation,
        "tones": tones,
        "at_ms": now_ms(),
    }));
    tracing::info!(locus = %l.id, %tones, "DTMF received");
    Ok(())
}

/// Admin: an incoming CALL from `caller` ringing every registered device; pushes
/// `locus.participant_alerted`. The locus URL.
pub(crate) fn incoming(sim: &SimState, caller: &str, name: &str) -> Result<String> {
    if caller.trim().is_empty() {
        return Err(LocusError::BadRequest(
            "caller must not be empty".to_owned(),
        ));
    }
    let devices = sim.wdm.ids();
    if devices.is_empty() {
        return Err(LocusError::Conflict(
            "no registered device to ring".to_owned(),
        ));
    }
    let base = &sim.endpoints.service_base;
    let name = if name.trim().is_empty() {
        local_part(caller)
    } else {
        name
    };
    let mut l = Locus::new(base, LocusType::Call, name, caller);
    l.participants
        .push(Participant::remote(name, caller, "JOINED"));
    for d in &devices {
        l.participants.push(Participant::device(
            &format!("{base}/wdm/api/v1/devices/{d}"),
            "NOTIFIED",
        ));
    }
    l.host = 0;
    l.far_end = FarEnd::NoAnswer;
    let url = l.url.clone();
    let events = full_events(sim, &l, "locus.participant_alerted");
    tracing::info!(locus = %l.id, %caller, devices = devices.len(), "incoming call");
    lock(&sim.locus.inner).insert(l);
    send(sim, events);
    Ok(url)
}

/// Admin: the far end leaves; the locus ENDS.
pub(crate) fn hangup(sim: &SimState, id: &str) -> Result<()> {
    change(sim, id, |l| {
        if l.state == "ENDED" {
            return Err(LocusError::Conflict(format!(
                "locus {} has already ended",
                l.id
            )));
        }
        let mut changed = Vec::new();
        for (i, p) in l.participants.iter_mut().enumerate() {
            if !p.local && p.state != "LEFT" {
                p.state = "LEFT";
                changed.push(i);
            }
        }
        l.state = "ENDED";
        if changed.is_empty() {
            changed.push(l.host);
        }
        tracing::info!(locus = %l.id, "far end hung up");
        Ok((changed, ()))
    })
}

/// Admin: someone else joins locus `id` (a roster change the device learns only from the
/// delta); the new participant's URL.
pub(crate) fn add_participant(sim: &SimState, id: &str, name: &str) -> Result<String> {
    if name.trim().is_empty() {
        return Err(LocusError::BadRequest("name must not be empty".to_owned()));
    }
    change(sim, id, |l| {
        if l.state == "ENDED" {
            return Err(LocusError::Conflict(format!("locus {} has ended", l.id)));
        }
        let address = format!(
            "{}@example.invalid",
            name.to_ascii_lowercase().replace(' ', ".")
        );
        l.participants
            .push(model::Participant::remote(name, &address, "JOINED"));
        let index = l.participants.len() - 1;
        let url = model::participant_url(&l.url, &l.participants[index].id);
        tracing::info!(locus = %l.id, participant = %name, "participant joined");
        Ok((vec![index], url))
    })
}

/// Admin: moves the devices of locus `id` to a new MEETING named `name`; pushes
/// `locus.participant_moved`. `(new url, new id)`.
pub(crate) fn r#move(
    sim: &SimState,
    id: &str,
    name: &str,
    fail: Option<&str>,
) -> Result<(String, String)> {
    let fail = MoveFail::parse(fail).map_err(LocusError::BadRequest)?;
    if name.trim().is_empty() {
        return Err(LocusError::BadRequest("name must not be empty".to_owned()));
    }
    let mut inner = lock(&sim.locus.inner);
    let old = inner.get_mut(id)?;
    let devices: Vec<String> = old
        .participants
        .iter()
        .filter(|p| p.local)
        .map(|p| p.device_url.clone())
        .collect();
    if fail == Some(MoveFail::Leave) {
        old.move_fail = Some(MoveFail::Leave);
    }
    let old_url = old.url.clone();
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut dest = new_meeting(base_of(&old_url), name, &format!("{slug}@meet.sim.invalid"));
    dest.replaces.push(old_url);
    for d in &devices {
        let mut p = Participant::device(d, "IDLE");
        p.reason = Some("MOVED".to_owned());
        dest.participants.push(p);
    }
    if matches!(fail, Some(MoveFail::Join | MoveFail::WrongMeeting)) {
        dest.move_fail = fail;
    }
    let out = (dest.url.clone(), dest.id.clone());
    let events = full_events(sim, &dest, "locus.participant_moved");
    tracing::info!(from = %id, to = %dest.id, fail = ?fail, "devices moved");
    inner.insert(dest);
    drop(inner);
    send(sim, events);
    Ok(out)
}

/// Admin: sets the delta fault mode for the next `count` deltas. Deltas held by an earlier
/// `reorder` are sent first, in their original order.
pub(crate) fn set_delta_mode(sim: &SimState, mode: &str, count: u32) -> Result<()> {
    let mode = DeltaMode::parse(mode)?;
    if mode != DeltaMode::Normal && count == 0 {
        return Err(LocusError::BadRequest(
            "count must be at least 1".to_owned(),
        ));
    }
    let mut inner = lock(&sim.locus.inner);
    let held = std::mem::take(&mut inner.held);
    inner.delta_mode = mode;
    inner.delta_remaining = if mode == DeltaMode::Normal { 0 } else { count };
    drop(inner);
    tracing::info!(mode = mode.as_str(), count, "locus delta mode");
    for batch in held {
        send(sim, batch);
    }
    Ok(())
}
