//! The send pipeline: the graph of [`super::graph`] running, its RTP packets handed to the
//! session through a channel, and the knobs an SCR turns (per-layer valve, caps, bitrate)
//! without touching the capture. Dropping it sets the pipeline to Null.

use futures_util::StreamExt as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use super::graph::{self, GraphSpec};
use super::gst::{MediaError, OwnedPipeline};
use super::layers::LayerConfig;

/// Which branch a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendStream {
    Audio,
    Layer(usize),
}

/// One RTP packet as the payloader made it (no CSI extension yet, payloader SSRC).
#[derive(Debug)]
pub struct OutPacket {
    pub stream: SendStream,
    pub data: Vec<u8>,
}

/// What the pipeline's bus reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineEvent {
    /// The pipeline reached PLAYING.
    Playing,
    /// An element failed: the message names it.
    Error(String),
    Eos,
}

#[derive(Debug)]
struct LayerElements {
    valve: gst::Element,
    caps: gst::Element,
    encoder: gst::Element,
    /// The encoder takes a `bitrate` in kbit/s (x264enc, openh264enc do).
    bitrate_property: bool,
}

#[derive(Debug)]
pub struct SendPipeline {
    pipeline: OwnedPipeline,
    layers: Vec<LayerElements>,
    mic_mute: Option<gst::Element>,
    camera_valve: gst::Element,
}

fn attach_sink(
    pipeline: &OwnedPipeline,
    name: &str,
    stream: SendStream,
    packets: mpsc::Sender<OutPacket>,
) -> Result<(), MediaError> {
    let sink: gst_app::AppSink = pipeline.element(name)?;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(buffer) = sample.buffer() {
                    if let Ok(map) = buffer.map_readable() {
                        // A full channel means the session is behind: drop, as the network would.
                        let _ = packets.try_send(OutPacket {
                            stream,
                            data: map.to_vec(),
                        });
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}

impl SendPipeline {
    /// Parses and wires the graph; nothing runs until [`start`](Self::start).
    pub fn build(spec: &GraphSpec, packets: mpsc::Sender<OutPacket>) -> Result<Self, MediaError> {
        let pipeline = OwnedPipeline::launch(&graph::describe(spec), "the send graph")?;
        let mut layers = Vec::with_capacity(spec.layers);
        for i in 0..spec.layers {
            let encoder: gst::Element = pipeline.element(&graph::layer_encoder(i))?;
            let bitrate_property = encoder
                .find_property("bitrate")
                .is_some_and(|p| p.value_type() == u32::static_type());
            layers.push(LayerElements {
                valve: pipeline.element(&graph::layer_valve(i))?,
                caps: pipeline.element(&graph::layer_caps(i))?,
                encoder,
                bitrate_property,
            });
            if spec.sink == "appsink" {
                attach_sink(
                    &pipeline,
                    &graph::layer_sink(i),
                    SendStream::Layer(i),
                    packets.clone(),
                )?;
            }
        }
        let mic_mute = if spec.audio {
            if spec.sink == "appsink" {
                attach_sink(&pipeline, graph::AUDIO_SINK, SendStream::Audio, packets)?;
            }
            Some(pipeline.element(graph::MIC_MUTE)?)
        } else {
            None
        };
        Ok(Self {
            camera_valve: pipeline.element(graph::CAMERA_VALVE)?,
            pipeline,
            layers,
            mic_mute,
        })
    }

    /// Bus messages that matter, as a stream (errors name the element).
    pub fn events(&self) -> impl futures_util::Stream<Item = PipelineEvent> + Send + 'static {
        let pipeline = self.pipeline.pipeline().clone();
        let bus = pipeline.bus().expect("a pipeline has a bus");
        bus.stream().filter_map(move |message| {
            use gst::MessageView;
            let event = match message.view() {
                MessageView::Error(e) => Some(PipelineEvent::Error(super::gst::error_text(e))),
                MessageView::Eos(_) => Some(PipelineEvent::Eos),
                MessageView::StateChanged(s)
                    if s.src() == Some(pipeline.upcast_ref::<gst::Object>())
                        && s.current() == gst::State::Playing =>
                {
                    Some(PipelineEvent::Playing)
                }
                _ => None,
            };
            std::future::ready(event)
        })
    }

    pub fn start(&self) -> Result<(), MediaError> {
        self.pipeline.play("the send pipeline")
    }

    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Encodes layer `i` as `config`, or stops it (`None`). The capture keeps running.
    pub fn configure_layer(&self, i: usize, config: Option<LayerConfig>) {
        let Some(layer) = self.layers.get(i) else {
            return;
        };
        match config {
            Some(c) => {
                let caps = graph::layer_caps_string(c.width, c.height, c.fps)
                    .parse::<gst::Caps>()
                    .expect("layer caps are well formed");
                layer.caps.set_property("caps", &caps);
                if layer.bitrate_property {
                    layer.encoder.set_property("bitrate", c.bitrate_kbps);
                }
                let was_stopped = layer.valve.property::<bool>("drop");
                layer.valve.set_property("drop", false);
                if was_stopped {
                    request_key_frame(&layer.encoder);
                }
            }
            None => layer.valve.set_property("drop", true),
        }
    }

    /// Microphone mute at the source: the encoder goes on, with silence.
    pub fn set_microphone_muted(&self, muted: bool) {
        if let Some(volume) = &self.mic_mute {
            volume.set_property("mute", muted);
        }
    }

    /// The privacy switch: no camera frame passes while it is closed.
    pub fn set_camera_off(&self, off: bool) {
        self.camera_valve.set_property("drop", off);
    }

    /// Forwards the self-view branch's frames into `target` (the display's picture-in-picture).
    pub fn feed_selfview(&self, target: gst_app::AppSrc) -> Result<(), MediaError> {
        let sink: gst_app::AppSink = self.pipeline.element(graph::SELFVIEW_SINK)?;
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(buffer) = sample.buffer_owned() {
                        // The target stamps its own time; a full target drops (leaky).
                        let mut buffer = buffer;
                        {
                            let b = buffer.make_mut();
                            b.set_pts(gst::ClockTime::NONE);
                            b.set_dts(gst::ClockTime::NONE);
                        }
                        let _ = target.push_buffer(buffer);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        Ok(())
    }

    /// Sets the pipeline to Null and waits for it to get there (dropping does the same).
    pub fn stop(&self) {
        self.pipeline.stop();
    }
}

/// Asks an encoder for an IDR with SPS/PPS, so a restarted layer is decodable at once.
pub(crate) fn request_key_frame(encoder: &gst::Element) {
    let structure = gst::Structure::builder("GstForceKeyUnit")
        .field("all-headers", true)
        .build();
    if let Some(pad) = encoder.static_pad("src") {
        pad.send_event(gst::event::CustomUpstream::new(structure));
    }
}
