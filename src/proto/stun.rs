//! STUN Binding (RFC 5389) as media reachability uses it (wire profile §6), over the
//! maintained `stun-types` crate (sans I/O, the GStreamer project's STUN stack): a request
//! without attributes, and its success response with an XOR-MAPPED-ADDRESS. Also the RFC 4571
//! framing (2-byte big-endian length) that carries STUN over tcp and xtls.
//!
//! Nothing here panics on any input: every byte string is either a Binding success of the
//! expected transaction or a [`StunError`] naming why it is not.

use std::net::SocketAddr;

use stun_types::attribute::XorMappedAddress;
use stun_types::message::{
    BINDING, Message, MessageClass, MessageHeader, MessageWrite, MessageWriteExt as _,
    MessageWriteVec, StunParseError,
};

pub use stun_types::message::TransactionId;

/// The STUN header (type, length, magic cookie, transaction id).
pub const HEADER_LEN: usize = MessageHeader::LENGTH;
/// The largest RFC 4571 frame payload.
pub const MAX_FRAME: usize = u16::MAX as usize;

/// Why bytes that arrived are not the expected Binding success.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum StunError {
    /// not a STUN message (first bits or magic cookie wrong, or too short)
    NotStun,
    /// STUN message of {len} bytes, but its header announces {announced}
    Length { len: usize, announced: usize },
    /// STUN message of another transaction ({0})
    WrongTransaction(String),
    /// STUN {class} {method}, expected a Binding success response
    UnexpectedType { class: String, method: String },
    /// STUN Binding error response {code} {reason}
    ErrorResponse { code: u16, reason: String },
    /// STUN Binding success without a usable XOR-MAPPED-ADDRESS
    NoMappedAddress,
    /// malformed STUN message: {0}
    Malformed(String),
}

/// A new Binding request (no attributes) and its fresh transaction id.
pub fn binding_request() -> (TransactionId, Vec<u8>) {
    let txid = TransactionId::generate();
    (txid, binding_request_with(txid))
}

/// A Binding request with a given transaction id (for retransmissions and tests).
pub fn binding_request_with(txid: TransactionId) -> Vec<u8> {
    Message::builder(
        stun_types::message::MessageType::from_class_method(MessageClass::Request, BINDING),
        txid,
        MessageWriteVec::with_capacity(HEADER_LEN),
    )
    .finish()
}

/// Checks `bytes` is exactly one STUN message (header, cookie, announced length) and
/// returns its header.
fn header(bytes: &[u8]) -> Result<MessageHeader, StunError> {
    let header = match MessageHeader::from_bytes(bytes) {
        Ok(header) => header,
        Err(StunParseError::Truncated { .. } | StunParseError::NotStun) => {
            return Err(StunError::NotStun);
        }
        Err(e) => return Err(StunError::Malformed(e.to_string())),
    };
    let announced = HEADER_LEN + usize::from(header.data_length());
    if announced != bytes.len() || header.data_length() % 4 != 0 {
        return Err(StunError::Length {
            len: bytes.len(),
            announced,
        });
    }
    Ok(header)
}

/// The transaction id of a Binding request (what a responder answers), else why not.
pub fn parse_binding_request(bytes: &[u8]) -> Result<TransactionId, StunError> {
    let header = header(bytes)?;
    let kind = header.get_type();
    if kind.class() != MessageClass::Request || kind.method() != BINDING {
        return Err(StunError::UnexpectedType {
            class: format!("{:?}", kind.class()),
            method: kind.method().to_string(),
        });
    }
    Message::from_bytes(bytes).map_err(|e| StunError::Malformed(e.to_string()))?;
    Ok(header.transaction_id())
}

/// The XOR-MAPPED-ADDRESS of a Binding success response to the request `expected`.
/// Rejects non-STUN bytes, another transaction, another class or method, and error responses.
pub fn parse_binding_response(
    bytes: &[u8],
    expected: TransactionId,
) -> Result<SocketAddr, StunError> {
    let header = header(bytes)?;
    if header.transaction_id() != expected {
        return Err(StunError::WrongTransaction(
            header.transaction_id().to_string(),
        ));
    }
    let message = Message::from_bytes(bytes).map_err(|e| StunError::Malformed(e.to_string()))?;
    if message.method() != BINDING {
        return Err(StunError::UnexpectedType {
            class: format!("{:?}", message.class()),
            method: message.method().to_string(),
        });
    }
    match message.class() {
        MessageClass::Success => {}
        MessageClass::Error => {
            let (code, reason) = match message.attribute::<stun_types::attribute::ErrorCode>() {
                Ok(error) => (error.code(), error.reason().to_string()),
                Err(_) => (0, "(no ERROR-CODE)".to_string()),
            };
            return Err(StunError::ErrorResponse { code, reason });
        }
        class => {
            return Err(StunError::UnexpectedType {
                class: format!("{class:?}"),
                method: message.method().to_string(),
            });
        }
    }
    message
        .attribute::<XorMappedAddress>()
        .map(|mapped| mapped.addr(expected))
        .map_err(|_| StunError::NoMappedAddress)
}

/// A Binding success response to `txid` reporting `mapped` (responders in tests, the bench
/// and the simulator).
pub fn binding_success(txid: TransactionId, mapped: SocketAddr) -> Vec<u8> {
    let mut message = Message::builder(
        stun_types::message::MessageType::from_class_method(MessageClass::Success, BINDING),
        txid,
        MessageWriteVec::with_capacity(HEADER_LEN + 24),
    );
    // Only fails when the attribute is already there.
    let _ = message.add_attribute(&XorMappedAddress::new(mapped, txid));
    message.finish()
}

/// A Binding error response to `txid` (400 Bad Request), for tests.
pub fn binding_error(txid: TransactionId) -> Vec<u8> {
    let mut message = Message::builder(
        stun_types::message::MessageType::from_class_method(MessageClass::Error, BINDING),
        txid,
        MessageWriteVec::with_capacity(HEADER_LEN + 24),
    );
    if let Ok(code) = stun_types::attribute::ErrorCode::new(400, "Bad Request") {
        let _ = message.add_attribute(&code);
    }
    message.finish()
}

/// `message` with its RFC 4571 length prefix; `None` when it is longer than a frame can be.
pub fn encode_frame(message: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(message.len()).ok()?;
    let mut out = Vec::with_capacity(2 + message.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Some(out)
}

/// The first complete RFC 4571 frame of `buf` and how many bytes it used, or `None` while
/// more bytes are needed.
pub fn decode_frame(buf: &[u8]) -> Option<(&[u8], usize)> {
    let len = usize::from(u16::from_be_bytes([*buf.first()?, *buf.get(1)?]));
    let frame = buf.get(2..2 + len)?;
    Some((frame, 2 + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mapped() -> SocketAddr {
        "192.0.2.7:40000".parse().unwrap()
    }

    #[test]
    fn request_is_twenty_bytes_with_cookie_and_round_trips() {
        let (txid, bytes) = binding_request();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(&bytes[0..2], &[0x00, 0x01]);
        assert_eq!(&bytes[2..4], &[0, 0]);
        assert_eq!(&bytes[4..8], &[0x21, 0x12, 0xa4, 0x42]);
        assert_eq!(parse_binding_request(&bytes), Ok(txid));
    }

    #[test]
    fn success_gives_the_xor_mapped_address() {
        let (txid, _) = binding_request();
        let response = binding_success(txid, mapped());
        assert_eq!(parse_binding_response(&response, txid), Ok(mapped()));
        let v6: SocketAddr = "[2001:db8::1]:5004".parse().unwrap();
        assert_eq!(
            parse_binding_response(&binding_success(txid, v6), txid),
            Ok(v6)
        );
    }

    #[test]
    fn rejects_other_transactions_classes_errors_and_garbage() {
        let (txid, request) = binding_request();
        let (other, _) = binding_request();
        assert!(matches!(
            parse_binding_response(&binding_success(other, mapped()), txid),
            Err(StunError::WrongTransaction(_))
        ));
        assert!(matches!(
            parse_binding_response(&request, txid),
            Err(StunError::UnexpectedType { .. })
        ));
        assert_eq!(
            parse_binding_response(&binding_error(txid), txid),
            Err(StunError::ErrorResponse {
                code: 400,
                reason: "Bad Request".into()
            })
        );
        assert_eq!(
            parse_binding_response(b"HTTP/1.1 200 OK\r\n\r\n", txid),
            Err(StunError::NotStun)
        );
        assert_eq!(parse_binding_response(&[], txid), Err(StunError::NotStun));
        // Right shape, wrong magic cookie.
        let mut no_cookie = binding_success(txid, mapped());
        no_cookie[4] ^= 0xff;
        assert_eq!(
            parse_binding_response(&no_cookie, txid),
            Err(StunError::NotStun)
        );
        // A success without XOR-MAPPED-ADDRESS.
        let mut bare = binding_request_with(txid);
        bare[1] = 0x01;
        bare[0] = 0x01; // 0x0101: Binding success
        assert_eq!(
            parse_binding_response(&bare, txid),
            Err(StunError::NoMappedAddress)
        );
        // Trailing bytes after the announced length.
        let mut long = binding_success(txid, mapped());
        long.extend_from_slice(&[0, 0, 0, 0]);
        assert!(matches!(
            parse_binding_response(&long, txid),
            Err(StunError::Length { .. })
        ));
    }

    #[test]
    fn frames_round_trip_and_wait_for_more() {
        let (_, request) = binding_request();
        let framed = encode_frame(&request).unwrap();
        assert_eq!(&framed[..2], &[0, 20]);
        assert_eq!(decode_frame(&framed), Some((&request[..], 22)));
        assert_eq!(decode_frame(&framed[..21]), None);
        assert_eq!(decode_frame(&framed[..1]), None);
        assert!(encode_frame(&vec![0; MAX_FRAME + 1]).is_none());
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), id in any::<u128>()) {
            let txid = TransactionId::from(id);
            let _ = parse_binding_response(&bytes, txid);
            let _ = parse_binding_request(&bytes);
            let _ = decode_frame(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_responses(id in any::<u128>(), flips in proptest::collection::vec((0usize..32, any::<u8>()), 0..6), cut in 0usize..40) {
            let txid = TransactionId::from(id);
            let mut bytes = binding_success(txid, "198.51.100.1:3478".parse().unwrap());
            for (at, with) in flips {
                if let Some(b) = bytes.get_mut(at) { *b ^= with; }
            }
            bytes.truncate(cut);
            let _ = parse_binding_response(&bytes, txid);
        }

        #[test]
        fn only_the_expected_transaction_is_accepted(a in any::<u128>(), b in any::<u128>(), port in 1u16.., ip in any::<[u8; 4]>()) {
            let (a, b) = (TransactionId::from(a), TransactionId::from(b));
            let addr = SocketAddr::from((ip, port));
            let response = binding_success(a, addr);
            prop_assert_eq!(parse_binding_response(&response, a), Ok(addr));
            if a != b {
                prop_assert!(matches!(parse_binding_response(&response, b), Err(StunError::WrongTransaction(_))));
            }
        }
    }
}
