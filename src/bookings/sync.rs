//! Keeps the bookings in step with the cloud calendar while the device is registered:
//! calendar events from the event socket, minimal events fetched (retried until they
//! succeed; never dropped), catch-ups at start, on every resync request and every 15 minutes,
//! and KMS keys for encrypted fields (retried; the field shows "(encrypted)" meanwhile).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::model::{Change, dto_key_urls};
use super::status::{BookingsStatus, CatchUpState};
use super::store::{BookingsStore, now_ms};
use crate::clock::sleep_until_some;
use crate::cloud::calendar::{CalendarClient, CalendarError};
use crate::events::{Event, EventBus, Subscription};
use crate::net::backoff::Backoff;
use crate::platform::logging::message_id;
use crate::proto::calendar::{self, CalendarEvent};
use crate::shutdown::Shutdown;
use crate::status_slice::StatusSlice;

const DAY_MS: u64 = 24 * 3600 * 1000;

/// Timers of the sync (config `[calendar]`, backoff from `[cloud]`).
#[derive(Debug, Clone, Copy)]
pub struct SyncTimers {
    pub catch_up_every: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

pub struct Sync {
    pub store: BookingsStore,
    /// Set once the catalog is known.
    pub client: watch::Receiver<Option<CalendarClient>>,
    pub bus: EventBus,
    /// Subscribed before the event socket starts, so no event is missed.
    pub events: Subscription,
    pub status: StatusSlice<BookingsStatus>,
    pub timers: SyncTimers,
}

impl std::fmt::Debug for Sync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sync")
            .field("timers", &self.timers)
            .finish_non_exhaustive()
    }
}

struct State {
    keys: HashMap<String, [u8; 32]>,
    pending_retry: Option<Instant>,
    pending_backoff: Backoff,
    key_retry: Option<Instant>,
    key_backoff: Backoff,
    catch_up_at: Option<Instant>,
    catch_up_backoff: Backoff,
}

impl Sync {
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let backoff = || Backoff::new(self.timers.retry_initial, self.timers.retry_max);
        let mut state = State {
            keys: HashMap::new(),
            pending_retry: None,
            pending_backoff: backoff(),
            key_retry: None,
            key_backoff: backoff(),
            catch_up_at: None,
            catch_up_backoff: backoff(),
        };
        let mut resync = self.bus.resync();
        resync.borrow_and_update();
        // Pending minimal events from before a restart are retried once the client exists.
        if self.store.read(|m| !m.pending.is_empty()) {
            state.pending_retry = Some(Instant::now());
        }
        loop {
            let client = self.client.borrow().clone();
            tokio::select! {
                changed = self.client.changed() => {
                    if changed.is_err() { return; }
                    if self.client.borrow().is_some() {
                        // Catalog known: catch up now (the "at start" catch-up).
                        state.catch_up_at = Some(Instant::now());
                    }
                }
                event = self.events.recv() => {
                    let Some(event) = event else { return };
                    self.on_event(&event, client.as_ref(), &mut state).await;
                }
                changed = resync.changed() => {
                    if changed.is_err() { return; }
                    let reason = resync.borrow_and_update().reason.clone();
                    tracing::info!("calendar catch-up requested ({reason:?})");
                    state.catch_up_at = Some(Instant::now());
                }
                _ = sleep_until_some(state.catch_up_at), if state.catch_up_at.is_some() && client.is_some() => {
                    state.catch_up_at = None;
                    self.catch_up(client.as_ref().expect("guarded"), &mut state).await;
                }
                _ = sleep_until_some(state.pending_retry), if state.pending_retry.is_some() && client.is_some() => {
                    state.pending_retry = None;
                    self.fetch_pending(client.as_ref().expect("guarded"), &mut state).await;
                }
                _ = sleep_until_some(state.key_retry), if state.key_retry.is_some() && client.is_some() => {
                    state.key_retry = None;
                    self.fetch_keys(client.as_ref().expect("guarded"), &mut state).await;
                }
                _ = shutdown.recv() => return,
            }
        }
    }

    async fn on_event(
        &self,
        event: &Arc<Event>,
        client: Option<&CalendarClient>,
        state: &mut State,
    ) {
        let parsed = match calendar::parse_event(&event.event_type, &event.data) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::error!(
                    trackingid = event.tracking_id.as_deref().unwrap_or("none"),
                    "{} ignored: {e}",
                    event.event_type
                );
                return;
            }
        };
        match parsed {
            CalendarEvent::Upsert(dto) => {
                tracing::info!("CalendarClientImpl::on_meeting_updated_event");
                if let Some(client) = client {
                    self.ensure_keys(client, dto_key_urls(&dto), state).await;
                }
                let keys = &state.keys;
                self.apply(|m| m.upsert(&dto, keys));
            }
            CalendarEvent::Minimal { id } => {
                self.store.update(|m| {
                    let new = !m.pending.contains_key(&id);
                    m.mark_pending(&id);
                    ((), new)
                });
                match client {
                    Some(client) => self.fetch_pending(client, state).await,
                    None => state.pending_retry = Some(Instant::now()),
                }
            }
            CalendarEvent::Delete { id } => {
                tracing::info!("MeetingsControl::on_calendar_event_deleted");
                self.apply(|m| m.remove(&id));
            }
        }
    }

    fn apply(&self, change: impl FnOnce(&mut super::model::BookingsModel) -> Change) -> Change {
        let result = self.store.update(|m| {
            let c = change(m);
            let changed = c != Change::Unchanged;
            (c, changed)
        });
        if result != Change::Unchanged {
            let count = self.store.read(|m| m.bookings.len());
            tracing::info!(
                message_id = message_id::BOOKINGS_UPDATED,
                "Wx2MeetingsHandlerImpl::meetings_updated: num meetings={count}"
            );
        }
        result
    }

    /// Fetches every pending minimal event; failures stay pending with a backoff.
    async fn fetch_pending(&self, client: &CalendarClient, state: &mut State) {
        let ids: Vec<String> = self.store.read(|m| m.pending.keys().cloned().collect());
        let mut failed = false;
        for id in ids {
            match client.event(&id).await {
                Ok(Some(dto)) => {
                    self.ensure_keys(client, dto_key_urls(&dto), state).await;
                    let keys = &state.keys;
                    self.apply(|m| m.upsert(&dto, keys));
                }
                Ok(None) => {
                    tracing::info!("calendar event {id} no longer exists");
                    self.apply(|m| m.remove(&id));
                    self.store.update(|m| ((), m.pending.remove(&id).is_some()));
                }
                Err(e) => {
                    failed = true;
                    self.store.update(|m| {
                        if let Some(attempts) = m.pending.get_mut(&id) {
                            *attempts += 1;
                        }
                        ((), true)
                    });
                    tracing::warn!("fetching calendar event {id} failed: {e}; it stays pending");
                }
            }
        }
        if failed {
            let delay = state.pending_backoff.next_delay();
            tracing::warn!(
                "retrying pending calendar events in {:.1} s",
                delay.as_secs_f64()
            );
            state.pending_retry = Some(Instant::now() + delay);
        } else {
            state.pending_backoff.reset();
        }
        self.fetch_keys(client, state).await;
    }

    /// Fetches the keys in `wanted` not cached yet (keys never change, so they are cached
    /// for good). A failure schedules a retry and shows in status.
    async fn ensure_keys(
        &self,
        client: &CalendarClient,
        wanted: BTreeSet<String>,
        state: &mut State,
    ) {
        let mut failed = false;
        let missing: Vec<String> = wanted
            .into_iter()
            .filter(|u| !state.keys.contains_key(u))
            .collect();
        for uri in missing {
            match client.key(&uri).await {
                Ok(key) => {
                    state.keys.insert(uri, key);
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!("{e}; encrypted fields stay \"(encrypted)\" and are retried");
                }
            }
        }
        if failed {
            if state.key_retry.is_none() {
                state.key_retry = Some(Instant::now() + state.key_backoff.next_delay());
            }
            self.status
                .modify(|s| !std::mem::replace(&mut s.keys_missing, true));
        }
    }

    /// The retry: keys for every field still encrypted, then decrypt them.
    async fn fetch_keys(&self, client: &CalendarClient, state: &mut State) {
        let wanted = self.store.read(|m| m.wanted_keys());
        self.ensure_keys(client, wanted, state).await;
        let keys = &state.keys;
        self.store.update(|m| {
            let n = m.decrypt_with(keys);
            ((), n > 0)
        });
        if self
            .store
            .read(|m| m.wanted_keys().iter().all(|k| state.keys.contains_key(k)))
        {
            state.key_backoff.reset();
            self.status
                .modify(|s| std::mem::replace(&mut s.keys_missing, false));
        }
    }

    /// The paged list over now−1 d … now+7 d; only a complete one removes bookings.
    async fn catch_up(&self, client: &CalendarClient, state: &mut State) {
        let now = now_ms();
        let (from, to) = (now.saturating_sub(DAY_MS), now + 7 * DAY_MS);
        let iso =
            |ms: u64| crate::clock::iso8601(std::time::UNIX_EPOCH + Duration::from_millis(ms));
        self.status.update(|s| s.catch_up = CatchUpState::Running);
        let started = std::time::Instant::now();
        let mut listed = BTreeSet::new();
        let mut pager = client.pages(&iso(from), &iso(to));
        let result = loop {
            match pager.next().await {
                None => break Ok(pager.pages_read()),
                Some(Err(e)) => break Err(e),
                Some(Ok(items)) => {
                    let wanted = items.iter().flat_map(dto_key_urls).collect();
                    self.ensure_keys(client, wanted, state).await;
                    let keys = &state.keys;
                    listed.extend(items.iter().map(|dto| dto.id.clone()));
                    self.store.update(|m| {
                        let changed = items
                            .iter()
                            .map(|dto| m.upsert(dto, keys))
                            .filter(|c| *c != Change::Unchanged)
                            .count();
                        ((), changed > 0)
                    });
                }
            }
        };
        match result {
            Ok(pages) => {
                let removed = self.store.update(|m| {
                    let gone = m.reconcile(&listed, from, to);
                    let n = gone.len();
                    (n, n > 0)
                });
                tracing::info!(
                    message_id = message_id::CALENDAR_CATCH_UP,
                    "calendar catch-up complete: {} booking(s) listed over {pages} page(s), {removed} removed, in {} ms",
                    listed.len(),
                    started.elapsed().as_millis()
                );
                state.catch_up_backoff.reset();
                state.catch_up_at = Some(Instant::now() + self.timers.catch_up_every);
                self.status.update(|s| {
                    s.catch_up = CatchUpState::Complete;
                    s.last_catch_up = Some(std::time::SystemTime::now());
                    s.catch_up_duration = Some(started.elapsed());
                    s.catch_ups += 1;
                });
            }
            Err(e) => {
                let delay = state.catch_up_backoff.next_delay();
                tracing::warn!(
                    message_id = message_id::CALENDAR_CATCH_UP_FAILED,
                    "calendar catch-up aborted: {e}; nothing removed (partial data); retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                state.catch_up_at = Some(Instant::now() + delay);
                let page = match &e {
                    CalendarError::Page { page, .. } => Some(*page as u32),
                    _ => None,
                };
                self.status
                    .update(|s| s.catch_up = CatchUpState::Failed { page });
            }
        }
        self.fetch_keys(client, state).await;
    }
}
