//! The media engine's slice of the device status (`roomd status` → `Media`): the call's
//! layers, audio and received streams; `media::session` keeps it up to date about once a second.

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaStatus {
    /// The call's media session, while one runs.
    pub session: Option<MediaView>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaView {
    pub call_id: u32,
    /// The media node (`ip:port`).
    pub node: String,
    pub layout: super::layout::LayoutFamily,
    pub layers: Vec<MediaLayerView>,
    pub audio: MediaAudioView,
    /// Streams the node sends, by SSRC.
    pub receive: Vec<MediaReceiveView>,
    pub scr_received: u32,
    pub sca_sent: u32,
    pub scr_sent: u32,
    pub sca_received: u32,
    pub scr_resends: u32,
    pub scr_gave_up: u32,
    /// Our last SCR still waits for its SCA.
    pub scr_pending: bool,
}

/// What a simulcast layer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerState {
    Live,
    /// The privacy switch is closed: the layer is advertised as an avatar, no video.
    Avatar,
    /// The node asked for nothing on this layer.
    #[default]
    Off,
}

impl LayerState {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerState::Live => "Live",
            LayerState::Avatar => "Avatar",
            LayerState::Off => "Off",
        }
    }
}

/// One simulcast layer as sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaLayerView {
    pub index: u32,
    pub ssrc: u32,
    pub csi: u32,
    pub state: LayerState,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub packets: u64,
}

/// What the microphone stream sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioSendState {
    #[default]
    Live,
    Muted,
}

impl AudioSendState {
    pub fn as_str(self) -> &'static str {
        match self {
            AudioSendState::Live => "Live",
            AudioSendState::Muted => "Muted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaAudioView {
    pub ssrc: u32,
    pub csi: u32,
    pub state: AudioSendState,
    pub packets: u64,
}

/// One stream the node sends.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaReceiveView {
    pub ssrc: u32,
    pub csi: Option<u32>,
    pub packets: u64,
    /// Whole frames out of the depayloader.
    pub frames: u64,
}
