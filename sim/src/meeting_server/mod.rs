//! The simulated Cisco Meeting Server events listener (seed 001, wire profile §9, the "§9 Meeting
//! Server events" choices in `docs/wire-profile-choices.md`).
//!
//! Its own HTTPS listener and CA (`cms-ca.pem`), optionally demanding a client certificate:
//! `POST /api/v1/authTokens` (Basic) hands out a token, `GET /events/v1?authToken=` upgrades to the
//! events WebSocket. A conference model (calls and participants) that the admin API and
//! [`crate::SimHandle`] drive feeds every socket's subscriptions.
//!
//! - `config`: `[meeting_server]` of the scenario (credentials, limits, ack timeout, mutual TLS).
//! - `model`: calls, participants, their elements, and the changes a mutation makes.
//! - `protocol`: one socket's subscription set and the messages a change queues for it (pure).
//! - `ws`: the hand-rolled RFC 6455 frame layer (so fragments, pings and binary are visible).
//! - `conn`: the socket task: ack gating, ack timeout, silence, closing.
//! - `service`: the two HTTP routes; `tls`: CA, server and client certificates, the switchable
//!   client-certificate verifier; `admin`: `/admin/meeting-server/*`; `handle`: the [`crate::SimHandle`]
//!   mirrors; `script`: the scripted conference.
//!
//! Everything mutable sits behind one mutex (`Inner`), so a model change is turned into queued
//! messages for every socket atomically and in order; a `watch` counter bumps after every change so
//! waiters (tests, the script) wake instead of polling.

mod admin;
mod config;
mod conn;
mod handle;
mod model;
mod protocol;
mod script;
mod service;
mod tls;
mod ws;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::clock::now_ms;
use crate::recorder::LOG_CAPACITY;
use crate::shutdown::Shutdown;
use crate::state::{SimState, lock};

pub use config::{CmsConfigPatch, MeetingServerScenario};
pub use model::{CmsCall, CmsCallFields, CmsParticipant, CmsParticipantFields};
pub use protocol::{CmsResource, CmsSubscription, CmsSubscriptionState};
pub use script::{CmsScript, CmsScriptOptions};

use model::{Change, Model};
use protocol::Session;

/// How long an auth token from `POST /api/v1/authTokens` opens sockets.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// Messages one socket may have waiting for acks before it is closed (1008).
pub const MAX_QUEUED_MESSAGES: usize = 10_000;

/// Closed connections kept for inspection; older ones are forgotten.
const KEPT_CLOSED: usize = 100;

/// Subject common name of the Meeting Server's CA.
pub const CMS_CA_COMMON_NAME: &str = "roomd-sim meeting server CA";

/// An admin or handle request the Meeting Server refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmsError {
    /// 400: bad input.
    BadRequest(String),
    /// 404: no such call, participant or connection.
    NotFound(String),
    /// 409: the id is in use, or a script is already running.
    Conflict(String),
}

impl std::fmt::Display for CmsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadRequest(m) | Self::NotFound(m) | Self::Conflict(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CmsError {}

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CmsDirection {
    /// From the client.
    Received,
    /// To the client.
    Sent,
}

/// One WebSocket frame of a connection, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmsFrame {
    pub direction: CmsDirection,
    pub at_ms: u64,
    /// `text`, `binary`, `ping`, `pong`, `fragment` or `close`.
    pub kind: String,
    /// Text frames: the JSON (a JSON string when the text was not JSON). Close frames:
    /// `{"code","reason"}`. Binary: `{"len"}`. Others: null.
    pub body: Value,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmsClose {
    /// The close code sent or received; None when the connection just went away.
    pub code: Option<u16>,
    pub reason: String,
    /// `server` (the simulator closed it), `client` (the client's close frame), `gone` (the TCP
    /// connection ended without a close frame), `abort` (dropped by the admin API).
    pub by: String,
}

/// One events connection (open, or one of the last closed ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmsConnection {
    /// Numbered from 1 per simulator run.
    pub id: u64,
    pub open: bool,
    /// This socket is silenced (on its own or server-wide).
    pub silent: bool,
    pub opened_at_ms: u64,
    pub closed_at_ms: Option<u64>,
    pub close: Option<CmsClose>,
    /// The current subscription set, by index.
    pub subscriptions: Vec<CmsSubscription>,
    /// Messages waiting behind the one awaiting its ack.
    pub queued: usize,
    /// The `messageId` of the server message the client has not acked yet.
    pub awaiting_ack: Option<u64>,
    /// Server messages sent so far (the last `messageId`).
    pub messages_sent: u64,
    /// Client messages (`type":"message"`) received so far.
    pub messages_received: u64,
    pub frames_received: usize,
    pub frames_sent: usize,
}

/// Something a client did that the Meeting Server does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmsViolation {
    pub at_ms: u64,
    /// None for a socket refused before the upgrade.
    pub connection: Option<u64>,
    /// `max_connections`, `max_subscriptions`, `ping_frame`, `pong_frame`, `binary_frame`,
    /// `fragmented_frame`, `protocol`, `invalid_message`, `ack_timeout`, `queue_overflow`.
    pub kind: String,
    pub detail: String,
}

/// Everything the Meeting Server knows, for the admin API and for waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmsSnapshot {
    pub config: MeetingServerScenario,
    /// The GUID of this simulated Call Bridge (`movedParticipantCallBridge` of moved participants).
    pub bridge: String,
    /// Server-wide silence.
    pub silent: bool,
    /// Active calls in start order.
    pub calls: Vec<CmsCall>,
    /// Open connections and the last closed ones, oldest first.
    pub connections: Vec<CmsConnection>,
    pub violations: Vec<CmsViolation>,
    /// The scripted conference, once started.
    pub script: Option<CmsScript>,
}

impl CmsSnapshot {
    /// The open connections.
    pub fn open_connections(&self) -> impl Iterator<Item = &CmsConnection> {
        self.connections.iter().filter(|c| c.open)
    }

    /// A connection by id.
    pub fn connection(&self, id: u64) -> Option<&CmsConnection> {
        self.connections.iter().find(|c| c.id == id)
    }

    /// An active call by GUID.
    pub fn call(&self, id: &str) -> Option<&CmsCall> {
        self.calls.iter().find(|c| c.call == id)
    }
}

/// What the admin side asks one socket task to do.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Close { code: u16, reason: String },
    Abort,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    opened_at_ms: u64,
    closed_at_ms: Option<u64>,
    close: Option<CmsClose>,
    session: Session,
    next_message_id: u64,
    awaiting: Option<u64>,
    messages_received: u64,
    silent: bool,
    command: Option<Command>,
    frames: VecDeque<CmsFrame>,
    frames_received: usize,
    frames_sent: usize,
    notify: Arc<Notify>,
}

impl Conn {
    fn is_open(&self) -> bool {
        self.closed_at_ms.is_none()
    }

    fn log(&mut self, direction: CmsDirection, kind: &str, body: Value) {
        match direction {
            CmsDirection::Received => self.frames_received += 1,
            CmsDirection::Sent => self.frames_sent += 1,
        }
        if self.frames.len() >= LOG_CAPACITY {
            self.frames.pop_front();
        }
        self.frames.push_back(CmsFrame {
            direction,
            at_ms: now_ms(),
            kind: kind.to_owned(),
            body,
        });
    }

    fn view(&self, silent_all: bool) -> CmsConnection {
        CmsConnection {
            id: self.id,
            open: self.is_open(),
            silent: self.is_open() && (silent_all || self.silent),
            opened_at_ms: self.opened_at_ms,
            closed_at_ms: self.closed_at_ms,
            close: self.close.clone(),
            subscriptions: self.session.subs.values().cloned().collect(),
            queued: self.session.queue.len(),
            awaiting_ack: self.awaiting,
            messages_sent: self.next_message_id - 1,
            messages_received: self.messages_received,
            frames_received: self.frames_received,
            frames_sent: self.frames_sent,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    model: Model,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    violations: VecDeque<CmsViolation>,
    tokens: HashMap<String, Instant>,
    silent_all: bool,
    script: Option<CmsScript>,
}

impl Inner {
    fn violation(&mut self, connection: Option<u64>, kind: &str, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::info!(?connection, kind, %detail, "meeting server: client violation");
        if self.violations.len() >= LOG_CAPACITY {
            self.violations.pop_front();
        }
        self.violations.push_back(CmsViolation {
            at_ms: now_ms(),
            connection,
            kind: kind.to_owned(),
            detail,
        });
    }

    fn open_conn(&mut self, id: u64) -> Option<&mut Conn> {
        self.conns.get_mut(&id).filter(|c| c.is_open())
    }

    /// Forgets the oldest closed connections beyond [`KEPT_CLOSED`].
    fn prune_closed(&mut self) {
        let closed: Vec<u64> = self
            .conns
            .values()
            .filter(|c| !c.is_open())
            .map(|c| c.id)
            .collect();
        for id in closed.iter().take(closed.len().saturating_sub(KEPT_CLOSED)) {
            self.conns.remove(id);
        }
    }

    /// True when every open, non-silent socket has sent everything and got every ack.
    fn quiet(&self) -> bool {
        self.conns
            .values()
            .filter(|c| c.is_open() && !(self.silent_all || c.silent))
            .all(|c| c.awaiting.is_none() && c.session.queue.is_empty())
    }
}

/// The wake-ups of every open socket task.
fn wakers(inner: &Inner) -> Vec<Arc<Notify>> {
    inner
        .conns
        .values()
        .filter(|c| c.is_open())
        .map(|c| Arc::clone(&c.notify))
        .collect()
}

/// Why a socket is refused before the upgrade.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// 503: `max_connections` open already.
    Full(usize),
}

/// The Meeting Server's state, shared by its listener, its sockets, the admin API and the handle.
#[derive(Debug)]
pub(crate) struct MeetingServer {
    sim: Arc<SimState>,
    inner: Mutex<Inner>,
    version: watch::Sender<u64>,
    /// Set once the listener has stopped (simulator shutdown), so the script stops too.
    stopped: watch::Sender<bool>,
    bridge: String,
    pub addr: SocketAddr,
    pub url: String,
    pub ca_pem: String,
    pub ca_path: PathBuf,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub client_cert_path: PathBuf,
    pub client_key_path: PathBuf,
}

impl MeetingServer {
    pub(crate) fn config(&self) -> MeetingServerScenario {
        self.sim.with_scenario(|s| s.meeting_server.clone())
    }

    /// Runs `f` under the lock, then wakes waiters and every socket task.
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let (out, wake) = {
            let mut inner = lock(&self.inner);
            let out = f(&mut inner);
            (out, wakers(&inner))
        };
        self.wake(wake);
        out
    }

    /// Runs `f` under the lock; wakes waiters and every socket task only when it answers Some (it
    /// changed something), so a socket task polling with it does not wake itself for nothing.
    fn with_if<R>(&self, f: impl FnOnce(&mut Inner) -> Option<R>) -> Option<R> {
        let (out, wake) = {
            let mut inner = lock(&self.inner);
            let out = f(&mut inner);
            let wake = if out.is_some() {
                wakers(&inner)
            } else {
                Vec::new()
            };
            (out, wake)
        };
        if out.is_some() {
            self.wake(wake);
        }
        out
    }

    fn wake(&self, sockets: Vec<Arc<Notify>>) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
        for n in sockets {
            n.notify_one();
        }
    }

    /// Reads without waking anybody.
    fn read<R>(&self, f: impl FnOnce(&Inner) -> R) -> R {
        f(&lock(&self.inner))
    }

    pub(crate) fn snapshot(&self) -> CmsSnapshot {
        let config = self.config();
        self.read(|inner| CmsSnapshot {
            config,
            bridge: self.bridge.clone(),
            silent: inner.silent_all,
            calls: inner.model.calls.clone(),
            connections: inner
                .conns
                .values()
                .map(|c| c.view(inner.silent_all))
                .collect(),
            violations: inner.violations.iter().cloned().collect(),
            script: inner.script.clone(),
        })
    }

    /// Waits until `pred` holds for a snapshot, re-checking after every change.
    pub(crate) async fn wait(
        &self,
        mut pred: impl FnMut(&CmsSnapshot) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<CmsSnapshot> {
        let mut rx = self.version.subscribe();
        let mut last = None;
        let found = tokio::time::timeout(timeout, async {
            loop {
                rx.borrow_and_update();
                let snap = self.snapshot();
                if pred(&snap) {
                    return snap;
                }
                last = Some(snap);
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        found.map_err(|_| {
            anyhow::anyhow!(
                "timed out after {timeout:?} waiting for the Meeting Server; last state: {}",
                last.map(|s| serde_json::to_string(&s).unwrap_or_default())
                    .unwrap_or_default()
            )
        })
    }

    /// Waits until `pred` holds for the raw state (no snapshot built); false on timeout.
    async fn wait_inner(&self, pred: impl Fn(&Inner) -> bool, timeout: Duration) -> bool {
        let mut rx = self.version.subscribe();
        tokio::time::timeout(timeout, async {
            loop {
                rx.borrow_and_update();
                if self.read(&pred) {
                    return;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
        .is_ok()
    }

    // ---- tokens ----

    pub(crate) fn issue_token(&self) -> String {
        let token = uuid::Uuid::new_v4().to_string();
        crate::test_run::record_secret("meeting-server-token", &token);
        self.with(|inner| {
            let now = Instant::now();
            inner.tokens.retain(|_, exp| *exp > now);
            inner.tokens.insert(token.clone(), now + TOKEN_LIFETIME);
        });
        token
    }

    pub(crate) fn token_valid(&self, token: &str) -> bool {
        self.read(|inner| {
            inner
                .tokens
                .get(token)
                .is_some_and(|exp| *exp > Instant::now())
        })
    }

    /// Every token issued so far stops working; open sockets stay.
    pub(crate) fn expire_tokens(&self) -> usize {
        self.with(|inner| {
            let n = inner.tokens.len();
            inner.tokens.clear();
            n
        })
    }

    // ---- connections (called by the socket side) ----

    /// Reserves a connection slot before the upgrade (so a 6th concurrent upgrade is refused).
    pub(crate) fn open(&self) -> Result<(u64, Arc<Notify>), Refusal> {
        let max = self.config().max_connections;
        self.with(|inner| {
            let open = inner.conns.values().filter(|c| c.is_open()).count();
            if open >= max {
                inner.violation(
                    None,
                    "max_connections",
                    format!("a socket beyond the {max} allowed was refused with 503"),
                );
                return Err(Refusal::Full(max));
            }
            inner.next_conn += 1;
            let id = inner.next_conn;
            let notify = Arc::new(Notify::new());
            inner.conns.insert(
                id,
                Conn {
                    id,
                    opened_at_ms: now_ms(),
                    closed_at_ms: None,
                    close: None,
                    session: Session::default(),
                    next_message_id: 1,
                    awaiting: None,
                    messages_received: 0,
                    silent: false,
                    command: None,
                    frames: VecDeque::new(),
                    frames_received: 0,
                    frames_sent: 0,
                    notify: Arc::clone(&notify),
                },
            );
            Ok((id, notify))
        })
    }

    pub(crate) fn closed(&self, id: u64, close: CmsClose) {
        self.with(|inner| {
            if let Some(c) = inner.open_conn(id) {
                tracing::info!(connection = id, ?close, "meeting server socket closed");
                c.closed_at_ms = Some(now_ms());
                c.close = Some(close);
                c.session.queue.clear();
                c.awaiting = None;
            }
            inner.prune_closed();
        });
    }

    pub(crate) fn is_silent(&self, id: u64) -> bool {
        self.read(|inner| inner.silent_all || inner.conns.get(&id).is_some_and(|c| c.silent))
    }

    pub(crate) fn awaiting(&self, id: u64) -> Option<u64> {
        self.read(|inner| inner.conns.get(&id).and_then(|c| c.awaiting))
    }

    pub(crate) fn take_command(&self, id: u64) -> Option<Command> {
        let mut inner = lock(&self.inner);
        inner.conns.get_mut(&id).and_then(|c| c.command.take())
    }

    pub(crate) fn violation(&self, id: u64, kind: &str, detail: impl Into<String>) {
        self.with(|inner| inner.violation(Some(id), kind, detail));
    }

    /// Logs a frame the socket task received or sent.
    pub(crate) fn log(&self, id: u64, direction: CmsDirection, kind: &str, body: Value) {
        self.with(|inner| {
            if let Some(c) = inner.conns.get_mut(&id) {
                c.log(direction, kind, body);
            }
        });
    }

    /// The next server message to send, numbered and logged, when nothing is awaiting its ack.
    pub(crate) fn next_outgoing(&self, id: u64) -> Option<String> {
        self.with_if(|inner| {
            let silent_all = inner.silent_all;
            let c = inner.open_conn(id)?;
            if silent_all || c.silent || c.awaiting.is_some() {
                return None;
            }
            let rest = c.session.queue.pop_front()?;
            let message_id = c.next_message_id;
            c.next_message_id += 1;
            c.awaiting = Some(message_id);
            let mut message = Map::new();
            message.insert("messageId".to_owned(), json!(message_id));
            message.extend(rest);
            let envelope = json!({ "type": "message", "message": message });
            let text = envelope.to_string();
            c.log(CmsDirection::Sent, "text", envelope);
            Some(text)
        })
    }

    /// Handles one text frame from the client; returns the ack to send at once, if any.
    pub(crate) fn on_text(&self, id: u64, text: &str) -> Option<String> {
        let max_subscriptions = self.config().max_subscriptions;
        self.with(|inner| {
            let parsed: Option<Value> = serde_json::from_str(text).ok();
            let Inner {
                model,
                conns,
                violations: _,
                ..
            } = &mut *inner;
            let c = conns.get_mut(&id).filter(|c| c.is_open())?;
            c.log(
                CmsDirection::Received,
                "text",
                parsed.clone().unwrap_or_else(|| json!(text)),
            );
            let outcome = handle_client_frame(c, model, parsed, max_subscriptions);
            let ack = match outcome {
                Handled::Ack(ack) => ack,
                Handled::AckAndViolation(ack, kind, detail) => {
                    inner.violation(Some(id), kind, detail);
                    ack
                }
                Handled::Nothing => return None,
            };
            let text = ack.to_string();
            if let Some(c) = inner.conns.get_mut(&id) {
                c.log(CmsDirection::Sent, "text", ack);
            }
            Some(text)
        })
    }

    // ---- the model (admin and handle) ----

    /// Applies a model mutation and queues its messages on every open socket.
    fn mutate<T>(
        &self,
        f: impl FnOnce(&mut Model) -> Result<(T, Vec<Change>), CmsError>,
    ) -> Result<T, CmsError> {
        self.with(|inner| {
            let (out, changes) = f(&mut inner.model)?;
            let mut overflowed = Vec::new();
            for c in inner.conns.values_mut().filter(|c| c.is_open()) {
                for change in &changes {
                    c.session.on_change(change);
                }
                if c.session.queue.len() > MAX_QUEUED_MESSAGES && c.command.is_none() {
                    c.command = Some(Command::Close {
                        code: 1008,
                        reason: "too many unacknowledged messages".to_owned(),
                    });
                    overflowed.push(c.id);
                }
            }
            for id in overflowed {
                inner.violation(
                    Some(id),
                    "queue_overflow",
                    format!("more than {MAX_QUEUED_MESSAGES} messages waiting for acks"),
                );
            }
            Ok(out)
        })
    }

    pub(crate) fn calls(&self) -> Vec<CmsCall> {
        self.read(|inner| inner.model.calls.clone())
    }

    pub(crate) fn call(&self, id: &str) -> Result<CmsCall, CmsError> {
        self.read(|inner| inner.model.call(id).cloned())
            .ok_or_else(|| CmsError::NotFound(format!("no active call {id}")))
    }

    pub(crate) fn create_call(&self, fields: &CmsCallFields) -> Result<CmsCall, CmsError> {
        self.mutate(|m| m.create_call(fields))
    }

    pub(crate) fn update_call(
        &self,
        id: &str,
        fields: &CmsCallFields,
    ) -> Result<CmsCall, CmsError> {
        self.mutate(|m| m.update_call(id, fields))
    }

    pub(crate) fn end_call(&self, id: &str) -> Result<(), CmsError> {
        self.mutate(|m| m.end_call(id).map(|c| ((), c)))
    }

    pub(crate) fn add_participant(
        &self,
        call: &str,
        fields: &CmsParticipantFields,
    ) -> Result<CmsParticipant, CmsError> {
        self.mutate(|m| m.add_participant(call, fields, None))
    }

    pub(crate) fn update_participant(
        &self,
        call: &str,
        participant: &str,
        fields: &CmsParticipantFields,
    ) -> Result<CmsParticipant, CmsError> {
        self.mutate(|m| m.update_participant(call, participant, fields))
    }

    pub(crate) fn remove_participant(&self, call: &str, participant: &str) -> Result<(), CmsError> {
        self.mutate(|m| {
            m.remove_participant(call, participant)
                .map(|(_, c)| ((), c))
        })
    }

    /// Moves a participant to `to_call` (default: the same call): a remove, then an add of a new
    /// participant (GUID `new_id` or a fresh one) carrying `movedParticipant` and
    /// `movedParticipantCallBridge`.
    pub(crate) fn move_participant(
        &self,
        call: &str,
        participant: &str,
        to_call: Option<&str>,
        new_id: Option<String>,
    ) -> Result<CmsParticipant, CmsError> {
        let to = to_call.unwrap_or(call).to_owned();
        self.mutate(|m| m.move_participant(call, participant, &to, new_id, &self.bridge))
    }

    // ---- sockets (admin and handle) ----

    /// Server-wide (`connection` None) or one socket's silence. Lifting server-wide silence lifts
    /// every socket's too.
    pub(crate) fn set_silent(&self, silent: bool, connection: Option<u64>) -> Result<(), CmsError> {
        self.with(|inner| match connection {
            None => {
                inner.silent_all = silent;
                if !silent {
                    for c in inner.conns.values_mut() {
                        c.silent = false;
                    }
                }
                Ok(())
            }
            Some(id) => {
                let c = inner
                    .open_conn(id)
                    .ok_or_else(|| CmsError::NotFound(format!("no open connection {id}")))?;
                c.silent = silent;
                Ok(())
            }
        })
    }

    /// Closes (or, with `abort`, drops) every open socket or just `connection`; returns how many.
    pub(crate) fn close_sockets(
        &self,
        code: u16,
        reason: &str,
        abort: bool,
        connection: Option<u64>,
    ) -> Result<usize, CmsError> {
        if !abort {
            validate_close(code, reason)?;
        }
        self.with(|inner| {
            if let Some(id) = connection {
                if inner.open_conn(id).is_none() {
                    return Err(CmsError::NotFound(format!("no open connection {id}")));
                }
            }
            let mut n = 0;
            for c in inner.conns.values_mut().filter(|c| c.is_open()) {
                if connection.is_some_and(|id| id != c.id) {
                    continue;
                }
                c.command = Some(if abort {
                    Command::Abort
                } else {
                    Command::Close {
                        code,
                        reason: reason.to_owned(),
                    }
                });
                n += 1;
            }
            Ok(n)
        })
    }

    pub(crate) fn frames(&self, id: u64) -> Option<Vec<CmsFrame>> {
        self.read(|inner| {
            inner
                .conns
                .get(&id)
                .map(|c| c.frames.iter().cloned().collect())
        })
    }

    pub(crate) fn all_frames(&self) -> BTreeMap<u64, Vec<CmsFrame>> {
        self.read(|inner| {
            inner
                .conns
                .values()
                .map(|c| (c.id, c.frames.iter().cloned().collect()))
                .collect()
        })
    }

    pub(crate) fn violations(&self) -> Vec<CmsViolation> {
        self.read(|inner| inner.violations.iter().cloned().collect())
    }

    pub(crate) fn clear_violations(&self) {
        self.with(|inner| inner.violations.clear());
    }

    pub(crate) fn set_config(
        &self,
        patch: &CmsConfigPatch,
    ) -> anyhow::Result<MeetingServerScenario> {
        let mut scenario = self.sim.scenario();
        scenario.meeting_server.apply(patch);
        scenario.meeting_server.validate()?;
        let config = scenario.meeting_server.clone();
        self.sim.replace_scenario(scenario);
        // Wake waiters: the config is part of the snapshot.
        self.with(|_| ());
        Ok(config)
    }
}

/// What a client frame leads to.
enum Handled {
    Ack(Value),
    AckAndViolation(Value, &'static str, String),
    Nothing,
}

fn ack(message_id: Value, success: bool) -> Value {
    json!({
        "type": "messageAck",
        "messageAck": {
            "messageId": message_id,
            "status": if success { "success" } else { "failure" },
        }
    })
}

/// One client text frame: an ack of ours, or a message to ack (subscribeRequest is the only message
/// a client may send).
fn handle_client_frame(
    c: &mut Conn,
    model: &Model,
    parsed: Option<Value>,
    max_subscriptions: usize,
) -> Handled {
    let Some(v) = parsed else {
        return Handled::AckAndViolation(
            ack(Value::Null, false),
            "invalid_message",
            "text frame is not JSON".to_owned(),
        );
    };
    match v.get("type").and_then(Value::as_str) {
        Some("messageAck") => {
            let acked = v
                .get("messageAck")
                .and_then(|a| a.get("messageId"))
                .and_then(Value::as_u64);
            if acked.is_some() && acked == c.awaiting {
                c.awaiting = None;
            } else {
                tracing::debug!(connection = c.id, ?acked, awaiting = ?c.awaiting, "ack for no outstanding message ignored");
            }
            Handled::Nothing
        }
        Some("message") => {
            c.messages_received += 1;
            let message = v.get("message").cloned().unwrap_or(Value::Null);
            let message_id = message.get("messageId").cloned().unwrap_or(Value::Null);
            if message_id.as_u64().is_none() {
                return Handled::AckAndViolation(
                    ack(message_id, false),
                    "invalid_message",
                    "message without a non-negative integer messageId".to_owned(),
                );
            }
            match message.get("type").and_then(Value::as_str) {
                Some("subscribeRequest") => match protocol::parse_subscriptions(&message) {
                    Err(why) => {
                        Handled::AckAndViolation(ack(message_id, false), "invalid_message", why)
                    }
                    Ok(subs) if subs.len() > max_subscriptions => Handled::AckAndViolation(
                        ack(message_id, false),
                        "max_subscriptions",
                        format!(
                            "subscribeRequest with {} subscriptions (at most {max_subscriptions})",
                            subs.len()
                        ),
                    ),
                    Ok(subs) => {
                        c.session.subscribe(subs, model);
                        Handled::Ack(ack(message_id, true))
                    }
                },
                other => Handled::AckAndViolation(
                    ack(message_id, false),
                    "invalid_message",
                    format!("unknown message type {other:?}"),
                ),
            }
        }
        other => Handled::AckAndViolation(
            ack(
                v.get("message")
                    .and_then(|m| m.get("messageId"))
                    .cloned()
                    .unwrap_or(Value::Null),
                false,
            ),
            "invalid_message",
            format!("unknown envelope type {other:?}"),
        ),
    }
}

/// Codes a server may put in a close frame (RFC 6455 §7.4), and a reason that fits.
fn validate_close(code: u16, reason: &str) -> Result<(), CmsError> {
    if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
        return Err(CmsError::BadRequest(format!(
            "close code {code} cannot be sent; use 1000-1003, 1007-1014 or 3000-4999"
        )));
    }
    if reason.len() > 123 {
        return Err(CmsError::BadRequest(format!(
            "close reason is {} bytes; at most 123 fit",
            reason.len()
        )));
    }
    Ok(())
}

/// The Meeting Server listener bound and its certificates written, before the rest of the
/// simulator exists.
#[derive(Debug)]
pub(crate) struct Prepared {
    listener: TcpListener,
    tls: tls::CmsTls,
    pub addr: SocketAddr,
    pub ca_path: PathBuf,
    client_cert_path: PathBuf,
    client_key_path: PathBuf,
}

impl Prepared {
    /// Generates the CA, server and client certificates, writes `cms-ca.pem`, `cms-client.pem` and
    /// `cms-client-key.pem` into `state_dir` (absolute) and binds `addr`.
    pub(crate) async fn new(state_dir: &Path, addr: SocketAddr) -> anyhow::Result<Self> {
        let tls = tls::CmsTls::generate()?;
        let ca_path = state_dir.join("cms-ca.pem");
        let client_cert_path = state_dir.join("cms-client.pem");
        let client_key_path = state_dir.join("cms-client-key.pem");
        write_file(&ca_path, tls.ca_pem.as_bytes(), false).await?;
        write_file(&client_cert_path, tls.client_cert_pem.as_bytes(), false).await?;
        write_file(&client_key_path, tls.client_key_pem.as_bytes(), true).await?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the meeting server listener on {addr}"))?;
        let addr = listener
            .local_addr()
            .context("meeting server listener address")?;
        Ok(Self {
            listener,
            tls,
            addr,
            ca_path,
            client_cert_path,
            client_key_path,
        })
    }

    /// `https://localhost:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Starts serving. Returns the shared state, the admin routes (to merge into the admin router)
    /// and the listener task.
    pub(crate) fn launch(
        self,
        sim: Arc<SimState>,
        shutdown: Shutdown,
    ) -> anyhow::Result<(Arc<MeetingServer>, Router, JoinHandle<()>)> {
        let url = self.url();
        let Self {
            listener,
            tls,
            addr,
            ca_path,
            client_cert_path,
            client_key_path,
        } = self;
        let required = {
            let sim = Arc::clone(&sim);
            Arc::new(move || sim.with_scenario(|s| s.meeting_server.require_client_cert))
        };
        let server_config = tls.server_config(required)?;
        let cms = Arc::new(MeetingServer {
            sim: Arc::clone(&sim),
            inner: Mutex::new(Inner::default()),
            version: watch::Sender::new(0),
            stopped: watch::Sender::new(false),
            bridge: uuid::Uuid::new_v4().to_string(),
            addr,
            url,
            ca_pem: tls.ca_pem.clone(),
            ca_path,
            client_cert_pem: tls.client_cert_pem.clone(),
            client_key_pem: tls.client_key_pem.clone(),
            client_cert_path,
            client_key_path,
        });
        let router = service::router(Arc::clone(&cms), sim, shutdown.clone());
        let admin = admin::router(Arc::clone(&cms));
        let task = {
            let cms = Arc::clone(&cms);
            tokio::spawn(async move {
                crate::http::serve(
                    listener,
                    Some(TlsAcceptor::from(server_config)),
                    router,
                    shutdown,
                    "meeting_server",
                )
                .await;
                cms.stopped.send_replace(true);
            })
        };
        Ok((cms, admin, task))
    }
}

/// Writes via a temporary file and rename; `private` files are created mode 0600.
async fn write_file(path: &Path, data: &[u8], private: bool) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if private {
        opts.mode(0o600);
    }
    let mut file = opts
        .open(&tmp)
        .await
        .with_context(|| format!("creating {}", tmp.display()))?;
    tokio::io::AsyncWriteExt::write_all(&mut file, data)
        .await
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(file);
    tokio::fs::rename(&tmp, path)
        .await
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}
