//! The STUN Binding parsers against arbitrary bytes: a response of any shape is either the
//! expected transaction's XOR-MAPPED-ADDRESS or a named error, never a panic; the same bytes
//! as an RFC 4571 stream decode without panicking, and a success the parser accepts must
//! carry the transaction id it was asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomd::proto::stun::{self, TransactionId};

fuzz_target!(|data: &[u8]| {
    // The transaction id the prober expects: the one in the bytes when there are enough
    // (so the fuzzer reaches attribute parsing), else a fixed one.
    let expected = data
        .get(8..20)
        .map(|id| {
            let mut full = [0u8; 16];
            full[4..].copy_from_slice(id);
            TransactionId::from(u128::from_be_bytes(full))
        })
        .unwrap_or_else(|| TransactionId::from(0x0102_0304_0506_0708_090a_0b0c_u128));
    if stun::parse_binding_response(data, expected).is_ok() {
        assert_eq!(&data[8..20], &u128::from(expected).to_be_bytes()[4..]);
    }
    let _ = stun::parse_binding_request(data);
    let mut rest = data;
    while let Some((frame, used)) = stun::decode_frame(rest) {
        let _ = stun::parse_binding_response(frame, expected);
        rest = &rest[used..];
    }
});
