//! The device status: one value, shared through a `watch` channel, that `roomd status`, the
//! xAPI, the LEDs and systemd's STATUS= line all read.
//!
//! It is composed of slices. The subsystems below this floor own theirs (`calls`, `bookings`,
//! `media`, `reachability`, `hw`, the event socket's and the Meeting Server's) and write them
//! through a [`StatusSlice`] made by [`slices`]; the parts that the floors above write (the
//! cloud session's activation and registration, the GDS health, the xAPI's listeners) are
//! defined here. The xStatus tree is rendered in `api::xstatus`.

use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::bookings::BookingsStatus;
use crate::calls::CallsStatus;
use crate::cloud::mercury::{MercuryStatus, WsState};
use crate::hw::HardwareStatus;
use crate::media::{MediaStatus, RoomControls};
use crate::meeting_server::MeetingServerStatus;
use crate::reachability::ReachabilityStatus;
use crate::status_slice::StatusSlice;

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStatus {
    pub system: SystemState,
    pub board: String,
    pub gstreamer: Option<String>,
    pub cloud: CloudHealth,
    pub activation: ActivationState,
    pub registration: RegistrationStatus,
    pub websocket: MercuryStatus,
    /// Speaker volume and mute, microphone mute, camera and layout, as the room set them.
    pub controls: RoomControls,
    /// Present when a Meeting Server is configured.
    pub meeting_server: Option<MeetingServerStatus>,
    pub bookings: BookingsStatus,
    pub calls: CallsStatus,
    pub hardware: HardwareStatus,
    pub xapi: XapiStatus,
    /// Media reachability (`Experimental CalliopeDiscovery`).
    pub reachability: ReachabilityStatus,
    /// The media engine (`Media …`): the call's layers, audio and received streams.
    pub media: MediaStatus,
}

/// The writers of the subsystems' slices.
pub mod slices {
    use super::*;

    pub fn calls(root: &watch::Sender<DeviceStatus>) -> StatusSlice<CallsStatus> {
        StatusSlice::of(root, |s| &mut s.calls, |s| &s.calls)
    }

    pub fn bookings(root: &watch::Sender<DeviceStatus>) -> StatusSlice<BookingsStatus> {
        StatusSlice::of(root, |s| &mut s.bookings, |s| &s.bookings)
    }

    pub fn media(root: &watch::Sender<DeviceStatus>) -> StatusSlice<MediaStatus> {
        StatusSlice::of(root, |s| &mut s.media, |s| &s.media)
    }

    pub fn reachability(root: &watch::Sender<DeviceStatus>) -> StatusSlice<ReachabilityStatus> {
        StatusSlice::of(root, |s| &mut s.reachability, |s| &s.reachability)
    }
}

/// The local xAPI's listeners and sessions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct XapiStatus {
    /// `ws://127.0.0.1:8080/ws`, `wss://192.0.2.10:8443/ws`.
    pub listeners: Vec<String>,
    pub sessions: usize,
    pub logins_refused: u32,
}

/// Where the device is in its activation life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationState {
    NotActivated,
    Activating,
    Activated {
        device_identifier: String,
        org_id: String,
    },
    /// Credentials were lost (refresh token rejected, corrupt file): a new code is needed.
    NeedsActivation {
        reason: String,
    },
}

impl ActivationState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ActivationState::NotActivated => "NotActivated",
            ActivationState::Activating => "Activating",
            ActivationState::Activated { .. } => "Activated",
            ActivationState::NeedsActivation { .. } => "NeedsActivation",
        }
    }
}

/// WDM registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistrationState {
    #[default]
    Disconnected,
    Registering,
    Registered,
}

impl RegistrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationState::Disconnected => "Disconnected",
            RegistrationState::Registering => "Registering",
            RegistrationState::Registered => "Registered",
        }
    }
}

/// WDM registration as last seen.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegistrationStatus {
    pub state: RegistrationState,
    pub device_url: Option<String>,
    pub detail: Option<String>,
    /// Feature toggles as (group, key, value text).
    pub features: Vec<(String, String, serde_json::Value)>,
    /// When the access token expires (never the token itself), and how often it was refreshed.
    pub token_expires_at: Option<SystemTime>,
    pub token_refreshes: u32,
    /// Successful registration refreshes (304 or 200) since start.
    pub refreshes: u32,
    /// CAs from the service data's trustList in the trust store, and how often the store
    /// was rebuilt on its timer.
    pub trust_list_cas: usize,
    pub trust_refreshes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemState {
    Starting,
    Running,
    Stopping,
}

impl SystemState {
    pub fn as_str(self) -> &'static str {
        match self {
            SystemState::Starting => "Starting",
            SystemState::Running => "Running",
            SystemState::Stopping => "Stopping",
        }
    }
}

/// What the last GDS health check found.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudHealth {
    pub gds_url: String,
    pub state: CloudState,
    /// "Healthy", "offline (Cassandra=offline)", "connection refused", ...
    pub detail: String,
    /// Failed checks in a row.
    pub failures: u32,
    pub last_checked: Option<SystemTime>,
    /// Delay until the next check, as scheduled after the last one.
    pub next_check: Option<Duration>,
    pub tracking_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudState {
    Unknown,
    Online,
    Unhealthy,
    Unreachable,
}

impl CloudState {
    pub fn as_str(self) -> &'static str {
        match self {
            CloudState::Unknown => "Unknown",
            CloudState::Online => "Online",
            CloudState::Unhealthy => "Unhealthy",
            CloudState::Unreachable => "Unreachable",
        }
    }
}

impl DeviceStatus {
    pub fn new(board: &str, gds_url: &str) -> Self {
        Self {
            system: SystemState::Starting,
            board: board.to_string(),
            gstreamer: None,
            activation: ActivationState::NotActivated,
            registration: RegistrationStatus::default(),
            websocket: MercuryStatus::default(),
            controls: RoomControls::default(),
            meeting_server: None,
            bookings: BookingsStatus::default(),
            calls: CallsStatus::default(),
            hardware: HardwareStatus::default(),
            xapi: XapiStatus::default(),
            reachability: ReachabilityStatus::default(),
            media: MediaStatus::default(),
            cloud: CloudHealth {
                gds_url: gds_url.to_string(),
                state: CloudState::Unknown,
                detail: "not checked yet".into(),
                failures: 0,
                last_checked: None,
                next_check: None,
                tracking_id: None,
            },
        }
    }

    /// Activated and registered with WDM.
    pub fn is_registered(&self) -> bool {
        matches!(self.activation, ActivationState::Activated { .. })
            && self.registration.state == RegistrationState::Registered
    }

    /// The systemd STATUS= line: a state a technician can read at a glance.
    pub fn status_line(&self) -> String {
        if self.system == SystemState::Stopping {
            return "stopping".into();
        }
        match &self.activation {
            ActivationState::NeedsActivation { reason } => {
                return format!("needs activation: {reason}");
            }
            ActivationState::Activating => return "activating".into(),
            ActivationState::Activated { .. } if self.is_registered() => {
                return match self.websocket.state {
                    WsState::Online => "registered".into(),
                    state => format!(
                        "registered; event socket {}",
                        state.as_str().to_ascii_lowercase()
                    ),
                };
            }
            ActivationState::Activated { .. } => {
                let detail = self
                    .registration
                    .detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                return format!("activated; registering{detail}");
            }
            ActivationState::NotActivated => {}
        }
        let cloud = &self.cloud;
        let retry = cloud
            .next_check
            .map(|d| format!("; retry in {} s", d.as_secs().max(1)))
            .unwrap_or_default();
        match (self.system, cloud.state) {
            (SystemState::Stopping, _) => "stopping".into(),
            (_, CloudState::Unknown) => "starting; checking cloud".into(),
            (_, CloudState::Online) => {
                "cloud reachable (GDS online); not activated, waiting for an activation code".into()
            }
            (_, CloudState::Unhealthy) => {
                format!("waiting for cloud: GDS {}{retry}", cloud.detail)
            }
            (_, CloudState::Unreachable) => {
                format!(
                    "waiting for cloud: GDS unreachable ({}){retry}",
                    cloud.detail
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_read_like_states() {
        let mut status = DeviceStatus::new("sim", "https://gds.test/gds");
        assert_eq!(status.status_line(), "starting; checking cloud");
        status.cloud.state = CloudState::Unreachable;
        status.cloud.detail = "connection refused".into();
        status.cloud.next_check = Some(Duration::from_millis(4200));
        assert_eq!(
            status.status_line(),
            "waiting for cloud: GDS unreachable (connection refused); retry in 4 s"
        );
        status.cloud.state = CloudState::Online;
        assert_eq!(
            status.status_line(),
            "cloud reachable (GDS online); not activated, waiting for an activation code"
        );
        status.activation = ActivationState::Activated {
            device_identifier: "d".into(),
            org_id: "o".into(),
        };
        assert_eq!(status.status_line(), "activated; registering");
        status.registration.state = RegistrationState::Registered;
        assert_eq!(
            status.status_line(),
            "registered; event socket disconnected"
        );
        status.websocket.state = WsState::Online;
        assert_eq!(status.status_line(), "registered");
        status.activation = ActivationState::NeedsActivation {
            reason: "refresh token rejected".into(),
        };
        assert_eq!(
            status.status_line(),
            "needs activation: refresh token rejected"
        );
        status.system = SystemState::Stopping;
        assert_eq!(status.status_line(), "stopping");
    }
}
