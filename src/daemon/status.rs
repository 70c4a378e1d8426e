//! The daemon's observable state: one value, shared through a `watch` channel, rendered
//! as the xStatus tree (`roomd status`) and as systemd STATUS= lines.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::clock::iso8601;

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStatus {
    pub system: SystemState,
    pub board: String,
    pub gstreamer: Option<String>,
    pub cloud: CloudHealth,
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

    /// The systemd STATUS= line: a state a technician can read at a glance.
    pub fn status_line(&self) -> String {
        let cloud = &self.cloud;
        let retry = cloud
            .next_check
            .map(|d| format!("; retry in {} s", d.as_secs().max(1)))
            .unwrap_or_default();
        match (self.system, cloud.state) {
            (SystemState::Stopping, _) => "stopping".into(),
            (_, CloudState::Unknown) => "starting; checking cloud".into(),
            (_, CloudState::Online) => "cloud reachable (GDS online); not activated".into(),
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

    /// The xStatus tree, RoomOS names where RoomOS has them.
    pub fn xstatus(&self, uptime: Duration) -> Value {
        let cloud = &self.cloud;
        let mut discovery = json!({
            "Url": cloud.gds_url,
            "Status": cloud.state.as_str(),
            "Detail": cloud.detail,
            "Failures": cloud.failures,
        });
        if let Some(at) = cloud.last_checked {
            discovery["LastChecked"] = json!(iso8601(at));
        }
        if let Some(next) = cloud.next_check {
            discovery["NextCheckIn"] = json!(next.as_secs());
        }
        if let Some(id) = &cloud.tracking_id {
            discovery["TrackingId"] = json!(id);
        }
        json!({
            "SystemUnit": {
                "State": self.system.as_str(),
                "Software": { "Name": "roomd", "Version": env!("CARGO_PKG_VERSION") },
                "Uptime": uptime.as_secs(),
                "Hardware": { "Board": self.board },
                "GStreamer": { "Version": self.gstreamer.clone().unwrap_or_else(|| "not initialised".into()) },
            },
            "Webex": {
                "Status": "Disconnected",
                "Activation": { "Status": "NotActivated" },
                "Discovery": discovery,
            },
        })
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
            "cloud reachable (GDS online); not activated"
        );
        status.system = SystemState::Stopping;
        assert_eq!(status.status_line(), "stopping");
    }
}
