//! [`SimHandle`] mirrors of `/admin/media*`, and waiting on the media node.

use std::time::Duration;

use serde_json::Value;

use super::scr::Preset;
use crate::SimHandle;

impl SimHandle {
    /// The media node: its address and SSRC, whether acks are dropped, the offers recorded, and
    /// every session with its streams, SCAs, SCRs both ways, streams sent and RTCP counts (as
    /// `GET /admin/media`).
    pub fn media(&self) -> Value {
        self.sim.media.snapshot()
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

    /// Waits until `check` holds for [`media`](Self::media), re-evaluating it on every change of
    /// the node (a packet, a decoded frame, an RTCP message, a session change); returns that
    /// snapshot.
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
        match self.sim.media.wait(within, check).await {
            Ok(v) => v,
            Err(last) => panic!(
                "timed out after {within:?} waiting for {what}; media node: {}",
                serde_json::to_string_pretty(&last).unwrap_or_default()
            ),
        }
    }
}
