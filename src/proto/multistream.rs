//! Multistream source control (wire profile §7, choices in `docs/wire-profile-choices.md`
//! "§7 Media and multistream"): the SCR (a receiver's requests for streams) and the SCA (a
//! sender's answer and advertisement of its sources), carried as RTCP APP packets (PT 204,
//! name `MSTR`, subtype 1 SCA / 2 SCR).
//!
//! Framing: `V=2, P=0, subtype, PT=204, length`, the sender's SSRC, `MSTR`, then the body
//! (big-endian): `u8 version=1, u8 flags=0, u16 seqno, u32 media_ssrc`, then
//! - SCR: `u8 count, 3 reserved`, count × 36-byte requests ([`SCR_REQUEST_LEN`]);
//! - SCA: `u16 ack_seqno, u8 num_total_sources, u8 num_live_sources, u8 count, 3 reserved`,
//!   count × 8-byte entries ([`SCA_ENTRY_LEN`]).
//!
//! The APP packet around the body (header, sender SSRC, name, subtype) is rtcp-types' `App`,
//! found in a datagram by [`rtcp_packets`] (`proto::rtp`); the body is this module's.
//!
//! Decoding is lenient where the profile leaves room (flags, reserved bytes and bytes after the
//! last request or entry are ignored) and strict where a mistake would change the meaning
//! (version, subtype, a count that does not fit). Nothing here panics on any input.

use std::fmt::Write as _;

use rtcp_types::{App, RtcpPacketParser as _, RtcpPacketParserExt as _};

use crate::proto::rtp::{RTCP_HEADER_LEN, RtcpPacket, RtpError, rtcp_packets, write_rtcp};

/// RTCP APP.
pub const APP_PACKET_TYPE: u8 = <App<'static> as rtcp_types::RtcpPacket>::PACKET_TYPE;
/// The APP name of the profile's multistream messages.
pub const APP_NAME: [u8; 4] = *b"MSTR";
/// [`APP_NAME`] as rtcp-types' APP builder takes it.
const APP_NAME_STR: &str = "MSTR";
/// The APP subtype (the 5-bit count field) of an SCA.
pub const SUBTYPE_SCA: u8 = 1;
/// The APP subtype of an SCR.
pub const SUBTYPE_SCR: u8 = 2;
/// The body version roomd speaks.
pub const VERSION: u8 = 1;
/// One SCR request on the wire.
pub const SCR_REQUEST_LEN: usize = 36;
/// One SCA entry on the wire.
pub const SCA_ENTRY_LEN: usize = 8;

/// RTCP header, sender SSRC, name.
const APP_HEADER_LEN: usize = <App<'static> as rtcp_types::RtcpPacket>::MIN_PACKET_LEN;
/// version, flags, seqno, media_ssrc.
const COMMON_LEN: usize = 8;
/// The common part plus count and reserved bytes.
const SCR_HEADER_LEN: usize = COMMON_LEN + 4;
/// The common part plus ack_seqno, sources, count and reserved bytes.
const SCA_HEADER_LEN: usize = COMMON_LEN + 8;
/// The count is one byte.
const MAX_ITEMS: usize = u8::MAX as usize;
/// Request flags bit 0.
const FLAG_DUP: u8 = 0x01;

/// One stream a receiver asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrRequest {
    /// The capture source asked for; 0 lets the sender pick (policy active speaker).
    pub csi: u32,
    pub bitrate_bps: u32,
    /// The SSRC to send the stream on (0: the sender's choice).
    pub srcid: u32,
    /// 0 receiver-selected, 1 active speaker.
    pub policy: u8,
    pub priority: u8,
    /// Requests with the same adjid are filled with distinct sources.
    pub adjid: u8,
    /// The same source may fill this and another request.
    pub dup: bool,
    pub payload_type: u8,
    /// Macroblocks per second.
    pub max_mbps: u32,
    /// Macroblocks per frame.
    pub max_fs: u32,
    /// Frames per second × 100.
    pub max_cfps: u16,
    pub max_width: u16,
    pub max_height: u16,
}

/// A source control request: what streams the sender of this message wants to receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scr {
    pub sender_ssrc: u32,
    pub seqno: u16,
    pub media_ssrc: u32,
    /// At most 255 are encoded (the count is one byte).
    pub requests: Vec<ScrRequest>,
}

/// What a sender does with a request (or a source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// 0: sending.
    Live,
    /// 1: muted or privacy: an avatar instead.
    Avatar,
    /// 2: no source to fill the request.
    NoSource,
    /// 3: not served (beyond the layers the board can encode).
    Disabled,
    /// 4: the request breaks the sender's policy.
    PolicyViolation,
    /// A code this version does not know (5–255 when made by `From<u8>`).
    Other(u8),
}

impl SourceState {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            SourceState::Live => 0,
            SourceState::Avatar => 1,
            SourceState::NoSource => 2,
            SourceState::Disabled => 3,
            SourceState::PolicyViolation => 4,
            SourceState::Other(code) => code,
        }
    }

    /// A log word.
    pub fn name(self) -> &'static str {
        match self {
            SourceState::Live => "live",
            SourceState::Avatar => "avatar",
            SourceState::NoSource => "no-source",
            SourceState::Disabled => "disabled",
            SourceState::PolicyViolation => "policy-violation",
            SourceState::Other(_) => "other",
        }
    }
}

impl From<u8> for SourceState {
    fn from(code: u8) -> Self {
        match code {
            0 => SourceState::Live,
            1 => SourceState::Avatar,
            2 => SourceState::NoSource,
            3 => SourceState::Disabled,
            4 => SourceState::PolicyViolation,
            other => SourceState::Other(other),
        }
    }
}

/// The sender's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaEntry {
    /// The SSRC the request is (or would be) sent on.
    pub srcid: u32,
    pub request_index: u8,
    pub state: SourceState,
}

/// A source control advertisement: a sender's sources and, when acking an SCR, what it does
/// with each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sca {
    pub sender_ssrc: u32,
    pub seqno: u16,
    pub media_ssrc: u32,
    /// The SCR seqno acknowledged, 0 for none (an advertisement).
    pub ack_seqno: u16,
    pub num_total_sources: u8,
    pub num_live_sources: u8,
    /// At most 255 are encoded (the count is one byte).
    pub entries: Vec<ScaEntry>,
}

/// An SCA or an SCR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Sca(Sca),
    Scr(Scr),
}

/// Why an MSTR APP packet (or the datagram around it) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum MultistreamError {
    /// RTCP framing: {0}
    Rtcp(#[from] RtpError),
    /// MSTR body of {len} bytes is shorter than the {needed}-byte {what}
    Truncated {
        what: &'static str,
        len: usize,
        needed: usize,
    },
    /// MSTR version {version}, expected 1
    Version { version: u8 },
    /// MSTR subtype {subtype} is neither 1 (SCA) nor 2 (SCR)
    UnknownSubtype { subtype: u8 },
    /// {kind} count says {count} {items} but only {fit} fit in the packet
    Count {
        kind: &'static str,
        items: &'static str,
        count: u8,
        fit: usize,
    },
}

/// A body of `len` bytes, its common part written: version, flags, seqno, media SSRC.
fn body_with_common(len: usize, seqno: u16, media_ssrc: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(len);
    body.push(VERSION);
    body.push(0);
    body.extend_from_slice(&seqno.to_be_bytes());
    body.extend_from_slice(&media_ssrc.to_be_bytes());
    body
}

/// The standalone APP packet (§7: SCA and SCR are not compounded) of `sender_ssrc` carrying
/// `body`: rtcp-types writes the header (subtype, PT 204, length), the SSRC and the name. The
/// body is whole 32-bit words (12 + 36 n or 16 + 8 n bytes, at most 12 + 16 + 255 × 36).
fn app_packet(subtype: u8, sender_ssrc: u32, body: &[u8]) -> Vec<u8> {
    write_rtcp(
        &App::builder(sender_ssrc, APP_NAME_STR)
            .subtype(subtype)
            .data(body),
    )
}

/// The seed's header: `[ver=1 seqno=4 sender_ssrc=0xc003046e media_ssrc=0x00000000]`.
fn summary_head(kind: &str, sender_ssrc: u32, seqno: u16, media_ssrc: u32) -> String {
    format!(
        "{kind} [ver={VERSION} seqno={seqno} sender_ssrc={sender_ssrc:#010x} media_ssrc={media_ssrc:#010x}]"
    )
}

impl Scr {
    /// The standalone APP packet (§7: SCA and SCR are not compounded).
    pub fn encode(&self) -> Vec<u8> {
        let requests = &self.requests[..self.requests.len().min(MAX_ITEMS)];
        let len = SCR_HEADER_LEN + SCR_REQUEST_LEN * requests.len();
        let mut out = body_with_common(len, self.seqno, self.media_ssrc);
        out.extend_from_slice(&[requests.len() as u8, 0, 0, 0]);
        for request in requests {
            out.extend_from_slice(&request.csi.to_be_bytes());
            out.extend_from_slice(&request.bitrate_bps.to_be_bytes());
            out.extend_from_slice(&request.srcid.to_be_bytes());
            out.push(request.policy);
            out.push(request.priority);
            out.push(request.adjid);
            out.push(if request.dup { FLAG_DUP } else { 0 });
            out.push(request.payload_type);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(&request.max_mbps.to_be_bytes());
            out.extend_from_slice(&request.max_fs.to_be_bytes());
            out.extend_from_slice(&request.max_cfps.to_be_bytes());
            out.extend_from_slice(&request.max_width.to_be_bytes());
            out.extend_from_slice(&request.max_height.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        app_packet(SUBTYPE_SCR, self.sender_ssrc, &out)
    }

    /// Seed 000's log wording after "Video Send: ":
    /// `SCR [ver=1 seqno=4 sender_ssrc=0xc003046e media_ssrc=0x00000000] requests=1`.
    pub fn summary(&self) -> String {
        format!(
            "{} requests={}",
            summary_head("SCR", self.sender_ssrc, self.seqno, self.media_ssrc),
            self.requests.len()
        )
    }
}

impl ScrRequest {
    /// Seed 000's wording for one request, without its `[sci …]` prefix:
    /// `bitrate=100000 srcid=0 policy=1 pri=254 adjid=33 dup=true pt=126 (H264) maxmbps=7200
    /// maxfs=240 maxcfps=3000 maxwidth=3840 maxheight=3840`.
    pub fn summary(&self) -> String {
        let codec = match self.payload_type {
            126 => " (H264)",
            111 => " (opus)",
            _ => "",
        };
        format!(
            "bitrate={} srcid={} policy={} pri={} adjid={} dup={} pt={}{codec} maxmbps={} maxfs={} maxcfps={} maxwidth={} maxheight={}",
            self.bitrate_bps,
            self.srcid,
            self.policy,
            self.priority,
            self.adjid,
            self.dup,
            self.payload_type,
            self.max_mbps,
            self.max_fs,
            self.max_cfps,
            self.max_width,
            self.max_height,
        )
    }
}

impl ScaEntry {
    /// `srcid=0x0000abcd index=0 state=live`.
    pub fn summary(&self) -> String {
        format!(
            "srcid={:#010x} index={} state={}",
            self.srcid,
            self.request_index,
            self.state.name()
        )
    }
}

impl Sca {
    /// The standalone APP packet.
    pub fn encode(&self) -> Vec<u8> {
        let entries = &self.entries[..self.entries.len().min(MAX_ITEMS)];
        let len = SCA_HEADER_LEN + SCA_ENTRY_LEN * entries.len();
        let mut out = body_with_common(len, self.seqno, self.media_ssrc);
        out.extend_from_slice(&self.ack_seqno.to_be_bytes());
        out.push(self.num_total_sources);
        out.push(self.num_live_sources);
        out.extend_from_slice(&[entries.len() as u8, 0, 0, 0]);
        for entry in entries {
            out.extend_from_slice(&entry.srcid.to_be_bytes());
            out.push(entry.request_index);
            out.push(entry.state.code());
            out.extend_from_slice(&[0, 0]);
        }
        app_packet(SUBTYPE_SCA, self.sender_ssrc, &out)
    }

    /// In the SCR's wording: `SCA [ver=1 seqno=2 sender_ssrc=0x… media_ssrc=0x00000000]
    /// ack_seqno=4 sources=3 live=3 entries=3 (srcid=0x… index=0 state=live, …)`.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} ack_seqno={} sources={} live={} entries={}",
            summary_head("SCA", self.sender_ssrc, self.seqno, self.media_ssrc),
            self.ack_seqno,
            self.num_total_sources,
            self.num_live_sources,
            self.entries.len()
        );
        for (i, entry) in self.entries.iter().enumerate() {
            let _ = write!(
                out,
                "{}{}",
                if i == 0 { " (" } else { ", " },
                entry.summary()
            );
        }
        if !self.entries.is_empty() {
            out.push(')');
        }
        out
    }
}

impl Message {
    /// The standalone APP packet of either message.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Sca(sca) => sca.encode(),
            Message::Scr(scr) => scr.encode(),
        }
    }

    /// The log line of either message.
    pub fn summary(&self) -> String {
        match self {
            Message::Sca(sca) => sca.summary(),
            Message::Scr(scr) => scr.summary(),
        }
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The `count` items of `size` bytes after a header, or how many fit when fewer do.
fn items<'a>(
    rest: &'a [u8],
    count: u8,
    size: usize,
    kind: &'static str,
    items: &'static str,
) -> Result<std::slice::ChunksExact<'a, u8>, MultistreamError> {
    let fit = rest.len() / size;
    if usize::from(count) > fit {
        return Err(MultistreamError::Count {
            kind,
            items,
            count,
            fit,
        });
    }
    Ok(rest[..usize::from(count) * size].chunks_exact(size))
}

/// The SCA or SCR in an RTCP packet; `Ok(None)` for any other RTCP (another packet type, an
/// APP of another name or too short to have one), which receivers skip.
pub fn decode(packet: &RtcpPacket<'_>) -> Result<Option<Message>, MultistreamError> {
    // The length check comes first: rtcp-types' `App::data` would panic on a packet whose
    // padding leaves less than the SSRC and name.
    if packet.packet_type != APP_PACKET_TYPE || packet.body.len() < APP_HEADER_LEN - RTCP_HEADER_LEN
    {
        return Ok(None);
    }
    // Past rtcp_packets' framing and the checks above, rtcp-types accepts the packet.
    let Ok(app) = App::parse(packet.bytes()) else {
        return Ok(None);
    };
    if app.name() != APP_NAME {
        return Ok(None);
    }
    let sender_ssrc = app.ssrc();
    let body = app.data();
    if body.len() < COMMON_LEN {
        return Err(MultistreamError::Truncated {
            what: "common header",
            len: body.len(),
            needed: COMMON_LEN,
        });
    }
    let version = body[0];
    if version != VERSION {
        return Err(MultistreamError::Version { version });
    }
    let seqno = be16(body, 2);
    let media_ssrc = be32(body, 4);
    match app.subtype() {
        SUBTYPE_SCR => {
            if body.len() < SCR_HEADER_LEN {
                return Err(MultistreamError::Truncated {
                    what: "SCR header",
                    len: body.len(),
                    needed: SCR_HEADER_LEN,
                });
            }
            let requests = items(
                &body[SCR_HEADER_LEN..],
                body[COMMON_LEN],
                SCR_REQUEST_LEN,
                "SCR",
                "requests",
            )?
            .map(|r| ScrRequest {
                csi: be32(r, 0),
                bitrate_bps: be32(r, 4),
                srcid: be32(r, 8),
                policy: r[12],
                priority: r[13],
                adjid: r[14],
                dup: r[15] & FLAG_DUP != 0,
                payload_type: r[16],
                max_mbps: be32(r, 20),
                max_fs: be32(r, 24),
                max_cfps: be16(r, 28),
                max_width: be16(r, 30),
                max_height: be16(r, 32),
            })
            .collect();
            Ok(Some(Message::Scr(Scr {
                sender_ssrc,
                seqno,
                media_ssrc,
                requests,
            })))
        }
        SUBTYPE_SCA => {
            if body.len() < SCA_HEADER_LEN {
                return Err(MultistreamError::Truncated {
                    what: "SCA header",
                    len: body.len(),
                    needed: SCA_HEADER_LEN,
                });
            }
            let entries = items(
                &body[SCA_HEADER_LEN..],
                body[COMMON_LEN + 4],
                SCA_ENTRY_LEN,
                "SCA",
                "entries",
            )?
            .map(|e| ScaEntry {
                srcid: be32(e, 0),
                request_index: e[4],
                state: SourceState::from(e[5]),
            })
            .collect();
            Ok(Some(Message::Sca(Sca {
                sender_ssrc,
                seqno,
                media_ssrc,
                ack_seqno: be16(body, COMMON_LEN),
                num_total_sources: body[COMMON_LEN + 2],
                num_live_sources: body[COMMON_LEN + 3],
                entries,
            })))
        }
        subtype => Err(MultistreamError::UnknownSubtype { subtype }),
    }
}

/// Every SCA and SCR of an RTCP datagram (one packet or a compound), in order, other RTCP
/// skipped; a packet that cannot be read is an `Err` in its place, and an RTCP framing error
/// ends the list (nothing says where the next packet starts). For datagrams [`demux`] calls
/// RTCP.
///
/// [`demux`]: crate::proto::rtp::demux
pub fn decode_datagram(datagram: &[u8]) -> Vec<Result<Message, MultistreamError>> {
    let mut out = Vec::new();
    for packet in rtcp_packets(datagram) {
        match packet {
            Ok(packet) => match decode(&packet) {
                Ok(Some(message)) => out.push(Ok(message)),
                Ok(None) => {}
                Err(e) => out.push(Err(e)),
            },
            Err(e) => out.push(Err(MultistreamError::Rtcp(e))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::rtp::{self, SenderReport};
    use proptest::prelude::*;

    /// Seed 000's thumbnail request.
    fn thumbnail() -> ScrRequest {
        ScrRequest {
            csi: 0,
            bitrate_bps: 100_000,
            srcid: 0,
            policy: 1,
            priority: 254,
            adjid: 33,
            dup: true,
            payload_type: 126,
            max_mbps: 7200,
            max_fs: 240,
            max_cfps: 3000,
            max_width: 3840,
            max_height: 3840,
        }
    }

    fn only(datagram: &[u8]) -> Result<Message, MultistreamError> {
        let mut all = decode_datagram(datagram);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn hand_built_scr_decodes() {
        #[rustfmt::skip]
        let bytes = [
            // V=2 P=0 subtype=2, PT=204, length = 60/4 - 1 = 14
            0x82, 204, 0x00, 0x0e,
            // sender SSRC, name
            0xc0, 0x03, 0x04, 0x6e, b'M', b'S', b'T', b'R',
            // version 1, flags 0, seqno 4, media_ssrc 0
            1, 0, 0x00, 0x04, 0, 0, 0, 0,
            // count 1, reserved
            1, 0, 0, 0,
            // csi 0x00001701, bitrate 5016000 (0x004c89c0), srcid 0x0a0b0c0d
            0x00, 0x00, 0x17, 0x01, 0x00, 0x4c, 0x89, 0xc0, 0x0a, 0x0b, 0x0c, 0x0d,
            // policy 0, priority 255, adjid 7, flags dup, pt 126, reserved
            0, 255, 7, 0x01, 126, 0, 0, 0,
            // max_mbps 486000 (0x00076a70), max_fs 32400 (0x00007e90)
            0x00, 0x07, 0x6a, 0x70, 0x00, 0x00, 0x7e, 0x90,
            // max_cfps 6000, max_width 3840, max_height 2160, reserved
            0x17, 0x70, 0x0f, 0x00, 0x08, 0x70, 0, 0,
        ];
        let expected = Scr {
            sender_ssrc: 0xc003_046e,
            seqno: 4,
            media_ssrc: 0,
            requests: vec![ScrRequest {
                csi: 0x1701,
                bitrate_bps: 5_016_000,
                srcid: 0x0a0b_0c0d,
                policy: 0,
                priority: 255,
                adjid: 7,
                dup: true,
                payload_type: 126,
                max_mbps: 486_000,
                max_fs: 32_400,
                max_cfps: 6000,
                max_width: 3840,
                max_height: 2160,
            }],
        };
        assert_eq!(only(&bytes), Ok(Message::Scr(expected.clone())));
        assert_eq!(expected.encode(), bytes);
    }

    #[test]
    fn hand_built_sca_decodes() {
        #[rustfmt::skip]
        let bytes = [
            // V=2 P=0 subtype=1, PT=204, length = 44/4 - 1 = 10
            0x81, 204, 0x00, 0x0a,
            0x00, 0x00, 0xab, 0xcd, b'M', b'S', b'T', b'R',
            // version 1, flags 0, seqno 0x0102, media_ssrc 0
            1, 0, 0x01, 0x02, 0, 0, 0, 0,
            // ack_seqno 4, total 3, live 2, count 2, reserved
            0x00, 0x04, 3, 2, 2, 0, 0, 0,
            // srcid 0x11223344, index 0, state live, reserved
            0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0,
            // srcid 0x55667788, index 1, state disabled, reserved
            0x55, 0x66, 0x77, 0x88, 1, 3, 0, 0,
        ];
        let expected = Sca {
            sender_ssrc: 0xabcd,
            seqno: 0x0102,
            media_ssrc: 0,
            ack_seqno: 4,
            num_total_sources: 3,
            num_live_sources: 2,
            entries: vec![
                ScaEntry {
                    srcid: 0x1122_3344,
                    request_index: 0,
                    state: SourceState::Live,
                },
                ScaEntry {
                    srcid: 0x5566_7788,
                    request_index: 1,
                    state: SourceState::Disabled,
                },
            ],
        };
        assert_eq!(only(&bytes), Ok(Message::Sca(expected.clone())));
        assert_eq!(expected.encode(), bytes);
    }

    #[test]
    fn summaries_use_the_seed_wording() {
        let scr = Scr {
            sender_ssrc: 0xc003_046e,
            seqno: 4,
            media_ssrc: 0,
            requests: vec![thumbnail()],
        };
        assert_eq!(
            scr.summary(),
            "SCR [ver=1 seqno=4 sender_ssrc=0xc003046e media_ssrc=0x00000000] requests=1"
        );
        assert_eq!(
            thumbnail().summary(),
            "bitrate=100000 srcid=0 policy=1 pri=254 adjid=33 dup=true pt=126 (H264) maxmbps=7200 maxfs=240 maxcfps=3000 maxwidth=3840 maxheight=3840"
        );
        let audio = ScrRequest {
            payload_type: 111,
            dup: false,
            ..thumbnail()
        };
        assert!(audio.summary().contains("dup=false pt=111 (opus) maxmbps"));
        let other = ScrRequest {
            payload_type: 96,
            ..thumbnail()
        };
        assert!(other.summary().contains("pt=96 maxmbps"));
        let sca = Sca {
            sender_ssrc: 0xdbf6_f52d,
            seqno: 2,
            media_ssrc: 0,
            ack_seqno: 8,
            num_total_sources: 1,
            num_live_sources: 1,
            entries: vec![
                ScaEntry {
                    srcid: 0xabcd,
                    request_index: 0,
                    state: SourceState::Live,
                },
                ScaEntry {
                    srcid: 0xabce,
                    request_index: 1,
                    state: SourceState::from(9),
                },
            ],
        };
        assert_eq!(
            sca.summary(),
            "SCA [ver=1 seqno=2 sender_ssrc=0xdbf6f52d media_ssrc=0x00000000] ack_seqno=8 sources=1 live=1 entries=2 (srcid=0x0000abcd index=0 state=live, srcid=0x0000abce index=1 state=other)"
        );
        let advert = Sca {
            entries: vec![],
            ack_seqno: 0,
            ..sca
        };
        assert!(
            advert
                .summary()
                .ends_with("ack_seqno=0 sources=1 live=1 entries=0")
        );
        assert_eq!(Message::Sca(advert.clone()).summary(), advert.summary());
        assert_eq!(Message::Scr(scr.clone()).summary(), scr.summary());
    }

    #[test]
    fn source_states_have_their_codes() {
        for code in 0..=u8::MAX {
            assert_eq!(SourceState::from(code).code(), code);
        }
        assert_eq!(SourceState::from(1), SourceState::Avatar);
        assert_eq!(SourceState::from(2), SourceState::NoSource);
        assert_eq!(SourceState::from(4), SourceState::PolicyViolation);
        assert_eq!(SourceState::from(5), SourceState::Other(5));
        assert_eq!(SourceState::PolicyViolation.name(), "policy-violation");
        assert_eq!(SourceState::NoSource.name(), "no-source");
        assert_eq!(SourceState::Avatar.name(), "avatar");
        assert_eq!(SourceState::Disabled.name(), "disabled");
    }

    #[test]
    fn other_rtcp_is_skipped() {
        let report = SenderReport {
            ssrc: 1,
            ntp: 2,
            rtp_timestamp: 3,
            packet_count: 4,
            octet_count: 5,
        };
        let mut datagram = rtp::sender_report_compound(&report, "roomd");
        // An APP of another name, and one too short to have a name.
        datagram.extend_from_slice(&[0x82, 204, 0, 4, 0, 0, 0, 1, b'O', b'T', b'H', b'R']);
        datagram.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        datagram.extend_from_slice(&[0x82, 204, 0, 1, 0, 0, 0, 1]);
        let scr = Scr {
            sender_ssrc: 9,
            seqno: 1,
            media_ssrc: 0,
            requests: vec![thumbnail(); 2],
        };
        datagram.extend_from_slice(&scr.encode());
        datagram.extend_from_slice(&rtp::bye(&[1]));
        assert_eq!(decode_datagram(&datagram), vec![Ok(Message::Scr(scr))]);
        let packets: Vec<_> = rtcp_packets(&datagram).flatten().collect();
        assert_eq!(decode(&packets[0]), Ok(None));
        assert_eq!(decode(&packets[2]), Ok(None));
        assert_eq!(decode(&packets[3]), Ok(None));
        assert_eq!(decode_datagram(&[]), vec![]);
    }

    #[test]
    fn errors_name_the_problem() {
        let scr = Scr {
            sender_ssrc: 9,
            seqno: 1,
            media_ssrc: 0,
            requests: vec![thumbnail(); 3],
        }
        .encode();

        // The count says 3, the length leaves room for 2.
        let mut short = scr.clone();
        short.truncate(short.len() - SCR_REQUEST_LEN);
        short[3] -= (SCR_REQUEST_LEN / 4) as u8;
        let err = only(&short).unwrap_err();
        assert_eq!(
            err,
            MultistreamError::Count {
                kind: "SCR",
                items: "requests",
                count: 3,
                fit: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "SCR count says 3 requests but only 2 fit in the packet"
        );

        let mut version = scr.clone();
        version[12] = 2;
        assert_eq!(
            only(&version),
            Err(MultistreamError::Version { version: 2 })
        );
        assert_eq!(
            MultistreamError::Version { version: 2 }.to_string(),
            "MSTR version 2, expected 1"
        );

        let mut subtype = scr.clone();
        subtype[0] = 0x80 | 7;
        assert_eq!(
            only(&subtype),
            Err(MultistreamError::UnknownSubtype { subtype: 7 })
        );
        assert_eq!(
            MultistreamError::UnknownSubtype { subtype: 7 }.to_string(),
            "MSTR subtype 7 is neither 1 (SCA) nor 2 (SCR)"
        );

        // Name, then only 4 body bytes.
        let common = [
            0x82, 204, 0, 3, 0, 0, 0, 1, b'M', b'S', b'T', b'R', 1, 0, 0, 1,
        ];
        assert_eq!(
            only(&common),
            Err(MultistreamError::Truncated {
                what: "common header",
                len: 4,
                needed: 8
            })
        );
        assert_eq!(
            only(&common).unwrap_err().to_string(),
            "MSTR body of 4 bytes is shorter than the 8-byte common header"
        );
        let mut scr_head = scr[..20].to_vec();
        scr_head[3] = 4;
        assert_eq!(
            only(&scr_head),
            Err(MultistreamError::Truncated {
                what: "SCR header",
                len: 8,
                needed: 12
            })
        );
        let mut sca_head = scr[..24].to_vec();
        sca_head[0] = 0x81;
        sca_head[3] = 5;
        assert_eq!(
            only(&sca_head),
            Err(MultistreamError::Truncated {
                what: "SCA header",
                len: 12,
                needed: 16
            })
        );

        let sca = Sca {
            sender_ssrc: 1,
            seqno: 1,
            media_ssrc: 0,
            ack_seqno: 1,
            num_total_sources: 1,
            num_live_sources: 1,
            entries: vec![],
        };
        let mut sca_count = sca.encode();
        sca_count[24] = 1;
        assert_eq!(
            only(&sca_count),
            Err(MultistreamError::Count {
                kind: "SCA",
                items: "entries",
                count: 1,
                fit: 0
            })
        );

        // A framing error after a good message: both reported, then the walk stops.
        let mut datagram = sca.encode();
        datagram.extend_from_slice(&[0x81, 204, 0, 40]);
        datagram.extend_from_slice(&sca.encode());
        let all = decode_datagram(&datagram);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], Ok(Message::Sca(sca.clone())));
        assert!(matches!(
            &all[1],
            Err(MultistreamError::Rtcp(RtpError::RtcpLength { .. }))
        ));
        assert!(
            all[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .starts_with("RTCP framing: RTCP packet announces")
        );
        // A bad message does not stop the walk.
        let mut datagram = version.clone();
        datagram.extend_from_slice(&sca.encode());
        let all = decode_datagram(&datagram);
        assert_eq!(
            all,
            vec![
                Err(MultistreamError::Version { version: 2 }),
                Ok(Message::Sca(sca))
            ]
        );
    }

    #[test]
    fn lenient_where_the_profile_leaves_room() {
        let scr = Scr {
            sender_ssrc: 9,
            seqno: 1,
            media_ssrc: 0,
            requests: vec![thumbnail()],
        };
        let mut bytes = scr.encode();
        // Flags, reserved bytes, other request flag bits, a trailing word.
        bytes[13] = 0xff;
        bytes[21] = 0xff;
        bytes[24 + 15] = 0xfe;
        bytes[24 + 17] = 0xff;
        bytes[24 + 34] = 0xff;
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        bytes[3] += 1;
        let expected = Scr {
            requests: vec![ScrRequest {
                dup: false,
                ..thumbnail()
            }],
            ..scr
        };
        assert_eq!(only(&bytes), Ok(Message::Scr(expected)));
        // RTCP padding is removed before the body is read.
        let sca = Sca {
            sender_ssrc: 1,
            seqno: 1,
            media_ssrc: 0,
            ack_seqno: 0,
            num_total_sources: 1,
            num_live_sources: 0,
            entries: vec![],
        };
        let mut padded = sca.encode();
        padded[0] |= 0x20;
        padded.extend_from_slice(&[0, 0, 0, 4]);
        padded[3] += 1;
        assert_eq!(only(&padded), Ok(Message::Sca(sca)));
    }

    #[test]
    fn padding_that_leaves_no_name_is_other_rtcp() {
        // APP of 16 bytes whose padding (8) leaves only the SSRC: not an MSTR message, and no
        // slicing past the name (rtcp-types' App::data would panic on it).
        let datagram = [
            0xa1, 204, 0, 3, 0, 0, 0, 9, b'M', b'S', b'T', b'R', 0, 0, 0, 8,
        ];
        let packets: Vec<_> = rtcp_packets(&datagram).collect();
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].as_ref().unwrap().body, &[0, 0, 0, 9]);
        assert_eq!(decode_datagram(&datagram), vec![]);
        // Padding that leaves the name but no body: an MSTR message too short.
        let datagram = [
            0xa1, 204, 0, 3, 0, 0, 0, 9, b'M', b'S', b'T', b'R', 1, 0, 0, 4,
        ];
        assert_eq!(
            only(&datagram),
            Err(MultistreamError::Truncated {
                what: "common header",
                len: 0,
                needed: COMMON_LEN
            })
        );
        assert_eq!(APP_NAME_STR.as_bytes(), APP_NAME);
    }

    #[test]
    fn encode_caps_the_count_at_255() {
        let scr = Scr {
            sender_ssrc: 1,
            seqno: 1,
            media_ssrc: 0,
            requests: vec![thumbnail(); 300],
        };
        let bytes = scr.encode();
        assert_eq!(bytes.len(), 24 + 255 * SCR_REQUEST_LEN);
        let Ok(Message::Scr(decoded)) = only(&bytes) else {
            panic!("not an SCR");
        };
        assert_eq!(decoded.requests.len(), 255);
        let sca = Sca {
            sender_ssrc: 1,
            seqno: 1,
            media_ssrc: 0,
            ack_seqno: 1,
            num_total_sources: 1,
            num_live_sources: 1,
            entries: vec![
                ScaEntry {
                    srcid: 1,
                    request_index: 0,
                    state: SourceState::Live
                };
                256
            ],
        };
        assert_eq!(sca.encode().len(), 28 + 255 * SCA_ENTRY_LEN);
    }

    fn scr_request() -> impl Strategy<Value = ScrRequest> {
        (
            (
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<u8>(),
                any::<u8>(),
                any::<u8>(),
                any::<bool>(),
                any::<u8>(),
            ),
            (
                any::<u32>(),
                any::<u32>(),
                any::<u16>(),
                any::<u16>(),
                any::<u16>(),
            ),
        )
            .prop_map(
                |(
                    (csi, bitrate_bps, srcid, policy, priority, adjid, dup, payload_type),
                    (max_mbps, max_fs, max_cfps, max_width, max_height),
                )| ScrRequest {
                    csi,
                    bitrate_bps,
                    srcid,
                    policy,
                    priority,
                    adjid,
                    dup,
                    payload_type,
                    max_mbps,
                    max_fs,
                    max_cfps,
                    max_width,
                    max_height,
                },
            )
    }

    fn scr() -> impl Strategy<Value = Scr> {
        (
            any::<u32>(),
            any::<u16>(),
            any::<u32>(),
            proptest::collection::vec(scr_request(), 0..=16),
        )
            .prop_map(|(sender_ssrc, seqno, media_ssrc, requests)| Scr {
                sender_ssrc,
                seqno,
                media_ssrc,
                requests,
            })
    }

    fn sca() -> impl Strategy<Value = Sca> {
        let entry =
            (any::<u32>(), any::<u8>(), any::<u8>()).prop_map(|(srcid, request_index, state)| {
                ScaEntry {
                    srcid,
                    request_index,
                    state: SourceState::from(state),
                }
            });
        (
            any::<u32>(),
            any::<u16>(),
            any::<u32>(),
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(entry, 0..=16),
        )
            .prop_map(
                |(
                    sender_ssrc,
                    seqno,
                    media_ssrc,
                    ack_seqno,
                    num_total_sources,
                    num_live_sources,
                    entries,
                )| Sca {
                    sender_ssrc,
                    seqno,
                    media_ssrc,
                    ack_seqno,
                    num_total_sources,
                    num_live_sources,
                    entries,
                },
            )
    }

    proptest! {
        #[test]
        fn scr_round_trips(scr in scr()) {
            let bytes = scr.encode();
            prop_assert_eq!(bytes.len(), 24 + SCR_REQUEST_LEN * scr.requests.len());
            prop_assert_eq!(rtp::demux(&bytes), rtp::Demux::Rtcp);
            prop_assert_eq!(decode_datagram(&bytes), vec![Ok(Message::Scr(scr))]);
        }

        #[test]
        fn sca_round_trips(sca in sca()) {
            let bytes = sca.encode();
            prop_assert_eq!(bytes.len(), 28 + SCA_ENTRY_LEN * sca.entries.len());
            prop_assert_eq!(rtp::demux(&bytes), rtp::Demux::Rtcp);
            prop_assert_eq!(decode_datagram(&bytes), vec![Ok(Message::Sca(sca))]);
        }

        #[test]
        fn compounds_round_trip(scr in scr(), sca in sca()) {
            let mut bytes = sca.encode();
            bytes.extend_from_slice(&scr.encode());
            prop_assert_eq!(decode_datagram(&bytes), vec![Ok(Message::Sca(sca)), Ok(Message::Scr(scr))]);
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for message in decode_datagram(&bytes).into_iter().flatten() {
                let _ = message.summary();
                prop_assert_eq!(decode_datagram(&message.encode()), vec![Ok(message)]);
            }
        }

        #[test]
        fn never_panics_on_mutated_messages(scr in scr(), flips in proptest::collection::vec((0usize..120, any::<u8>()), 0..6), cut in 0usize..120) {
            let mut bytes = scr.encode();
            for (at, with) in flips {
                if let Some(b) = bytes.get_mut(at) { *b ^= with; }
            }
            bytes.truncate(cut);
            for message in decode_datagram(&bytes).into_iter().flatten() {
                prop_assert_eq!(decode_datagram(&message.encode()), vec![Ok(message)]);
            }
        }
    }
}
