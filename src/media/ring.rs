//! The ring tone of an incoming call, played on the board's speaker until the call is
//! answered, declined or gone: two alternating tones (440 Hz and 480 Hz, the North American
//! ring's pair) at the room's volume. Its own small pipeline, stopped before the call's
//! receive pipeline opens the speaker (an ALSA device has one writer).

use super::gst::{MediaError, OwnedPipeline};
use crate::hw::board::ElementSpec;
use gstreamer as gst;
use gstreamer::prelude::*;

/// The tone the test listens for (the lower of the pair).
pub const RING_HZ: f64 = 440.0;

#[derive(Debug)]
pub struct Ringer {
    /// Goes to Null (silence, speaker released) when dropped.
    pipeline: OwnedPipeline,
    volume: gst::Element,
}

impl Ringer {
    /// Starts ringing on `speaker` at `volume` (0..=100, linear as the call's audio).
    pub fn start(speaker: &ElementSpec, volume: u8) -> Result<Self, MediaError> {
        let text = format!(
            "audiomixer name=ringmix ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! volume name=ringvol \
             ! audioconvert ! audioresample{} ! {} \
             audiotestsrc is-live=true wave=sine freq={RING_HZ} volume=0.25 ! ringmix. \
             audiotestsrc is-live=true wave=sine freq=480 volume=0.25 ! ringmix.",
            super::graph::caps_filter_text(speaker),
            super::graph::element_text(speaker, Some("ringspeaker")),
        );
        let pipeline = OwnedPipeline::launch(&text, "the ring tone")?;
        let ringer = Self {
            volume: pipeline.element("ringvol")?,
            pipeline,
        };
        ringer.set_volume(volume);
        ringer.pipeline.play("the ring tone")?;
        Ok(ringer)
    }

    pub fn set_volume(&self, volume: u8) {
        self.volume
            .set_property("volume", f64::from(volume.min(100)) / 100.0);
    }
}
