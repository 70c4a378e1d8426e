//! Every mercury socket and registration, and the admin's settings for them.
//!
//! All routing decisions happen here under one lock, so the order of frames on a socket is the order
//! the hub queued them in: the buffer_state event before any other event, and a replacement close
//! after every event queued before the switch.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::frames;
use super::{
    AckRecord, ClosedBy, ConnectionInfo, ConnectionState, DeliveredEvent, PongMode, PushOutcome,
    ReceivedFrame, SentFrame,
};
use crate::clock::now_ms;
use crate::recorder::{BoundedLog, LOG_CAPACITY};
use crate::state::lock;

/// Frames queued to one socket before further pushes to it count as undelivered.
pub(crate) const QUEUE_DEPTH: usize = 1024;

/// Closed connections kept for the listing; the oldest are forgotten first.
const CLOSED_KEPT: usize = 1000;

/// Delivered events remembered per registration.
const DELIVERED_KEPT: usize = 10_000;

/// What the hub asks one socket task to do, in order.
#[derive(Debug)]
pub(crate) enum Command {
    /// Write a text frame.
    Text(String),
    /// Close with `code` and `reason` once the frames queued before are written. `admin`: an explicit
    /// admin close, which even a stalled socket sends; any other close (a replacement) only drops a
    /// stalled socket's TCP, as a half-open connection could not carry it.
    Close {
        code: u16,
        reason: String,
        admin: bool,
    },
    /// Drop the TCP connection without a close frame (the client sees 1006).
    Abort,
}

/// How a socket ended, reported by its task.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub code: Option<u16>,
    pub reason: Option<String>,
    pub by: ClosedBy,
}

/// What the socket task owns of its connection.
#[derive(Debug)]
pub(crate) struct SocketIo {
    pub id: u64,
    pub commands: mpsc::UnboundedReceiver<Command>,
    /// Text frames queued and not yet taken by the task.
    pub queued: Arc<AtomicUsize>,
    pub stall: watch::Receiver<bool>,
    pub auth_timeout: Duration,
    /// Marks the connection closed when dropped (also when the upgrade never happened).
    pub finish: Finish,
}

/// Marks its connection closed in the hub when dropped, with the outcome the task set.
#[derive(Debug)]
pub(crate) struct Finish {
    hub: Arc<Hub>,
    id: u64,
    pub outcome: Outcome,
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.hub.finish(self.id, self.outcome.clone());
    }
}

#[derive(Debug)]
struct Conn {
    info: ConnectionInfo,
    tx: mpsc::UnboundedSender<Command>,
    queued: Arc<AtomicUsize>,
    stall: watch::Sender<bool>,
}

impl Conn {
    fn is_open(&self) -> bool {
        !matches!(self.info.state, ConnectionState::Closed)
    }

    /// Queues a text frame unless the queue is full or the task is gone.
    fn queue_text(&self, text: String) -> bool {
        if self.queued.load(Ordering::Acquire) >= QUEUE_DEPTH {
            tracing::warn!(
                connection = self.info.id,
                "mercury queue full; frame not delivered"
            );
            return false;
        }
        // Counted before sending, so the task's decrement can never run first.
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(Command::Text(text)).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn queue_close(&mut self, code: u16, reason: &str, admin: bool) -> bool {
        let sent = self
            .tx
            .send(Command::Close {
                code,
                reason: reason.to_owned(),
                admin,
            })
            .is_ok();
        if sent {
            self.info.state = ConnectionState::Closing;
        }
        sent
    }
}

#[derive(Debug, Default)]
struct Registration {
    /// The socket events go to: online, or shutting down until its successor is online.
    receiving: Option<u64>,
    /// (serial, event): the serial orders events across registrations.
    delivered: VecDeque<(u64, DeliveredEvent)>,
}

#[derive(Debug)]
struct Inner {
    next_id: u64,
    serial: u64,
    conns: BTreeMap<u64, Conn>,
    regs: HashMap<String, Registration>,
    pong_mode: PongMode,
    auth_timeout: Duration,
    /// Extra sequence numbers the next push skips on every socket it reaches.
    pending_skip: u64,
}

impl Inner {
    /// Wraps `data` in an event frame for socket `cid` and queues it; `extra` is added to the
    /// sequence number on top of +1.
    fn deliver(&mut self, cid: u64, data: &Value, extra: u64) -> Option<DeliveredEvent> {
        let conn = self.conns.get_mut(&cid)?;
        if !matches!(
            conn.info.state,
            ConnectionState::Online | ConnectionState::ShuttingDown
        ) {
            return None;
        }
        let seq = conn.info.last_sequence + 1 + extra;
        let id = frames::new_id();
        let tracking_id = frames::new_tracking_id();
        let at_ms = now_ms();
        if !conn.queue_text(frames::event(&id, data, at_ms, &tracking_id, seq)) {
            return None;
        }
        conn.info.last_sequence = seq;
        let event = DeliveredEvent {
            id,
            registration: conn.info.registration.clone(),
            connection: cid,
            sequence_number: seq,
            event_type: data
                .get("eventType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            tracking_id,
            at_ms,
            acked: false,
        };
        self.serial += 1;
        let log = &mut self
            .regs
            .entry(event.registration.clone())
            .or_default()
            .delivered;
        if log.len() >= DELIVERED_KEPT {
            log.pop_front();
        }
        log.push_back((self.serial, event.clone()));
        Some(event)
    }

    /// The socket receiving events for `registration`.
    fn receiving(&self, registration: &str) -> Option<u64> {
        self.regs.get(registration).and_then(|r| r.receiving)
    }

    /// Open connections matching `selected` (all when None).
    fn selected(&mut self, selected: Option<u64>) -> impl Iterator<Item = &mut Conn> {
        self.conns
            .iter_mut()
            .filter(move |(id, c)| c.is_open() && selected.is_none_or(|s| s == **id))
            .map(|(_, c)| c)
    }

    /// Sockets about to close get no further events: pushes from now on count as undelivered.
    fn stop_receiving(&mut self, ids: &[u64]) {
        for reg in self.regs.values_mut() {
            if reg.receiving.is_some_and(|r| ids.contains(&r)) {
                reg.receiving = None;
            }
        }
    }

    fn prune_closed(&mut self) {
        let closed: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.is_open())
            .map(|(id, _)| *id)
            .collect();
        for id in closed.iter().take(closed.len().saturating_sub(CLOSED_KEPT)) {
            self.conns.remove(id);
        }
    }
}

/// The mercury sockets, registrations, logs and settings.
#[derive(Debug)]
pub(crate) struct Hub {
    inner: Mutex<Inner>,
    received: BoundedLog<ReceivedFrame>,
    acks: BoundedLog<AckRecord>,
    /// Bumped on every change, so waiters (`SimHandle::wait_*`) wake instead of polling.
    changes: watch::Sender<u64>,
}

impl Hub {
    pub(crate) fn new(auth_timeout: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner {
                next_id: 1,
                serial: 0,
                conns: BTreeMap::new(),
                regs: HashMap::new(),
                pong_mode: PongMode::default(),
                auth_timeout,
                pending_skip: 0,
            }),
            received: BoundedLog::new(LOG_CAPACITY),
            acks: BoundedLog::new(LOG_CAPACITY),
            changes: watch::channel(0).0,
        }
    }

    fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A new socket for `registration`, authorizing.
    pub(crate) fn open(
        self: &Arc<Self>,
        registration: &str,
        query: String,
        listener: &str,
    ) -> SocketIo {
        let (tx, commands) = mpsc::unbounded_channel();
        let (stall_tx, stall) = watch::channel(false);
        let queued = Arc::new(AtomicUsize::new(0));
        let mut inner = lock(&self.inner);
        let id = inner.next_id;
        inner.next_id += 1;
        let auth_timeout = inner.auth_timeout;
        inner.conns.insert(
            id,
            Conn {
                info: ConnectionInfo {
                    id,
                    registration: registration.to_owned(),
                    listener: listener.to_owned(),
                    state: ConnectionState::Authorizing,
                    query,
                    opened_at_ms: now_ms(),
                    online_at_ms: None,
                    closed_at_ms: None,
                    close_code: None,
                    close_reason: None,
                    closed_by: None,
                    pings: 0,
                    pongs_sent: 0,
                    stalled: false,
                    last_sequence: 0,
                },
                tx,
                queued: Arc::clone(&queued),
                stall: stall_tx,
            },
        );
        drop(inner);
        self.changed();
        tracing::info!(connection = id, %registration, "mercury socket opened");
        SocketIo {
            id,
            commands,
            queued,
            stall,
            auth_timeout,
            finish: Finish {
                hub: Arc::clone(self),
                id,
                outcome: Outcome {
                    code: None,
                    reason: None,
                    by: ClosedBy::Dropped,
                },
            },
        }
    }

    /// The socket authorized: it becomes the one its registration's events go to, gets the
    /// buffer_state event (sequenceNumber 1) first, and its predecessor is closed: 4001 "replaced
    /// after switchover" if that one got `shutdown`, else 4000 "replaced". False when the socket is
    /// already closing (an admin close raced the authorization).
    pub(crate) fn go_online(&self, id: u64) -> bool {
        let mut inner = lock(&self.inner);
        let Some(conn) = inner.conns.get_mut(&id) else {
            return false;
        };
        if conn.info.state != ConnectionState::Authorizing {
            return false;
        }
        conn.info.state = ConnectionState::Online;
        conn.info.online_at_ms = Some(now_ms());
        let registration = conn.info.registration.clone();
        let old = inner
            .regs
            .entry(registration.clone())
            .or_default()
            .receiving
            .replace(id);
        inner.deliver(id, &frames::buffer_state_data(), 0);
        if let Some(old) = old.and_then(|o| inner.conns.get_mut(&o)) {
            let (code, reason) = if old.info.state == ConnectionState::ShuttingDown {
                (4001, "replaced after switchover")
            } else {
                (4000, "replaced")
            };
            tracing::info!(old = old.info.id, new = id, code, %registration, "mercury socket replaced");
            old.queue_close(code, reason, false);
        }
        drop(inner);
        self.changed();
        tracing::info!(connection = id, %registration, "mercury socket online");
        true
    }

    /// Registrations with a socket receiving events.
    pub(crate) fn receiving_registrations(&self) -> Vec<String> {
        lock(&self.inner)
            .regs
            .iter()
            .filter(|(_, r)| r.receiving.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Each `data`, in order, to the receiving socket of each target registration. An armed skip
    /// applies to the first event on every socket reached, and is used up if it reached any.
    pub(crate) fn push(&self, targets: &[String], datas: &[Value]) -> PushOutcome {
        let mut out = PushOutcome::default();
        let mut inner = lock(&self.inner);
        let skip = inner.pending_skip;
        let mut skipped = false;
        for (i, data) in datas.iter().enumerate() {
            for reg in targets {
                let extra = if i == 0 { skip } else { 0 };
                let delivered = inner
                    .receiving(reg)
                    .and_then(|cid| inner.deliver(cid, data, extra));
                match delivered {
                    Some(ev) => {
                        skipped |= extra > 0;
                        out.delivered.push(ev);
                    }
                    None if !out.undelivered.contains(reg) => out.undelivered.push(reg.clone()),
                    None => {}
                }
            }
        }
        if skipped {
            inner.pending_skip = 0;
        }
        drop(inner);
        if !out.delivered.is_empty() {
            self.changed();
        }
        for reg in &out.undelivered {
            tracing::info!(registration = %reg, "mercury event dropped: no online socket");
        }
        out
    }

    /// `text` byte for byte to the receiving socket of each target; the connection ids it reached.
    pub(crate) fn push_raw(&self, targets: &[String], text: &str) -> Vec<u64> {
        let inner = lock(&self.inner);
        targets
            .iter()
            .filter_map(|reg| inner.receiving(reg))
            .filter(|cid| {
                inner
                    .conns
                    .get(cid)
                    .is_some_and(|c| c.queue_text(text.to_owned()))
            })
            .collect()
    }

    /// Sends `{"id","type":"shutdown"}` to the receiving socket of `registration` (or of all) and
    /// marks it shutting down: it keeps its events until a new socket of its registration is online.
    pub(crate) fn shutdown(&self, registration: Option<&str>) -> Vec<SentFrame> {
        let mut sent = Vec::new();
        let mut inner = lock(&self.inner);
        let receiving: Vec<(String, u64)> = inner
            .regs
            .iter()
            .filter(|(k, _)| registration.is_none_or(|r| r == k.as_str()))
            .filter_map(|(k, r)| r.receiving.map(|c| (k.clone(), c)))
            .collect();
        for (reg, cid) in receiving {
            let Some(conn) = inner.conns.get_mut(&cid) else {
                continue;
            };
            let id = frames::new_id();
            if conn.queue_text(frames::shutdown(&id)) {
                conn.info.state = ConnectionState::ShuttingDown;
                tracing::info!(connection = cid, registration = %reg, "mercury shutdown sent");
                sent.push(SentFrame {
                    id,
                    registration: reg,
                    connection: cid,
                });
            }
        }
        drop(inner);
        self.changed();
        sent
    }

    /// Closes the open socket `selected` (or all) with `code` and `reason`; how many.
    pub(crate) fn close(
        &self,
        selected: Option<u64>,
        code: u16,
        reason: &str,
    ) -> anyhow::Result<usize> {
        validate_close(code, reason)?;
        let mut inner = lock(&self.inner);
        let closing: Vec<u64> = inner
            .selected(selected)
            .filter_map(|c| c.queue_close(code, reason, true).then_some(c.info.id))
            .collect();
        inner.stop_receiving(&closing);
        drop(inner);
        self.changed();
        Ok(closing.len())
    }

    /// Drops the TCP connection of the open socket `selected` (or all) without a close frame.
    pub(crate) fn abort(&self, selected: Option<u64>) -> usize {
        let mut inner = lock(&self.inner);
        let aborting: Vec<u64> = inner
            .selected(selected)
            .filter_map(|c| {
                c.tx.send(Command::Abort).is_ok().then(|| {
                    c.info.state = ConnectionState::Closing;
                    c.info.id
                })
            })
            .collect();
        inner.stop_receiving(&aborting);
        drop(inner);
        self.changed();
        aborting.len()
    }

    /// Stops (or resumes) reading and writing the open socket `selected` (or all); how many.
    pub(crate) fn stall(&self, selected: Option<u64>, stalled: bool) -> usize {
        let mut n = 0;
        for conn in lock(&self.inner).selected(selected) {
            conn.info.stalled = stalled;
            conn.stall.send_replace(stalled);
            n += 1;
        }
        self.changed();
        n
    }

    pub(crate) fn set_pong_mode(&self, mode: PongMode) {
        lock(&self.inner).pong_mode = mode;
    }

    pub(crate) fn pong_mode(&self) -> PongMode {
        lock(&self.inner).pong_mode
    }

    /// The next push's first event jumps `count` extra sequence numbers on every socket it reaches.
    pub(crate) fn skip_sequence(&self, count: u64) {
        lock(&self.inner).pending_skip = count;
    }

    /// For sockets opened from now on.
    pub(crate) fn set_auth_timeout(&self, timeout: Duration) {
        lock(&self.inner).auth_timeout = timeout;
    }

    pub(crate) fn auth_timeout(&self) -> Duration {
        lock(&self.inner).auth_timeout
    }

    pub(crate) fn record_frame(&self, id: u64, registration: &str, text: String, binary: bool) {
        self.received.push(ReceivedFrame {
            connection: id,
            registration: registration.to_owned(),
            text,
            binary,
            at_ms: now_ms(),
        });
        self.changed();
    }

    /// Records an ack and marks the delivered event with that id acked.
    pub(crate) fn record_ack(&self, id: u64, message_id: &str) {
        let mut inner = lock(&self.inner);
        let registration = inner
            .conns
            .get(&id)
            .map(|c| c.info.registration.clone())
            .unwrap_or_default();
        if let Some(reg) = inner.regs.get_mut(&registration) {
            if let Some((_, ev)) = reg
                .delivered
                .iter_mut()
                .rev()
                .find(|(_, e)| e.id == message_id)
            {
                ev.acked = true;
            }
        }
        drop(inner);
        self.acks.push(AckRecord {
            message_id: message_id.to_owned(),
            connection: id,
            registration,
            at_ms: now_ms(),
        });
        self.changed();
    }

    /// Counts a ping and says how to answer it.
    pub(crate) fn record_ping(&self, id: u64) -> PongMode {
        let mut inner = lock(&self.inner);
        if let Some(c) = inner.conns.get_mut(&id) {
            c.info.pings += 1;
        }
        let mode = inner.pong_mode;
        drop(inner);
        self.changed();
        mode
    }

    pub(crate) fn pong_sent(&self, id: u64) {
        if let Some(c) = lock(&self.inner).conns.get_mut(&id) {
            c.info.pongs_sent += 1;
        }
        self.changed();
    }

    /// The socket task ended.
    fn finish(&self, id: u64, outcome: Outcome) {
        let mut inner = lock(&self.inner);
        let Some(conn) = inner.conns.get_mut(&id) else {
            return;
        };
        conn.info.state = ConnectionState::Closed;
        conn.info.closed_at_ms = Some(now_ms());
        conn.info.close_code = outcome.code;
        conn.info.close_reason = outcome.reason.clone();
        conn.info.closed_by = Some(outcome.by);
        let registration = conn.info.registration.clone();
        if let Some(reg) = inner.regs.get_mut(&registration) {
            if reg.receiving == Some(id) {
                reg.receiving = None;
            }
        }
        inner.prune_closed();
        drop(inner);
        self.changed();
        tracing::info!(
            connection = id,
            %registration,
            code = ?outcome.code,
            reason = ?outcome.reason,
            by = ?outcome.by,
            "mercury socket closed"
        );
    }

    pub(crate) fn connections(&self) -> Vec<ConnectionInfo> {
        lock(&self.inner)
            .conns
            .values()
            .map(|c| c.info.clone())
            .collect()
    }

    /// Sockets not closed yet.
    pub(crate) fn open_count(&self) -> usize {
        lock(&self.inner)
            .conns
            .values()
            .filter(|c| c.is_open())
            .count()
    }

    /// Delivered events of `registration` (or all), oldest first.
    pub(crate) fn delivered(&self, registration: Option<&str>) -> Vec<DeliveredEvent> {
        let inner = lock(&self.inner);
        let mut all: Vec<&(u64, DeliveredEvent)> = inner
            .regs
            .iter()
            .filter(|(k, _)| registration.is_none_or(|r| r == k.as_str()))
            .flat_map(|(_, r)| r.delivered.iter())
            .collect();
        all.sort_by_key(|(serial, _)| *serial);
        all.into_iter().map(|(_, e)| e.clone()).collect()
    }

    pub(crate) fn acks(&self) -> Vec<AckRecord> {
        self.acks.snapshot()
    }

    pub(crate) fn received(&self) -> Vec<ReceivedFrame> {
        self.received.snapshot()
    }

    pub(crate) fn clear_received(&self) {
        self.received.clear();
    }

    /// Resolves with `check`'s first `Some`, re-checking after every change; fails after `timeout`.
    pub(crate) async fn wait<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> anyhow::Result<T> {
        let mut changes = self.changes.subscribe();
        let until = async {
            loop {
                // Marked seen before checking, so a change during the check wakes the next wait.
                changes.borrow_and_update();
                if let Some(v) = check(self) {
                    return v;
                }
                if changes.changed().await.is_err() {
                    // The sender lives as long as `self`; never reached.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, until)
            .await
            .map_err(|_| anyhow!("timed out after {timeout:?} waiting for {what}"))
    }
}

/// Codes a server may put in a close frame (RFC 6455 §7.4): 1005, 1006 and 1015 are never sent,
/// 1004 is reserved, and the reason must fit the 125-byte control frame.
pub(crate) fn validate_close(code: u16, reason: &str) -> anyhow::Result<()> {
    let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !sendable {
        bail!("close code {code} cannot be sent; use 1000-1003, 1007-1014 or 3000-4999");
    }
    if reason.len() > 123 {
        bail!("close reason is {} bytes; at most 123 fit", reason.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(io: &mut SocketIo) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(cmd) = io.commands.try_recv() {
            match cmd {
                Command::Text(t) => out.push(t),
                Command::Close { code, reason, .. } => out.push(format!("close {code} {reason}")),
                Command::Abort => out.push("abort".into()),
            }
        }
        out
    }

    fn seq(text: &str) -> u64 {
        serde_json::from_str::<Value>(text).expect("json")["sequenceNumber"]
            .as_u64()
            .unwrap_or(0)
    }

    #[test]
    fn close_codes() {
        assert!(validate_close(4000, "replaced").is_ok());
        assert!(validate_close(1000, "").is_ok());
        assert!(validate_close(1006, "").is_err());
        assert!(validate_close(1005, "").is_err());
        assert!(validate_close(999, "").is_err());
        assert!(validate_close(4000, &"x".repeat(124)).is_err());
    }

    #[test]
    fn online_sequence_skip_and_switchover() {
        let hub = Arc::new(Hub::new(Duration::from_secs(30)));
        let regs = vec!["r".to_owned()];
        let ev = json!({"eventType": "t"});
        assert_eq!(hub.push(&regs, std::slice::from_ref(&ev)).undelivered, regs);

        let mut a = hub.open("r", String::new(), "proxy");
        assert!(
            hub.push(&regs, std::slice::from_ref(&ev))
                .delivered
                .is_empty(),
            "authorizing gets nothing"
        );
        assert!(hub.go_online(a.id));
        let out = hub.push(&regs, &[ev.clone(), ev.clone()]);
        assert_eq!(out.delivered.len(), 2);
        hub.skip_sequence(3);
        hub.push(&regs, &[ev.clone(), ev.clone()]);
        let got: Vec<u64> = texts(&mut a).iter().map(|t| seq(t)).collect();
        assert_eq!(got, vec![1, 2, 3, 7, 8]);
        assert_eq!(a.queued.load(Ordering::Acquire), 5);

        // Shutdown: events stay on `a` until `b` is online, then `a` gets 4001 after them.
        let sent = hub.shutdown(None);
        assert_eq!(sent.len(), 1);
        let mut b = hub.open("r", "q=1".into(), "proxy");
        hub.push(&regs, std::slice::from_ref(&ev));
        assert!(hub.go_online(b.id));
        hub.push(&regs, std::slice::from_ref(&ev));
        let a_frames = texts(&mut a);
        assert!(a_frames[0].contains("shutdown"), "{a_frames:?}");
        assert_eq!(seq(&a_frames[1]), 9);
        assert_eq!(a_frames[2], "close 4001 replaced after switchover");
        let b_frames = texts(&mut b);
        assert!(b_frames[0].contains(frames::BUFFER_STATE));
        assert_eq!(seq(&b_frames[1]), 2);

        // A third socket without shutdown replaces `b` with 4000.
        let c = hub.open("r", String::new(), "proxy");
        assert!(hub.go_online(c.id));
        assert_eq!(texts(&mut b), vec!["close 4000 replaced"]);
        let states: Vec<ConnectionState> = hub.connections().iter().map(|c| c.state).collect();
        assert_eq!(
            states,
            vec![
                ConnectionState::Closing,
                ConnectionState::Closing,
                ConnectionState::Online
            ]
        );
        drop(a);
        assert_eq!(hub.open_count(), 2);
        assert_eq!(hub.delivered(Some("r")).len(), 9);
    }

    #[test]
    fn a_closing_socket_gets_no_more_events() {
        let hub = Arc::new(Hub::new(Duration::from_secs(30)));
        let regs = vec!["r".to_owned()];
        let ev = json!({"eventType": "t"});
        let mut a = hub.open("r", String::new(), "proxy");
        assert!(hub.go_online(a.id));
        assert_eq!(hub.close(None, 4000, "x").expect("valid"), 1);
        let out = hub.push(&regs, std::slice::from_ref(&ev));
        assert!(out.delivered.is_empty());
        assert_eq!(out.undelivered, regs);
        assert_eq!(texts(&mut a).len(), 2, "buffer_state and the close only");
        assert!(hub.push_raw(&regs, "{}").is_empty());
    }

    #[test]
    fn acks_mark_delivered_events() {
        let hub = Arc::new(Hub::new(Duration::from_secs(30)));
        let a = hub.open("r", String::new(), "proxy");
        assert!(hub.go_online(a.id));
        let first = hub.delivered(None)[0].clone();
        assert!(!first.acked);
        hub.record_ack(a.id, &first.id);
        hub.record_ack(a.id, "unknown");
        assert!(hub.delivered(None)[0].acked);
        assert_eq!(hub.acks().len(), 2);
        assert_eq!(hub.acks()[0].registration, "r");
    }
}
