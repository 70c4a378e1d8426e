//! The send graph as a `gst-launch-1.0` description: one capture, a tee, one scale → rate →
//! encode → payload branch per simulcast layer, and the microphone through Opus. roomd parses
//! exactly this text, so the benchmark can run the same graph through `gst-launch-1.0`.

use std::fmt::Write as _;

use super::layers::LayerConfig;
use crate::hw::board::{BoardMedia, ElementSpec};

/// Audio and video payload types of the SDP offer (wire profile §7).
pub const AUDIO_PT: u8 = 111;
pub const VIDEO_PT: u8 = 126;
/// Bytes the CSI header extension adds to a payloader's packet (4-byte header + one word).
pub const CSI_EXTENSION_LEN: u32 = 8;
/// Payloader MTU: a datagram stays ≤ 1200 bytes with the CSI extension added.
pub const PAYLOADER_MTU: u32 = 1200 - CSI_EXTENSION_LEN;

/// What the graph captures and how many layers it can encode.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphSpec {
    pub camera: ElementSpec,
    pub microphone: ElementSpec,
    pub video_encoder: ElementSpec,
    pub capture_width: u32,
    pub capture_height: u32,
    pub capture_fps: u32,
    pub layers: usize,
    /// Live capture: queues before the encoders leak (a slow layer drops frames instead of
    /// stalling the others). Off for benchmarks over a finite, non-live clip.
    pub live: bool,
    /// Layers start with their valve closed (nothing encoded until an SCR asks).
    pub layers_start_stopped: bool,
    /// Include the microphone branch.
    pub audio: bool,
    /// The sink element of every branch (`appsink` for roomd, `fakesink` for the baseline).
    pub sink: &'static str,
    /// Size, rate and bitrate each layer starts with (benchmarks); empty: the capture's,
    /// with the encoder's own bitrate, until an SCR says otherwise.
    pub layer_presets: Vec<LayerConfig>,
    /// A self-view branch of this size (raw I420 into an appsink the session forwards to the
    /// display's picture-in-picture); `None`: no branch.
    pub selfview: Option<(u32, u32)>,
    /// The microphone's acoustic echo cancellation, noise suppression and gain control.
    pub dsp: Option<AudioDsp>,
}

/// `webrtcdsp` on the microphone, cancelling what the speaker's `webrtcechoprobe` (by name)
/// played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDsp {
    pub echo_probe: String,
    pub noise_suppression: bool,
    pub gain_control: bool,
}

impl GraphSpec {
    pub fn from_board(media: &BoardMedia, capture: (u32, u32, u32), layers: usize) -> Self {
        Self {
            camera: media.camera.clone(),
            microphone: media.microphone.clone(),
            video_encoder: media.video_encoder.clone(),
            capture_width: capture.0,
            capture_height: capture.1,
            capture_fps: capture.2,
            layers,
            live: true,
            layers_start_stopped: true,
            audio: true,
            sink: "appsink",
            layer_presets: Vec::new(),
            selfview: None,
            dsp: None,
        }
    }
}

/// Element names roomd looks up after parsing.
pub fn layer_valve(i: usize) -> String {
    format!("vvalve{i}")
}
pub fn layer_caps(i: usize) -> String {
    format!("vcaps{i}")
}
pub fn layer_encoder(i: usize) -> String {
    format!("venc{i}")
}
pub fn layer_sink(i: usize) -> String {
    format!("vsink{i}")
}
/// Microphone mute: a `volume` at the source, so muted audio is silence frames.
pub const MIC_MUTE: &str = "micmute";
pub const AUDIO_SINK: &str = "asink";
pub const SELFVIEW_SINK: &str = "selfview";
/// Closed while the privacy switch is: no camera frame goes anywhere, self-view included.
pub const CAMERA_VALVE: &str = "camvalve";

/// A role's caps as a filter before its element (` ! caps`; nothing when it names none).
pub(crate) fn caps_filter_text(spec: &ElementSpec) -> String {
    spec.caps
        .as_deref()
        .map(|c| format!(" ! {c}"))
        .unwrap_or_default()
}

/// `element name=… prop="value" …`, values quoted so any string survives the parser.
pub(crate) fn element_text(spec: &ElementSpec, name: Option<&str>) -> String {
    let mut out = spec.element.clone();
    if let Some(name) = name {
        let _ = write!(out, " name={name}");
    }
    for (key, value) in &spec.properties {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = write!(out, " {key}=\"{escaped}\"");
    }
    out
}

/// A capture element followed by the caps the board gives it, if any.
fn source_text(spec: &ElementSpec) -> String {
    match &spec.caps {
        Some(caps) => format!("{} ! {caps}", element_text(spec, None)),
        None => element_text(spec, None),
    }
}

/// What every appsink of the send graph is. `async=false`: the sources are live, so the
/// pipeline goes straight to PLAYING instead of waiting in PAUSED for every sink to preroll. A
/// layer's sink has nothing to preroll on until an SCR opens its valve (nor any sink of the
/// camera while the privacy valve is closed); meanwhile each sink that did preroll parks its
/// streaming thread, so nothing is sent, and a renegotiation of the capture (a valve or caps
/// change sends RECONFIGURE upstream) can block for good in the tee's ALLOCATION query, which a
/// queue answers only from its parked thread. Under qemu-user this left a call with SCAs but
/// not one RTP packet (the CI flake of `media::mute_…`).
const APPSINK: &str = "appsink sync=false async=false";

/// The caps a layer's capsfilter holds.
pub fn layer_caps_string(width: u32, height: u32, fps: u32) -> String {
    format!("video/x-raw,width={width},height={height},framerate={fps}/1")
}

/// The tee after layer `i`'s scaling stage (internal: roomd looks up no stage).
fn layer_stage(i: usize) -> String {
    format!("vstage{i}")
}

/// Colorimetry and chroma siting GStreamer assumes for YUV caps of `height` lines that name
/// none (`video-info.c`: UHD from 2160 lines, HD above 576, SD below).
fn capture_colorimetry(height: u32) -> &'static str {
    if height >= 2160 {
        "video/x-raw,colorimetry=bt2020,chroma-site=mpeg2"
    } else if height > 576 {
        "video/x-raw,colorimetry=bt709,chroma-site=mpeg2"
    } else {
        "video/x-raw,colorimetry=bt601,chroma-site=jpeg"
    }
}

/// The whole graph as launch text. Layer `i` starts at the capture size and rate.
pub fn describe(spec: &GraphSpec) -> String {
    let sink = |name: String| {
        if spec.sink == "appsink" {
            format!("{APPSINK} name={name} max-buffers=256 drop=true")
        } else {
            format!("{} name={name} sync=false", spec.sink)
        }
    };
    let (w, h, fps) = (spec.capture_width, spec.capture_height, spec.capture_fps);
    let mut text = format!(
        "{} ! valve name={CAMERA_VALVE} drop=false ! videoconvert ! videoscale ! videorate \
         ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 ! tee name=vtee allow-not-linked=true",
        source_text(&spec.camera)
    );
    let queue = if spec.live {
        "queue leaky=downstream max-size-buffers=2 max-size-bytes=0 max-size-time=0"
    } else {
        "queue max-size-buffers=4 max-size-bytes=0 max-size-time=0"
    };
    // The layers as a scaling cascade: stage i scales stage i-1's picture (stage 0 the
    // capture's) to layer i's size and tees it to layer i's encoder branch and to stage i+1,
    // so 360p is made from 720p and 180p from 360p, each a 2:1 step. Layer i's capsfilter
    // (after its valve) is what sizes stage i: the tee offers stage i's scaler the caps its
    // two branches both accept, and the next stage takes any size. The valve sits in the
    // encoder branch, after the stage's tee: a stopped layer stops its encoder, never the
    // stages after it. videorate is per layer, so each layer keeps its own frame rate while
    // the stages run at the capture's. The layer's capsfilter changes caps in `delayed` mode:
    // `configure_layer` sets new caps and opens the valve at once, and frames of the old size
    // may still be between the stage and the valve (the stage rescales from its next frame
    // on); refusing them would fail the stage's tee with not-negotiated and stop every layer.
    //
    //
    // Stage 0's output names the colorimetry and chroma siting that caps of the capture's size
    // imply when they name none (as a test source's and many cameras' do). Without that every
    // smaller stage would take the defaults of *its* size (BT.601 below 577 lines), and its
    // scaler would convert colour as well as scale, through the slow generic path; with it the
    // stages only scale (the planar fast path) and keep it. For such a capture stage 0 passes
    // its frames through untouched when layer 0 has the capture's size (same video info);
    // a capture that names other colours is converted once, there.
    if spec.layers > 0 {
        let _ = write!(
            text,
            " vtee. ! {queue} ! videoscale ! capsfilter caps=\"{}\" ! tee name={}",
            capture_colorimetry(h),
            layer_stage(0),
        );
    }
    for i in 0..spec.layers {
        let preset = spec.layer_presets.get(i);
        let caps = preset.map_or_else(
            || layer_caps_string(w, h, fps),
            |p| layer_caps_string(p.width, p.height, p.fps),
        );
        let mut encoder = element_text(&spec.video_encoder, Some(&layer_encoder(i)));
        if let Some(p) = preset {
            let _ = write!(encoder, " bitrate={}", p.bitrate_kbps);
        }
        let _ = write!(
            text,
            " {}. ! {queue} ! valve name={} drop={} ! videorate drop-only=true \
             ! capsfilter name={} caps-change-mode=delayed caps=\"{}\" ! {} \
             ! video/x-h264,profile=constrained-baseline \
             ! rtph264pay pt={VIDEO_PT} mtu={PAYLOADER_MTU} \
             config-interval=-1 aggregate-mode=zero-latency ! {}",
            layer_stage(i),
            layer_valve(i),
            spec.layers_start_stopped,
            layer_caps(i),
            caps,
            encoder,
            sink(layer_sink(i)),
        );
        if i + 1 < spec.layers {
            let _ = write!(
                text,
                " {}. ! videoscale ! tee name={}",
                layer_stage(i),
                layer_stage(i + 1)
            );
        }
    }
    if let Some((sw, sh)) = spec.selfview {
        let _ = write!(
            text,
            " vtee. ! queue leaky=downstream max-size-buffers=1 max-size-bytes=0 max-size-time=0 \
             ! videoscale ! video/x-raw,width={sw},height={sh} \
             ! {APPSINK} name={SELFVIEW_SINK} max-buffers=1 drop=true"
        );
    }
    if spec.audio {
        // webrtcdsp takes S16LE at 48 kHz; mono is what a room microphone array delivers
        // after beamforming, and it halves the DSP's work. Delay-agnostic: the canceller finds
        // the echo's delay itself; aligned by the probe's timestamps instead (speaker and
        // microphone in different pipelines, the far end starting seconds after the DSP) it
        // cancelled nothing (ERLE 0 to 2 dB instead of 50).
        let dsp = spec.dsp.as_ref().map_or_else(String::new, |d| {
            format!(
                " ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! webrtcdsp probe={} \
                 echo-cancel=true echo-suppression-level=high delay-agnostic=true \
                 noise-suppression={} gain-control={} \
                 ! audioconvert ! audioresample",
                d.echo_probe, d.noise_suppression, d.gain_control
            )
        });
        let _ = write!(
            text,
            " {} ! audioconvert ! audioresample{dsp} ! volume name={MIC_MUTE} mute=false \
             ! audio/x-raw,rate=48000,channels=2 ! opusenc ! rtpopuspay pt={AUDIO_PT} mtu={PAYLOADER_MTU} ! {}",
            source_text(&spec.microphone),
            sink(AUDIO_SINK.to_owned()),
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec(element: &str, props: &[(&str, &str)]) -> ElementSpec {
        ElementSpec {
            element: element.into(),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            caps: None,
        }
    }

    #[test]
    fn one_capture_feeds_every_layer() {
        let media = BoardMedia {
            camera: spec("videotestsrc", &[("is-live", "true")]),
            microphone: spec("audiotestsrc", &[("wave", "sine")]),
            speaker: spec("fakesink", &[]),
            display: spec("fakesink", &[]),
            video_encoder: spec("x264enc", &[("tune", "zerolatency")]),
            video_decoder: None,
        };
        let text = describe(&GraphSpec::from_board(&media, (1280, 720, 30), 3));
        assert_eq!(text.matches("videotestsrc").count(), 1);
        // One branch off the capture's tee: the layers cascade from it.
        assert_eq!(text.matches("vtee. !").count(), 1);
        assert_eq!(text.matches("x264enc name=venc").count(), 3);
        assert!(text.contains("x264enc name=venc2 tune=\"zerolatency\""));
        assert!(text.contains("valve name=vvalve0 drop=true"));
        assert!(text.contains("volume name=micmute"));
        assert!(text.contains("rtpopuspay pt=111 mtu=1192"));
        assert!(text.contains("rtph264pay pt=126 mtu=1192"));
    }

    #[test]
    fn layers_cascade_each_from_the_one_before() {
        let media = BoardMedia {
            camera: spec("videotestsrc", &[]),
            microphone: spec("audiotestsrc", &[]),
            speaker: spec("fakesink", &[]),
            display: spec("fakesink", &[]),
            video_encoder: spec("x264enc", &[]),
            video_decoder: None,
        };
        let text = describe(&GraphSpec::from_board(&media, (1280, 720, 30), 3));
        // Stage 0 from the capture, pinned to the capture's implied colours; stage i+1 from
        // stage i; every layer's branch starts at its stage's tee, valve first.
        assert!(text.contains(
            "vtee. ! queue leaky=downstream max-size-buffers=2 max-size-bytes=0 max-size-time=0 \
             ! videoscale ! capsfilter caps=\"video/x-raw,colorimetry=bt709,chroma-site=mpeg2\" \
             ! tee name=vstage0"
        ));
        assert!(text.contains("vstage0. ! videoscale ! tee name=vstage1"));
        assert!(text.contains("vstage1. ! videoscale ! tee name=vstage2"));
        assert!(
            !text.contains("vstage2. ! videoscale"),
            "no stage after the last"
        );
        for i in 0..3 {
            assert!(text.contains(&format!(
                "vstage{i}. ! queue leaky=downstream max-size-buffers=2 max-size-bytes=0 \
                 max-size-time=0 ! valve name=vvalve{i} drop=true ! videorate drop-only=true \
                 ! capsfilter name=vcaps{i} caps-change-mode=delayed caps="
            )));
        }
        // The only colour conversion is the capture's.
        assert_eq!(text.matches("videoconvert").count(), 1, "{text}");
        let one = describe(&GraphSpec::from_board(&media, (640, 360, 30), 1));
        assert!(one.contains("colorimetry=bt601,chroma-site=jpeg"));
        assert!(!one.contains("vstage1"));
        let none = describe(&GraphSpec::from_board(&media, (640, 360, 30), 0));
        assert!(!none.contains("vstage"));
    }

    /// What `SendPipeline::configure_layer` does to layer `i`'s elements.
    fn configure(pipeline: &gstreamer::Pipeline, i: usize, size: Option<(u32, u32)>) {
        use gstreamer::prelude::*;
        let valve = pipeline.by_name(&layer_valve(i)).unwrap();
        match size {
            Some((w, h)) => {
                let caps = layer_caps_string(w, h, 30)
                    .parse::<gstreamer::Caps>()
                    .unwrap();
                pipeline
                    .by_name(&layer_caps(i))
                    .unwrap()
                    .set_property("caps", &caps);
                valve.set_property("drop", false);
            }
            None => valve.set_property("drop", true),
        }
    }

    /// Size and colorimetry of what layer `i`'s encoder takes, and frames it made so far.
    fn encoder_input(
        pipeline: &gstreamer::Pipeline,
        i: usize,
        counts: &[std::sync::Arc<std::sync::atomic::AtomicU64>],
    ) -> (i32, i32, String, u64) {
        use gstreamer::prelude::*;
        let caps = pipeline
            .by_name(&layer_encoder(i))
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .current_caps();
        let s = caps
            .as_ref()
            .and_then(|c| c.structure(0).map(|s| s.to_owned()));
        let get = |f: &str| s.as_ref().and_then(|s| s.get::<i32>(f).ok()).unwrap_or(0);
        let colorimetry = s
            .as_ref()
            .and_then(|s| s.get::<String>("colorimetry").ok())
            .unwrap_or_default();
        (
            get("width"),
            get("height"),
            colorimetry,
            counts[i].load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Waits (bounded) until `check` holds for every layer's encoder input.
    fn wait_layers(
        pipeline: &gstreamer::Pipeline,
        counts: &[std::sync::Arc<std::sync::atomic::AtomicU64>],
        what: &str,
        check: impl Fn(&[(i32, i32, String, u64)]) -> bool,
    ) -> Vec<(i32, i32, String, u64)> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let now: Vec<_> = (0..counts.len())
                .map(|i| encoder_input(pipeline, i, counts))
                .collect();
            if check(&now) {
                return now;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never: {what}; layers (width, height, colorimetry, frames): {now:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    type Counts = Vec<std::sync::Arc<std::sync::atomic::AtomicU64>>;

    /// The graph of `layers` layers from a live 720p test capture, fakesinks, stopped layers,
    /// playing; frames counted into each encoder.
    fn playing_cascade(layers: usize) -> (gstreamer::Pipeline, Counts) {
        use gstreamer::prelude::*;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        super::super::gst::init().unwrap();
        let media = BoardMedia {
            camera: spec("videotestsrc", &[("is-live", "true")]),
            microphone: spec("audiotestsrc", &[]),
            speaker: spec("fakesink", &[]),
            display: spec("fakesink", &[]),
            video_encoder: spec(
                "x264enc",
                &[("tune", "zerolatency"), ("speed-preset", "ultrafast")],
            ),
            video_decoder: None,
        };
        let mut graph = GraphSpec::from_board(&media, (1280, 720, 30), layers);
        graph.audio = false;
        graph.sink = "fakesink";
        let pipeline = gstreamer::parse::launch(&describe(&graph))
            .unwrap()
            .downcast::<gstreamer::Pipeline>()
            .unwrap();
        let counts: Counts = (0..layers).map(|_| Arc::new(AtomicU64::new(0))).collect();
        for (i, count) in counts.iter().enumerate() {
            let count = count.clone();
            pipeline
                .by_name(&layer_encoder(i))
                .unwrap()
                .static_pad("sink")
                .unwrap()
                .add_probe(gstreamer::PadProbeType::BUFFER, move |_, _| {
                    count.fetch_add(1, Ordering::Relaxed);
                    gstreamer::PadProbeReturn::Ok
                });
        }
        pipeline.set_state(gstreamer::State::Playing).unwrap();
        (pipeline, counts)
    }

    /// No element posted an error (a refused caps change would), then Null.
    fn stop_without_errors(pipeline: &gstreamer::Pipeline) {
        use gstreamer::prelude::*;
        let bus = pipeline.bus().unwrap();
        while let Some(message) = bus.pop() {
            if let gstreamer::MessageView::Error(e) = message.view() {
                panic!(
                    "{}: {} ({:?})",
                    e.src().map(|s| s.path_string()).unwrap_or_default(),
                    e.error(),
                    e.debug()
                );
            }
        }
        pipeline.set_state(gstreamer::State::Null).unwrap();
    }

    #[test]
    fn the_cascade_follows_reconfiguration_and_survives_a_stopped_middle_layer() {
        use std::sync::atomic::Ordering;
        let (pipeline, counts) = playing_cascade(3);
        let size = |l: &(i32, i32, String, u64)| (l.0, l.1);

        // 360p, 180p, 90p from a 720p capture: every stage scales, none converts colour.
        for (i, s) in [(640, 360), (320, 180), (160, 90)].into_iter().enumerate() {
            configure(&pipeline, i, Some(s));
        }
        let at = wait_layers(&pipeline, &counts, "three layers", |l| {
            l.iter().all(|l| l.3 >= 3)
                && l.iter().map(size).collect::<Vec<_>>() == [(640, 360), (320, 180), (160, 90)]
        });
        assert!(at.iter().all(|l| l.2 == "bt709"), "{at:?}");

        // The middle layer stops: its encoder gets nothing more, the last one goes on.
        configure(&pipeline, 1, None);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let stopped = counts[1].load(Ordering::Relaxed);
        let last = counts[2].load(Ordering::Relaxed);
        wait_layers(&pipeline, &counts, "the last layer goes on", |l| {
            l[2].3 >= last + 10 && size(&l[2]) == (160, 90)
        });
        assert_eq!(counts[1].load(Ordering::Relaxed), stopped);

        // Sizes change under a stopped middle layer, and it restarts at a new size.
        configure(&pipeline, 2, Some((256, 144)));
        let last = counts[2].load(Ordering::Relaxed);
        wait_layers(&pipeline, &counts, "the last layer at 256x144", |l| {
            size(&l[2]) == (256, 144) && l[2].3 >= last + 3
        });
        configure(&pipeline, 1, Some((480, 270)));
        configure(&pipeline, 0, Some((1280, 720)));
        let at = counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect::<Vec<_>>();
        let now = wait_layers(&pipeline, &counts, "all three again", |l| {
            l.iter().zip(&at).all(|(l, at)| l.3 >= at + 3)
                && l.iter().map(size).collect::<Vec<_>>() == [(1280, 720), (480, 270), (256, 144)]
        });
        assert!(now.iter().all(|l| l.2 == "bt709"), "{now:?}");
        stop_without_errors(&pipeline);
    }

    #[test]
    fn a_stopped_layer_restarts_at_another_size_however_the_timing_falls() {
        use std::sync::atomic::Ordering;
        // Restarting sets the caps and opens the valve at once: frames of the old size may
        // still be on their way to the valve (stage 1 rescales only from its next frame on).
        let (pipeline, counts) = playing_cascade(2);
        let size = |l: &(i32, i32, String, u64)| (l.0, l.1);
        configure(&pipeline, 0, Some((1280, 720)));
        let sizes = [(640, 360), (480, 270), (320, 180), (160, 90)];
        for round in 0..24 {
            let want = sizes[round % sizes.len()];
            configure(&pipeline, 1, Some(want));
            let at = counts[1].load(Ordering::Relaxed);
            wait_layers(
                &pipeline,
                &counts,
                &format!("round {round}: {want:?}"),
                |l| size(&l[1]) == (want.0 as i32, want.1 as i32) && l[1].3 >= at + 2,
            );
            configure(&pipeline, 1, None);
            // From not at all to a frame interval and more between stop and restart.
            std::thread::sleep(std::time::Duration::from_millis((round as u64 % 4) * 15));
        }
        stop_without_errors(&pipeline);
    }

    #[test]
    fn quotes_survive() {
        let s = spec("x", &[("p", "a \"b\"")]);
        assert_eq!(element_text(&s, None), "x p=\"a \\\"b\\\"\"");
    }
}
