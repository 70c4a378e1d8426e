//! JSON-RPC 2.0 as the local xAPI speaks it (wire profile §8, `docs/xapi.md`): the request
//! parser (every byte a client sends goes through [`parse_request`]), and the reply, error and
//! feedback texts. Sans-IO: the WebSocket session lives in `api::xapi`.

use serde_json::{Map, Value, json};

/// Largest request text handled; the WebSocket layer refuses bigger messages anyway.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
pub const PERMISSION_DENIED: i64 = -31999;
/// The command ran and failed.
pub const COMMAND_ERROR: i64 = 1;

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// As the client sent it (string or number); `None` for a notification, which is never answered.
    pub id: Option<Value>,
    pub method: Method,
    /// Always an object (absent params read as `{}`).
    pub params: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `xCommand/Audio/Volume/Set` → `["Audio", "Volume", "Set"]`.
    Command(Vec<String>),
    Get,
    Set,
    Query,
    Subscribe,
    Unsubscribe,
    Unknown(String),
}

/// A request that cannot be executed, with the id to answer (when one could be read).
#[derive(Debug, Clone, PartialEq, displaydoc::Display)]
/// {message} (JSON-RPC {code})
pub struct RequestError {
    pub id: Option<Value>,
    pub code: i64,
    pub message: String,
}

impl std::error::Error for RequestError {}

fn invalid(id: Option<Value>, message: impl Into<String>) -> RequestError {
    RequestError {
        id,
        code: INVALID_REQUEST,
        message: message.into(),
    }
}

/// Parses one WebSocket text message as a JSON-RPC 2.0 request.
pub fn parse_request(text: &str) -> Result<Request, RequestError> {
    if text.len() > MAX_REQUEST_BYTES {
        return Err(invalid(
            find_id(text),
            format!(
                "request of {} bytes is over the {MAX_REQUEST_BYTES}-byte limit",
                text.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| RequestError {
        id: find_id(text),
        code: PARSE_ERROR,
        message: format!("Parse error: {e}"),
    })?;
    let mut object = match value {
        Value::Object(object) => object,
        Value::Array(_) => return Err(invalid(None, "batch requests are not supported")),
        _ => return Err(invalid(None, "a request must be a JSON object")),
    };
    let id = match object.remove("id") {
        None => None,
        Some(id @ (Value::String(_) | Value::Number(_))) => Some(id),
        Some(other) => {
            return Err(invalid(
                None,
                format!("`id` must be a string or a number, not {other}"),
            ));
        }
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(id, "`jsonrpc` must be \"2.0\""));
    }
    let Some(Value::String(method)) = object.remove("method") else {
        return Err(invalid(id, "`method` must be a string"));
    };
    let params = match object.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => {
            return Err(RequestError {
                id,
                code: INVALID_PARAMS,
                message: "`params` must be an object".into(),
            });
        }
    };
    Ok(Request {
        id,
        method: parse_method(&method),
        params,
    })
}

fn parse_method(method: &str) -> Method {
    let (head, rest) = method.split_once('/').unwrap_or((method, ""));
    match (head.to_ascii_lowercase().as_str(), rest) {
        ("xcommand", path) if !path.is_empty() && path.split('/').all(|s| !s.is_empty()) => {
            Method::Command(path.split('/').map(str::to_owned).collect())
        }
        ("xget", "") => Method::Get,
        ("xset", "") => Method::Set,
        ("xquery", "") => Method::Query,
        ("xfeedback", sub) if sub.eq_ignore_ascii_case("subscribe") => Method::Subscribe,
        ("xfeedback", sub) if sub.eq_ignore_ascii_case("unsubscribe") => Method::Unsubscribe,
        _ => Method::Unknown(method.to_owned()),
    }
}

/// The `"id"` of a request that did not parse, read from the raw text, so a parse error can
/// still be answered. Only a top-level-looking `"id": "…"` (no escapes) or `"id": 123` counts.
pub fn find_id(text: &str) -> Option<Value> {
    const KEY: &str = "\"id\"";
    let mut rest = text;
    while let Some(at) = rest.find(KEY) {
        rest = &rest[at + KEY.len()..];
        let Some(value) = rest.trim_start().strip_prefix(':') else {
            continue;
        };
        let value = value.trim_start();
        if let Some(body) = value.strip_prefix('"') {
            let end = body.find(['"', '\\'])?;
            if body.as_bytes()[end] == b'"' {
                return Some(Value::String(body[..end].to_owned()));
            }
            return None;
        }
        let digits: &str = &value[..value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len())];
        if !digits.is_empty() && digits.len() <= 18 {
            return digits.parse::<u64>().ok().map(Value::from);
        }
    }
    None
}

/// `{"jsonrpc":"2.0","id":…,"result":…}`
pub fn reply(id: &Value, result: &Value) -> String {
    json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string()
}

/// `{"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…}}`
pub fn error_reply(id: &Value, code: i64, message: &str) -> String {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } }).to_string()
}

/// The three documents feedback is rooted at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Root {
    Status,
    Event,
    Configuration,
}

impl Root {
    pub fn as_str(self) -> &'static str {
        match self {
            Root::Status => "Status",
            Root::Event => "Event",
            Root::Configuration => "Configuration",
        }
    }

    pub fn parse(name: &str) -> Option<Root> {
        [Root::Status, Root::Event, Root::Configuration]
            .into_iter()
            .find(|root| root.as_str().eq_ignore_ascii_case(name))
    }
}

/// `{"jsonrpc":"2.0","method":"xFeedback/Event","params":{"Id":n,"Status":{…}}}`
pub fn feedback(subscription: u64, root: Root, body: &Value) -> String {
    let mut params = Map::new();
    params.insert("Id".into(), Value::from(subscription));
    params.insert(root.as_str().into(), body.clone());
    json!({ "jsonrpc": "2.0", "method": "xFeedback/Event", "params": params }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_what_jsxapi_sends() {
        let r = parse_request(
            r#"{"jsonrpc":"2.0","method":"xCommand/Audio/Volume/Set","id":"3","params":{"Level":70}}"#,
        )
        .unwrap();
        assert_eq!(r.id, Some(json!("3")));
        assert_eq!(
            r.method,
            Method::Command(vec!["Audio".into(), "Volume".into(), "Set".into()])
        );
        assert_eq!(r.params["Level"], 70);
        let r = parse_request(r#"{"jsonrpc":"2.0","method":"xFeedback/Subscribe","id":7,"params":{"Query":["Status"]}}"#).unwrap();
        assert_eq!((r.id, r.method), (Some(json!(7)), Method::Subscribe));
        let r = parse_request(r#"{"jsonrpc":"2.0","method":"xGet"}"#).unwrap();
        assert_eq!((r.id, r.method, r.params.len()), (None, Method::Get, 0));
    }

    #[test]
    fn every_error_code_path() {
        let cases = [
            (
                r#"{"jsonrpc":"2.0","id":"9","method":"#,
                PARSE_ERROR,
                Some(json!("9")),
            ),
            (r#"{"id": 12, "method": x}"#, PARSE_ERROR, Some(json!(12))),
            ("not json", PARSE_ERROR, None),
            (
                r#"[{"jsonrpc":"2.0","method":"xGet","id":"1"}]"#,
                INVALID_REQUEST,
                None,
            ),
            ("42", INVALID_REQUEST, None),
            (
                r#"{"jsonrpc":"2.0","method":"xGet","id":null}"#,
                INVALID_REQUEST,
                None,
            ),
            (
                r#"{"jsonrpc":"1.0","method":"xGet","id":"1"}"#,
                INVALID_REQUEST,
                Some(json!("1")),
            ),
            (
                r#"{"jsonrpc":"2.0","method":5,"id":"1"}"#,
                INVALID_REQUEST,
                Some(json!("1")),
            ),
            (
                r#"{"jsonrpc":"2.0","method":"xGet","id":"1","params":[1]}"#,
                INVALID_PARAMS,
                Some(json!("1")),
            ),
        ];
        for (text, code, id) in cases {
            let e = parse_request(text).unwrap_err();
            assert_eq!((e.code, &e.id), (code, &id), "{text}");
        }
        let big = format!(r#"{{"id":"5","pad":"{}"}}"#, "x".repeat(MAX_REQUEST_BYTES));
        let e = parse_request(&big).unwrap_err();
        assert_eq!((e.code, e.id), (INVALID_REQUEST, Some(json!("5"))));
    }

    #[test]
    fn methods_are_case_insensitive_and_unknown_ones_kept() {
        assert_eq!(parse_method("xfeedback/subscribe"), Method::Subscribe);
        assert_eq!(parse_method("XGET"), Method::Get);
        assert_eq!(parse_method("xCommand"), Method::Unknown("xCommand".into()));
        assert_eq!(
            parse_method("xCommand//Set"),
            Method::Unknown("xCommand//Set".into())
        );
        assert_eq!(parse_method("xDoc"), Method::Unknown("xDoc".into()));
    }

    #[test]
    fn replies_and_feedback_have_the_profile_shape() {
        assert_eq!(
            reply(&json!("1"), &json!({"Id": 2})),
            r#"{"jsonrpc":"2.0","id":"1","result":{"Id":2}}"#
        );
        assert_eq!(
            error_reply(&json!(4), COMMAND_ERROR, "no"),
            r#"{"jsonrpc":"2.0","id":4,"error":{"code":1,"message":"no"}}"#
        );
        assert_eq!(
            feedback(3, Root::Status, &json!({"Audio": {"Volume": 70}})),
            r#"{"jsonrpc":"2.0","method":"xFeedback/Event","params":{"Id":3,"Status":{"Audio":{"Volume":70}}}}"#
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_ids_come_from_the_text(text in ".{0,200}") {
            let id = match parse_request(&text) {
                Ok(r) => r.id,
                Err(e) => e.id,
            };
            if let Some(Value::String(id)) = id {
                prop_assert!(text.contains(&id));
            }
        }

        #[test]
        fn string_ids_round_trip(id in "[a-zA-Z0-9_-]{1,20}", method in "x(Get|Set|Query|Command/A/B)") {
            let text = json!({"jsonrpc": "2.0", "id": id, "method": method}).to_string();
            let r = parse_request(&text).unwrap();
            prop_assert_eq!(r.id, Some(Value::String(id)));
        }
    }
}
