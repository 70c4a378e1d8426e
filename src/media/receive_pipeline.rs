//! The receive side of a call, as one pipeline: what the node sends, decoded, composed and
//! played on the board's display and speaker.
//!
//! ```text
//! video slot i:  appsrc ! rtpjitterbuffer ! rtph264depay ! avc ! h264parse ! <decoder> ! videoconvert ! queue ! comp.
//! self-view:     appsrc (raw frames from the send pipeline's tee) ! queue ! comp.
//! background:    videotestsrc pattern=black (live, the display's size and rate) ! comp.
//! comp (compositor: each pad placed by the layout) ! caps ! videoconvert ! [display caps] ! <display>
//!
//! audio slot j:  appsrc ! rtpjitterbuffer ! rtpopusdepay ! opusdec ! audioconvert ! audioresample ! mix.
//! silence:       audiotestsrc wave=silence (live) ! mix.
//! mix (audiomixer) ! volume ! webrtcechoprobe ! audioconvert ! audioresample ! [speaker caps] ! <speaker>
//! ```
//!
//! Every input exists from the start (one per receive slot, three for audio), so a layout
//! change or an active-speaker switch only moves compositor pads or changes which SSRC feeds
//! a slot: the pipeline never restarts. The live background and silence keep the display and
//! speaker running before the first far-end packet. Pad probes report the first decoded frame
//! and sample (`rx.start`) and the first composed frame with far-end video in it reaching the
//! display sink (`render.start`).
//!
//! The appsrc caps carry the offer's `profile-level-id` (without it the parser's first caps
//! have no profile, which openh264dec refuses), and AVC between depayloader and parser keeps
//! SPS/PPS as codec data (openh264dec rejects the byte-stream form after an access unit
//! delimiter).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use super::graph::{AUDIO_PT, VIDEO_PT, caps_filter_text, element_text};
use super::gst::{MediaError, OwnedPipeline};
use super::layout::Rect;
use crate::hw::board::ElementSpec;

/// Where received media is played out: the board's output roles, the display's geometry and
/// the jitter buffers' latency (from `[media]` and the board).
#[derive(Debug, Clone, PartialEq)]
pub struct Playout {
    pub video_decoder: ElementSpec,
    pub speaker: ElementSpec,
    pub display: ElementSpec,
    pub display_width: u32,
    pub display_height: u32,
    pub display_fps: u32,
    pub jitter_ms: u32,
}

/// What the receive graph is built from: the playout and what one call needs of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveSpec {
    pub playout: Playout,
    /// One per receive slot the device can request.
    pub video_slots: usize,
    /// The node sends up to three loudest speakers.
    pub audio_slots: usize,
    /// The `webrtcechoprobe` name the microphone's `webrtcdsp` refers to (process-wide).
    pub echo_probe: String,
    /// Self-view frames as the send pipeline delivers them.
    pub selfview_width: u32,
    pub selfview_height: u32,
}

/// What the receive pipeline reports to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiveEvent {
    /// The first decoded frame of video slot `slot`.
    FirstVideoFrame { slot: usize },
    /// The first decoded audio of audio slot `slot`.
    FirstAudioSample { slot: usize },
    /// The display sink got its first composed frame with far-end video in it.
    Rendered,
    /// An element failed; the message names it.
    Error(String),
}

/// Element names roomd looks up after parsing.
fn video_src(i: usize) -> String {
    format!("vsrc{i}")
}
fn video_decoder(i: usize) -> String {
    format!("vdec{i}")
}
fn video_jitter(i: usize) -> String {
    format!("vjb{i}")
}
fn audio_src(j: usize) -> String {
    format!("asrc{j}")
}
fn audio_decoder(j: usize) -> String {
    format!("adec{j}")
}
fn audio_jitter(j: usize) -> String {
    format!("ajb{j}")
}
const COMPOSITOR: &str = "comp";
const SELFVIEW_SRC: &str = "selfsrc";
const SPEAKER_VOLUME: &str = "speakervol";
const DISPLAY: &str = "display";
const SPEAKER: &str = "speaker";

/// Compositor pad of video slot `i` (pad 0 is the background, the last one the self-view).
fn video_pad(i: usize) -> String {
    format!("sink_{}", i + 1)
}
fn selfview_pad(slots: usize) -> String {
    format!("sink_{}", slots + 1)
}

/// The whole receive graph as launch text.
pub fn describe(spec: &ReceiveSpec) -> String {
    let out = &spec.playout;
    let (w, h, fps) = (
        out.display_width,
        out.display_height,
        out.display_fps.max(1),
    );
    let jitter = out.jitter_ms;
    let mut text = format!(
        "compositor name={COMPOSITOR} background=black ! video/x-raw,width={w},height={h},framerate={fps}/1 \
         ! videoconvert{} ! {} \
         videotestsrc is-live=true pattern=black ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 \
         ! {COMPOSITOR}.sink_0",
        caps_filter_text(&out.display),
        element_text(&out.display, Some(DISPLAY)),
    );
    for i in 0..spec.video_slots {
        let _ = write!(
            text,
            " appsrc name={} is-live=true format=time do-timestamp=true leaky-type=downstream \
             caps=\"application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload={VIDEO_PT},\
             profile-level-id=(string)42e01f,packetization-mode=(string)1\" \
             ! rtpjitterbuffer name={} latency={jitter} ! rtph264depay \
             ! video/x-h264,stream-format=avc,alignment=au ! h264parse ! {} ! videoconvert \
             ! queue max-size-buffers=2 max-size-bytes=0 max-size-time=0 leaky=downstream ! {COMPOSITOR}.{}",
            video_src(i),
            video_jitter(i),
            element_text(&out.video_decoder, Some(&video_decoder(i))),
            video_pad(i),
        );
    }
    let _ = write!(
        text,
        " appsrc name={SELFVIEW_SRC} is-live=true format=time do-timestamp=true leaky-type=downstream \
         max-buffers=2 caps=\"video/x-raw,format=I420,width={},height={}\" \
         ! queue max-size-buffers=1 max-size-bytes=0 max-size-time=0 leaky=downstream ! {COMPOSITOR}.{}",
        spec.selfview_width,
        spec.selfview_height,
        selfview_pad(spec.video_slots),
    );
    let _ = write!(
        text,
        " audiomixer name=mix ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! volume name={SPEAKER_VOLUME} \
         ! webrtcechoprobe name={} ! audioconvert ! audioresample{} ! {} \
         audiotestsrc is-live=true wave=silence ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! mix.",
        spec.echo_probe,
        caps_filter_text(&out.speaker),
        element_text(&out.speaker, Some(SPEAKER)),
    );
    for j in 0..spec.audio_slots {
        let _ = write!(
            text,
            " appsrc name={} is-live=true format=time do-timestamp=true leaky-type=downstream \
             caps=\"application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload={AUDIO_PT}\" \
             ! rtpjitterbuffer name={} latency={jitter} ! rtpopusdepay ! opusdec name={} plc=true \
             ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! mix.",
            audio_src(j),
            audio_jitter(j),
            audio_decoder(j),
        );
    }
    text
}

/// Jitter-buffer figures of one input, for `client.mediaquality.event`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InputStats {
    pub pushed: u64,
    pub lost: u64,
    pub jitter_ms: f64,
    /// Decoded frames (video) or buffers (audio) since the start.
    pub decoded: u64,
}

#[derive(Debug)]
struct Input {
    src: gst_app::AppSrc,
    jitter: gst::Element,
    decoded: Arc<AtomicU64>,
}

impl Input {
    /// Finds an input's appsrc, jitter buffer and decoder (by name) and counts what the
    /// decoder puts out, reporting `first` on its first buffer.
    fn wire(
        pipeline: &OwnedPipeline,
        [src, jitter, decoder]: [&str; 3],
        events: &mpsc::UnboundedSender<ReceiveEvent>,
        first: ReceiveEvent,
        far_end_video: Option<Arc<AtomicBool>>,
    ) -> Result<Self, MediaError> {
        let decoder: gst::Element = pipeline.element(decoder)?;
        let decoded = Arc::new(AtomicU64::new(0));
        if let Some(pad) = decoder.static_pad("src") {
            count_buffers(&pad, decoded.clone(), events.clone(), first, far_end_video);
        }
        Ok(Self {
            src: pipeline.element(src)?,
            jitter: pipeline.element(jitter)?,
            decoded,
        })
    }
}

#[derive(Debug)]
pub struct ReceivePipeline {
    pipeline: OwnedPipeline,
    video: Vec<Input>,
    audio: Vec<Input>,
    selfview: gst_app::AppSrc,
    compositor: gst::Element,
    volume: gst::Element,
    spec: ReceiveSpec,
}

/// Counts buffers through `pad`; the first one sends `first`.
fn count_buffers(
    pad: &gst::Pad,
    counter: Arc<AtomicU64>,
    events: mpsc::UnboundedSender<ReceiveEvent>,
    first: ReceiveEvent,
    far_end_video: Option<Arc<AtomicBool>>,
) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if counter.fetch_add(1, Ordering::Relaxed) == 0 {
            if let Some(flag) = &far_end_video {
                flag.store(true, Ordering::Release);
            }
            let _ = events.send(first.clone());
        }
        gst::PadProbeReturn::Ok
    });
}

impl ReceivePipeline {
    /// Parses and wires the graph and starts it (display and speaker run from now on).
    pub fn start(
        spec: &ReceiveSpec,
        events: mpsc::UnboundedSender<ReceiveEvent>,
    ) -> Result<Self, MediaError> {
        let pipeline = OwnedPipeline::launch(&describe(spec), "the receive graph")?;
        let far_end_video = Arc::new(AtomicBool::new(false));
        let video = (0..spec.video_slots)
            .map(|i| {
                Input::wire(
                    &pipeline,
                    [&video_src(i), &video_jitter(i), &video_decoder(i)],
                    &events,
                    ReceiveEvent::FirstVideoFrame { slot: i },
                    Some(far_end_video.clone()),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let audio = (0..spec.audio_slots)
            .map(|j| {
                Input::wire(
                    &pipeline,
                    [&audio_src(j), &audio_jitter(j), &audio_decoder(j)],
                    &events,
                    ReceiveEvent::FirstAudioSample { slot: j },
                    None,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        // render.start: the first frame at the display sink composed after far-end video
        // was decoded (the black background alone does not count).
        let display: gst::Element = pipeline.element(DISPLAY)?;
        if let Some(pad) = display.static_pad("sink") {
            let rendered = events.clone();
            let sent = AtomicBool::new(false);
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                if far_end_video.load(Ordering::Acquire) && !sent.swap(true, Ordering::AcqRel) {
                    let _ = rendered.send(ReceiveEvent::Rendered);
                }
                gst::PadProbeReturn::Ok
            });
        }
        let bus_events = events;
        let bus = pipeline.pipeline().bus().expect("a pipeline has a bus");
        bus.set_sync_handler(move |_, message| {
            if let gst::MessageView::Error(e) = message.view() {
                let _ = bus_events.send(ReceiveEvent::Error(super::gst::error_text(e)));
            }
            gst::BusSyncReply::Drop
        });
        let receive = Self {
            compositor: pipeline.element(COMPOSITOR)?,
            selfview: pipeline.element(SELFVIEW_SRC)?,
            volume: pipeline.element(SPEAKER_VOLUME)?,
            pipeline,
            video,
            audio,
            spec: spec.clone(),
        };
        // Nothing shows until the layout places it.
        for i in 0..spec.video_slots {
            receive.place(&video_pad(i), None);
        }
        receive.place(&selfview_pad(spec.video_slots), None);
        receive.pipeline.play("the receive pipeline")?;
        Ok(receive)
    }

    /// Pushes one RTP packet of video slot `slot`.
    pub fn push_video(&self, slot: usize, packet: &[u8]) {
        if let Some(input) = self.video.get(slot) {
            let _ = input
                .src
                .push_buffer(gst::Buffer::from_slice(packet.to_vec()));
        }
    }

    /// Pushes one RTP packet of audio slot `slot`.
    pub fn push_audio(&self, slot: usize, packet: &[u8]) {
        if let Some(input) = self.audio.get(slot) {
            let _ = input
                .src
                .push_buffer(gst::Buffer::from_slice(packet.to_vec()));
        }
    }

    /// The appsrc the send pipeline feeds self-view frames into.
    pub fn selfview_source(&self) -> gst_app::AppSrc {
        self.selfview.clone()
    }

    /// Places every video slot (`None`: hidden) and the self-view.
    pub fn set_layout(&self, slots: &[Option<Rect>], selfview: Option<Rect>) {
        for i in 0..self.spec.video_slots {
            self.place(&video_pad(i), slots.get(i).copied().flatten());
        }
        self.place(&selfview_pad(self.spec.video_slots), selfview);
    }

    fn place(&self, pad_name: &str, rect: Option<Rect>) {
        let Some(pad) = self.compositor.static_pad(pad_name) else {
            return;
        };
        match rect {
            Some(r) => {
                pad.set_property("xpos", r.x);
                pad.set_property("ypos", r.y);
                pad.set_property("width", r.width);
                pad.set_property("height", r.height);
                pad.set_property("alpha", 1.0_f64);
                // Thumbnails and the self-view above the main stream.
                let zorder: u32 = if r.width >= self.spec.playout.display_width as i32 / 2 {
                    1
                } else {
                    2
                };
                pad.set_property("zorder", zorder);
            }
            None => pad.set_property("alpha", 0.0_f64),
        }
    }

    /// The speaker's level: `volume` 0..=100 as linear gain (50 → 25 is −6 dB), and mute.
    pub fn set_volume(&self, volume: u8, muted: bool) {
        self.volume
            .set_property("volume", f64::from(volume.min(100)) / 100.0);
        self.volume.set_property("mute", muted);
    }

    pub fn video_frames(&self, slot: usize) -> u64 {
        self.video
            .get(slot)
            .map_or(0, |i| i.decoded.load(Ordering::Relaxed))
    }

    pub fn video_stats(&self, slot: usize) -> Option<InputStats> {
        self.video.get(slot).map(stats)
    }

    pub fn audio_stats(&self, slot: usize) -> Option<InputStats> {
        self.audio.get(slot).map(stats)
    }

    /// Sets the pipeline to Null and waits for it (dropping does the same).
    pub fn stop(&self) {
        self.pipeline.stop();
    }
}

fn stats(input: &Input) -> InputStats {
    let structure = input.jitter.property::<gst::Structure>("stats");
    let get = |name: &str| structure.get::<u64>(name).unwrap_or(0);
    InputStats {
        pushed: get("num-pushed"),
        lost: get("num-lost"),
        jitter_ms: get("avg-jitter") as f64 / 1e6,
        decoded: input.decoded.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ReceiveSpec {
        ReceiveSpec {
            playout: Playout {
                video_decoder: ElementSpec::new("openh264dec"),
                speaker: ElementSpec::new("fakesink"),
                display: ElementSpec::new("fakesink"),
                display_width: 640,
                display_height: 360,
                display_fps: 15,
                jitter_ms: 60,
            },
            video_slots: 7,
            audio_slots: 3,
            echo_probe: "probe-test".into(),
            selfview_width: 320,
            selfview_height: 180,
        }
    }

    #[test]
    fn one_input_per_slot_and_one_output_each() {
        let text = describe(&spec());
        assert_eq!(text.matches("rtph264depay").count(), 7);
        assert_eq!(text.matches("rtpopusdepay").count(), 3);
        assert_eq!(text.matches("openh264dec name=vdec").count(), 7);
        assert_eq!(text.matches("fakesink name=").count(), 2);
        assert!(text.contains("webrtcechoprobe name=probe-test"));
        assert!(
            text.contains("comp.sink_8"),
            "the self-view is the last pad"
        );
    }

    #[tokio::test]
    async fn the_graph_runs_and_goes_to_null() {
        super::super::gst::init().unwrap();
        let before = super::super::gst::live_pipelines();
        let (tx, _rx) = mpsc::unbounded_channel();
        let receive = ReceivePipeline::start(&spec(), tx).unwrap();
        receive.set_volume(25, false);
        receive.set_layout(
            &[Some(Rect {
                x: 0,
                y: 0,
                width: 640,
                height: 360,
            })],
            None,
        );
        assert!(receive.video_stats(0).is_some());
        drop(receive);
        assert_eq!(super::super::gst::live_pipelines(), before);
    }
}
