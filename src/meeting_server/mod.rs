//! The on-premises Meeting Server events client (seed 001, wire profile §9): conferences,
//! their info and rosters, for `roomd status` and (later) xAPI `Conference`.
//!
//! - [`session`]: the protocol as a sans-IO state machine;
//! - [`model`]: the conferences it keeps;
//! - [`client`]: credentials, TLS (with an optional client certificate), the auth token,
//!   the socket, inactivity detection and reconnects;
//! - [`slots`]: the five-sockets-per-server limit, process-wide.

pub mod client;
pub mod model;
pub mod session;
pub mod slots;

use std::path::PathBuf;

use crate::proto::meeting_server::SubState;
use model::ConferenceModel;

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum MeetingServerError {
    /// cannot read the Meeting Server credentials file {path}: {reason}
    Credentials { path: PathBuf, reason: String },
    /// the Meeting Server credentials file {path} is readable by others (mode {mode:o}); make it 0600
    Permissions { path: PathBuf, mode: u32 },
    /// Meeting Server TLS set-up: {0}
    Tls(String),
    /// the Meeting Server refused the API user ({0})
    Unauthorized(String),
    /// {0}
    Http(#[from] crate::net::http::HttpError),
    /// the Meeting Server's authTokens answer has no X-Cisco-CMS-Auth-Token header
    NoToken,
    /// {0}
    Connect(#[from] crate::net::websocket::WsConnectError),
    /// already {limit} event sockets open to {server}: the Meeting Server allows no more
    TooManyConnections { server: String, limit: usize },
    /// a subscribeRequest of {requested} subscriptions exceeds the Meeting Server's limit of {limit} per connection
    TooManySubscriptions { requested: usize, limit: usize },
    /// invalid Meeting Server base URL {0}
    Url(String),
}

/// The Meeting Server events connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionState {
    #[default]
    Disconnected,
    Connecting,
    Connected,
    /// The configuration cannot work (bad URL, credentials file); nothing is tried.
    Misconfigured,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Disconnected => "Disconnected",
            ConnectionState::Connecting => "Connecting",
            ConnectionState::Connected => "Connected",
            ConnectionState::Misconfigured => "Misconfigured",
        }
    }
}

/// What `roomd status` shows about the Meeting Server.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MeetingServerStatus {
    pub base_url: String,
    pub state: ConnectionState,
    pub detail: Option<String>,
    pub reconnects: u32,
    pub messages_received: u64,
    /// (index, resource, call, state)
    pub subscriptions: Vec<(u32, &'static str, Option<String>, Option<SubState>)>,
    pub unfollowed_calls: usize,
    pub conferences: ConferenceModel,
}
