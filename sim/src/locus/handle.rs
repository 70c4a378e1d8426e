//! [`SimHandle`] mirrors of `/admin/locus*`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::SimHandle;

impl SimHandle {
    /// An incoming CALL from `caller` (display `name`; the local part when empty) ringing every
    /// registered device: the caller JOINED, each device NOTIFIED, `locus.participant_alerted`
    /// pushed (as `POST /admin/locus/incoming`). The locus URL. Errors when no device is registered.
    pub fn locus_incoming(&self, caller: &str, name: &str) -> anyhow::Result<String> {
        Ok(super::incoming(&self.sim, caller, name)?)
    }

    /// The far end leaves; the locus is ENDED and a delta pushed (as
    /// `POST /admin/locus/{id}/hangup`).
    pub fn locus_hangup(&self, locus_url_or_id: &str) -> anyhow::Result<()> {
        Ok(super::hangup(&self.sim, locus_url_or_id)?)
    }

    /// Moves the locus's devices to a new MEETING named `name` and pushes
    /// `locus.participant_moved`; `fail` is `None`, `leave`, `join` or `wrong_meeting` (as
    /// `POST /admin/locus/{id}/move`). The new locus URL.
    pub fn locus_move(
        &self,
        locus_url_or_id: &str,
        name: &str,
        fail: Option<&str>,
    ) -> anyhow::Result<String> {
        Ok(super::r#move(&self.sim, locus_url_or_id, name, fail)?.0)
    }

    /// Someone else joins the locus (a delta-only roster change, as
    /// `POST /admin/locus/{id}/participants {"name"}`). The participant's URL.
    pub fn locus_add_participant(
        &self,
        locus_url_or_id: &str,
        name: &str,
    ) -> anyhow::Result<String> {
        Ok(super::add_participant(&self.sim, locus_url_or_id, name)?)
    }

    /// `reorder`, `skip`, `force_desync` or `normal` for the next `count` `locus.difference`
    /// deltas (as `POST /admin/locus/deltas`).
    pub fn locus_deltas(&self, mode: &str, count: u32) -> anyhow::Result<()> {
        Ok(super::set_delta_mode(&self.sim, mode, count)?)
    }

    /// Every locus with participants, sequence, DTMF, joins and requests, the delta mode and the
    /// media node (as `GET /admin/locus`).
    pub fn loci(&self) -> Value {
        self.sim.locus.snapshot(
            self.sim.endpoints.media_node,
            self.sim.media.binding_requests.load(Ordering::Relaxed),
        )
    }

    /// One locus of [`loci`](Self::loci), found by its URL or id.
    pub fn locus(&self, locus_url_or_id: &str) -> Option<Value> {
        let id = super::resolve_id(locus_url_or_id);
        self.loci()["loci"]
            .as_array()?
            .iter()
            .find(|l| l["url"] == locus_url_or_id || l["id"] == id)
            .cloned()
    }

    /// The media node the join answers' remote SDP names (answers STUN Binding at once; see
    /// [`media`](Self::media) for what it received and sent).
    pub fn media_node_addr(&self) -> SocketAddr {
        self.sim.endpoints.media_node
    }
}
