//! The call state machine: what a Locus DTO means for the device's call. Pure, so the table in
//! `docs/calls.md` is tested row by row.

use crate::proto::locus::{LocusDto, LocusType, Participant, ParticipantState};

/// RoomOS's `Call[n] Status` values roomd uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Resolving the target and sending the join.
    Dialling,
    /// Incoming, self NOTIFIED: the room is being alerted.
    Ringing,
    /// Joined; the far end of a call has not answered yet.
    Connecting,
    Connected,
    OnHold,
    /// Leaving.
    Disconnecting,
    /// Ended: how a call in the ended list shows (never a live call's state).
    Idle,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Dialling => "Dialling",
            CallState::Ringing => "Ringing",
            CallState::Connecting => "Connecting",
            CallState::Connected => "Connected",
            CallState::OnHold => "OnHold",
            CallState::Disconnecting => "Disconnecting",
            CallState::Idle => "Idle",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Incoming,
    Outgoing,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Incoming => "Incoming",
            Direction::Outgoing => "Outgoing",
        }
    }
}

/// Why a call ended: the xAPI's `CallDisconnect CauseType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// This device hung up.
    LocalDisconnect,
    /// The far end hung up, or the meeting ended.
    RemoteDisconnect,
    /// This device declined an incoming call.
    LocalReject,
    /// The far end declined.
    RemoteReject,
    /// The caller gave up before the room answered.
    Missed,
    /// Locus could not be reached or refused the request.
    NetworkError,
    /// A move left the old call but could not join the new one.
    MoveFailed,
}

impl EndCause {
    pub fn as_str(self) -> &'static str {
        match self {
            EndCause::LocalDisconnect => "LocalDisconnect",
            EndCause::RemoteDisconnect => "RemoteDisconnect",
            EndCause::LocalReject => "LocalReject",
            EndCause::RemoteReject => "RemoteReject",
            EndCause::Missed => "Missed",
            EndCause::NetworkError => "NetworkError",
            EndCause::MoveFailed => "MoveFailed",
        }
    }
}

/// What a DTO says about the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derived {
    State(CallState),
    Ended(EndCause),
}

fn held(participant: &Participant) -> bool {
    participant
        .controls
        .as_ref()
        .and_then(|c| c.hold.as_ref())
        .is_some_and(|h| h.held)
}

fn gone(state: &ParticipantState) -> bool {
    matches!(state, ParticipantState::Left | ParticipantState::Declined)
}

/// The table of `docs/calls.md`, first matching row wins.
pub fn derive(dto: &LocusDto, direction: Direction) -> Derived {
    let me = dto.self_.as_ref();
    let my_url = me.map(|p| p.url.as_str()).unwrap_or_default();
    let others: Vec<&Participant> = dto
        .participants
        .iter()
        .filter(|p| p.url != my_url && !p.removed)
        .collect();
    let someone_declined = others.iter().any(|p| p.state == ParticipantState::Declined);
    let my_state = me.map(|p| &p.state);
    let remote_end = || {
        if someone_declined && !others.iter().any(|p| p.state == ParticipantState::Left) {
            EndCause::RemoteReject
        } else if my_state == Some(&ParticipantState::Notified) && direction == Direction::Incoming
        {
            EndCause::Missed
        } else {
            EndCause::RemoteDisconnect
        }
    };
    match my_state {
        Some(ParticipantState::Left) => return Derived::Ended(EndCause::LocalDisconnect),
        Some(ParticipantState::Declined) => return Derived::Ended(EndCause::LocalReject),
        _ => {}
    }
    if dto.is_ended() {
        return Derived::Ended(remote_end());
    }
    let is_call = dto
        .full_state
        .as_ref()
        .is_some_and(|f| f.kind == LocusType::Call);
    if is_call && !others.is_empty() && others.iter().all(|p| gone(&p.state)) {
        return Derived::Ended(remote_end());
    }
    match my_state {
        Some(ParticipantState::Notified) => Derived::State(CallState::Ringing),
        Some(ParticipantState::Joined) => {
            if me.is_some_and(held) {
                Derived::State(CallState::OnHold)
            } else if !is_call || others.iter().any(|p| p.state == ParticipantState::Joined) {
                Derived::State(CallState::Connected)
            } else {
                Derived::State(CallState::Connecting)
            }
        }
        // IDLE (a move's destination before the join), unknown, or no self yet.
        _ => Derived::State(CallState::Connecting),
    }
}

/// The far end's name and address for a call (the first other participant).
pub fn remote_party(dto: &LocusDto) -> Option<(String, String)> {
    let my_url = dto
        .self_
        .as_ref()
        .map(|p| p.url.as_str())
        .unwrap_or_default();
    dto.participants
        .iter()
        .find(|p| p.url != my_url && !p.removed)
        .map(|p| {
            let person = p.person.as_ref();
            let name = person.and_then(|p| p.name.clone()).unwrap_or_default();
            let address = person.and_then(|p| p.email.clone()).unwrap_or_default();
            (name, address)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dto(value: serde_json::Value) -> LocusDto {
        serde_json::from_value(value).unwrap()
    }

    fn call(locus_state: &str, me: &str, remote: &str, held: bool) -> LocusDto {
        dto(json!({
            "url": "https://l/loci/1",
            "fullState": { "state": locus_state, "type": "CALL" },
            "self": { "url": "https://l/p/me", "id": "me", "state": me,
                      "controls": { "hold": { "held": held } } },
            "participants": [
                { "url": "https://l/p/me", "id": "me", "state": me },
                { "url": "https://l/p/far", "id": "far", "state": remote,
                  "person": { "name": "Alice", "email": "alice@example.com" } },
            ],
        }))
    }

    #[test]
    fn the_docs_table_row_by_row() {
        use CallState::*;
        use Derived::{Ended, State};
        use Direction::*;
        let rows = [
            (
                call("ACTIVE", "LEFT", "JOINED", false),
                Outgoing,
                Ended(EndCause::LocalDisconnect),
            ),
            (
                call("ACTIVE", "DECLINED", "JOINED", false),
                Incoming,
                Ended(EndCause::LocalReject),
            ),
            (
                call("ENDED", "JOINED", "LEFT", false),
                Outgoing,
                Ended(EndCause::RemoteDisconnect),
            ),
            (
                call("INACTIVE", "JOINED", "DECLINED", false),
                Outgoing,
                Ended(EndCause::RemoteReject),
            ),
            (
                call("ENDED", "NOTIFIED", "LEFT", false),
                Incoming,
                Ended(EndCause::Missed),
            ),
            (
                call("ACTIVE", "JOINED", "LEFT", false),
                Outgoing,
                Ended(EndCause::RemoteDisconnect),
            ),
            (
                call("ACTIVE", "NOTIFIED", "JOINED", false),
                Incoming,
                State(Ringing),
            ),
            (
                call("ACTIVE", "JOINED", "JOINED", true),
                Outgoing,
                State(OnHold),
            ),
            (
                call("ACTIVE", "JOINED", "JOINED", false),
                Outgoing,
                State(Connected),
            ),
            (
                call("INITIALIZING", "JOINED", "NOTIFIED", false),
                Outgoing,
                State(Connecting),
            ),
            (
                call("ACTIVE", "IDLE", "JOINED", false),
                Outgoing,
                State(Connecting),
            ),
        ];
        for (i, (dto, direction, want)) in rows.iter().enumerate() {
            assert_eq!(derive(dto, *direction), *want, "row {}", i + 1);
        }
    }

    #[test]
    fn a_meeting_is_connected_once_self_joined_even_alone() {
        let meeting = dto(json!({
            "url": "https://l/loci/2",
            "fullState": { "state": "ACTIVE", "type": "MEETING" },
            "self": { "url": "https://l/p/me", "id": "me", "state": "JOINED" },
            "participants": [ { "url": "https://l/p/me", "id": "me", "state": "JOINED" } ],
        }));
        assert_eq!(
            derive(&meeting, Direction::Outgoing),
            Derived::State(CallState::Connected)
        );
    }

    #[test]
    fn remote_party_is_the_first_other_participant() {
        let dto = call("ACTIVE", "JOINED", "JOINED", false);
        assert_eq!(
            remote_party(&dto),
            Some(("Alice".into(), "alice@example.com".into()))
        );
    }
}
