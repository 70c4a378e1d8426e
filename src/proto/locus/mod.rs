//! Locus DTOs (wire profile §5, choices in `docs/wire-profile-choices.md` "§5 Locus call
//! control"): the locus document, full or delta, the answers of the call-control requests and
//! the `locus.*` mercury events.
//!
//! Every field is optional or defaulted (a delta carries only what changed, a removed
//! participant only its `url`), `null` reads as absent, and unknown fields are ignored. The
//! types serialize back to the same camelCase shape, leaving out what is absent.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub mod sequence;

pub use sequence::Sequence;

/// A locus DTO or event that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum LocusDtoError {
    /// {what} is not valid JSON of the expected shape: {reason}
    Json { what: &'static str, reason: String },
    /// {what} is not a JSON object
    NotAnObject { what: &'static str },
    /// locus event has no eventType
    MissingEventType,
    /// locus event {event_type} carries a locus that cannot be read: {reason}
    BadLocus { event_type: String, reason: String },
}

/// `null` reads as the default, like an absent field (the cloud sends both).
pub(crate) fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Enums that are SCREAMING_CASE strings on the wire, keeping values roomd does not know.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
            /// A value this version does not know, as sent (empty when absent).
            Other(String),
        }

        impl $name {
            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)+
                    $name::Other(s) => s,
                }
            }

            /// Absent from the DTO (a delta or a removed participant).
            pub fn is_absent(&self) -> bool {
                matches!(self, $name::Other(s) if s.is_empty())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::Other(String::new())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($wire => $name::$variant,)+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s: Option<std::borrow::Cow<'de, str>> = Option::deserialize(deserializer)?;
                Ok(s.map(|s| $name::from(s.as_ref())).unwrap_or_default())
            }
        }
    };
}

wire_enum!(
    /// `fullState.state`.
    LocusState {
        Initializing = "INITIALIZING",
        Active = "ACTIVE",
        Inactive = "INACTIVE",
        Terminating = "TERMINATING",
        Ended = "ENDED",
    }
);

wire_enum!(
    /// `fullState.type`.
    LocusType {
        Meeting = "MEETING",
        Call = "CALL",
        SipBridge = "SIP_BRIDGE",
    }
);

wire_enum!(
    /// A participant's `state` (seed 000).
    ParticipantState {
        Idle = "IDLE",
        Notified = "NOTIFIED",
        Declined = "DECLINED",
        Joined = "JOINED",
        Left = "LEFT",
    }
);

/// A locus document: full (no `baseSequence`) or a delta (only what changed since
/// `baseSequence`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LocusDto {
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_state: Option<FullState>,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub participants: Vec<Participant>,
    #[serde(rename = "self", skip_serializing_if = "Option::is_none")]
    pub self_: Option<Participant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Person>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<LocusInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controls: Option<Value>,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub media_shares: Vec<Value>,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub replaces: Vec<Replaces>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Sequence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_sequence: Option<Sequence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_url: Option<String>,
}

impl LocusDto {
    /// The name to show: `info.webExMeetingName`, else `info.topic` (empty ones skipped).
    pub fn display_name(&self) -> Option<&str> {
        let info = self.info.as_ref()?;
        [&info.web_ex_meeting_name, &info.topic]
            .into_iter()
            .filter_map(|s| s.as_deref())
            .find(|s| !s.is_empty())
    }

    /// `fullState.state` is `ENDED`, `TERMINATING` or `INACTIVE`.
    pub fn is_ended(&self) -> bool {
        matches!(
            self.full_state.as_ref().map(|f| &f.state),
            Some(LocusState::Ended | LocusState::Terminating | LocusState::Inactive)
        )
    }

    /// A delta: it has a `baseSequence`.
    pub fn is_delta(&self) -> bool {
        self.base_sequence.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FullState {
    #[serde(skip_serializing_if = "LocusState::is_absent")]
    pub state: LocusState,
    #[serde(rename = "type", skip_serializing_if = "LocusType::is_absent")]
    pub kind: LocusType,
}

/// A participant, `self` included. In a delta a removed one is `{"url":…,"removed":true}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Participant {
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub url: String,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub id: String,
    #[serde(skip_serializing_if = "ParticipantState::is_absent")]
    pub state: ParticipantState,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub devices: Vec<ParticipantDevice>,
    /// `MOVED` on self for a move; `BUSY` and others on declines and leaves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controls: Option<ParticipantControls>,
    /// `{audioStatus, videoStatus, csis[]}`, kept as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_false")]
    pub removed: bool,
}

/// A participant's `person`, and the locus `host`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Person {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParticipantDevice {
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParticipantControls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Hold {
    #[serde(deserialize_with = "null_default")]
    pub held: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LocusInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_ex_meeting_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_uri: Option<String>,
}

/// `replaces[]` of a move's destination: the locus it replaces.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Replaces {
    #[serde(deserialize_with = "null_default")]
    pub locus_url: String,
}

/// The answer of every join (call, meeting, accept).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JoinAnswer {
    #[serde(deserialize_with = "null_default")]
    pub locus: LocusDto,
    #[serde(deserialize_with = "null_default")]
    pub media_connections: Vec<MediaConnection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MediaConnection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_sdp: Option<String>,
}

/// The answer of leave, decline, alert and controls.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LocusAnswer {
    #[serde(deserialize_with = "null_default")]
    pub locus: LocusDto,
}

/// `GET {locus}/loci/meetingInfo?address=…`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MeetingInfo {
    #[serde(deserialize_with = "null_default")]
    pub locus_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_name: Option<String>,
}

/// A `locus.*` event: mercury's `data`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LocusEvent {
    #[serde(deserialize_with = "null_default")]
    pub event_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locus: Option<LocusDto>,
}

/// Reads a mercury event's `data` (`{"eventType":"locus.…","locus":{…}}`). The event type
/// is not checked beyond being present: unknown `locus.` types are the caller's to ignore.
pub fn parse_event(data: &Value) -> Result<LocusEvent, LocusDtoError> {
    let Some(object) = data.as_object() else {
        return Err(LocusDtoError::NotAnObject {
            what: "locus event",
        });
    };
    let event_type = match object.get("eventType").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => return Err(LocusDtoError::MissingEventType),
    };
    let locus = match object.get("locus") {
        None | Some(Value::Null) => None,
        Some(locus @ Value::Object(_)) => {
            Some(
                LocusDto::deserialize(locus).map_err(|e| LocusDtoError::BadLocus {
                    event_type: event_type.clone(),
                    reason: e.to_string(),
                })?,
            )
        }
        Some(_) => {
            return Err(LocusDtoError::BadLocus {
                event_type,
                reason: "locus is not a JSON object".into(),
            });
        }
    };
    Ok(LocusEvent { event_type, locus })
}

/// Reads a locus DTO (a sync or `GET {locusUrl}` answer, or an event's `locus`).
pub fn parse_dto(bytes: &[u8]) -> Result<LocusDto, LocusDtoError> {
    parse_object("locus DTO", bytes)
}

/// Reads the answer of a join.
pub fn parse_join_answer(bytes: &[u8]) -> Result<JoinAnswer, LocusDtoError> {
    parse_object("join answer", bytes)
}

/// Reads the answer of leave, decline, alert or controls.
pub fn parse_locus_answer(bytes: &[u8]) -> Result<LocusAnswer, LocusDtoError> {
    parse_object("locus answer", bytes)
}

/// Reads a `meetingInfo` answer.
pub fn parse_meeting_info(bytes: &[u8]) -> Result<MeetingInfo, LocusDtoError> {
    parse_object("meetingInfo answer", bytes)
}

/// serde also reads structs from JSON arrays; a locus document is always an object.
fn parse_object<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, LocusDtoError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(LocusDtoError::NotAnObject { what });
    }
    serde_json::from_slice(bytes).map_err(|e| LocusDtoError::Json {
        what,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn a_delta_with_a_removed_participant_parses() {
        let dto = parse_dto(
            br#"{"url":"https://l/loci/1","baseSequence":{"entries":[1]},
                 "sequence":{"entries":[1,2],"rangeStart":0,"rangeEnd":0,"since":"2"},
                 "participants":[{"url":"https://l/loci/1/participant/p2","removed":true}],
                 "somethingNew":{"x":1}}"#,
        )
        .unwrap();
        assert!(dto.is_delta());
        assert_eq!(dto.participants[0].state, ParticipantState::default());
        assert!(dto.participants[0].removed);
        assert_eq!(dto.sequence.unwrap().entries, vec![1, 2]);
    }

    #[test]
    fn unknown_states_are_kept_and_nulls_read_as_absent() {
        let dto = parse_dto(
            br#"{"url":"u","fullState":{"state":"LOBBY","type":"SIP_BRIDGE"},
                 "participants":null,"self":{"url":"s","state":"NOTIFIED","devices":null}}"#,
        )
        .unwrap();
        let full = dto.full_state.as_ref().unwrap();
        assert_eq!(full.state, LocusState::Other("LOBBY".into()));
        assert_eq!(full.kind, LocusType::SipBridge);
        assert_eq!(
            dto.self_.as_ref().unwrap().state,
            ParticipantState::Notified
        );
        assert!(!dto.is_ended());
    }

    #[test]
    fn round_trips_exactly_above_2_pow_53() {
        let text = r#"{"url":"u","sequence":{"entries":[138781603429640000,18446744073709551615],"rangeStart":0,"rangeEnd":0}}"#;
        let dto = parse_dto(text.as_bytes()).unwrap();
        assert_eq!(
            dto.sequence.as_ref().unwrap().entries,
            vec![138_781_603_429_640_000, u64::MAX]
        );
        assert_eq!(serde_json::to_string(&dto).unwrap(), text);
    }

    #[test]
    fn display_name_prefers_the_meeting_name() {
        let mut dto = LocusDto {
            info: Some(LocusInfo {
                topic: Some("Topic".into()),
                web_ex_meeting_name: Some(String::new()),
                sip_uri: None,
            }),
            ..LocusDto::default()
        };
        assert_eq!(dto.display_name(), Some("Topic"));
        dto.info.as_mut().unwrap().web_ex_meeting_name = Some("Room".into());
        assert_eq!(dto.display_name(), Some("Room"));
    }

    #[test]
    fn ended_states() {
        for (state, ended) in [
            ("ENDED", true),
            ("TERMINATING", true),
            ("INACTIVE", true),
            ("ACTIVE", false),
            ("INITIALIZING", false),
        ] {
            let dto: LocusDto =
                serde_json::from_value(json!({"fullState": {"state": state}})).unwrap();
            assert_eq!(dto.is_ended(), ended, "{state}");
        }
    }

    #[test]
    fn events_and_errors_name_what_was_wrong() {
        let event =
            parse_event(&json!({"eventType": "locus.difference", "locus": {"url": "u"}})).unwrap();
        assert_eq!(event.locus.unwrap().url, "u");
        assert_eq!(
            parse_event(&json!({"locus": {}})),
            Err(LocusDtoError::MissingEventType)
        );
        let err = parse_event(&json!({"eventType": "locus.difference", "locus": {"url": 5}}))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("locus event locus.difference carries a locus")
        );
        assert_eq!(
            parse_dto(b"[]"),
            Err(LocusDtoError::NotAnObject { what: "locus DTO" })
        );
        let err = parse_dto(br#"{"sequence":{"entries":[-1]}}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("locus DTO is not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn answers_parse() {
        let join = parse_join_answer(
            br#"{"locus":{"url":"u"},"mediaConnections":[{"mediaId":"m","remoteSdp":"v=0"}]}"#,
        )
        .unwrap();
        assert_eq!(join.media_connections[0].remote_sdp.as_deref(), Some("v=0"));
        let info = parse_meeting_info(br#"{"locusUrl":"l","meetingName":"n"}"#).unwrap();
        assert_eq!(info.locus_url, "l");
        assert_eq!(
            parse_locus_answer(br#"{"locus":{"url":"u"}}"#)
                .unwrap()
                .locus
                .url,
            "u"
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-zA-Z]{0,6}".prop_map(Value::from),
        ];
        let keys = prop_oneof![
            Just("url".to_string()),
            Just("participants".to_string()),
            Just("self".to_string()),
            Just("sequence".to_string()),
            Just("baseSequence".to_string()),
            Just("entries".to_string()),
            Just("rangeStart".to_string()),
            Just("fullState".to_string()),
            Just("state".to_string()),
            Just("removed".to_string()),
            Just("locus".to_string()),
            Just("eventType".to_string()),
            "[a-z]{1,4}",
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(keys.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn parse_dto_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_dto(&bytes);
        }

        #[test]
        fn parse_never_panics_on_json(value in json_value()) {
            let bytes = serde_json::to_vec(&value).unwrap();
            if let Ok(dto) = parse_dto(&bytes) {
                // What parsed serializes and parses back to the same DTO.
                let again = parse_dto(&serde_json::to_vec(&dto).unwrap()).unwrap();
                prop_assert_eq!(again, dto);
            }
            let _ = parse_event(&value);
        }
    }
}
