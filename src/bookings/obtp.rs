//! One Button To Push: which booking is current, which are inside their join window, and the
//! `Bookings StartTimeBuffer` / `Start` / `End` transitions, as pure functions of the model and
//! a wall-clock time. The timer task (in `store`) sleeps on the monotonic clock until the next
//! transition and re-reads the wall clock when it wakes, so a clock jump only moves *when* it
//! wakes, never what it reports.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::model::{Booking, BookingsModel};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObtpEventKind {
    StartTimeBuffer,
    Start,
    End,
}

impl ObtpEventKind {
    /// The xAPI event name under `Bookings`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObtpEventKind::StartTimeBuffer => "StartTimeBuffer",
            ObtpEventKind::Start => "Start",
            ObtpEventKind::End => "End",
        }
    }
}

/// A transition of one booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObtpEvent {
    pub at_ms: u64,
    pub kind: ObtpEventKind,
    /// `webex-N`.
    pub booking: String,
    pub meeting_id: String,
}

fn transitions_of(booking: &Booking, buffer_ms: u64) -> [(u64, ObtpEventKind); 3] {
    [
        (
            booking.start_ms.saturating_sub(buffer_ms),
            ObtpEventKind::StartTimeBuffer,
        ),
        (booking.start_ms, ObtpEventKind::Start),
        (booking.end_ms(), ObtpEventKind::End),
    ]
}

/// Transitions in (from, to], in time order.
pub fn crossed(model: &BookingsModel, from_ms: u64, to_ms: u64, buffer_ms: u64) -> Vec<ObtpEvent> {
    let mut events: Vec<ObtpEvent> = model
        .bookings
        .values()
        .flat_map(|b| {
            transitions_of(b, buffer_ms)
                .into_iter()
                .filter(|(at, _)| *at > from_ms && *at <= to_ms)
                .map(|(at_ms, kind)| ObtpEvent {
                    at_ms,
                    kind,
                    booking: b.xapi_id(),
                    meeting_id: b.id.clone(),
                })
        })
        .collect();
    events.sort_by(|a, b| (a.at_ms, a.kind, &a.booking).cmp(&(b.at_ms, b.kind, &b.booking)));
    events
}

/// The first transition after `now_ms`.
pub fn next_after(model: &BookingsModel, now_ms: u64, buffer_ms: u64) -> Option<u64> {
    model
        .bookings
        .values()
        .flat_map(|b| transitions_of(b, buffer_ms))
        .map(|(at, _)| at)
        .filter(|at| *at > now_ms)
        .min()
}

fn in_window(booking: &Booking, now_ms: u64, buffer_ms: u64) -> bool {
    booking.start_ms.saturating_sub(buffer_ms) <= now_ms && now_ms < booking.end_ms()
}

/// `Bookings Current Id`: the earliest-starting booking whose window (start − buffer … end)
/// holds `now_ms`.
pub fn current_id(model: &BookingsModel, now_ms: u64, buffer_ms: u64) -> Option<String> {
    model
        .ordered()
        .into_iter()
        .find(|b| in_window(b, now_ms, buffer_ms))
        .map(Booking::xapi_id)
}

/// Bookings whose Join button shows now: eligible and inside their window.
pub fn joinable(model: &BookingsModel, now_ms: u64, buffer_ms: u64) -> Vec<String> {
    model
        .ordered()
        .into_iter()
        .filter(|b| b.eligible() && in_window(b, now_ms, buffer_ms))
        .map(Booking::xapi_id)
        .collect()
}

/// The wall clock, replaceable in tests (a jump is a test clock that moves by itself).
pub trait WallClock: Send + Sync + std::fmt::Debug + 'static {
    fn now_ms(&self) -> u64;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::calendar::MeetingDto;

    const BUFFER: u64 = 300_000;

    fn model() -> BookingsModel {
        let mut model = BookingsModel::default();
        for (id, start, uri) in [
            ("a", "2022-04-26T13:00:00.000Z", true),
            ("b", "2022-04-26T13:20:00.000Z", false),
        ] {
            model.upsert(
                &MeetingDto {
                    id: id.into(),
                    start: Some(start.into()),
                    duration_minutes: Some(30),
                    webex_uri: uri.then(|| "x@webex.com".to_string()),
                    ..Default::default()
                },
                &Default::default(),
            );
        }
        model
    }

    fn at(iso: &str) -> u64 {
        crate::clock::parse_iso8601_ms(iso).unwrap()
    }

    #[test]
    fn windows_and_current_id() {
        let m = model();
        assert_eq!(current_id(&m, at("2022-04-26T12:54:59.999Z"), BUFFER), None);
        assert_eq!(
            current_id(&m, at("2022-04-26T12:55:00.000Z"), BUFFER).as_deref(),
            Some("webex-1")
        );
        // 13:16: both windows are open; the earlier start is current.
        assert_eq!(
            current_id(&m, at("2022-04-26T13:16:00.000Z"), BUFFER).as_deref(),
            Some("webex-1")
        );
        assert_eq!(
            current_id(&m, at("2022-04-26T13:30:00.000Z"), BUFFER).as_deref(),
            Some("webex-2")
        );
        // b has no join URI: listed, current, but never joinable.
        assert!(joinable(&m, at("2022-04-26T13:40:00.000Z"), BUFFER).is_empty());
        assert_eq!(
            joinable(&m, at("2022-04-26T13:00:00.000Z"), BUFFER),
            ["webex-1"]
        );
    }

    #[test]
    fn transitions_in_order() {
        let m = model();
        let events = crossed(
            &m,
            at("2022-04-26T12:00:00.000Z"),
            at("2022-04-26T13:30:00.000Z"),
            BUFFER,
        );
        let seen: Vec<(String, &str)> = events
            .iter()
            .map(|e| (e.booking.clone(), e.kind.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("webex-1".to_string(), "StartTimeBuffer"),
                ("webex-1".to_string(), "Start"),
                ("webex-2".to_string(), "StartTimeBuffer"),
                ("webex-2".to_string(), "Start"),
                ("webex-1".to_string(), "End"),
            ]
        );
        assert_eq!(
            next_after(&m, at("2022-04-26T13:30:00.000Z"), BUFFER),
            Some(at("2022-04-26T13:50:00.000Z"))
        );
    }
}
