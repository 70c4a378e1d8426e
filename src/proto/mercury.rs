//! Frames of the "mercury" event websocket (wire profile §3): what the server sends, parsed
//! leniently, and the few frames the client sends. Sans-IO: the connection code in
//! `cloud::mercury` owns the socket.

use serde_json::{Map, Value, json};

use crate::secret::Secret;

/// Text frames larger than this are dropped (logged with their trackingId), never parsed.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// One frame from the server, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// Anything with `data.eventType`.
    Event(Envelope),
    Pong {
        id: Option<String>,
    },
    /// The server is going away: open a new socket first (make-before-break).
    Shutdown {
        id: Option<String>,
    },
    /// Valid JSON that is neither; acked when it has an id, otherwise ignored.
    Other {
        id: Option<String>,
        kind: Option<String>,
    },
}

impl Inbound {
    /// The id the client must ack, if any (pongs are answers, not messages).
    pub fn ack_id(&self) -> Option<&str> {
        match self {
            Inbound::Event(e) => e.id.as_deref(),
            Inbound::Shutdown { id } | Inbound::Other { id, .. } => id.as_deref(),
            Inbound::Pong { .. } => None,
        }
    }
}

/// An event: `{"id","data":{"eventType",...},"timestamp","trackingId","sequenceNumber"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: Option<String>,
    pub event_type: String,
    /// The whole `data` object, `eventType` included.
    pub data: Value,
    pub timestamp: Option<u64>,
    pub tracking_id: Option<String>,
    pub sequence_number: Option<u64>,
}

impl Envelope {
    /// True for the events that mark the socket online (wire profile §3).
    pub fn marks_online(&self) -> bool {
        matches!(
            self.event_type.as_str(),
            "mercury.buffer_state" | "mercury.registration_status"
        )
    }
}

/// Why a frame was dropped. Each carries the trackingId when one could be found, so the
/// log line can be matched with the server's.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum FrameError {
    /// frame of {len} bytes exceeds the {limit}-byte limit
    TooLarge {
        len: usize,
        limit: usize,
        tracking_id: Option<String>,
    },
    /// frame is not valid JSON: {reason}
    Malformed {
        reason: String,
        tracking_id: Option<String>,
    },
    /// frame is JSON but not an object
    NotAnObject,
    /// event frame has a malformed field: {reason}
    BadField {
        reason: String,
        tracking_id: Option<String>,
    },
}

impl FrameError {
    pub fn tracking_id(&self) -> Option<&str> {
        match self {
            FrameError::TooLarge { tracking_id, .. }
            | FrameError::Malformed { tracking_id, .. }
            | FrameError::BadField { tracking_id, .. } => tracking_id.as_deref(),
            FrameError::NotAnObject => None,
        }
    }
}

/// Classifies one text frame.
pub fn parse(text: &str) -> Result<Inbound, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len: text.len(),
            limit: MAX_FRAME_BYTES,
            tracking_id: find_tracking_id(text),
        });
    }
    let value: Value = serde_json::from_str(text).map_err(|e| FrameError::Malformed {
        reason: e.to_string(),
        tracking_id: find_tracking_id(text),
    })?;
    let Value::Object(mut frame) = value else {
        return Err(FrameError::NotAnObject);
    };
    let tracking_id = frame
        .get("trackingId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let id = id_of(&frame);
    let kind = frame.get("type").and_then(Value::as_str).map(str::to_owned);
    match kind.as_deref() {
        Some("pong") => return Ok(Inbound::Pong { id }),
        Some("shutdown") => return Ok(Inbound::Shutdown { id }),
        _ => {}
    }
    let event_type = frame
        .get("data")
        .and_then(|d| d.get("eventType"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(event_type) = event_type else {
        return Ok(Inbound::Other { id, kind });
    };
    let bad = |field: &str, tracking_id: &Option<String>| FrameError::BadField {
        reason: format!("`{field}` is not a non-negative integer"),
        tracking_id: tracking_id.clone(),
    };
    let sequence_number = match frame.get("sequenceNumber") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| bad("sequenceNumber", &tracking_id))?,
        ),
    };
    let timestamp = match frame.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| bad("timestamp", &tracking_id))?),
    };
    let data = frame.remove("data").unwrap_or(Value::Null);
    Ok(Inbound::Event(Envelope {
        id,
        event_type,
        data,
        timestamp,
        tracking_id,
        sequence_number,
    }))
}

/// Ids are strings on the wire; a number is accepted and kept as its decimal text.
fn id_of(frame: &Map<String, Value>) -> Option<String> {
    match frame.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Finds `"trackingId": "<value>"` in text that may be too large or malformed to parse.
pub fn find_tracking_id(text: &str) -> Option<String> {
    const KEY: &str = "\"trackingId\"";
    let mut rest = text;
    while let Some(at) = rest.find(KEY) {
        rest = &rest[at + KEY.len()..];
        let after_colon = rest.trim_start().strip_prefix(':')?.trim_start();
        let Some(body) = after_colon.strip_prefix('"') else {
            continue;
        };
        let end = body.find('"')?;
        let value = &body[..end];
        // Kept short and printable: it goes into a log line.
        if !value.is_empty() && value.len() <= 256 && value.chars().all(|c| c.is_ascii_graphic()) {
            return Some(value.to_owned());
        }
        return None;
    }
    None
}

/// The first client frame. It holds the access token, so it stays a [`Secret`].
pub fn authorization(id: &str, access_token: &Secret<String>, tracking_id: &str) -> Secret<String> {
    Secret::new(
        json!({
            "id": id,
            "type": "authorization",
            "data": { "token": format!("Bearer {}", access_token.expose()) },
            "trackingId": tracking_id,
        })
        .to_string(),
    )
}

pub fn ack(id: &str) -> String {
    json!({ "messageId": id, "type": "ack" }).to_string()
}

pub fn ping(id: &str) -> String {
    json!({ "id": id, "type": "ping" }).to_string()
}

/// The query parameters the profile adds to `webSocketUrl`.
pub fn connect_url(web_socket_url: &str, client_timestamp_ms: u64) -> String {
    let separator = if web_socket_url.contains('?') {
        '&'
    } else {
        '?'
    };
    format!(
        "{web_socket_url}{separator}outboundWireFormat=text&bufferStates=true&aliasHttpStatus=true&clientTimestamp={client_timestamp_ms}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pongs_and_shutdown_are_told_apart() {
        let event = parse(
            r#"{"id":"e1","data":{"eventType":"device.control","action":"mute"},"timestamp":5,"trackingId":"t-1","sequenceNumber":7,"extra":1}"#,
        )
        .unwrap();
        let Inbound::Event(envelope) = &event else {
            panic!("{event:?}")
        };
        assert_eq!(envelope.event_type, "device.control");
        assert_eq!(envelope.sequence_number, Some(7));
        assert_eq!(envelope.tracking_id.as_deref(), Some("t-1"));
        assert_eq!(envelope.data["action"], "mute");
        assert_eq!(event.ack_id(), Some("e1"));
        assert_eq!(
            parse(r#"{"type":"pong","id":"p"}"#).unwrap(),
            Inbound::Pong {
                id: Some("p".into())
            }
        );
        assert_eq!(
            parse(r#"{"type":"shutdown","id":"s"}"#).unwrap().ack_id(),
            Some("s")
        );
        assert!(matches!(
            parse(r#"{"id":3}"#).unwrap(),
            Inbound::Other { id: Some(ref i), .. } if i == "3"
        ));
    }

    #[test]
    fn bad_frames_name_the_problem_and_keep_the_tracking_id() {
        let err = parse(r#"{"trackingId": "abc_1", "data": {"#).unwrap_err();
        assert!(matches!(err, FrameError::Malformed { .. }), "{err}");
        assert_eq!(err.tracking_id(), Some("abc_1"));
        assert_eq!(parse("[1,2]").unwrap_err(), FrameError::NotAnObject);
        let err = parse(r#"{"data":{"eventType":"x"},"sequenceNumber":-1,"trackingId":"t"}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "event frame has a malformed field: `sequenceNumber` is not a non-negative integer"
        );
        let big = format!(
            r#"{{"trackingId":"big_1","data":{{"eventType":"x","pad":"{}"}}}}"#,
            "a".repeat(MAX_FRAME_BYTES)
        );
        let err = parse(&big).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
        assert_eq!(err.tracking_id(), Some("big_1"));
    }

    #[test]
    fn sdk_envelopes_parse() {
        // Shapes from the Webex JS SDK's mercury tests (shared/conformance), inline here.
        let buffer = r#"{"id":"00000000-0000-4000-8000-000000000006","data":{"eventType":"mercury.buffer_state"}}"#;
        let Inbound::Event(e) = parse(buffer).unwrap() else {
            panic!()
        };
        assert!(e.marks_online());
        let pong = r#"{"sequenceNumber":5,"id":"mockid1","type":"pong"}"#;
        assert!(matches!(parse(pong).unwrap(), Inbound::Pong { .. }));
    }

    #[test]
    fn client_frames() {
        let token = Secret::new("tok".to_string());
        let auth: Value = serde_json::from_str(authorization("a", &token, "T").expose()).unwrap();
        assert_eq!(auth["type"], "authorization");
        assert_eq!(auth["data"]["token"], "Bearer tok");
        assert_eq!(ack("x"), r#"{"messageId":"x","type":"ack"}"#);
        assert_eq!(ping("y"), r#"{"id":"y","type":"ping"}"#);
        assert_eq!(
            connect_url("wss://h/m", 12),
            "wss://h/m?outboundWireFormat=text&bufferStates=true&aliasHttpStatus=true&clientTimestamp=12"
        );
    }

    #[test]
    fn tracking_id_scan_skips_non_strings() {
        assert_eq!(
            find_tracking_id(r#"{"trackingId":5,"x":{"trackingId":"ok"}}"#),
            Some("ok".into())
        );
        assert_eq!(find_tracking_id("no id"), None);
    }
}
