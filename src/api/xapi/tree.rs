//! xAPI documents as JSON trees: paths (case-insensitive names, numeric segments selecting list
//! items by `id`), lookup, the difference between two versions of a document (what feedback
//! carries, with `ghost` items for removals), and the part of a difference under a subscription.

use serde_json::{Map, Value};

use crate::proto::jsonrpc::Root;

/// One path segment: a node name, or a list item's `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Name(String),
    Item(u64),
}

/// A path below one of the three roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XPath {
    pub root: Root,
    pub segments: Vec<Segment>,
}

/// Why a path could not be read.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum PathError {
    /// the path is empty
    Empty,
    /// the path must start with Status, Event or Configuration, not {0:?}
    BadRoot(String),
    /// path segment {0} is not a name or a list index
    BadSegment(String),
    /// the path must be a list of names and numbers, or a string
    NotAPath,
}

impl XPath {
    /// Reads `["Status","Call",3,"Status"]`, `"Status/Call/3/Status"` or `"Status Call 3 Status"`.
    pub fn parse(value: &Value) -> Result<XPath, PathError> {
        let parts: Vec<Value> = match value {
            Value::Array(items) => items.clone(),
            Value::String(text) => text
                .split(['/', ' '])
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
            _ => return Err(PathError::NotAPath),
        };
        let mut parts = parts.into_iter();
        let root = match parts.next() {
            None => return Err(PathError::Empty),
            Some(Value::String(name)) => {
                Root::parse(&name).ok_or_else(|| PathError::BadRoot(name.clone()))?
            }
            Some(other) => return Err(PathError::BadRoot(other.to_string())),
        };
        let segments = parts
            .map(|part| match part {
                Value::Number(n) => n
                    .as_u64()
                    .map(Segment::Item)
                    .ok_or_else(|| PathError::BadSegment(n.to_string())),
                Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
                    .parse()
                    .map(Segment::Item)
                    .map_err(|_| PathError::BadSegment(s.clone())),
                Value::String(s)
                    if !s.is_empty()
                        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    Ok(Segment::Name(s))
                }
                other => Err(PathError::BadSegment(other.to_string())),
            })
            .collect::<Result<_, _>>()?;
        Ok(XPath { root, segments })
    }
}

fn child<'a>(map: &'a Map<String, Value>, name: &str) -> Option<(&'a String, &'a Value)> {
    map.iter().find(|(key, _)| key.eq_ignore_ascii_case(name))
}

fn item_id(item: &Value) -> Option<u64> {
    match item.get("id")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The value at `segments` in `document`, or `None` when nothing is there.
pub fn lookup<'a>(document: &'a Value, segments: &[Segment]) -> Option<&'a Value> {
    let mut at = document;
    for segment in segments {
        at = match (segment, at) {
            (Segment::Name(name), Value::Object(map)) => child(map, name)?.1,
            (Segment::Item(id), Value::Array(items)) => {
                items.iter().find(|item| item_id(item) == Some(*id))?
            }
            _ => return None,
        };
    }
    Some(at)
}

/// Whether `segments` names something in `document`'s shape: it exists, or the walk only
/// fails at (or below) a list item that does not exist yet (`Call 3 Status` before any call).
pub fn resolves(document: &Value, segments: &[Segment]) -> bool {
    let mut at = document;
    for segment in segments {
        at = match (segment, at) {
            (Segment::Name(name), Value::Object(map)) => match child(map, name) {
                Some((_, value)) => value,
                None => return false,
            },
            (Segment::Item(id), Value::Array(items)) => {
                match items.iter().find(|item| item_id(item) == Some(*id)) {
                    Some(item) => item,
                    None => return true,
                }
            }
            // A name applied to a list (every item's field), on an empty list: accept.
            (Segment::Name(_), Value::Array(items)) => match items.first() {
                Some(first) => first,
                None => return true,
            },
            _ => return false,
        };
    }
    true
}

/// What changed from `old` to `new`: changed leaves, new subtrees, list items (with their `id`)
/// that changed or appeared, and `{"id":k,"ghost":"True"}` for items that went away.
/// `None` when nothing changed.
pub fn diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut out = Map::new();
            for (key, value) in new {
                let changed = match old.get(key) {
                    Some(before) => diff(before, value),
                    None => Some(value.clone()),
                };
                if let Some(changed) = changed {
                    out.insert(key.clone(), changed);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (Value::Array(old), Value::Array(new)) if is_list(old) && is_list(new) => {
            let mut out = Vec::new();
            for item in new {
                let id = item_id(item);
                match old.iter().find(|o| item_id(o) == id) {
                    None => out.push(item.clone()),
                    Some(before) => {
                        if let Some(Value::Object(mut changed)) = diff(before, item) {
                            changed.insert("id".into(), item["id"].clone());
                            out.push(Value::Object(changed));
                        }
                    }
                }
            }
            for item in old {
                let id = item_id(item);
                if !new.iter().any(|n| item_id(n) == id) {
                    let mut ghost = Map::new();
                    ghost.insert("id".into(), item["id"].clone());
                    ghost.insert("ghost".into(), Value::String("True".into()));
                    out.push(Value::Object(ghost));
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        (old, new) if old == new => None,
        (_, new) => Some(new.clone()),
    }
}

/// A list of items that each carry an `id` (what RoomOS lists are).
fn is_list(items: &[Value]) -> bool {
    items.iter().all(|item| item_id(item).is_some())
}

/// The part of `delta` under `segments`, with the path kept from the root (so a subscription
/// to `Audio Microphones` gets `{"Audio":{"Microphones":{…}}}`); `None` when the delta has
/// nothing there. A name segment on a list applies to every item (`Call Status` ⇒ each call's
/// status); removed (`ghost`) items always pass.
pub fn project(delta: &Value, segments: &[Segment]) -> Option<Value> {
    let Some((first, rest)) = segments.split_first() else {
        return Some(delta.clone());
    };
    match (first, delta) {
        (Segment::Name(name), Value::Object(map)) => {
            let (key, value) = child(map, name)?;
            let inner = project(value, rest)?;
            let mut out = Map::new();
            out.insert(key.clone(), inner);
            Some(Value::Object(out))
        }
        (Segment::Item(id), Value::Array(items)) => {
            let item = items.iter().find(|item| item_id(item) == Some(*id))?;
            project_item(item, rest).map(|item| Value::Array(vec![item]))
        }
        (Segment::Name(_), Value::Array(items)) => {
            let kept: Vec<Value> = items
                .iter()
                .filter_map(|item| project_item(item, segments))
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        _ => None,
    }
}

fn project_item(item: &Value, rest: &[Segment]) -> Option<Value> {
    if item.get("ghost").is_some() {
        return Some(item.clone());
    }
    let mut inner = project(item, rest)?;
    if let Value::Object(map) = &mut inner {
        map.insert("id".into(), item["id"].clone());
    }
    Some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(v: Value) -> XPath {
        XPath::parse(&v).unwrap()
    }

    #[test]
    fn paths_parse_from_lists_and_strings() {
        let p = path(json!(["status", "Call", 3, "Status"]));
        assert_eq!(p.root, Root::Status);
        assert_eq!(
            p.segments,
            vec![
                Segment::Name("Call".into()),
                Segment::Item(3),
                Segment::Name("Status".into())
            ]
        );
        assert_eq!(path(json!("Status/Call/3/Status")), p);
        assert_eq!(path(json!("Status Call 3 Status")), p);
        assert_eq!(XPath::parse(&json!([])), Err(PathError::Empty));
        assert_eq!(
            XPath::parse(&json!(["Bogus"])),
            Err(PathError::BadRoot("Bogus".into()))
        );
        assert!(matches!(
            XPath::parse(&json!(["Status", "a.b"])),
            Err(PathError::BadSegment(_))
        ));
        assert!(matches!(
            XPath::parse(&json!(["Status", -1])),
            Err(PathError::BadSegment(_))
        ));
        assert_eq!(XPath::parse(&json!(5)), Err(PathError::NotAPath));
    }

    #[test]
    fn lookup_is_case_insensitive_and_selects_items_by_id() {
        let doc = json!({"Audio": {"Volume": 50}, "Call": [{"id": 3, "Status": "Connected"}]});
        let get = |v| lookup(&doc, &path(v).segments).cloned();
        assert_eq!(get(json!(["Status", "audio", "VOLUME"])), Some(json!(50)));
        assert_eq!(
            get(json!(["Status", "Call", 3, "Status"])),
            Some(json!("Connected"))
        );
        assert_eq!(get(json!(["Status", "Call", 4])), None);
        assert_eq!(get(json!(["Status", "Audio", 1])), None);
        assert_eq!(get(json!(["Status", "Nope"])), None);
    }

    #[test]
    fn resolves_accepts_future_list_items_only() {
        let doc = json!({"Audio": {"Volume": 1}, "Call": []});
        let ok = |v| resolves(&doc, &path(v).segments);
        assert!(ok(json!(["Status", "Audio", "Volume"])));
        assert!(ok(json!(["Status", "Call", 3, "Status"])));
        assert!(ok(json!(["Status", "Call", "Status"])));
        assert!(!ok(json!(["Status", "Audio", "Nope"])));
        assert!(!ok(json!(["Status", "Audio", "Volume", "Deeper"])));
    }

    #[test]
    fn diff_reports_changed_leaves_new_items_and_ghosts() {
        let old = json!({"Audio": {"Volume": 50, "Mute": "Off"},
                         "Joinable": [{"id": 1, "Id": "webex-1"}, {"id": 2, "Id": "webex-2"}]});
        let new = json!({"Audio": {"Volume": 70, "Mute": "Off"},
                         "Joinable": [{"id": 2, "Id": "webex-2"}, {"id": 3, "Id": "webex-3"}]});
        assert_eq!(
            diff(&old, &new),
            Some(json!({"Audio": {"Volume": 70},
                        "Joinable": [{"id": 3, "Id": "webex-3"}, {"id": 1, "ghost": "True"}]}))
        );
        assert_eq!(diff(&new, &new), None);
        let changed_item = json!({"Call": [{"id": 1, "Status": "Connected", "Duration": 3}]});
        let before = json!({"Call": [{"id": 1, "Status": "Dialling", "Duration": 3}]});
        assert_eq!(
            diff(&before, &changed_item),
            Some(json!({"Call": [{"Status": "Connected", "id": 1}]}))
        );
    }

    #[test]
    fn projection_keeps_the_path_and_filters() {
        let delta = json!({"Audio": {"Volume": 70, "Microphones": {"Mute": "On"}},
                           "Call": [{"id": 1, "Status": "Connected"}, {"id": 2, "ghost": "True"}]});
        let proj = |v| project(&delta, &path(v).segments);
        assert_eq!(
            proj(json!(["Status", "audio", "microphones"])),
            Some(json!({"Audio": {"Microphones": {"Mute": "On"}}}))
        );
        assert_eq!(proj(json!(["Status", "Audio", "VolumeMute"])), None);
        assert_eq!(
            proj(json!(["Status", "Call", 2])),
            Some(json!({"Call": [{"id": 2, "ghost": "True"}]}))
        );
        assert_eq!(
            proj(json!(["Status", "Call", "Status"])),
            Some(json!({"Call": [{"Status": "Connected", "id": 1}, {"id": 2, "ghost": "True"}]}))
        );
        assert_eq!(proj(json!(["Status"])), Some(delta.clone()));
    }
}
