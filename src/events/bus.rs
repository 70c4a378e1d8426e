//! Typed event bus. Publishers await room in every subscriber's bounded channel, so a slow
//! consumer slows the socket reader down (and TCP with it) instead of growing a queue;
//! nothing on the bus is unbounded. A separate `watch` carries "resync needed": consumers
//! that keep cloud state (calendar, locus) run their catch-up when it changes.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{mpsc, watch};

/// Event-type namespaces consumers subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// `calendar.meeting.*`
    Calendar,
    /// `locus.*`
    Locus,
    /// `device.control` (data channel: volume, mute)
    DeviceControl,
    /// `featureToggle_update`
    FeatureToggle,
    /// `mercury.*` (socket housekeeping; not normally published)
    Mercury,
    /// Anything else, e.g. `conversation.activity`.
    Other,
}

impl Namespace {
    pub fn of(event_type: &str) -> Self {
        let head = event_type.split('.').next().unwrap_or_default();
        match head {
            "calendar" => Namespace::Calendar,
            "locus" => Namespace::Locus,
            "mercury" => Namespace::Mercury,
            "featureToggle_update" => Namespace::FeatureToggle,
            "device" if event_type == "device.control" => Namespace::DeviceControl,
            _ => Namespace::Other,
        }
    }
}

/// One event as consumers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    pub namespace: Namespace,
    pub tracking_id: Option<String>,
    pub sequence_number: Option<u64>,
    /// Server time in ms since the epoch, when given.
    pub timestamp: Option<u64>,
    /// The event's `data` object.
    pub data: Value,
}

/// Why consumers should run their catch-ups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResyncReason {
    /// Nothing yet (the initial value).
    None,
    /// The event socket came online for the first time.
    Connected,
    /// The socket came back after a drop: events sent meanwhile were lost.
    Reconnected,
    /// `sequenceNumber` jumped: events were lost on a live socket.
    SequenceGap { expected: u64, got: u64 },
}

/// The latest resync request; `generation` grows by one per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resync {
    pub generation: u64,
    pub reason: ResyncReason,
}

/// A subscriber's end: events of one namespace, in publish order.
pub type Subscription = mpsc::Receiver<Arc<Event>>;

#[derive(Debug, Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    subscribers: Mutex<Vec<(Namespace, mpsc::Sender<Arc<Event>>)>>,
    resync: watch::Sender<Resync>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (resync, _) = watch::channel(Resync {
            generation: 0,
            reason: ResyncReason::None,
        });
        Self {
            inner: Arc::new(Inner {
                subscribers: Mutex::new(Vec::new()),
                resync,
            }),
        }
    }

    /// Events of `namespace` from now on; `capacity` bounds what may wait unread.
    pub fn subscribe(&self, namespace: Namespace, capacity: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.lock().push((namespace, tx));
        rx
    }

    /// Delivers to every subscriber of the event's namespace, waiting for room; returns
    /// how many took it. Subscribers that went away are forgotten.
    pub async fn publish(&self, event: Event) -> usize {
        let targets: Vec<mpsc::Sender<Arc<Event>>> = self
            .lock()
            .iter()
            .filter(|(ns, _)| *ns == event.namespace)
            .map(|(_, tx)| tx.clone())
            .collect();
        if targets.is_empty() {
            return 0;
        }
        let event = Arc::new(event);
        let mut delivered = 0;
        let mut gone = false;
        for tx in &targets {
            if tx.send(Arc::clone(&event)).await.is_ok() {
                delivered += 1;
            } else {
                gone = true;
            }
        }
        if gone {
            self.lock().retain(|(_, tx)| !tx.is_closed());
        }
        delivered
    }

    /// Asks every catch-up to run.
    pub fn request_resync(&self, reason: ResyncReason) {
        self.inner.resync.send_modify(|r| {
            r.generation += 1;
            r.reason = reason;
        });
    }

    /// Resync requests; `changed()` fires on each new one.
    pub fn resync(&self) -> watch::Receiver<Resync> {
        self.inner.resync.subscribe()
    }

    pub fn subscribers(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Namespace, mpsc::Sender<Arc<Event>>)>> {
        self.inner
            .subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn event(id: &str, event_type: &str) -> Event {
        Event {
            id: id.into(),
            event_type: event_type.into(),
            namespace: Namespace::of(event_type),
            tracking_id: None,
            sequence_number: None,
            timestamp: None,
            data: Value::Null,
        }
    }

    #[test]
    fn namespaces() {
        assert_eq!(
            Namespace::of("calendar.meeting.create.minimal"),
            Namespace::Calendar
        );
        assert_eq!(Namespace::of("locus.difference"), Namespace::Locus);
        assert_eq!(Namespace::of("device.control"), Namespace::DeviceControl);
        assert_eq!(Namespace::of("device.other"), Namespace::Other);
        assert_eq!(
            Namespace::of("featureToggle_update"),
            Namespace::FeatureToggle
        );
        assert_eq!(Namespace::of("mercury.buffer_state"), Namespace::Mercury);
        assert_eq!(Namespace::of(""), Namespace::Other);
    }

    #[tokio::test]
    async fn routes_by_namespace_in_order() {
        let bus = EventBus::new();
        let mut calendar = bus.subscribe(Namespace::Calendar, 8);
        let mut locus = bus.subscribe(Namespace::Locus, 8);
        assert_eq!(bus.publish(event("1", "calendar.meeting.create")).await, 1);
        assert_eq!(bus.publish(event("2", "locus.difference")).await, 1);
        assert_eq!(bus.publish(event("3", "calendar.meeting.delete")).await, 1);
        assert_eq!(bus.publish(event("4", "conversation.activity")).await, 0);
        assert_eq!(calendar.recv().await.unwrap().id, "1");
        assert_eq!(calendar.recv().await.unwrap().id, "3");
        assert_eq!(locus.recv().await.unwrap().id, "2");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_subscriber_holds_the_publisher_back() {
        let bus = EventBus::new();
        let mut slow = bus.subscribe(Namespace::DeviceControl, 1);
        bus.publish(event("1", "device.control")).await;
        let blocked = tokio::time::timeout(
            Duration::from_secs(5),
            bus.publish(event("2", "device.control")),
        )
        .await;
        assert!(
            blocked.is_err(),
            "publish must wait while the channel is full"
        );
        assert_eq!(slow.recv().await.unwrap().id, "1");
        bus.publish(event("3", "device.control")).await;
        assert_eq!(slow.recv().await.unwrap().id, "3");
    }

    #[tokio::test]
    async fn dropped_subscribers_are_forgotten_and_resync_counts() {
        let bus = EventBus::new();
        let gone = bus.subscribe(Namespace::Calendar, 1);
        drop(gone);
        assert_eq!(bus.publish(event("1", "calendar.meeting.update")).await, 0);
        assert_eq!(bus.subscribers(), 0);
        let mut resync = bus.resync();
        bus.request_resync(ResyncReason::SequenceGap {
            expected: 3,
            got: 5,
        });
        resync.changed().await.unwrap();
        assert_eq!(resync.borrow().generation, 1);
    }
}
