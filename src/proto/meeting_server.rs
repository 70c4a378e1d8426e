//! Meeting Server events messages (seed 001, wire profile §9): envelopes, subscription
//! requests and the three update kinds. Parsed leniently; unknown fields are ignored.

use serde_json::{Map, Value, json};

/// Most subscriptions one connection may hold (seed 001 §6).
pub const MAX_SUBSCRIPTIONS: usize = 100;
/// Most concurrent event sockets per Meeting Server (seed 001 §6).
pub const MAX_CONNECTIONS: usize = 5;

/// A subscribable event resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Calls,
    CallInfo,
    CallRoster,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Calls => "calls",
            Resource::CallInfo => "callInfo",
            Resource::CallRoster => "callRoster",
        }
    }

    /// The elements roomd asks for (seed 001 §2 tables).
    pub fn elements(self) -> &'static [&'static str] {
        match self {
            Resource::Calls => &[
                "name",
                "participants",
                "distributedInstances",
                "recording",
                "streaming",
                "lockState",
                "callType",
                "callCorrelator",
            ],
            Resource::CallInfo => &[
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
            ],
            Resource::CallRoster => &[
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
            ],
        }
    }
}

/// One entry of a subscribeRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub index: u32,
    pub resource: Resource,
    /// The conference, for callInfo and callRoster.
    pub call: Option<String>,
}

impl Subscription {
    fn to_json(&self) -> Value {
        let mut entry = json!({
            "index": self.index,
            "type": self.resource.as_str(),
            "elements": self.resource.elements(),
        });
        if let Some(call) = &self.call {
            entry["call"] = json!(call);
        }
        entry
    }
}

/// `subscribeRequest` with the complete set (seed 001 §1.1).
pub fn subscribe_request(message_id: u64, subscriptions: &[Subscription]) -> String {
    json!({
        "type": "message",
        "message": {
            "messageId": message_id,
            "type": "subscribeRequest",
            "subscriptions": subscriptions.iter().map(Subscription::to_json).collect::<Vec<_>>(),
        }
    })
    .to_string()
}

/// `messageAck` for one of the server's messages.
pub fn ack(message_id: u64, success: bool) -> String {
    json!({
        "type": "messageAck",
        "messageAck": {
            "messageId": message_id,
            "status": if success { "success" } else { "failure" },
        }
    })
    .to_string()
}

/// What a frame from the server is.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    Message {
        message_id: u64,
        body: ServerMessage,
    },
    Ack {
        message_id: u64,
        success: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    SubscriptionUpdate(Vec<SubscriptionState>),
    CallListUpdate {
        subscription_index: u32,
        updates: Vec<Update>,
    },
    CallInfoUpdate {
        subscription_index: u32,
        call_info: Map<String, Value>,
    },
    RosterUpdate {
        subscription_index: u32,
        updates: Vec<Update>,
    },
    /// A type roomd does not know; acked with `failure`.
    Unknown {
        kind: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    Pending,
    Active,
    Deactivated,
}

impl SubState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubState::Pending => "pending",
            SubState::Active => "active",
            SubState::Deactivated => "deactivated",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    pub index: u32,
    pub state: SubState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateType {
    Add,
    Update,
    Remove,
}

/// One entry of `updates`: the call or participant id, what happened, and the elements sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub id: String,
    pub update_type: UpdateType,
    pub fields: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum MessageError {
    /// Meeting Server frame is not valid JSON: {0}
    Json(String),
    /// Meeting Server frame: {0}
    Shape(String),
}

/// Parses one text frame from the server.
pub fn parse(text: &str) -> Result<ServerFrame, MessageError> {
    let value: Value = serde_json::from_str(text).map_err(|e| MessageError::Json(e.to_string()))?;
    let shape = |what: &str| MessageError::Shape(what.to_string());
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| shape("no `type`"))?;
    match kind {
        "messageAck" => {
            let ack = value
                .get("messageAck")
                .ok_or_else(|| shape("messageAck without `messageAck`"))?;
            Ok(ServerFrame::Ack {
                message_id: message_id(ack)?,
                success: ack.get("status").and_then(Value::as_str) == Some("success"),
            })
        }
        "message" => {
            let message = value
                .get("message")
                .ok_or_else(|| shape("message without `message`"))?;
            let id = message_id(message)?;
            Ok(ServerFrame::Message {
                message_id: id,
                body: parse_message(message)?,
            })
        }
        other => Err(MessageError::Shape(format!(
            "unknown envelope type `{other}`"
        ))),
    }
}

fn message_id(object: &Value) -> Result<u64, MessageError> {
    object
        .get("messageId")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            MessageError::Shape("`messageId` missing or not a non-negative integer".into())
        })
}

fn parse_message(message: &Value) -> Result<ServerMessage, MessageError> {
    let kind = message
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| MessageError::Shape("message without `type`".into()))?;
    let index = || -> Result<u32, MessageError> {
        message
            .get("subscriptionIndex")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| {
                MessageError::Shape(format!("{kind} without a valid `subscriptionIndex`"))
            })
    };
    match kind {
        "subscriptionUpdate" => {
            let list = array(message, "subscriptions", kind)?;
            let mut states = Vec::with_capacity(list.len());
            for entry in list {
                let index = entry
                    .get("index")
                    .and_then(Value::as_u64)
                    .and_then(|i| u32::try_from(i).ok())
                    .ok_or_else(|| {
                        MessageError::Shape("subscription without a valid `index`".into())
                    })?;
                let state = match entry.get("state").and_then(Value::as_str) {
                    Some("pending") => SubState::Pending,
                    Some("active") => SubState::Active,
                    Some("deactivated") => SubState::Deactivated,
                    other => {
                        return Err(MessageError::Shape(format!(
                            "subscription {index} has unknown state {other:?}"
                        )));
                    }
                };
                states.push(SubscriptionState { index, state });
            }
            Ok(ServerMessage::SubscriptionUpdate(states))
        }
        "callListUpdate" => Ok(ServerMessage::CallListUpdate {
            subscription_index: index()?,
            updates: updates(message, "call", kind)?,
        }),
        "rosterUpdate" => Ok(ServerMessage::RosterUpdate {
            subscription_index: index()?,
            updates: updates(message, "participant", kind)?,
        }),
        "callInfoUpdate" => Ok(ServerMessage::CallInfoUpdate {
            subscription_index: index()?,
            call_info: message
                .get("callInfo")
                .and_then(Value::as_object)
                .cloned()
                .ok_or_else(|| {
                    MessageError::Shape("callInfoUpdate without a `callInfo` object".into())
                })?,
        }),
        other => Ok(ServerMessage::Unknown {
            kind: other.to_string(),
        }),
    }
}

fn array<'a>(message: &'a Value, field: &str, kind: &str) -> Result<&'a Vec<Value>, MessageError> {
    message
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| MessageError::Shape(format!("{kind} without a `{field}` array")))
}

fn updates(message: &Value, id_field: &str, kind: &str) -> Result<Vec<Update>, MessageError> {
    let list = array(message, "updates", kind)?;
    let mut out = Vec::with_capacity(list.len());
    for entry in list {
        let Some(object) = entry.as_object() else {
            return Err(MessageError::Shape(format!(
                "{kind} update is not an object"
            )));
        };
        let id = object
            .get(id_field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| MessageError::Shape(format!("{kind} update without `{id_field}`")))?
            .to_string();
        let update_type = match object.get("updateType").and_then(Value::as_str) {
            Some("add") => UpdateType::Add,
            Some("update") => UpdateType::Update,
            Some("remove") => UpdateType::Remove,
            other => {
                return Err(MessageError::Shape(format!(
                    "{kind} update of {id} has unknown updateType {other:?}"
                )));
            }
        };
        let mut fields = object.clone();
        fields.remove(id_field);
        fields.remove("updateType");
        out.push(Update {
            id,
            update_type,
            fields,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_001_examples_parse() {
        // Section 5, steps 2, 3, 7 and 8, verbatim shapes.
        let ack = r#"{"type":"messageAck","messageAck":{"messageId":8,"status":"success"}}"#;
        assert_eq!(
            parse(ack).unwrap(),
            ServerFrame::Ack {
                message_id: 8,
                success: true
            }
        );
        let pending = r#"{"type":"message","message":{"messageId":1,"type":"subscriptionUpdate","subscriptions":[{"index":3,"state":"pending"}]}}"#;
        assert_eq!(
            parse(pending).unwrap(),
            ServerFrame::Message {
                message_id: 1,
                body: ServerMessage::SubscriptionUpdate(vec![SubscriptionState {
                    index: 3,
                    state: SubState::Pending
                }])
            }
        );
        let add = r#"{"type":"message","message":{"messageId":3,"type":"callListUpdate","subscriptionIndex":3,"updates":[{"call":"97c771ae-fc2e-4257-b129-30ee818e034b","updateType":"add","name":"Andy's coSpace","participants":0}]}}"#;
        let ServerFrame::Message {
            body:
                ServerMessage::CallListUpdate {
                    subscription_index,
                    updates,
                },
            ..
        } = parse(add).unwrap()
        else {
            panic!()
        };
        assert_eq!(subscription_index, 3);
        assert_eq!(updates[0].id, "97c771ae-fc2e-4257-b129-30ee818e034b");
        assert_eq!(updates[0].update_type, UpdateType::Add);
        assert_eq!(updates[0].fields["name"], "Andy's coSpace");
        assert!(!updates[0].fields.contains_key("call"));
    }

    #[test]
    fn subscribe_request_matches_the_seed_shape() {
        let text = subscribe_request(
            9,
            &[
                Subscription {
                    index: 1,
                    resource: Resource::CallRoster,
                    call: Some("c".into()),
                },
                Subscription {
                    index: 3,
                    resource: Resource::Calls,
                    call: None,
                },
            ],
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["message"]["messageId"], 9);
        assert_eq!(v["message"]["type"], "subscribeRequest");
        assert_eq!(v["message"]["subscriptions"][0]["type"], "callRoster");
        assert_eq!(v["message"]["subscriptions"][0]["call"], "c");
        assert!(v["message"]["subscriptions"][1].get("call").is_none());
        assert_eq!(
            ack(2, true),
            r#"{"type":"messageAck","messageAck":{"messageId":2,"status":"success"}}"#
        );
    }

    #[test]
    fn bad_frames_are_named() {
        assert!(matches!(parse("{"), Err(MessageError::Json(_))));
        assert_eq!(
            parse(r#"{"type":"message","message":{"type":"x"}}"#)
                .unwrap_err()
                .to_string(),
            "Meeting Server frame: `messageId` missing or not a non-negative integer"
        );
        assert!(
            parse(r#"{"type":"message","message":{"messageId":1,"type":"rosterUpdate","subscriptionIndex":1,"updates":[{"updateType":"add"}]}}"#)
                .unwrap_err()
                .to_string()
                .contains("without `participant`")
        );
        assert!(matches!(
            parse(r#"{"type":"message","message":{"messageId":1,"type":"somethingNew"}}"#).unwrap(),
            ServerFrame::Message {
                body: ServerMessage::Unknown { .. },
                ..
            }
        ));
    }
}
