//! RTP (RFC 3550) as the media path uses it (wire profile §7, choices in
//! `docs/wire-profile-choices.md` "§7 Media and multistream"): telling STUN, RTP and RTCP apart
//! on the one BUNDLE socket, reading RTP packets, the RFC 8285 one-byte header extension that
//! carries the CSI, and the RTCP the device sends (sender report + SDES CNAME, BYE) and reads
//! (any compound datagram, packet by packet).
//!
//! Over the maintained `rtp-types` and `rtcp-types` crates (sans I/O, the packet parsers and
//! writers gst-plugins-rs uses), as `proto::stun` is over `stun-types`: they read and write the
//! RTP header, CSRCs, extension header, payload and padding, and the RTCP packets (common
//! header, sender report, SDES, BYE, and the APP packets `proto::multistream` carries). What
//! they do not do is here, each piece saying why:
//! - the RFC 8285 one-byte elements inside the header extension, which rtp-types carries as
//!   opaque bytes: walking them, and the CSI element roomd writes ([`one_byte_elements`],
//!   [`RtpPacket::one_byte_element`], [`write_with_csi`]);
//! - reading a compound RTCP datagram packet by packet, the packets before a bad one included,
//!   with the padding of each checked ([`rtcp_packets`]): rtcp-types' `Compound` refuses a whole
//!   datagram for one bad packet (or for padding anywhere but in its last packet), and its
//!   generic packet does not check that padding fits;
//! - the error names ([`RtpError`]), which say which part of a packet does not fit;
//! - [`demux`] (RFC 7983) and [`ntp_timestamp`], which neither crate has.
//!
//! Sans I/O. Parsing borrows from the datagram and allocates nothing (except
//! [`one_byte_elements`], which returns a list); nothing here panics on any input: every byte
//! string is either a packet or an [`RtpError`] naming what is wrong with it.

use std::iter::FusedIterator;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rtcp_types::prelude::*;
use rtcp_types::utils::parser::{parse_length, parse_padding};
use rtcp_types::{Bye, Compound, RtcpParseError, Sdes, SdesChunk, SdesItem, Unknown};
use rtp_types::RtpParseError;

/// The SDP `a=extmap` URI of the CSI header extension (a profile choice, not an IANA one).
pub const CSI_EXTENSION_URI: &str = "urn:roomd:rtp-hdrext:csi";
/// The extension id roomd offers for the CSI; the answer's id wins.
pub const DEFAULT_CSI_EXTENSION_ID: u8 = 3;
/// The fixed RTP header (before CSRCs and extension).
pub const HEADER_LEN: usize = rtp_types::RtpPacket::MIN_RTP_PACKET_LEN;
/// The RFC 8285 one-byte-form profile ("defined by profile" field of the extension header).
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// The RTCP common header (V/P/count, packet type, length).
pub const RTCP_HEADER_LEN: usize = <Unknown<'static> as rtcp_types::RtcpPacket>::MIN_PACKET_LEN;
/// RTCP sender report.
pub const PT_SR: u8 = <rtcp_types::SenderReport<'static> as rtcp_types::RtcpPacket>::PACKET_TYPE;
/// RTCP source description.
pub const PT_SDES: u8 = <Sdes<'static> as rtcp_types::RtcpPacket>::PACKET_TYPE;
/// RTCP goodbye.
pub const PT_BYE: u8 = <Bye<'static> as rtcp_types::RtcpPacket>::PACKET_TYPE;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// The CSI extension as roomd writes it: header, one element, padding.
const CSI_EXTENSION_LEN: usize = 12;
/// The most sources one BYE packet can list (5-bit count).
const MAX_BYE_SOURCES: usize = <Bye<'static> as rtcp_types::RtcpPacket>::MAX_COUNT as usize;
/// A sender report's sender info, after the common header.
const SENDER_INFO_LEN: usize = 24;
/// One report block of a sender or receiver report.
const REPORT_BLOCK_LEN: usize = 24;

/// What an incoming datagram on the BUNDLE socket is (RFC 7983 / RFC 5761).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demux {
    /// First byte 0–3.
    Stun,
    /// First byte 128–191 and a second byte outside 192–223.
    Rtp,
    /// First byte 128–191 and a second byte (the packet type) 192–223.
    Rtcp,
    /// Anything else (DTLS, TURN channels, garbage, empty): dropped.
    Unknown,
}

/// Classifies a datagram by its first two bytes, the §7 rule. It works because a muxed
/// session keeps RTP payload types out of 64–95 (RFC 5761 §4), so an RTP second byte (marker
/// bit and payload type) never falls in RTCP's packet types 192–223.
pub fn demux(datagram: &[u8]) -> Demux {
    match datagram.first() {
        Some(0..=3) => Demux::Stun,
        Some(128..=191) => match datagram.get(1) {
            Some(192..=223) => Demux::Rtcp,
            _ => Demux::Rtp,
        },
        _ => Demux::Unknown,
    }
}

/// The fixed RTP header fields roomd uses (version, padding, extension and CSRC count are
/// structure, read by [`parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// The RTP header extension: its profile (0xBEDE for RFC 8285 one-byte elements) and its
/// data (the 32-bit words after the extension header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    pub profile: u16,
    pub data: &'a [u8],
}

/// An RTP packet borrowed from its datagram: CSRCs skipped (nothing in the profile mixes),
/// padding removed from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub extension: Option<Extension<'a>>,
    pub payload: &'a [u8],
}

/// Why bytes are not a usable RTP or RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum RtpError {
    /// RTP packet of {len} bytes is shorter than the 12-byte header
    TooShort { len: usize },
    /// RTP packet has version {version}, expected 2
    Version { version: u8 },
    /// RTP packet of {len} bytes is too short for its {count} CSRCs
    Csrcs { len: usize, count: usize },
    /// RTP packet of {len} bytes ends inside its 4-byte header-extension header
    ExtensionHeader { len: usize },
    /// RTP header extension of {words} words does not fit in the {len}-byte packet
    Extension { words: u16, len: usize },
    /// RTP padding of {padding} bytes does not fit in the {available} bytes after the header
    Padding { padding: usize, available: usize },
    /// RTP header-extension element {id} of {len} bytes overruns the {available} bytes left
    ElementTruncated {
        id: u8,
        len: usize,
        available: usize,
    },
    /// RTP header-extension id {id} is not a one-byte-form id (1 to 14)
    ExtensionId { id: u8 },
    /// RTCP packet of {len} bytes is shorter than the 4-byte common header
    RtcpTooShort { len: usize },
    /// RTCP packet has version {version}, expected 2
    RtcpVersion { version: u8 },
    /// RTCP packet announces {announced} bytes but only {available} are left in the datagram
    RtcpLength { announced: usize, available: usize },
    /// RTCP padding of {padding} bytes does not fit in the {available}-byte packet body
    RtcpPadding { padding: usize, available: usize },
    /// RTCP packet type {packet_type} is not a sender report (200)
    NotSenderReport { packet_type: u8 },
    /// RTCP sender report body of {len} bytes is shorter than the {needed} bytes its report count needs
    SenderReportTruncated { len: usize, needed: usize },
}

/// rtp-types' refusal of `datagram` in the words of [`RtpError`], which name the part that does
/// not fit. rtp-types checks the parts in order (fixed header, version, CSRCs, extension
/// header, extension data, padding) and reports how long the packet must be for the first
/// part that does not fit, so that length tells which part it was.
fn rtp_error(datagram: &[u8], error: RtpParseError) -> RtpError {
    let len = datagram.len();
    let needed = match error {
        RtpParseError::UnsupportedVersion(version) => return RtpError::Version { version },
        RtpParseError::Truncated { expected, .. } => Some(expected),
        RtpParseError::PaddingInvalid(_) => None,
    };
    let Some(&first) = datagram.first().filter(|_| len >= HEADER_LEN) else {
        return RtpError::TooShort { len };
    };
    let count = usize::from(first & 0x0f);
    let csrc_end = HEADER_LEN + 4 * count;
    let extension = first & 0x10 != 0;
    let words = datagram
        .get(csrc_end + 2..csrc_end + 4)
        .map_or(0, |w| u16::from_be_bytes([w[0], w[1]]));
    let payload_start = if extension {
        csrc_end + 4 + 4 * usize::from(words)
    } else {
        csrc_end
    };
    match needed {
        Some(needed) if needed == csrc_end => RtpError::Csrcs { len, count },
        Some(needed) if extension && needed == csrc_end + 4 => RtpError::ExtensionHeader { len },
        Some(needed) if extension && needed == payload_start => RtpError::Extension { words, len },
        // The padding count (the last byte, itself included) is 0 or more than what follows the
        // header.
        _ => RtpError::Padding {
            padding: usize::from(datagram[len - 1]),
            available: len.saturating_sub(payload_start),
        },
    }
}

/// Reads an RTP packet: version 2, CSRCs, extension and padding all within the datagram.
pub fn parse(datagram: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    let packet = rtp_types::RtpPacket::parse(datagram).map_err(|e| rtp_error(datagram, e))?;
    // rtp-types lends the extension and payload for as long as its packet value, not the
    // datagram: they are cut from the datagram at its offsets.
    let payload_start = packet.payload_offset();
    Ok(RtpPacket {
        header: RtpHeader {
            marker: packet.marker_bit(),
            payload_type: packet.payload_type(),
            sequence: packet.sequence_number(),
            timestamp: packet.timestamp(),
            ssrc: packet.ssrc(),
        },
        extension: packet.extension().map(|(profile, _)| Extension {
            profile,
            data: &datagram[payload_start - packet.extension_len()..payload_start],
        }),
        payload: &datagram[payload_start..payload_start + packet.payload_len()],
    })
}

/// RFC 8285 §4.2 one-byte elements, walked without allocating (rtp-types leaves the extension
/// data to the profile).
struct OneByteElements<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for OneByteElements<'a> {
    type Item = Result<(u8, &'a [u8]), RtpError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&first, tail) = self.rest.split_first()?;
            let id = first >> 4;
            match id {
                // A padding byte between or after elements; its length bits mean nothing.
                0 => self.rest = tail,
                // Reserved: the rest of the extension is not one-byte elements.
                15 => {
                    self.rest = &[];
                    return None;
                }
                _ => {
                    let len = usize::from(first & 0x0f) + 1;
                    if len > tail.len() {
                        self.rest = &[];
                        return Some(Err(RtpError::ElementTruncated {
                            id,
                            len,
                            available: tail.len(),
                        }));
                    }
                    let (value, rest) = tail.split_at(len);
                    self.rest = rest;
                    return Some(Ok((id, value)));
                }
            }
        }
    }
}

/// The one-byte-form elements (id, value) of extension data (RFC 8285 §4.2): id 0 is a
/// padding byte and skipped, id 15 stops the walk; an element longer than what is left is
/// an error.
pub fn one_byte_elements(data: &[u8]) -> Result<Vec<(u8, &[u8])>, RtpError> {
    OneByteElements { rest: data }.collect()
}

impl<'a> RtpPacket<'a> {
    /// The value of the one-byte element `id`, when the packet has a 0xBEDE extension with it
    /// before any malformed element. Other elements are ignored, as §7 asks of receivers.
    pub fn one_byte_element(&self, id: u8) -> Option<&'a [u8]> {
        let extension = self.extension?;
        if extension.profile != ONE_BYTE_PROFILE || !(1..=14).contains(&id) {
            return None;
        }
        for element in (OneByteElements {
            rest: extension.data,
        }) {
            match element {
                Ok((found, value)) if found == id => return Some(value),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// The CSI the sender put in element `id` (the SDP's extmap id for [`CSI_EXTENSION_URI`]):
    /// only a 4-byte element counts.
    pub fn csi(&self, id: u8) -> Option<u32> {
        let value = self.one_byte_element(id)?;
        <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes)
    }
}

/// `packet` (a payloader's output) as roomd sends it: on `ssrc`, with the §7 CSI extension
/// (any extension it had is replaced). See [`write_with_csi`].
pub fn with_csi(packet: &[u8], ssrc: u32, ext_id: u8, csi: u32) -> Result<Vec<u8>, RtpError> {
    let mut out = Vec::with_capacity(packet.len() + CSI_EXTENSION_LEN);
    write_with_csi(packet, ssrc, ext_id, csi, &mut out)?;
    Ok(out)
}

/// The data of the §7 CSI extension (rtp-types writes the profile and length words before
/// it): the one-byte element `(ext_id << 4) | 3` (a 4-byte value), the CSI big-endian, then
/// three zero padding bytes to the 32-bit boundary.
fn csi_extension_data(ext_id: u8, csi: u32) -> [u8; 8] {
    let [a, b, c, d] = csi.to_be_bytes();
    [(ext_id << 4) | 3, a, b, c, d, 0, 0, 0]
}

/// Rewrites a payloader's packet into `out` (cleared first, so the send path reuses one
/// buffer): sets the SSRC (payloaders do not know the offer's SSRCs), sets the X bit and writes
/// the §7 extension — profile 0xBEDE, length 2 words, element `(ext_id << 4) | 3`, the CSI
/// big-endian, three zero padding bytes — in place of any extension the packet had. Marker,
/// payload type, sequence number, timestamp, CSRCs, payload and padding are kept.
///
/// Fails when `ext_id` is not 1–14 or `packet` is not an RTP packet [`parse`] would accept.
pub fn write_with_csi(
    packet: &[u8],
    ssrc: u32,
    ext_id: u8,
    csi: u32,
    out: &mut Vec<u8>,
) -> Result<(), RtpError> {
    out.clear();
    if !(1..=14).contains(&ext_id) {
        return Err(RtpError::ExtensionId { id: ext_id });
    }
    let extension = csi_extension_data(ext_id, csi);
    let parsed = rtp_types::RtpPacket::parse(packet).map_err(|e| rtp_error(packet, e))?;
    out.reserve(packet.len() + CSI_EXTENSION_LEN);
    // Unchecked: what rtp-types' checks would refuse cannot come from a parsed packet (a 7-bit
    // payload type, at most 15 CSRCs, a padding count over 0) and an 8-byte extension.
    parsed
        .as_builder()
        .ssrc(ssrc)
        .extension(ONE_BYTE_PROFILE, &extension[..])
        .write_into_vec_unchecked(out);
    // rtp-types writes padding as zeros and the count: the payloader's own padding bytes are
    // put back, so everything after the extension is as the payloader wrote it.
    if let Some(padding) = parsed.padding() {
        let padding = usize::from(padding);
        let start = out.len() - padding;
        out[start..].copy_from_slice(&packet[packet.len() - padding..]);
    }
    Ok(())
}

/// The sender-info of an RTCP sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    /// 64-bit NTP time of the report, see [`ntp_timestamp`].
    pub ntp: u64,
    /// The RTP timestamp of the same instant.
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// The bytes of an RTCP packet or compound that rtcp-types' builders describe. Every builder
/// roomd makes is within rtcp-types' limits (a CNAME of at most 255 bytes, at most 31 sources a
/// BYE, APP data in whole 32-bit words, no padding), which its size check confirms; were one
/// not, nothing would be written rather than a panic.
pub(crate) fn write_rtcp(packet: &impl RtcpPacketWriter) -> Vec<u8> {
    let size = packet.calculate_size();
    debug_assert!(
        size.is_ok(),
        "RTCP builder out of rtcp-types' limits: {size:?}"
    );
    let Ok(size) = size else {
        return Vec::new();
    };
    let mut out = vec![0; size];
    let written = packet.write_into_unchecked(&mut out);
    out.truncate(written);
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_str(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The compound packet §7 sends every second per sending SSRC: a sender report (PT 200,
/// no report blocks: roomd reports on what it sends, the node on what it receives) then an
/// SDES (PT 202) with one chunk for `report.ssrc` holding the CNAME, null-terminated and
/// padded to 32 bits (RFC 3550 §6.5). A CNAME over 255 bytes is cut at 255 (the item length is
/// one byte).
pub fn sender_report_compound(report: &SenderReport, cname: &str) -> Vec<u8> {
    let cname = truncate_str(cname, 255);
    write_rtcp(
        &Compound::builder()
            .add_packet(
                rtcp_types::SenderReport::builder(report.ssrc)
                    .ntp_timestamp(report.ntp)
                    .rtp_timestamp(report.rtp_timestamp)
                    .packet_count(report.packet_count)
                    .octet_count(report.octet_count),
            )
            .add_packet(Sdes::builder().add_chunk(
                SdesChunk::builder(report.ssrc).add_item(SdesItem::builder(SdesItem::CNAME, cname)),
            )),
    )
}

/// The teardown BYE (PT 203) listing `ssrcs`. One packet holds at most 31 sources (5-bit
/// count), so more become several BYE packets in the one compound datagram.
pub fn bye(ssrcs: &[u32]) -> Vec<u8> {
    let mut compound = Compound::builder();
    if ssrcs.is_empty() {
        compound = compound.add_packet(Bye::builder());
    }
    for chunk in ssrcs.chunks(MAX_BYE_SOURCES) {
        let packet = chunk
            .iter()
            .fold(Bye::builder(), |packet, &ssrc| packet.add_source(ssrc));
        compound = compound.add_packet(packet);
    }
    write_rtcp(&compound)
}

/// The 64-bit NTP timestamp of `at`: seconds since 1900 in the high 32 bits (wrapping into
/// NTP era 1 in 2036, as RFC 5905 has it), the fraction of a second in the low 32. Times
/// before 1900 read as 1900.
pub fn ntp_timestamp(at: SystemTime) -> u64 {
    let since_1900 = match at.duration_since(UNIX_EPOCH) {
        Ok(after) => Duration::from_secs(NTP_UNIX_OFFSET).saturating_add(after),
        Err(before) => Duration::from_secs(NTP_UNIX_OFFSET).saturating_sub(before.duration()),
    };
    let seconds = since_1900.as_secs() & 0xffff_ffff;
    let fraction = (u64::from(since_1900.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

/// One RTCP packet of a (compound) datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpPacket<'a> {
    /// The 5-bit field after V and P: report/source count, or the APP subtype.
    pub count: u8,
    pub packet_type: u8,
    /// What follows the 4-byte common header, padding removed.
    pub body: &'a [u8],
    /// The whole packet, header and padding included.
    bytes: &'a [u8],
}

impl<'a> RtcpPacket<'a> {
    /// The whole packet, common header and padding included: what rtcp-types' parsers of the
    /// packet types read.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// The RTCP packets of a datagram, in order; see [`rtcp_packets`].
#[derive(Debug, Clone)]
pub struct RtcpPackets<'a> {
    rest: &'a [u8],
}

/// The first RTCP packet of `datagram` and how many bytes it used.
fn rtcp_packet(datagram: &[u8]) -> Result<(RtcpPacket<'_>, usize), RtpError> {
    let available = datagram.len();
    if available < RTCP_HEADER_LEN {
        return Err(RtpError::RtcpTooShort { len: available });
    }
    let announced = parse_length(datagram);
    let bytes = &datagram[..announced.min(available)];
    let packet = Unknown::parse(bytes).map_err(|e| match e {
        RtcpParseError::UnsupportedVersion(version) => RtpError::RtcpVersion { version },
        // For 4 bytes or more, the one other refusal: fewer bytes than announced.
        _ => RtpError::RtcpLength {
            announced,
            available,
        },
    })?;
    // rtcp-types leaves padding to the parsers of the packet types, which only refuse a count
    // of 0: whether it fits in the packet is checked here, for every packet type.
    let mut body = &bytes[RTCP_HEADER_LEN..];
    if let Some(padding) = parse_padding(bytes) {
        let padding = usize::from(padding);
        if padding == 0 || padding > body.len() {
            return Err(RtpError::RtcpPadding {
                padding,
                available: body.len(),
            });
        }
        body = &body[..body.len() - padding];
    }
    Ok((
        RtcpPacket {
            count: packet.count(),
            packet_type: packet.type_(),
            body,
            bytes,
        },
        announced,
    ))
}

impl<'a> Iterator for RtcpPackets<'a> {
    type Item = Result<RtcpPacket<'a>, RtpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match rtcp_packet(self.rest) {
            Ok((packet, used)) => {
                self.rest = &self.rest[used..];
                Some(Ok(packet))
            }
            Err(e) => {
                // Past a framing error nothing says where the next packet starts.
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for RtcpPackets<'_> {}

/// The RTCP packets of a datagram (one, or a compound), each checked against its own length
/// field; stops after the first error. Receivers handle each packet they understand (§7).
///
/// rtcp-types' `Compound` is not used: it refuses the whole datagram when one packet is bad,
/// where receivers still handle the packets before it, and padding anywhere but in the last
/// packet, which roomd accepts.
pub fn rtcp_packets(datagram: &[u8]) -> RtcpPackets<'_> {
    RtcpPackets { rest: datagram }
}

/// A sender report with what roomd does not interpret kept raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedSenderReport<'a> {
    pub report: SenderReport,
    /// The report blocks, `count` × 24 bytes (RFC 3550 §6.4.1), unparsed.
    pub report_blocks: &'a [u8],
    /// Profile-specific extension bytes after the report blocks.
    pub profile_extension: &'a [u8],
}

impl<'a> ParsedSenderReport<'a> {
    /// Reads a sender report (PT 200) whose body holds its sender info and report blocks.
    pub fn parse(packet: &RtcpPacket<'a>) -> Result<Self, RtpError> {
        if packet.packet_type != PT_SR {
            return Err(RtpError::NotSenderReport {
                packet_type: packet.packet_type,
            });
        }
        let body = packet.body;
        let blocks_end = SENDER_INFO_LEN + REPORT_BLOCK_LEN * usize::from(packet.count);
        let truncated = RtpError::SenderReportTruncated {
            len: body.len(),
            needed: blocks_end,
        };
        // rtcp-types counts the padding towards the report blocks; roomd does not.
        if body.len() < blocks_end {
            return Err(truncated);
        }
        // Past the checks above and rtcp_packets' framing, rtcp-types accepts the packet.
        let Ok(sr) = rtcp_types::SenderReport::parse(packet.bytes) else {
            return Err(truncated);
        };
        Ok(Self {
            report: SenderReport {
                ssrc: sr.ssrc(),
                ntp: sr.ntp_timestamp(),
                rtp_timestamp: sr.rtp_timestamp(),
                packet_count: sr.packet_count(),
                octet_count: sr.octet_count(),
            },
            report_blocks: &body[SENDER_INFO_LEN..blocks_end],
            profile_extension: &body[blocks_end..],
        })
    }
}

/// The sender info of a sender report (tests, and the receive side's lip-sync clock).
pub fn parse_sender_report(packet: &RtcpPacket<'_>) -> Result<SenderReport, RtpError> {
    ParsedSenderReport::parse(packet).map(|parsed| parsed.report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A payloader's packet: marker, pt 126, seq 0x1234, ts 0x01020304, ssrc 0xdeadbeef.
    fn plain(payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x80,
            0x80 | 126,
            0x12,
            0x34,
            1,
            2,
            3,
            4,
            0xde,
            0xad,
            0xbe,
            0xef,
        ];
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn demux_follows_rfc_7983() {
        assert_eq!(demux(&[0x00, 0x01, 0, 0]), Demux::Stun);
        assert_eq!(demux(&[0x03]), Demux::Stun);
        assert_eq!(demux(&[0x80, 200]), Demux::Rtcp);
        assert_eq!(demux(&[0x81, 204]), Demux::Rtcp);
        assert_eq!(demux(&[0xbf, 192]), Demux::Rtcp);
        assert_eq!(demux(&[0x80, 223]), Demux::Rtcp);
        assert_eq!(demux(&[0x80, 126]), Demux::Rtp);
        assert_eq!(demux(&[0x80, 0x80 | 126]), Demux::Rtp);
        assert_eq!(demux(&[0x80, 224]), Demux::Rtp);
        assert_eq!(demux(&[0x90]), Demux::Rtp);
        assert_eq!(demux(&[20, 3, 3]), Demux::Unknown); // DTLS
        assert_eq!(demux(&[0x40, 0]), Demux::Unknown); // TURN channel
        assert_eq!(demux(&[192, 200]), Demux::Unknown);
        assert_eq!(demux(&[]), Demux::Unknown);
    }

    #[test]
    fn parses_a_plain_packet() {
        let bytes = plain(b"hello");
        let packet = parse(&bytes).unwrap();
        assert_eq!(
            packet.header,
            RtpHeader {
                marker: true,
                payload_type: 126,
                sequence: 0x1234,
                timestamp: 0x0102_0304,
                ssrc: 0xdead_beef,
            }
        );
        assert_eq!(packet.extension, None);
        assert_eq!(packet.payload, b"hello");
        assert_eq!(packet.csi(3), None);
        assert_eq!(packet.one_byte_element(3), None);
        // Header only: empty payload.
        assert_eq!(parse(&plain(b"")).unwrap().payload, b"");
    }

    #[test]
    fn skips_csrcs_and_removes_padding() {
        // CC=2, P=1, no marker, pt 111.
        let mut bytes = vec![0xa2, 111, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7];
        bytes.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]);
        bytes.extend_from_slice(b"opus");
        bytes.extend_from_slice(&[0, 0, 3]);
        let packet = parse(&bytes).unwrap();
        assert!(!packet.header.marker);
        assert_eq!(packet.header.payload_type, 111);
        assert_eq!(packet.header.ssrc, 7);
        assert_eq!(packet.payload, b"opus");
    }

    #[test]
    fn reads_the_csi_element_among_others() {
        // 0xBEDE, 3 words: padding byte, element 1 (2 bytes), element 3 (4 bytes: the CSI),
        // element 5 (1 byte), padding.
        let mut bytes = plain(b"");
        bytes[0] |= 0x10;
        bytes.truncate(HEADER_LEN);
        bytes.extend_from_slice(&[0xbe, 0xde, 0, 3]);
        bytes.extend_from_slice(&[0x00, 0x11, 0xaa, 0xbb, 0x33, 0x00, 0x00, 0x17, 0x01]);
        bytes.extend_from_slice(&[0x50, 0x42, 0x00]);
        bytes.extend_from_slice(b"payload");
        let packet = parse(&bytes).unwrap();
        let extension = packet.extension.unwrap();
        assert_eq!(extension.profile, ONE_BYTE_PROFILE);
        assert_eq!(extension.data.len(), 12);
        assert_eq!(packet.payload, b"payload");
        assert_eq!(packet.csi(3), Some(0x1701));
        assert_eq!(packet.one_byte_element(1), Some(&[0xaa, 0xbb][..]));
        assert_eq!(packet.one_byte_element(5), Some(&[0x42][..]));
        // Not 4 bytes: not a CSI.
        assert_eq!(packet.csi(1), None);
        assert_eq!(packet.csi(4), None);
        assert_eq!(packet.one_byte_element(0), None);
        assert_eq!(packet.one_byte_element(15), None);
        assert_eq!(
            one_byte_elements(extension.data).unwrap(),
            vec![
                (1, &[0xaa, 0xbb][..]),
                (3, &[0, 0, 0x17, 0x01][..]),
                (5, &[0x42][..])
            ]
        );
    }

    #[test]
    fn elements_only_for_the_one_byte_profile() {
        // RFC 8285 two-byte form (0x100x): the same bytes are not one-byte elements.
        let mut bytes = plain(b"");
        bytes[0] |= 0x10;
        bytes.extend_from_slice(&[0x10, 0x00, 0, 2, 3, 4, 0, 0, 0x17, 0x01, 0, 0]);
        let packet = parse(&bytes).unwrap();
        assert_eq!(packet.extension.unwrap().profile, 0x1000);
        assert_eq!(packet.csi(3), None);
    }

    #[test]
    fn one_byte_elements_padding_stop_and_truncation() {
        assert_eq!(one_byte_elements(&[]).unwrap(), vec![]);
        assert_eq!(one_byte_elements(&[0, 0, 0]).unwrap(), vec![]);
        // Id 15 stops: what follows is not read, even if malformed.
        assert_eq!(
            one_byte_elements(&[0x20, 9, 0xf0, 0x3f]).unwrap(),
            vec![(2, &[9][..])]
        );
        assert_eq!(
            one_byte_elements(&[0x23, 0, 0]),
            Err(RtpError::ElementTruncated {
                id: 2,
                len: 4,
                available: 2
            })
        );
        assert_eq!(
            RtpError::ElementTruncated {
                id: 2,
                len: 4,
                available: 2
            }
            .to_string(),
            "RTP header-extension element 2 of 4 bytes overruns the 2 bytes left"
        );
        // A malformed element after the CSI does not hide the CSI; one before it does.
        let mut bytes = plain(b"");
        bytes[0] |= 0x10;
        bytes.extend_from_slice(&[0xbe, 0xde, 0, 2, 0x33, 0, 0, 0, 5, 0x4f, 0, 0]);
        assert_eq!(parse(&bytes).unwrap().csi(3), Some(5));
        let mut bytes = plain(b"");
        bytes[0] |= 0x10;
        bytes.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x1f, 0x33, 0, 0]);
        assert_eq!(parse(&bytes).unwrap().csi(3), None);
    }

    #[test]
    fn parse_names_every_length_error() {
        assert_eq!(parse(&[0x80; 7]), Err(RtpError::TooShort { len: 7 }));
        assert_eq!(
            RtpError::TooShort { len: 7 }.to_string(),
            "RTP packet of 7 bytes is shorter than the 12-byte header"
        );
        let mut v1 = plain(b"x");
        v1[0] = 0x40;
        assert_eq!(parse(&v1), Err(RtpError::Version { version: 1 }));
        let mut csrcs = plain(b"abcd");
        csrcs[0] |= 0x02;
        assert_eq!(parse(&csrcs), Err(RtpError::Csrcs { len: 16, count: 2 }));
        assert_eq!(
            RtpError::Csrcs { len: 16, count: 2 }.to_string(),
            "RTP packet of 16 bytes is too short for its 2 CSRCs"
        );
        let mut ext_head = plain(&[0xbe, 0xde]);
        ext_head[0] |= 0x10;
        assert_eq!(parse(&ext_head), Err(RtpError::ExtensionHeader { len: 14 }));
        let mut ext = plain(&[0xbe, 0xde, 0, 2, 0x30, 0, 0, 0]);
        ext[0] |= 0x10;
        assert_eq!(parse(&ext), Err(RtpError::Extension { words: 2, len: 20 }));
        assert_eq!(
            RtpError::Extension { words: 2, len: 20 }.to_string(),
            "RTP header extension of 2 words does not fit in the 20-byte packet"
        );
        let mut padding = plain(&[1, 2, 5]);
        padding[0] |= 0x20;
        assert_eq!(
            parse(&padding),
            Err(RtpError::Padding {
                padding: 5,
                available: 3
            })
        );
        let mut zero = plain(&[1, 2, 0]);
        zero[0] |= 0x20;
        assert_eq!(
            parse(&zero),
            Err(RtpError::Padding {
                padding: 0,
                available: 3
            })
        );
        // Padding bit but nothing after the header: the count would be a header byte.
        let mut empty = plain(b"");
        empty[0] |= 0x20;
        assert!(matches!(
            parse(&empty),
            Err(RtpError::Padding { available: 0, .. })
        ));
        // All padding is a valid, empty payload.
        let mut all = plain(&[0, 0, 3]);
        all[0] |= 0x20;
        assert_eq!(parse(&all).unwrap().payload, b"");
    }

    #[test]
    fn with_csi_writes_the_profile_extension() {
        let bytes = plain(b"frame");
        let out = with_csi(&bytes, 0x0a0b_0c0d, 3, 0x0012_3401).unwrap();
        let mut expected = vec![
            0x90,
            0x80 | 126,
            0x12,
            0x34,
            1,
            2,
            3,
            4,
            0x0a,
            0x0b,
            0x0c,
            0x0d,
        ];
        expected.extend_from_slice(&[
            0xbe, 0xde, 0x00, 0x02, 0x33, 0x00, 0x12, 0x34, 0x01, 0, 0, 0,
        ]);
        expected.extend_from_slice(b"frame");
        assert_eq!(out, expected);
        let packet = parse(&out).unwrap();
        assert_eq!(packet.csi(3), Some(0x0012_3401));
        assert_eq!(packet.header.ssrc, 0x0a0b_0c0d);
        assert_eq!(packet.payload, b"frame");
    }

    #[test]
    fn with_csi_replaces_an_extension_and_keeps_csrcs_and_padding() {
        // CC=1, X, P: a two-byte-form extension of 1 word, payload "ab", 2 bytes of padding.
        let mut bytes = vec![0xb1, 96, 0, 9, 0, 0, 1, 0, 0, 0, 0, 1];
        bytes.extend_from_slice(&[0xcc, 0xcc, 0xcc, 0xcc]);
        bytes.extend_from_slice(&[0x10, 0x00, 0x00, 0x01, 7, 1, 9, 0]);
        bytes.extend_from_slice(b"ab");
        bytes.extend_from_slice(&[0, 2]);
        let mut out = vec![0xff; 3];
        write_with_csi(&bytes, 42, 14, 0x101, &mut out).unwrap();
        assert_eq!(out[0], 0xb1);
        assert_eq!(&out[12..16], &[0xcc; 4]);
        assert_eq!(&out[16..28], &[0xbe, 0xde, 0, 2, 0xe3, 0, 0, 1, 1, 0, 0, 0]);
        assert_eq!(&out[28..], &[b'a', b'b', 0, 2]);
        let packet = parse(&out).unwrap();
        assert_eq!(packet.payload, b"ab");
        assert_eq!(packet.header.ssrc, 42);
        assert_eq!(packet.csi(14), Some(0x101));
        assert_eq!(packet.header.sequence, 9);
        assert_eq!(packet.header.timestamp, 256);
    }

    #[test]
    fn with_csi_keeps_the_payloaders_padding_bytes() {
        // Padding bytes other than the count are the sender's to choose (RFC 3550 §5.1).
        let mut bytes = plain(b"ab");
        bytes[0] |= 0x20;
        bytes.extend_from_slice(&[7, 8, 3]);
        let out = with_csi(&bytes, 1, 3, 2).unwrap();
        assert_eq!(&out[HEADER_LEN + 12..], &[b'a', b'b', 7, 8, 3]);
        assert_eq!(parse(&out).unwrap().payload, b"ab");
    }

    #[test]
    fn with_csi_rejects_bad_ids_and_packets() {
        let bytes = plain(b"x");
        assert_eq!(
            with_csi(&bytes, 1, 0, 1),
            Err(RtpError::ExtensionId { id: 0 })
        );
        assert_eq!(
            with_csi(&bytes, 1, 15, 1),
            Err(RtpError::ExtensionId { id: 15 })
        );
        assert_eq!(
            RtpError::ExtensionId { id: 15 }.to_string(),
            "RTP header-extension id 15 is not a one-byte-form id (1 to 14)"
        );
        assert_eq!(
            with_csi(&bytes[..5], 1, 3, 1),
            Err(RtpError::TooShort { len: 5 })
        );
        let mut out = vec![1, 2, 3];
        assert!(write_with_csi(b"\x00\x01garbage!!!!", 1, 3, 1, &mut out).is_err());
        assert!(out.is_empty(), "the buffer is cleared even on error");
    }

    #[test]
    fn sender_report_compound_is_sr_then_padded_sdes() {
        let report = SenderReport {
            ssrc: 0x1122_3344,
            ntp: 0xe000_0000_8000_0000,
            rtp_timestamp: 90_000,
            packet_count: 10,
            octet_count: 12_000,
        };
        let bytes = sender_report_compound(&report, "roomd");
        // SR: 28 bytes; SDES: header 4 + ssrc 4 + type/len 2 + "roomd" 5 + 1 null = 16.
        assert_eq!(bytes.len(), 44);
        assert_eq!(&bytes[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&bytes[28..32], &[0x81, 202, 0, 3]);
        assert_eq!(&bytes[32..36], &[0x11, 0x22, 0x33, 0x44]);
        assert_eq!(&bytes[36..44], &[1, 5, b'r', b'o', b'o', b'm', b'd', 0]);
        assert_eq!(demux(&bytes), Demux::Rtcp);
        let packets: Vec<_> = rtcp_packets(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(packets.len(), 2);
        assert_eq!(parse_sender_report(&packets[0]), Ok(report));
        assert_eq!(packets[1].packet_type, PT_SDES);
        assert_eq!(packets[1].count, 1);

        // A CNAME whose chunk is already 32-bit aligned still gets a null word.
        let aligned = sender_report_compound(&report, "ab");
        assert_eq!(aligned.len(), 28 + 4 + 12);
        assert_eq!(&aligned[36..], &[1, 2, b'a', b'b', 0, 0, 0, 0]);
        // Over 255 bytes: cut on a character boundary.
        let long = "é".repeat(200);
        let bytes = sender_report_compound(&report, &long);
        assert_eq!(bytes[37], 254);
        assert_eq!(rtcp_packets(&bytes).filter(Result::is_ok).count(), 2);
    }

    #[test]
    fn bye_lists_the_sources() {
        assert_eq!(bye(&[]), vec![0x80, 203, 0, 0]);
        assert_eq!(
            bye(&[1, 0x0203_0405]),
            vec![0x82, 203, 0, 2, 0, 0, 0, 1, 2, 3, 4, 5]
        );
        let many: Vec<u32> = (0..40).collect();
        let bytes = bye(&many);
        let packets: Vec<_> = rtcp_packets(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(packets.len(), 2);
        assert_eq!((packets[0].count, packets[0].body.len()), (31, 124));
        assert_eq!((packets[1].count, packets[1].body.len()), (9, 36));
        assert_eq!(packets[1].packet_type, PT_BYE);
    }

    #[test]
    fn ntp_timestamps() {
        assert_eq!(ntp_timestamp(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
        let half = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(
            ntp_timestamp(half),
            ((NTP_UNIX_OFFSET + 1) << 32) | 0x8000_0000
        );
        // 2022-04-25T19:21:47Z, seed 000's overlay change.
        let at = UNIX_EPOCH + Duration::from_secs(1_650_914_507);
        assert_eq!(ntp_timestamp(at) >> 32, 1_650_914_507 + NTP_UNIX_OFFSET);
        // Before 1900 reads as 1900; 2036 wraps into era 1.
        let early = UNIX_EPOCH - Duration::from_secs(NTP_UNIX_OFFSET + 10);
        assert_eq!(ntp_timestamp(early), 0);
        let era1 = UNIX_EPOCH + Duration::from_secs((1 << 32) - NTP_UNIX_OFFSET + 5);
        assert_eq!(ntp_timestamp(era1), 5 << 32);
    }

    #[test]
    fn rtcp_framing_errors_stop_the_walk() {
        assert_eq!(rtcp_packets(&[]).count(), 0);
        let mut bytes = bye(&[7]);
        bytes.extend_from_slice(&[0x80, 200, 0]);
        let items: Vec<_> = rtcp_packets(&bytes).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(items[1], Err(RtpError::RtcpTooShort { len: 3 }));

        let items: Vec<_> = rtcp_packets(&[0x40, 200, 0, 0, 0x80, 203, 0, 0]).collect();
        assert_eq!(items, vec![Err(RtpError::RtcpVersion { version: 1 })]);

        assert_eq!(
            rtcp_packets(&[0x80, 200, 0, 6, 0, 0]).next(),
            Some(Err(RtpError::RtcpLength {
                announced: 28,
                available: 6
            }))
        );
        assert_eq!(
            RtpError::RtcpLength {
                announced: 28,
                available: 6
            }
            .to_string(),
            "RTCP packet announces 28 bytes but only 6 are left in the datagram"
        );
        // Padding: a count that fits is removed, 0 or too many is an error.
        let padded = [0xa1, 203, 0, 2, 0, 0, 0, 9, 0, 0, 0, 4];
        let packet = rtcp_packets(&padded).next().unwrap().unwrap();
        assert_eq!(packet.body, &[0, 0, 0, 9]);
        let over = [0xa1, 203, 0, 1, 0, 0, 0, 9];
        assert_eq!(
            rtcp_packets(&over).next(),
            Some(Err(RtpError::RtcpPadding {
                padding: 9,
                available: 4
            }))
        );
        let zero = [0xa1, 203, 0, 1, 0, 0, 0, 0];
        assert!(matches!(
            rtcp_packets(&zero).next(),
            Some(Err(RtpError::RtcpPadding { padding: 0, .. }))
        ));
        let mut iter = rtcp_packets(&zero);
        iter.next();
        assert_eq!(iter.next(), None);
    }

    #[test]
    fn sender_report_errors() {
        let bye = bye(&[1]);
        let packet = rtcp_packets(&bye).next().unwrap().unwrap();
        assert_eq!(
            parse_sender_report(&packet),
            Err(RtpError::NotSenderReport { packet_type: 203 })
        );
        // RC=1 but no report block.
        let mut sr = sender_report_compound(
            &SenderReport {
                ssrc: 1,
                ntp: 2,
                rtp_timestamp: 3,
                packet_count: 4,
                octet_count: 5,
            },
            "x",
        );
        sr[0] |= 1;
        let packet = rtcp_packets(&sr).next().unwrap().unwrap();
        assert_eq!(
            parse_sender_report(&packet),
            Err(RtpError::SenderReportTruncated {
                len: 24,
                needed: 48
            })
        );
        // With its report block and a profile extension.
        let mut with_block = vec![0x81, 200, 0, 13];
        with_block.extend_from_slice(&[0; 24]);
        with_block.extend_from_slice(&[7; 24]);
        with_block.extend_from_slice(&[9; 4]);
        let packet = rtcp_packets(&with_block).next().unwrap().unwrap();
        let parsed = ParsedSenderReport::parse(&packet).unwrap();
        assert_eq!(parsed.report_blocks, &[7; 24]);
        assert_eq!(parsed.profile_extension, &[9; 4]);
    }

    fn rtp_packet() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<[u8; 12]>(),
            0usize..4,
            proptest::option::of((any::<u16>(), 0usize..4)),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::option::of(1u8..8),
        )
            .prop_map(|(mut head, csrcs, extension, payload, padding)| {
                head[0] = 0x80 | csrcs as u8;
                let mut bytes = head.to_vec();
                bytes.extend(std::iter::repeat_n(0x5a, 4 * csrcs));
                if let Some((profile, words)) = extension {
                    bytes[0] |= 0x10;
                    bytes.extend_from_slice(&profile.to_be_bytes());
                    bytes.extend_from_slice(&(words as u16).to_be_bytes());
                    bytes.extend(std::iter::repeat_n(0x21, 4 * words));
                }
                bytes.extend_from_slice(&payload);
                if let Some(padding) = padding {
                    bytes[0] |= 0x20;
                    bytes.extend(std::iter::repeat_n(0, usize::from(padding) - 1));
                    bytes.push(padding);
                }
                bytes
            })
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..120), ssrc in any::<u32>(), id in any::<u8>(), csi in any::<u32>()) {
            let _ = demux(&bytes);
            if let Ok(packet) = parse(&bytes) {
                for id in 0..16 {
                    let _ = packet.csi(id);
                }
            }
            let _ = one_byte_elements(&bytes);
            for packet in rtcp_packets(&bytes).flatten() {
                let _ = parse_sender_report(&packet);
            }
            let _ = with_csi(&bytes, ssrc, id, csi);
        }

        #[test]
        fn with_csi_then_parse_keeps_everything_but_the_ssrc(bytes in rtp_packet(), ssrc in any::<u32>(), id in 1u8..15, csi in any::<u32>()) {
            let before = parse(&bytes).unwrap();
            let out = with_csi(&bytes, ssrc, id, csi).unwrap();
            let after = parse(&out).unwrap();
            prop_assert_eq!(after.header, RtpHeader { ssrc, ..before.header });
            prop_assert_eq!(after.payload, before.payload);
            prop_assert_eq!(after.csi(id), Some(csi));
            prop_assert_eq!(after.extension.unwrap().profile, ONE_BYTE_PROFILE);
            let csi_bytes = csi.to_be_bytes();
            prop_assert_eq!(one_byte_elements(after.extension.unwrap().data).unwrap(), vec![(id, &csi_bytes[..])]);
            // Applying it twice is the same as once.
            prop_assert_eq!(with_csi(&out, ssrc, id, csi).unwrap(), out);
        }

        #[test]
        fn with_csi_accepts_exactly_what_parse_accepts(bytes in proptest::collection::vec(any::<u8>(), 0..64), id in 1u8..15) {
            let mut bytes = bytes;
            if let Some(first) = bytes.first_mut() {
                *first = 0x80 | (*first & 0x3f);
            }
            prop_assert_eq!(parse(&bytes).is_ok(), with_csi(&bytes, 1, id, 2).is_ok());
        }

        #[test]
        fn sender_reports_round_trip(ssrc in any::<u32>(), ntp in any::<u64>(), rtp_timestamp in any::<u32>(), packet_count in any::<u32>(), octet_count in any::<u32>(), cname in "[a-z0-9@.]{0,40}") {
            let report = SenderReport { ssrc, ntp, rtp_timestamp, packet_count, octet_count };
            let bytes = sender_report_compound(&report, &cname);
            prop_assert_eq!(bytes.len() % 4, 0);
            let packets: Vec<_> = rtcp_packets(&bytes).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(packets.len(), 2);
            prop_assert_eq!(parse_sender_report(&packets[0]), Ok(report));
            let sdes = packets[1].body;
            prop_assert_eq!(&sdes[..4], &ssrc.to_be_bytes());
            prop_assert_eq!(&sdes[6..6 + cname.len()], cname.as_bytes());
            prop_assert!(sdes[6 + cname.len()..].iter().all(|&b| b == 0));
        }
    }
}
