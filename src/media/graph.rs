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
            " vtee. ! {queue} ! valve name={} drop={} ! videoscale ! videorate drop-only=true \
             ! capsfilter name={} caps=\"{}\" ! {} ! video/x-h264,profile=constrained-baseline \
             ! rtph264pay pt={VIDEO_PT} mtu={PAYLOADER_MTU} \
             config-interval=-1 aggregate-mode=zero-latency ! {}",
            layer_valve(i),
            spec.layers_start_stopped,
            layer_caps(i),
            caps,
            encoder,
            sink(layer_sink(i)),
        );
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
        assert_eq!(text.matches("vtee. !").count(), 3);
        assert_eq!(text.matches("x264enc name=venc").count(), 3);
        assert!(text.contains("x264enc name=venc2 tune=\"zerolatency\""));
        assert!(text.contains("valve name=vvalve0 drop=true"));
        assert!(text.contains("volume name=micmute"));
        assert!(text.contains("rtpopuspay pt=111 mtu=1192"));
        assert!(text.contains("rtph264pay pt=126 mtu=1192"));
    }

    #[test]
    fn quotes_survive() {
        let s = spec("x", &[("p", "a \"b\"")]);
        assert_eq!(element_text(&s, None), "x p=\"a \\\"b\\\"\"");
    }
}
