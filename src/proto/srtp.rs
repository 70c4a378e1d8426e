//! SRTP and SRTCP (RFC 3711) for DTLS-SRTP media (RFC 5764), with the two protection profiles
//! roomd negotiates: `SRTP_AEAD_AES_128_GCM` (RFC 7714) and `SRTP_AES128_CM_HMAC_SHA1_80`.
//!
//! Sans I/O: the DTLS handshake elsewhere yields the negotiated profile and the exporter's
//! keying material ([`EXPORTER_LABEL`], [`exporter_len`]); [`from_dtls_exporter`] splits it
//! into the two directions' master keys and salts (RFC 5764 §4.2), and each [`SrtpContext`]
//! transforms packets in place: [`SrtpContext::protect_rtp`] encrypts and appends the tag,
//! [`SrtpContext::unprotect_rtp`] checks and removes it, and the same for RTCP.
//!
//! - Session keys (RFC 3711 §4.3, the AES-CM PRF with key derivation rate 0; RFC 7714 §11 uses
//!   the same KDF) are derived once, and the cipher instances built once, at construction:
//!   a packet costs no key schedule and no allocation (as long as the packet's `Vec` has
//!   [`SrtpProfile::rtp_overhead`] / [`SrtpProfile::rtcp_overhead`] bytes of spare capacity).
//! - The RTP header (CSRCs and header extension included) is authenticated, not encrypted (no
//!   RFC 6904); the payload, RTP padding included, is encrypted. Padding is checked on
//!   protect; on unprotect it is encrypted until the tag is checked, so the RTP parser
//!   (`proto::rtp`) checks it in the decrypted packet.
//! - Per SSRC and direction: the highest packet index seen and a replay window of
//!   [`REPLAY_WINDOW`] packets below it (RFC 3711 §3.3.1 and Appendix A index estimation for
//!   RTP; the explicit 31-bit index for SRTCP, always sent with the E bit set). A failed
//!   unprotect (malformed, replayed, too old, forged) changes no state and leaves the packet as
//!   it was; protect refuses to use an index twice (a repeated index would repeat a keystream,
//!   and with GCM reveal the authentication key).
//!
//! Nothing here panics on any input: every byte string is either transformed or an
//! [`SrtpError`] naming what is wrong with it.

use std::collections::HashMap;
use std::fmt;

use aes::Aes128;
use aes_gcm::Aes128Gcm;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use ctr::cipher::{InnerIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use zeroize::Zeroizing;

/// The label of the TLS exporter that yields DTLS-SRTP keying material (RFC 5764 §4.2).
pub const EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";
/// How many packets below the highest index one stream still accepts (once each).
pub const REPLAY_WINDOW: u64 = 128;
/// The most SSRCs one context tracks per direction: a peer cannot grow the state without
/// bound, even with valid keys.
pub const MAX_STREAMS: usize = 1024;

/// The fixed RTP header (before CSRCs and extension).
const RTP_HEADER_LEN: usize = 12;
/// The RTCP header SRTCP leaves in clear: V/P/count, type, length, sender SSRC.
const RTCP_HEADER_LEN: usize = 8;
/// The SRTCP trailer word: E bit and 31-bit SRTCP index.
const SRTCP_INDEX_LEN: usize = 4;
const SRTCP_E_BIT: u32 = 0x8000_0000;
/// SRTCP indices are 31 bits.
const MAX_SRTCP_INDEX: u64 = 0x7fff_ffff;
/// SRTP indices are 48 bits (ROC and sequence number).
const MAX_SRTP_INDEX: u64 = (1 << 48) - 1;
const AES_BLOCK_LEN: usize = 16;
const HMAC_SHA1_KEY_LEN: usize = 20;
const HMAC_SHA1_80_TAG_LEN: usize = 10;
const GCM_TAG_LEN: usize = 16;
const GCM_SALT_LEN: usize = 12;
const CM_SALT_LEN: usize = 14;
/// AES-128 keys, the only size either profile uses.
const KEY_LEN: usize = 16;

/// RFC 3711 §4.3.1 key derivation labels.
const LABEL_RTP_ENCRYPTION: u8 = 0x00;
const LABEL_RTP_AUTH: u8 = 0x01;
const LABEL_RTP_SALT: u8 = 0x02;
const LABEL_RTCP_ENCRYPTION: u8 = 0x03;
const LABEL_RTCP_AUTH: u8 = 0x04;
const LABEL_RTCP_SALT: u8 = 0x05;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;
type Aes128CtrCore = ctr::CtrCore<Aes128, ctr::flavors::Ctr128BE>;
type HmacSha1 = Hmac<Sha1>;

/// Why a packet or key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum SrtpError {
    /// malformed packet: {0}
    Malformed(&'static str),
    /// authentication tag does not match (forged or damaged packet, or wrong key)
    AuthFailed,
    /// packet index {0} was already received (replay)
    Replayed(u64),
    /// packet index {0} is more than the replay window below the highest index received
    TooOld(u64),
    /// packet index {0} was already protected with this key, or is too old to tell (protecting it would reuse a keystream)
    IndexReused(u64),
    /// the packet index space of this key is used up (2^48 SRTP or 2^31 SRTCP packets per SSRC): rekey
    KeyExhausted,
    /// more than {0} SSRCs in one direction of one SRTP context
    TooManyStreams(usize),
    /// unknown SRTP protection profile {0:#06x}
    UnknownProfile(u16),
    /// {what} of {len} bytes, profile {profile} needs {expected}
    KeyLength {
        what: &'static str,
        profile: SrtpProfile,
        expected: usize,
        len: usize,
    },
}

/// The SRTP protection profiles roomd negotiates (RFC 5764 §4.1.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// `SRTP_AES128_CM_HMAC_SHA1_80` (0x0001): AES-128 counter mode, HMAC-SHA1 tag of 80 bits.
    Aes128CmHmacSha1_80,
    /// `SRTP_AEAD_AES_128_GCM` (0x0007): AES-128-GCM with a 128-bit tag.
    AeadAes128Gcm,
}

impl SrtpProfile {
    /// The profile of a DTLS `use_srtp` protection profile id.
    pub fn from_id(id: u16) -> Result<Self, SrtpError> {
        match id {
            0x0001 => Ok(Self::Aes128CmHmacSha1_80),
            0x0007 => Ok(Self::AeadAes128Gcm),
            other => Err(SrtpError::UnknownProfile(other)),
        }
    }

    /// The DTLS `use_srtp` protection profile id.
    pub fn id(self) -> u16 {
        match self {
            Self::Aes128CmHmacSha1_80 => 0x0001,
            Self::AeadAes128Gcm => 0x0007,
        }
    }

    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128CmHmacSha1_80 => "SRTP_AES128_CM_HMAC_SHA1_80",
            Self::AeadAes128Gcm => "SRTP_AEAD_AES_128_GCM",
        }
    }

    pub fn master_key_len(self) -> usize {
        KEY_LEN
    }

    pub fn master_salt_len(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 => CM_SALT_LEN,
            Self::AeadAes128Gcm => GCM_SALT_LEN,
        }
    }

    /// The authentication tag of an SRTP packet (and of an SRTCP packet: both profiles use
    /// the same length for both).
    pub fn tag_len(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 => HMAC_SHA1_80_TAG_LEN,
            Self::AeadAes128Gcm => GCM_TAG_LEN,
        }
    }

    /// How many bytes protect adds to an RTP packet.
    pub fn rtp_overhead(self) -> usize {
        self.tag_len()
    }

    /// How many bytes protect adds to an RTCP packet (tag and E|index word).
    pub fn rtcp_overhead(self) -> usize {
        self.tag_len() + SRTCP_INDEX_LEN
    }
}

impl fmt::Display for SrtpProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many bytes of keying material to export for `profile` (RFC 5764 §4.2: two keys and
/// two salts).
pub fn exporter_len(profile: SrtpProfile) -> usize {
    2 * (profile.master_key_len() + profile.master_salt_len())
}

/// The outbound and inbound contexts from DTLS-SRTP keying material (exported with
/// [`EXPORTER_LABEL`], [`exporter_len`] bytes): `client_write_key || server_write_key ||
/// client_write_salt || server_write_salt` (RFC 5764 §4.2). The DTLS client protects what it
/// sends with the client's key and salt, and the server with the server's.
pub fn from_dtls_exporter(
    profile: SrtpProfile,
    material: &[u8],
    we_are_dtls_client: bool,
) -> Result<(SrtpContext, SrtpContext), SrtpError> {
    if material.len() != exporter_len(profile) {
        return Err(SrtpError::KeyLength {
            what: "DTLS-SRTP keying material",
            profile,
            expected: exporter_len(profile),
            len: material.len(),
        });
    }
    let (keys, salts) = material.split_at(2 * profile.master_key_len());
    let (client_key, server_key) = keys.split_at(profile.master_key_len());
    let (client_salt, server_salt) = salts.split_at(profile.master_salt_len());
    let client = SrtpContext::new(profile, client_key, client_salt)?;
    let server = SrtpContext::new(profile, server_key, server_salt)?;
    Ok(if we_are_dtls_client {
        (client, server)
    } else {
        (server, client)
    })
}

/// One direction's SRTP and SRTCP transform under one master key: session keys and ciphers,
/// and the per-SSRC state of the packets it protected and unprotected.
pub struct SrtpContext {
    profile: SrtpProfile,
    rtp: SessionCipher,
    rtcp: SessionCipher,
    /// Streams this context protected.
    sent: HashMap<u32, SendState>,
    /// Streams this context unprotected.
    received: HashMap<u32, ReceiveState>,
}

impl fmt::Debug for SrtpContext {
    // Keys stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("sent_streams", &self.sent.len())
            .field("received_streams", &self.received.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SendState {
    rtp: Option<ReplayWindow>,
    next_rtcp_index: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ReceiveState {
    rtp: Option<ReplayWindow>,
    rtcp: Option<ReplayWindow>,
}

/// The packet indices one stream has used: the highest, and which of the
/// [`REPLAY_WINDOW`] below it were seen (bit `n` for `highest - n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReplayWindow {
    highest: u64,
    seen: u128,
}

/// Why an index cannot be used again.
enum Unusable {
    Seen,
    TooOld,
}

impl ReplayWindow {
    fn starting_at(index: u64) -> Self {
        Self {
            highest: index,
            seen: 1,
        }
    }

    fn check(&self, index: u64) -> Result<(), Unusable> {
        if index > self.highest {
            return Ok(());
        }
        let age = self.highest - index;
        if age >= REPLAY_WINDOW {
            Err(Unusable::TooOld)
        } else if self.seen & (1 << age) != 0 {
            Err(Unusable::Seen)
        } else {
            Ok(())
        }
    }

    /// Records `index` (which [`Self::check`] accepted).
    fn record(&mut self, index: u64) {
        if index > self.highest {
            let shift = index - self.highest;
            self.seen = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = index;
        } else {
            self.seen |= 1 << (self.highest - index);
        }
    }
}

/// Records `index` in the window of a stream, starting the window with it.
fn record_index(window: &mut Option<ReplayWindow>, index: u64) {
    match window {
        Some(window) => window.record(index),
        None => *window = Some(ReplayWindow::starting_at(index)),
    }
}

/// The 48-bit index of an RTP packet with sequence number `seq`, guessed from the highest
/// index so far (RFC 3711 Appendix A): the rollover counter of the three (ROC - 1, ROC,
/// ROC + 1) that puts the packet nearest the highest. Before the first wrap there is no
/// ROC - 1, and the packet counts as ahead (as libsrtp does).
fn estimate_index(highest: u64, seq: u16) -> Result<u64, SrtpError> {
    let roc = highest >> 16;
    let last = (highest & 0xffff) as u16;
    let guessed_roc = if last < 0x8000 {
        if seq > last && seq - last > 0x8000 {
            roc.saturating_sub(1)
        } else {
            roc
        }
    } else if seq < last - 0x8000 {
        roc + 1
    } else {
        roc
    };
    let index = (guessed_roc << 16) | u64::from(seq);
    if index > MAX_SRTP_INDEX {
        return Err(SrtpError::KeyExhausted);
    }
    Ok(index)
}

/// The session keys of RTP or of RTCP, as their ciphers.
enum SessionCipher {
    Cm(Box<CmSession>),
    Gcm(Box<GcmSession>),
}

/// AES-128 counter mode and HMAC-SHA1 (RFC 3711 §4.1.1, §4.2.1).
struct CmSession {
    cipher: Aes128,
    salt: Zeroizing<[u8; CM_SALT_LEN]>,
    /// Keyed once; cloned per packet (a copy of its state, no key schedule).
    mac: HmacSha1,
}

/// AES-128-GCM (RFC 7714).
struct GcmSession {
    aead: Aes128Gcm,
    salt: Zeroizing<[u8; GCM_SALT_LEN]>,
}

/// AES in counter mode from `iv`, with a copy of an expanded key (no key schedule).
fn keystream(cipher: &Aes128, iv: [u8; AES_BLOCK_LEN]) -> Aes128Ctr {
    Aes128Ctr::from_core(Aes128CtrCore::inner_iv_init(cipher.clone(), &iv.into()))
}

/// The RFC 3711 §4.3 KDF with key derivation rate 0: AES-CM under the master key, IV the
/// master salt (a 12-byte GCM salt padded with zeros, RFC 7714 §11) XOR the label at byte 7,
/// then shifted left 16 bits.
fn derive(master: &Aes128, master_salt: &[u8], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; AES_BLOCK_LEN];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    keystream(master, iv).apply_keystream(out);
}

impl CmSession {
    fn derive(
        master: &Aes128,
        master_salt: &[u8],
        labels: [u8; 3],
    ) -> Result<Box<Self>, SrtpError> {
        let [encryption, auth, salt_label] = labels;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        derive(master, master_salt, encryption, key.as_mut());
        let mut auth_key = Zeroizing::new([0u8; HMAC_SHA1_KEY_LEN]);
        derive(master, master_salt, auth, auth_key.as_mut());
        let mut salt = Zeroizing::new([0u8; CM_SALT_LEN]);
        derive(master, master_salt, salt_label, salt.as_mut());
        Self::from_session_keys(&key, &salt, &auth_key[..])
    }

    fn from_session_keys(
        key: &[u8; KEY_LEN],
        salt: &[u8; CM_SALT_LEN],
        auth_key: &[u8],
    ) -> Result<Box<Self>, SrtpError> {
        let mac =
            <HmacSha1 as Mac>::new_from_slice(auth_key).map_err(|_| SrtpError::KeyLength {
                what: "HMAC-SHA1 key",
                profile: SrtpProfile::Aes128CmHmacSha1_80,
                expected: HMAC_SHA1_KEY_LEN,
                len: auth_key.len(),
            })?;
        Ok(Box::new(Self {
            cipher: Aes128::new(&(*key).into()),
            salt: Zeroizing::new(*salt),
            mac,
        }))
    }

    /// XORs `data` with the keystream for `ssrc` and `index` (RFC 3711 §4.1.1: IV = salt·2^16
    /// XOR SSRC·2^64 XOR index·2^16).
    fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; AES_BLOCK_LEN];
        iv[..CM_SALT_LEN].copy_from_slice(self.salt.as_ref());
        xor_into(&mut iv[4..8], &ssrc.to_be_bytes());
        xor_into(&mut iv[8..14], &index.to_be_bytes()[2..]);
        keystream(&self.cipher, iv).apply_keystream(data);
    }

    /// The full HMAC-SHA1 of `parts`, in order.
    fn mac(&self, parts: &[&[u8]]) -> HmacSha1 {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac
    }
}

impl GcmSession {
    fn derive(master: &Aes128, master_salt: &[u8], labels: [u8; 2]) -> Box<Self> {
        let [encryption, salt_label] = labels;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        derive(master, master_salt, encryption, key.as_mut());
        let mut salt = Zeroizing::new([0u8; GCM_SALT_LEN]);
        derive(master, master_salt, salt_label, salt.as_mut());
        Self::from_session_keys(&key, &salt)
    }

    fn from_session_keys(key: &[u8; KEY_LEN], salt: &[u8; GCM_SALT_LEN]) -> Box<Self> {
        Box::new(Self {
            aead: Aes128Gcm::new(&(*key).into()),
            salt: Zeroizing::new(*salt),
        })
    }

    /// The SRTP IV (RFC 7714 §8.1): `00 00 || SSRC || ROC || SEQ` XOR salt.
    fn rtp_nonce(&self, ssrc: u32, index: u64) -> [u8; 12] {
        let mut nonce = *self.salt;
        xor_into(&mut nonce[2..6], &ssrc.to_be_bytes());
        xor_into(&mut nonce[6..12], &index.to_be_bytes()[2..]);
        nonce
    }

    /// The SRTCP IV (RFC 7714 §9.1): `00 00 || SSRC || 00 00 || 0 || SRTCP index` XOR salt.
    fn rtcp_nonce(&self, ssrc: u32, index: u32) -> [u8; 12] {
        let mut nonce = *self.salt;
        xor_into(&mut nonce[2..6], &ssrc.to_be_bytes());
        xor_into(&mut nonce[8..12], &index.to_be_bytes());
        nonce
    }
}

fn xor_into(target: &mut [u8], mask: &[u8]) {
    for (byte, mask) in target.iter_mut().zip(mask) {
        *byte ^= mask;
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        word.copy_from_slice(src);
    }
    u32::from_be_bytes(word)
}

/// How long the clear part of an RTP packet is: fixed header, CSRCs, header extension.
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    let Some(&first) = packet.first() else {
        return Err(SrtpError::Malformed("empty RTP packet"));
    };
    if packet.len() < RTP_HEADER_LEN {
        return Err(SrtpError::Malformed(
            "RTP packet shorter than the 12-byte header",
        ));
    }
    if first >> 6 != 2 {
        return Err(SrtpError::Malformed("RTP version is not 2"));
    }
    let mut len = RTP_HEADER_LEN + 4 * usize::from(first & 0x0f);
    if packet.len() < len {
        return Err(SrtpError::Malformed("RTP packet too short for its CSRCs"));
    }
    if first & 0x10 != 0 {
        let Some(extension) = packet.get(len..len + 4) else {
            return Err(SrtpError::Malformed(
                "RTP packet ends inside its header-extension header",
            ));
        };
        let words = u16::from_be_bytes([extension[2], extension[3]]);
        len += 4 + 4 * usize::from(words);
        if packet.len() < len {
            return Err(SrtpError::Malformed(
                "RTP header extension runs past the end of the packet",
            ));
        }
    }
    Ok(len)
}

/// Checks the RTCP header SRTCP needs (version, room for the sender SSRC).
fn check_rtcp_header(packet: &[u8]) -> Result<(), SrtpError> {
    if packet.len() < RTCP_HEADER_LEN {
        return Err(SrtpError::Malformed(
            "RTCP packet shorter than its 8-byte header",
        ));
    }
    if packet[0] >> 6 != 2 {
        return Err(SrtpError::Malformed("RTCP version is not 2"));
    }
    Ok(())
}

impl SrtpContext {
    /// A context for one direction, from the master key and salt (lengths of `profile`).
    pub fn new(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<Self, SrtpError> {
        let master_key: [u8; KEY_LEN] =
            master_key.try_into().map_err(|_| SrtpError::KeyLength {
                what: "master key",
                profile,
                expected: profile.master_key_len(),
                len: master_key.len(),
            })?;
        let master_key = Zeroizing::new(master_key);
        if master_salt.len() != profile.master_salt_len() {
            return Err(SrtpError::KeyLength {
                what: "master salt",
                profile,
                expected: profile.master_salt_len(),
                len: master_salt.len(),
            });
        }
        let master = Aes128::new(&(*master_key).into());
        let (rtp, rtcp) = match profile {
            SrtpProfile::Aes128CmHmacSha1_80 => (
                SessionCipher::Cm(CmSession::derive(
                    &master,
                    master_salt,
                    [LABEL_RTP_ENCRYPTION, LABEL_RTP_AUTH, LABEL_RTP_SALT],
                )?),
                SessionCipher::Cm(CmSession::derive(
                    &master,
                    master_salt,
                    [LABEL_RTCP_ENCRYPTION, LABEL_RTCP_AUTH, LABEL_RTCP_SALT],
                )?),
            ),
            SrtpProfile::AeadAes128Gcm => (
                SessionCipher::Gcm(GcmSession::derive(
                    &master,
                    master_salt,
                    [LABEL_RTP_ENCRYPTION, LABEL_RTP_SALT],
                )),
                SessionCipher::Gcm(GcmSession::derive(
                    &master,
                    master_salt,
                    [LABEL_RTCP_ENCRYPTION, LABEL_RTCP_SALT],
                )),
            ),
        };
        Ok(Self {
            profile,
            rtp,
            rtcp,
            sent: HashMap::new(),
            received: HashMap::new(),
        })
    }

    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Encrypts the RTP packet in `packet` and appends its tag
    /// ([`SrtpProfile::rtp_overhead`] bytes). On error `packet` is unchanged.
    pub fn protect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let header_len = rtp_header_len(packet)?;
        if packet[0] & 0x20 != 0 {
            let padding = usize::from(packet[packet.len() - 1]);
            if padding == 0 || padding > packet.len() - header_len {
                return Err(SrtpError::Malformed(
                    "RTP padding count is zero or longer than the payload",
                ));
            }
        }
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = be_u32(packet, 8);
        let window = self.sent.get(&ssrc).and_then(|state| state.rtp);
        let index = match window {
            Some(window) => {
                let index = estimate_index(window.highest, seq)?;
                window
                    .check(index)
                    .map_err(|_| SrtpError::IndexReused(index))?;
                index
            }
            None => u64::from(seq),
        };
        if !self.sent.contains_key(&ssrc) && self.sent.len() >= MAX_STREAMS {
            return Err(SrtpError::TooManyStreams(MAX_STREAMS));
        }
        match &self.rtp {
            SessionCipher::Cm(session) => {
                session.apply_keystream(ssrc, index, &mut packet[header_len..]);
                let roc = ((index >> 16) as u32).to_be_bytes();
                let tag = session.mac(&[packet, &roc]).finalize().into_bytes();
                packet.extend_from_slice(&tag[..HMAC_SHA1_80_TAG_LEN]);
            }
            SessionCipher::Gcm(session) => {
                let nonce = session.rtp_nonce(ssrc, index);
                let (header, payload) = packet.split_at_mut(header_len);
                let tag = session
                    .aead
                    .encrypt_in_place_detached(&nonce.into(), header, payload)
                    .map_err(|_| SrtpError::Malformed("RTP payload too long for AES-GCM"))?;
                packet.extend_from_slice(&tag);
            }
        }
        record_index(&mut self.sent.entry(ssrc).or_default().rtp, index);
        Ok(())
    }

    /// Checks the tag of the SRTP packet in `packet`, decrypts it and removes the tag. On
    /// error `packet` and the context's state are unchanged.
    pub fn unprotect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let tag_len = self.profile.tag_len();
        let header_len = rtp_header_len(packet)?;
        if packet.len() < header_len + tag_len {
            return Err(SrtpError::Malformed(
                "SRTP packet too short for its header and authentication tag",
            ));
        }
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = be_u32(packet, 8);
        let window = self.received.get(&ssrc).and_then(|state| state.rtp);
        let index = match window {
            Some(window) => {
                let index = estimate_index(window.highest, seq)?;
                window.check(index).map_err(|unusable| match unusable {
                    Unusable::Seen => SrtpError::Replayed(index),
                    Unusable::TooOld => SrtpError::TooOld(index),
                })?;
                index
            }
            None => u64::from(seq),
        };
        if !self.received.contains_key(&ssrc) && self.received.len() >= MAX_STREAMS {
            return Err(SrtpError::TooManyStreams(MAX_STREAMS));
        }
        let body_len = packet.len() - tag_len;
        match &self.rtp {
            SessionCipher::Cm(session) => {
                let (body, tag) = packet.split_at_mut(body_len);
                let roc = ((index >> 16) as u32).to_be_bytes();
                session
                    .mac(&[body, &roc])
                    .verify_truncated_left(tag)
                    .map_err(|_| SrtpError::AuthFailed)?;
                session.apply_keystream(ssrc, index, &mut body[header_len..]);
            }
            SessionCipher::Gcm(session) => {
                let nonce = session.rtp_nonce(ssrc, index);
                let (header, rest) = packet.split_at_mut(header_len);
                let (payload, tag) = rest.split_at_mut(body_len - header_len);
                // Checks the tag before decrypting: on failure the payload is untouched.
                session
                    .aead
                    .decrypt_in_place_detached(&nonce.into(), header, payload, (&*tag).into())
                    .map_err(|_| SrtpError::AuthFailed)?;
            }
        }
        packet.truncate(body_len);
        record_index(&mut self.received.entry(ssrc).or_default().rtp, index);
        Ok(())
    }

    /// Encrypts the (compound) RTCP packet in `packet` after its first 8 bytes and appends
    /// the E|SRTCP index word and the tag ([`SrtpProfile::rtcp_overhead`] bytes; RFC 3711
    /// §3.4 order for AES-CM: index then tag; RFC 7714 §9 for GCM: tag then index). On error
    /// `packet` is unchanged.
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        check_rtcp_header(packet)?;
        let ssrc = be_u32(packet, 4);
        let state = self.sent.get(&ssrc).copied().unwrap_or_default();
        let index = state.next_rtcp_index;
        if u64::from(index) > MAX_SRTCP_INDEX {
            return Err(SrtpError::KeyExhausted);
        }
        if !self.sent.contains_key(&ssrc) && self.sent.len() >= MAX_STREAMS {
            return Err(SrtpError::TooManyStreams(MAX_STREAMS));
        }
        let trailer = (SRTCP_E_BIT | index).to_be_bytes();
        match &self.rtcp {
            SessionCipher::Cm(session) => {
                session.apply_keystream(ssrc, u64::from(index), &mut packet[RTCP_HEADER_LEN..]);
                packet.extend_from_slice(&trailer);
                let tag = session.mac(&[packet]).finalize().into_bytes();
                packet.extend_from_slice(&tag[..HMAC_SHA1_80_TAG_LEN]);
            }
            SessionCipher::Gcm(session) => {
                let nonce = session.rtcp_nonce(ssrc, index);
                let aad = gcm_rtcp_aad(packet, trailer);
                let tag = session
                    .aead
                    .encrypt_in_place_detached(&nonce.into(), &aad, &mut packet[RTCP_HEADER_LEN..])
                    .map_err(|_| SrtpError::Malformed("RTCP packet too long for AES-GCM"))?;
                packet.extend_from_slice(&tag);
                packet.extend_from_slice(&trailer);
            }
        }
        self.sent.entry(ssrc).or_default().next_rtcp_index = index + 1;
        Ok(())
    }

    /// Checks the tag of the SRTCP packet in `packet`, decrypts it and removes the index word
    /// and the tag. Only encrypted SRTCP (E bit set) is accepted: both profiles encrypt
    /// RTCP. On error `packet` and the context's state are unchanged.
    pub fn unprotect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        check_rtcp_header(packet)?;
        let tag_len = self.profile.tag_len();
        if packet.len() < RTCP_HEADER_LEN + SRTCP_INDEX_LEN + tag_len {
            return Err(SrtpError::Malformed(
                "SRTCP packet too short for its header, index and authentication tag",
            ));
        }
        let body_len = packet.len() - SRTCP_INDEX_LEN - tag_len;
        let trailer_at = match self.profile {
            SrtpProfile::Aes128CmHmacSha1_80 => body_len,
            SrtpProfile::AeadAes128Gcm => body_len + tag_len,
        };
        let trailer = be_u32(packet, trailer_at);
        if trailer & SRTCP_E_BIT == 0 {
            return Err(SrtpError::Malformed(
                "SRTCP packet not encrypted (E bit clear)",
            ));
        }
        let index = trailer & !SRTCP_E_BIT;
        let ssrc = be_u32(packet, 4);
        let window = self.received.get(&ssrc).and_then(|state| state.rtcp);
        if let Some(window) = window {
            let index = u64::from(index);
            window.check(index).map_err(|unusable| match unusable {
                Unusable::Seen => SrtpError::Replayed(index),
                Unusable::TooOld => SrtpError::TooOld(index),
            })?;
        }
        if !self.received.contains_key(&ssrc) && self.received.len() >= MAX_STREAMS {
            return Err(SrtpError::TooManyStreams(MAX_STREAMS));
        }
        match &self.rtcp {
            SessionCipher::Cm(session) => {
                let (authenticated, tag) = packet.split_at_mut(body_len + SRTCP_INDEX_LEN);
                session
                    .mac(&[authenticated])
                    .verify_truncated_left(tag)
                    .map_err(|_| SrtpError::AuthFailed)?;
                session.apply_keystream(
                    ssrc,
                    u64::from(index),
                    &mut authenticated[RTCP_HEADER_LEN..body_len],
                );
            }
            SessionCipher::Gcm(session) => {
                let nonce = session.rtcp_nonce(ssrc, index);
                let aad = gcm_rtcp_aad(packet, trailer.to_be_bytes());
                let (body, rest) = packet.split_at_mut(body_len);
                let tag = &rest[..tag_len];
                session
                    .aead
                    .decrypt_in_place_detached(
                        &nonce.into(),
                        &aad,
                        &mut body[RTCP_HEADER_LEN..],
                        tag.into(),
                    )
                    .map_err(|_| SrtpError::AuthFailed)?;
            }
        }
        packet.truncate(body_len);
        record_index(
            &mut self.received.entry(ssrc).or_default().rtcp,
            u64::from(index),
        );
        Ok(())
    }
}

/// The SRTCP AAD of RFC 7714 §9.2: the first 8 bytes, then the E|index word.
fn gcm_rtcp_aad(packet: &[u8], trailer: [u8; SRTCP_INDEX_LEN]) -> [u8; 12] {
    let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
    aad[..RTCP_HEADER_LEN].copy_from_slice(&packet[..RTCP_HEADER_LEN]);
    aad[RTCP_HEADER_LEN..].copy_from_slice(&trailer);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text
            .bytes()
            .filter(|byte| !byte.is_ascii_whitespace())
            .collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// A context around given *session* keys (what the RFC 7714 vectors state), skipping the
    /// KDF; the same keys for RTP and RTCP.
    fn gcm_with_session_keys(key: &[u8], salt: &[u8]) -> SrtpContext {
        let session = || {
            SessionCipher::Gcm(GcmSession::from_session_keys(
                key.try_into().unwrap(),
                salt.try_into().unwrap(),
            ))
        };
        SrtpContext {
            profile: SrtpProfile::AeadAes128Gcm,
            rtp: session(),
            rtcp: session(),
            sent: HashMap::new(),
            received: HashMap::new(),
        }
    }

    fn context(profile: SrtpProfile) -> SrtpContext {
        let key: Vec<u8> = (1..=16).collect();
        let salt: Vec<u8> = (0xa0..0xa0 + profile.master_salt_len() as u8).collect();
        SrtpContext::new(profile, &key, &salt).unwrap()
    }

    const PROFILES: [SrtpProfile; 2] =
        [SrtpProfile::Aes128CmHmacSha1_80, SrtpProfile::AeadAes128Gcm];

    /// An RTP packet: version 2, payload type 96, `payload_len` bytes of `seq`.
    fn rtp(seq: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
        let mut packet = vec![0x80, 96];
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend((0..payload_len).map(|n| n as u8 ^ seq as u8));
        packet
    }

    /// An RTCP receiver report with one report block.
    fn rtcp(ssrc: u32) -> Vec<u8> {
        let mut packet = vec![0x81, 201, 0, 7];
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend((0..24).map(|n| n as u8));
        packet
    }

    fn protected_rtp(sender: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
        let mut packet = plain.to_vec();
        sender.protect_rtp(&mut packet).unwrap();
        packet
    }

    #[test]
    fn profiles_have_their_ids_and_lengths() {
        for profile in PROFILES {
            assert_eq!(SrtpProfile::from_id(profile.id()), Ok(profile));
        }
        assert_eq!(SrtpProfile::Aes128CmHmacSha1_80.id(), 0x0001);
        assert_eq!(SrtpProfile::AeadAes128Gcm.id(), 0x0007);
        assert_eq!(
            SrtpProfile::from_id(0x0008),
            Err(SrtpError::UnknownProfile(0x0008))
        );
        assert_eq!(
            SrtpError::UnknownProfile(2).to_string(),
            "unknown SRTP protection profile 0x0002"
        );
        assert_eq!(exporter_len(SrtpProfile::Aes128CmHmacSha1_80), 60);
        assert_eq!(exporter_len(SrtpProfile::AeadAes128Gcm), 56);
        assert_eq!(SrtpProfile::Aes128CmHmacSha1_80.rtp_overhead(), 10);
        assert_eq!(SrtpProfile::Aes128CmHmacSha1_80.rtcp_overhead(), 14);
        assert_eq!(SrtpProfile::AeadAes128Gcm.rtp_overhead(), 16);
        assert_eq!(SrtpProfile::AeadAes128Gcm.rtcp_overhead(), 20);
        assert_eq!(EXPORTER_LABEL, "EXTRACTOR-dtls_srtp");
    }

    #[test]
    fn wrong_key_lengths_are_named() {
        let error = SrtpContext::new(SrtpProfile::AeadAes128Gcm, &[0; 16], &[0; 14]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "master salt of 14 bytes, profile SRTP_AEAD_AES_128_GCM needs 12"
        );
        assert!(SrtpContext::new(SrtpProfile::Aes128CmHmacSha1_80, &[0; 15], &[0; 14]).is_err());
        assert!(matches!(
            from_dtls_exporter(SrtpProfile::AeadAes128Gcm, &[0; 60], true),
            Err(SrtpError::KeyLength {
                expected: 56,
                len: 60,
                ..
            })
        ));
    }

    /// RFC 3711 Appendix B.2: the AES-CM keystream for session key 2B7E1516…, salt F0F1…FCFD,
    /// SSRC 0 and index 0, where the IV is the salt followed by a zero block counter. The
    /// first three blocks and those at counters FEFF, FF00, FF01 of the RFC's table.
    #[test]
    fn aes_cm_keystream_is_rfc_3711_b_2() {
        let salt: [u8; CM_SALT_LEN] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap();
        let key: [u8; KEY_LEN] = hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap();
        let session = CmSession::from_session_keys(&key, &salt, &[0; 20]).unwrap();
        let mut keystream = vec![0u8; 0xff02 * AES_BLOCK_LEN];
        session.apply_keystream(0, 0, &mut keystream);
        assert_eq!(
            keystream[..48],
            hex(
                "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            )[..]
        );
        assert_eq!(
            keystream[0xfeff * 16..],
            hex(
                "EC8CDF7398607CB0F2D21675EA9EA1E4 362B7C3C6773516318A077D7FC5073AE
                 6A2CC3787889374FBEB4C81B17BA6C44"
            )[..]
        );
    }

    /// RFC 3711 Appendix B.3: the session keys of master key E1F97A0D…, master salt
    /// 0EC675AD…, index 0, key derivation rate 0 (the cipher key, the cipher salt, and the
    /// 94-byte authentication key the RFC lists, of which HMAC-SHA1 uses the first 20).
    #[test]
    fn key_derivation_is_rfc_3711_b_3() {
        let master_key: [u8; KEY_LEN] = hex("E1F97A0D3E018BE0D64FA32C06DE4139").try_into().unwrap();
        let master_salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let master = Aes128::new(&master_key.into());
        let mut cipher_key = [0u8; 16];
        derive(&master, &master_salt, LABEL_RTP_ENCRYPTION, &mut cipher_key);
        assert_eq!(cipher_key[..], hex("C61E7A93744F39EE10734AFE3FF7A087")[..]);
        let mut cipher_salt = [0u8; 14];
        derive(&master, &master_salt, LABEL_RTP_SALT, &mut cipher_salt);
        assert_eq!(cipher_salt[..], hex("30CBBC08863D8C85D49DB34A9AE1")[..]);
        let mut auth_key = [0u8; 94];
        derive(&master, &master_salt, LABEL_RTP_AUTH, &mut auth_key);
        assert_eq!(
            auth_key[..],
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE
                 E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25
                 6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2"
            )[..]
        );
    }

    /// RFC 7714 §16.1 (AEAD_AES_128_GCM SRTP): key 000102…0f, salt "Quid pro quo", SSRC
    /// 0x5501a0b2, ROC 0, SEQ 0xf17b, payload "Gallia est omnis divisa in partes tres". The
    /// RFC's IV (§16.1.1) and its protected packet, both ways. The hex as the RFC prints it,
    /// copied from the RFC 7714 test modules of rtci-srtp 0.3.0 (src/context/rfc7714_test.rs)
    /// and of an independent C# SRTP transform test (the two agree).
    #[test]
    fn gcm_rtp_is_rfc_7714_16_1() {
        let mut sender = gcm_with_session_keys(
            &hex("000102030405060708090a0b0c0d0e0f"),
            &hex("517569642070726f2071756f"),
        );
        let SessionCipher::Gcm(session) = &sender.rtp else {
            unreachable!()
        };
        assert_eq!(
            session.rtp_nonce(0x5501_a0b2, 0xf17b)[..],
            hex("51753c6580c2726f20718414")[..]
        );
        let plain = hex(
            "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976
             69736120 696e2070 61727465 73207472 6573",
        );
        let protected = hex(
            "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5
             0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce",
        );
        assert_eq!(protected_rtp(&mut sender, &plain), protected);

        let mut receiver = gcm_with_session_keys(
            &hex("000102030405060708090a0b0c0d0e0f"),
            &hex("517569642070726f2071756f"),
        );
        let mut packet = protected.clone();
        receiver.unprotect_rtp(&mut packet).unwrap();
        assert_eq!(packet, plain);
        let mut again = protected;
        assert_eq!(
            receiver.unprotect_rtp(&mut again),
            Err(SrtpError::Replayed(0xf17b))
        );
    }

    /// RFC 7714 §17.1 (AEAD_AES_128_GCM SRTCP, encrypted): the same key and salt, SSRC "Mars",
    /// SRTCP index 0x5d4; the RFC's IV and protected packet (sources as for §16.1).
    #[test]
    fn gcm_rtcp_is_rfc_7714_17_1() {
        let mut sender = gcm_with_session_keys(
            &hex("000102030405060708090a0b0c0d0e0f"),
            &hex("517569642070726f2071756f"),
        );
        let SessionCipher::Gcm(session) = &sender.rtcp else {
            unreachable!()
        };
        assert_eq!(
            session.rtcp_nonce(0x4d61_7273, 0x5d4)[..],
            hex("517524055203726f207170bb")[..]
        );
        let plain = hex(
            "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
             deadbeef deadbeef deadbeef deadbeef deadbeef",
        );
        let protected = hex(
            "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d
             c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872
             45d9eade 800005d4",
        );
        sender.sent.entry(0x4d61_7273).or_default().next_rtcp_index = 0x5d4;
        let mut packet = plain.clone();
        sender.protect_rtcp(&mut packet).unwrap();
        assert_eq!(packet, protected);

        let mut receiver = gcm_with_session_keys(
            &hex("000102030405060708090a0b0c0d0e0f"),
            &hex("517569642070726f2071756f"),
        );
        receiver.unprotect_rtcp(&mut packet).unwrap();
        assert_eq!(packet, plain);
    }

    /// libsrtp's own known answers, KDF included (test/srtp_driver.c, `srtp_validate` for
    /// AES-CM with the RFC 3711 B.3 master key, `srtp_validate_gcm` for GCM with master key
    /// 000102…0f and salt a0a1…ab): SSRC 0xcafebabe, SEQ 0x1234, and SRTCP index 1 (libsrtp
    /// starts its SRTCP index at 1).
    #[test]
    fn both_profiles_match_libsrtp_known_answers() {
        let cases = [
            (
                SrtpProfile::Aes128CmHmacSha1_80,
                "e1f97a0d3e018be0d64fa32c06de4139",
                "0ec675ad498afeebb6960b3aabe6",
                "4e55dc4c e79978d8 8ca4d215 949d2402 b78d6acc 99ea179b 8dbb",
                "7128035b e487b9bd bef89041 f977a5a8 80000001 993e08cd 54d6c123 0798",
            ),
            (
                SrtpProfile::AeadAes128Gcm,
                "000102030405060708090a0b0c0d0e0f",
                "a0a1a2a3a4a5a6a7a8a9aaab",
                "c5002ede 04cfdd2e b91159e0 880aa06e d2976826 f796b201 df3131a1 27e8a392",
                "c98b8b5d f0392a55 852b6c21 ac8e7025 c52c6fbe a2b3b446 ea31123b a88ce61e
                 80000001",
            ),
        ];
        for (profile, key, salt, srtp_body, srtcp_body) in cases {
            let rtp_plain = hex("800f1234 decafbad cafebabe abababab abababab abababab abababab");
            let rtcp_plain = hex("81c8000b cafebabe abababab abababab abababab abababab");
            let mut sender = SrtpContext::new(profile, &hex(key), &hex(salt)).unwrap();
            let mut receiver = SrtpContext::new(profile, &hex(key), &hex(salt)).unwrap();

            let srtp = protected_rtp(&mut sender, &rtp_plain);
            assert_eq!(
                srtp,
                [&rtp_plain[..12], &hex(srtp_body)].concat(),
                "{profile}"
            );
            let mut packet = srtp;
            receiver.unprotect_rtp(&mut packet).unwrap();
            assert_eq!(packet, rtp_plain);

            sender.sent.entry(0xcafe_babe).or_default().next_rtcp_index = 1;
            let mut packet = rtcp_plain.clone();
            sender.protect_rtcp(&mut packet).unwrap();
            assert_eq!(
                packet,
                [&rtcp_plain[..8], &hex(srtcp_body)].concat(),
                "{profile}"
            );
            receiver.unprotect_rtcp(&mut packet).unwrap();
            assert_eq!(packet, rtcp_plain);
        }
    }

    #[test]
    fn dtls_exporter_material_gives_the_client_its_keys_to_send() {
        for profile in PROFILES {
            let material: Vec<u8> = (0..exporter_len(profile) as u8).collect();
            let (mut client_out, mut client_in) =
                from_dtls_exporter(profile, &material, true).unwrap();
            let (mut server_out, mut server_in) =
                from_dtls_exporter(profile, &material, false).unwrap();

            // The client's key and salt come first in each half.
            let (key_len, salt_len) = (profile.master_key_len(), profile.master_salt_len());
            let mut by_hand = SrtpContext::new(
                profile,
                &material[..key_len],
                &material[2 * key_len..2 * key_len + salt_len],
            )
            .unwrap();
            let plain = rtp(7, 0xabcd, 40);
            assert_eq!(
                protected_rtp(&mut client_out, &plain),
                protected_rtp(&mut by_hand, &plain)
            );

            let mut packet = rtp(8, 0xabcd, 40);
            client_out.protect_rtp(&mut packet).unwrap();
            server_in.unprotect_rtp(&mut packet).unwrap();
            assert_eq!(packet, rtp(8, 0xabcd, 40));

            let mut packet = rtp(9, 0x1111, 40);
            server_out.protect_rtp(&mut packet).unwrap();
            let mut wrong_direction = packet.clone();
            assert_eq!(
                server_in.unprotect_rtp(&mut wrong_direction),
                Err(SrtpError::AuthFailed)
            );
            client_in.unprotect_rtp(&mut packet).unwrap();
            assert_eq!(packet, rtp(9, 0x1111, 40));
        }
    }

    #[test]
    fn index_estimation_follows_rfc_3711_appendix_a() {
        // (highest index so far, sequence number, estimated index)
        let cases = [
            (0x0_0010, 0x0011, 0x0_0011),
            (0x0_0010, 0x0005, 0x0_0005),
            // Before the first wrap there is no ROC - 1: far ahead instead.
            (0x0_0010, 0xfff0, 0x0_fff0),
            (0x0_fff0, 0x0002, 0x1_0002),
            (0x1_0002, 0xfff0, 0x0_fff0),
            (0x1_8000, 0x0001, 0x1_0001),
            (0x1_8001, 0x0000, 0x2_0000),
            (0x5_7fff, 0xffff, 0x5_ffff),
            (0x5_4000, 0xc001, 0x4_c001),
        ];
        for (highest, seq, expected) in cases {
            assert_eq!(
                estimate_index(highest, seq),
                Ok(expected),
                "highest {highest:#x}, seq {seq:#x}"
            );
        }
        assert_eq!(
            estimate_index(MAX_SRTP_INDEX, 0),
            Err(SrtpError::KeyExhausted)
        );
    }

    #[test]
    fn sequence_numbers_roll_over_into_the_next_roc() {
        for profile in PROFILES {
            let mut sender = context(profile);
            let mut receiver = context(profile);
            let sequence: Vec<u16> = (65530..=65535).chain(0..6).collect();
            let protected: Vec<Vec<u8>> = sequence
                .iter()
                .map(|&seq| protected_rtp(&mut sender, &rtp(seq, 42, 20)))
                .collect();
            // Reordered across the wrap: 0 before 65534 and 65535.
            for position in [0, 1, 2, 3, 6, 4, 5, 7, 8, 9, 10, 11] {
                let mut packet = protected[position].clone();
                receiver.unprotect_rtp(&mut packet).unwrap();
                assert_eq!(packet, rtp(sequence[position], 42, 20), "{profile}");
            }
            let window = receiver.received[&42].rtp.unwrap();
            assert_eq!(window.highest, 0x1_0005);
            assert_eq!(sender.sent[&42].rtp.unwrap().highest, 0x1_0005);

            // The ROC is part of the transform: sequence number 6 under ROC 1 is not what
            // it is under ROC 0, and a receiver still at ROC 0 cannot accept it.
            let with_roc_1 = protected_rtp(&mut sender, &rtp(6, 42, 20));
            let with_roc_0 = protected_rtp(&mut context(profile), &rtp(6, 42, 20));
            assert_ne!(with_roc_1, with_roc_0);
            assert_eq!(
                context(profile).unprotect_rtp(&mut with_roc_1.clone()),
                Err(SrtpError::AuthFailed)
            );
            let mut packet = with_roc_1;
            receiver.unprotect_rtp(&mut packet).unwrap();
            assert_eq!(packet, rtp(6, 42, 20));
        }
    }

    #[test]
    fn reordered_packets_within_the_window_are_accepted_once() {
        for profile in PROFILES {
            let mut sender = context(profile);
            let mut receiver = context(profile);
            let protected: Vec<Vec<u8>> = (1000..1200)
                .map(|seq| protected_rtp(&mut sender, &rtp(seq, 7, 30)))
                .collect();
            // 1199 first, then every other one backwards down to 127 below it.
            let mut packet = protected[199].clone();
            receiver.unprotect_rtp(&mut packet).unwrap();
            for position in (72..199).rev() {
                let mut packet = protected[position].clone();
                receiver.unprotect_rtp(&mut packet).unwrap();
                let mut replay = protected[position].clone();
                assert_eq!(
                    receiver.unprotect_rtp(&mut replay),
                    Err(SrtpError::Replayed(1000 + position as u64)),
                    "{profile}"
                );
                assert_eq!(
                    replay, protected[position],
                    "a refused packet is left as it was"
                );
            }
            // 128 below the highest: outside the window.
            let mut packet = protected[71].clone();
            assert_eq!(
                receiver.unprotect_rtp(&mut packet),
                Err(SrtpError::TooOld(1071))
            );
        }
    }

    #[test]
    fn rtcp_indices_count_per_ssrc_and_replays_are_refused() {
        for profile in PROFILES {
            let mut sender = context(profile);
            let mut receiver = context(profile);
            let mut packets = Vec::new();
            for n in 0..3u32 {
                for ssrc in [1, 2] {
                    let mut packet = rtcp(ssrc);
                    sender.protect_rtcp(&mut packet).unwrap();
                    assert_eq!(packet.len(), rtcp(ssrc).len() + profile.rtcp_overhead());
                    let trailer_at = match profile {
                        SrtpProfile::Aes128CmHmacSha1_80 => packet.len() - 14,
                        SrtpProfile::AeadAes128Gcm => packet.len() - 4,
                    };
                    assert_eq!(be_u32(&packet, trailer_at), SRTCP_E_BIT | n);
                    assert_ne!(packet[8..32], rtcp(ssrc)[8..], "encrypted");
                    packets.push(packet);
                }
            }
            for packet in packets.iter().rev() {
                let mut packet = packet.clone();
                receiver.unprotect_rtcp(&mut packet).unwrap();
                assert_eq!(packet, rtcp(be_u32(&packet, 4)));
            }
            let mut replay = packets[0].clone();
            assert_eq!(
                receiver.unprotect_rtcp(&mut replay),
                Err(SrtpError::Replayed(0))
            );
        }
    }

    #[test]
    fn protect_refuses_to_reuse_an_index() {
        for profile in PROFILES {
            let mut sender = context(profile);
            protected_rtp(&mut sender, &rtp(500, 9, 10));
            protected_rtp(&mut sender, &rtp(498, 9, 10));
            for seq in [500, 498] {
                let mut packet = rtp(seq, 9, 10);
                assert_eq!(
                    sender.protect_rtp(&mut packet),
                    Err(SrtpError::IndexReused(u64::from(seq)))
                );
                assert_eq!(packet, rtp(seq, 9, 10));
            }
            let mut packet = rtp(499, 9, 10);
            sender.protect_rtp(&mut packet).unwrap();
        }
    }

    /// Every byte of a protected packet changed (the header's P bit for byte 0, so the header
    /// stays well-formed; the low bit elsewhere): authentication fails, the packet and the
    /// receiver's state are unchanged, and the genuine packet is still accepted afterwards.
    #[test]
    fn a_tampered_byte_anywhere_fails_authentication_and_changes_nothing() {
        for profile in PROFILES {
            let mut sender = context(profile);
            let mut receiver = context(profile);
            let mut first = protected_rtp(&mut sender, &rtp(1, 5, 20));
            receiver.unprotect_rtp(&mut first).unwrap();

            // Two CSRCs and a one-word header extension; with a payload long enough that a
            // flipped extension length (1 becomes 0 or 257 words) still fits in the packet.
            let mut plain = vec![0x92, 96, 0, 2, 0, 0, 0, 9, 0, 0, 0, 5];
            plain.extend_from_slice(&[0xc1; 8]);
            plain.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
            plain.extend_from_slice(&[0x77; 1100]);
            let genuine = protected_rtp(&mut sender, &plain);
            let state = receiver.received.clone();
            for at in 0..genuine.len() {
                let mut tampered = genuine.clone();
                tampered[at] ^= if at == 0 { 0x20 } else { 0x01 };
                let before = tampered.clone();
                assert_eq!(
                    receiver.unprotect_rtp(&mut tampered),
                    Err(SrtpError::AuthFailed),
                    "{profile}: byte {at}"
                );
                assert_eq!(tampered, before);
                assert_eq!(receiver.received, state);
            }
            let mut packet = genuine;
            receiver.unprotect_rtp(&mut packet).unwrap();
            assert_eq!(packet, plain);

            let mut genuine = rtcp(5);
            sender.protect_rtcp(&mut genuine).unwrap();
            let state = receiver.received.clone();
            for at in 0..genuine.len() {
                let mut tampered = genuine.clone();
                tampered[at] ^= if at == 0 { 0x20 } else { 0x01 };
                assert_eq!(
                    receiver.unprotect_rtcp(&mut tampered),
                    Err(SrtpError::AuthFailed),
                    "{profile}: SRTCP byte {at}"
                );
                assert_eq!(receiver.received, state);
            }
            receiver.unprotect_rtcp(&mut genuine).unwrap();
            assert_eq!(genuine, rtcp(5));
        }
    }

    #[test]
    fn malformed_packets_are_named_errors() {
        for profile in PROFILES {
            let mut ctx = context(profile);
            let cases: [(&[u8], &str); 6] = [
                (&[], "empty RTP packet"),
                (
                    &[0x80, 0, 0, 1],
                    "RTP packet shorter than the 12-byte header",
                ),
                (&[0x40; 40], "RTP version is not 2"),
                (&[0x8f; 40], "RTP packet too short for its CSRCs"),
                (
                    &[0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe],
                    "RTP packet ends inside its header-extension header",
                ),
                (
                    &[
                        0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 9, 0, 0,
                    ],
                    "RTP header extension runs past the end of the packet",
                ),
            ];
            for (bytes, reason) in cases {
                for unprotect in [false, true] {
                    let mut packet = bytes.to_vec();
                    let result = if unprotect {
                        ctx.unprotect_rtp(&mut packet)
                    } else {
                        ctx.protect_rtp(&mut packet)
                    };
                    assert_eq!(result, Err(SrtpError::Malformed(reason)));
                    assert_eq!(packet, bytes);
                }
            }
            // Header and extension fit, the tag does not.
            let mut short = rtp(1, 1, 0);
            assert!(matches!(
                ctx.unprotect_rtp(&mut short),
                Err(SrtpError::Malformed(_))
            ));
            // Padding count beyond the payload.
            let mut padded = rtp(1, 1, 4);
            padded[0] |= 0x20;
            padded[15] = 5;
            assert!(matches!(
                ctx.protect_rtp(&mut padded),
                Err(SrtpError::Malformed(_))
            ));
            assert!(matches!(
                ctx.protect_rtcp(&mut vec![0x81, 201, 0, 1]),
                Err(SrtpError::Malformed(_))
            ));
            assert!(matches!(
                ctx.unprotect_rtcp(&mut vec![0x81, 201, 0, 1, 0, 0, 0, 1, 0x80, 0, 0, 0]),
                Err(SrtpError::Malformed(_))
            ));
            // Unencrypted SRTCP is refused before anything else.
            let mut packet = rtcp(3);
            ctx.protect_rtcp(&mut packet).unwrap();
            let e_at = match profile {
                SrtpProfile::Aes128CmHmacSha1_80 => packet.len() - 14,
                SrtpProfile::AeadAes128Gcm => packet.len() - 4,
            };
            packet[e_at] &= 0x7f;
            assert_eq!(
                ctx.unprotect_rtcp(&mut packet),
                Err(SrtpError::Malformed(
                    "SRTCP packet not encrypted (E bit clear)"
                ))
            );
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for profile in PROFILES {
            let mut sender = context(profile);
            let mut receiver = context(profile);
            let srtp = protected_rtp(&mut sender, &rtp(3, 3, 50));
            let mut srtcp = rtcp(3);
            sender.protect_rtcp(&mut srtcp).unwrap();
            for cut in 0..srtp.len() {
                assert!(receiver.unprotect_rtp(&mut srtp[..cut].to_vec()).is_err());
            }
            for cut in 0..srtcp.len() {
                assert!(receiver.unprotect_rtcp(&mut srtcp[..cut].to_vec()).is_err());
            }
            assert!(receiver.received.is_empty());
        }
    }

    #[test]
    fn streams_are_bounded() {
        let mut sender = context(SrtpProfile::AeadAes128Gcm);
        let mut receiver = context(SrtpProfile::AeadAes128Gcm);
        for ssrc in 0..MAX_STREAMS as u32 {
            let mut packet = protected_rtp(&mut sender, &rtp(1, ssrc, 1));
            receiver.unprotect_rtp(&mut packet).unwrap();
        }
        let mut packet = rtp(1, 0xffff_ffff, 1);
        assert_eq!(
            sender.protect_rtp(&mut packet),
            Err(SrtpError::TooManyStreams(MAX_STREAMS))
        );
        let mut other_sender = context(SrtpProfile::AeadAes128Gcm);
        let mut packet = protected_rtp(&mut other_sender, &rtp(1, 0xffff_ffff, 1));
        assert_eq!(
            receiver.unprotect_rtp(&mut packet),
            Err(SrtpError::TooManyStreams(MAX_STREAMS))
        );
        // Known streams go on.
        let mut packet = protected_rtp(&mut sender, &rtp(2, 0, 1));
        receiver.unprotect_rtp(&mut packet).unwrap();
    }

    #[test]
    fn the_srtcp_index_runs_out_instead_of_wrapping() {
        let mut sender = context(SrtpProfile::Aes128CmHmacSha1_80);
        sender.sent.entry(4).or_default().next_rtcp_index = 0x7fff_ffff;
        let mut packet = rtcp(4);
        sender.protect_rtcp(&mut packet).unwrap();
        let mut packet = rtcp(4);
        assert_eq!(
            sender.protect_rtcp(&mut packet),
            Err(SrtpError::KeyExhausted)
        );
    }

    #[test]
    fn protect_does_not_reallocate_with_room_for_the_tag() {
        for profile in PROFILES {
            let mut sender = context(profile);
            let mut packet = Vec::with_capacity(200 + profile.rtcp_overhead());
            packet.extend_from_slice(&rtp(1, 1, 188));
            let buffer = packet.as_ptr();
            sender.protect_rtp(&mut packet).unwrap();
            assert_eq!(packet.as_ptr(), buffer);
            packet.clear();
            packet.extend_from_slice(&rtcp(1));
            sender.protect_rtcp(&mut packet).unwrap();
            assert_eq!(packet.as_ptr(), buffer);
        }
    }

    /// An RTP packet of any shape: CSRCs, a header extension, padding, marker, payload.
    fn any_rtp() -> impl Strategy<Value = Vec<u8>> {
        (
            0usize..=15,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..5)),
            proptest::collection::vec(any::<u8>(), 0..300),
            0u8..=20,
            any::<[u8; 12]>(),
        )
            .prop_map(|(csrcs, extension_words, payload, padding, fixed)| {
                let mut packet = fixed.to_vec();
                packet[0] = 0x80 | csrcs as u8;
                packet.extend((0..4 * csrcs).map(|n| n as u8));
                if let Some(words) = extension_words {
                    packet[0] |= 0x10;
                    packet.extend_from_slice(&[0xbe, 0xde, 0, words.len() as u8]);
                    for word in words {
                        packet.extend_from_slice(&[word; 4]);
                    }
                }
                packet.extend_from_slice(&payload);
                if padding > 0 {
                    packet[0] |= 0x20;
                    packet.extend(std::iter::repeat_n(0, usize::from(padding) - 1));
                    packet.push(padding);
                }
                packet
            })
    }

    proptest! {
        #[test]
        fn rtp_round_trips_for_both_profiles(packet in any_rtp(), gcm in any::<bool>()) {
            let profile = if gcm { SrtpProfile::AeadAes128Gcm } else { SrtpProfile::Aes128CmHmacSha1_80 };
            let mut sender = context(profile);
            let mut receiver = context(profile);
            let mut wire = packet.clone();
            sender.protect_rtp(&mut wire).unwrap();
            prop_assert_eq!(wire.len(), packet.len() + profile.rtp_overhead());
            let header_len = rtp_header_len(&packet).unwrap();
            prop_assert_eq!(&wire[..header_len], &packet[..header_len]);
            receiver.unprotect_rtp(&mut wire).unwrap();
            prop_assert_eq!(wire, packet);
        }

        #[test]
        fn rtcp_round_trips_for_both_profiles(body in proptest::collection::vec(any::<u8>(), 0..300), ssrc in any::<u32>(), gcm in any::<bool>()) {
            let profile = if gcm { SrtpProfile::AeadAes128Gcm } else { SrtpProfile::Aes128CmHmacSha1_80 };
            let mut sender = context(profile);
            let mut receiver = context(profile);
            let mut packet = vec![0x80, 200, 0, 0];
            packet.extend_from_slice(&ssrc.to_be_bytes());
            packet.extend_from_slice(&body);
            let mut wire = packet.clone();
            sender.protect_rtcp(&mut wire).unwrap();
            prop_assert_eq!(wire.len(), packet.len() + profile.rtcp_overhead());
            receiver.unprotect_rtcp(&mut wire).unwrap();
            prop_assert_eq!(wire, packet);
        }

        #[test]
        fn any_bytes_are_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), gcm in any::<bool>()) {
            let profile = if gcm { SrtpProfile::AeadAes128Gcm } else { SrtpProfile::Aes128CmHmacSha1_80 };
            let mut receiver = context(profile);
            let mut packet = bytes.clone();
            prop_assert!(receiver.unprotect_rtp(&mut packet).is_err());
            prop_assert_eq!(&packet, &bytes);
            prop_assert!(receiver.unprotect_rtcp(&mut packet).is_err());
            prop_assert_eq!(&packet, &bytes);
            prop_assert!(receiver.received.is_empty());
        }
    }
}
