//! RTP packets and their RFC 8285 one-byte header extension (wire profile §7): `parse`,
//! `one_byte_elements` and `csi` return a value or a named error, never panic, on any bytes;
//! `with_csi` accepts exactly the packets `parse` accepts, and what it writes parses back to
//! the same header (SSRC replaced) and payload, carrying the CSI under the given id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomd::proto::rtp;

fuzz_target!(|data: &[u8]| {
    let _ = rtp::demux(data);
    let _ = rtp::one_byte_elements(data);
    let parsed = rtp::parse(data);
    if let Ok(packet) = &parsed {
        if let Some(extension) = packet.extension {
            let _ = rtp::one_byte_elements(extension.data);
        }
        for id in 0..16 {
            let _ = packet.one_byte_element(id);
            let _ = packet.csi(id);
        }
    }
    // The rewrite's SSRC, id and CSI from the bytes themselves, so the fuzzer varies them.
    let ssrc = data.get(..4).map_or(0x1234_5678, |b| {
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    });
    let id = data.last().map_or(3, |b| b % 16);
    let csi = ssrc.rotate_left(8) ^ 0x17;
    let rewritten = rtp::with_csi(data, ssrc, id, csi);
    match (&parsed, &rewritten) {
        (Ok(before), Ok(out)) => {
            let after = rtp::parse(out).expect("with_csi output parses");
            assert_eq!(
                after.header,
                rtp::RtpHeader {
                    ssrc,
                    ..before.header
                }
            );
            assert_eq!(after.payload, before.payload);
            assert_eq!(after.csi(id), Some(csi));
        }
        (_, Err(_)) => assert!(parsed.is_err() || !(1..=14).contains(&id)),
        (Err(_), Ok(_)) => panic!("with_csi accepted a packet parse rejects"),
    }
});
