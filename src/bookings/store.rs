//! The daemon's bookings: the model behind a lock, loaded from the cache at start (so
//! bookings show before the cloud answers), a persister that writes each new state once
//! (group commit: changes made while a write is in flight go out together in the next one,
//! never one fsync per event), the OBTP timer, and daily housekeeping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::cache::{self, Loaded};
use super::model::BookingsModel;
use super::obtp::{self, ObtpEvent, WallClock};
use super::status::BookingsStatus;
use crate::shutdown::Shutdown;
use crate::status_slice::StatusSlice;
use crate::store::StateDir;

/// The timer re-reads the wall clock at least this often, so a jump is noticed.
const REANCHOR: Duration = Duration::from_secs(30);
const HOUSEKEEPING: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct BookingsStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    model: Mutex<BookingsModel>,
    /// Bumped on every change.
    generation: watch::Sender<u64>,
    /// The generation last written to disk.
    persisted: watch::Sender<u64>,
    obtp: broadcast::Sender<ObtpEvent>,
    start_buffer_secs: u64,
}

impl BookingsStore {
    /// Loads the cache (a corrupt one is moved aside and logged) and returns the store with
    /// what loading found, for status.
    pub fn open(state: &StateDir, start_buffer_secs: u64) -> (Self, String) {
        let (model, outcome) = match cache::load(state) {
            Loaded::Missing => (BookingsModel::default(), "no cache yet".to_string()),
            Loaded::Cache(model) => {
                let n = model.bookings.len();
                tracing::info!("bookings cache loaded: {n} booking(s), before any calendar answer");
                (model, format!("loaded {n} booking(s) from the cache"))
            }
            Loaded::Corrupt { reason, .. } => (
                BookingsModel::default(),
                format!("corrupt cache moved aside ({reason}); rebuilding from the calendar"),
            ),
        };
        let (obtp, _) = broadcast::channel(64);
        let store = Self {
            inner: Arc::new(Inner {
                model: Mutex::new(model),
                generation: watch::channel(0).0,
                persisted: watch::channel(0).0,
                obtp,
                start_buffer_secs,
            }),
        };
        (store, outcome)
    }

    pub fn start_buffer_secs(&self) -> u64 {
        self.inner.start_buffer_secs
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BookingsModel> {
        self.inner
            .model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `change` on the model; when it reports a change the new state is persisted.
    pub fn update<R>(&self, change: impl FnOnce(&mut BookingsModel) -> (R, bool)) -> R {
        let (result, changed) = {
            let mut model = self.lock();
            change(&mut model)
        };
        if changed {
            self.inner.generation.send_modify(|g| *g += 1);
        }
        result
    }

    pub fn read<R>(&self, f: impl FnOnce(&BookingsModel) -> R) -> R {
        f(&self.lock())
    }

    pub fn snapshot(&self) -> BookingsModel {
        self.lock().clone()
    }

    pub fn generation(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    /// The last generation on disk; awaiting a generation here is "persisted".
    pub fn persisted(&self) -> watch::Receiver<u64> {
        self.inner.persisted.subscribe()
    }

    /// Bookings StartTimeBuffer / Start / End, as they happen.
    pub fn obtp_events(&self) -> broadcast::Receiver<ObtpEvent> {
        self.inner.obtp.subscribe()
    }

    /// `bookings.txt` as of now (`roomd bookings`).
    pub fn text(&self) -> String {
        super::view::bookings_txt(&self.lock(), self.inner.start_buffer_secs)
    }
}

/// Writes every new generation (coalescing the ones that arrive during a write).
pub async fn persist(store: BookingsStore, state: StateDir, mut shutdown: Shutdown) {
    let mut generation = store.generation();
    let mut stopping = false;
    loop {
        // Whatever changed before this task first ran counts too.
        let target = *generation.borrow_and_update();
        if target != *store.inner.persisted.borrow() {
            let model = store.snapshot();
            let state = state.clone();
            let buffer = store.inner.start_buffer_secs;
            match tokio::task::spawn_blocking(move || cache::save(&state, &model, buffer)).await {
                Ok(Ok(())) => {
                    store.inner.persisted.send_replace(target);
                }
                Ok(Err(e)) => tracing::error!("cannot write the bookings cache: {e}"),
                Err(e) => tracing::error!("bookings cache writer failed: {e}"),
            }
        }
        if stopping {
            return;
        }
        stopping = tokio::select! {
            changed = generation.changed() => changed.is_err(),
            _ = shutdown.recv() => true,
        };
    }
}

/// Fires OBTP transitions, keeps `Bookings Current Id` and the joinable list in status.
pub async fn run_obtp(
    store: BookingsStore,
    clock: Arc<dyn WallClock>,
    status: StatusSlice<BookingsStatus>,
    mut shutdown: Shutdown,
) {
    let buffer_ms = store.inner.start_buffer_secs * 1000;
    let mut generation = store.generation();
    // Transitions up to here have fired; it never moves back, so a clock that jumps back
    // and forward again does not fire anything twice.
    let mut fired_until = clock.now_ms();
    let mut next_housekeeping = Instant::now() + Duration::from_secs(60);
    loop {
        let now_ms = clock.now_ms();
        let (events, current, joinable, next, counts) = store.read(|m| {
            let events = if now_ms > fired_until {
                obtp::crossed(m, fired_until, now_ms, buffer_ms)
            } else {
                Vec::new() // the clock went back: nothing new happened
            };
            (
                events,
                obtp::current_id(m, now_ms, buffer_ms),
                obtp::joinable(m, now_ms, buffer_ms),
                obtp::next_after(m, now_ms, buffer_ms),
                (m.bookings.len(), m.pending.len()),
            )
        });
        fired_until = fired_until.max(now_ms);
        for event in events {
            tracing::info!(
                message_id = crate::platform::logging::message_id::OBTP_EVENT,
                booking = %event.booking,
                "Bookings {} (booking {}, meeting {})",
                event.kind.as_str(),
                event.booking,
                event.meeting_id
            );
            let _ = store.inner.obtp.send(event);
        }
        status.modify(|s| {
            let changed =
                s.current_id != current || s.joinable != joinable || (s.count, s.pending) != counts;
            s.current_id = current;
            s.joinable = joinable;
            (s.count, s.pending) = counts;
            changed
        });
        // Sleep until the next transition (monotonic), but re-read the wall clock often
        // enough to notice a jump.
        let until_next = next
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms)))
            .unwrap_or(REANCHOR)
            .min(REANCHOR);
        tokio::select! {
            _ = tokio::time::sleep(until_next) => {}
            changed = generation.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(next_housekeeping) => {
                next_housekeeping = Instant::now() + HOUSEKEEPING;
                let now = clock.now_ms();
                store.update(|m| {
                    let purged = m.purge_ended(now);
                    ((), !purged.is_empty())
                });
            }
            _ = shutdown.recv() => return,
        }
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bookings::obtp::ObtpEventKind;
    use crate::proto::calendar::MeetingDto;
    use crate::shutdown::Tasks;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// Wall time = a fixed base + tokio's (pausable) elapsed time + a jump the test sets.
    #[derive(Debug)]
    struct TestClock {
        base_ms: u64,
        started: Instant,
        jump_ms: AtomicI64,
    }

    impl WallClock for TestClock {
        fn now_ms(&self) -> u64 {
            let elapsed = self.started.elapsed().as_millis() as i64;
            (self.base_ms as i64 + elapsed + self.jump_ms.load(Ordering::SeqCst)) as u64
        }
    }

    const BASE: &str = "2026-11-21T09:00:00.000Z";

    fn ms(iso: &str) -> u64 {
        crate::clock::parse_iso8601_ms(iso).unwrap()
    }

    fn booking(id: &str, start: &str) -> MeetingDto {
        MeetingDto {
            id: id.into(),
            start: Some(start.into()),
            duration_minutes: Some(30),
            webex_uri: Some("x@webex.com".into()),
            ..Default::default()
        }
    }

    async fn next_event(events: &mut broadcast::Receiver<ObtpEvent>) -> ObtpEvent {
        tokio::time::timeout(Duration::from_secs(24 * 3600), events.recv())
            .await
            .expect("an event within a day of paused time")
            .expect("sender alive")
    }

    #[tokio::test(start_paused = true)]
    async fn timers_fire_at_buffer_start_and_end_and_survive_clock_jumps() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        let (store, _) = BookingsStore::open(&state, 300);
        store.update(|m| {
            (
                m.upsert(
                    &booking("a", "2026-11-21T10:00:00.000Z"),
                    &Default::default(),
                ),
                true,
            )
        });
        let clock = Arc::new(TestClock {
            base_ms: ms(BASE),
            started: Instant::now(),
            jump_ms: AtomicI64::new(0),
        });
        let (status, mut status_rx) = StatusSlice::standalone(BookingsStatus::default());
        let mut events = store.obtp_events();
        let tasks = Tasks::new();
        {
            let (store, clock) = (store.clone(), clock.clone() as Arc<dyn WallClock>);
            tasks.spawn(tracing::Span::none(), move |sd| {
                run_obtp(store, clock, status, sd)
            });
        }
        let e = next_event(&mut events).await;
        assert_eq!(
            (e.kind, e.at_ms),
            (
                ObtpEventKind::StartTimeBuffer,
                ms("2026-11-21T09:55:00.000Z")
            )
        );
        assert_eq!(
            clock.now_ms(),
            ms("2026-11-21T09:55:00.000Z"),
            "fired on time"
        );
        status_rx
            .wait_for(|s| s.current_id.as_deref() == Some("webex-1"))
            .await
            .unwrap();
        assert_eq!(status_rx.borrow().joinable, ["webex-1"]);
        let e = next_event(&mut events).await;
        assert_eq!(
            (e.kind, clock.now_ms()),
            (ObtpEventKind::Start, ms("2026-11-21T10:00:00.000Z"))
        );

        // The wall clock jumps back an hour: nothing fires, Current Id follows the new time.
        clock.jump_ms.store(-3_600_000, Ordering::SeqCst);
        status_rx
            .wait_for(|s| s.current_id.is_none())
            .await
            .unwrap();
        // ...then forward again past the end: End fires, and Current Id clears.
        clock.jump_ms.store(3_600_000, Ordering::SeqCst);
        let e = next_event(&mut events).await;
        assert_eq!(e.kind, ObtpEventKind::End);
        status_rx
            .wait_for(|s| s.current_id.is_none() && s.joinable.is_empty())
            .await
            .unwrap();

        // A booking added now re-arms the schedule.
        store.update(|m| {
            (
                m.upsert(
                    &booking("b", "2026-11-21T12:00:00.000Z"),
                    &Default::default(),
                ),
                true,
            )
        });
        let e = next_event(&mut events).await;
        assert_eq!(
            (e.kind, e.booking.as_str()),
            (ObtpEventKind::StartTimeBuffer, "webex-2")
        );
        assert_eq!(clock.now_ms(), ms("2026-11-21T11:55:00.000Z"));
        tasks.shutdown(Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test]
    async fn the_persister_writes_each_new_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        let (store, _) = BookingsStore::open(&state, 300);
        let tasks = Tasks::new();
        {
            let (store, state) = (store.clone(), state.clone());
            tasks.spawn(tracing::Span::none(), move |sd| persist(store, state, sd));
        }
        let mut persisted = store.persisted();
        for i in 0..50 {
            store.update(|m| {
                (
                    m.upsert(
                        &booking(&format!("b{i}"), "2026-11-21T12:00:00.000Z"),
                        &Default::default(),
                    ),
                    true,
                )
            });
        }
        let target = *store.generation().borrow();
        persisted.wait_for(|g| *g == target).await.unwrap();
        let (reloaded, outcome) = BookingsStore::open(&state, 300);
        assert_eq!(outcome, "loaded 50 booking(s) from the cache");
        assert_eq!(reloaded.snapshot(), store.snapshot());
        tasks.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}
