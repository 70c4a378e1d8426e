//! Every byte an xAPI client sends: the HTTP request head before the upgrade, then each
//! JSON-RPC text frame (request parser, id recovery for parse errors, path parsing, lookup
//! and feedback projection). Each must return a value or a named error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomd::api::xapi::http::parse_head;
use roomd::api::xapi::tree::{self, XPath};
use roomd::proto::jsonrpc::{self, MAX_REQUEST_BYTES};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let _ = parse_head(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = jsonrpc::find_id(text);
    let Ok(request) = jsonrpc::parse_request(text) else {
        return;
    };
    assert!(text.len() <= MAX_REQUEST_BYTES);
    if let Some(id) = &request.id {
        assert!(id.is_string() || id.is_number());
    }
    let document = json!({"Audio": {"Volume": 50}, "Call": [{"id": 1, "Status": "Connected"}]});
    for value in request.params.values() {
        if let Ok(path) = XPath::parse(value) {
            let _ = tree::lookup(&document, &path.segments);
            let _ = tree::resolves(&document, &path.segments);
            let _ = tree::project(&document, &path.segments);
        }
    }
});
