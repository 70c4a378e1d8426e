//! The call manager: one task owns every call. It takes commands (dial, accept, reject,
//! disconnect, hold, resume, DTMF) from the room, Locus DTOs from the event bus, and keeps
//! `DeviceStatus.calls` and the xAPI's call events up to date.
//!
//! HTTP requests run inside the task, one at a time; events that arrive meanwhile wait in the
//! bus subscription and are applied in order afterwards, so a DTO is never applied before the
//! join answer that introduced its locus.

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::diagnostics as diag;
use super::state::{self, CallState, Derived, Direction, EndCause};
use super::status::{CallKind, CallView, CallsStatus, DiagnosticRecord, MoveOutcome, MoveRecord};
use super::{ice, sdp};
use crate::cloud::locus::{JoinBody, LocusClient};
use crate::config::MeetingUriRegex;
use crate::events::{EventBus, Namespace, Resync, ResyncReason};
use crate::locus::tracker::{Applied, LocusTracker, SyncReason};
use crate::media::plan::MediaPlan;
use crate::media::session::{
    self as media_session, MediaEvent, MediaOptions, MediaSession, MediaStart,
};
use crate::media::{MediaStatus, RoomControls};
use crate::platform::logging::message_id;
use crate::proto::locus::{JoinAnswer, LocusDto, LocusType, Participant, ParticipantState};
use crate::reachability::Reachability;
use crate::shutdown::Shutdown;
use crate::status_slice::StatusSlice;

/// Ended calls kept in status.
const ENDED_KEPT: usize = 5;
/// Moves kept in status.
const MOVES_KEPT: usize = 5;
/// DTMF tones per request (wire-profile choice).
pub const MAX_DTMF_TONES: usize = 32;

/// What the session hands over once the device is registered.
#[derive(Debug, Clone)]
pub struct CallServices {
    pub locus: LocusClient,
}

#[derive(Debug, Clone)]
pub struct CallsOptions {
    pub meeting_uri_regex: MeetingUriRegex,
    pub ice_timeout: Duration,
    /// The media engine; `None` when media is disabled or GStreamer is missing (calls then
    /// connect without media).
    pub media: Option<MediaOptions>,
}

/// Call events as the xAPI publishes them.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    Outgoing {
        call_id: u32,
        remote_uri: String,
    },
    Incoming {
        call_id: u32,
        remote_uri: String,
        display_name: String,
    },
    Disconnect {
        call_id: u32,
        cause: EndCause,
        detail: Option<String>,
        remote_uri: String,
        display_name: String,
        direction: Direction,
        duration_secs: u64,
    },
    /// A message for the people in the room (a move's "You have been moved to a new call.").
    Notice {
        call_id: u32,
        text: String,
    },
}

/// Why a call command did not happen; the text is what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum CallError {
    /// Calls are not available: the device is not registered with the cloud yet
    NotRegistered,
    /// There is no call
    NoCall,
    /// No call with CallId {0}
    NoSuchCall(u32),
    /// Already in a call (CallId {0}); disconnect it first
    Busy(u32),
    /// Call {id} is {state}, so it cannot be {action}
    WrongState {
        id: u32,
        state: &'static str,
        action: &'static str,
    },
    /// DTMF tones must be 1 to 32 of 0-9 * # A-D, got {0:?}
    BadTones(String),
    /// Locus refused: {0}
    Locus(String),
    /// roomd is stopping
    Stopping,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialOutcome {
    pub call_id: u32,
    /// The call's correlation id (the xAPI's `ConferenceId`).
    pub conference_id: String,
}

type Reply<T> = oneshot::Sender<Result<T, CallError>>;

#[derive(Debug)]
enum Command {
    Dial {
        number: String,
        reply: Reply<DialOutcome>,
    },
    Accept {
        call_id: Option<u32>,
        reply: Reply<()>,
    },
    Reject {
        call_id: Option<u32>,
        reply: Reply<()>,
    },
    Disconnect {
        call_id: Option<u32>,
        reply: Reply<()>,
    },
    Hold {
        call_id: Option<u32>,
        held: bool,
        reply: Reply<()>,
    },
    Dtmf {
        call_id: Option<u32>,
        tones: String,
        reply: Reply<()>,
    },
}

/// The room's handle on call control.
#[derive(Debug, Clone)]
pub struct Calls {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<CallEvent>,
}

/// Everything the manager task needs; [`Calls::new`] makes both halves.
#[derive(Debug)]
pub struct CallManager {
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<CallEvent>,
    status: StatusSlice<CallsStatus>,
    media_status: StatusSlice<MediaStatus>,
    controls: watch::Receiver<RoomControls>,
    services: watch::Receiver<Option<CallServices>>,
    bus: EventBus,
    reachability: Reachability,
    options: CallsOptions,
    calls: Vec<Call>,
    next_id: u32,
    media_events_tx: mpsc::UnboundedSender<MediaEvent>,
    media_events: mpsc::UnboundedReceiver<MediaEvent>,
}

#[derive(Debug)]
struct Call {
    id: u32,
    direction: Direction,
    kind: CallKind,
    state: CallState,
    remote_number: String,
    display_name: String,
    correlation_id: String,
    tracker: LocusTracker,
    /// The event bus's resync generation when the call began.
    resync_generation: u64,
    started: SystemTime,
    connected_at: Option<SystemTime>,
    diagnostics: Vec<DiagnosticRecord>,
    /// SSRCs and CSIs of this join's offer.
    plan: MediaPlan,
    /// The media session once the node answered.
    media: Option<MediaSession>,
}

impl Call {
    fn locus_url(&self) -> Option<&str> {
        self.tracker.current().map(|l| l.url.as_str())
    }

    /// This device's participant in the working copy.
    fn me(&self) -> Option<&Participant> {
        self.tracker.current().and_then(|l| l.self_.as_ref())
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
    fn diagnostic(&mut self, name: &'static str) {
        log_diagnostic(self.id, &self.correlation_id, name, None);
        self.diagnostics.push(DiagnosticRecord {
            name,
            at: SystemTime::now(),
        });
    }
}

/// `Diagnostic event: <name>` with the call's ids (and `error=` for failures, like seed 000's
/// `name=client.media.rx.stop mediaType=video error=media-engine`).
fn log_diagnostic(call_id: u32, correlation_id: &str, name: &str, error: Option<&str>) {
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

impl Calls {
    /// The handle and the task to spawn (`CallManager::run`).
    pub fn new(
        status: StatusSlice<CallsStatus>,
        media_status: StatusSlice<MediaStatus>,
        controls: watch::Receiver<RoomControls>,
        services: watch::Receiver<Option<CallServices>>,
        bus: EventBus,
        reachability: Reachability,
        options: CallsOptions,
    ) -> (Calls, CallManager) {
        let (commands_tx, commands) = mpsc::channel(16);
        let (events, _) = broadcast::channel(64);
        let (media_events_tx, media_events) = mpsc::unbounded_channel();
        let manager = CallManager {
            commands,
            events: events.clone(),
            status,
            media_status,
            controls,
            services,
            bus,
            reachability,
            options,
            calls: Vec::new(),
            next_id: 1,
            media_events_tx,
            media_events,
        };
        (
            Calls {
                commands: commands_tx,
                events,
            },
            manager,
        )
    }

    /// A handle with no manager behind it: every command answers "roomd is stopping". For
    /// exercising the API layers (xAPI tests and benches) without call control.
    pub fn detached() -> Calls {
        let (calls, _manager) = Calls::new(
            StatusSlice::standalone(CallsStatus::default()).0,
            StatusSlice::standalone(MediaStatus::default()).0,
            watch::channel(RoomControls::default()).1,
            watch::channel(None).1,
            EventBus::new(),
            Reachability::new(),
            CallsOptions {
                meeting_uri_regex: MeetingUriRegex::default(),
                ice_timeout: Duration::from_secs(1),
                media: None,
            },
        );
        calls
    }

    /// Call events from now on.
    pub fn events(&self) -> broadcast::Receiver<CallEvent> {
        self.events.subscribe()
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, CallError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| CallError::Stopping)?;
        answer.await.map_err(|_| CallError::Stopping)?
    }

    /// Places a call or joins a meeting (the meeting regex decides). Answers once the call
    /// exists; how it goes is reported through status and [`CallEvent`]s.
    pub async fn dial(&self, number: &str) -> Result<DialOutcome, CallError> {
        let number = number.trim().to_owned();
        self.ask(|reply| Command::Dial { number, reply }).await
    }

    pub async fn accept(&self, call_id: Option<u32>) -> Result<(), CallError> {
        self.ask(|reply| Command::Accept { call_id, reply }).await
    }

    pub async fn reject(&self, call_id: Option<u32>) -> Result<(), CallError> {
        self.ask(|reply| Command::Reject { call_id, reply }).await
    }

    pub async fn disconnect(&self, call_id: Option<u32>) -> Result<(), CallError> {
        self.ask(|reply| Command::Disconnect { call_id, reply })
            .await
    }

    pub async fn hold(&self, call_id: Option<u32>, held: bool) -> Result<(), CallError> {
        self.ask(|reply| Command::Hold {
            call_id,
            held,
            reply,
        })
        .await
    }

    pub async fn send_dtmf(&self, call_id: Option<u32>, tones: &str) -> Result<(), CallError> {
        let tones = tones.to_owned();
        self.ask(|reply| Command::Dtmf {
            call_id,
            tones,
            reply,
        })
        .await
    }
}

/// DTMF tones the profile allows.
pub fn valid_tones(tones: &str) -> bool {
    (1..=MAX_DTMF_TONES).contains(&tones.len())
        && tones
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
}

impl CallManager {
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut locus_events = self.bus.subscribe(Namespace::Locus, 256);
        let mut resync = self.bus.resync();
        resync.borrow_and_update();
        self.services.mark_changed();
        loop {
            let deadline = self
                .calls
                .iter()
                .filter_map(|c| c.tracker.wait_deadline())
                .min()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command).await,
                    None => break,
                },
                event = locus_events.recv() => match event {
                    Some(event) => self.event(&event.data).await,
                    None => break,
                },
                _ = sleep_until(deadline) => self.deadlines().await,
                Some(event) = self.media_events.recv() => self.media_event(event),
                changed = self.services.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let available = self.services.borrow_and_update().is_some();
                    self.status.modify(|s| {
                        let changed = s.available != available;
                        s.available = available;
                        changed
                    });
                }
                changed = resync.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let now: Resync = resync.borrow_and_update().clone();
                    if now.reason != ResyncReason::None {
                        self.resync_all(now.generation).await;
                    }
                }
                _ = shutdown.recv() => break,
            }
            self.publish();
        }
        self.leave_all().await;
        self.publish();
    }

    fn services(&self) -> Option<CallServices> {
        self.services.borrow().clone()
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
            resync_generation: self.bus.resync().borrow().generation,
            started: SystemTime::now(),
            connected_at: None,
            diagnostics: Vec::new(),
            plan: MediaPlan::random(self.media_layers()),
            media: None,
        };
        self.next_id += 1;
        self.calls.push(call);
        self.calls.len() - 1
    }

    fn join_body(&self, call: &Call) -> JoinBody {
        let controls = self.controls.borrow();
        JoinBody {
            correlation_id: call.correlation_id.clone(),
            local_sdp: sdp::local_offer(u64::from(call.id), &call.plan),
            reachability: self.reachability.join_body(),
            audio_muted: controls.microphones_muted,
            video_muted: controls.camera_off,
        }
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Dial { number, reply } => self.dial(number, reply).await,
            Command::Accept { call_id, reply } => {
                let result = self.accept(call_id).await;
                let _ = reply.send(result);
            }
            Command::Reject { call_id, reply } => {
                let result = self.reject(call_id).await;
                let _ = reply.send(result);
            }
            Command::Disconnect { call_id, reply } => {
                let result = self.disconnect(call_id).await;
                let _ = reply.send(result);
            }
            Command::Hold {
                call_id,
                held,
                reply,
            } => {
                let result = self.hold(call_id, held).await;
                let _ = reply.send(result);
            }
            Command::Dtmf {
                call_id,
                tones,
                reply,
            } => {
                let result = self.dtmf(call_id, &tones).await;
                let _ = reply.send(result);
            }
        }
    }

    async fn dial(&mut self, number: String, reply: Reply<DialOutcome>) {
        let Some(services) = self.services() else {
            let _ = reply.send(Err(CallError::NotRegistered));
            return;
        };
        if let Some(busy) = self.calls.iter().find(|c| c.state != CallState::Ringing) {
            let _ = reply.send(Err(CallError::Busy(busy.id)));
            return;
        }
        let meeting = self.options.meeting_uri_regex.is_match(&number);
        let index = self.new_call(
            Direction::Outgoing,
            if meeting {
                CallKind::Meeting
            } else {
                CallKind::Call
            },
            number.clone(),
        );
        let call = &mut self.calls[index];
        let id = call.id;
        let _ = reply.send(Ok(DialOutcome {
            call_id: id,
            conference_id: call.correlation_id.clone(),
        }));
        tracing::info!(
            message_id = message_id::CALL_STARTED,
            call_id = id,
            correlation_id = %call.correlation_id,
            "Call {id}: dialling {number} as a {}",
            if meeting { "cloud meeting (the meeting regex matched)" } else { "call" }
        );
        let _ = self.events.send(CallEvent::Outgoing {
            call_id: id,
            remote_uri: number.clone(),
        });
        call.diagnostic(diag::CALL_INITIATED);
        let body = self.join_body(&self.calls[index]);
        let call = &mut self.calls[index];
        call.diagnostic(diag::LOCAL_SDP_GENERATED);
        call.diagnostic(diag::JOIN_REQUEST);
        self.publish();
        let answer = if meeting {
            match services.locus.meeting_info(&number).await {
                Ok(info) => {
                    if let Some(name) = info.meeting_name.filter(|n| !n.is_empty()) {
                        if let Some(call) = self.calls.iter_mut().find(|c| c.id == id) {
                            call.display_name = name;
                        }
                    }
                    services.locus.join(&info.locus_url, &body).await
                }
                Err(e) => Err(e),
            }
        } else {
            services.locus.call(&number, &body).await
        };
        match answer {
            Ok(answer) => self.joined(id, answer).await,
            Err(e) => self.end(
                id,
                EndCause::NetworkError,
                Some(format!("the join failed: {e}")),
            ),
        }
    }

    /// After a join answer: the remote SDP, the ICE check, then the DTO decides the state.
    async fn joined(&mut self, id: u32, answer: JoinAnswer) {
        let Some(index) = self.calls.iter().position(|c| c.id == id) else {
            return;
        };
        let ice_timeout = self.options.ice_timeout;
        let call = &mut self.calls[index];
        call.diagnostic(diag::JOIN_RESPONSE);
        let remote_sdp = answer
            .media_connections
            .iter()
            .find_map(|m| m.remote_sdp.clone());
        let applied = call.tracker.apply(answer.locus, Instant::now());
        self.count(&applied);
        let call = &mut self.calls[index];
        if call.direction == Direction::Outgoing {
            if let Some((name, _)) = call.tracker.current().and_then(state::remote_party) {
                if call.kind == CallKind::Call && !name.is_empty() {
                    call.display_name = name;
                }
            }
        }
        match remote_sdp {
            Some(remote_sdp) => {
                call.diagnostic(diag::REMOTE_SDP_RECEIVED);
                match sdp::media_address(&remote_sdp) {
                    Some(node) => {
                        call.diagnostic(diag::ICE_START);
                        self.publish();
                        let result = ice::check(node, ice_timeout).await;
                        let Some(call) = self.calls.iter_mut().find(|c| c.id == id) else {
                            return;
                        };
                        match result {
                            Ok(mapped) => tracing::info!(
                                call_id = id,
                                "Call {id}: media node {node} answered the connectivity check (mapped address {mapped})"
                            ),
                            Err(e) => tracing::warn!(
                                call_id = id,
                                "Call {id}: connectivity check to the media node failed: {e}"
                            ),
                        }
                        call.diagnostic(diag::ICE_END);
                        call.diagnostic(diag::MEDIA_ENGINE_READY);
                        let ext_id = sdp::csi_extension_id(&remote_sdp)
                            .unwrap_or(crate::proto::rtp::DEFAULT_CSI_EXTENSION_ID);
                        self.start_media(id, node, ext_id).await;
                    }
                    None => tracing::warn!(
                        call_id = id,
                        "Call {id}: the remote SDP names no media address"
                    ),
                }
            }
            None => tracing::warn!(call_id = id, "Call {id}: the join answer has no remote SDP"),
        }
        self.refresh(id);
    }

    fn count(&self, applied: &Applied) {
        self.status.update(|s| {
            let counters = &mut s.locus;
            match applied {
                Applied::Updated => counters.applied += 1,
                Applied::Kept => counters.kept += 1,
                Applied::Queued { .. } => counters.queued += 1,
                Applied::NeedsSync(SyncReason::Desync) => counters.desyncs += 1,
                Applied::NeedsSync(_) | Applied::UrlChanged => {}
            }
        });
    }

    /// Re-derives a call's state from its working copy; ends it when the DTO says so.
    fn refresh(&mut self, id: u32) {
        let Some(call) = self.calls.iter_mut().find(|c| c.id == id) else {
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

    fn end(&mut self, id: u32, cause: EndCause, detail: Option<String>) {
        let Some(index) = self.calls.iter().position(|c| c.id == id) else {
            return;
        };
        let mut call = self.calls.remove(index);
        if let Some(media) = call.media.take() {
            // Teardown (BYE, pipelines to Null) runs in the session's task; its tx.stop and
            // render.stop arrive as media events after the call's own events.
            tokio::spawn(media.stop());
        }
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
        let _ = self.events.send(CallEvent::Disconnect {
            call_id: id,
            cause,
            detail: detail.clone(),
            remote_uri: call.remote_number.clone(),
            display_name: call.display_name.clone(),
            direction: call.direction,
            duration_secs: duration.as_secs(),
        });
        let mut view = call.view();
        view.status = CallState::Idle;
        view.end_cause = Some(cause.as_str().to_owned());
        view.end_detail = detail;
        self.status.update(|s| {
            s.ended.push(view);
            let excess = s.ended.len().saturating_sub(ENDED_KEPT);
            s.ended.drain(..excess);
        });
    }

    async fn accept(&mut self, call_id: Option<u32>) -> Result<(), CallError> {
        let services = self.services().ok_or(CallError::NotRegistered)?;
        let index = self.find_in_state(call_id, CallState::Ringing, "accepted")?;
        let call = &self.calls[index];
        if let Some(other) = self
            .calls
            .iter()
            .find(|c| c.id != call.id && c.state != CallState::Ringing)
        {
            return Err(CallError::Busy(other.id));
        }
        let (id, url) = (call.id, call.locus_url().unwrap_or_default().to_owned());
        let body = self.join_body(call);
        let call = &mut self.calls[index];
        call.state = CallState::Connecting;
        call.diagnostic(diag::LOCAL_SDP_GENERATED);
        call.diagnostic(diag::JOIN_REQUEST);
        tracing::info!(call_id = id, "Call {id}: accepting");
        self.publish();
        match services.locus.join(&url, &body).await {
            Ok(answer) => {
                self.joined(id, answer).await;
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                self.end(
                    id,
                    EndCause::NetworkError,
                    Some(format!("the accept failed: {message}")),
                );
                Err(CallError::Locus(message))
            }
        }
    }

    async fn reject(&mut self, call_id: Option<u32>) -> Result<(), CallError> {
        let services = self.services().ok_or(CallError::NotRegistered)?;
        let index = self.find_in_state(call_id, CallState::Ringing, "rejected")?;
        let call = &self.calls[index];
        let (id, url) = (call.id, call.locus_url().unwrap_or_default().to_owned());
        tracing::info!(call_id = id, "Call {id}: rejecting");
        let result = services.locus.decline(&url).await;
        // Declined either way: the room said no, and a stuck ring helps nobody.
        let detail = result
            .as_ref()
            .err()
            .map(|e| format!("the decline failed: {e}"));
        self.end(id, EndCause::LocalReject, detail);
        Ok(())
    }

    async fn disconnect(&mut self, call_id: Option<u32>) -> Result<(), CallError> {
        let index = self.find(call_id, |c| c.state != CallState::Ringing)?;
        if self.calls[index].state == CallState::Ringing {
            let id = self.calls[index].id;
            return self.reject(Some(id)).await;
        }
        let services = self.services().ok_or(CallError::NotRegistered)?;
        self.leave(&services, index).await;
        Ok(())
    }

    /// Leaves a call (best effort: the call ends locally whatever Locus says).
    async fn leave(&mut self, services: &CallServices, index: usize) {
        let call = &mut self.calls[index];
        let id = call.id;
        call.diagnostic(diag::CALL_LEAVE);
        call.state = CallState::Disconnecting;
        let target = call.locus_url().map(|url| {
            let self_id = call.me().map(|p| p.id.clone()).unwrap_or_default();
            (url.to_owned(), self_id)
        });
        let correlation_id = call.correlation_id.clone();
        self.publish();
        let detail = match target {
            Some((url, self_id)) => services
                .locus
                .leave(&url, &self_id, &correlation_id)
                .await
                .err()
                .map(|e| format!("the leave failed: {e}")),
            None => None,
        };
        self.end(id, EndCause::LocalDisconnect, detail);
    }

    async fn hold(&mut self, call_id: Option<u32>, held: bool) -> Result<(), CallError> {
        let services = self.services().ok_or(CallError::NotRegistered)?;
        let index = self.find(call_id, |c| {
            matches!(c.state, CallState::Connected | CallState::OnHold)
        })?;
        let call = &self.calls[index];
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
        let id = call.id;
        let url = call.locus_url().unwrap_or_default().to_owned();
        let self_url = call.me().map(|p| p.url.clone()).unwrap_or_default();
        tracing::info!(
            call_id = id,
            "Call {id}: {}",
            if held { "hold" } else { "resume" }
        );
        let dto = services
            .locus
            .hold(&url, &self_url, held)
            .await
            .map_err(|e| CallError::Locus(e.to_string()))?;
        self.apply(id, dto).await;
        Ok(())
    }

    async fn dtmf(&mut self, call_id: Option<u32>, tones: &str) -> Result<(), CallError> {
        if !valid_tones(tones) {
            return Err(CallError::BadTones(tones.to_owned()));
        }
        let services = self.services().ok_or(CallError::NotRegistered)?;
        let index = self.find_in_state(call_id, CallState::Connected, "sent DTMF")?;
        let call = &self.calls[index];
        let url = call.locus_url().unwrap_or_default().to_owned();
        tracing::info!(
            call_id = call.id,
            "Call {}: DTMF {} tone(s)",
            call.id,
            tones.len()
        );
        services
            .locus
            .send_dtmf(&url, &call.correlation_id, tones)
            .await
            .map_err(|e| CallError::Locus(e.to_string()))
    }

    /// A `locus.*` event's `data`.
    async fn event(&mut self, data: &serde_json::Value) {
        let event = match crate::proto::locus::parse_event(data) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!("Locus event dropped: {e}");
                self.status.update(|s| s.locus.bad_events += 1);
                return;
            }
        };
        let Some(dto) = event.locus else {
            tracing::debug!("Locus event {} without a locus: ignored", event.event_type);
            return;
        };
        if event.event_type == "locus.participant_moved" {
            self.moved(dto).await;
            return;
        }
        if let Some(id) = self
            .calls
            .iter()
            .find(|c| c.locus_url() == Some(dto.url.as_str()))
            .map(|c| c.id)
        {
            self.apply(id, dto).await;
            return;
        }
        let ringing = !dto.is_delta()
            && dto
                .self_
                .as_ref()
                .is_some_and(|p| p.state == ParticipantState::Notified)
            && !dto.is_ended();
        if ringing {
            self.incoming(dto).await;
        } else {
            tracing::debug!(
                "{} for {} (no call of this device): ignored",
                event.event_type,
                dto.url
            );
        }
    }

    /// Applies a DTO to a call's working copy, syncing when the sequence rules say so.
    async fn apply(&mut self, id: u32, dto: LocusDto) {
        let Some(call) = self.calls.iter_mut().find(|c| c.id == id) else {
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
            Applied::NeedsSync(reason) => self.sync(id, reason).await,
            Applied::UrlChanged => {
                tracing::warn!(call_id = id, "Locus DTO for another locus URL: ignored")
            }
        }
    }

    /// DESYNC, a full WAIT queue or its deadline: `GET syncUrl`, falling back to `GET locusUrl`.
    async fn sync(&mut self, id: u32, reason: SyncReason) {
        let Some(services) = self.services() else {
            return;
        };
        let Some(dto) = self
            .calls
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.tracker.current())
        else {
            return;
        };
        let (locus_url, sync_url) = (dto.url.clone(), dto.sync_url.clone());
        tracing::info!(
            message_id = message_id::LOCUS_SYNC,
            call_id = id,
            "Locus sync of call {id} ({reason:?}): GET {}",
            sync_url.as_deref().unwrap_or(&locus_url)
        );
        let mut fetched = match &sync_url {
            Some(url) => services.locus.fetch(url).await,
            None => services.locus.fetch(&locus_url).await,
        };
        if let (Err(e), Some(_)) = (&fetched, &sync_url) {
            tracing::warn!(
                call_id = id,
                "Locus syncUrl failed ({e}); fetching the whole locus"
            );
            fetched = services.locus.fetch(&locus_url).await;
        }
        match fetched {
            Ok(full) => {
                let Some(call) = self.calls.iter_mut().find(|c| c.id == id) else {
                    return;
                };
                let applied = call.tracker.apply_sync(full);
                self.status.update(|s| s.locus.syncs += 1);
                self.count(&applied);
                self.refresh(id);
            }
            Err(e) => tracing::warn!(
                call_id = id,
                "Locus sync of call {id} failed: {e}; the call keeps its last known state"
            ),
        }
    }

    async fn deadlines(&mut self) {
        let now = Instant::now();
        let due: Vec<(u32, SyncReason)> = self
            .calls
            .iter_mut()
            .filter_map(|c| c.tracker.check_deadline(now).map(|r| (c.id, r)))
            .collect();
        for (id, reason) in due {
            self.sync(id, reason).await;
        }
    }

    /// After the event socket came back: events may have been lost, so fetch every locus.
    async fn resync_all(&mut self, generation: u64) {
        let ids: Vec<u32> = self
            .calls
            .iter()
            // A call begun after this resync was requested lost nothing before it.
            .filter(|c| c.resync_generation < generation)
            .filter(|c| c.locus_url().is_some())
            .map(|c| c.id)
            .collect();
        for id in ids {
            self.sync(id, SyncReason::WaitTimeout).await;
        }
    }

    async fn incoming(&mut self, dto: LocusDto) {
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
        let url = dto.url.clone();
        let index = self.new_call(Direction::Incoming, kind, remote.clone());
        let call = &mut self.calls[index];
        if !name.is_empty() {
            call.display_name = name.clone();
        }
        let applied = call.tracker.apply(dto, Instant::now());
        let id = call.id;
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
        let _ = self.events.send(CallEvent::Incoming {
            call_id: id,
            remote_uri: remote,
            display_name: name,
        });
        self.publish();
        if let Some(services) = self.services() {
            if let Err(e) = services.locus.alert(&url).await {
                tracing::warn!(
                    call_id = id,
                    "Call {id}: telling Locus the room is ringing failed: {e}"
                );
            }
        }
    }

    /// A participant move (seed 002): leave the old locus, join the destination with a new
    /// correlation id; mute and layout stay as they are in the room.
    async fn moved(&mut self, destination: LocusDto) {
        let Some(index) = self.calls.iter().position(|c| {
            c.locus_url()
                .is_some_and(|url| destination.replaces.iter().any(|r| r.locus_url == url))
        }) else {
            tracing::info!(
                "move to {} names no locus this device is in: ignored",
                destination.url
            );
            return;
        };
        let Some(services) = self.services() else {
            return;
        };
        let moved = destination
            .self_
            .as_ref()
            .and_then(|p| p.reason.as_deref())
            .is_some_and(|r| r.eq_ignore_ascii_case("MOVED"));
        if !moved {
            tracing::warn!(
                "a locus.participant_moved event whose self reason is not MOVED: moving anyway"
            );
        }
        let name = destination
            .display_name()
            .unwrap_or("the new meeting")
            .to_owned();
        let to = destination.url.clone();
        let call = &mut self.calls[index];
        let id = call.id;
        let from = call.locus_url().unwrap_or_default().to_owned();
        tracing::info!(
            message_id = message_id::PARTICIPANT_MOVED,
            call_id = id,
            "Call {id}: moved by the meeting from {from} to {to} ({name}); leaving the old call"
        );
        call.diagnostic(diag::CALL_LEAVE);
        let self_id = call.me().map(|p| p.id.clone()).unwrap_or_default();
        let old_correlation = call.correlation_id.clone();
        let record = |outcome: MoveOutcome, detail: Option<String>| MoveRecord {
            call_id: id,
            outcome,
            from: from.clone(),
            to: to.clone(),
            name: name.clone(),
            detail,
        };
        if let Err(e) = services
            .locus
            .leave(&from, &self_id, &old_correlation)
            .await
        {
            let detail = format!(
                "nothing happened: leaving the old call failed ({e}); still in the first call"
            );
            tracing::error!(call_id = id, "move of call {id} failed: {detail}");
            self.move_outcome(
                record(MoveOutcome::NothingHappened, Some(detail.clone())),
                &detail,
            );
            return;
        }
        // Presentation does not carry over a move (seed 002); roomd does not share yet.
        if let Some(media) = self.calls[index].media.take() {
            media.stop().await;
        }
        let layers = self.media_layers();
        let call = &mut self.calls[index];
        call.plan = MediaPlan::random(layers);
        call.correlation_id = uuid::Uuid::new_v4().to_string();
        call.tracker = LocusTracker::new();
        call.state = CallState::Connecting;
        call.connected_at = None;
        call.display_name = name.clone();
        call.kind = CallKind::Meeting;
        call.diagnostic(diag::CALL_INITIATED);
        let body = self.join_body(&self.calls[index]);
        let call = &mut self.calls[index];
        call.diagnostic(diag::LOCAL_SDP_GENERATED);
        call.diagnostic(diag::JOIN_REQUEST);
        self.publish();
        match services.locus.join(&to, &body).await {
            Err(e) => {
                let detail = format!("dropped but not reconnected: joining {name} failed ({e})");
                tracing::error!(call_id = id, "move of call {id} failed: {detail}");
                self.move_outcome(
                    record(MoveOutcome::DroppedNotReconnected, Some(detail.clone())),
                    &detail,
                );
                self.end(id, EndCause::MoveFailed, Some(detail));
            }
            Ok(answer) => {
                let landed = answer.locus.url.clone();
                let landed_name = answer
                    .locus
                    .display_name()
                    .unwrap_or(landed.as_str())
                    .to_owned();
                self.joined(id, answer).await;
                if landed != to {
                    let detail = format!(
                        "connected to the wrong meeting: asked to join {name} ({to}), now in {landed_name} ({landed})"
                    );
                    tracing::error!(call_id = id, "move of call {id}: {detail}");
                    self.move_outcome(
                        record(MoveOutcome::WrongMeeting, Some(detail.clone())),
                        &detail,
                    );
                } else {
                    let text = format!("You have been moved to a new call. Now in {name}");
                    tracing::info!(call_id = id, "{text}");
                    self.move_outcome(record(MoveOutcome::Moved, None), &text);
                }
            }
        }
    }

    fn move_outcome(&self, record: MoveRecord, notice: &str) {
        let call_id = record.call_id;
        self.status.update(|s| {
            s.notice = Some(notice.to_owned());
            s.moves.push(record);
            let excess = s.moves.len().saturating_sub(MOVES_KEPT);
            s.moves.drain(..excess);
        });
        let _ = self.events.send(CallEvent::Notice {
            call_id,
            text: notice.to_owned(),
        });
    }

    fn media_layers(&self) -> usize {
        self.options
            .media
            .as_ref()
            .map_or(1, |m| m.graph.layers.max(1))
    }

    /// Starts the call's media session towards `node` (nothing when media is off).
    async fn start_media(&mut self, id: u32, node: std::net::SocketAddr, ext_id: u8) {
        let Some(options) = self.options.media.clone() else {
            return;
        };
        let Some(call) = self.calls.iter_mut().find(|c| c.id == id) else {
            return;
        };
        let start = MediaStart {
            call_id: id,
            correlation_id: call.correlation_id.clone(),
            node,
            ext_id,
            plan: call.plan.clone(),
        };
        match media_session::start(
            &options,
            start,
            self.controls.clone(),
            self.media_status.clone(),
            self.media_events_tx.clone(),
        )
        .await
        {
            Ok(session) => call.media = Some(session),
            Err(e) => tracing::error!(call_id = id, "Call {id}: no media: {e}"),
        }
    }

    /// A media diagnostic event: kept with the call, or with the ended call it belonged to.
    fn media_event(&mut self, event: MediaEvent) {
        let record = DiagnosticRecord {
            name: event.name,
            at: SystemTime::now(),
        };
        if let Some(call) = self.calls.iter_mut().find(|c| c.id == event.call_id) {
            log_diagnostic(
                call.id,
                &call.correlation_id,
                event.name,
                event.error.as_deref(),
            );
            call.diagnostics.push(record);
            return;
        }
        self.status.update(|s| {
            if let Some(view) = s.ended.iter_mut().find(|c| c.id == event.call_id) {
                log_diagnostic(
                    view.id,
                    &view.correlation_id,
                    event.name,
                    event.error.as_deref(),
                );
                view.diagnostics.push(record);
            }
        });
    }

    /// On shutdown: leave every call so the far end is not left talking to nobody.
    async fn leave_all(&mut self) {
        let Some(services) = self.services() else {
            return;
        };
        while !self.calls.is_empty() {
            let leave = async {
                if self.calls[0].state == CallState::Ringing {
                    let id = self.calls[0].id;
                    let _ = self.reject(Some(id)).await;
                } else {
                    self.leave(&services, 0).await;
                }
            };
            if tokio::time::timeout(Duration::from_secs(2), leave)
                .await
                .is_err()
            {
                let id = self.calls[0].id;
                self.end(id, EndCause::LocalDisconnect, Some("roomd stopped".into()));
            }
        }
    }

    fn publish(&self) {
        let views: Vec<CallView> = self.calls.iter().map(Call::view).collect();
        self.status.modify(|s| {
            if s.active == views {
                return false;
            }
            s.active = views;
            true
        });
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
