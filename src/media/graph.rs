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
pub const AUDIO_VALVE: &str = "avalve";
pub const AUDIO_SINK: &str = "asink";

/// `element name=… prop="value" …`, values quoted so any string survives the parser.
fn element(spec: &ElementSpec, name: Option<&str>) -> String {
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

/// The caps a layer's capsfilter holds.
pub fn layer_caps_string(width: u32, height: u32, fps: u32) -> String {
    format!("video/x-raw,width={width},height={height},framerate={fps}/1")
}

/// The whole graph as launch text. Layer `i` starts at the capture size and rate.
pub fn describe(spec: &GraphSpec) -> String {
    let sink = |name: String| {
        if spec.sink == "appsink" {
            format!("appsink name={name} sync=false max-buffers=256 drop=true")
        } else {
            format!("{} name={name} sync=false", spec.sink)
        }
    };
    let (w, h, fps) = (spec.capture_width, spec.capture_height, spec.capture_fps);
    let mut text = format!(
        "{} ! videoconvert ! videoscale ! videorate ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 \
         ! tee name=vtee allow-not-linked=true",
        element(&spec.camera, None)
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
        let mut encoder = element(&spec.video_encoder, Some(&layer_encoder(i)));
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
    if spec.audio {
        let _ = write!(
            text,
            " {} ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 \
             ! valve name={AUDIO_VALVE} drop=false ! opusenc ! rtpopuspay pt={AUDIO_PT} mtu={PAYLOADER_MTU} ! {}",
            element(&spec.microphone, None),
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
        }
    }

    #[test]
    fn one_capture_feeds_every_layer() {
        let media = BoardMedia {
            camera: spec("videotestsrc", &[("is-live", "true")]),
            microphone: spec("audiotestsrc", &[("wave", "sine")]),
            video_encoder: spec("x264enc", &[("tune", "zerolatency")]),
        };
        let text = describe(&GraphSpec::from_board(&media, (1280, 720, 30), 3));
        assert_eq!(text.matches("videotestsrc").count(), 1);
        assert_eq!(text.matches("vtee. !").count(), 3);
        assert_eq!(text.matches("x264enc name=venc").count(), 3);
        assert!(text.contains("x264enc name=venc2 tune=\"zerolatency\""));
        assert!(text.contains("valve name=vvalve0 drop=true"));
        assert!(text.contains("rtpopuspay pt=111 mtu=1192"));
        assert!(text.contains("rtph264pay pt=126 mtu=1192"));
    }

    #[test]
    fn quotes_survive() {
        let s = spec("x", &[("p", "a \"b\"")]);
        assert_eq!(element(&s, None), "x p=\"a \\\"b\\\"\"");
    }
}
