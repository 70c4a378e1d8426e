//! The mercury wire frames (wire profile §3, `docs/wire-profile-choices.md` §3): the exact text the
//! server sends and how it reads what a client sends. Pure functions, so the bytes are unit-tested.

use anyhow::bail;
use serde_json::{Value, json};

/// `data.eventType` of the event that tells a client it is online.
pub(crate) const BUFFER_STATE: &str = "mercury.buffer_state";

/// `eventType` of the padding event [`oversized`] builds.
pub(crate) const PADDING_EVENT: &str = "roomd-sim.padding";

/// Largest frame [`oversized`] builds (16 MiB): enough to exceed any client limit, bounded so an
/// admin call cannot exhaust memory.
pub(crate) const MAX_OVERSIZED: usize = 16 * 1024 * 1024;

/// A fresh frame id.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A fresh `trackingId` for a server frame: `roomd-sim_<uuid>`.
pub(crate) fn new_tracking_id() -> String {
    format!("roomd-sim_{}", uuid::Uuid::new_v4())
}

fn quoted(s: &str) -> String {
    Value::from(s).to_string()
}

/// An event frame, keys in the order of the choices doc:
/// `{"id":..,"data":{..},"timestamp":<ms>,"trackingId":..,"sequenceNumber":<n>}`.
pub(crate) fn event(
    id: &str,
    data: &Value,
    timestamp_ms: u64,
    tracking_id: &str,
    seq: u64,
) -> String {
    format!(
        r#"{{"id":{},"data":{data},"timestamp":{timestamp_ms},"trackingId":{},"sequenceNumber":{seq}}}"#,
        quoted(id),
        quoted(tracking_id),
    )
}

/// `data` of the event sent right after a good authorization.
pub(crate) fn buffer_state_data() -> Value {
    json!({
        "eventType": BUFFER_STATE,
        "buffer_state": {"conversation": "UNKNOWN", "locus": "UNKNOWN"},
    })
}

/// `{"id":"<uuid>","type":"shutdown"}`: the client should open a new socket, then let this one go.
pub(crate) fn shutdown(id: &str) -> String {
    format!(r#"{{"id":{},"type":"shutdown"}}"#, quoted(id))
}

/// `{"type":"pong","id":<the ping's id>}` (the id is echoed as whatever JSON the ping carried).
pub(crate) fn pong(id: &Value) -> String {
    format!(r#"{{"type":"pong","id":{id}}}"#)
}

/// A valid JSON event frame of exactly `bytes` bytes, padded inside `data.padding`:
/// `{"id":..,"data":{"eventType":"roomd-sim.padding","padding":"xxx…"},"timestamp":..,"trackingId":..}`.
/// It carries no `sequenceNumber`, so a client dropping it sees no gap.
pub(crate) fn oversized(
    bytes: usize,
    id: &str,
    timestamp_ms: u64,
    tracking_id: &str,
) -> anyhow::Result<String> {
    let head = format!(
        r#"{{"id":{},"data":{{"eventType":"{PADDING_EVENT}","padding":""#,
        quoted(id)
    );
    let tail = format!(
        r#""}},"timestamp":{timestamp_ms},"trackingId":{}}}"#,
        quoted(tracking_id)
    );
    let skeleton = head.len() + tail.len();
    if bytes < skeleton {
        bail!("oversized_bytes {bytes} is smaller than the frame skeleton ({skeleton} bytes)");
    }
    if bytes > MAX_OVERSIZED {
        bail!("oversized_bytes {bytes} is larger than {MAX_OVERSIZED}");
    }
    let mut text = String::with_capacity(bytes);
    text.push_str(&head);
    text.extend(std::iter::repeat_n('x', bytes - skeleton));
    text.push_str(&tail);
    Ok(text)
}

/// What a client frame is, as far as the server cares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClientFrame {
    /// `{"type":"authorization","data":{"token":"Bearer …"}}`; `token` is the whole string.
    Authorization { token: String },
    /// `{"messageId":..,"type":"ack"}`; a non-string id is kept as its JSON text.
    Ack { message_id: String },
    /// `{"id":..,"type":"ping"}`.
    Ping { id: Value },
    /// Valid JSON, but none of the above (or missing the field that matters).
    Other,
    /// Not JSON.
    NotJson,
}

pub(crate) fn parse_client(text: &str) -> ClientFrame {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return ClientFrame::NotJson;
    };
    match value.get("type").and_then(Value::as_str) {
        Some("authorization") => match value.pointer("/data/token").and_then(Value::as_str) {
            Some(token) => ClientFrame::Authorization {
                token: token.to_owned(),
            },
            None => ClientFrame::Other,
        },
        Some("ack") => match value.get("messageId") {
            Some(Value::String(s)) => ClientFrame::Ack {
                message_id: s.clone(),
            },
            Some(v) if !v.is_null() => ClientFrame::Ack {
                message_id: v.to_string(),
            },
            _ => ClientFrame::Other,
        },
        Some("ping") => match value.get("id") {
            Some(id) if !id.is_null() => ClientFrame::Ping { id: id.clone() },
            _ => ClientFrame::Other,
        },
        _ => ClientFrame::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_frame_is_exact() {
        let text = event(
            "e1",
            &json!({"eventType": "x.y", "n": 1}),
            1_650_641_890_322,
            "roomd-sim_t",
            7,
        );
        assert_eq!(
            text,
            r#"{"id":"e1","data":{"eventType":"x.y","n":1},"timestamp":1650641890322,"trackingId":"roomd-sim_t","sequenceNumber":7}"#
        );
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["sequenceNumber"], 7);
    }

    #[test]
    fn control_frames_are_exact() {
        assert_eq!(shutdown("s1"), r#"{"id":"s1","type":"shutdown"}"#);
        assert_eq!(pong(&json!("p1")), r#"{"type":"pong","id":"p1"}"#);
        assert_eq!(pong(&json!(5)), r#"{"type":"pong","id":5}"#);
        // Compared as values: key order depends on serde_json's `preserve_order`, which the
        // workspace turns on for the agent.
        assert_eq!(
            serde_json::from_str::<Value>(
                r#"{"eventType":"mercury.buffer_state","buffer_state":{"conversation":"UNKNOWN","locus":"UNKNOWN"}}"#
            )
            .expect("json"),
            buffer_state_data()
        );
        assert!(new_tracking_id().starts_with("roomd-sim_"));
    }

    #[test]
    fn oversized_is_exactly_the_size_and_valid_json() {
        for n in [200, 1024 * 1024 + 1] {
            let text = oversized(n, "o1", 1, "track \"q\"").expect("builds");
            assert_eq!(text.len(), n);
            let v: Value = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(v["data"]["eventType"], PADDING_EVENT);
            assert_eq!(v["trackingId"], "track \"q\"");
            assert!(v.get("sequenceNumber").is_none());
        }
        assert!(oversized(10, "o1", 1, "t").is_err());
        assert!(oversized(MAX_OVERSIZED + 1, "o1", 1, "t").is_err());
    }

    #[test]
    fn client_frames() {
        assert_eq!(
            parse_client(
                r#"{"id":"a","type":"authorization","data":{"token":"Bearer t"},"trackingId":"x"}"#
            ),
            ClientFrame::Authorization {
                token: "Bearer t".into()
            }
        );
        assert_eq!(
            parse_client(r#"{"type":"authorization","data":{}}"#),
            ClientFrame::Other
        );
        assert_eq!(
            parse_client(r#"{"messageId":"m","type":"ack"}"#),
            ClientFrame::Ack {
                message_id: "m".into()
            }
        );
        assert_eq!(
            parse_client(r#"{"messageId":3,"type":"ack"}"#),
            ClientFrame::Ack {
                message_id: "3".into()
            }
        );
        assert_eq!(
            parse_client(r#"{"id":"p","type":"ping"}"#),
            ClientFrame::Ping { id: json!("p") }
        );
        assert_eq!(parse_client(r#"{"type":"ping"}"#), ClientFrame::Other);
        assert_eq!(parse_client("[1,2]"), ClientFrame::Other);
        assert_eq!(parse_client("nope"), ClientFrame::NotJson);
    }
}
