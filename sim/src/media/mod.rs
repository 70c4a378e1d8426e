//! The media node (wire profile §7, `docs/wire-profile-choices.md` §7): the one UDP address every
//! join answer's remote SDP names. It answers the device's STUN Binding checks, latches one
//! session onto each device address, counts and decodes what the device sends, speaks the
//! multistream SCA/SCR exchange in both directions and plays a far-end meeting: the video the
//! device asks for, showing the meeting's participants, and their audio.
//!
//! - `wire`: demultiplexing, RTP with RFC 8285 one-byte header extensions, RTCP packet iteration
//!   (SR, RR, SDES, BYE) and the `MSTR` APP packets (SCA, SCR), encode and decode.
//! - `sdp`: the device's offer (audio SSRC, video SSRCs in layer order, the CSI extension id) and
//!   the answer SDP (pt 111 / 126, `a=rtcp-mux`, the CSI `a=extmap` echoed, the node's `a=ssrc`).
//! - `state`: [`MediaNode`], the meeting, sessions and their records, the admin snapshot, waiting
//!   on changes.
//! - `node`: the socket loop (STUN, RTP, RTCP, timers, pipeline events, meeting changes).
//! - `participants`: the meeting (contract §7 "Far-end media"): participants 1..=8 with their
//!   CSIs, colours and tones, the active speaker, who each video request and audio slot gets.
//! - `decode`: one GStreamer decoder per received SSRC: video (`… ! openh264dec ! appsink`)
//!   measuring frame sizes and rate; audio (`… ! opusdec ! … ! appsink`) measured by `spectrum`
//!   (RMS level, dominant frequency, tone levels over the last second).
//! - `streams`: the video for a device SCR, one `videotestsrc ! x264enc ! rtph264pay` per served
//!   request in its participant's colour, `picture` drawing the number and timecode strip into
//!   every frame; `audio`: the far-end audio slots (`audiotestsrc ! opusenc ! rtpopuspay`).
//! - `scr`: the node's own SCRs (the contract's three-layer default and two-layer change), the
//!   resend schedule and seed-style log lines.
//! - `gst_util`: GStreamer initialisation, pipelines that go to Null when dropped, bus errors.
//! - `admin`: `GET /admin/media`, `POST /admin/media/scr`, `POST /admin/media/acks`,
//!   `POST /admin/media/active-speaker`, `POST /admin/media/participants/add|remove`; `handle`:
//!   the [`crate::SimHandle`] mirrors and `wait_media`.
//!
//! Behaviour, in short: a session starts with the first RTP or RTCP datagram from an address and
//! ends with the device's RTCP BYE (its decoders, encoders and audio senders are set to Null;
//! later datagrams from that address are only counted, unless they name an SSRC of a newer offer:
//! a new call). A session adopts the newest offer recorded from a Locus join that names one of
//! its SSRCs (until one does, the newest offer); from then on, with `[media] send_audio`, it gets
//! the far-end audio. On the device's first video SCA (ack_seqno 0) the node sends the
//! three-layer SCR (`[media] auto_scr`), resent after 250 ms, 500 ms, … (at most 8 times, same
//! seqno) until an SCA acks it; with `scr_change_after_secs` it then sends the two-layer SCR and,
//! as long again later, the three-layer one. A device SCR is recorded (a repeated seqno counts
//! `times`), acknowledged with the node's SCA (unless the admin drops acks) and, when it is the
//! newest and `[media] send_streams`, served: the node's streams are replaced by one per request
//! that has a participant (the active speaker first, then the others ascending; the rest get SCA
//! state 2). When the active speaker changes or participants join or leave, every session's
//! streams and audio slots are re-assigned in place: same SSRCs, the new participant's CSI,
//! colour and tone, an IDR first; no new SCA.

mod admin;
mod audio;
mod decode;
mod gst_util;
mod handle;
mod node;
mod participants;
mod picture;
mod scr;
mod sdp;
mod spectrum;
mod state;
mod streams;
mod wire;

use serde::{Deserialize, Serialize};

pub(crate) use admin::router as admin_router;
pub(crate) use node::{bind, run};
pub use participants::MAX_PARTICIPANTS;
pub(crate) use state::MediaNode;

/// The answer SDP of a join whose offer is `local_sdp`: records the offer for the node and
/// echoes its CSI extension id.
pub(crate) fn answer(sim: &crate::state::SimState, local_sdp: &str) -> String {
    let offer = sim.media.record_offer(local_sdp);
    sdp::remote_sdp(sim.endpoints.media_node, sim.media.ssrc, offer.ext_id)
}

/// The node with its meeting in step with the scenario's `[media] participants` (built on first
/// use, rebuilt when the scenario changes it).
pub(crate) fn node(sim: &crate::state::SimState) -> &MediaNode {
    let participants = sim.with_scenario(|s| s.media.participants);
    sim.media.sync_meeting(participants);
    &sim.media
}

/// Largest `[media] send_fps`.
pub const MAX_SEND_FPS: u32 = 60;
/// Largest `[media] send_max_fs` (the offer's `max-fs`, 4K).
pub const MAX_SEND_FS: u32 = 8160;
/// Longest `[media] scr_change_after_secs` (one hour).
pub const MAX_SCR_CHANGE_SECS: u64 = 3600;

/// `[media]`: what the media node does beyond answering STUN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaScenario {
    /// Send the three-layer SCR on the device's first video SCA; default true.
    pub auto_scr: bool,
    /// Send the streams a device SCR asks for; default true.
    pub send_streams: bool,
    /// Largest frame (16×16 macroblocks) the node sends; default 920 (640×360).
    pub send_max_fs: u32,
    /// Frame rate of the streams the node sends; default 15.
    pub send_fps: u32,
    /// When more than 0: this many seconds after the first SCR send the two-layer SCR, as long
    /// again later the three-layer one (for demos); default 0.
    pub scr_change_after_secs: u64,
    /// Decode received media with GStreamer: video sizes and frame rate, audio level, dominant
    /// frequency and tone levels; false only counts packets. Default true.
    pub decode: bool,
    /// Far-end participants in the meeting the node plays, 1..=8; default 3. Participant *n*
    /// shows colour `PALETTE[n-1]` with its number and sends a tone at 300 + 150·n Hz.
    pub participants: u8,
    /// Send the far-end audio (the active speaker and the next two participants) to every
    /// session with an offer; default true. Tests not about media turn it off.
    pub send_audio: bool,
}

impl Default for MediaScenario {
    fn default() -> Self {
        Self {
            auto_scr: true,
            send_streams: true,
            send_max_fs: 920,
            send_fps: 15,
            scr_change_after_secs: 0,
            decode: true,
            participants: 3,
            send_audio: true,
        }
    }
}

impl MediaScenario {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if !(1..=MAX_SEND_FPS).contains(&self.send_fps) {
            anyhow::bail!("media.send_fps must be within 1..={MAX_SEND_FPS}");
        }
        if !(4..=MAX_SEND_FS).contains(&self.send_max_fs) {
            anyhow::bail!("media.send_max_fs must be within 4..={MAX_SEND_FS} (4 is 32x18)");
        }
        if self.scr_change_after_secs > MAX_SCR_CHANGE_SECS {
            anyhow::bail!("media.scr_change_after_secs must be at most {MAX_SCR_CHANGE_SECS}");
        }
        if !(1..=MAX_PARTICIPANTS).contains(&self.participants) {
            anyhow::bail!("media.participants must be within 1..={MAX_PARTICIPANTS}");
        }
        Ok(())
    }
}

/// What the GStreamer threads tell the node loop (they never touch the node's state).
#[derive(Debug)]
pub(crate) enum PipelineEvent {
    /// A decoded frame of (`session`, `ssrc`): its size and PTS (RTP time, ns).
    Frame {
        session: usize,
        ssrc: u32,
        width: u32,
        height: u32,
        pts: Option<u64>,
    },
    /// A fresh measurement of the decoded audio of (`session`, `ssrc`).
    AudioLevels {
        session: usize,
        ssrc: u32,
        levels: spectrum::AudioLevels,
    },
    DecodeError {
        session: usize,
        ssrc: u32,
        message: String,
    },
    /// One RTP packet from `encoder` (video or audio), to send on its stream; video names the
    /// participant its frame shows.
    Encoded {
        session: usize,
        encoder: u64,
        participant: Option<u8>,
        packet: Vec<u8>,
    },
    EncodeError {
        session: usize,
        encoder: u64,
        message: String,
    },
}
