//! A minimal RFC 6455 server side, hand-rolled rather than axum's WebSocket because the Meeting
//! Server must *see* what a general-purpose stack hides: fragmented frames, pings and pongs (it
//! supports none of them, seed 001 §6, and closes the socket with 1003), and it must be able to stop
//! reading altogether ("silence" mode) while the TCP connection stays open.
//!
//! No extensions are negotiated (a client's `permessage-deflate` offer is ignored), so every RSV
//! bit must be 0.

use base64::Engine as _;
use sha1::{Digest as _, Sha1};

/// Largest client frame payload accepted; a bigger one closes the socket with 1009.
pub(crate) const MAX_FRAME: usize = 1024 * 1024;

/// RFC 6455 §1.3: the GUID appended to `Sec-WebSocket-Key`.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// One frame from the client, classified for the Meeting Server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// A complete (FIN, opcode text) text frame.
    Text(String),
    /// A data frame without FIN, or a continuation frame.
    Fragment,
    Binary(usize),
    Ping,
    Pong,
    /// Close code (None when the frame had no body) and reason.
    Close(Option<u16>, String),
}

/// Why a byte stream is not acceptable WebSocket: each maps to a close code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// 1002: unmasked client frame, RSV bits, reserved opcode, bad control frame.
    Protocol(&'static str),
    /// 1009: payload over [`MAX_FRAME`].
    TooBig(u64),
    /// 1007: text that is not UTF-8.
    BadUtf8,
}

impl FrameError {
    pub(crate) fn close_code(&self) -> u16 {
        match self {
            Self::Protocol(_) => 1002,
            Self::TooBig(_) => 1009,
            Self::BadUtf8 => 1007,
        }
    }

    pub(crate) fn reason(&self) -> String {
        match self {
            Self::Protocol(why) => (*why).to_owned(),
            Self::TooBig(n) => format!("frame of {n} bytes is too big"),
            Self::BadUtf8 => "text frame is not UTF-8".to_owned(),
        }
    }
}

/// Takes one complete frame off the front of `buf`; `Ok(None)` when more bytes are needed.
pub(crate) fn parse(buf: &mut Vec<u8>) -> Result<Option<Inbound>, FrameError> {
    let [b0, b1, ..] = buf[..] else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Protocol("RSV bits set without an extension"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if b1 & 0x80 == 0 {
        return Err(FrameError::Protocol("client frame is not masked"));
    }
    let (len, mut at) = match b1 & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            (u64::from_be_bytes(a), 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode >= 8 && (len > 125 || !fin) {
        return Err(FrameError::Protocol("control frame too long or fragmented"));
    }
    let len = match usize::try_from(len) {
        Ok(n) if n <= MAX_FRAME => n,
        _ => return Err(FrameError::TooBig(len)),
    };
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let mask = [mask[0], mask[1], mask[2], mask[3]];
    at += 4;
    if buf.len() < at + len {
        return Ok(None);
    }
    let mut payload: Vec<u8> = buf.drain(..at + len).skip(at).collect();
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Some(match opcode {
        0x0 => Inbound::Fragment,
        0x1 if !fin => Inbound::Fragment,
        0x1 => Inbound::Text(String::from_utf8(payload).map_err(|_| FrameError::BadUtf8)?),
        0x2 => Inbound::Binary(payload.len()),
        0x8 => match payload.len() {
            0 => Inbound::Close(None, String::new()),
            1 => return Err(FrameError::Protocol("close frame with a one-byte body")),
            _ => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                let reason =
                    String::from_utf8(payload[2..].to_vec()).map_err(|_| FrameError::BadUtf8)?;
                Inbound::Close(Some(code), reason)
            }
        },
        0x9 => Inbound::Ping,
        0xA => Inbound::Pong,
        _ => return Err(FrameError::Protocol("reserved opcode")),
    }))
}

fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A server text frame (unmasked, FIN).
pub(crate) fn text_frame(text: &str) -> Vec<u8> {
    frame(0x1, text.as_bytes())
}

/// A server close frame; the reason is cut to fit the 125-byte control frame.
pub(crate) fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(0x8, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![b0];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn rfc_6455_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn parses_frames_incrementally() {
        let mut bytes = masked(0x81, b"hello");
        bytes.extend(masked(0x89, b""));
        let mut buf = Vec::new();
        for b in &bytes[..bytes.len() - 1] {
            buf.push(*b);
            if let Some(f) = parse(&mut buf).expect("valid") {
                assert_eq!(f, Inbound::Text("hello".into()));
            }
        }
        buf.push(bytes[bytes.len() - 1]);
        assert_eq!(parse(&mut buf), Ok(Some(Inbound::Ping)));
        assert!(buf.is_empty());
        let mut big = masked(0x81, &vec![b'a'; 300]);
        assert_eq!(parse(&mut big), Ok(Some(Inbound::Text("a".repeat(300)))));
    }

    #[test]
    fn classifies_what_the_meeting_server_refuses() {
        assert_eq!(
            parse(&mut masked(0x01, b"part")),
            Ok(Some(Inbound::Fragment))
        );
        assert_eq!(
            parse(&mut masked(0x80, b"rest")),
            Ok(Some(Inbound::Fragment))
        );
        assert_eq!(
            parse(&mut masked(0x82, b"\x00\x01")),
            Ok(Some(Inbound::Binary(2)))
        );
        assert_eq!(parse(&mut masked(0x8A, b"")), Ok(Some(Inbound::Pong)));
        assert_eq!(
            parse(&mut masked(0x88, b"\x03\xe8bye")),
            Ok(Some(Inbound::Close(Some(1000), "bye".into())))
        );
        assert_eq!(parse(&mut masked(0x81, b"\xff")), Err(FrameError::BadUtf8));
        let mut unmasked = vec![0x81, 0x01, b'a'];
        assert!(matches!(parse(&mut unmasked), Err(FrameError::Protocol(_))));
        assert!(matches!(
            parse(&mut masked(0xC1, b"a")),
            Err(FrameError::Protocol(_))
        ));
        let mut huge = vec![0x81, 0xFF, 0, 0, 0, 0, 0x10, 0, 0, 0];
        assert!(matches!(parse(&mut huge), Err(FrameError::TooBig(_))));
    }

    #[test]
    fn server_frames() {
        assert_eq!(text_frame("hi"), vec![0x81, 2, b'h', b'i']);
        let long = text_frame(&"x".repeat(200));
        assert_eq!(&long[..4], &[0x81, 126, 0, 200]);
        let close = close_frame(1003, "ping frames are not supported");
        assert_eq!(&close[..4], &[0x88, 31, 0x03, 0xEB]);
        assert!(close_frame(1000, &"é".repeat(100)).len() <= 127);
    }
}
