//! Decoding one received SSRC with GStreamer. Video, to learn the real size and rate of what the
//! device sends: `appsrc ! rtph264depay ! video/x-h264,stream-format=avc ! h264parse ! openh264dec !
//! appsink`. Audio (Opus pt 111), to measure its level and spectrum: `appsrc ! rtpopusdepay !
//! opusdec ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,rate=48000,channels=1 !
//! appsink`, measured on the appsink's thread ([`Analyzer`]).
//!
//! The node pushes each RTP packet with a PTS taken from its RTP timestamp (unwrapped, relative
//! to the stream's first packet), so a decoded frame's PTS is its capture time on the sender's
//! clock and the frame rate measured from it ignores network and scheduling jitter. Frames,
//! measurements and errors go back to the node loop as [`PipelineEvent`]s; nothing here touches
//! the node's state, so no GStreamer thread ever waits for the node's lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc::UnboundedSender;

use super::PipelineEvent;
use super::gst_util::{Pipeline, on_each_buffer, watch_bus};
use super::spectrum::{Analyzer, SAMPLE_RATE};

/// RTP clock rate of H.264.
const VIDEO_CLOCK_RATE: u64 = 90_000;
/// RTP clock rate of Opus.
const AUDIO_CLOCK_RATE: u64 = 48_000;

/// A running decoder for one SSRC of one session. Dropping it sets the pipeline to Null.
#[derive(Debug)]
pub(crate) struct Decoder {
    pipeline: Pipeline,
    src: gst_app::AppSrc,
    clock: RtpClock,
    /// Set by the bus handler on an error: the pipeline has stopped and must be rebuilt.
    failed: Arc<AtomicBool>,
}

impl Decoder {
    /// Builds and starts a video decoder; decoded frames are reported as
    /// [`PipelineEvent::Frame`] for (`session`, `ssrc`).
    pub(crate) fn start_video(
        session: usize,
        ssrc: u32,
        events: &UnboundedSender<PipelineEvent>,
    ) -> anyhow::Result<Self> {
        // AVC between depayloader and parser: the depayloader then keeps SPS/PPS as codec data,
        // and openh264 decodes streams whose payloader repeats SPS/PPS before every IDR
        // (`config-interval=-1`) after an access unit delimiter, which it rejects as byte-stream.
        let description = "appsrc name=src ! rtph264depay ! video/x-h264,stream-format=avc,alignment=au ! \
                           h264parse ! openh264dec ! appsink name=sink sync=false";
        let pipeline = Pipeline::launch(description)
            .with_context(|| format!("building the decoder of SSRC 0x{ssrc:08x}"))?;
        let src = pipeline
            .by_name::<gst_app::AppSrc>("src")
            .context("decoder pipeline has no appsrc")?;
        src.set_caps(Some(
            &gst::Caps::builder("application/x-rtp")
                .field("media", "video")
                .field("encoding-name", "H264")
                .field("clock-rate", 90_000_i32)
                .field("payload", i32::from(super::sdp::VIDEO_PT))
                // The offer's fmtp: without a profile the parser's first caps lack one, and
                // openh264dec (constrained baseline only) refuses them.
                .field("profile-level-id", "42e01f")
                .field("packetization-mode", "1")
                .build(),
        ));
        let sink = pipeline
            .by_name::<gst_app::AppSink>("sink")
            .context("decoder pipeline has no appsink")?;
        let frames = events.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let size = sample.caps().and_then(|caps| {
                        let s = caps.structure(0)?;
                        let w = s.get::<i32>("width").ok()?;
                        let h = s.get::<i32>("height").ok()?;
                        Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?))
                    });
                    let pts = sample
                        .buffer()
                        .and_then(gst::BufferRef::pts)
                        .map(gst::ClockTime::nseconds);
                    let (width, height) = size.unwrap_or((0, 0));
                    // The node loop is gone only at shutdown; then nobody needs the frame.
                    let _ = frames.send(PipelineEvent::Frame {
                        session,
                        ssrc,
                        width,
                        height,
                        pts,
                    });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        Self::play(pipeline, src, VIDEO_CLOCK_RATE, session, ssrc, events)
    }

    /// Builds and starts an Opus decoder measuring the level, the dominant frequency and the
    /// level at each of `tones` (Hz); measurements are reported as [`PipelineEvent::AudioLevels`].
    pub(crate) fn start_audio(
        session: usize,
        ssrc: u32,
        tones: Vec<u32>,
        events: &UnboundedSender<PipelineEvent>,
    ) -> anyhow::Result<Self> {
        let description = format!(
            "appsrc name=src ! rtpopusdepay ! opusdec ! audioconvert ! audioresample ! \
             audio/x-raw,format=F32LE,rate={SAMPLE_RATE},channels=1,layout=interleaved ! \
             appsink name=sink sync=false"
        );
        let pipeline = Pipeline::launch(&description)
            .with_context(|| format!("building the audio decoder of SSRC 0x{ssrc:08x}"))?;
        let src = pipeline
            .by_name::<gst_app::AppSrc>("src")
            .context("decoder pipeline has no appsrc")?;
        src.set_caps(Some(
            &gst::Caps::builder("application/x-rtp")
                .field("media", "audio")
                .field("encoding-name", "OPUS")
                .field("clock-rate", 48_000_i32)
                .field("payload", i32::from(super::sdp::AUDIO_PT))
                .build(),
        ));
        let sink = pipeline
            .by_name::<gst_app::AppSink>("sink")
            .context("decoder pipeline has no appsink")?;
        let analyzer = Mutex::new(Analyzer::new(tones));
        let measurements = events.clone();
        on_each_buffer(&sink, move |bytes, _| {
            let samples: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let measured = analyzer
                .lock()
                .map_err(|_| gst::FlowError::Error)?
                .push(&samples);
            if let Some(levels) = measured {
                // The node loop is gone only at shutdown; then nobody needs it.
                let _ = measurements.send(PipelineEvent::AudioLevels {
                    session,
                    ssrc,
                    levels,
                });
            }
            Ok(())
        });
        Self::play(pipeline, src, AUDIO_CLOCK_RATE, session, ssrc, events)
    }

    /// Common to both kinds: a live appsrc timed by the RTP clock, errors reported, playing.
    fn play(
        pipeline: Pipeline,
        src: gst_app::AppSrc,
        clock_rate: u64,
        session: usize,
        ssrc: u32,
        events: &UnboundedSender<PipelineEvent>,
    ) -> anyhow::Result<Self> {
        src.set_is_live(true);
        src.set_format(gst::Format::Time);
        src.set_property("do-timestamp", false);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&failed);
        let errors = events.clone();
        watch_bus(&pipeline, move |message| {
            flag.store(true, Ordering::Relaxed);
            let _ = errors.send(PipelineEvent::DecodeError {
                session,
                ssrc,
                message,
            });
        });
        pipeline
            .play()
            .with_context(|| format!("starting the decoder of SSRC 0x{ssrc:08x}"))?;
        Ok(Self {
            pipeline,
            src,
            clock: RtpClock::new(clock_rate),
            failed,
        })
    }

    /// Whether the pipeline stopped on an error.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// The buffer for one RTP packet (PTS from its timestamp) and the appsrc to push it to; the
    /// caller pushes outside the node's lock.
    pub(crate) fn buffer(
        &mut self,
        rtp_timestamp: u32,
        packet: &[u8],
    ) -> (gst_app::AppSrc, gst::Buffer) {
        let mut buffer = gst::Buffer::from_mut_slice(packet.to_vec());
        let pts = self.clock.nanos(rtp_timestamp);
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts));
        }
        (self.src.clone(), buffer)
    }

    /// Stops the pipeline now (also what dropping it does).
    pub(crate) fn stop(self) {
        drop(self.pipeline);
    }
}

/// Unwraps 32-bit RTP timestamps into nanoseconds since the stream's first packet.
#[derive(Debug, Clone)]
pub(crate) struct RtpClock {
    /// Ticks per second.
    rate: u64,
    /// (first timestamp, last timestamp, unwrapped last timestamp)
    state: Option<(i64, u32, i64)>,
}

impl RtpClock {
    pub(crate) fn new(rate: u64) -> Self {
        Self { rate, state: None }
    }

    /// Nanoseconds of `ts` after the first timestamp seen (0 for anything earlier).
    pub(crate) fn nanos(&mut self, ts: u32) -> u64 {
        let (first, _, unwrapped) = match self.state {
            None => {
                let t = i64::from(ts);
                self.state = Some((t, ts, t));
                (t, ts, t)
            }
            Some((first, last, unwrapped)) => {
                // The signed distance from the last timestamp: wraps and small reorders alike.
                let step = i64::from(ts.wrapping_sub(last) as i32);
                let now = unwrapped + step;
                self.state = Some((first, ts, now));
                (first, ts, now)
            }
        };
        let ticks = u128::try_from(unwrapped - first).unwrap_or(0);
        u64::try_from(ticks * 1_000_000_000 / u128::from(self.rate)).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_clock_unwraps_and_clamps() {
        let mut c = RtpClock::new(VIDEO_CLOCK_RATE);
        assert_eq!(c.nanos(u32::MAX - 2999), 0);
        assert_eq!(
            c.nanos((u32::MAX - 2999).wrapping_add(6000)),
            66_666_666,
            "across the wrap"
        );
        assert_eq!(c.nanos(u32::MAX - 5999), 0, "before the first: clamped");
        let mut c = RtpClock::new(VIDEO_CLOCK_RATE);
        assert_eq!(c.nanos(90_000), 0);
        assert_eq!(c.nanos(180_000), 1_000_000_000);
        let mut a = RtpClock::new(AUDIO_CLOCK_RATE);
        assert_eq!(a.nanos(5), 0);
        assert_eq!(a.nanos(965), 20_000_000, "one 20 ms Opus frame");
    }
}
