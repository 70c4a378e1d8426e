//! The xAPI's Status, Configuration and Event documents, built from the daemon's state with
//! RoomOS names (`docs/xapi.md`). Pure functions: a session diffs two builds to make feedback.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::xstatus;
use crate::bookings::obtp::ObtpEvent;
use crate::calls::CallEvent;
use crate::calls::{CallKind, CallState, CallView};
use crate::status::{ActivationState, DeviceStatus, SystemState};
use crate::store::{StateDir, StoreError};

/// The Status document, without `SystemUnit Uptime` (it changes every second; [`with_uptime`]
/// adds it for `xGet`, feedback never carries it).
pub fn status_document(status: &DeviceStatus, network: &Value) -> Value {
    let webex_status = match &status.activation {
        ActivationState::NotActivated => "NotActivated",
        ActivationState::Activating => "Activating",
        ActivationState::NeedsActivation { .. } => "Error",
        ActivationState::Activated { .. } if status.is_registered() => "Registered",
        ActivationState::Activated { .. } => "Registering",
    };
    let joinable: Vec<Value> = status
        .bookings
        .joinable
        .iter()
        .map(|id| {
            let n = id
                .strip_prefix("webex-")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            json!({ "id": n, "Id": id })
        })
        .collect();
    json!({
        "Audio": xstatus::audio(&status.controls),
        "Bookings": {
            "Current": { "Id": status.bookings.current_id.clone().unwrap_or_default() },
            "Joinable": joinable,
        },
        "Call": status.calls.active.iter().map(call_status).collect::<Vec<_>>(),
        "Experimental": { "CalliopeDiscovery": xstatus::calliope_discovery(&status.reachability) },
        "Network": network,
        "Standby": xstatus::standby(&status.controls),
        "SystemUnit": {
            "ProductId": "roomd",
            "Software": { "Name": "roomd", "Version": env!("CARGO_PKG_VERSION") },
            "State": {
                "System": match status.system {
                    SystemState::Starting => "Initializing",
                    SystemState::Running => "Initialized",
                    SystemState::Stopping => "ShuttingDown",
                },
                "NumberOfActiveCalls": status.calls.active.iter().filter(|c| c.status != CallState::Ringing).count(),
            },
            "Hardware": { "Board": status.board },
        },
        "Video": xstatus::video(&status.controls),
        "Webex": {
            "Status": webex_status,
            "Registration": { "State": status.registration.state.as_str() },
            "WebSocket": status.websocket.state.as_str(),
        },
    })
}

/// `Status Call[n]` (RoomOS names; `Duration` only through [`with_uptime`]).
fn call_status(call: &CallView) -> Value {
    json!({
        "id": call.id,
        "Status": call.status.as_str(),
        "Direction": call.direction.as_str(),
        "RemoteNumber": call.remote_number,
        "CallbackNumber": call.remote_number,
        "DisplayName": call.display_name,
        "CallType": "Video",
        "Protocol": "Spark",
        "AnswerState": if call.connected_at.is_some() { "Answered" } else { "Unanswered" },
        "PlacedOnHold": if call.status == CallState::OnHold { "True" } else { "False" },
        "DeviceType": if call.kind == CallKind::Meeting { "MCU" } else { "Endpoint" },
    })
}

/// The Status document as `xGet` reads it: with `SystemUnit Uptime` and each call's
/// `Duration` (seconds since it connected), which change every second and so are never feedback.
pub fn with_uptime(mut document: Value, uptime: Duration, status: &DeviceStatus) -> Value {
    document["SystemUnit"]["Uptime"] = json!(uptime.as_secs());
    if let Some(calls) = document["Call"].as_array_mut() {
        for (item, call) in calls.iter_mut().zip(&status.calls.active) {
            let duration = call
                .connected_at
                .and_then(|at| at.elapsed().ok())
                .map_or(0, |d| d.as_secs());
            item["Duration"] = json!(duration);
        }
    }
    document
}

/// `Event OutgoingCallIndication`, `IncomingCallIndication`, `CallDisconnect` and
/// `UserInterface Notice` (RoomOS names).
pub fn call_event(event: &CallEvent) -> Value {
    match event {
        CallEvent::Outgoing { call_id, .. } => {
            json!({ "OutgoingCallIndication": { "CallId": call_id } })
        }
        CallEvent::Incoming {
            call_id,
            remote_uri,
            display_name,
        } => json!({ "IncomingCallIndication": {
            "CallId": call_id, "RemoteURI": remote_uri, "DisplayNameValue": display_name,
        } }),
        CallEvent::Disconnect {
            call_id,
            cause,
            detail,
            remote_uri,
            display_name,
            direction,
            duration_secs,
        } => json!({ "CallDisconnect": {
            "CallId": call_id,
            "CauseType": cause.as_str(),
            "CauseString": detail.clone().unwrap_or_default(),
            "RemoteURI": remote_uri,
            "DisplayName": display_name,
            "OrigCallDirection": direction.as_str().to_ascii_lowercase(),
            "Duration": duration_secs,
        } }),
        CallEvent::Notice { call_id, text } => {
            json!({ "UserInterface": { "Notice": { "CallId": call_id, "Text": text } } })
        }
    }
}

/// `Event Bookings StartTimeBuffer|Start|End {Id, MeetingId}`.
pub fn obtp_event(event: &ObtpEvent) -> Value {
    json!({ "Bookings": { event.kind.as_str(): { "Id": event.booking, "MeetingId": event.meeting_id } } })
}

/// `Event Bookings Updated {Count}`.
pub fn bookings_updated(count: usize) -> Value {
    json!({ "Bookings": { "Updated": { "Count": count } } })
}

/// `Network[n]`: each interface's name, MAC address and operational state, read from sysfs
/// once at start (interfaces of a room device do not come and go).
pub fn network_document() -> Value {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name != "lo")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let read = |name: &str, file: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{name}/{file}"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    Value::Array(
        names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                json!({
                    "id": i + 1,
                    "Name": name,
                    "Ethernet": { "MacAddress": read(name, "address") },
                    "State": read(name, "operstate"),
                })
            })
            .collect(),
    )
}

pub const CONFIGURATION_FILE: &str = "xapi-configuration.json";
pub const MAX_SYSTEM_NAME_CHARS: usize = 50;

/// What `xSet` may change, stored in the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Configuration {
    pub system_name: String,
    pub default_volume: u8,
}

impl Default for Configuration {
    fn default() -> Self {
        Self {
            system_name: String::new(),
            default_volume: crate::media::controls::DEFAULT_VOLUME,
        }
    }
}

/// Why `xSet` refused.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum SetError {
    /// No match on Path argument
    NoMatch,
    /// Invalid value for {path}: {reason}
    InvalidValue { path: &'static str, reason: String },
}

impl Configuration {
    /// Loads the stored configuration; a missing or unreadable file gives the defaults
    /// (logged), so a bad file never stops the device.
    pub fn load(state: &StateDir) -> Self {
        match state.read(CONFIGURATION_FILE) {
            Ok(None) => Self::default(),
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!("{CONFIGURATION_FILE} is not valid ({e}); using the defaults");
                Self::default()
            }),
            Err(e) => {
                tracing::error!("{e}; using the default configuration");
                Self::default()
            }
        }
    }

    pub fn save(&self, state: &StateDir) -> Result<(), StoreError> {
        state.write_atomic(
            CONFIGURATION_FILE,
            &serde_json::to_vec_pretty(self).expect("configuration serialises"),
        )
    }

    pub fn document(&self) -> Value {
        json!({
            "Audio": { "DefaultVolume": self.default_volume },
            "SystemUnit": { "Name": self.system_name },
        })
    }

    /// Applies `xSet` at `path` (below `Configuration`, names case-insensitive).
    pub fn set(&mut self, path: &[String], value: &Value) -> Result<(), SetError> {
        let lower: Vec<String> = path.iter().map(|s| s.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        match lower.as_slice() {
            ["systemunit", "name"] => {
                let name = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(SetError::InvalidValue {
                            path: "SystemUnit Name",
                            reason: "expected a string".into(),
                        });
                    }
                };
                if name.chars().count() > MAX_SYSTEM_NAME_CHARS
                    || name.chars().any(char::is_control)
                {
                    return Err(SetError::InvalidValue {
                        path: "SystemUnit Name",
                        reason: format!(
                            "at most {MAX_SYSTEM_NAME_CHARS} characters, no control characters"
                        ),
                    });
                }
                self.system_name = name;
            }
            ["audio", "defaultvolume"] => {
                let level = match value {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                match level {
                    Some(level) if level <= 100 => self.default_volume = level as u8,
                    _ => {
                        return Err(SetError::InvalidValue {
                            path: "Audio DefaultVolume",
                            reason: format!("{value} is not an integer 0..100"),
                        });
                    }
                }
            }
            _ => return Err(SetError::NoMatch),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_document_uses_roomos_names() {
        let mut status = DeviceStatus::new("sim", "https://gds.test");
        status.bookings.joinable = vec!["webex-3".into()];
        status.bookings.current_id = Some("webex-3".into());
        status.controls.microphones_muted = true;
        let doc = status_document(&status, &json!([]));
        assert_eq!(doc["Audio"]["Microphones"]["Mute"], "On");
        assert_eq!(
            doc["Bookings"]["Joinable"],
            json!([{"id": 3, "Id": "webex-3"}])
        );
        assert_eq!(doc["Bookings"]["Current"]["Id"], "webex-3");
        assert_eq!(doc["Webex"]["Status"], "NotActivated");
        assert_eq!(doc["SystemUnit"]["State"]["System"], "Initializing");
        assert!(doc["SystemUnit"].get("Uptime").is_none());
        let doc = with_uptime(doc, Duration::from_secs(42), &status);
        assert_eq!(doc["SystemUnit"]["Uptime"], 42);
    }

    #[test]
    fn configuration_set_validates_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("s")).unwrap();
        let mut c = Configuration::load(&state);
        assert_eq!(c.default_volume, 50);
        c.set(&["systemunit".into(), "NAME".into()], &json!("Huddle 3"))
            .unwrap();
        c.set(&["Audio".into(), "DefaultVolume".into()], &json!("30"))
            .unwrap();
        assert_eq!(
            c.set(&["Audio".into(), "DefaultVolume".into()], &json!(101)),
            Err(SetError::InvalidValue {
                path: "Audio DefaultVolume",
                reason: "101 is not an integer 0..100".into()
            })
        );
        assert!(
            c.set(
                &["SystemUnit".into(), "Name".into()],
                &json!("x".repeat(51))
            )
            .is_err()
        );
        assert_eq!(
            c.set(&["Audio".into(), "Nope".into()], &json!(1)),
            Err(SetError::NoMatch)
        );
        c.save(&state).unwrap();
        assert_eq!(Configuration::load(&state), c);
        assert_eq!(
            c.document(),
            json!({"Audio": {"DefaultVolume": 30}, "SystemUnit": {"Name": "Huddle 3"}})
        );
        std::fs::write(state.file(CONFIGURATION_FILE), b"{broken").unwrap();
        assert_eq!(Configuration::load(&state), Configuration::default());
    }
}
