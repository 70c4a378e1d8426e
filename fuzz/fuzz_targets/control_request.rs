//! Control-socket request lines from local clients: parse or refuse, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = roomd::api::control::parse_request(data);
});
