//! One received H.264 stream: RTP packets pushed into `appsrc ! rtph264depay ! h264parse !
//! appsink`, where every access unit out of the parser counts as a frame. Decoding is left out
//! (the profile makes it optional); the first frame is what `client.media.render.start` marks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gstreamer as gst;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use super::graph::VIDEO_PT;
use super::gst::{MediaError, OwnedPipeline};

#[derive(Debug)]
pub struct ReceivePipeline {
    /// Goes to Null when dropped.
    _pipeline: OwnedPipeline,
    src: gst_app::AppSrc,
    frames: Arc<AtomicU64>,
}

impl ReceivePipeline {
    /// `first_frame` gets `ssrc` once, when the first whole frame comes out.
    pub fn start(ssrc: u32, first_frame: mpsc::UnboundedSender<u32>) -> Result<Self, MediaError> {
        let text = format!(
            "appsrc name=src is-live=true format=time do-timestamp=true \
             caps=\"application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload={VIDEO_PT}\" \
             ! rtph264depay ! h264parse ! appsink name=sink sync=false"
        );
        let pipeline = OwnedPipeline::launch(&text, "the receive graph")?;
        let src: gst_app::AppSrc = pipeline.element("src")?;
        let sink: gst_app::AppSink = pipeline.element("sink")?;
        let frames = Arc::new(AtomicU64::new(0));
        let counter = frames.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let _ = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if counter.fetch_add(1, Ordering::Relaxed) == 0 {
                        let _ = first_frame.send(ssrc);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.play("the receive pipeline")?;
        Ok(Self {
            _pipeline: pipeline,
            src,
            frames,
        })
    }

    pub fn push(&self, packet: &[u8]) {
        let _ = self
            .src
            .push_buffer(gst::Buffer::from_slice(packet.to_vec()));
    }

    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
}
