//! Call Analyzer diagnostic events (wire profile §5, seed 000 "Call Analyzer Events"): each is
//! logged as `Diagnostic event: <name>` with the call's correlation id and kept per call.

use crate::media::session::events as media;

pub const CALL_INITIATED: &str = "client.call.initiated";
pub const LOCAL_SDP_GENERATED: &str = "client.media-engine.local-sdp-generated";
pub const JOIN_REQUEST: &str = "client.locus.join.request";
pub const JOIN_RESPONSE: &str = "client.locus.join.response";
pub const REMOTE_SDP_RECEIVED: &str = "client.media-engine.remote-sdp-received";
pub const ICE_START: &str = "client.ice.start";
pub const ICE_END: &str = "client.ice.end";
pub const MEDIA_ENGINE_READY: &str = "client.media-engine.ready";
pub const CALL_LEAVE: &str = "client.call.leave";

/// The order wire profile §5 lists them in (the media ones are raised by the media session).
pub const PROFILE_ORDER: [&str; 15] = [
    CALL_INITIATED,
    LOCAL_SDP_GENERATED,
    JOIN_REQUEST,
    JOIN_RESPONSE,
    REMOTE_SDP_RECEIVED,
    ICE_START,
    ICE_END,
    MEDIA_ENGINE_READY,
    media::TX_START,
    media::RX_START,
    media::RENDER_START,
    media::QUALITY,
    CALL_LEAVE,
    media::TX_STOP,
    media::RENDER_STOP,
];
