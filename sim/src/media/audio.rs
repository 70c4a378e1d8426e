//! The far-end audio the node sends a session: `min(3, P)` Opus streams (48 kHz stereo, pt 111,
//! 20 ms frames), one per slot, each on the node's SSRC + 1 + slot and each packet with the audio
//! CSI of the participant the slot carries. Slot 0 is the active speaker's tone at −6 dBFS, the
//! others' at −30 dBFS. One pipeline per slot:
//! `audiotestsrc wave=sine ! opusenc frame-size=20 ! rtpopuspay pt=111 ! appsink`; a switch
//! changes the tone's frequency and volume in place (no restart) and the CSI.

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::PipelineEvent;
use super::gst_util::{Pipeline, forward_encoded};
use super::participants::{ACTIVE_DBFS, QUIET_DBFS, amplitude, audio_csi, tone_hz};
use super::sdp::AUDIO_PT;
use super::streams::{Outgoing, PAYLOAD_MTU};

/// Samples per 20 ms frame at 48 kHz.
const FRAME_SAMPLES: u32 = 960;

/// The tone level of `slot`: the active speaker loud, the others quiet.
pub(crate) fn slot_dbfs(slot: usize) -> f64 {
    if slot == 0 { ACTIVE_DBFS } else { QUIET_DBFS }
}

/// The SSRC of `slot`: the node's own + 1 + slot.
pub(crate) fn slot_ssrc(node_ssrc: u32, slot: usize) -> u32 {
    node_ssrc.wrapping_add(1 + u32::try_from(slot).unwrap_or(0))
}

/// One slot's running pipeline. Dropping it sets the pipeline to Null.
#[derive(Debug)]
pub(crate) struct AudioSender {
    pub id: u64,
    src: gst::Element,
    _pipeline: Pipeline,
}

impl AudioSender {
    /// Builds and starts slot `slot` playing `participant`'s tone; its packets are reported as
    /// [`PipelineEvent::Encoded`] (encoder `id`).
    pub(crate) fn start(
        id: u64,
        session: usize,
        slot: usize,
        participant: u8,
        events: &UnboundedSender<PipelineEvent>,
    ) -> anyhow::Result<Self> {
        let description = format!(
            "audiotestsrc name=src is-live=true wave=sine freq={} volume={} samplesperbuffer={FRAME_SAMPLES} ! \
             audio/x-raw,format=S16LE,rate=48000,channels=2 ! opusenc frame-size=20 ! \
             rtpopuspay pt={AUDIO_PT} mtu={PAYLOAD_MTU} ! appsink name=sink sync=false",
            tone_hz(participant),
            amplitude(slot_dbfs(slot)),
        );
        let what = format!("the audio sender of slot {slot}");
        let pipeline =
            Pipeline::launch(&description).with_context(|| format!("building {what}"))?;
        let src = pipeline.by_name::<gst::Element>("src")?;
        let sink = pipeline.by_name::<gst_app::AppSink>("sink")?;
        forward_encoded(
            &pipeline,
            &sink,
            events,
            (session, id),
            Box::new(|_| Ok(None)),
        );
        pipeline
            .play()
            .with_context(|| format!("starting {what}"))?;
        Ok(Self {
            id,
            src,
            _pipeline: pipeline,
        })
    }

    /// Plays `participant`'s tone at `slot`'s level from the next buffer on.
    pub(crate) fn play(&self, slot: usize, participant: u8) {
        self.src
            .set_property("freq", f64::from(tone_hz(participant)));
        self.src.set_property("volume", amplitude(slot_dbfs(slot)));
    }
}

/// One audio slot the node sends (or sent) to a session.
#[derive(Debug, Clone)]
pub(crate) struct TxAudio {
    pub ssrc: u32,
    pub slot: usize,
    pub participant: u8,
    pub csi: u32,
    /// The sender feeding it; `None` while starting or when it failed.
    pub sender: Option<u64>,
    pub packets: u64,
    pub bytes: u64,
    /// False once the slot is no longer needed or the session ended.
    pub active: bool,
    pub error: Option<String>,
    next_sequence: u16,
}

impl TxAudio {
    pub(crate) fn new(node_ssrc: u32, slot: usize, participant: u8) -> Self {
        Self {
            ssrc: slot_ssrc(node_ssrc, slot),
            slot,
            participant,
            csi: audio_csi(participant),
            sender: None,
            packets: 0,
            bytes: 0,
            active: true,
            error: None,
            next_sequence: rand::random(),
        }
    }

    /// Carries another participant.
    pub(crate) fn carry(&mut self, participant: u8) {
        self.participant = participant;
        self.csi = audio_csi(participant);
    }

    /// An entry of a session's `sentAudio`.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "ssrc": self.ssrc,
            "slot": self.slot,
            "participant": self.participant,
            "csi": self.csi,
            "toneHz": tone_hz(self.participant),
            "levelDbfs": slot_dbfs(self.slot),
            "packets": self.packets,
            "error": self.error,
        })
    }
}

impl Outgoing for TxAudio {
    fn ssrc(&self) -> u32 {
        self.ssrc
    }

    fn next(&mut self, len: usize) -> u16 {
        let seq = self.next_sequence;
        self.next_sequence = seq.wrapping_add(1);
        self.packets += 1;
        self.bytes += len as u64;
        seq
    }
}

#[cfg(test)]
mod tests {
    use super::super::streams::rewrite;
    use super::super::wire::Rtp;
    use super::*;

    #[test]
    fn slots_have_their_ssrc_level_and_participants_csi() {
        assert_eq!(slot_ssrc(u32::MAX, 0), 0, "wraps");
        assert_eq!(slot_ssrc(10, 2), 13);
        assert_eq!((slot_dbfs(0), slot_dbfs(2)), (-6.0, -30.0));
        let mut a = TxAudio::new(100, 1, 2);
        assert_eq!((a.ssrc, a.csi), (102, 0x0001_0200));
        let mut packet = vec![0x80, 111, 0, 1, 0, 0, 3, 0xC0, 1, 2, 3, 4];
        packet.extend_from_slice(&[0xFC, 0xFF, 0xFE]);
        let csi = a.csi;
        let out = rewrite(&packet, &mut a, csi, 3).expect("rtp");
        let rtp = Rtp::parse(&out).expect("rtp");
        assert_eq!((rtp.ssrc, rtp.payload_type, rtp.timestamp), (102, 111, 960));
        assert_eq!(rtp.csi(3), Some(0x0001_0200));
        a.carry(3);
        assert_eq!(a.to_json()["toneHz"], 750);
        assert_eq!(a.to_json()["csi"], 0x0001_0300);
        assert_eq!(a.packets, 1);
    }
}
