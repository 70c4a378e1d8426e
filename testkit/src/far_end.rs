//! The far end roomd-sim's media node plays, as the contract states it
//! (`docs/wire-profile-choices.md` §7 "Far-end media"), and readers of its `GET /admin/media`
//! snapshot. Written from the contract, not from the sim's code, so a test checks the sim too.

use serde_json::Value;

/// Participant n's solid colour (RGB) is `PALETTE[n - 1]`, n = 1..=8.
pub const PALETTE: [[u8; 3]; 8] = [
    [220, 40, 40],
    [40, 180, 60],
    [40, 80, 220],
    [230, 200, 40],
    [200, 60, 200],
    [40, 200, 200],
    [240, 140, 30],
    [150, 150, 150],
];

/// Participant `n`'s colour.
pub fn colour(n: u8) -> [u8; 3] {
    PALETTE[usize::from(n) - 1]
}

/// Participant `n`'s tone: a sine at 300 + 150·n Hz.
pub fn tone_hz(n: u8) -> f64 {
    300.0 + 150.0 * f64::from(n)
}

/// The node's live session in a snapshot (the last one not ended).
pub fn live_session(media: &Value) -> Option<&Value> {
    media["sessions"]
        .as_array()?
        .iter()
        .rev()
        .find(|s| s["ended"] != true)
}

/// What the live session received on `ssrc` (the device's stream).
pub fn received_stream(media: &Value, ssrc: u64) -> Option<&Value> {
    live_session(media)?["streams"]
        .as_array()?
        .iter()
        .find(|s| s["ssrc"] == ssrc)
}
