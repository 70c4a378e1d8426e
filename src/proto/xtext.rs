//! The line format RoomOS prints xAPI trees in: one `MARKER Path To Leaf: value` line per leaf
//! (`*s` for status, `*r` for command results), strings quoted, booleans `True`/`False`, list
//! items named by their `id` (else their 1-based position), then `** end`.

use serde_json::Value;

/// `tree` as RoomOS's lines, each starting with `marker` (`*s`, `*r`).
pub fn render_lines(tree: &Value, marker: &str) -> String {
    let mut out = String::new();
    walk(tree, &mut Vec::new(), &mut out, marker);
    out.push_str("** end\n");
    out
}

fn walk(value: &Value, path: &mut Vec<String>, out: &mut String, marker: &str) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(key.clone());
                walk(child, path, out, marker);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let id = item
                    .get("id")
                    .map(|id| id.to_string().trim_matches('"').to_string())
                    .unwrap_or_else(|| (index + 1).to_string());
                path.push(id);
                match item {
                    Value::Object(map) => {
                        for (key, child) in map.iter().filter(|(k, _)| k.as_str() != "id") {
                            path.push(key.clone());
                            walk(child, path, out, marker);
                            path.pop();
                        }
                    }
                    other => walk(other, path, out, marker),
                }
                path.pop();
            }
        }
        Value::Null => {}
        leaf => {
            out.push_str(marker);
            out.push(' ');
            out.push_str(&path.join(" "));
            out.push_str(": ");
            match leaf {
                Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
                Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
                other => out.push_str(&other.to_string()),
            }
            out.push('\n');
        }
    }
}
