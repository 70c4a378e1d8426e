//! [`SimHandle`] mirrors of `/admin/meeting-server/*`, plus waits that wake on every change.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{
    CmsCall, CmsCallFields, CmsConfigPatch, CmsConnection, CmsFrame, CmsParticipant,
    CmsParticipantFields, CmsScript, CmsScriptOptions, CmsSnapshot, CmsViolation,
    MeetingServerScenario,
};
use crate::SimHandle;

impl SimHandle {
    /// The Meeting Server listener.
    pub fn meeting_server_addr(&self) -> SocketAddr {
        self.cms.addr
    }

    /// `https://localhost:<meeting server port>`.
    pub fn meeting_server_url(&self) -> String {
        self.cms.url.clone()
    }

    /// PEM of the Meeting Server CA ("roomd-sim meeting server CA").
    pub fn cms_ca_pem(&self) -> &str {
        &self.cms.ca_pem
    }

    /// `state_dir/cms-ca.pem` (absolute).
    pub fn cms_ca_path(&self) -> &Path {
        &self.cms.ca_path
    }

    /// PEM of the client certificate the CMS CA signed (for mutual TLS).
    pub fn cms_client_cert_pem(&self) -> &str {
        &self.cms.client_cert_pem
    }

    /// PKCS#8 PEM of that certificate's key.
    pub fn cms_client_key_pem(&self) -> &str {
        &self.cms.client_key_pem
    }

    /// `state_dir/cms-client.pem` (absolute).
    pub fn cms_client_cert_path(&self) -> &Path {
        &self.cms.client_cert_path
    }

    /// `state_dir/cms-client-key.pem` (absolute, mode 0600).
    pub fn cms_client_key_path(&self) -> &Path {
        &self.cms.client_key_path
    }

    /// Everything the Meeting Server knows (as `GET /admin/meeting-server`).
    pub fn meeting_server(&self) -> CmsSnapshot {
        self.cms.snapshot()
    }

    /// Waits until `pred` holds, re-checking after every change of the Meeting Server (a frame
    /// in or out, a model change, a socket opening or closing); answers the snapshot it held for.
    /// Errors after `timeout`, with the last snapshot in the message.
    pub async fn wait_meeting_server(
        &self,
        pred: impl FnMut(&CmsSnapshot) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<CmsSnapshot> {
        self.cms.wait(pred, timeout).await
    }

    /// The `[meeting_server]` settings in force (as `GET /admin/meeting-server/config`).
    pub fn cms_config(&self) -> MeetingServerScenario {
        self.cms.config()
    }

    /// Changes settings at run time (as `PUT /admin/meeting-server/config`); the scenario follows.
    pub fn set_cms_config(&self, patch: CmsConfigPatch) -> anyhow::Result<MeetingServerScenario> {
        self.cms.set_config(&patch)
    }

    /// Active calls (as `GET /admin/meeting-server/calls`).
    pub fn cms_calls(&self) -> Vec<CmsCall> {
        self.cms.calls()
    }

    /// Starts a call (as `POST /admin/meeting-server/calls`).
    pub fn cms_create_call(&self, fields: CmsCallFields) -> anyhow::Result<CmsCall> {
        Ok(self.cms.create_call(&fields)?)
    }

    /// Changes a call (as `PATCH /admin/meeting-server/calls/{call}`).
    pub fn cms_update_call(&self, call: &str, fields: CmsCallFields) -> anyhow::Result<CmsCall> {
        Ok(self.cms.update_call(call, &fields)?)
    }

    /// Ends a call (as `POST /admin/meeting-server/calls/{call}/end`).
    pub fn cms_end_call(&self, call: &str) -> anyhow::Result<()> {
        Ok(self.cms.end_call(call)?)
    }

    /// Adds a participant (as `POST /admin/meeting-server/calls/{call}/participants`).
    pub fn cms_add_participant(
        &self,
        call: &str,
        fields: CmsParticipantFields,
    ) -> anyhow::Result<CmsParticipant> {
        Ok(self.cms.add_participant(call, &fields)?)
    }

    /// Changes a participant (as `PATCH .../participants/{participant}`).
    pub fn cms_update_participant(
        &self,
        call: &str,
        participant: &str,
        fields: CmsParticipantFields,
    ) -> anyhow::Result<CmsParticipant> {
        Ok(self.cms.update_participant(call, participant, &fields)?)
    }

    /// Removes a participant (as `DELETE .../participants/{participant}`).
    pub fn cms_remove_participant(&self, call: &str, participant: &str) -> anyhow::Result<()> {
        Ok(self.cms.remove_participant(call, participant)?)
    }

    /// Moves a participant to `to_call` (None: the same call): a remove, then an add of a new
    /// participant with `movedParticipant` and `movedParticipantCallBridge` (as
    /// `POST .../participants/{participant}/move`). Answers the new participant.
    pub fn cms_move_participant(
        &self,
        call: &str,
        participant: &str,
        to_call: Option<&str>,
    ) -> anyhow::Result<CmsParticipant> {
        Ok(self
            .cms
            .move_participant(call, participant, to_call, None)?)
    }

    /// Starts the scripted conference in the background (as `POST /admin/meeting-server/script`);
    /// answers its plan. Await `script.done` with [`SimHandle::wait_meeting_server`].
    pub fn cms_run_script(&self, opts: CmsScriptOptions) -> anyhow::Result<CmsScript> {
        Ok(self.cms.start_script(&opts)?)
    }

    /// Silence mode (as `POST /admin/meeting-server/silence`): the socket (`connection`) or every
    /// socket, now and new (None), stops sending and reading, and keeps TCP open. `false` with None
    /// lifts every silence.
    pub fn cms_set_silent(&self, silent: bool, connection: Option<u64>) -> anyhow::Result<()> {
        Ok(self.cms.set_silent(silent, connection)?)
    }

    /// Closes every open socket (or `connection`) with `code` and `reason` (as
    /// `POST /admin/meeting-server/close`); answers how many.
    pub fn cms_close_sockets(
        &self,
        code: u16,
        reason: &str,
        connection: Option<u64>,
    ) -> anyhow::Result<usize> {
        Ok(self.cms.close_sockets(code, reason, false, connection)?)
    }

    /// Drops every open socket (or `connection`) without a close frame (the client sees 1006).
    pub fn cms_abort_sockets(&self, connection: Option<u64>) -> anyhow::Result<usize> {
        Ok(self.cms.close_sockets(1000, "", true, connection)?)
    }

    /// Open connections and the last closed ones (as `GET /admin/meeting-server/connections`).
    pub fn cms_connections(&self) -> Vec<CmsConnection> {
        self.cms.snapshot().connections
    }

    /// Every frame of one connection, in order (as `GET .../connections/{id}/frames`).
    pub fn cms_frames(&self, connection: u64) -> Option<Vec<CmsFrame>> {
        self.cms.frames(connection)
    }

    /// Every connection's frames (as `GET /admin/meeting-server/frames`).
    pub fn cms_all_frames(&self) -> BTreeMap<u64, Vec<CmsFrame>> {
        self.cms.all_frames()
    }

    /// What clients did that the Meeting Server does not allow (as `GET .../violations`).
    pub fn cms_violations(&self) -> Vec<CmsViolation> {
        self.cms.violations()
    }

    /// Forgets the violations (as `DELETE .../violations`).
    pub fn clear_cms_violations(&self) {
        self.cms.clear_violations();
    }

    /// Every auth token issued so far stops opening sockets (as `POST .../tokens/expire`).
    pub fn cms_expire_tokens(&self) -> usize {
        self.cms.expire_tokens()
    }
}
