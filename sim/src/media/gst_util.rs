//! What the decoder and the stream sender share about GStreamer: one-time initialisation, a
//! pipeline that goes to Null when dropped, a bus handler that reports errors, and the hand-off
//! of encoded packets to the node loop.

use std::sync::OnceLock;

use anyhow::{Context as _, anyhow};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc::UnboundedSender;

use super::PipelineEvent;

static INIT: OnceLock<Result<(), String>> = OnceLock::new();

/// Initialises GStreamer once per process (the first call may scan the plugin registry, so the
/// node runs it on a blocking thread). Errors name why GStreamer is unusable.
pub(crate) async fn ensure_init() -> anyhow::Result<()> {
    let result = match INIT.get() {
        Some(r) => r.clone(),
        None => {
            let r = tokio::task::spawn_blocking(|| gst::init().map_err(|e| e.to_string()))
                .await
                .unwrap_or_else(|e| Err(format!("GStreamer initialisation panicked: {e}")));
            INIT.get_or_init(|| r).clone()
        }
    };
    result.map_err(|e| anyhow!("GStreamer is unavailable: {e}"))
}

/// A pipeline that is set to Null when dropped, so no path (session end, replacement, shutdown,
/// a dropped simulator) leaves one running.
#[derive(Debug)]
pub(crate) struct Pipeline(gst::Pipeline);

impl Pipeline {
    /// Builds a pipeline from a `gst-launch` description.
    pub(crate) fn launch(description: &str) -> anyhow::Result<Self> {
        let element = gst::parse::launch(description)
            .map_err(|e| anyhow!("{e} (pipeline \"{description}\")"))?;
        let pipeline = element
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("\"{description}\" is not a pipeline"))?;
        Ok(Self(pipeline))
    }

    /// The named element, as type `T`.
    pub(crate) fn by_name<T: IsA<gst::Element>>(&self, name: &str) -> anyhow::Result<T> {
        self.0
            .by_name(name)
            .with_context(|| format!("no element named {name}"))?
            .downcast::<T>()
            .map_err(|_| anyhow!("element {name} has an unexpected type"))
    }

    pub(crate) fn play(&self) -> anyhow::Result<()> {
        self.0
            .set_state(gst::State::Playing)
            .map(drop)
            .map_err(|e| anyhow!("cannot set the pipeline to Playing: {e}"))
    }

    pub(crate) fn bus(&self) -> Option<gst::Bus> {
        self.0.bus()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Err(e) = self.0.set_state(gst::State::Null) {
            tracing::debug!(error = %e, "pipeline did not go to Null cleanly");
        }
    }
}

/// Handles the pipeline's bus synchronously: an error calls `on_error` with a message naming the
/// element and the debug details; warnings are logged at debug. Every message is dropped, so
/// none piles up on a bus nobody pops.
pub(crate) fn watch_bus(pipeline: &Pipeline, on_error: impl Fn(String) + Send + Sync + 'static) {
    let Some(bus) = pipeline.bus() else {
        return;
    };
    bus.set_sync_handler(move |_, message| {
        match message.view() {
            gst::MessageView::Error(e) => {
                let source = message
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                let debug = e.debug().map(|d| d.to_string()).unwrap_or_default();
                on_error(format!("{source}: {} ({debug})", e.error()));
            }
            gst::MessageView::Warning(w) => {
                tracing::debug!(warning = %w.error(), "GStreamer warning");
            }
            _ => {}
        }
        gst::BusSyncReply::Drop
    });
}

/// Who a sender's packet shows, from its buffer's PTS (ns): `None` for audio, whose slot says it.
pub(crate) type ParticipantAt =
    Box<dyn Fn(Option<u64>) -> Result<Option<u8>, gst::FlowError> + Send + Sync + 'static>;

/// Hands every RTP packet `sink` pulls to the node loop as [`PipelineEvent::Encoded`] of
/// (`session`, `encoder`), and every error of the pipeline as [`PipelineEvent::EncodeError`].
pub(crate) fn forward_encoded(
    pipeline: &Pipeline,
    sink: &gst_app::AppSink,
    events: &UnboundedSender<PipelineEvent>,
    (session, encoder): (usize, u64),
    participant_at: ParticipantAt,
) {
    let packets = events.clone();
    on_each_buffer(sink, move |bytes, pts| {
        let participant = participant_at(pts)?;
        // The node loop is gone only at shutdown; then nobody needs the packet.
        let _ = packets.send(PipelineEvent::Encoded {
            session,
            encoder,
            participant,
            packet: bytes.to_vec(),
        });
        Ok(())
    });
    let errors = events.clone();
    watch_bus(pipeline, move |message| {
        let _ = errors.send(PipelineEvent::EncodeError {
            session,
            encoder,
            message,
        });
    });
}

/// Calls `f` with the bytes and the PTS (ns) of every buffer `sink` pulls; a sample without a
/// buffer is skipped.
pub(crate) fn on_each_buffer(
    sink: &gst_app::AppSink,
    f: impl Fn(&[u8], Option<u64>) -> Result<(), gst::FlowError> + Send + Sync + 'static,
) {
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                f(map.as_slice(), buffer.pts().map(gst::ClockTime::nseconds))?;
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}
