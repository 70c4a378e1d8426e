//! Consumers of the event bus that change the device's own state: `device.control`
//! (the cloud's data channel: volume, microphone mute) and `featureToggle_update`.

use tokio::sync::watch;

use crate::events::{Event, EventBus, Namespace};
use crate::platform::logging::message_id;
use crate::proto::wdm::FeatureToggle;
use crate::room::Room;
use crate::shutdown::Shutdown;
use crate::status::DeviceStatus;

/// Events that may wait unread per consumer.
const QUEUE: usize = 64;

/// A `device.control` command (wire profile §3 choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCommand {
    SetVolume(u8),
    Mute,
    Unmute,
}

/// Reads the command from an event's `data`; the error names what was wrong.
pub fn parse_device_control(data: &serde_json::Value) -> Result<DeviceCommand, String> {
    let action = data
        .get("action")
        .and_then(|a| a.as_str())
        .ok_or("no `action`")?;
    match action {
        "volume.set" => {
            let level = data.get("level").ok_or("volume.set without `level`")?;
            match level.as_u64() {
                Some(level) if level <= 100 => Ok(DeviceCommand::SetVolume(level as u8)),
                _ => Err(format!(
                    "volume.set level {level} is not an integer 0..=100"
                )),
            }
        }
        "mute" => Ok(DeviceCommand::Mute),
        "unmute" => Ok(DeviceCommand::Unmute),
        other => Err(format!("unknown action `{other}`")),
    }
}

/// Applies `device.control` events to the audio state (through the same [`Room`] controls as
/// the xAPI and the buttons) until shutdown.
pub async fn run_device_control(bus: EventBus, room: Room, mut shutdown: Shutdown) {
    let mut events = bus.subscribe(Namespace::DeviceControl, QUEUE);
    loop {
        let event = tokio::select! {
            event = events.recv() => match event { Some(e) => e, None => return },
            _ = shutdown.recv() => return,
        };
        apply_device_control(&event, &room);
    }
}

fn apply_device_control(event: &Event, room: &Room) {
    let tracking = event.tracking_id.as_deref().unwrap_or("none");
    match parse_device_control(&event.data) {
        Ok(command) => {
            match command {
                DeviceCommand::SetVolume(level) => room.set_volume(level),
                DeviceCommand::Mute => room.set_microphones_muted(true),
                DeviceCommand::Unmute => room.set_microphones_muted(false),
            }
            tracing::info!(
                message_id = message_id::DEVICE_CONTROL,
                trackingid = tracking,
                "device.control applied: {command:?}"
            );
        }
        Err(reason) => tracing::error!(
            trackingid = tracking,
            "device.control event {} ignored: {reason}",
            event.id
        ),
    }
}

/// Applies `featureToggle_update` events to the feature list in status until shutdown.
pub async fn run_feature_toggles(
    bus: EventBus,
    status: watch::Sender<DeviceStatus>,
    mut shutdown: Shutdown,
) {
    let mut events = bus.subscribe(Namespace::FeatureToggle, QUEUE);
    loop {
        let event = tokio::select! {
            event = events.recv() => match event { Some(e) => e, None => return },
            _ = shutdown.recv() => return,
        };
        match parse_feature_toggle(&event.data) {
            Ok((group, toggle)) => {
                let value = toggle.value().to_json();
                tracing::info!(
                    trackingid = event.tracking_id.as_deref().unwrap_or("none"),
                    "feature toggle {group}/{} set to {value}",
                    toggle.key
                );
                status.send_modify(|s| {
                    let features = &mut s.registration.features;
                    match features
                        .iter_mut()
                        .find(|(g, k, _)| g == group && *k == toggle.key)
                    {
                        Some(entry) => entry.2 = value,
                        None => features.push((group.to_string(), toggle.key.clone(), value)),
                    }
                });
            }
            Err(reason) => tracing::error!(
                trackingid = event.tracking_id.as_deref().unwrap_or("none"),
                "featureToggle_update {} ignored: {reason}",
                event.id
            ),
        }
    }
}

/// `{"featureToggle":{"key","val","type"}}` → (WDM group, toggle).
pub fn parse_feature_toggle(
    data: &serde_json::Value,
) -> Result<(&'static str, FeatureToggle), String> {
    let toggle = data.get("featureToggle").ok_or("no `featureToggle`")?;
    let kind = toggle.get("type").and_then(|t| t.as_str()).unwrap_or("DEV");
    let group = match kind.to_ascii_lowercase().as_str() {
        "dev" | "developer" => "developer",
        "user" => "user",
        "entitlement" => "entitlement",
        other => return Err(format!("unknown toggle type `{other}`")),
    };
    let parsed: FeatureToggle =
        serde_json::from_value(toggle.clone()).map_err(|e| format!("bad featureToggle: {e}"))?;
    if parsed.key.is_empty() {
        return Err("empty key".into());
    }
    Ok((group, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn device_control_commands() {
        assert_eq!(
            parse_device_control(&json!({"action":"volume.set","level":70})),
            Ok(DeviceCommand::SetVolume(70))
        );
        assert_eq!(
            parse_device_control(&json!({"action":"mute"})),
            Ok(DeviceCommand::Mute)
        );
        assert_eq!(
            parse_device_control(&json!({"action":"unmute"})),
            Ok(DeviceCommand::Unmute)
        );
        assert_eq!(
            parse_device_control(&json!({"action":"volume.set","level":101})),
            Err("volume.set level 101 is not an integer 0..=100".into())
        );
        assert_eq!(
            parse_device_control(&json!({"action":"reboot"})),
            Err("unknown action `reboot`".into())
        );
        assert_eq!(parse_device_control(&json!({})), Err("no `action`".into()));
    }

    #[test]
    fn feature_toggles() {
        let (group, toggle) = parse_feature_toggle(
            &json!({"featureToggle":{"key":"roomd-obtp","val":"false","type":"DEV"}}),
        )
        .unwrap();
        assert_eq!(group, "developer");
        assert_eq!(toggle.value().to_json(), json!(false));
        assert_eq!(
            parse_feature_toggle(&json!({"featureToggle":{"key":"k","val":"1","type":"user"}}))
                .unwrap()
                .0,
            "user"
        );
        assert!(
            parse_feature_toggle(&json!({"featureToggle":{"key":"k","type":"weird"}})).is_err()
        );
        assert!(parse_feature_toggle(&json!({})).is_err());
    }
}
