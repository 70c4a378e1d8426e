//! One mercury socket, from connect to close, in one task: authorization frame, online on
//! the first buffer_state, acks, ping/pong, sequence-gap detection, dispatch to the bus.
//! It reports what happened to the supervisor, which decides about reconnecting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::clock::sleep_until_some;
use crate::cloud::mercury::policy::{CloseInfo, refused_status_as_code};
use crate::events::recent::RecentIds;
use crate::events::{Event, EventBus, Namespace, ResyncReason};
use crate::net::websocket::{self, CloseFrame, Message, WsStream};
use crate::platform::logging::message_id;
use crate::proto::mercury::{self, Inbound};
use crate::secret::Secret;

/// Timers of one socket (wire profile §3 defaults in [`super::MercuryConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub connect_timeout: Duration,
    /// How long after connecting the socket may take to come online.
    pub online_timeout: Duration,
    /// How long a close handshake may take before the connection is dropped.
    pub close_grace: Duration,
}

/// What a connection tells its supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEvent {
    Online,
    /// The server sent `shutdown`: a replacement should be opened now.
    ShutdownRequested,
    Closed(CloseInfo),
}

/// What the supervisor may tell a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Close { code: u16, reason: String },
}

/// Counters shown in `roomd status`.
#[derive(Debug, Default)]
pub struct Counters {
    pub events: AtomicU64,
    pub duplicates: AtomicU64,
    pub dropped_frames: AtomicU64,
    pub sequence_gaps: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> [u64; 4] {
        [
            self.events.load(Ordering::Relaxed),
            self.duplicates.load(Ordering::Relaxed),
            self.dropped_frames.load(Ordering::Relaxed),
            self.sequence_gaps.load(Ordering::Relaxed),
        ]
    }
}

/// State every connection of one supervisor shares.
#[derive(Debug)]
pub struct Shared {
    pub bus: EventBus,
    /// Event ids seen lately, across sockets: a switchover may deliver one twice.
    pub recent: Mutex<RecentIds>,
    /// Held by the connection that dispatches; a replacement socket waits for the retiring
    /// one to finish, so consumers see events in the server's order.
    pub dispatch_turn: Arc<tokio::sync::Mutex<()>>,
    pub counters: Counters,
}

impl Shared {
    pub fn new(bus: EventBus, dedup_capacity: usize) -> Self {
        Self {
            bus,
            recent: Mutex::new(RecentIds::new(dedup_capacity)),
            dispatch_turn: Arc::new(tokio::sync::Mutex::new(())),
            counters: Counters::default(),
        }
    }

    /// False when `id` was seen lately.
    fn first_sighting(&self, id: &str) -> bool {
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id)
    }
}

/// Everything needed to open one socket.
#[derive(Debug)]
pub struct Dial {
    pub id: u64,
    /// `webSocketUrl` with the profile's query parameters.
    pub url: String,
    pub access_token: Secret<String>,
    pub tls: Arc<rustls::ClientConfig>,
    pub tracking_id: String,
}

type Report = mpsc::Sender<(u64, ConnectionEvent)>;

/// Runs one socket to its end; the last report is always `Closed`.
pub async fn run(
    dial: Dial,
    timers: Timers,
    shared: Arc<Shared>,
    report: Report,
    control: mpsc::Receiver<Control>,
) {
    let id = dial.id;
    let closed = match open(&dial, timers).await {
        Ok(socket) => {
            let mut connection = Connection {
                id,
                socket,
                timers,
                shared,
                report: report.clone(),
                online: false,
                last_sequence: None,
                dispatch_guard: None,
            };
            connection.serve(control).await
        }
        Err(info) => info,
    };
    let _ = report.send((id, ConnectionEvent::Closed(closed))).await;
}

async fn open(dial: &Dial, timers: Timers) -> Result<WsStream, CloseInfo> {
    let headers = [("trackingid", dial.tracking_id.clone())];
    let mut socket = websocket::connect(
        &dial.url,
        Arc::clone(&dial.tls),
        &headers,
        timers.connect_timeout,
    )
    .await
    .map_err(|e| match e.status().and_then(refused_status_as_code) {
        // A refusal before the upgrade counts like the matching close code.
        Some(code) => CloseInfo {
            code: Some(code),
            reason: e.to_string(),
            was_online: false,
            by_us: false,
        },
        None => CloseInfo {
            code: None,
            reason: e.to_string(),
            was_online: false,
            by_us: true,
        },
    })?;
    let frame = mercury::authorization(
        &uuid::Uuid::new_v4().to_string(),
        &dial.access_token,
        &dial.tracking_id,
    );
    socket
        .send(Message::text(frame.into_inner()))
        .await
        .map_err(|e| CloseInfo {
            code: None,
            reason: format!("sending the authorization frame: {e}"),
            was_online: false,
            by_us: true,
        })?;
    Ok(socket)
}

struct Connection {
    id: u64,
    socket: WsStream,
    timers: Timers,
    shared: Arc<Shared>,
    report: Report,
    online: bool,
    last_sequence: Option<u64>,
    dispatch_guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// The ping in flight.
struct PendingPing {
    id: String,
    deadline: Instant,
    /// Frames read since the ping went out: a pong queued behind events we are still
    /// reading is late, not missing.
    frames_since: u64,
}

enum Step {
    Continue,
    Close { code: u16, reason: String },
    Ended(CloseInfo),
}

impl Connection {
    async fn serve(&mut self, mut control: mpsc::Receiver<Control>) -> CloseInfo {
        let online_deadline = Instant::now() + self.timers.online_timeout;
        let mut next_ping: Option<Instant> = None;
        let mut pending: Option<PendingPing> = None;
        loop {
            let step = tokio::select! {
                biased;
                frame = self.socket.next() => match frame {
                    Some(Ok(message)) => {
                        if let Some(p) = pending.as_mut() {
                            p.frames_since += 1;
                        }
                        self.on_message(message, &mut pending, &mut next_ping).await
                    }
                    Some(Err(e)) => Step::Ended(CloseInfo {
                        code: None,
                        reason: e.to_string(),
                        was_online: self.online,
                        by_us: false,
                    }),
                    None => Step::Ended(CloseInfo {
                        code: None,
                        reason: "connection ended without a close frame".into(),
                        was_online: self.online,
                        by_us: false,
                    }),
                },
                command = control.recv() => match command {
                    Some(Control::Close { code, reason }) => Step::Close { code, reason },
                    None => Step::Close { code: 1000, reason: "done".into() },
                },
                _ = tokio::time::sleep_until(online_deadline), if !self.online => Step::Close {
                    code: 1000,
                    reason: format!("not online within {} s", self.timers.online_timeout.as_secs()),
                },
                _ = sleep_until_some(next_ping), if pending.is_none() && next_ping.is_some() => {
                    let id = uuid::Uuid::new_v4().to_string();
                    match self.socket.send(Message::text(mercury::ping(&id))).await {
                        Ok(()) => {
                            pending = Some(PendingPing {
                                id,
                                deadline: Instant::now() + self.timers.pong_timeout,
                                frames_since: 0,
                            });
                            next_ping = None;
                            Step::Continue
                        }
                        Err(e) => Step::Ended(CloseInfo {
                            code: None,
                            reason: format!("sending a ping: {e}"),
                            was_online: self.online,
                            by_us: true,
                        }),
                    }
                }
                _ = sleep_until_some(pending.as_ref().map(|p| p.deadline)), if pending.is_some() => {
                    let p = pending.as_mut().expect("guarded");
                    if p.frames_since > 0 {
                        p.frames_since = 0;
                        p.deadline = Instant::now() + self.timers.pong_timeout;
                        Step::Continue
                    } else {
                        Step::Close { code: 1000, reason: "Pong not received".into() }
                    }
                }
            };
            match step {
                Step::Continue => {}
                Step::Close { code, reason } => {
                    self.close(code, &reason).await;
                    return CloseInfo {
                        code: Some(code),
                        reason,
                        was_online: self.online,
                        by_us: true,
                    };
                }
                Step::Ended(info) => return info,
            }
        }
    }

    async fn on_message(
        &mut self,
        message: Message,
        pending: &mut Option<PendingPing>,
        next_ping: &mut Option<Instant>,
    ) -> Step {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (Some(u16::from(f.code)), f.reason.as_str().to_owned()))
                    .unwrap_or((None, String::new()));
                // tungstenite answers the close frame; drain until the stream ends.
                let _ = tokio::time::timeout(self.timers.close_grace, async {
                    while let Some(Ok(_)) = self.socket.next().await {}
                })
                .await;
                return Step::Ended(CloseInfo {
                    // A close frame without a code is 1005 ("no status received").
                    code: Some(code.unwrap_or(1005)),
                    reason,
                    was_online: self.online,
                    by_us: false,
                });
            }
            Message::Binary(data) => {
                tracing::debug!(len = data.len(), "binary frame ignored");
                return Step::Continue;
            }
            // tungstenite answers pings itself.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Step::Continue,
        };
        let inbound = match mercury::parse(text.as_str()) {
            Ok(inbound) => inbound,
            Err(e) => {
                self.shared
                    .counters
                    .dropped_frames
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    trackingid = e.tracking_id().unwrap_or("none"),
                    "Wx2WebSocket: frame dropped, trackingid {}: {e}",
                    e.tracking_id().unwrap_or("none")
                );
                return Step::Continue;
            }
        };
        let ack = inbound.ack_id().map(str::to_owned);
        match inbound {
            Inbound::Pong { id } => {
                let Some(expected) = pending.take() else {
                    tracing::debug!("unsolicited pong ignored");
                    return Step::Continue;
                };
                if id.as_deref() != Some(expected.id.as_str()) {
                    return Step::Close {
                        code: 1000,
                        reason: "Pong mismatch".into(),
                    };
                }
                *next_ping = Some(Instant::now() + self.timers.ping_interval);
            }
            Inbound::Shutdown { .. } => {
                tracing::info!("Wx2WebSocket: server asked to move to a new socket (shutdown)");
                let _ = self
                    .report
                    .send((self.id, ConnectionEvent::ShutdownRequested))
                    .await;
            }
            Inbound::Other { kind, .. } => {
                tracing::debug!(?kind, "frame without an event ignored");
            }
            Inbound::Event(envelope) => {
                if let Some(got) = envelope.sequence_number {
                    if let Some(last) = self.last_sequence {
                        if got != last.wrapping_add(1) {
                            self.shared
                                .counters
                                .sequence_gaps
                                .fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                message_id = message_id::WEBSOCKET_SEQUENCE_GAP,
                                "Wx2WebSocket: sequence-mismatch: expected {}, got {got}; catch-ups requested",
                                last.wrapping_add(1)
                            );
                            self.shared.bus.request_resync(ResyncReason::SequenceGap {
                                expected: last.wrapping_add(1),
                                got,
                            });
                        }
                    }
                    self.last_sequence = Some(got);
                }
                if envelope.marks_online() {
                    if !self.online {
                        self.online = true;
                        *next_ping = Some(Instant::now() + self.timers.ping_interval);
                        let _ = self.report.send((self.id, ConnectionEvent::Online)).await;
                    }
                } else {
                    self.dispatch(envelope).await;
                }
            }
        }
        if let Some(id) = ack {
            if let Err(e) = self.socket.send(Message::text(mercury::ack(&id))).await {
                return Step::Ended(CloseInfo {
                    code: None,
                    reason: format!("sending an ack: {e}"),
                    was_online: self.online,
                    by_us: true,
                });
            }
        }
        Step::Continue
    }

    /// Publishes one event (once per id), after the retiring socket of a switchover is done.
    async fn dispatch(&mut self, envelope: mercury::Envelope) {
        let tracking = envelope.tracking_id.as_deref().unwrap_or("none");
        tracing::info!(
            trackingid = tracking,
            "NotificationChannel: {}, trackingid {tracking}",
            envelope.event_type
        );
        let id = envelope
            .id
            .clone()
            .unwrap_or_else(|| format!("no-id-{}", uuid::Uuid::new_v4()));
        if !self.shared.first_sighting(&id) {
            self.shared
                .counters
                .duplicates
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(event_id = %id, "duplicate event dropped");
            return;
        }
        if self.dispatch_guard.is_none() {
            let turn = Arc::clone(&self.shared.dispatch_turn);
            self.dispatch_guard = Some(turn.lock_owned().await);
        }
        self.shared.counters.events.fetch_add(1, Ordering::Relaxed);
        let namespace = Namespace::of(&envelope.event_type);
        self.shared
            .bus
            .publish(Event {
                id,
                event_type: envelope.event_type,
                namespace,
                tracking_id: envelope.tracking_id,
                sequence_number: envelope.sequence_number,
                timestamp: envelope.timestamp,
                data: envelope.data,
            })
            .await;
    }

    /// Sends a close frame and waits (bounded) for the server's; a half-open peer never
    /// answers, so the connection is dropped after the grace period either way.
    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.to_owned().into(),
        };
        let _ = tokio::time::timeout(self.timers.close_grace, async {
            if self.socket.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(_)) = self.socket.next().await {}
            }
        })
        .await;
    }
}
