//! The media node's wire formats, written by hand from the profile (wire profile §7,
//! `docs/wire-profile-choices.md` §7): datagram demultiplexing (RFC 7983 / RFC 5761), the RTP
//! header with RFC 8285 one-byte header extensions, RTCP packet iteration with sender report,
//! SDES and BYE parsing, and the multistream `MSTR` APP packets (SCA, SCR).
//!
//! Every parser takes untrusted bytes and answers an error naming what was wrong; none panics.

use std::fmt;

/// What a datagram on the media socket is, from its first two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Stun,
    Rtp,
    Rtcp,
    /// Anything else (DTLS, TURN channel data, garbage).
    Unknown,
}

/// RFC 7983 / RFC 5761 demultiplexing as the contract states it: first byte 0–3 → STUN; first
/// byte 128–191 and second byte 192–223 → RTCP; otherwise first byte 128–191 → RTP.
pub(crate) fn classify(datagram: &[u8]) -> Kind {
    match datagram {
        [0..=3, ..] => Kind::Stun,
        [128..=191, 192..=223, ..] => Kind::Rtcp,
        [128..=191, ..] => Kind::Rtp,
        _ => Kind::Unknown,
    }
}

/// Why a packet could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Malformed {}

fn malformed<T>(msg: impl Into<String>) -> Result<T, Malformed> {
    Err(Malformed(msg.into()))
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

// ---------------------------------------------------------------------------------------------
// RTP

/// RFC 8285 one-byte header extension profile.
pub(crate) const ONE_BYTE_PROFILE: u16 = 0xBEDE;

/// A parsed RTP packet, borrowing the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rtp<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// The header extension: (profile, data) when the X bit is set.
    pub extension: Option<(u16, &'a [u8])>,
    /// The payload, without header, extension or padding.
    pub payload: &'a [u8],
    /// The payload plus padding: what follows the header (kept when rewriting a packet).
    pub body: &'a [u8],
}

impl<'a> Rtp<'a> {
    /// Parses an RTP packet (RFC 3550 §5.1): version 2, CSRCs, extension and padding must fit.
    pub(crate) fn parse(b: &'a [u8]) -> Result<Self, Malformed> {
        if b.len() < 12 {
            return malformed(format!(
                "RTP packet of {} bytes is shorter than its 12-byte header",
                b.len()
            ));
        }
        if b[0] >> 6 != 2 {
            return malformed(format!("RTP version {} (must be 2)", b[0] >> 6));
        }
        let padding = b[0] & 0x20 != 0;
        let has_extension = b[0] & 0x10 != 0;
        let csrcs = usize::from(b[0] & 0x0F);
        let mut at = 12 + 4 * csrcs;
        if b.len() < at {
            return malformed(format!(
                "RTP packet of {} bytes cannot hold its {csrcs} CSRCs",
                b.len()
            ));
        }
        let mut extension = None;
        if has_extension {
            if b.len() < at + 4 {
                return malformed("RTP header extension header is truncated");
            }
            let profile = be16(b, at);
            let words = usize::from(be16(b, at + 2));
            let end = at + 4 + 4 * words;
            if b.len() < end {
                return malformed(format!(
                    "RTP header extension of {words} words runs past the packet's {} bytes",
                    b.len()
                ));
            }
            extension = Some((profile, &b[at + 4..end]));
            at = end;
        }
        let body = &b[at..];
        let mut payload = body;
        if padding {
            let Some(&count) = body.last() else {
                return malformed("RTP padding bit set but the packet has no payload");
            };
            let count = usize::from(count);
            if count == 0 || count > body.len() {
                return malformed(format!(
                    "RTP padding count {count} does not fit the {}-byte payload",
                    body.len()
                ));
            }
            payload = &body[..body.len() - count];
        }
        Ok(Self {
            marker: b[1] & 0x80 != 0,
            payload_type: b[1] & 0x7F,
            sequence: be16(b, 2),
            timestamp: be32(b, 4),
            ssrc: be32(b, 8),
            extension,
            payload,
            body,
        })
    }

    /// The data of the one-byte extension element `id`, if the packet carries one.
    pub(crate) fn one_byte_element(&self, id: u8) -> Option<&'a [u8]> {
        match self.extension {
            Some((ONE_BYTE_PROFILE, data)) => one_byte_elements(data)
                .find(|(i, _)| *i == id)
                .map(|(_, d)| d),
            _ => None,
        }
    }

    /// The CSI carried in element `id` (4 bytes, big-endian); `None` when absent or not 4 bytes.
    pub(crate) fn csi(&self, id: u8) -> Option<u32> {
        let d = self.one_byte_element(id)?;
        let bytes: [u8; 4] = d.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }
}

/// The elements `(id, data)` of a one-byte-form extension block (RFC 8285 §4.2): id 0 is a
/// padding byte, id 15 stops parsing; an element running past the block ends the iteration.
pub(crate) fn one_byte_elements(data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        loop {
            let &b = data.get(at)?;
            let id = b >> 4;
            if id == 0 {
                at += 1;
                continue;
            }
            if id == 15 {
                return None;
            }
            let len = usize::from(b & 0x0F) + 1;
            let element = data.get(at + 1..at + 1 + len)?;
            at += 1 + len;
            return Some((id, element));
        }
    })
}

/// The extension block of the contract (4-byte header, 8 bytes of elements): profile 0xBEDE,
/// length 2 words, element
/// `(id << 4) | 3` with the CSI big-endian, three zero bytes of padding.
pub(crate) fn csi_extension(id: u8, csi: u32) -> [u8; 12] {
    let c = csi.to_be_bytes();
    [
        0xBE,
        0xDE,
        0x00,
        0x02,
        (id << 4) | 3,
        c[0],
        c[1],
        c[2],
        c[3],
        0,
        0,
        0,
    ]
}

/// An RTP packet with a fresh header: `pt`, `marker`, `sequence`, `timestamp`, `ssrc`, the CSI
/// extension (element `ext_id`), then `body` (payload and any padding, copied as is; `padding`
/// says whether the body ends in RTP padding).
#[allow(clippy::too_many_arguments)]
pub(crate) fn rtp_with_csi(
    payload_type: u8,
    marker: bool,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    ext_id: u8,
    csi: u32,
    body: &[u8],
    padding: bool,
) -> Vec<u8> {
    let ext = csi_extension(ext_id, csi);
    let mut out = Vec::with_capacity(12 + ext.len() + body.len());
    out.push(0x80 | if padding { 0x20 } else { 0 } | 0x10);
    out.push((payload_type & 0x7F) | if marker { 0x80 } else { 0 });
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&ext);
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------------------------
// RTCP

pub(crate) const PT_SR: u8 = 200;
pub(crate) const PT_RR: u8 = 201;
pub(crate) const PT_SDES: u8 = 202;
pub(crate) const PT_BYE: u8 = 203;
pub(crate) const PT_APP: u8 = 204;

/// One RTCP packet of a datagram: the 5-bit count/subtype, the packet type and what follows the
/// 4-byte header (padding removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RtcpPacket<'a> {
    pub count: u8,
    pub packet_type: u8,
    pub body: &'a [u8],
}

/// Iterates the RTCP packets of a (compound) datagram. Each item is a packet or the error that
/// ends the iteration (a bad version, a length past the datagram, bad padding).
pub(crate) fn rtcp_packets(
    datagram: &[u8],
) -> impl Iterator<Item = Result<RtcpPacket<'_>, Malformed>> {
    let mut rest = datagram;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || rest.is_empty() {
            return None;
        }
        let item = next_rtcp(rest);
        match item {
            Ok((packet, tail)) => {
                rest = tail;
                Some(Ok(packet))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

fn next_rtcp(b: &[u8]) -> Result<(RtcpPacket<'_>, &[u8]), Malformed> {
    if b.len() < 4 {
        return malformed(format!("RTCP header truncated ({} bytes left)", b.len()));
    }
    if b[0] >> 6 != 2 {
        return malformed(format!("RTCP version {} (must be 2)", b[0] >> 6));
    }
    let len = (usize::from(be16(b, 2)) + 1) * 4;
    if len > b.len() {
        return malformed(format!(
            "RTCP packet type {} claims {len} bytes but {} are left",
            b[1],
            b.len()
        ));
    }
    let mut body = &b[4..len];
    if b[0] & 0x20 != 0 {
        let count = usize::from(body.last().copied().unwrap_or(0));
        if count == 0 || count > body.len() {
            return malformed(format!("RTCP padding count {count} does not fit"));
        }
        body = &body[..body.len() - count];
    }
    Ok((
        RtcpPacket {
            count: b[0] & 0x1F,
            packet_type: b[1],
            body,
        },
        &b[len..],
    ))
}

/// What the node keeps of a sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SenderReport {
    pub ssrc: u32,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

pub(crate) fn sender_report(p: &RtcpPacket<'_>) -> Result<SenderReport, Malformed> {
    let b = p.body;
    if b.len() < 24 {
        return malformed(format!(
            "sender report body of {} bytes (needs 24)",
            b.len()
        ));
    }
    if b.len() < 24 + 24 * usize::from(p.count) {
        return malformed(format!(
            "sender report with {} report blocks has only {} bytes",
            p.count,
            b.len()
        ));
    }
    Ok(SenderReport {
        ssrc: be32(b, 0),
        rtp_timestamp: be32(b, 12),
        packet_count: be32(b, 16),
        octet_count: be32(b, 20),
    })
}

/// The reporter SSRC of a receiver report.
pub(crate) fn receiver_report_ssrc(p: &RtcpPacket<'_>) -> Result<u32, Malformed> {
    if p.body.len() < 4 + 24 * usize::from(p.count) {
        return malformed(format!(
            "receiver report with {} report blocks has only {} bytes",
            p.count,
            p.body.len()
        ));
    }
    Ok(be32(p.body, 0))
}

/// SDES CNAME item type.
const SDES_CNAME: u8 = 1;

/// The `(ssrc, cname)` of every chunk of an SDES packet (RFC 3550 §6.5); chunks without a CNAME
/// give an empty string.
pub(crate) fn sdes_cnames(p: &RtcpPacket<'_>) -> Result<Vec<(u32, String)>, Malformed> {
    let b = p.body;
    let mut at = 0;
    let mut out = Vec::new();
    for chunk in 0..p.count {
        if b.len() < at + 4 {
            return malformed(format!("SDES chunk {chunk} truncated"));
        }
        let ssrc = be32(b, at);
        at += 4;
        let mut cname = String::new();
        loop {
            let Some(&kind) = b.get(at) else {
                return malformed(format!("SDES chunk {chunk} has no end item"));
            };
            if kind == 0 {
                // The null item, then padding to the next 32-bit boundary.
                at = (at + 4) & !3;
                break;
            }
            let Some(&len) = b.get(at + 1) else {
                return malformed(format!("SDES item in chunk {chunk} truncated"));
            };
            let Some(text) = b.get(at + 2..at + 2 + usize::from(len)) else {
                return malformed(format!(
                    "SDES item of {len} bytes in chunk {chunk} runs past the packet"
                ));
            };
            if kind == SDES_CNAME {
                cname = String::from_utf8_lossy(text).into_owned();
            }
            at += 2 + usize::from(len);
        }
        out.push((ssrc, cname));
    }
    Ok(out)
}

/// The SSRCs a BYE lists.
pub(crate) fn bye_ssrcs(p: &RtcpPacket<'_>) -> Result<Vec<u32>, Malformed> {
    let n = usize::from(p.count);
    if p.body.len() < 4 * n {
        return malformed(format!(
            "BYE listing {n} SSRCs has only {} bytes",
            p.body.len()
        ));
    }
    Ok((0..n).map(|i| be32(p.body, 4 * i)).collect())
}

// ---------------------------------------------------------------------------------------------
// Multistream APP packets

/// The APP name of multistream packets.
pub(crate) const MSTR: [u8; 4] = *b"MSTR";
/// APP subtype of a Sub-channel Advertisement.
pub(crate) const SUBTYPE_SCA: u8 = 1;
/// APP subtype of a Sub-channel Request.
pub(crate) const SUBTYPE_SCR: u8 = 2;
/// The body version both sides use.
pub(crate) const MSTR_VERSION: u8 = 1;
const REQUEST_LEN: usize = 36;
const ENTRY_LEN: usize = 8;

/// One SCR request (36 bytes on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ScrRequest {
    pub csi: u32,
    pub bitrate: u32,
    pub srcid: u32,
    pub policy: u8,
    pub priority: u8,
    pub adjid: u8,
    pub dup: bool,
    pub payload_type: u8,
    pub max_mbps: u32,
    pub max_fs: u32,
    /// Frames per second × 100.
    pub max_cfps: u16,
    pub max_width: u16,
    pub max_height: u16,
}

/// A Sub-channel Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scr {
    pub sender_ssrc: u32,
    pub seqno: u16,
    pub media_ssrc: u32,
    pub requests: Vec<ScrRequest>,
}

/// One SCA entry (8 bytes on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScaEntry {
    pub srcid: u32,
    pub index: u8,
    /// 0 live, 1 avatar/muted, 2 no source, 3 disabled, 4 policy violation.
    pub state: u8,
}

/// A Sub-channel Advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sca {
    pub sender_ssrc: u32,
    pub seqno: u16,
    pub media_ssrc: u32,
    /// The SCR seqno this acknowledges; 0 for an advertisement.
    pub ack_seqno: u16,
    pub total: u8,
    pub live: u8,
    pub entries: Vec<ScaEntry>,
}

/// A multistream message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mstr {
    Sca(Sca),
    Scr(Scr),
}

/// Parses an APP packet: `None` when it is not `MSTR` (another application's), else the SCA or
/// SCR or what was wrong with it.
pub(crate) fn mstr(p: &RtcpPacket<'_>) -> Option<Result<Mstr, Malformed>> {
    let b = p.body;
    if b.len() < 8 || b[4..8] != MSTR {
        return None;
    }
    Some(parse_mstr(p.count, be32(b, 0), &b[8..]))
}

fn parse_mstr(subtype: u8, sender_ssrc: u32, b: &[u8]) -> Result<Mstr, Malformed> {
    if b.len() < 8 {
        return malformed(format!("MSTR body of {} bytes (needs 8)", b.len()));
    }
    if b[0] != MSTR_VERSION {
        return malformed(format!(
            "MSTR version {} (only {MSTR_VERSION} is known)",
            b[0]
        ));
    }
    let seqno = be16(b, 2);
    let media_ssrc = be32(b, 4);
    let rest = &b[8..];
    match subtype {
        SUBTYPE_SCR => {
            if rest.len() < 4 {
                return malformed("SCR without its count word");
            }
            let count = usize::from(rest[0]);
            let needed = 4 + count * REQUEST_LEN;
            if rest.len() < needed {
                return malformed(format!(
                    "SCR seqno {seqno} announces {count} requests ({needed} bytes) but has {}",
                    rest.len()
                ));
            }
            let requests = rest[4..needed]
                .chunks_exact(REQUEST_LEN)
                .map(|r| ScrRequest {
                    csi: be32(r, 0),
                    bitrate: be32(r, 4),
                    srcid: be32(r, 8),
                    policy: r[12],
                    priority: r[13],
                    adjid: r[14],
                    dup: r[15] & 1 != 0,
                    payload_type: r[16],
                    max_mbps: be32(r, 20),
                    max_fs: be32(r, 24),
                    max_cfps: be16(r, 28),
                    max_width: be16(r, 30),
                    max_height: be16(r, 32),
                })
                .collect();
            Ok(Mstr::Scr(Scr {
                sender_ssrc,
                seqno,
                media_ssrc,
                requests,
            }))
        }
        SUBTYPE_SCA => {
            if rest.len() < 8 {
                return malformed(format!(
                    "SCA seqno {seqno} body truncated ({} bytes after the common part, needs 8)",
                    rest.len()
                ));
            }
            let count = usize::from(rest[4]);
            let needed = 8 + count * ENTRY_LEN;
            if rest.len() < needed {
                return malformed(format!(
                    "SCA seqno {seqno} announces {count} entries ({needed} bytes) but has {}",
                    rest.len()
                ));
            }
            let entries = rest[8..needed]
                .chunks_exact(ENTRY_LEN)
                .map(|e| ScaEntry {
                    srcid: be32(e, 0),
                    index: e[4],
                    state: e[5],
                })
                .collect();
            Ok(Mstr::Sca(Sca {
                sender_ssrc,
                seqno,
                media_ssrc,
                ack_seqno: be16(rest, 0),
                total: rest[2],
                live: rest[3],
                entries,
            }))
        }
        other => malformed(format!("MSTR subtype {other} (1 SCA, 2 SCR)")),
    }
}

/// A standalone APP packet: header, sender SSRC, `MSTR`, then `body` (a multiple of 4 bytes).
fn app_packet(subtype: u8, sender_ssrc: u32, body: &[u8]) -> Vec<u8> {
    let total = 12 + body.len();
    // At most 255 requests of 36 bytes: far below the 16-bit word count.
    let words = u16::try_from(total / 4 - 1).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(total);
    out.push(0x80 | (subtype & 0x1F));
    out.push(PT_APP);
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    out.extend_from_slice(&MSTR);
    out.extend_from_slice(body);
    out
}

fn common(seqno: u16, media_ssrc: u32) -> Vec<u8> {
    let mut b = vec![MSTR_VERSION, 0];
    b.extend_from_slice(&seqno.to_be_bytes());
    b.extend_from_slice(&media_ssrc.to_be_bytes());
    b
}

impl Scr {
    /// The APP packet. At most 255 requests are encoded (the count is one byte).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let requests = &self.requests[..self.requests.len().min(255)];
        let mut b = common(self.seqno, self.media_ssrc);
        b.extend_from_slice(&[u8::try_from(requests.len()).unwrap_or(u8::MAX), 0, 0, 0]);
        for r in requests {
            b.extend_from_slice(&r.csi.to_be_bytes());
            b.extend_from_slice(&r.bitrate.to_be_bytes());
            b.extend_from_slice(&r.srcid.to_be_bytes());
            b.extend_from_slice(&[r.policy, r.priority, r.adjid, u8::from(r.dup)]);
            b.extend_from_slice(&[r.payload_type, 0, 0, 0]);
            b.extend_from_slice(&r.max_mbps.to_be_bytes());
            b.extend_from_slice(&r.max_fs.to_be_bytes());
            b.extend_from_slice(&r.max_cfps.to_be_bytes());
            b.extend_from_slice(&r.max_width.to_be_bytes());
            b.extend_from_slice(&r.max_height.to_be_bytes());
            b.extend_from_slice(&[0, 0]);
        }
        app_packet(SUBTYPE_SCR, self.sender_ssrc, &b)
    }
}

impl Sca {
    /// The APP packet. At most 255 entries are encoded (the count is one byte).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let entries = &self.entries[..self.entries.len().min(255)];
        let mut b = common(self.seqno, self.media_ssrc);
        b.extend_from_slice(&self.ack_seqno.to_be_bytes());
        b.extend_from_slice(&[
            self.total,
            self.live,
            u8::try_from(entries.len()).unwrap_or(u8::MAX),
            0,
            0,
            0,
        ]);
        for e in entries {
            b.extend_from_slice(&e.srcid.to_be_bytes());
            b.extend_from_slice(&[e.index, e.state, 0, 0]);
        }
        app_packet(SUBTYPE_SCA, self.sender_ssrc, &b)
    }
}

/// The next sequence number after `n`: per sender and kind, starting at 1 and wrapping past 0
/// (0 means "none").
pub(crate) fn next_seqno(n: u16) -> u16 {
    match n.wrapping_add(1) {
        0 => 1,
        s => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demultiplexes_by_first_bytes() {
        assert_eq!(classify(&[0x00, 0x01]), Kind::Stun);
        assert_eq!(classify(&[0x03]), Kind::Stun);
        assert_eq!(classify(&[0x80, 200]), Kind::Rtcp);
        assert_eq!(classify(&[0x81, 204]), Kind::Rtcp);
        assert_eq!(classify(&[0x80, 223]), Kind::Rtcp);
        assert_eq!(classify(&[0x80, 0x7E]), Kind::Rtp);
        assert_eq!(classify(&[0x90, 0xFE]), Kind::Rtp, "marker set, pt 126");
        assert_eq!(classify(&[0x80, 224]), Kind::Rtp);
        assert_eq!(classify(&[0x80]), Kind::Rtp);
        assert_eq!(classify(&[0x16, 0xFE]), Kind::Unknown, "DTLS");
        assert_eq!(classify(&[0xC0, 200]), Kind::Unknown);
        assert_eq!(classify(&[]), Kind::Unknown);
    }

    #[test]
    fn rtp_with_the_contract_extension_round_trips() {
        let body = [1_u8, 2, 3, 4, 5];
        let p = rtp_with_csi(
            126,
            true,
            65_535,
            0xDEAD_BEEF,
            0x1234_5678,
            3,
            0x00AB_CD01,
            &body,
            false,
        );
        assert_eq!(p.len(), 12 + 12 + 5);
        assert_eq!(&p[12..16], &[0xBE, 0xDE, 0x00, 0x02]);
        assert_eq!(p[16], 0x33);
        let r = Rtp::parse(&p).expect("parses");
        assert!(r.marker);
        assert_eq!(r.payload_type, 126);
        assert_eq!(r.sequence, 65_535);
        assert_eq!(r.timestamp, 0xDEAD_BEEF);
        assert_eq!(r.ssrc, 0x1234_5678);
        assert_eq!(r.payload, &body);
        assert_eq!(r.csi(3), Some(0x00AB_CD01));
        assert_eq!(r.csi(4), None, "another id");
    }

    #[test]
    fn one_byte_elements_skip_padding_and_others() {
        // id 1 len 1, two padding bytes, id 5 len 4, padding.
        let data = [0x10, 0xAA, 0x00, 0x00, 0x53, 1, 2, 3, 4, 0, 0, 0];
        let all: Vec<_> = one_byte_elements(&data).collect();
        assert_eq!(all, vec![(1, &[0xAA][..]), (5, &[1, 2, 3, 4][..])]);
        // id 15 stops, a truncated element ends the iteration.
        assert_eq!(one_byte_elements(&[0xF0, 0x10, 0xAA]).count(), 0);
        assert_eq!(one_byte_elements(&[0x13, 1, 2]).count(), 0);
        // A 2-byte element with the CSI's id is not a CSI.
        let mut p = vec![
            0x90, 126, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0xBE, 0xDE, 0, 1, 0x31, 7, 7, 0,
        ];
        p.extend_from_slice(&[9, 9]);
        let r = Rtp::parse(&p).expect("parses");
        assert_eq!(r.one_byte_element(3), Some(&[7, 7][..]));
        assert_eq!(r.csi(3), None);
        // Another profile (two-byte form) is not searched.
        p[12..14].copy_from_slice(&[0x10, 0x00]);
        assert_eq!(Rtp::parse(&p).expect("parses").csi(3), None);
    }

    #[test]
    fn rtp_padding_csrcs_and_bad_packets() {
        // CC=1, padding of 3 bytes.
        let mut p = vec![0xA1, 111, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2];
        p.extend_from_slice(&[0xAA, 0xBB, 0, 0, 3]);
        let r = Rtp::parse(&p).expect("parses");
        assert_eq!(r.payload, &[0xAA, 0xBB]);
        assert_eq!(r.body.len(), 5);
        assert_eq!(r.extension, None);
        for bad in [
            &[0x80_u8, 126, 0, 1][..],
            &[0x40, 126, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0x8F, 126, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0x90, 126, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 9],
            &[0xA0, 126, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9],
            &[0xA0, 126, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0xA0, 126, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            let e = Rtp::parse(bad).expect_err("malformed");
            assert!(!e.0.is_empty());
        }
    }

    fn sr(ssrc: u32, packets: u32, octets: u32) -> Vec<u8> {
        let mut p = vec![0x80, PT_SR, 0, 6];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&1234_u32.to_be_bytes());
        p.extend_from_slice(&packets.to_be_bytes());
        p.extend_from_slice(&octets.to_be_bytes());
        p
    }

    #[test]
    fn compound_sr_sdes_bye() {
        let mut d = sr(0x11, 10, 1000);
        // SDES, one chunk: CNAME "roomd", null item, padding to 4.
        d.extend_from_slice(&[0x81, PT_SDES, 0, 3, 0, 0, 0, 0x11, 1, 5]);
        d.extend_from_slice(b"roomd");
        d.push(0);
        // BYE of two SSRCs with a reason.
        d.extend_from_slice(&[
            0x82, PT_BYE, 0, 3, 0, 0, 0, 0x11, 0, 0, 0, 0x22, 2, b'o', b'k', 0,
        ]);
        let packets: Vec<_> = rtcp_packets(&d)
            .collect::<Result<_, _>>()
            .expect("three packets");
        assert_eq!(packets.len(), 3);
        let s = sender_report(&packets[0]).expect("SR");
        assert_eq!(
            s,
            SenderReport {
                ssrc: 0x11,
                rtp_timestamp: 1234,
                packet_count: 10,
                octet_count: 1000
            }
        );
        assert_eq!(
            sdes_cnames(&packets[1]).expect("SDES"),
            vec![(0x11, "roomd".to_owned())]
        );
        assert_eq!(bye_ssrcs(&packets[2]).expect("BYE"), vec![0x11, 0x22]);
    }

    #[test]
    fn rtcp_iteration_stops_at_the_first_bad_packet() {
        let mut d = sr(1, 1, 1);
        d.extend_from_slice(&[0x80, PT_RR, 0, 9, 0, 0, 0, 1]);
        let items: Vec<_> = rtcp_packets(&d).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(
            items[1]
                .as_ref()
                .expect_err("too long")
                .0
                .contains("claims")
        );
        assert!(rtcp_packets(&[0x80, 200]).next().expect("one").is_err());
        assert!(
            sender_report(&RtcpPacket {
                count: 0,
                packet_type: PT_SR,
                body: &[0; 8]
            })
            .is_err()
        );
        assert!(
            sdes_cnames(&RtcpPacket {
                count: 1,
                packet_type: PT_SDES,
                body: &[0, 0, 0, 1, 1, 9, 1]
            })
            .is_err()
        );
        assert!(
            bye_ssrcs(&RtcpPacket {
                count: 2,
                packet_type: PT_BYE,
                body: &[0, 0, 0, 1]
            })
            .is_err()
        );
    }

    fn sample_scr() -> Scr {
        Scr {
            sender_ssrc: 0xC003_046E,
            seqno: 4,
            media_ssrc: 0,
            requests: vec![
                ScrRequest {
                    csi: 0,
                    bitrate: 1_500_000,
                    srcid: 0x0102_0304,
                    policy: 1,
                    priority: 255,
                    adjid: 0,
                    dup: false,
                    payload_type: 126,
                    max_mbps: 108_000,
                    max_fs: 3600,
                    max_cfps: 3000,
                    max_width: 1280,
                    max_height: 720,
                },
                ScrRequest {
                    bitrate: 100_000,
                    srcid: 7,
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
                    ..ScrRequest::default()
                },
            ],
        }
    }

    #[test]
    fn scr_layout_and_round_trip() {
        let scr = sample_scr();
        let bytes = scr.encode();
        assert_eq!(bytes.len(), 12 + 8 + 4 + 2 * 36);
        assert_eq!(&bytes[..4], &[0x82, 204, 0, 23]);
        assert_eq!(
            &bytes[4..12],
            &[0xC0, 0x03, 0x04, 0x6E, b'M', b'S', b'T', b'R']
        );
        assert_eq!(&bytes[12..20], &[1, 0, 0, 4, 0, 0, 0, 0]);
        assert_eq!(&bytes[20..24], &[2, 0, 0, 0]);
        let r = &bytes[24..60];
        assert_eq!(&r[8..12], &[1, 2, 3, 4], "srcid");
        assert_eq!(
            &r[12..17],
            &[1, 255, 0, 0, 126],
            "policy, priority, adjid, flags, pt"
        );
        assert_eq!(
            &r[28..34],
            &[0x0B, 0xB8, 0x05, 0x00, 0x02, 0xD0],
            "cfps, width, height"
        );
        assert_eq!(bytes[24 + 36 + 15], 1, "dup flag of the second request");
        let packets: Vec<_> = rtcp_packets(&bytes)
            .collect::<Result<_, _>>()
            .expect("rtcp");
        assert_eq!(packets.len(), 1);
        assert_eq!(mstr(&packets[0]), Some(Ok(Mstr::Scr(scr))));
    }

    #[test]
    fn sca_layout_and_round_trip() {
        let sca = Sca {
            sender_ssrc: 9,
            seqno: 2,
            media_ssrc: 0,
            ack_seqno: 4,
            total: 2,
            live: 1,
            entries: vec![
                ScaEntry {
                    srcid: 0x0102_0304,
                    index: 0,
                    state: 0,
                },
                ScaEntry {
                    srcid: 5,
                    index: 1,
                    state: 3,
                },
            ],
        };
        let bytes = sca.encode();
        assert_eq!(bytes.len(), 12 + 8 + 8 + 16);
        assert_eq!(&bytes[..4], &[0x81, 204, 0, 10]);
        assert_eq!(&bytes[20..28], &[0, 4, 2, 1, 2, 0, 0, 0]);
        assert_eq!(&bytes[28..36], &[1, 2, 3, 4, 0, 0, 0, 0]);
        let p = rtcp_packets(&bytes).next().expect("one").expect("ok");
        assert_eq!(mstr(&p), Some(Ok(Mstr::Sca(sca))));
    }

    #[test]
    fn bad_mstr_is_named() {
        let mut bytes = sample_scr().encode();
        bytes[20] = 9; // announces 9 requests
        let p = rtcp_packets(&bytes).next().expect("one").expect("ok");
        let e = mstr(&p).expect("MSTR").expect_err("too short");
        assert!(e.0.contains("announces 9 requests"), "{e}");
        bytes[12] = 2;
        let p = rtcp_packets(&bytes).next().expect("one").expect("ok");
        assert!(
            mstr(&p)
                .expect("MSTR")
                .expect_err("version")
                .0
                .contains("version 2")
        );
        let other = [0x81, 204, 0, 2, 0, 0, 0, 1, b'A', b'B', b'C', b'D'];
        let p = rtcp_packets(&other).next().expect("one").expect("ok");
        assert_eq!(mstr(&p), None, "another application's APP");
        let mut sub = Sca {
            sender_ssrc: 1,
            seqno: 1,
            media_ssrc: 0,
            ack_seqno: 0,
            total: 1,
            live: 1,
            entries: vec![],
        }
        .encode();
        sub[0] = 0x83;
        let p = rtcp_packets(&sub).next().expect("one").expect("ok");
        assert!(
            mstr(&p)
                .expect("MSTR")
                .expect_err("subtype")
                .0
                .contains("subtype 3")
        );
    }

    #[test]
    fn seqnos_skip_zero() {
        assert_eq!(next_seqno(0), 1);
        assert_eq!(next_seqno(1), 2);
        assert_eq!(next_seqno(u16::MAX), 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every prefix of a few real packets, and random noise.
        let mut seeds = vec![sample_scr().encode(), sr(1, 2, 3)];
        seeds.push(rtp_with_csi(126, false, 1, 2, 3, 3, 4, &[5; 20], false));
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let len = usize::try_from(x % 64).unwrap_or(0);
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                v.push(x.to_be_bytes()[0]);
            }
            if let Some(b) = v.first_mut() {
                *b = 0x80 | (*b & 0x3F);
            }
            seeds.push(v);
        }
        for s in &seeds {
            for end in 0..=s.len() {
                let d = &s[..end];
                let _ = classify(d);
                if let Ok(r) = Rtp::parse(d) {
                    let _ = r.csi(3);
                }
                for p in rtcp_packets(d).flatten() {
                    let _ = sender_report(&p);
                    let _ = sdes_cnames(&p);
                    let _ = bye_ssrcs(&p);
                    let _ = receiver_report_ssrc(&p);
                    let _ = mstr(&p);
                }
            }
        }
    }
}
