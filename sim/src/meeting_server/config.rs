//! `[meeting_server]` in the scenario: credentials and limits of the simulated Meeting Server.
//!
//! The scenario is the source of truth at run time: `PUT /admin/meeting-server/config` and
//! `PUT /admin/scenario` both change it, and the server reads it when it needs a value (a new socket,
//! a subscribeRequest, the next message it sends, a TLS handshake).

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// `[meeting_server]`: the simulated Cisco Meeting Server events listener. Its `Debug` (which
/// the admin API logs) leaves the password out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeetingServerScenario {
    /// API user for `POST /api/v1/authTokens` (Basic auth); default `roomd`.
    pub user: String,
    /// Its password; default `roomd-secret`.
    pub password: String,
    /// Demand a client certificate signed by `cms-ca.pem` in the TLS handshake; default false.
    pub require_client_cert: bool,
    /// Concurrent event sockets; one more is answered 503 before the upgrade (guide: 5).
    pub max_connections: usize,
    /// Subscriptions per socket; a larger subscribeRequest is acked `failure` (guide: 100).
    pub max_subscriptions: usize,
    /// How long the server waits for the ack of its message before closing the socket (1008); 30.
    pub ack_timeout_secs: u64,
}

impl Default for MeetingServerScenario {
    fn default() -> Self {
        Self {
            user: "roomd".to_owned(),
            password: "roomd-secret".to_owned(),
            require_client_cert: false,
            max_connections: 5,
            max_subscriptions: 100,
            ack_timeout_secs: 30,
        }
    }
}

impl std::fmt::Debug for MeetingServerScenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeetingServerScenario")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("require_client_cert", &self.require_client_cert)
            .field("max_connections", &self.max_connections)
            .field("max_subscriptions", &self.max_subscriptions)
            .field("ack_timeout_secs", &self.ack_timeout_secs)
            .finish()
    }
}

/// Largest ack timeout a scenario may set (a day).
const MAX_ACK_TIMEOUT_SECS: u64 = 86_400;

impl MeetingServerScenario {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.user.is_empty() || self.user.contains(':') {
            bail!("meeting_server.user must be non-empty and must not contain ':'");
        }
        if self.max_connections > 10_000 {
            bail!("meeting_server.max_connections must be at most 10000");
        }
        if self.max_subscriptions > 100_000 {
            bail!("meeting_server.max_subscriptions must be at most 100000");
        }
        if self.ack_timeout_secs == 0 || self.ack_timeout_secs > MAX_ACK_TIMEOUT_SECS {
            bail!("meeting_server.ack_timeout_secs must be within 1..={MAX_ACK_TIMEOUT_SECS}");
        }
        Ok(())
    }

    /// Applies the fields a patch sets.
    pub(crate) fn apply(&mut self, patch: &CmsConfigPatch) {
        if let Some(v) = &patch.user {
            self.user.clone_from(v);
        }
        if let Some(v) = &patch.password {
            self.password.clone_from(v);
        }
        if let Some(v) = patch.require_client_cert {
            self.require_client_cert = v;
        }
        if let Some(v) = patch.max_connections {
            self.max_connections = v;
        }
        if let Some(v) = patch.max_subscriptions {
            self.max_subscriptions = v;
        }
        if let Some(v) = patch.ack_timeout_secs {
            self.ack_timeout_secs = v;
        }
    }
}

/// `PUT /admin/meeting-server/config`: the fields to change; absent ones stay. Its `Debug`
/// leaves the password out.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CmsConfigPatch {
    pub user: Option<String>,
    pub password: Option<String>,
    pub require_client_cert: Option<bool>,
    pub max_connections: Option<usize>,
    pub max_subscriptions: Option<usize>,
    pub ack_timeout_secs: Option<u64>,
}

impl std::fmt::Debug for CmsConfigPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmsConfigPatch")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("require_client_cert", &self.require_client_cert)
            .field("max_connections", &self.max_connections)
            .field("max_subscriptions", &self.max_subscriptions)
            .field("ack_timeout_secs", &self.ack_timeout_secs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_leaves_the_password_out() {
        let config = MeetingServerScenario::default();
        let patch = CmsConfigPatch {
            password: Some("another-secret".into()),
            ..CmsConfigPatch::default()
        };
        let shown = format!("{config:?} {patch:?}");
        assert!(
            !shown.contains("roomd-secret") && !shown.contains("another-secret"),
            "{shown}"
        );
        assert!(shown.contains("user: \"roomd\""), "{shown}");
    }

    #[test]
    fn defaults_follow_the_guide() {
        let c = MeetingServerScenario::default();
        assert_eq!((c.max_connections, c.max_subscriptions), (5, 100));
        assert_eq!(c.ack_timeout_secs, 30);
        assert!(!c.require_client_cert);
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn patch_and_validate() {
        let mut c = MeetingServerScenario::default();
        c.apply(&CmsConfigPatch {
            max_connections: Some(2),
            ack_timeout_secs: Some(0),
            ..CmsConfigPatch::default()
        });
        assert_eq!(c.max_connections, 2);
        assert!(c.validate().is_err());
        c.ack_timeout_secs = 1;
        c.user = "a:b".into();
        assert!(c.validate().is_err());
    }
}
