//! The calendar service and the KMS (wire profile §4, `docs/wire-profile-choices.md` §4), server side.
//!
//! - `model`: the public types: scenario `[[bookings]]` ([`BookingSpec`]) and `[kms]`, admin bodies
//!   ([`BookingPatch`], [`BulkSpec`], [`PageFault`]), ground truth ([`BookingTruth`]).
//! - `dto`: the `calendarMeetingExternal` DTO and the mercury event payloads.
//! - `jwe`: compact JWE, `dir` + `A256GCM`.
//! - `time`: ISO-8601 parsing and formatting.
//! - `service`: `GET /calendar/api/v1/calendarEvents` (paged, `Link` next) and
//!   `GET /calendar/api/v1/calendarEvents/{base64url id}`; `kms`: `GET /kms/keys?uri=`.
//! - `admin`: `/admin/calendar/*` and `/admin/kms/*`; `handle`: the [`crate::SimHandle`] mirrors.
//!
//! [`Calendar`] holds the bookings (by id, plus an index ordered by start then id, so a page is a
//! walk of the index and a bulk insert is O(n log n)), the KMS keys and the page faults, behind one
//! mutex. Rendering (encryption) happens outside the lock.

mod admin;
mod dto;
mod handle;
mod jwe;
mod kms;
mod model;
mod service;
mod time;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use rand::RngCore as _;
use serde_json::Value;

use crate::clock::now_ms;
use crate::mercury::{self, PushOutcome};
use crate::scenario::Scenario;
use crate::state::{SimState, lock};

pub(crate) use admin::router as admin_router;
pub use dto::{CALENDAR_SERVICE_LINK, key_url, resource_id};
pub(crate) use kms::router as kms_router;
pub use model::{
    BookingChange, BookingPatch, BookingSpec, BookingTruth, BulkOutcome, BulkSpec, CalendarError,
    DEFAULT_KEY, DEFAULT_ORGANIZER_EMAIL, DEFAULT_ORGANIZER_NAME, EventMode, KmsKey, KmsScenario,
    MAX_BULK, MAX_DURATION_MINS, MAX_START_IN_MINS, PageFault,
};
pub(crate) use service::router as service_router;

use jwe::KEY_LEN;
use model::{Booking, check_key_name};

/// Most items one list page returns; a larger `max` is capped.
pub const MAX_PAGE: usize = 200;
/// `max` when the request gives none.
pub const DEFAULT_PAGE: usize = 50;

type Key = [u8; KEY_LEN];

#[derive(Debug)]
struct KeyEntry {
    bytes: Key,
    missing: bool,
}

impl KeyEntry {
    fn fresh() -> Self {
        let mut bytes = [0_u8; KEY_LEN];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            bytes,
            missing: false,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    bookings: HashMap<String, Booking>,
    /// (start, id) of every booking: the list order.
    order: BTreeSet<(i64, String)>,
    keys: BTreeMap<String, KeyEntry>,
    faults: Vec<PageFault>,
}

impl Inner {
    fn insert(&mut self, b: Booking) {
        self.order.insert((b.start_ms, b.id.clone()));
        self.bookings.insert(b.id.clone(), b);
    }

    fn remove(&mut self, id: &str) -> Option<Booking> {
        let b = self.bookings.remove(id)?;
        self.order.remove(&(b.start_ms, b.id.clone()));
        Some(b)
    }

    fn need_key(&self, name: &str) -> Result<(), CalendarError> {
        if self.keys.contains_key(name) {
            Ok(())
        } else {
            Err(CalendarError::BadRequest(format!(
                "unknown KMS key {name:?}; add it to [kms] keys or with POST /admin/kms/keys"
            )))
        }
    }

    fn key_of(&self, b: &Booking) -> Option<Key> {
        self.keys.get(&b.key).map(|k| k.bytes)
    }

    fn kms_key(&self, name: &str) -> KmsKey {
        let entry = &self.keys[name];
        KmsKey {
            name: name.to_owned(),
            uri: key_url(name),
            k: base64_url(&entry.bytes),
            missing: entry.missing,
        }
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// One list page: the bookings with their keys, and whether more match after them.
#[derive(Debug)]
pub(crate) struct Page {
    pub items: Vec<(Booking, Option<Key>)>,
    pub more: bool,
}

/// Bookings, KMS keys and page faults.
#[derive(Debug)]
pub(crate) struct Calendar {
    inner: Mutex<Inner>,
}

fn now() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}

/// The bookings of a validated scenario, relative starts taken from now.
fn resolve_all(scenario: &Scenario) -> Vec<Booking> {
    let now = now();
    scenario
        .bookings
        .iter()
        .filter_map(|spec| match spec.resolve(now) {
            Ok(b) => Some(b),
            Err(e) => {
                // validate() has run, so this is unreachable in practice.
                tracing::warn!(error = %e, "scenario booking skipped");
                None
            }
        })
        .collect()
}

/// Checks `[[bookings]]` and `[kms]`: resolvable bookings, unique ids, known keys.
pub(crate) fn validate_scenario(s: &Scenario) -> anyhow::Result<()> {
    for (i, name) in s.kms.keys.iter().enumerate() {
        check_key_name(name).map_err(|e| anyhow::anyhow!("kms.keys[{i}]: {e}"))?;
        if s.kms.keys[..i].contains(name) {
            anyhow::bail!("kms.keys[{i}] {name:?} appears twice");
        }
    }
    let mut ids = BTreeSet::new();
    for (i, spec) in s.bookings.iter().enumerate() {
        spec.resolve(0)
            .map_err(|e| anyhow::anyhow!("bookings[{i}]: {e}"))?;
        if let Some(id) = &spec.id {
            if !ids.insert(id.as_str()) {
                anyhow::bail!("bookings[{i}].id {id:?} appears twice");
            }
        }
        if !s.kms.keys.contains(&spec.key) {
            anyhow::bail!(
                "bookings[{i}].key {:?} is not one of [kms] keys {:?}",
                spec.key,
                s.kms.keys
            );
        }
    }
    Ok(())
}

impl Calendar {
    pub(crate) fn new(scenario: &Scenario) -> Self {
        let mut inner = Inner::default();
        for name in &scenario.kms.keys {
            inner.keys.insert(name.clone(), KeyEntry::fresh());
        }
        for b in resolve_all(scenario) {
            inner.insert(b);
        }
        Self {
            inner: Mutex::new(inner),
        }
    }

    /// A new scenario: keys it names that the KMS lacks are made (keys never change or go away);
    /// when its bookings differ from the old scenario's, they replace every booking.
    pub(crate) fn sync(&self, old: &Scenario, new: &Scenario) {
        let fresh = (old.bookings != new.bookings).then(|| resolve_all(new));
        let mut inner = lock(&self.inner);
        for name in &new.kms.keys {
            inner
                .keys
                .entry(name.clone())
                .or_insert_with(KeyEntry::fresh);
        }
        if let Some(bookings) = fresh {
            inner.bookings.clear();
            inner.order.clear();
            for b in bookings {
                inner.insert(b);
            }
        }
    }

    /// The booking and its key.
    pub(crate) fn get(&self, id: &str) -> Option<(Booking, Option<Key>)> {
        let inner = lock(&self.inner);
        let b = inner.bookings.get(id)?;
        Some((b.clone(), inner.key_of(b)))
    }

    /// The bytes of key `name` (missing or not).
    pub(crate) fn key(&self, name: &str) -> Option<Key> {
        lock(&self.inner).keys.get(name).map(|k| k.bytes)
    }

    /// Bookings overlapping [from, to) (`None`: unbounded), in (start, id) order, `offset` skipped,
    /// at most `max`.
    pub(crate) fn page(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        offset: usize,
        max: usize,
    ) -> Page {
        let inner = lock(&self.inner);
        let upper = to.map_or(std::ops::Bound::Unbounded, |t| {
            std::ops::Bound::Excluded((t, String::new()))
        });
        let mut matching = inner
            .order
            .range((std::ops::Bound::Unbounded, upper))
            .filter_map(|(_, id)| inner.bookings.get(id))
            .filter(|b| from.is_none_or(|f| b.end_ms() > f))
            .skip(offset);
        let items = matching
            .by_ref()
            .take(max)
            .map(|b| (b.clone(), inner.key_of(b)))
            .collect();
        let more = matching.next().is_some();
        Page { items, more }
    }

    /// Every booking, in (start, id) order.
    pub(crate) fn truths(&self) -> Vec<BookingTruth> {
        let inner = lock(&self.inner);
        inner
            .order
            .iter()
            .filter_map(|(_, id)| inner.bookings.get(id))
            .map(Booking::truth)
            .collect()
    }

    fn insert(&self, b: Booking) -> Result<Option<Key>, CalendarError> {
        let mut inner = lock(&self.inner);
        inner.need_key(&b.key)?;
        if inner.bookings.contains_key(&b.id) {
            return Err(CalendarError::Conflict(format!(
                "a booking with id {:?} exists",
                b.id
            )));
        }
        let key = inner.key_of(&b);
        inner.insert(b);
        Ok(key)
    }

    fn insert_many(&self, bookings: Vec<Booking>) -> Result<(), CalendarError> {
        let mut inner = lock(&self.inner);
        if let Some(b) = bookings.first() {
            inner.need_key(&b.key)?;
        }
        for b in bookings {
            inner.insert(b);
        }
        Ok(())
    }

    fn update(
        &self,
        id: &str,
        patch: &BookingPatch,
    ) -> Result<(Booking, Option<Key>), CalendarError> {
        let mut inner = lock(&self.inner);
        let old = inner.bookings.get(id).ok_or_else(|| not_found(id))?;
        let new = patch.apply(old, now()).map_err(CalendarError::BadRequest)?;
        inner.need_key(&new.key)?;
        inner.remove(id);
        let key = inner.key_of(&new);
        inner.insert(new.clone());
        Ok((new, key))
    }

    fn remove(&self, id: &str) -> Result<Booking, CalendarError> {
        lock(&self.inner).remove(id).ok_or_else(|| not_found(id))
    }

    /// Removes every booking, without events; how many there were.
    pub(crate) fn clear(&self) -> usize {
        let mut inner = lock(&self.inner);
        inner.order.clear();
        let n = inner.bookings.len();
        inner.bookings.clear();
        n
    }

    /// The key at `uri` for `GET /kms/keys`: `None` when unknown or marked missing.
    pub(crate) fn kms_lookup(&self, uri: &str) -> Option<Key> {
        let name = uri.strip_prefix("kms://kms.sim.invalid/keys/")?;
        let inner = lock(&self.inner);
        inner.keys.get(name).filter(|k| !k.missing).map(|k| k.bytes)
    }

    pub(crate) fn kms_keys(&self) -> Vec<KmsKey> {
        let inner = lock(&self.inner);
        inner.keys.keys().map(|n| inner.kms_key(n)).collect()
    }

    /// Makes key `name` if the KMS lacks it; sets `missing` when given. The key as it now is.
    pub(crate) fn kms_upsert(
        &self,
        name: &str,
        missing: Option<bool>,
    ) -> Result<KmsKey, CalendarError> {
        check_key_name(name).map_err(CalendarError::BadRequest)?;
        let mut inner = lock(&self.inner);
        let entry = inner
            .keys
            .entry(name.to_owned())
            .or_insert_with(KeyEntry::fresh);
        if let Some(m) = missing {
            entry.missing = m;
        }
        Ok(inner.kms_key(name))
    }

    /// Sets `missing` of an existing key.
    pub(crate) fn kms_set_missing(
        &self,
        name: &str,
        missing: bool,
    ) -> Result<KmsKey, CalendarError> {
        let mut inner = lock(&self.inner);
        let entry = inner
            .keys
            .get_mut(name)
            .ok_or_else(|| CalendarError::NotFound(format!("no KMS key {name:?}")))?;
        entry.missing = missing;
        Ok(inner.kms_key(name))
    }

    pub(crate) fn arm_fault(&self, fault: PageFault) -> Result<(), CalendarError> {
        fault.check().map_err(CalendarError::BadRequest)?;
        lock(&self.inner).faults.push(fault);
        Ok(())
    }

    pub(crate) fn faults(&self) -> Vec<PageFault> {
        lock(&self.inner).faults.clone()
    }

    pub(crate) fn clear_faults(&self) {
        lock(&self.inner).faults.clear();
    }

    /// Uses up one failure armed for list page `page`, if any.
    pub(crate) fn take_fault(&self, page: u64) -> Option<PageFault> {
        let mut inner = lock(&self.inner);
        let i = inner.faults.iter().position(|f| f.fail_page == page)?;
        let fault = inner.faults[i].clone();
        inner.faults[i].count -= 1;
        if inner.faults[i].count == 0 {
            inner.faults.remove(i);
        }
        Some(fault)
    }
}

fn not_found(id: &str) -> CalendarError {
    CalendarError::NotFound(format!("no booking {id:?}"))
}

/// Pushes one event to every registration (as `SimHandle::mercury_push`).
fn push(sim: &SimState, datas: &[Value]) -> Result<PushOutcome, CalendarError> {
    if datas.is_empty() {
        return Ok(PushOutcome::default());
    }
    mercury::push(sim, None, datas).map_err(|e| CalendarError::BadRequest(format!("{e:#}")))
}

fn change(
    booking: &Booking,
    event: Option<Value>,
    sim: &SimState,
) -> Result<BookingChange, CalendarError> {
    let event_type = event
        .as_ref()
        .and_then(|e| e["eventType"].as_str())
        .map(str::to_owned);
    let out = push(sim, &event.into_iter().collect::<Vec<_>>())?;
    Ok(BookingChange {
        booking: booking.truth(),
        event_type,
        delivered: out.delivered,
        undelivered: out.undelivered,
    })
}

fn upsert_event(kind: &str, mode: EventMode, b: &Booking, key: Option<&Key>) -> Option<Value> {
    match mode {
        EventMode::Full => Some(dto::full_event(kind, b, key)),
        EventMode::Minimal => Some(dto::minimal_event(kind, b)),
        EventMode::None => None,
    }
}

/// Stores a new booking, then pushes `calendar.meeting.create` (full or minimal) unless `none`.
pub(crate) fn create(
    sim: &SimState,
    spec: &BookingSpec,
    mode: EventMode,
) -> Result<BookingChange, CalendarError> {
    let b = spec.resolve(now()).map_err(CalendarError::BadRequest)?;
    let key = sim.calendar.insert(b.clone())?;
    tracing::info!(id = %b.id, start = %b.truth().start, event = mode.as_str(), "calendar booking created");
    change(&b, upsert_event("create", mode, &b, key.as_ref()), sim)
}

/// Changes a booking, then pushes `calendar.meeting.update` (full or minimal) unless `none`.
pub(crate) fn update(
    sim: &SimState,
    id: &str,
    patch: &BookingPatch,
    mode: EventMode,
) -> Result<BookingChange, CalendarError> {
    let (b, key) = sim.calendar.update(id, patch)?;
    tracing::info!(%id, event = mode.as_str(), "calendar booking updated");
    change(&b, upsert_event("update", mode, &b, key.as_ref()), sim)
}

/// Removes a booking, then pushes `calendar.meeting.delete` unless `none` (`minimal` is refused).
pub(crate) fn delete(
    sim: &SimState,
    id: &str,
    mode: EventMode,
) -> Result<BookingChange, CalendarError> {
    if mode == EventMode::Minimal {
        return Err(CalendarError::BadRequest(
            "delete has no minimal event; use full or none".to_owned(),
        ));
    }
    let b = sim.calendar.remove(id)?;
    tracing::info!(%id, event = mode.as_str(), "calendar booking deleted");
    let event = (mode == EventMode::Full).then(|| dto::delete_event(&b.id));
    change(&b, event, sim)
}

/// Creates `spec.count` bookings at once, then (unless `none`) pushes their create events in one
/// batch.
pub(crate) fn bulk(sim: &SimState, spec: &BulkSpec) -> Result<BulkOutcome, CalendarError> {
    let bookings = spec.resolve(now()).map_err(CalendarError::BadRequest)?;
    let ids: Vec<String> = bookings.iter().map(|b| b.id.clone()).collect();
    let events: Vec<Value> = if spec.event == EventMode::None {
        Vec::new()
    } else {
        let key = sim.calendar.key(&spec.key);
        bookings
            .iter()
            .filter_map(|b| upsert_event("create", spec.event, b, key.as_ref()))
            .collect()
    };
    sim.calendar.insert_many(bookings)?;
    tracing::info!(
        count = ids.len(),
        event = spec.event.as_str(),
        "calendar bookings created in bulk"
    );
    let out = push(sim, &events)?;
    Ok(BulkOutcome {
        ids,
        delivered: out.delivered,
        undelivered: out.undelivered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: &str, start: &str, mins: u32) -> BookingSpec {
        BookingSpec {
            id: Some(id.into()),
            start: Some(start.into()),
            start_in_mins: None,
            duration_mins: mins,
            ..BookingSpec::new(id, 0)
        }
    }

    fn ids(page: &Page) -> Vec<&str> {
        page.items.iter().map(|(b, _)| b.id.as_str()).collect()
    }

    fn scenario(bookings: Vec<BookingSpec>) -> Scenario {
        Scenario {
            bookings,
            ..Scenario::default()
        }
    }

    #[test]
    fn pages_overlap_and_order() {
        let cal = Calendar::new(&scenario(vec![
            at("c", "2022-04-26T10:00:00Z", 60),
            at("b", "2022-04-26T10:00:00Z", 30),
            at("a", "2022-04-26T11:00:00Z", 30),
            at("d", "2022-04-26T09:00:00Z", 60),
        ]));
        let t = |s: &str| time::parse_iso8601(s);
        assert_eq!(ids(&cal.page(None, None, 0, 10)), ["d", "b", "c", "a"]);
        let p = cal.page(None, None, 1, 2);
        assert_eq!((ids(&p), p.more), (vec!["b", "c"], true));
        let p = cal.page(None, None, 2, 2);
        assert_eq!((ids(&p), p.more), (vec!["c", "a"], false));
        assert!(cal.page(None, None, 9, 2).items.is_empty());
        // [10:00, 11:00): d ends at 10:00 (out), a starts at 11:00 (out).
        let p = cal.page(t("2022-04-26T10:00:00Z"), t("2022-04-26T11:00:00Z"), 0, 10);
        assert_eq!(ids(&p), ["b", "c"]);
        // [10:45, 10:50): only c still runs.
        let p = cal.page(t("2022-04-26T10:45:00Z"), t("2022-04-26T10:50:00Z"), 0, 10);
        assert_eq!(ids(&p), ["c"]);
        let truths = cal.truths();
        assert_eq!(truths[0].id, "d");
        assert_eq!(truths[3].end, "2022-04-26T11:30:00.000Z");
    }

    #[test]
    fn sync_keeps_keys_and_unchanged_bookings() {
        let old = scenario(vec![BookingSpec::new("relative", 5)]);
        let cal = Calendar::new(&old);
        let before = cal.truths();
        let k = cal.key(DEFAULT_KEY).expect("default key");
        let mut same = old.clone();
        same.gds.service_state = "offline".into();
        cal.sync(&old, &same);
        assert_eq!(cal.truths(), before, "same bookings: untouched (ids kept)");
        let mut new = scenario(vec![at("x", "2022-04-26T10:00:00Z", 30)]);
        new.kms.keys.push("second".into());
        cal.sync(&same, &new);
        assert_eq!(cal.truths().len(), 1);
        assert_eq!(cal.truths()[0].id, "x");
        assert_eq!(cal.key(DEFAULT_KEY), Some(k), "keys never change");
        assert!(cal.key("second").is_some());
    }

    #[test]
    fn faults_count_down_and_keys_go_missing() {
        let cal = Calendar::new(&Scenario::default());
        cal.arm_fault(PageFault::new(3, 500, 2)).expect("arm");
        assert!(cal.arm_fault(PageFault::new(0, 500, 1)).is_err());
        assert!(cal.arm_fault(PageFault::new(1, 99, 1)).is_err());
        assert!(cal.take_fault(2).is_none());
        assert!(cal.take_fault(3).is_some());
        assert_eq!(cal.faults()[0].count, 1);
        assert!(cal.take_fault(3).is_some());
        assert!(cal.take_fault(3).is_none());
        let uri = key_url(DEFAULT_KEY);
        assert!(cal.kms_lookup(&uri).is_some());
        cal.kms_set_missing(DEFAULT_KEY, true).expect("known");
        assert!(cal.kms_lookup(&uri).is_none());
        assert!(cal.kms_set_missing("nope", true).is_err());
        cal.kms_set_missing(DEFAULT_KEY, false).expect("known");
        assert!(cal.kms_lookup(&uri).is_some());
        assert!(cal.kms_lookup("kms://kms.sim.invalid/keys/nope").is_none());
        assert!(cal.kms_lookup("default").is_none());
    }
}
