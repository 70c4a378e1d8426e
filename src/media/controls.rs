//! What the people in the room set that media acts on: speaker volume and mute, microphone
//! mute, the camera (privacy switch) and the layout. The room (`room::Room`) is the only
//! writer; the media session and call control read it through a `watch`, never through the
//! status they publish.

use super::layout::LayoutFamily;

/// RoomOS's factory default volume.
pub const DEFAULT_VOLUME: u8 = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomControls {
    /// 0..=100.
    pub volume: u8,
    /// Speaker mute (`Audio VolumeMute`).
    pub speaker_muted: bool,
    pub microphones_muted: bool,
    /// The privacy switch is closed: the camera sends nothing (`Video Input MainVideoMute: On`).
    pub camera_off: bool,
    pub layout: LayoutFamily,
    /// The camera's own picture in a corner of the display (`Video Selfview Mode`).
    pub selfview: bool,
    /// Standby (`Standby State`): display output and camera off. Never during a call: a
    /// call wakes the room.
    pub standby: bool,
}

impl Default for RoomControls {
    fn default() -> Self {
        Self {
            volume: DEFAULT_VOLUME,
            speaker_muted: false,
            microphones_muted: false,
            camera_off: false,
            layout: LayoutFamily::default(),
            selfview: false,
            standby: false,
        }
    }
}
