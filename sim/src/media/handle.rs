//! [`SimHandle`] mirrors of `/admin/media*`, and waiting on the media node.

use std::time::Duration;

use serde_json::Value;

use super::scr::Preset;
use crate::SimHandle;

impl SimHandle {
    /// The media node: its address and SSRC, whether acks are dropped, the offers recorded, the
    /// meeting (`participants`, `activeSpeaker`) and every session with its streams (received
    /// audio measured under `audio`), SCAs, SCRs both ways, streams sent (`streamsSent`, the
    /// current ones in `sentVideo` and `sentAudio`) and RTCP counts (as `GET /admin/media`).
    pub fn media(&self) -> Value {
        super::node(&self.sim).snapshot()
    }

    /// Sends the node's SCR `preset` (`three` or `two`) to every live session; the seqnos used
    /// (as `POST /admin/media/scr`). Errors on an unknown preset or when no live session has an
    /// offer with video SSRCs.
    pub fn media_scr(&self, preset: &str) -> anyhow::Result<Vec<u16>> {
        self.sim.media.send_scr(Preset::parse(preset)?)
    }

    /// Stops (`true`) or resumes acknowledging the device's SCRs; dropped ones are still
    /// recorded (as `POST /admin/media/acks`).
    pub fn media_drop_acks(&self, drop: bool) {
        self.sim.media.set_drop_acks(drop);
    }

    /// Makes far-end participant `n` the active speaker: every session's streams are re-assigned
    /// (as `POST /admin/media/active-speaker`); when, in wall-clock ms. Errors when `n` is not in
    /// the meeting.
    pub fn set_active_speaker(&self, n: u8) -> anyhow::Result<u64> {
        Ok(super::node(&self.sim).set_active_speaker(n)?)
    }

    /// Adds a far-end participant, the lowest unused number (as
    /// `POST /admin/media/participants/add`); its number. Errors when the meeting has 8.
    pub fn add_participant(&self) -> anyhow::Result<u8> {
        Ok(super::node(&self.sim).add_participant()?)
    }

    /// Removes far-end participant `n`; when it was speaking the lowest remaining number speaks
    /// (as `POST /admin/media/participants/remove`); the active speaker afterwards. Errors when
    /// `n` is not in the meeting or is its last participant.
    pub fn remove_participant(&self, n: u8) -> anyhow::Result<u8> {
        Ok(super::node(&self.sim).remove_participant(n)?)
    }

    /// Waits until `check` holds for [`media`](Self::media), re-evaluating it on every change of
    /// the node (a packet, a decoded frame or audio measurement, an RTCP message, a session or
    /// meeting change; sent audio about once a second); returns that snapshot.
    ///
    /// # Panics
    ///
    /// After `within`, naming `what` and showing the last snapshot.
    pub async fn wait_media(
        &self,
        within: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        match super::node(&self.sim).wait(within, check).await {
            Ok(v) => v,
            Err(last) => panic!(
                "timed out after {within:?} waiting for {what}; media node: {}",
                serde_json::to_string_pretty(&last).unwrap_or_default()
            ),
        }
    }
}
