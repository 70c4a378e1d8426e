//! The call core's vocabulary: the [`Input`]s it takes, the [`Action`]s it returns, the
//! Locus requests it asks for and their answers ([`Done`]), and what callers of call control
//! see (commands, [`CallError`], [`CallEvent`]).

use std::net::SocketAddr;

use super::sdp;
use super::state::{Direction, EndCause};
use crate::media::plan::MediaPlan;
use crate::proto::locus::{JoinAnswer, LocusDto};

/// DTMF tones per request (wire-profile choice).
pub const MAX_DTMF_TONES: usize = 32;

/// DTMF tones the profile allows.
pub fn valid_tones(tones: &str) -> bool {
    (1..=MAX_DTMF_TONES).contains(&tones.len())
        && tones
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
}

/// Names a command whose reply the core owes.
pub type OpId = u64;

/// Call events as the xAPI publishes them.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    Outgoing {
        call_id: u32,
        remote_uri: String,
    },
    Incoming {
        call_id: u32,
        remote_uri: String,
        display_name: String,
    },
    Disconnect {
        call_id: u32,
        cause: EndCause,
        detail: Option<String>,
        remote_uri: String,
        display_name: String,
        direction: Direction,
        duration_secs: u64,
    },
    /// A message for the people in the room (a move's "You have been moved to a new call.").
    Notice {
        call_id: u32,
        text: String,
    },
}

/// Why a call command did not happen; the text is what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum CallError {
    /// Calls are not available: the device is not registered with the cloud yet
    NotRegistered,
    /// There is no call
    NoCall,
    /// No call with CallId {0}
    NoSuchCall(u32),
    /// Already in a call (CallId {0}); disconnect it first
    Busy(u32),
    /// Call {id} is {state}, so it cannot be {action}
    WrongState {
        id: u32,
        state: &'static str,
        action: &'static str,
    },
    /// DTMF tones must be 1 to 32 of 0-9 * # A-D, got {0:?}
    BadTones(String),
    /// Locus refused: {0}
    Locus(String),
    /// roomd is stopping
    Stopping,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialOutcome {
    pub call_id: u32,
    /// The call's correlation id (the xAPI's `ConferenceId`).
    pub conference_id: String,
}

/// What a command asks of call control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Dial { number: String },
    Accept { call_id: Option<u32> },
    Reject { call_id: Option<u32> },
    Disconnect { call_id: Option<u32> },
    Hold { call_id: Option<u32>, held: bool },
    Dtmf { call_id: Option<u32>, tones: String },
}

/// A command's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Dialled(DialOutcome),
    Done,
}

/// What the core needs for a join body beside the room's controls and reachability.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub call_id: u32,
    pub correlation_id: String,
    pub plan: MediaPlan,
}

impl Offer {
    pub fn local_sdp(&self) -> String {
        sdp::local_offer(u64::from(self.call_id), &self.plan)
    }
}

/// A request to Locus.
#[derive(Debug, Clone, PartialEq)]
pub enum LocusRequest {
    /// `POST /loci/call`.
    Call {
        address: String,
        offer: Offer,
    },
    /// `GET meetingInfo`, then the join of its locus.
    JoinMeeting {
        address: String,
        offer: Offer,
    },
    /// `POST {locus}/participant`.
    Join {
        locus_url: String,
        offer: Offer,
    },
    Leave {
        locus_url: String,
        self_id: String,
        correlation_id: String,
    },
    Decline {
        locus_url: String,
    },
    Alert {
        locus_url: String,
    },
    Hold {
        locus_url: String,
        self_url: String,
        held: bool,
    },
    Dtmf {
        locus_url: String,
        correlation_id: String,
        tones: String,
    },
    /// `GET syncUrl`, falling back to `GET locusUrl`.
    Sync {
        locus_url: String,
        sync_url: Option<String>,
    },
}

/// What the core asks the manager to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Reply {
        op: OpId,
        result: Result<Answer, CallError>,
    },
    Event(CallEvent),
    /// Run `request`; its answer comes back as [`Input::Done`] with the same `call_id` and
    /// `attempt`.
    Locus {
        call_id: u32,
        attempt: u32,
        request: LocusRequest,
    },
    /// The STUN check to the media node; answered with [`Done::Ice`].
    CheckIce {
        call_id: u32,
        attempt: u32,
        node: SocketAddr,
    },
    /// Start the call's media towards `node` (nothing when media is off). Not answered: the
    /// manager keeps the session while [`CallCore::media_wanted`] says so.
    StartMedia {
        call_id: u32,
        attempt: u32,
        correlation_id: String,
        node: SocketAddr,
        ext_id: u8,
        plan: MediaPlan,
    },
    /// Stop the call's media session, if one runs.
    StopMedia {
        call_id: u32,
    },
}

/// The answer of a request the core asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    /// A join (`Call`, `JoinMeeting`, `Join`); `meeting_name` from meetingInfo.
    Joined {
        answer: Result<JoinAnswer, String>,
        meeting_name: Option<String>,
    },
    Ice(Result<SocketAddr, String>),
    Left(Result<(), String>),
    Declined(Result<(), String>),
    Alerted(Result<(), String>),
    Held(Result<LocusDto, String>),
    DtmfSent(Result<(), String>),
    Synced(Result<LocusDto, String>),
}

/// An input to the core.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Command {
        op: OpId,
        command: Command,
    },
    /// A `locus.*` event's `data`.
    Event(serde_json::Value),
    Done {
        call_id: u32,
        attempt: u32,
        // Boxed: a join answer is far larger than the other inputs.
        done: Box<Done>,
    },
    /// A WAIT deadline may have passed.
    Deadline,
    /// The event socket came back after `generation`'s resync request: events may be lost.
    Resync {
        generation: u64,
    },
    /// Call control has (or lost) the Locus service.
    Services {
        available: bool,
    },
}
