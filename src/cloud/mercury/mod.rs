//! The event websocket ("mercury", wire profile §3): a supervisor that keeps one socket
//! online, reconnecting with backoff and following the close-code table, and switching
//! sockets make-before-break when the server asks.
//!
//! - [`connection`]: one socket's life (authorization, acks, ping/pong, dispatch);
//! - [`policy`]: the close-code table as a pure function;
//! - [`link`]: what a supervisor needs from the daemon (dial with the current token,
//!   refresh the token, re-register).

pub mod connection;
pub mod link;
pub mod policy;
#[cfg(test)]
mod supervisor_tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::clock::sleep_until_some;
use crate::events::{EventBus, ResyncReason};
use crate::net::backoff::Backoff;
use crate::platform::logging::message_id;
use crate::shutdown::Shutdown;
use connection::{ConnectionEvent, Control, Shared, Timers};
use policy::{CloseAction, CloseInfo};

/// A boxed future, for the [`Link`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Reports from connection tasks: (connection id, event).
pub type Reports = mpsc::Sender<(u64, ConnectionEvent)>;

/// Timers and limits (wire profile §3 defaults).
#[derive(Debug, Clone, Copy)]
pub struct MercuryConfig {
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub connect_timeout: Duration,
    pub online_timeout: Duration,
    pub close_grace: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A socket online this long counts as stable: the next failure starts the backoff over.
    pub stable_after: Duration,
    /// How long a retiring socket may stay open after its replacement came online.
    pub switchover_drain: Duration,
    /// How many recent event ids are remembered to drop duplicates.
    pub dedup_capacity: usize,
}

impl Default for MercuryConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(14),
            connect_timeout: Duration::from_secs(10),
            online_timeout: Duration::from_secs(40),
            close_grace: Duration::from_secs(1),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(32),
            stable_after: Duration::from_secs(60),
            switchover_drain: Duration::from_secs(10),
            dedup_capacity: 4096,
        }
    }
}

impl MercuryConfig {
    pub fn timers(&self) -> Timers {
        Timers {
            ping_interval: self.ping_interval,
            pong_timeout: self.pong_timeout,
            connect_timeout: self.connect_timeout,
            online_timeout: self.online_timeout,
            close_grace: self.close_grace,
        }
    }
}

/// What the supervisor needs from outside: sockets, fresh tokens, a new registration.
pub trait Link: Send + Sync + 'static {
    /// A future that runs connection `id` to `url` to its end, reporting to `reports`.
    fn dial(
        &self,
        id: u64,
        url: String,
        shared: Arc<Shared>,
        reports: Reports,
        control: mpsc::Receiver<Control>,
    ) -> BoxFuture<'static, ()>;
    /// Refreshes the access token (after a 4401).
    fn refresh_token(&self) -> BoxFuture<'_, ()>;
    /// Registers with WDM again (after a permanent close); a new URL arrives on the watch.
    fn reregister(&self) -> BoxFuture<'_, ()>;
}

/// The socket's state as `roomd status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsState {
    Disconnected,
    Connecting,
    Online,
    /// Make-before-break in progress: a second socket is being opened.
    Switching,
    /// Not reconnecting: replaced by another client or closed normally by the server.
    Stopped,
    /// Not reconnecting: refused (4400/4403) until the next registration.
    Failed,
}

impl WsState {
    pub fn as_str(self) -> &'static str {
        match self {
            WsState::Disconnected => "Disconnected",
            WsState::Connecting => "Connecting",
            WsState::Online => "Online",
            WsState::Switching => "Switching",
            WsState::Stopped => "Stopped",
            WsState::Failed => "Failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MercuryStatus {
    pub state: WsState,
    pub detail: Option<String>,
    pub url: Option<String>,
    pub online_since: Option<SystemTime>,
    /// Sockets that came online, and how many of those were after a drop.
    pub connects: u32,
    pub reconnects: u32,
    pub switchovers: u32,
    pub events: u64,
    pub duplicates: u64,
    pub dropped_frames: u64,
    pub sequence_gaps: u64,
    /// "4401 invalid token", "1006 connection ended without a close frame", ...
    pub last_close: Option<String>,
    pub next_retry: Option<Duration>,
}

impl Default for MercuryStatus {
    fn default() -> Self {
        Self {
            state: WsState::Disconnected,
            detail: None,
            url: None,
            online_since: None,
            connects: 0,
            reconnects: 0,
            switchovers: 0,
            events: 0,
            duplicates: 0,
            dropped_frames: 0,
            sequence_gaps: 0,
            last_close: None,
            next_retry: None,
        }
    }
}

struct Socket {
    id: u64,
    control: mpsc::Sender<Control>,
    online_at: Option<Instant>,
}

/// Keeps the event socket up. Run it with [`Supervisor::run`].
pub struct Supervisor<L: Link> {
    link: Arc<L>,
    config: MercuryConfig,
    urls: watch::Receiver<Option<String>>,
    shared: Arc<Shared>,
    status: watch::Sender<MercuryStatus>,
    backoff: Backoff,
}

impl<L: Link> std::fmt::Debug for Supervisor<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<L: Link> Supervisor<L> {
    pub fn new(
        link: L,
        config: MercuryConfig,
        urls: watch::Receiver<Option<String>>,
        bus: EventBus,
    ) -> Self {
        let (status, _) = watch::channel(MercuryStatus::default());
        Self {
            link: Arc::new(link),
            backoff: Backoff::new(config.backoff_initial, config.backoff_max),
            shared: Arc::new(Shared::new(bus, config.dedup_capacity)),
            config,
            urls,
            status,
        }
    }

    /// A reproducible jitter, for schedule tests.
    pub fn with_backoff_seed(mut self, seed: u64) -> Self {
        self.backoff = Backoff::seeded(self.config.backoff_initial, self.config.backoff_max, seed);
        self
    }

    pub fn status(&self) -> watch::Receiver<MercuryStatus> {
        self.status.subscribe()
    }

    pub async fn run(mut self, mut shutdown: Shutdown) {
        let (reports_tx, mut reports) = mpsc::channel::<(u64, ConnectionEvent)>(64);
        let mut next_id = 0u64;
        let mut current: Option<Socket> = None;
        let mut retiring: Option<Socket> = None;
        let mut drain_deadline: Option<Instant> = None;
        // Dial when this passes; None = not dialing (stopped, failed, or no URL yet).
        let mut dial_at: Option<Instant> = Some(Instant::now());
        let mut ever_online = false;
        let mut lost_in_switch = false;
        let mut counters_tick = tokio::time::interval(Duration::from_secs(1));
        counters_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

        loop {
            tokio::select! {
                _ = sleep_until_some(dial_at), if current.is_none() && dial_at.is_some() => {
                    dial_at = None;
                    let url = self.urls.borrow().clone();
                    match url {
                        Some(url) => {
                            next_id += 1;
                            current = Some(self.dial(next_id, url, reports_tx.clone()));
                        }
                        None => self.set_state(WsState::Disconnected, Some("not registered yet".into())),
                    }
                }
                changed = self.urls.changed() => {
                    if changed.is_err() {
                        // The session is gone; nothing will register us again.
                        break;
                    }
                    let url = self.urls.borrow_and_update().clone();
                    self.status.send_modify(|s| s.url = url.clone());
                    if current.is_none() && dial_at.is_none() && url.is_some() {
                        // A (new) registration while idle (no URL yet, stopped, refused):
                        // start over. A scheduled retry keeps its delay (a permanent close
                        // retries slowly even though it re-registered) and uses the new URL.
                        self.backoff.reset();
                        dial_at = Some(Instant::now());
                    }
                }
                Some((id, event)) = reports.recv() => match event {
                    ConnectionEvent::Online if current.as_ref().is_some_and(|c| c.id == id) => {
                        if let Some(socket) = current.as_mut() {
                            socket.online_at = Some(Instant::now());
                        }
                        let switching = retiring.is_some();
                        // Resync before Online shows: whoever sees the socket online can rely
                        // on the catch-up request for the time before it being already made.
                        if !switching {
                            self.shared.bus.request_resync(if ever_online {
                                ResyncReason::Reconnected
                            } else {
                                ResyncReason::Connected
                            });
                        }
                        self.status.send_modify(|s| {
                            s.state = WsState::Online;
                            s.detail = None;
                            s.online_since = Some(SystemTime::now());
                            s.connects += 1;
                            s.next_retry = None;
                            if ever_online && !switching {
                                s.reconnects += 1;
                            }
                            if switching {
                                s.switchovers += 1;
                            }
                        });
                        if switching {
                            tracing::info!(
                                message_id = message_id::WEBSOCKET_ONLINE,
                                "Wx2WebSocket: new socket online; retiring the old one (make-before-break)"
                            );
                            drain_deadline = Some(Instant::now() + self.config.switchover_drain);
                        } else {
                            tracing::info!(message_id = message_id::WEBSOCKET_ONLINE, "Wx2WebSocket: online");
                        }
                        if switching && lost_in_switch {
                            self.shared.bus.request_resync(ResyncReason::Reconnected);
                        }
                        lost_in_switch = false;
                        ever_online = true;
                    }
                    ConnectionEvent::Online => {}
                    ConnectionEvent::ShutdownRequested => {
                        let is_current = current.as_ref().is_some_and(|c| c.id == id && c.online_at.is_some());
                        if is_current && retiring.is_none() {
                            retiring = current.take();
                            self.set_state(WsState::Switching, Some("server shutdown; opening a new socket first".into()));
                            let url = self.urls.borrow().clone();
                            if let Some(url) = url {
                                next_id += 1;
                                current = Some(self.dial(next_id, url, reports_tx.clone()));
                            }
                        }
                    }
                    ConnectionEvent::Closed(info) => {
                        if retiring.as_ref().is_some_and(|r| r.id == id) {
                            retiring = None;
                            drain_deadline = None;
                            tracing::info!(
                                "Wx2WebSocket: old socket closed after the switchover ({})",
                                describe(&info)
                            );
                            if current.as_ref().is_none_or(|c| c.online_at.is_none()) {
                                lost_in_switch = true;
                            }
                        } else if current.as_ref().is_some_and(|c| c.id == id) {
                            let socket = current.take().expect("checked");
                            dial_at = self.after_close(&info, socket.online_at).await;
                        }
                    }
                },
                _ = sleep_until_some(drain_deadline), if drain_deadline.is_some() => {
                    drain_deadline = None;
                    if let Some(old) = &retiring {
                        let _ = old.control.try_send(Control::Close { code: 1000, reason: "done (forced)".into() });
                    }
                }
                _ = counters_tick.tick() => self.sync_counters(),
                _ = shutdown.recv() => break,
            }
        }
        // Stopping: close what is open, bounded.
        for socket in current.iter().chain(retiring.iter()) {
            let _ = socket.control.try_send(Control::Close {
                code: 1000,
                reason: "done".into(),
            });
        }
        let mut open = current.iter().chain(retiring.iter()).count();
        let wait = self.config.close_grace + Duration::from_secs(1);
        let _ = tokio::time::timeout(wait, async {
            while open > 0 {
                match reports.recv().await {
                    Some((_, ConnectionEvent::Closed(_))) => open -= 1,
                    Some(_) => {}
                    None => break,
                }
            }
        })
        .await;
        self.sync_counters();
        self.set_state(WsState::Disconnected, Some("stopped".into()));
    }

    fn dial(&self, id: u64, url: String, reports: Reports) -> Socket {
        let (control_tx, control_rx) = mpsc::channel(4);
        tracing::info!(
            "Wx2WebSocket: connecting to {} (connection {id})",
            crate::net::websocket::redact_query(&url)
        );
        self.status.send_modify(|s| {
            if s.state != WsState::Switching {
                s.state = WsState::Connecting;
            }
            s.url = Some(url.clone());
            s.next_retry = None;
        });
        let connection = self
            .link
            .dial(id, url, Arc::clone(&self.shared), reports, control_rx);
        tokio::spawn(connection);
        Socket {
            id,
            control: control_tx,
            online_at: None,
        }
    }

    /// Applies the close-code table; returns when to dial again (None: not at all).
    async fn after_close(
        &mut self,
        info: &CloseInfo,
        online_at: Option<Instant>,
    ) -> Option<Instant> {
        if online_at.is_some_and(|at| at.elapsed() >= self.config.stable_after) {
            self.backoff.reset();
        }
        let action = policy::on_close(info);
        let described = describe(info);
        self.status.send_modify(|s| {
            s.last_close = Some(described.clone());
            s.online_since = None;
        });
        let retry_in = match &action {
            CloseAction::Retry => Some(self.backoff.next_delay()),
            CloseAction::RefreshTokenThenRetry => {
                tracing::info!("Wx2WebSocket: refreshing the access token before reconnecting");
                self.link.refresh_token().await;
                Some(self.backoff.next_delay())
            }
            CloseAction::ReregisterThenSlowRetry => {
                tracing::warn!("Wx2WebSocket: permanent close; registering with WDM again");
                self.link.reregister().await;
                Some(self.config.backoff_max)
            }
            CloseAction::Abort(why) | CloseAction::Stop(why) => {
                let state = if matches!(action, CloseAction::Abort(_)) {
                    WsState::Failed
                } else {
                    WsState::Stopped
                };
                tracing::error!(
                    message_id = message_id::WEBSOCKET_STOPPED,
                    "Wx2WebSocket: {described}; not reconnecting: {why}"
                );
                self.set_state(state, Some(why.clone()));
                return None;
            }
        };
        let delay = retry_in.expect("every other action retries");
        tracing::warn!(
            message_id = message_id::WEBSOCKET_CLOSED,
            "Wx2WebSocket: {described}; reconnecting in {:.1} s",
            delay.as_secs_f64()
        );
        self.status.send_modify(|s| {
            s.state = WsState::Disconnected;
            s.detail = Some(described.clone());
            s.next_retry = Some(delay);
        });
        Some(Instant::now() + delay)
    }

    fn set_state(&self, state: WsState, detail: Option<String>) {
        self.status.send_modify(|s| {
            s.state = state;
            s.detail = detail;
            if state != WsState::Online && state != WsState::Switching {
                s.online_since = None;
            }
        });
    }

    fn sync_counters(&self) {
        let [events, duplicates, dropped, gaps] = self.shared.counters.snapshot();
        self.status.send_if_modified(|s| {
            let changed = (s.events, s.duplicates, s.dropped_frames, s.sequence_gaps)
                != (events, duplicates, dropped, gaps);
            s.events = events;
            s.duplicates = duplicates;
            s.dropped_frames = dropped;
            s.sequence_gaps = gaps;
            changed
        });
    }
}

fn describe(info: &CloseInfo) -> String {
    let code = info
        .code
        .map(|c| c.to_string())
        .unwrap_or_else(|| "no close code".into());
    let who = if info.by_us {
        "closed by roomd"
    } else {
        "closed"
    };
    if info.reason.is_empty() {
        format!("{who} ({code})")
    } else {
        format!("{who} ({code} {})", info.reason)
    }
}
