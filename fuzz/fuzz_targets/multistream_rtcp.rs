//! SCA/SCR in RTCP datagrams (wire profile §7): `decode_datagram` returns each MSTR message or
//! a named error, never panics, on any bytes; every message it decodes encodes back to a
//! datagram that decodes to the same message (nothing the decoder accepts is lost or changed by
//! the encoder), and its log summary never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomd::proto::multistream::{self, Message};
use roomd::proto::rtp;

fuzz_target!(|data: &[u8]| {
    let _ = rtp::demux(data);
    for packet in rtp::rtcp_packets(data).flatten() {
        let _ = rtp::parse_sender_report(&packet);
        let _ = multistream::decode(&packet);
    }
    for message in multistream::decode_datagram(data).into_iter().flatten() {
        let _ = message.summary();
        if let Message::Scr(scr) = &message {
            for request in &scr.requests {
                let _ = request.summary();
            }
        }
        let encoded = message.encode();
        assert_eq!(rtp::demux(&encoded), rtp::Demux::Rtcp);
        assert_eq!(multistream::decode_datagram(&encoded), vec![Ok(message)]);
    }
});
