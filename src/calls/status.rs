//! Call control's slice of the device status: dial requests, calls in progress and ended,
//! moves, Locus counters (`roomd status` → `Calls`, the xAPI's `Call[n]`).

use std::time::SystemTime;

use super::state::{CallState, Direction};

/// Dial requests and calls (the call manager keeps this up to date; the room records dials).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallsStatus {
    /// Call control has the Locus service (the device is registered).
    pub available: bool,
    pub dial_requests: u32,
    pub last_dial: Option<DialRecord>,
    /// Calls in progress (ringing, connecting, connected, on hold), oldest first.
    pub active: Vec<CallView>,
    /// The last few calls that ended, newest last.
    pub ended: Vec<CallView>,
    /// The last user-visible notice (a move: "You have been moved to a new call. Now in …").
    pub notice: Option<String>,
    /// Participant moves seen, with their outcome.
    pub moves: Vec<MoveRecord>,
    /// Locus DTO handling, summed over every call.
    pub locus: LocusCounters,
}

/// `Call` or `Meeting` (the meeting regex or the locus type decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Call,
    Meeting,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Call => "Call",
            CallKind::Meeting => "Meeting",
        }
    }
}

/// One call as status, the xAPI's `Call[n]` and `roomd status` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallView {
    /// The xAPI CallId, from 1 per daemon run.
    pub id: u32,
    /// [`CallState::Idle`] once the call ended.
    pub status: CallState,
    pub direction: Direction,
    pub kind: CallKind,
    pub remote_number: String,
    pub display_name: String,
    pub locus_url: Option<String>,
    /// Participants `JOINED` in the locus (self included).
    pub participants: usize,
    pub correlation_id: String,
    pub started: SystemTime,
    pub connected_at: Option<SystemTime>,
    /// How it ended (`CauseType` of the xAPI's CallDisconnect); `None` while active.
    pub end_cause: Option<String>,
    pub end_detail: Option<String>,
    /// Diagnostic events in the order they happened.
    pub diagnostics: Vec<DiagnosticRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiagnosticRecord {
    pub name: &'static str,
    pub at: SystemTime,
}

/// How a participant move ended (seed 002's three failure cases are distinct).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOutcome {
    Moved,
    /// Leaving the old call failed: still in it.
    NothingHappened,
    /// Left the old call, but joining the new one failed.
    DroppedNotReconnected,
    /// Joined, but Locus put the device in another meeting.
    WrongMeeting,
}

impl MoveOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            MoveOutcome::Moved => "Moved",
            MoveOutcome::NothingHappened => "NothingHappened",
            MoveOutcome::DroppedNotReconnected => "DroppedNotReconnected",
            MoveOutcome::WrongMeeting => "WrongMeeting",
        }
    }
}

/// A participant move and what came of it.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveRecord {
    pub call_id: u32,
    pub outcome: MoveOutcome,
    pub from: String,
    pub to: String,
    pub name: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocusCounters {
    pub applied: u64,
    pub kept: u64,
    pub queued: u64,
    pub syncs: u64,
    pub desyncs: u64,
    pub bad_events: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DialRecord {
    pub number: String,
    /// `webex-N` when the dial came from a booking.
    pub booking_id: Option<String>,
    /// `xapi:<user>`, `gpio:join_button`, ...
    pub source: String,
    pub at: SystemTime,
}
