//! What the session answers a command with: a typed success or a [`SessionError`], and the
//! [`FailureKind`] that travels with an error over the control socket so `roomd activate`
//! and `roomd factory-reset` exit with a status that says what went wrong (docs/operations.md).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::activation::flow::ActivationError;
use crate::net::http::HttpError;
use crate::store::StoreError;

/// Why a session command failed. The texts are what `roomd activate`, the control socket
/// and xAPI `SystemUnit Activate` show.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum SessionError {
    /// roomd is stopping
    Stopping,
    /// `cloud.activation_url` is not set in any configuration file
    NoActivationUrl,
    /// GDS is not online (see `roomd status`); try again later
    GdsNotOnline,
    /// the device is already activated and locked down; run `roomd factory-reset --yes` first
    AlreadyActivated,
    /// {0}
    Activation(#[from] ActivationError),
    /// {0}
    Http(#[from] HttpError),
    /// {0}
    Store(#[from] StoreError),
}

/// The class of a [`SessionError`], for exit statuses and scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The device is in a state that refuses the command (already activated).
    Refused,
    /// The activation service refused this code (unknown, expired, locked, wrong digits).
    CodeRejected,
    /// Something needed is not reachable or not ready (GDS, the activation service, roomd
    /// stopping); trying again later may work.
    Unavailable,
    /// The activation service answered something that breaks the protocol.
    Protocol,
    /// The configuration lacks what the command needs.
    Config,
    /// The state directory could not be written.
    Io,
}

impl SessionError {
    pub fn kind(&self) -> FailureKind {
        match self {
            SessionError::AlreadyActivated => FailureKind::Refused,
            SessionError::Stopping | SessionError::GdsNotOnline | SessionError::Http(_) => {
                FailureKind::Unavailable
            }
            SessionError::NoActivationUrl => FailureKind::Config,
            SessionError::Store(_) => FailureKind::Io,
            SessionError::Activation(e) => match e {
                ActivationError::UnknownCode
                | ActivationError::Expired
                | ActivationError::Locked
                | ActivationError::Rejected => FailureKind::CodeRejected,
                ActivationError::Http(_) => FailureKind::Unavailable,
                ActivationError::Protocol(_) | ActivationError::Crypto(_) => FailureKind::Protocol,
            },
        }
    }
}

/// Activation succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activated {
    pub device_identifier: String,
}

impl fmt::Display for Activated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "activated as device {}", self.device_identifier)
    }
}

/// The factory reset wiped the state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactoryResetDone {
    /// Files removed from the state directory.
    pub removed: usize,
}

impl fmt::Display for FactoryResetDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "factory reset done: {} file(s) removed", self.removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_kinds() {
        let cases = [
            (
                SessionError::Stopping,
                "roomd is stopping",
                FailureKind::Unavailable,
            ),
            (
                SessionError::AlreadyActivated,
                "the device is already activated and locked down; run `roomd factory-reset --yes` first",
                FailureKind::Refused,
            ),
            (
                SessionError::GdsNotOnline,
                "GDS is not online (see `roomd status`); try again later",
                FailureKind::Unavailable,
            ),
            (
                SessionError::NoActivationUrl,
                "`cloud.activation_url` is not set in any configuration file",
                FailureKind::Config,
            ),
            (
                ActivationError::Expired.into(),
                "the activation code has expired or was already used (HTTP 410): ask for a new one",
                FailureKind::CodeRejected,
            ),
            (
                ActivationError::Rejected.into(),
                "the activation service rejected the code (HTTP 401: SRP verification failed); check the digits",
                FailureKind::CodeRejected,
            ),
        ];
        for (error, text, kind) in cases {
            assert_eq!(error.to_string(), text);
            assert_eq!(error.kind(), kind, "{text}");
        }
    }

    #[test]
    fn kinds_travel_as_snake_case() {
        assert_eq!(
            serde_json::to_string(&FailureKind::CodeRejected).unwrap(),
            "\"code_rejected\""
        );
    }

    #[test]
    fn successes_read_as_before() {
        let activated = Activated {
            device_identifier: "d-1".into(),
        };
        assert_eq!(activated.to_string(), "activated as device d-1");
        assert_eq!(
            FactoryResetDone { removed: 3 }.to_string(),
            "factory reset done: 3 file(s) removed"
        );
    }
}
