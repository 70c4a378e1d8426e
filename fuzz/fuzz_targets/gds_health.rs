//! The GDS health document parser against arbitrary bytes: it must return Ok or a named
//! error, never panic, and whatever it accepts must be online-checkable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = roomd::proto::gds::parse_health(data) {
        let _ = doc.is_online();
        let _ = doc.failing_upstreams();
    }
});
