//! Every text frame of the mercury event socket: classification, the trackingId scan used
//! for frames that do not parse, and the device.control / featureToggle payload readers.
//! Each must return a value or a named error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomd::daemon::device_control::{parse_device_control, parse_feature_toggle};
use roomd::proto::mercury::{self, Inbound, MAX_FRAME_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = mercury::find_tracking_id(text);
    match mercury::parse(text) {
        Ok(Inbound::Event(envelope)) => {
            assert!(text.len() <= MAX_FRAME_BYTES);
            let _ = parse_device_control(&envelope.data);
            let _ = parse_feature_toggle(&envelope.data);
            let _ = envelope.marks_online();
        }
        Ok(other) => {
            let _ = other.ack_id();
        }
        Err(e) => {
            let _ = e.to_string();
            let _ = e.tracking_id();
        }
    }
});
