//! Renders a status tree (nested JSON objects) the way RoomOS prints `xStatus`:
//! `*s SystemUnit Uptime: 42`, strings quoted, list items by their `id`, then `** end`.

use serde_json::Value;

pub fn render(tree: &Value) -> String {
    render_with(tree, "*s")
}

/// The same with another line marker: `*r` for command results (`*r BookingsListResult …`).
pub fn render_with(tree: &Value, marker: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_nested_objects_lists_and_scalars() {
        let tree = json!({
            "SystemUnit": { "State": "Running", "Uptime": 42, "Muted": false },
            "Call": [ { "id": 3, "Status": "Connected" } ],
        });
        assert_eq!(
            render(&tree),
            "*s SystemUnit State: \"Running\"\n*s SystemUnit Uptime: 42\n\
             *s SystemUnit Muted: False\n*s Call 3 Status: \"Connected\"\n** end\n"
        );
    }
}
