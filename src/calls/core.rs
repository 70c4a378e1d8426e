//! The call core: every call's state and every decision about it, without I/O. It takes
//! [`Input`]s (a command, a Locus event, the answer of a request it asked for, a deadline) and
//! returns [`Action`]s (a Locus request, a media start or stop, a reply, an xAPI event) that
//! `calls::manager` carries out as tasks, feeding their answers back as inputs. So a hang-up
//! or a shutdown never waits behind a slow join, and the core is tested as a table.
//!
//! Ordering: while a request whose answer changes a call's locus is in flight (a join, the
//! connectivity check after it, a hold, a sync), the call is *held*: Locus events for it wait
//! in the core and are applied, in arrival order, once the answer is in. Events for no known
//! call wait too while a join whose locus is not known yet is in flight (it may be theirs).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use super::diagnostics as diag;
use super::messages::{
    Action, Answer, CallError, CallEvent, Command, DialOutcome, Done, Input, LocusRequest, Offer,
    OpId, valid_tones,
};
use super::sdp;
use super::state::{self, CallState, Derived, Direction, EndCause};
use super::status::{CallKind, CallView, CallsStatus, DiagnosticRecord};
use crate::config::MeetingUriRegex;
use crate::locus::tracker::{Applied, LocusTracker, SyncReason};
use crate::media::plan::MediaPlan;
use crate::media::session::MediaEvent;
use crate::platform::logging::message_id;
use crate::proto::locus::{JoinAnswer, LocusDto, LocusType, Participant, ParticipantState};

/// Ended calls kept in status.
const ENDED_KEPT: usize = 5;
/// A reply owed once a request's answer is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owed {
    Accept,
    Reject,
    Disconnect,
    Hold,
    Dtmf,
}

/// A move in progress (see `calls::moves`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MoveInProgress {
    pub from: String,
    pub to: String,
    pub name: String,
}

#[derive(Debug)]
pub(super) struct Call {
    pub id: u32,
    pub direction: Direction,
    pub kind: CallKind,
    pub state: CallState,
    pub remote_number: String,
    pub display_name: String,
    pub correlation_id: String,
    pub tracker: LocusTracker,
    /// The event bus's resync generation when the call began.
    pub resync_generation: u64,
    pub started: SystemTime,
    pub connected_at: Option<SystemTime>,
    pub diagnostics: Vec<DiagnosticRecord>,
    /// SSRCs and CSIs of this join's offer.
    pub plan: MediaPlan,
    /// Bumped when a move starts the call over: answers for an earlier attempt are stale.
    pub attempt: u32,
    /// A join of this attempt is in flight.
    pub joining: bool,
    /// Requests in flight whose answer changes the locus (join, ICE, hold, sync).
    pub holds: u32,
    /// A sync is in flight (no second one is started).
    pub syncing: bool,
    /// Replies owed, answered when the request of that kind comes back.
    owed: Vec<(Owed, OpId)>,
    pub moving: Option<MoveInProgress>,
    /// The media node and CSI extension id, for the media start after the connectivity check.
    media_target: Option<(SocketAddr, u8)>,
}

impl Call {
    pub fn locus_url(&self) -> Option<&str> {
        self.tracker.current().map(|l| l.url.as_str())
    }

    /// This device's participant in the working copy.
    pub fn me(&self) -> Option<&Participant> {
        self.tracker.current().and_then(|l| l.self_.as_ref())
    }

    /// The leave of this call's locus, once the locus is known.
    pub fn leave_request(&self) -> Option<LocusRequest> {
        Some(LocusRequest::Leave {
            locus_url: self.locus_url()?.to_owned(),
            self_id: self.me().map(|p| p.id.clone()).unwrap_or_default(),
            correlation_id: self.correlation_id.clone(),
        })
    }

    fn held(&self) -> bool {
        self.holds > 0
    }

    fn view(&self) -> CallView {
        CallView {
            id: self.id,
            status: self.state,
            direction: self.direction,
            kind: self.kind,
            remote_number: self.remote_number.clone(),
            display_name: self.display_name.clone(),
            locus_url: self.locus_url().map(str::to_owned),
            participants: self.tracker.current().map_or(0, |dto| {
                dto.participants
                    .iter()
                    .filter(|p| p.state == ParticipantState::Joined && !p.removed)
                    .count()
            }),
            correlation_id: self.correlation_id.clone(),
            started: self.started,
            connected_at: self.connected_at,
            end_cause: None,
            end_detail: None,
            diagnostics: self.diagnostics.clone(),
        }
    }

    /// Logs a diagnostic event and keeps it with the call.
    pub fn diagnostic(&mut self, name: &'static str) {
        log_diagnostic(self.id, &self.correlation_id, name, None);
        self.diagnostics.push(DiagnosticRecord {
            name,
            at: SystemTime::now(),
        });
    }

    fn take_owed(&mut self, kind: Owed) -> Option<OpId> {
        let index = self.owed.iter().position(|(k, _)| *k == kind)?;
        Some(self.owed.remove(index).1)
    }
}

/// `Diagnostic event: <name>` with the call's ids (and `error=` for failures, like seed 000's
/// `name=client.media.rx.stop mediaType=video error=media-engine`).
pub fn log_diagnostic(call_id: u32, correlation_id: &str, name: &str, error: Option<&str>) {
    match error {
        None => tracing::info!(
            message_id = message_id::DIAGNOSTIC_EVENT,
            correlation_id = %correlation_id,
            call_id,
            "Diagnostic event: {name}"
        ),
        Some(error) => tracing::warn!(
            message_id = message_id::DIAGNOSTIC_EVENT,
            correlation_id = %correlation_id,
            call_id,
            error,
            "Diagnostic event: {name} mediaType=video error={error}"
        ),
    }
}

/// Every call, and what status shows of them.
#[derive(Debug)]
pub struct CallCore {
    meeting_uri_regex: MeetingUriRegex,
    /// Simulcast layers each offer carries.
    media_layers: usize,
    pub(super) calls: Vec<Call>,
    next_id: u32,
    /// The newest resync generation seen: what a call begun now records.
    generation: u64,
    /// Events waiting for a held call or a join in flight, in arrival order.
    waiting: VecDeque<(LocusDto, EventKind)>,
    /// Joins of calls that ended while the join was in flight: `(call id, attempt,
    /// correlation id)`; their locus is left once the answer names it.
    pub(super) orphans: Vec<(u32, u32, String)>,
    /// The calls' part of the device status (the room's dial records excepted).
    pub(super) status: CallsStatus,
    pub(super) actions: Vec<Action>,
}

impl CallCore {
    pub fn new(meeting_uri_regex: MeetingUriRegex, media_layers: usize) -> Self {
        Self {
            meeting_uri_regex,
            media_layers: media_layers.max(1),
            calls: Vec::new(),
            next_id: 1,
            generation: 0,
            waiting: VecDeque::new(),
            orphans: Vec::new(),
            status: CallsStatus::default(),
            actions: Vec::new(),
        }
    }

    /// The status as of now: `available`, `active`, `ended`, `notice`, `moves`, `locus`.
    pub fn status(&self) -> &CallsStatus {
        &self.status
    }

    /// Records the event bus's resync generation (calls begun from now on record it).
    pub fn observe_generation(&mut self, generation: u64) {
        self.generation = generation;
    }

    /// When the earliest WAIT deadline of a call without a sync in flight passes.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.calls
            .iter()
            .filter(|c| !c.syncing)
            .filter_map(|c| c.tracker.wait_deadline())
            .min()
    }

    /// Whether the manager should keep a media session it started for `attempt` of `call_id`.
    pub fn media_wanted(&self, call_id: u32, attempt: u32) -> bool {
        self.calls
            .iter()
            .any(|c| c.id == call_id && c.attempt == attempt)
    }

    /// Calls in progress.
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty()
    }

    /// Handles one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        match input {
            Input::Command { op, command } => self.command(op, command),
            Input::Event(data) => self.event(&data),
            Input::Done {
                call_id,
                attempt,
                done,
            } => self.done(call_id, attempt, *done),
            Input::Deadline => self.deadlines(Instant::now()),
            Input::Resync { generation } => self.resync_all(generation),
            Input::Services { available } => self.status.available = available,
        }
        self.publish();
        std::mem::take(&mut self.actions)
    }

    /// Shutdown: leave (or decline) every call whose locus is known, end the others at once.
    /// The manager runs the returned requests with a deadline, then [`Self::stopped`].
    pub fn shutdown(&mut self) -> Vec<Action> {
        self.orphans.clear();
        self.waiting.clear();
        let ids: Vec<u32> = self.calls.iter().map(|c| c.id).collect();
        for id in ids {
            let Some(index) = self.calls.iter().position(|c| c.id == id) else {
                continue;
            };
            let call = &mut self.calls[index];
            call.holds = 0;
            call.moving = None;
            if call.joining || call.locus_url().is_none() {
                self.end(id, EndCause::LocalDisconnect, Some("roomd stopped".into()));
            } else if call.state == CallState::Ringing {
                self.start_decline(index, None);
            } else {
                self.start_leave(index, None);
            }
        }
        self.publish();
        std::mem::take(&mut self.actions)
    }

    /// After shutdown's requests (answered or not): every call still there ends.
    pub fn stopped(&mut self) -> Vec<Action> {
        let ids: Vec<u32> = self.calls.iter().map(|c| c.id).collect();
        for id in ids {
            self.end(id, EndCause::LocalDisconnect, Some("roomd stopped".into()));
        }
        self.publish();
        std::mem::take(&mut self.actions)
    }

    pub(super) fn call_mut(&mut self, id: u32) -> Option<&mut Call> {
        self.calls.iter_mut().find(|c| c.id == id)
    }

    fn reply(&mut self, op: OpId, result: Result<Answer, CallError>) {
        self.actions.push(Action::Reply { op, result });
    }

    fn done_reply(&mut self, op: Option<OpId>, result: Result<(), CallError>) {
        if let Some(op) = op {
            self.reply(op, result.map(|()| Answer::Done));
        }
    }

    pub(super) fn push_locus(&mut self, call_id: u32, attempt: u32, request: LocusRequest) {
        self.actions.push(Action::Locus {
            call_id,
            attempt,
            request,
        });
    }

    pub(super) fn new_offer(&self, call: &Call) -> Offer {
        Offer {
            call_id: call.id,
            correlation_id: call.correlation_id.clone(),
            plan: call.plan.clone(),
        }
    }

    pub(super) fn new_plan(&self) -> MediaPlan {
        MediaPlan::random(self.media_layers)
    }

    fn find(&self, call_id: Option<u32>, want: impl Fn(&Call) -> bool) -> Result<usize, CallError> {
        match call_id {
            Some(id) => self
                .calls
                .iter()
                .position(|c| c.id == id)
                .ok_or(CallError::NoSuchCall(id)),
            None => self
                .calls
                .iter()
                .position(want)
                .or_else(|| (!self.calls.is_empty()).then_some(0))
                .ok_or(CallError::NoCall),
        }
    }

    /// [`Self::find`] preferring a call in `state`, which the call found must be in for
    /// `action` (`accepted`, `sent DTMF`).
    fn find_in_state(
        &self,
        call_id: Option<u32>,
        state: CallState,
        action: &'static str,
    ) -> Result<usize, CallError> {
        let index = self.find(call_id, |c| c.state == state)?;
        let call = &self.calls[index];
        if call.state != state {
            return Err(CallError::WrongState {
                id: call.id,
                state: call.state.as_str(),
                action,
            });
        }
        Ok(index)
    }

    fn new_call(&mut self, direction: Direction, kind: CallKind, remote: String) -> usize {
        let call = Call {
            id: self.next_id,
            direction,
            kind,
            state: if direction == Direction::Incoming {
                CallState::Ringing
            } else {
                CallState::Dialling
            },
            display_name: remote.clone(),
            remote_number: remote,
            correlation_id: uuid::Uuid::new_v4().to_string(),
            tracker: LocusTracker::new(),
            resync_generation: self.generation,
            started: SystemTime::now(),
            connected_at: None,
            diagnostics: Vec::new(),
            plan: self.new_plan(),
            attempt: 0,
            joining: false,
            holds: 0,
            syncing: false,
            owed: Vec::new(),
            moving: None,
            media_target: None,
        };
        self.next_id += 1;
        self.calls.push(call);
        self.calls.len() - 1
    }

    fn command(&mut self, op: OpId, command: Command) {
        let result = match command {
            Command::Dial { number } => match self.dial(number) {
                Ok(outcome) => Ok(Some(Answer::Dialled(outcome))),
                Err(e) => Err(e),
            },
            Command::Accept { call_id } => self.accept(op, call_id),
            Command::Reject { call_id } => self.reject(op, call_id),
            Command::Disconnect { call_id } => self.disconnect(op, call_id),
            Command::Hold { call_id, held } => self.hold(op, call_id, held),
            Command::Dtmf { call_id, tones } => self.dtmf(op, call_id, tones),
        };
        // `Ok(None)`: answered once the request it started comes back.
        match result {
            Ok(Some(answer)) => self.reply(op, Ok(answer)),
            Ok(None) => {}
            Err(e) => self.reply(op, Err(e)),
        }
    }

    fn dial(&mut self, number: String) -> Result<DialOutcome, CallError> {
        if !self.status.available {
            return Err(CallError::NotRegistered);
        }
        if let Some(busy) = self.calls.iter().find(|c| c.state != CallState::Ringing) {
            return Err(CallError::Busy(busy.id));
        }
        let meeting = self.meeting_uri_regex.is_match(&number);
        let kind = if meeting {
            CallKind::Meeting
        } else {
            CallKind::Call
        };
        let index = self.new_call(Direction::Outgoing, kind, number.clone());
        let offer = self.new_offer(&self.calls[index]);
        let call = &mut self.calls[index];
        let id = call.id;
        tracing::info!(
            message_id = message_id::CALL_STARTED,
            call_id = id,
            correlation_id = %call.correlation_id,
            "Call {id}: dialling {number} as a {}",
            if meeting { "cloud meeting (the meeting regex matched)" } else { "call" }
        );
        call.diagnostic(diag::CALL_INITIATED);
        call.diagnostic(diag::LOCAL_SDP_GENERATED);
        call.diagnostic(diag::JOIN_REQUEST);
        call.joining = true;
        call.holds += 1;
        let outcome = DialOutcome {
            call_id: id,
            conference_id: call.correlation_id.clone(),
        };
        self.actions.push(Action::Event(CallEvent::Outgoing {
            call_id: id,
            remote_uri: number.clone(),
        }));
        let request = if meeting {
            LocusRequest::JoinMeeting {
                address: number,
                offer,
            }
        } else {
            LocusRequest::Call {
                address: number,
                offer,
            }
        };
        self.push_locus(id, 0, request);
        Ok(outcome)
    }

    fn accept(&mut self, op: OpId, call_id: Option<u32>) -> Result<Option<Answer>, CallError> {
        if !self.status.available {
            return Err(CallError::NotRegistered);
        }
        let index = self.find_in_state(call_id, CallState::Ringing, "accepted")?;
        let id = self.calls[index].id;
        if let Some(other) = self
            .calls
            .iter()
            .find(|c| c.id != id && c.state != CallState::Ringing)
        {
            return Err(CallError::Busy(other.id));
        }
        let offer = self.new_offer(&self.calls[index]);
        let call = &mut self.calls[index];
        let locus_url = call.locus_url().unwrap_or_default().to_owned();
        call.state = CallState::Connecting;
        call.diagnostic(diag::LOCAL_SDP_GENERATED);
        call.diagnostic(diag::JOIN_REQUEST);
        call.joining = true;
        call.holds += 1;
        call.owed.push((Owed::Accept, op));
        let attempt = call.attempt;
        tracing::info!(call_id = id, "Call {id}: accepting");
        self.push_locus(id, attempt, LocusRequest::Join { locus_url, offer });
        Ok(None)
    }

    fn reject(&mut self, op: OpId, call_id: Option<u32>) -> Result<Option<Answer>, CallError> {
        if !self.status.available {
            return Err(CallError::NotRegistered);
        }
        let index = self.find_in_state(call_id, CallState::Ringing, "rejected")?;
        self.start_decline(index, Some(op));
        Ok(None)
    }

    fn start_decline(&mut self, index: usize, op: Option<OpId>) {
        let call = &mut self.calls[index];
        let (id, attempt) = (call.id, call.attempt);
        let locus_url = call.locus_url().unwrap_or_default().to_owned();
        // Ringing → Disconnecting: the room said no; a second reject finds no ringing call.
        call.state = CallState::Disconnecting;
        if let Some(op) = op {
            call.owed.push((Owed::Reject, op));
        }
        tracing::info!(call_id = id, "Call {id}: rejecting");
        self.push_locus(id, attempt, LocusRequest::Decline { locus_url });
    }

    fn disconnect(&mut self, op: OpId, call_id: Option<u32>) -> Result<Option<Answer>, CallError> {
        let index = self.find(call_id, |c| c.state != CallState::Ringing)?;
        if self.calls[index].state == CallState::Ringing {
            if !self.status.available {
                return Err(CallError::NotRegistered);
            }
            self.start_decline(index, Some(op));
            return Ok(None);
        }
        let call = &mut self.calls[index];
        let id = call.id;
        if call.joining {
            // The join is still in flight: the call ends here and now; its locus is left
            // when the join's answer names it.
            call.diagnostic(diag::CALL_LEAVE);
            call.moving = None;
            let orphan = (id, call.attempt, call.correlation_id.clone());
            self.orphans.push(orphan);
            self.end(id, EndCause::LocalDisconnect, None);
            return Ok(Some(Answer::Done));
        }
        if call.moving.take().is_some() {
            // A move is leaving the old locus: that leave ends the call instead.
            call.state = CallState::Disconnecting;
            call.owed.push((Owed::Disconnect, op));
            return Ok(None);
        }
        if !self.status.available {
            return Err(CallError::NotRegistered);
        }
        if call.state == CallState::Disconnecting {
            // Already leaving: answered with the leave in flight.
            call.owed.push((Owed::Disconnect, op));
            return Ok(None);
        }
        self.start_leave(index, Some(op));
        Ok(None)
    }

    /// Leaves a call (best effort: the call ends when the leave comes back, whatever Locus
    /// said).
    fn start_leave(&mut self, index: usize, op: Option<OpId>) {
        let call = &mut self.calls[index];
        let (id, attempt) = (call.id, call.attempt);
        call.diagnostic(diag::CALL_LEAVE);
        call.state = CallState::Disconnecting;
        if let Some(op) = op {
            call.owed.push((Owed::Disconnect, op));
        }
        match call.leave_request() {
            Some(request) => self.push_locus(id, attempt, request),
            None => {
                let op = call.take_owed(Owed::Disconnect);
                self.end(id, EndCause::LocalDisconnect, None);
                self.done_reply(op, Ok(()));
            }
        }
    }

    fn hold(
        &mut self,
        op: OpId,
        call_id: Option<u32>,
        held: bool,
    ) -> Result<Option<Answer>, CallError> {
        if !self.status.available {
            return Err(CallError::NotRegistered);
        }
        let index = self.find(call_id, |c| {
            matches!(c.state, CallState::Connected | CallState::OnHold)
        })?;
        let call = &mut self.calls[index];
        let from = if held {
            CallState::Connected
        } else {
            CallState::OnHold
        };
        if call.state != from {
            return Err(CallError::WrongState {
                id: call.id,
                state: call.state.as_str(),
                action: if held { "held" } else { "resumed" },
            });
        }
        let (id, attempt) = (call.id, call.attempt);
        let request = LocusRequest::Hold {
            locus_url: call.locus_url().unwrap_or_default().to_owned(),
            self_url: call.me().map(|p| p.url.clone()).unwrap_or_default(),
            held,
        };
        tracing::info!(
            call_id = id,
            "Call {id}: {}",
            if held { "hold" } else { "resume" }
        );
        call.holds += 1;
        call.owed.push((Owed::Hold, op));
        self.push_locus(id, attempt, request);
        Ok(None)
    }

    fn dtmf(
        &mut self,
        op: OpId,
        call_id: Option<u32>,
        tones: String,
    ) -> Result<Option<Answer>, CallError> {
        if !valid_tones(&tones) {
            return Err(CallError::BadTones(tones));
        }
        if !self.status.available {
            return Err(CallError::NotRegistered);
        }
        let index = self.find_in_state(call_id, CallState::Connected, "sent DTMF")?;
        let call = &mut self.calls[index];
        let (id, attempt) = (call.id, call.attempt);
        tracing::info!(call_id = id, "Call {id}: DTMF {} tone(s)", tones.len());
        let request = LocusRequest::Dtmf {
            locus_url: call.locus_url().unwrap_or_default().to_owned(),
            correlation_id: call.correlation_id.clone(),
            tones,
        };
        call.owed.push((Owed::Dtmf, op));
        self.push_locus(id, attempt, request);
        Ok(None)
    }

    /// A request's answer.
    fn done(&mut self, call_id: u32, attempt: u32, done: Done) {
        if let Done::Joined { answer, .. } = &done {
            if let Some(at) = self
                .orphans
                .iter()
                .position(|(id, a, _)| *id == call_id && *a == attempt)
            {
                let (_, _, correlation_id) = self.orphans.remove(at);
                self.leave_orphan(call_id, attempt, answer, correlation_id);
                return;
            }
        }
        let Some(call) = self.call_mut(call_id) else {
            if let Done::Left(Err(e)) | Done::Declined(Err(e)) = &done {
                tracing::warn!(call_id, "Call {call_id}: {e} (the call had ended already)");
            }
            return;
        };
        if call.attempt != attempt {
            tracing::debug!(
                call_id,
                "an answer for an earlier attempt of call {call_id}: ignored"
            );
            return;
        }
        match done {
            Done::Joined {
                answer,
                meeting_name,
            } => {
                if let Some(name) = meeting_name.filter(|n| !n.is_empty()) {
                    call.display_name = name;
                }
                call.joining = false;
                if call.moving.is_some() {
                    self.move_joined(call_id, answer);
                } else {
                    self.joined(call_id, answer);
                }
            }
            Done::Ice(result) => {
                match &result {
                    Ok(mapped) => tracing::info!(
                        call_id,
                        "Call {call_id}: the media node answered the connectivity check (mapped address {mapped})"
                    ),
                    Err(e) => tracing::warn!(
                        call_id,
                        "Call {call_id}: connectivity check to the media node failed: {e}"
                    ),
                }
                call.diagnostic(diag::ICE_END);
                call.diagnostic(diag::MEDIA_ENGINE_READY);
                // Media starts whatever the check said: the node may still take our RTP.
                if let Some((node, ext_id)) = call.media_target.take() {
                    let start = Action::StartMedia {
                        call_id,
                        attempt,
                        correlation_id: call.correlation_id.clone(),
                        node,
                        ext_id,
                        plan: call.plan.clone(),
                    };
                    self.actions.push(start);
                }
                self.release(call_id);
                self.refresh(call_id);
            }
            Done::Left(result) => {
                if call.moving.is_some() {
                    self.move_left(call_id, result);
                    return;
                }
                let op = call.take_owed(Owed::Disconnect);
                let detail = result.err().map(|e| format!("the leave failed: {e}"));
                self.end(call_id, EndCause::LocalDisconnect, detail);
                self.done_reply(op, Ok(()));
            }
            Done::Declined(result) => {
                let op = call.take_owed(Owed::Reject);
                // Declined either way: the room said no, and a stuck ring helps nobody.
                let detail = result.err().map(|e| format!("the decline failed: {e}"));
                self.end(call_id, EndCause::LocalReject, detail);
                self.done_reply(op, Ok(()));
            }
            Done::Alerted(result) => {
                if let Err(e) = result {
                    tracing::warn!(
                        call_id,
                        "Call {call_id}: telling Locus the room is ringing failed: {e}"
                    );
                }
            }
            Done::Held(result) => {
                let op = call.take_owed(Owed::Hold);
                match result {
                    Ok(dto) => {
                        self.apply(call_id, dto);
                        self.done_reply(op, Ok(()));
                        self.release(call_id);
                    }
                    Err(e) => {
                        self.release(call_id);
                        self.done_reply(op, Err(CallError::Locus(e)));
                    }
                }
            }
            Done::DtmfSent(result) => {
                let op = call.take_owed(Owed::Dtmf);
                self.done_reply(op, result.map_err(CallError::Locus));
            }
            Done::Synced(result) => {
                call.syncing = false;
                match result {
                    Ok(full) => {
                        let applied = call.tracker.apply_sync(full);
                        self.status.locus.syncs += 1;
                        self.count(&applied);
                        self.refresh(call_id);
                    }
                    Err(e) => tracing::warn!(
                        call_id,
                        "Locus sync of call {call_id} failed: {e}; the call keeps its last known state"
                    ),
                }
                self.release(call_id);
            }
        }
    }

    /// A join answered for a call that ended meanwhile: leave the locus it names.
    fn leave_orphan(
        &mut self,
        call_id: u32,
        attempt: u32,
        answer: &Result<JoinAnswer, String>,
        correlation_id: String,
    ) {
        match answer {
            Ok(answer) if !answer.locus.url.is_empty() => {
                tracing::info!(
                    call_id,
                    "Call {call_id}: the join answered after the call ended; leaving {}",
                    answer.locus.url
                );
                let request = LocusRequest::Leave {
                    locus_url: answer.locus.url.clone(),
                    self_id: answer
                        .locus
                        .self_
                        .as_ref()
                        .map(|p| p.id.clone())
                        .unwrap_or_default(),
                    correlation_id,
                };
                self.push_locus(call_id, attempt, request);
            }
            Ok(_) => {}
            Err(e) => tracing::info!(
                call_id,
                "Call {call_id}: the join of the ended call failed ({e}); nothing to leave"
            ),
        }
    }

    /// After a join answer: the answer's DTO, then the connectivity check to the media node;
    /// the call stays held until the check is done.
    pub(super) fn joined(&mut self, id: u32, answer: Result<JoinAnswer, String>) {
        let Some(call) = self.call_mut(id) else {
            return;
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                call.holds = call.holds.saturating_sub(1);
                match call.take_owed(Owed::Accept) {
                    Some(op) => {
                        self.end(
                            id,
                            EndCause::NetworkError,
                            Some(format!("the accept failed: {e}")),
                        );
                        self.reply(op, Err(CallError::Locus(e)));
                    }
                    None => self.end(
                        id,
                        EndCause::NetworkError,
                        Some(format!("the join failed: {e}")),
                    ),
                }
                return;
            }
        };
        call.diagnostic(diag::JOIN_RESPONSE);
        let remote_sdp = answer
            .media_connections
            .iter()
            .find_map(|m| m.remote_sdp.clone());
        let applied = call.tracker.apply(answer.locus, Instant::now());
        if call.direction == Direction::Outgoing && call.kind == CallKind::Call {
            if let Some((name, _)) = call.tracker.current().and_then(state::remote_party) {
                if !name.is_empty() {
                    call.display_name = name;
                }
            }
        }
        let owed = call.take_owed(Owed::Accept);
        self.count(&applied);
        self.done_reply(owed, Ok(()));
        let Some(call) = self.call_mut(id) else {
            return;
        };
        let attempt = call.attempt;
        let media = match remote_sdp {
            Some(remote_sdp) => {
                call.diagnostic(diag::REMOTE_SDP_RECEIVED);
                match sdp::media_address(&remote_sdp) {
                    Some(node) => Some((node, remote_sdp)),
                    None => {
                        tracing::warn!(
                            call_id = id,
                            "Call {id}: the remote SDP names no media address"
                        );
                        None
                    }
                }
            }
            None => {
                tracing::warn!(call_id = id, "Call {id}: the join answer has no remote SDP");
                None
            }
        };
        match media {
            Some((node, remote_sdp)) => {
                // The join's hold passes to the check; released when it is done.
                call.diagnostic(diag::ICE_START);
                let ext_id = sdp::csi_extension_id(&remote_sdp)
                    .unwrap_or(crate::proto::rtp::DEFAULT_CSI_EXTENSION_ID);
                call.media_target = Some((node, ext_id));
                self.actions.push(Action::CheckIce {
                    call_id: id,
                    attempt,
                    node,
                });
            }
            None => {
                self.release(id);
                self.refresh(id);
            }
        }
    }

    pub(super) fn count(&mut self, applied: &Applied) {
        let counters = &mut self.status.locus;
        match applied {
            Applied::Updated => counters.applied += 1,
            Applied::Kept => counters.kept += 1,
            Applied::Queued { .. } => counters.queued += 1,
            Applied::NeedsSync(SyncReason::Desync) => counters.desyncs += 1,
            Applied::NeedsSync(_) | Applied::UrlChanged => {}
        }
    }

    /// One request that held the call came back: when none is left, the events that waited
    /// for it are applied.
    pub(super) fn release(&mut self, id: u32) {
        if let Some(call) = self.call_mut(id) {
            call.holds = call.holds.saturating_sub(1);
        }
        self.drain_waiting();
    }

    /// Re-dispatches the waiting events, oldest first; those still blocked wait again.
    fn drain_waiting(&mut self) {
        let waiting = std::mem::take(&mut self.waiting);
        for (dto, kind) in waiting {
            self.dispatch(dto, kind);
        }
    }

    /// Re-derives a call's state from its working copy; ends it when the DTO says so.
    pub(super) fn refresh(&mut self, id: u32) {
        let Some(call) = self.call_mut(id) else {
            return;
        };
        let Some(dto) = call.tracker.current() else {
            return;
        };
        match state::derive(dto, call.direction) {
            Derived::State(now) => {
                // Leaving stays leaving until Locus confirms.
                if call.state == CallState::Disconnecting || call.state == now {
                    return;
                }
                tracing::info!(
                    call_id = id,
                    correlation_id = %call.correlation_id,
                    "Call {id}: {} → {}",
                    call.state.as_str(),
                    now.as_str()
                );
                if now == CallState::Connected && call.connected_at.is_none() {
                    call.connected_at = Some(SystemTime::now());
                    tracing::info!(
                        message_id = message_id::CALL_CONNECTED,
                        call_id = id,
                        "Call {id} connected to {}",
                        call.display_name
                    );
                }
                call.state = now;
            }
            Derived::Ended(cause) => self.end(id, cause, None),
        }
    }

    pub(super) fn end(&mut self, id: u32, cause: EndCause, detail: Option<String>) {
        let Some(index) = self.calls.iter().position(|c| c.id == id) else {
            return;
        };
        let mut call = self.calls.remove(index);
        self.actions.push(Action::StopMedia { call_id: id });
        let duration = call
            .connected_at
            .and_then(|at| at.elapsed().ok())
            .unwrap_or_default();
        tracing::info!(
            message_id = message_id::CALL_ENDED,
            call_id = id,
            correlation_id = %call.correlation_id,
            cause = cause.as_str(),
            "Call {id} ended: {}{}",
            cause.as_str(),
            detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
        );
        self.actions.push(Action::Event(CallEvent::Disconnect {
            call_id: id,
            cause,
            detail: detail.clone(),
            remote_uri: call.remote_number.clone(),
            display_name: call.display_name.clone(),
            direction: call.direction,
            duration_secs: duration.as_secs(),
        }));
        // Whoever waits for this call hears that it is over.
        for (kind, op) in call.owed.drain(..) {
            let result = match kind {
                Owed::Disconnect | Owed::Reject => Ok(Answer::Done),
                Owed::Accept | Owed::Hold | Owed::Dtmf => Err(CallError::NoSuchCall(id)),
            };
            self.actions.push(Action::Reply { op, result });
        }
        let mut view = call.view();
        view.status = CallState::Idle;
        view.end_cause = Some(cause.as_str().to_owned());
        view.end_detail = detail;
        self.status.ended.push(view);
        let excess = self.status.ended.len().saturating_sub(ENDED_KEPT);
        self.status.ended.drain(..excess);
        self.drain_waiting();
    }

    /// A `locus.*` event's `data`.
    fn event(&mut self, data: &serde_json::Value) {
        let event = match crate::proto::locus::parse_event(data) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!("Locus event dropped: {e}");
                self.status.locus.bad_events += 1;
                return;
            }
        };
        let Some(dto) = event.locus else {
            tracing::debug!("Locus event {} without a locus: ignored", event.event_type);
            return;
        };
        let kind = if event.event_type == "locus.participant_moved" {
            EventKind::Moved
        } else {
            EventKind::Other(event.event_type)
        };
        self.dispatch(dto, kind);
    }

    /// Routes a DTO to its call, a move, or a new incoming call, unless it must wait.
    fn dispatch(&mut self, dto: LocusDto, kind: EventKind) {
        let moved = kind == EventKind::Moved;
        if self.must_wait(&dto, moved) {
            self.waiting.push_back((dto, kind));
            return;
        }
        if moved {
            self.moved(dto);
            return;
        }
        if let Some(id) = self
            .calls
            .iter()
            .find(|c| c.locus_url() == Some(dto.url.as_str()))
            .map(|c| c.id)
        {
            self.apply(id, dto);
            return;
        }
        let ringing = !dto.is_delta()
            && dto
                .self_
                .as_ref()
                .is_some_and(|p| p.state == ParticipantState::Notified)
            && !dto.is_ended();
        if ringing {
            self.incoming(dto);
        } else {
            tracing::debug!(
                "{} for {} (no call of this device): ignored",
                kind.name(),
                dto.url
            );
        }
    }

    /// Whether `dto` must wait: its call (or, for a move, the call it moves) is held, an
    /// earlier event for its locus waits, or it matches no call while a join whose locus is
    /// not known yet is in flight.
    fn must_wait(&self, dto: &LocusDto, moved: bool) -> bool {
        if self.waiting.iter().any(|(w, _)| w.url == dto.url) {
            return true;
        }
        let target = if moved {
            self.calls.iter().find(|c| {
                c.locus_url()
                    .is_some_and(|url| dto.replaces.iter().any(|r| r.locus_url == url))
            })
        } else {
            self.calls
                .iter()
                .find(|c| c.locus_url() == Some(dto.url.as_str()))
        };
        match target {
            Some(call) => call.held(),
            None => self
                .calls
                .iter()
                .any(|c| c.joining && c.locus_url().is_none()),
        }
    }

    /// Applies a DTO to a call's working copy, syncing when the sequence rules say so.
    pub(super) fn apply(&mut self, id: u32, dto: LocusDto) {
        let Some(call) = self.call_mut(id) else {
            return;
        };
        let applied = call.tracker.apply(dto, Instant::now());
        self.count(&applied);
        match applied {
            Applied::Updated => self.refresh(id),
            Applied::Kept => tracing::debug!(
                call_id = id,
                "Locus DTO older than the working copy: kept the current one"
            ),
            Applied::Queued { queued } => tracing::info!(
                call_id = id,
                "Locus delta waits for an earlier one ({queued} queued)"
            ),
            Applied::NeedsSync(reason) => self.sync(id, reason),
            Applied::UrlChanged => {
                tracing::warn!(call_id = id, "Locus DTO for another locus URL: ignored")
            }
        }
    }

    /// DESYNC, a full WAIT queue or its deadline: `GET syncUrl`, falling back to `GET locusUrl`.
    fn sync(&mut self, id: u32, reason: SyncReason) {
        if !self.status.available {
            return;
        }
        let Some(call) = self.call_mut(id) else {
            return;
        };
        if call.syncing {
            return;
        }
        let Some(dto) = call.tracker.current() else {
            return;
        };
        let (locus_url, sync_url) = (dto.url.clone(), dto.sync_url.clone());
        tracing::info!(
            message_id = message_id::LOCUS_SYNC,
            call_id = id,
            "Locus sync of call {id} ({reason:?}): GET {}",
            sync_url.as_deref().unwrap_or(&locus_url)
        );
        call.syncing = true;
        call.holds += 1;
        let attempt = call.attempt;
        self.push_locus(
            id,
            attempt,
            LocusRequest::Sync {
                locus_url,
                sync_url,
            },
        );
    }

    fn deadlines(&mut self, now: Instant) {
        let due: Vec<(u32, SyncReason)> = self
            .calls
            .iter_mut()
            .filter(|c| !c.syncing)
            .filter_map(|c| c.tracker.check_deadline(now).map(|r| (c.id, r)))
            .collect();
        for (id, reason) in due {
            self.sync(id, reason);
        }
    }

    /// After the event socket came back: events may have been lost, so fetch every locus.
    fn resync_all(&mut self, generation: u64) {
        let ids: Vec<u32> = self
            .calls
            .iter()
            // A call begun after this resync was requested lost nothing before it.
            .filter(|c| c.resync_generation < generation)
            .filter(|c| c.locus_url().is_some())
            .map(|c| c.id)
            .collect();
        for id in ids {
            self.sync(id, SyncReason::WaitTimeout);
        }
    }

    fn incoming(&mut self, dto: LocusDto) {
        let (name, address) = state::remote_party(&dto).unwrap_or_default();
        let remote = if address.is_empty() {
            name.clone()
        } else {
            address
        };
        let kind = match dto.full_state.as_ref().map(|f| &f.kind) {
            Some(LocusType::Meeting) => CallKind::Meeting,
            _ => CallKind::Call,
        };
        let locus_url = dto.url.clone();
        let index = self.new_call(Direction::Incoming, kind, remote.clone());
        let call = &mut self.calls[index];
        if !name.is_empty() {
            call.display_name = name.clone();
        }
        let applied = call.tracker.apply(dto, Instant::now());
        let (id, attempt) = (call.id, call.attempt);
        self.count(&applied);
        tracing::info!(
            message_id = message_id::CALL_INCOMING,
            call_id = id,
            "Call {id}: incoming call from {} <{remote}>",
            if name.is_empty() {
                "unknown"
            } else {
                name.as_str()
            }
        );
        self.actions.push(Action::Event(CallEvent::Incoming {
            call_id: id,
            remote_uri: remote,
            display_name: name,
        }));
        if self.status.available {
            self.push_locus(id, attempt, LocusRequest::Alert { locus_url });
        }
    }

    /// A media diagnostic event: kept with the call, or with the ended call it belonged to.
    pub fn media_event(&mut self, event: &MediaEvent) {
        let record = DiagnosticRecord {
            name: event.name,
            at: SystemTime::now(),
        };
        let error = event.error.as_deref();
        if let Some(call) = self.call_mut(event.call_id) {
            log_diagnostic(call.id, &call.correlation_id, event.name, error);
            call.diagnostics.push(record);
            self.publish();
            return;
        }
        if let Some(view) = self.status.ended.iter_mut().find(|c| c.id == event.call_id) {
            log_diagnostic(view.id, &view.correlation_id, event.name, error);
            view.diagnostics.push(record);
        }
    }

    /// Copies the calls into status.
    fn publish(&mut self) {
        self.status.active = self.calls.iter().map(Call::view).collect();
    }
}

/// What kind of event a DTO came in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EventKind {
    Moved,
    Other(String),
}

impl EventKind {
    fn name(&self) -> &str {
        match self {
            EventKind::Moved => "locus.participant_moved",
            EventKind::Other(name) => name,
        }
    }
}
