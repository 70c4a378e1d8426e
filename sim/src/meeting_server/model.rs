//! The conference model: active calls and their participants, as seed 001's tables describe them.
//!
//! Every mutation returns the [`Change`]s it made, in order; the subscription layer turns those into
//! `callListUpdate`, `callInfoUpdate` and `rosterUpdate` messages for each socket.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::CmsError;

/// One active conference (seed 001 §2.1/§2.3), with its roster (§2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CmsCall {
    /// The call's GUID.
    pub call: String,
    pub name: String,
    /// Number of participants (the roster's length).
    pub participants: usize,
    pub distributed_instances: u32,
    /// `active` | `inactive`.
    pub recording: String,
    /// `active` | `inactive`.
    pub endpoint_recording: String,
    /// `active` | `inactive`.
    pub streaming: String,
    /// `locked` | `unlocked` (the `calls` resource reports `notLocked` for `unlocked`).
    pub lock_state: String,
    /// `coSpace` | `adHoc` | `lyncConferencing` | `forwarding`.
    pub call_type: String,
    pub call_correlator: String,
    pub join_audio_mute_override: bool,
    /// Participants in join order.
    pub roster: Vec<CmsParticipant>,
}

/// One participant of a call (seed 001 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CmsParticipant {
    /// The participant's GUID.
    pub participant: String,
    pub name: String,
    pub uri: String,
    /// `initial` | `ringing` | `connected` | `onHold`.
    pub state: String,
    /// `incoming` | `outgoing`.
    pub direction: String,
    pub audio_muted: bool,
    pub video_muted: bool,
    /// Null when unset.
    pub importance: Option<i64>,
    pub layout: String,
    pub active_speaker: bool,
    pub presenter: bool,
    /// `active` | `inactive`.
    pub endpoint_recording: String,
    pub can_move: bool,
    pub can_move_to_lobby: bool,
    /// Set only on a participant created by a move: the GUID of the participant it was moved from.
    pub moved_participant: Option<String>,
    /// Set only on a participant created by a move: the GUID of the Call Bridge it was moved from.
    pub moved_participant_call_bridge: Option<String>,
}

/// Fields of a call to create (`call` picks the GUID) or change (`call` must be absent). Wire names
/// and values, as the events carry them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CmsCallFields {
    /// Create only: the call's GUID (default: a new v4 UUID).
    pub call: Option<String>,
    pub name: Option<String>,
    pub distributed_instances: Option<u32>,
    pub recording: Option<String>,
    pub endpoint_recording: Option<String>,
    pub streaming: Option<String>,
    /// `locked`, `unlocked` or `notLocked` (the same as `unlocked`).
    pub lock_state: Option<String>,
    pub call_type: Option<String>,
    pub call_correlator: Option<String>,
    pub join_audio_mute_override: Option<bool>,
}

/// Fields of a participant to add (`participant` picks the GUID) or change. Wire names and values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CmsParticipantFields {
    /// Add only: the participant's GUID (default: a new v4 UUID).
    pub participant: Option<String>,
    pub name: Option<String>,
    pub uri: Option<String>,
    pub state: Option<String>,
    pub direction: Option<String>,
    pub audio_muted: Option<bool>,
    pub video_muted: Option<bool>,
    /// Absent: unchanged; `null`: unset; a number: set.
    #[serde(
        deserialize_with = "some_nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub importance: Option<Option<i64>>,
    pub layout: Option<String>,
    pub active_speaker: Option<bool>,
    pub presenter: Option<bool>,
    pub endpoint_recording: Option<String>,
    pub can_move: Option<bool>,
    pub can_move_to_lobby: Option<bool>,
}

/// `Some(None)` for an explicit null, so "absent" and "null" differ.
fn some_nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// The layouts seed 001 lists for `callRoster.layout`.
pub const LAYOUTS: [&str; 13] = [
    "allEqual",
    "speakerOnly",
    "telepresence",
    "stacked",
    "allEqualQuarters",
    "allEqualNinths",
    "allEqualSixteenths",
    "allEqualTwentyFifths",
    "onePlusFive",
    "onePlusSeven",
    "onePlusNine",
    "automatic",
    "onePlusN",
];

/// Elements a `calls` subscription may ask for, in table order.
pub const CALLS_ELEMENTS: [&str; 9] = [
    "name",
    "participants",
    "distributedInstances",
    "recording",
    "endpointRecording",
    "streaming",
    "lockState",
    "callType",
    "callCorrelator",
];

/// Elements a `callInfo` subscription may ask for, in table order.
pub const CALL_INFO_ELEMENTS: [&str; 10] = [
    "name",
    "participants",
    "distributedInstances",
    "recording",
    "endpointRecording",
    "streaming",
    "lockState",
    "callType",
    "callCorrelator",
    "joinAudioMuteOverride",
];

/// Elements a `callRoster` subscription may ask for, in table order.
pub const ROSTER_ELEMENTS: [&str; 15] = [
    "name",
    "uri",
    "state",
    "direction",
    "audioMuted",
    "videoMuted",
    "importance",
    "layout",
    "activeSpeaker",
    "presenter",
    "endpointRecording",
    "canMove",
    "canMoveToLobby",
    "movedParticipant",
    "movedParticipantCallBridge",
];

/// Which resource a call's elements are rendered for: `lockState` differs (`notLocked` vs
/// `unlocked`) and only `callInfo` has `joinAudioMuteOverride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallView {
    Calls,
    CallInfo,
}

impl CmsCall {
    /// One element's value as the given resource reports it; None for an element it does not have.
    pub(crate) fn element(&self, view: CallView, name: &str) -> Option<Value> {
        Some(match name {
            "name" => json!(self.name),
            "participants" => json!(self.participants),
            "distributedInstances" => json!(self.distributed_instances),
            "recording" => json!(self.recording),
            "endpointRecording" => json!(self.endpoint_recording),
            "streaming" => json!(self.streaming),
            "lockState" => match (view, self.lock_state.as_str()) {
                (CallView::Calls, "unlocked") => json!("notLocked"),
                (_, s) => json!(s),
            },
            "callType" => json!(self.call_type),
            "callCorrelator" => json!(self.call_correlator),
            "joinAudioMuteOverride" if view == CallView::CallInfo => {
                json!(self.join_audio_mute_override)
            }
            _ => return None,
        })
    }
}

impl CmsParticipant {
    /// One element's value; None for an unknown element and for the move elements of a participant
    /// that was not created by a move (they are left out rather than sent as null).
    pub(crate) fn element(&self, name: &str) -> Option<Value> {
        Some(match name {
            "name" => json!(self.name),
            "uri" => json!(self.uri),
            "state" => json!(self.state),
            "direction" => json!(self.direction),
            "audioMuted" => json!(self.audio_muted),
            "videoMuted" => json!(self.video_muted),
            "importance" => json!(self.importance),
            "layout" => json!(self.layout),
            "activeSpeaker" => json!(self.active_speaker),
            "presenter" => json!(self.presenter),
            "endpointRecording" => json!(self.endpoint_recording),
            "canMove" => json!(self.can_move),
            "canMoveToLobby" => json!(self.can_move_to_lobby),
            "movedParticipant" => json!(self.moved_participant.as_ref()?),
            "movedParticipantCallBridge" => json!(self.moved_participant_call_bridge.as_ref()?),
            _ => return None,
        })
    }
}

/// What one mutation did, in the order it happened, each with the state just before and just
/// after that step (a move is four steps: the count drops, then rises again).
#[derive(Debug, Clone)]
pub(crate) enum Change {
    CallAdded {
        call: Box<CmsCall>,
    },
    CallChanged {
        before: Box<CmsCall>,
        after: Box<CmsCall>,
    },
    CallEnded {
        call: String,
    },
    ParticipantAdded {
        call: String,
        participant: Box<CmsParticipant>,
    },
    ParticipantChanged {
        call: String,
        before: Box<CmsParticipant>,
        after: Box<CmsParticipant>,
    },
    ParticipantRemoved {
        call: String,
        participant: String,
    },
}

fn one_of(what: &str, value: &str, allowed: &[&str]) -> Result<(), CmsError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(CmsError::BadRequest(format!(
            "{what} {value:?} is not one of {}",
            allowed.join(", ")
        )))
    }
}

fn guid_or_new(given: Option<&String>, what: &str) -> Result<String, CmsError> {
    match given {
        Some(g) if g.trim().is_empty() => {
            Err(CmsError::BadRequest(format!("{what} must not be empty")))
        }
        Some(g) => Ok(g.clone()),
        None => Ok(uuid::Uuid::new_v4().to_string()),
    }
}

const ACTIVE: [&str; 2] = ["active", "inactive"];

impl CmsCallFields {
    fn check(&self) -> Result<(), CmsError> {
        for (what, v) in [
            ("recording", &self.recording),
            ("endpointRecording", &self.endpoint_recording),
            ("streaming", &self.streaming),
        ] {
            if let Some(v) = v {
                one_of(what, v, &ACTIVE)?;
            }
        }
        if let Some(v) = &self.lock_state {
            one_of("lockState", v, &["locked", "unlocked", "notLocked"])?;
        }
        if let Some(v) = &self.call_type {
            one_of(
                "callType",
                v,
                &["coSpace", "adHoc", "lyncConferencing", "forwarding"],
            )?;
        }
        Ok(())
    }

    fn apply(&self, c: &mut CmsCall) {
        if let Some(v) = &self.name {
            c.name.clone_from(v);
        }
        if let Some(v) = self.distributed_instances {
            c.distributed_instances = v;
        }
        if let Some(v) = &self.recording {
            c.recording.clone_from(v);
        }
        if let Some(v) = &self.endpoint_recording {
            c.endpoint_recording.clone_from(v);
        }
        if let Some(v) = &self.streaming {
            c.streaming.clone_from(v);
        }
        if let Some(v) = &self.lock_state {
            c.lock_state = if v == "locked" { "locked" } else { "unlocked" }.to_owned();
        }
        if let Some(v) = &self.call_type {
            c.call_type.clone_from(v);
        }
        if let Some(v) = &self.call_correlator {
            c.call_correlator.clone_from(v);
        }
        if let Some(v) = self.join_audio_mute_override {
            c.join_audio_mute_override = v;
        }
    }
}

impl CmsParticipantFields {
    fn check(&self) -> Result<(), CmsError> {
        if let Some(v) = &self.state {
            one_of("state", v, &["initial", "ringing", "connected", "onHold"])?;
        }
        if let Some(v) = &self.direction {
            one_of("direction", v, &["incoming", "outgoing"])?;
        }
        if let Some(v) = &self.layout {
            one_of("layout", v, &LAYOUTS)?;
        }
        if let Some(v) = &self.endpoint_recording {
            one_of("endpointRecording", v, &ACTIVE)?;
        }
        Ok(())
    }

    fn apply(&self, p: &mut CmsParticipant) {
        if let Some(v) = &self.name {
            p.name.clone_from(v);
        }
        if let Some(v) = &self.uri {
            p.uri.clone_from(v);
        }
        if let Some(v) = &self.state {
            p.state.clone_from(v);
        }
        if let Some(v) = &self.direction {
            p.direction.clone_from(v);
        }
        if let Some(v) = self.audio_muted {
            p.audio_muted = v;
        }
        if let Some(v) = self.video_muted {
            p.video_muted = v;
        }
        if let Some(v) = self.importance {
            p.importance = v;
        }
        if let Some(v) = &self.layout {
            p.layout.clone_from(v);
        }
        if let Some(v) = self.active_speaker {
            p.active_speaker = v;
        }
        if let Some(v) = self.presenter {
            p.presenter = v;
        }
        if let Some(v) = &self.endpoint_recording {
            p.endpoint_recording.clone_from(v);
        }
        if let Some(v) = self.can_move {
            p.can_move = v;
        }
        if let Some(v) = self.can_move_to_lobby {
            p.can_move_to_lobby = v;
        }
    }
}

/// The active calls, in start order.
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub calls: Vec<CmsCall>,
}

impl Model {
    pub(crate) fn call(&self, id: &str) -> Option<&CmsCall> {
        self.calls.iter().find(|c| c.call == id)
    }

    fn call_mut(&mut self, id: &str) -> Result<&mut CmsCall, CmsError> {
        self.calls
            .iter_mut()
            .find(|c| c.call == id)
            .ok_or_else(|| CmsError::NotFound(format!("no active call {id}")))
    }

    fn participant_exists(&self, id: &str) -> bool {
        self.calls
            .iter()
            .any(|c| c.roster.iter().any(|p| p.participant == id))
    }

    /// Starts a call: name default `Call`, coSpace, unlocked, nothing recorded or streamed.
    pub(crate) fn create_call(
        &mut self,
        fields: &CmsCallFields,
    ) -> Result<(CmsCall, Vec<Change>), CmsError> {
        fields.check()?;
        let id = guid_or_new(fields.call.as_ref(), "call")?;
        if self.call(&id).is_some() {
            return Err(CmsError::Conflict(format!("call {id} is already active")));
        }
        let mut call = CmsCall {
            call: id.clone(),
            name: "Call".to_owned(),
            participants: 0,
            distributed_instances: 0,
            recording: "inactive".to_owned(),
            endpoint_recording: "inactive".to_owned(),
            streaming: "inactive".to_owned(),
            lock_state: "unlocked".to_owned(),
            call_type: "coSpace".to_owned(),
            call_correlator: uuid::Uuid::new_v4().to_string(),
            join_audio_mute_override: false,
            roster: Vec::new(),
        };
        fields.apply(&mut call);
        self.calls.push(call.clone());
        let change = Change::CallAdded {
            call: Box::new(call.clone()),
        };
        Ok((call, vec![change]))
    }

    pub(crate) fn update_call(
        &mut self,
        id: &str,
        fields: &CmsCallFields,
    ) -> Result<(CmsCall, Vec<Change>), CmsError> {
        fields.check()?;
        if fields.call.as_deref().is_some_and(|c| c != id) {
            return Err(CmsError::BadRequest("a call's id cannot change".to_owned()));
        }
        let call = self.call_mut(id)?;
        let before = Box::new(call.clone());
        fields.apply(call);
        let after = Box::new(call.clone());
        Ok((call.clone(), vec![Change::CallChanged { before, after }]))
    }

    /// Ends a call; its participants go with it (no roster removes: the roster subscriptions are
    /// deactivated instead).
    pub(crate) fn end_call(&mut self, id: &str) -> Result<Vec<Change>, CmsError> {
        let pos = self
            .calls
            .iter()
            .position(|c| c.call == id)
            .ok_or_else(|| CmsError::NotFound(format!("no active call {id}")))?;
        self.calls.remove(pos);
        Ok(vec![Change::CallEnded {
            call: id.to_owned(),
        }])
    }

    /// Adds a participant (default: connected, incoming, unmuted, layout `automatic`, `canMove`
    /// true); the call's participant count follows.
    pub(crate) fn add_participant(
        &mut self,
        call_id: &str,
        fields: &CmsParticipantFields,
        moved_from: Option<(String, String)>,
    ) -> Result<(CmsParticipant, Vec<Change>), CmsError> {
        fields.check()?;
        let id = guid_or_new(fields.participant.as_ref(), "participant")?;
        if self.participant_exists(&id) {
            return Err(CmsError::Conflict(format!(
                "participant {id} is already in a call"
            )));
        }
        let call = self.call_mut(call_id)?;
        let before = Box::new(call.clone());
        let name = fields
            .name
            .clone()
            .unwrap_or_else(|| format!("Participant {}", call.roster.len() + 1));
        let uri = name
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_lowercase();
        let (moved_participant, moved_participant_call_bridge) = match moved_from {
            Some((p, b)) => (Some(p), Some(b)),
            None => (None, None),
        };
        let mut p = CmsParticipant {
            participant: id.clone(),
            name,
            uri,
            state: "connected".to_owned(),
            direction: "incoming".to_owned(),
            audio_muted: call.join_audio_mute_override,
            video_muted: false,
            importance: None,
            layout: "automatic".to_owned(),
            active_speaker: false,
            presenter: false,
            endpoint_recording: "inactive".to_owned(),
            can_move: true,
            can_move_to_lobby: false,
            moved_participant,
            moved_participant_call_bridge,
        };
        fields.apply(&mut p);
        call.roster.push(p.clone());
        call.participants = call.roster.len();
        let after = Box::new(call.clone());
        Ok((
            p.clone(),
            vec![
                Change::ParticipantAdded {
                    call: call_id.to_owned(),
                    participant: Box::new(p),
                },
                Change::CallChanged { before, after },
            ],
        ))
    }

    pub(crate) fn update_participant(
        &mut self,
        call_id: &str,
        id: &str,
        fields: &CmsParticipantFields,
    ) -> Result<(CmsParticipant, Vec<Change>), CmsError> {
        fields.check()?;
        if fields.participant.as_deref().is_some_and(|p| p != id) {
            return Err(CmsError::BadRequest(
                "a participant's id cannot change".to_owned(),
            ));
        }
        let call = self.call_mut(call_id)?;
        let p = call
            .roster
            .iter_mut()
            .find(|p| p.participant == id)
            .ok_or_else(|| CmsError::NotFound(format!("no participant {id} in call {call_id}")))?;
        let before = Box::new(p.clone());
        fields.apply(p);
        let after = Box::new(p.clone());
        Ok((
            p.clone(),
            vec![Change::ParticipantChanged {
                call: call_id.to_owned(),
                before,
                after,
            }],
        ))
    }

    pub(crate) fn remove_participant(
        &mut self,
        call_id: &str,
        id: &str,
    ) -> Result<(CmsParticipant, Vec<Change>), CmsError> {
        let call = self.call_mut(call_id)?;
        let before = Box::new(call.clone());
        let pos = call
            .roster
            .iter()
            .position(|p| p.participant == id)
            .ok_or_else(|| CmsError::NotFound(format!("no participant {id} in call {call_id}")))?;
        let p = call.roster.remove(pos);
        call.participants = call.roster.len();
        let after = Box::new(call.clone());
        Ok((
            p,
            vec![
                Change::ParticipantRemoved {
                    call: call_id.to_owned(),
                    participant: id.to_owned(),
                },
                Change::CallChanged { before, after },
            ],
        ))
    }

    /// A participant move (seed 002): the old participant leaves `call_id`, a new one (new GUID) with
    /// the same name, uri and direction joins `to_call` with `movedParticipant` = the old GUID and
    /// `movedParticipantCallBridge` = `bridge`.
    pub(crate) fn move_participant(
        &mut self,
        call_id: &str,
        id: &str,
        to_call: &str,
        new_id: Option<String>,
        bridge: &str,
    ) -> Result<(CmsParticipant, Vec<Change>), CmsError> {
        if self.call(to_call).is_none() {
            return Err(CmsError::NotFound(format!("no active call {to_call}")));
        }
        let old = self
            .call(call_id)
            .ok_or_else(|| CmsError::NotFound(format!("no active call {call_id}")))?
            .roster
            .iter()
            .find(|p| p.participant == id)
            .cloned()
            .ok_or_else(|| CmsError::NotFound(format!("no participant {id} in call {call_id}")))?;
        if !old.can_move {
            return Err(CmsError::Conflict(format!(
                "participant {id} has canMove false"
            )));
        }
        if new_id
            .as_deref()
            .is_some_and(|n| n == id || self.participant_exists(n))
        {
            return Err(CmsError::Conflict(
                "the new participant id is in use".to_owned(),
            ));
        }
        let (_, mut changes) = self.remove_participant(call_id, id)?;
        let fields = CmsParticipantFields {
            participant: new_id,
            name: Some(old.name.clone()),
            uri: Some(old.uri.clone()),
            direction: Some(old.direction.clone()),
            layout: Some(old.layout.clone()),
            ..CmsParticipantFields::default()
        };
        let (p, more) =
            self.add_participant(to_call, &fields, Some((id.to_owned(), bridge.to_owned())))?;
        changes.extend(more);
        Ok((p, changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_elements_per_view() {
        let mut m = Model::default();
        let (c, changes) = m
            .create_call(&CmsCallFields {
                name: Some("Andy's coSpace".into()),
                ..CmsCallFields::default()
            })
            .expect("call");
        assert!(matches!(&changes[..], [Change::CallAdded { call }] if call.call == c.call));
        assert_eq!(
            c.element(CallView::Calls, "lockState"),
            Some(json!("notLocked"))
        );
        assert_eq!(
            c.element(CallView::CallInfo, "lockState"),
            Some(json!("unlocked"))
        );
        assert_eq!(c.element(CallView::Calls, "joinAudioMuteOverride"), None);
        assert_eq!(
            c.element(CallView::CallInfo, "joinAudioMuteOverride"),
            Some(json!(false))
        );
        assert_eq!(c.element(CallView::Calls, "participants"), Some(json!(0)));
        assert!(
            m.create_call(&CmsCallFields {
                call: Some(c.call.clone()),
                ..CmsCallFields::default()
            })
            .is_err()
        );
        assert!(
            m.update_call(
                &c.call,
                &CmsCallFields {
                    recording: Some("on".into()),
                    ..CmsCallFields::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn participants_count_and_move() {
        let mut m = Model::default();
        let (c, _) = m.create_call(&CmsCallFields::default()).expect("call");
        let (p, changes) = m
            .add_participant(&c.call, &CmsParticipantFields::default(), None)
            .expect("participant");
        assert_eq!(changes.len(), 2);
        assert_eq!(m.call(&c.call).map(|c| c.participants), Some(1));
        assert_eq!(p.element("movedParticipant"), None);
        assert_eq!(p.element("importance"), Some(Value::Null));
        let (moved, changes) = m
            .move_participant(&c.call, &p.participant, &c.call, None, "bridge-1")
            .expect("move");
        assert!(matches!(
            &changes[..],
            [
                Change::ParticipantRemoved { .. },
                Change::CallChanged { .. },
                Change::ParticipantAdded { .. },
                Change::CallChanged { .. }
            ]
        ));
        assert_eq!(
            moved.moved_participant.as_deref(),
            Some(p.participant.as_str())
        );
        assert_eq!(
            moved.element("movedParticipantCallBridge"),
            Some(json!("bridge-1"))
        );
        assert_eq!(m.call(&c.call).map(|c| c.participants), Some(1));
        let fields: CmsParticipantFields =
            serde_json::from_value(json!({"importance": null})).expect("fields");
        assert_eq!(fields.importance, Some(None));
        let fields: CmsParticipantFields = serde_json::from_value(json!({})).expect("fields");
        assert_eq!(fields.importance, None);
    }
}
