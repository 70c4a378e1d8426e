//! The call manager: the task that runs the call core (`calls::core`). It turns the room's
//! commands, Locus events, deadlines and resyncs into core inputs, and carries out the
//! core's actions: Locus requests and connectivity checks as tasks (their answers come back
//! as inputs), media sessions, replies, xAPI call events. Nothing here waits for the network
//! inside the loop, so a hang-up or a shutdown is handled while a join is still in flight.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::core::CallCore;
use super::ice;
use super::messages::{Action, Answer, Command, Done, Input, LocusRequest, Offer, OpId};
pub use super::messages::{CallError, CallEvent, DialOutcome, MAX_DTMF_TONES, valid_tones};
use super::status::CallsStatus;
use crate::cloud::locus::{JoinBody, LocusClient};
use crate::config::MeetingUriRegex;
use crate::events::{EventBus, Namespace, Resync, ResyncReason};
use crate::media::session::{
    self as media_session, MediaEvent, MediaOptions, MediaSession, MediaStart,
};
use crate::media::{MediaStatus, RoomControls};
use crate::reachability::Reachability;
use crate::shutdown::Shutdown;
use crate::status_slice::StatusSlice;

/// How long shutdown waits for the leaves (and declines) of the calls in progress.
const LEAVE_ON_SHUTDOWN: Duration = Duration::from_secs(2);

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

fn media_layers(options: &CallsOptions) -> usize {
    options.media.as_ref().map_or(1, |m| m.graph.layers.max(1))
}

type Reply<T> = oneshot::Sender<Result<T, CallError>>;

/// Where a command's answer goes.
#[derive(Debug)]
enum Pending {
    Dial(Reply<DialOutcome>),
    Done(Reply<()>),
}

/// The room's handle on call control.
#[derive(Debug, Clone)]
pub struct Calls {
    commands: mpsc::Sender<(Command, Pending)>,
    events: broadcast::Sender<CallEvent>,
}

/// A started media session, or why there is none, for `(call id, attempt)`.
type MediaStarted = (u32, u32, Option<MediaSession>);

/// Everything the manager task needs; [`Calls::new`] makes both halves.
#[derive(Debug)]
pub struct CallManager {
    commands: mpsc::Receiver<(Command, Pending)>,
    events: broadcast::Sender<CallEvent>,
    status: StatusSlice<CallsStatus>,
    media_status: StatusSlice<MediaStatus>,
    controls: watch::Receiver<RoomControls>,
    services: watch::Receiver<Option<CallServices>>,
    bus: EventBus,
    reachability: Reachability,
    options: CallsOptions,
    core: CallCore,
    next_op: OpId,
    replies: HashMap<OpId, Pending>,
    /// Locus requests and connectivity checks in flight; each yields the core's input.
    requests: JoinSet<Input>,
    /// Media sessions by call id.
    media: HashMap<u32, MediaSession>,
    media_starts: JoinSet<MediaStarted>,
    media_events_tx: mpsc::UnboundedSender<MediaEvent>,
    media_events: mpsc::UnboundedReceiver<MediaEvent>,
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
            core: CallCore::new(options.meeting_uri_regex.clone(), media_layers(&options)),
            options,
            next_op: 0,
            replies: HashMap::new(),
            requests: JoinSet::new(),
            media: HashMap::new(),
            media_starts: JoinSet::new(),
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

    async fn ask<T>(
        &self,
        command: Command,
        pending: impl FnOnce(Reply<T>) -> Pending,
    ) -> Result<T, CallError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send((command, pending(reply)))
            .await
            .map_err(|_| CallError::Stopping)?;
        answer.await.map_err(|_| CallError::Stopping)?
    }

    /// Places a call or joins a meeting (the meeting regex decides). Answers once the call
    /// exists; how it goes is reported through status and [`CallEvent`]s.
    pub async fn dial(&self, number: &str) -> Result<DialOutcome, CallError> {
        let number = number.trim().to_owned();
        self.ask(Command::Dial { number }, Pending::Dial).await
    }

    pub async fn accept(&self, call_id: Option<u32>) -> Result<(), CallError> {
        self.ask(Command::Accept { call_id }, Pending::Done).await
    }

    pub async fn reject(&self, call_id: Option<u32>) -> Result<(), CallError> {
        self.ask(Command::Reject { call_id }, Pending::Done).await
    }

    pub async fn disconnect(&self, call_id: Option<u32>) -> Result<(), CallError> {
        self.ask(Command::Disconnect { call_id }, Pending::Done)
            .await
    }

    pub async fn hold(&self, call_id: Option<u32>, held: bool) -> Result<(), CallError> {
        self.ask(Command::Hold { call_id, held }, Pending::Done)
            .await
    }

    pub async fn send_dtmf(&self, call_id: Option<u32>, tones: &str) -> Result<(), CallError> {
        let tones = tones.to_owned();
        self.ask(Command::Dtmf { call_id, tones }, Pending::Done)
            .await
    }
}

impl CallManager {
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut locus_events = self.bus.subscribe(Namespace::Locus, 256);
        let mut resync = self.bus.resync();
        resync.borrow_and_update();
        self.services.mark_changed();
        loop {
            self.core.observe_generation(resync.borrow().generation);
            let deadline = self
                .core
                .next_deadline()
                .map(tokio::time::Instant::from_std);
            let input = tokio::select! {
                command = self.commands.recv() => match command {
                    Some((command, pending)) => {
                        let op = self.next_op;
                        self.next_op += 1;
                        self.replies.insert(op, pending);
                        Input::Command { op, command }
                    }
                    None => break,
                },
                event = locus_events.recv() => match event {
                    Some(event) => Input::Event(event.data.clone()),
                    None => break,
                },
                Some(answer) = self.requests.join_next() => match answer {
                    Ok(input) => input,
                    Err(e) => {
                        tracing::error!("a call control request failed: {e}");
                        continue;
                    }
                },
                Some(started) = self.media_starts.join_next() => {
                    if let Ok(started) = started {
                        self.media_started(started);
                    }
                    continue;
                }
                _ = sleep_until(deadline) => Input::Deadline,
                Some(event) = self.media_events.recv() => {
                    self.core.media_event(&event);
                    self.publish();
                    continue;
                }
                changed = self.services.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let available = self.services.borrow_and_update().is_some();
                    Input::Services { available }
                }
                changed = resync.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let now: Resync = resync.borrow_and_update().clone();
                    if now.reason == ResyncReason::None {
                        continue;
                    }
                    Input::Resync { generation: now.generation }
                }
                _ = shutdown.recv() => break,
            };
            let actions = self.core.handle(input);
            self.carry_out(actions);
            self.publish();
        }
        self.stop().await;
        self.publish();
    }

    /// Carries out the core's actions, in order.
    fn carry_out(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Reply { op, result } => self.reply(op, result),
                Action::Event(event) => {
                    let _ = self.events.send(event);
                }
                Action::Locus {
                    call_id,
                    attempt,
                    request,
                } => {
                    let context = self.join_context();
                    let services = self.services.borrow().clone();
                    self.requests.spawn(async move {
                        let done = match services {
                            Some(services) => {
                                locus_request(&services.locus, request, context).await
                            }
                            None => not_registered(&request),
                        };
                        Input::Done {
                            call_id,
                            attempt,
                            done: Box::new(done),
                        }
                    });
                }
                Action::CheckIce {
                    call_id,
                    attempt,
                    node,
                } => {
                    let timeout = self.options.ice_timeout;
                    self.requests.spawn(async move {
                        Input::Done {
                            call_id,
                            attempt,
                            done: Box::new(Done::Ice(ice::check(node, timeout).await)),
                        }
                    });
                }
                Action::StartMedia {
                    call_id,
                    attempt,
                    correlation_id,
                    node,
                    ext_id,
                    plan,
                } => {
                    let Some(options) = self.options.media.clone() else {
                        continue;
                    };
                    let start = MediaStart {
                        call_id,
                        correlation_id,
                        node,
                        ext_id,
                        plan,
                    };
                    let controls = self.controls.clone();
                    let status = self.media_status.clone();
                    let events = self.media_events_tx.clone();
                    self.media_starts.spawn(async move {
                        match media_session::start(&options, start, controls, status, events).await
                        {
                            Ok(session) => (call_id, attempt, Some(session)),
                            Err(e) => {
                                tracing::error!(call_id, "Call {call_id}: no media: {e}");
                                (call_id, attempt, None)
                            }
                        }
                    });
                }
                Action::StopMedia { call_id } => {
                    if let Some(media) = self.media.remove(&call_id) {
                        // Teardown (BYE, pipelines to Null) runs in the session's task; its
                        // tx.stop and render.stop arrive as media events after the call's own.
                        tokio::spawn(media.stop());
                    }
                }
            }
        }
    }

    /// What a join body carries besides the offer, as of now.
    fn join_context(&self) -> JoinContext {
        let controls = self.controls.borrow();
        JoinContext {
            reachability: self.reachability.join_body(),
            audio_muted: controls.microphones_muted,
            video_muted: controls.camera_off,
        }
    }

    fn reply(&mut self, op: OpId, result: Result<Answer, CallError>) {
        let Some(pending) = self.replies.remove(&op) else {
            return;
        };
        match pending {
            Pending::Dial(reply) => {
                let _ = reply.send(match result {
                    Ok(Answer::Dialled(outcome)) => Ok(outcome),
                    Ok(Answer::Done) => Err(CallError::Stopping),
                    Err(e) => Err(e),
                });
            }
            Pending::Done(reply) => {
                let _ = reply.send(result.map(|_| ()));
            }
        }
    }

    /// A media session came up: kept while its call (attempt) lasts, else stopped.
    fn media_started(&mut self, (call_id, attempt, session): MediaStarted) {
        let Some(session) = session else {
            return;
        };
        if self.core.media_wanted(call_id, attempt) {
            if let Some(old) = self.media.insert(call_id, session) {
                tokio::spawn(old.stop());
            }
        } else {
            tokio::spawn(session.stop());
        }
    }

    /// On shutdown: requests in flight (a held join) are dropped; every call whose locus is
    /// known is left (a ringing one declined) so the far end is not left talking to nobody,
    /// within [`LEAVE_ON_SHUTDOWN`]; then every call ends and its media stops.
    async fn stop(&mut self) {
        self.requests.abort_all();
        self.media_starts.abort_all();
        let actions = self.core.shutdown();
        self.carry_out(actions);
        let leaving = async {
            while let Some(answer) = self.requests.join_next().await {
                if let Ok(input) = answer {
                    let actions = self.core.handle(input);
                    self.carry_out(actions);
                }
            }
        };
        if tokio::time::timeout(LEAVE_ON_SHUTDOWN, leaving)
            .await
            .is_err()
        {
            tracing::warn!(
                "calls: leaving took longer than {LEAVE_ON_SHUTDOWN:?}; ending them here"
            );
            self.requests.abort_all();
        }
        let actions = self.core.stopped();
        self.carry_out(actions);
        for (_, media) in self.media.drain() {
            media.stop().await;
        }
    }

    fn publish(&self) {
        let now = self.core.status();
        self.status.modify(|s| {
            let same = s.available == now.available
                && s.active == now.active
                && s.ended == now.ended
                && s.notice == now.notice
                && s.moves == now.moves
                && s.locus == now.locus;
            if !same {
                s.available = now.available;
                s.active.clone_from(&now.active);
                s.ended.clone_from(&now.ended);
                s.notice.clone_from(&now.notice);
                s.moves.clone_from(&now.moves);
                s.locus = now.locus.clone();
            }
            !same
        });
    }
}

/// The room's side of a join body: mute state and media reachability when the join is sent.
#[derive(Debug)]
struct JoinContext {
    reachability: serde_json::Value,
    audio_muted: bool,
    video_muted: bool,
}

impl JoinContext {
    fn body(self, offer: &Offer) -> JoinBody {
        JoinBody {
            correlation_id: offer.correlation_id.clone(),
            local_sdp: offer.local_sdp(),
            reachability: self.reachability,
            audio_muted: self.audio_muted,
            video_muted: self.video_muted,
        }
    }
}

/// The answer of a request when call control has no Locus service.
fn not_registered(request: &LocusRequest) -> Done {
    let text = CallError::NotRegistered.to_string();
    match request {
        LocusRequest::Call { .. }
        | LocusRequest::JoinMeeting { .. }
        | LocusRequest::Join { .. } => Done::Joined {
            answer: Err(text),
            meeting_name: None,
        },
        LocusRequest::Leave { .. } => Done::Left(Err(text)),
        LocusRequest::Decline { .. } => Done::Declined(Err(text)),
        LocusRequest::Alert { .. } => Done::Alerted(Err(text)),
        LocusRequest::Hold { .. } => Done::Held(Err(text)),
        LocusRequest::Dtmf { .. } => Done::DtmfSent(Err(text)),
        LocusRequest::Sync { .. } => Done::Synced(Err(text)),
    }
}

/// Runs one Locus request.
async fn locus_request(locus: &LocusClient, request: LocusRequest, context: JoinContext) -> Done {
    let text = |e: crate::cloud::locus::LocusError| e.to_string();
    match request {
        LocusRequest::Call { address, offer } => Done::Joined {
            answer: locus
                .call(&address, &context.body(&offer))
                .await
                .map_err(text),
            meeting_name: None,
        },
        LocusRequest::JoinMeeting { address, offer } => match locus.meeting_info(&address).await {
            Ok(info) => Done::Joined {
                answer: locus
                    .join(&info.locus_url, &context.body(&offer))
                    .await
                    .map_err(text),
                meeting_name: info.meeting_name,
            },
            Err(e) => Done::Joined {
                answer: Err(text(e)),
                meeting_name: None,
            },
        },
        LocusRequest::Join { locus_url, offer } => Done::Joined {
            answer: locus
                .join(&locus_url, &context.body(&offer))
                .await
                .map_err(text),
            meeting_name: None,
        },
        LocusRequest::Leave {
            locus_url,
            self_id,
            correlation_id,
        } => Done::Left(
            locus
                .leave(&locus_url, &self_id, &correlation_id)
                .await
                .map(drop)
                .map_err(text),
        ),
        LocusRequest::Decline { locus_url } => {
            Done::Declined(locus.decline(&locus_url).await.map(drop).map_err(text))
        }
        LocusRequest::Alert { locus_url } => {
            Done::Alerted(locus.alert(&locus_url).await.map(drop).map_err(text))
        }
        LocusRequest::Hold {
            locus_url,
            self_url,
            held,
        } => Done::Held(locus.hold(&locus_url, &self_url, held).await.map_err(text)),
        LocusRequest::Dtmf {
            locus_url,
            correlation_id,
            tones,
        } => Done::DtmfSent(
            locus
                .send_dtmf(&locus_url, &correlation_id, &tones)
                .await
                .map_err(text),
        ),
        LocusRequest::Sync {
            locus_url,
            sync_url,
        } => {
            let mut fetched = match &sync_url {
                Some(url) => locus.fetch(url).await,
                None => locus.fetch(&locus_url).await,
            };
            if let (Err(e), Some(_)) = (&fetched, &sync_url) {
                tracing::warn!("Locus syncUrl failed ({e}); fetching the whole locus");
                fetched = locus.fetch(&locus_url).await;
            }
            Done::Synced(fetched.map_err(text))
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
