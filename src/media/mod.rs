//! Media through GStreamer. For now: initialisation and checking that the board's
//! elements exist; capture and simulcast encoding arrive with the media engine.

pub mod gst;
pub mod layers;
pub mod layout;
