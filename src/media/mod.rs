//! Media through GStreamer (wire profile §7, `docs/media.md`): the send graph (one capture, a
//! tee, a simulcast layer per branch), the receive pipelines, and the per-call session
//! speaking multistream. Its inputs are the room's [`controls`]; what it does shows in its
//! [`status`] slice.

pub mod controls;
pub mod elements;
pub mod graph;
pub mod gst;
pub mod layers;
pub mod layout;
pub mod plan;
pub mod receive_pipeline;
pub mod ring;
pub mod send_pipeline;
pub mod session;
pub mod status;

pub use controls::RoomControls;
pub use layout::LayoutFamily;
pub use status::MediaStatus;
