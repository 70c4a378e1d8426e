//! The xStatus tree: the device status in RoomOS's names (`roomd status`, `xStatus`), and how
//! RoomOS prints it: `*s SystemUnit Uptime: 42`, strings quoted, list items by their `id`, then
//! `** end`.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::calls::CallView;
use crate::clock::iso8601;
use crate::hw::status::status_led_name;
use crate::media::RoomControls;
use crate::meeting_server::MeetingServerStatus;
use crate::proto::xtext::render_lines;
use crate::reachability::ReachabilityStatus;
use crate::status::{ActivationState, DeviceStatus};

/// `tree` in RoomOS's xStatus lines (`*s …`).
pub fn render(tree: &Value) -> String {
    render_lines(tree, "*s")
}

/// The xStatus tree of the device status, RoomOS names where RoomOS has them.
pub fn tree(status: &DeviceStatus, uptime: Duration) -> Value {
    let s = status;
    let cloud = &s.cloud;
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
    let mut activation = json!({ "Status": s.activation.as_str() });
    match &s.activation {
        ActivationState::Activated {
            device_identifier,
            org_id,
        } => {
            activation["DeviceIdentifier"] = json!(device_identifier);
            activation["OrgId"] = json!(org_id);
            activation["LockDown"] = json!("Locked");
        }
        ActivationState::NeedsActivation { reason } => {
            activation["Reason"] = json!(reason);
        }
        _ => {}
    }
    let mut registration = json!({ "Status": s.registration.state.as_str() });
    if let Some(url) = &s.registration.device_url {
        registration["DeviceUrl"] = json!(url);
    }
    if let Some(detail) = &s.registration.detail {
        registration["Detail"] = json!(detail);
    }
    registration["Refreshes"] = json!(s.registration.refreshes);
    registration["TrustStore"] = json!({
        "AdditionalCAs": s.registration.trust_list_cas,
        "Refreshes": s.registration.trust_refreshes,
    });
    if let Some(at) = s.registration.token_expires_at {
        registration["TokenExpires"] = json!(iso8601(at));
        registration["TokenRefreshes"] = json!(s.registration.token_refreshes);
    }
    if !s.registration.features.is_empty() {
        registration["Feature"] = json!(
            s.registration
                .features
                .iter()
                .enumerate()
                .map(|(i, (group, key, value))| json!({
                    "id": i + 1, "Group": group, "Key": key, "Value": value
                }))
                .collect::<Vec<_>>()
        );
    }
    let ws = &s.websocket;
    let mut websocket = json!({
        "Status": ws.state.as_str(),
        "Connects": ws.connects,
        "Reconnects": ws.reconnects,
        "Switchovers": ws.switchovers,
        "Events": ws.events,
        "DuplicatesDropped": ws.duplicates,
        "FramesDropped": ws.dropped_frames,
        "SequenceGaps": ws.sequence_gaps,
    });
    if let Some(url) = &ws.url {
        websocket["Url"] = json!(url);
    }
    if let Some(detail) = &ws.detail {
        websocket["Detail"] = json!(detail);
    }
    if let Some(since) = ws.online_since {
        websocket["OnlineSince"] = json!(iso8601(since));
    }
    if let Some(close) = &ws.last_close {
        websocket["LastClose"] = json!(close);
    }
    if let Some(retry) = ws.next_retry {
        websocket["NextRetryIn"] = json!(retry.as_secs_f64());
    }
    let mut tree = json!({
        "SystemUnit": {
            "State": s.system.as_str(),
            "Software": { "Name": "roomd", "Version": env!("CARGO_PKG_VERSION") },
            "Uptime": uptime.as_secs(),
            "Hardware": { "Board": s.board },
            "GStreamer": { "Version": s.gstreamer.clone().unwrap_or_else(|| "not initialised".into()) },
        },
        "Webex": {
            "Status": s.registration.state.as_str(),
            "Activation": activation,
            "Registration": registration,
            "Discovery": discovery,
            "WebSocket": websocket,
        },
    });
    let b = &s.bookings;
    let mut bookings = json!({
        "Current": { "Id": b.current_id.clone().unwrap_or_default() },
        "Count": b.count,
        "Pending": b.pending,
        "Joinable": b.joinable.join(","),
        "Cache": b.cache,
        "CatchUp": { "Status": b.catch_up.to_string(), "Completed": b.catch_ups },
        "KeysMissing": b.keys_missing,
    });
    if let Some(at) = b.last_catch_up {
        bookings["CatchUp"]["LastCompleted"] = json!(iso8601(at));
    }
    if let Some(took) = b.catch_up_duration {
        bookings["CatchUp"]["DurationMs"] = json!(took.as_millis() as u64);
    }
    tree["Bookings"] = bookings;
    tree["Audio"] = audio(&s.controls);
    tree["Video"] = video(&s.controls);
    tree["Standby"] = standby(&s.controls);
    let mut calls = json!({
        "Available": s.calls.available,
        "DialRequests": s.calls.dial_requests,
    });
    if let Some(dial) = &s.calls.last_dial {
        calls["LastDial"] = json!({
            "Number": dial.number,
            "BookingId": dial.booking_id.clone().unwrap_or_default(),
            "Source": dial.source,
            "At": iso8601(dial.at),
        });
    }
    let view = |c: &CallView| {
        let mut call = json!({
            "id": c.id,
            "Status": c.status.as_str(),
            "Direction": c.direction.as_str(),
            "Type": c.kind.as_str(),
            "RemoteNumber": c.remote_number,
            "DisplayName": c.display_name,
            "Participants": c.participants,
            "CorrelationId": c.correlation_id,
            "Started": iso8601(c.started),
            "Diagnostics": c.diagnostics.iter().map(|d| d.name).collect::<Vec<_>>().join(" "),
        });
        if let Some(url) = &c.locus_url {
            call["LocusUrl"] = json!(url);
        }
        if let Some(at) = c.connected_at {
            call["ConnectedAt"] = json!(iso8601(at));
        }
        if let Some(cause) = &c.end_cause {
            call["EndCause"] = json!(cause);
        }
        if let Some(detail) = &c.end_detail {
            call["EndDetail"] = json!(detail);
        }
        call
    };
    calls["Active"] = json!(s.calls.active.len());
    calls["Call"] = json!(s.calls.active.iter().map(view).collect::<Vec<_>>());
    calls["Ended"] = json!(s.calls.ended.iter().map(view).collect::<Vec<_>>());
    if let Some(notice) = &s.calls.notice {
        calls["Notice"] = json!(notice);
    }
    if !s.calls.moves.is_empty() {
        calls["Move"] = json!(
            s.calls
                .moves
                .iter()
                .map(|m| json!({
                    "CallId": m.call_id, "Outcome": m.outcome.as_str(), "From": m.from, "To": m.to,
                    "Name": m.name, "Detail": m.detail.clone().unwrap_or_default(),
                }))
                .collect::<Vec<_>>()
        );
    }
    let l = &s.calls.locus;
    calls["Locus"] = json!({
        "Applied": l.applied, "Kept": l.kept, "Queued": l.queued, "Syncs": l.syncs,
        "Desyncs": l.desyncs, "BadEvents": l.bad_events,
    });
    tree["Calls"] = calls;
    if let Some(m) = &s.media.session {
        tree["Media"] = json!({
            "CallId": m.call_id,
            "Node": m.node,
            "Layout": m.layout.as_str(),
            "Transmit": {
                "Video": { "Layer": m.layers.iter().map(|l| json!({
                    "id": l.index + 1,
                    "Ssrc": format!("{:#010x}", l.ssrc),
                    "Csi": l.csi,
                    "State": l.state.as_str(),
                    "Resolution": format!("{}x{}", l.width, l.height),
                    "FrameRate": l.fps,
                    "BitrateKbps": l.bitrate_kbps,
                    "Packets": l.packets,
                })).collect::<Vec<_>>() },
                "Audio": {
                    "Ssrc": format!("{:#010x}", m.audio.ssrc),
                    "Csi": m.audio.csi,
                    "State": m.audio.state.as_str(),
                    "Packets": m.audio.packets,
                },
            },
            "Receive": { "Stream": m.receive.iter().enumerate().map(|(i, r)| json!({
                "id": i + 1,
                "Ssrc": format!("{:#010x}", r.ssrc),
                "Csi": r.csi.map(|c| c.to_string()).unwrap_or_default(),
                "Packets": r.packets,
                "Frames": r.frames,
            })).collect::<Vec<_>>() },
            "Multistream": {
                "ScrReceived": m.scr_received,
                "ScaSent": m.sca_sent,
                "ScrSent": m.scr_sent,
                "ScaReceived": m.sca_received,
                "ScrResends": m.scr_resends,
                "ScrGaveUp": m.scr_gave_up,
                "ScrPending": m.scr_pending,
            },
        });
    }
    let hw = &s.hardware;
    let mut gpio = json!({
        "Backend": hw.gpio.as_str(),
        "StatusLed": status_led_name(hw.status_led),
        "MuteLed": on_off(hw.mute_led),
        "MeetingLed": on_off(hw.meeting_led),
        // The switch sets the room's camera control (`room::Room::set_camera_off`).
        "PrivacySwitch": if s.controls.camera_off { "Closed" } else { "Open" },
        "JoinPresses": hw.join_presses,
        "MutePresses": hw.mute_presses,
    });
    if let Some(detail) = &hw.detail {
        gpio["Detail"] = json!(detail);
    }
    tree["SystemUnit"]["Hardware"]["Gpio"] = gpio;
    tree["XAPI"] = json!({
        "Listeners": s.xapi.listeners.join(" "),
        "Sessions": s.xapi.sessions,
        "LoginsRefused": s.xapi.logins_refused,
    });
    if let Some(ms) = &s.meeting_server {
        tree["Conference"] = conference_tree(ms);
    }
    tree["Experimental"] = json!({ "CalliopeDiscovery": calliope_discovery(&s.reachability) });
    tree
}

/// xStatus `Conference`: the Meeting Server connection and the conferences it reports.
fn conference_tree(ms: &MeetingServerStatus) -> Value {
    let mut server = json!({
        "Url": ms.base_url,
        "Status": ms.state.as_str(),
        "Reconnects": ms.reconnects,
        "MessagesReceived": ms.messages_received,
        "UnfollowedCalls": ms.unfollowed_calls,
        "Subscription": ms.subscriptions.iter().map(|(index, resource, call, state)| {
            let mut entry = json!({
                "id": index,
                "Type": resource,
                "State": state.map(|s| s.as_str()).unwrap_or("requested"),
            });
            if let Some(call) = call {
                entry["Call"] = json!(call);
            }
            entry
        }).collect::<Vec<_>>(),
    });
    if let Some(detail) = &ms.detail {
        server["Detail"] = json!(detail);
    }
    let calls: Vec<Value> = ms
        .conferences
        .calls
        .iter()
        .enumerate()
        .map(|(i, (id, conference))| {
            let participants: Vec<Value> = conference
                .roster
                .iter()
                .enumerate()
                .map(|(j, (pid, p))| {
                    let mut entry = json!({ "id": j + 1, "ParticipantId": pid, "Name": p.name() });
                    for (key, value) in &p.fields {
                        entry[capitalise(key)] = value.clone();
                    }
                    entry
                })
                .collect();
            json!({
                "id": i + 1,
                "CallId": id,
                "Name": conference.name(),
                "Participants": conference.participant_count(),
                "Info": conference
                    .info
                    .iter()
                    .map(|(k, v)| (capitalise(k), v.clone()))
                    .collect::<serde_json::Map<String, Value>>(),
                "Participant": participants,
            })
        })
        .collect();
    json!({ "MeetingServer": server, "Call": calls })
}

/// RoomOS writes booleans of the room as `On` / `Off`.
pub fn on_off(on: bool) -> &'static str {
    if on { "On" } else { "Off" }
}

/// `movedParticipant` → `MovedParticipant` (xStatus names are capitalised).
fn capitalise(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// `Audio`: speaker volume and mute, microphone mute.
pub fn audio(controls: &RoomControls) -> Value {
    json!({
        "Volume": controls.volume,
        "VolumeMute": on_off(controls.speaker_muted),
        "Microphones": { "Mute": on_off(controls.microphones_muted) },
    })
}

/// `Standby`: RoomOS's `Standby State` (Standby or Off).
pub fn standby(controls: &RoomControls) -> Value {
    json!({ "State": if controls.standby { "Standby" } else { "Off" } })
}

/// `Video`: the camera (privacy switch) and the layout family.
pub fn video(controls: &RoomControls) -> Value {
    json!({
        "Input": { "MainVideoMute": on_off(controls.camera_off) },
        "Layout": { "LayoutFamily": { "Local": controls.layout.as_str() } },
        "Selfview": { "Mode": on_off(controls.selfview) },
    })
}

/// The `Experimental CalliopeDiscovery` subtree: seed 000's `Best N …`, `DiscoveryTimeInSec`
/// and `Status` first, then roomd's own counters.
pub fn calliope_discovery(r: &ReachabilityStatus) -> Value {
    let mut tree = Map::new();
    if !r.best.is_empty() {
        tree.insert(
            "Best".into(),
            Value::Array(
                r.best
                    .iter()
                    .map(|b| {
                        json!({
                            "id": b.transport.best_index(),
                            "Cluster": b.cluster,
                            "Ip": b.node.to_string(),
                            "RTT": b.rtt_ms(),
                            "Transport": b.transport.as_str(),
                        })
                    })
                    .collect(),
            ),
        );
    }
    if let Some(took) = r.discovery_time {
        tree.insert("DiscoveryTimeInSec".into(), json!(took.as_secs()));
    }
    tree.insert("Status".into(), json!(r.state.as_str()));
    if let Some(detail) = &r.detail {
        tree.insert("Detail".into(), json!(detail));
    }
    tree.insert(
        "Clusters".into(),
        json!({
            "Discovered": r.clusters_discovered,
            "Reached": r.clusters_reached,
            "ReachedUdp": r.reached_udp,
            "ReachedTcp": r.reached_tcp,
            "ReachedXtls": r.reached_xtls,
        }),
    );
    tree.insert(
        "Probes".into(),
        json!({
            "Sent": r.probes,
            "Requests": r.requests_sent,
            "IgnoredResponses": r.ignored_responses,
            "PeakInFlight": r.peak_in_flight,
        }),
    );
    tree.insert("Runs".into(), json!(r.runs));
    if let Some(at) = r.last_completed {
        tree.insert("LastCompleted".into(), json!(iso8601(at)));
    }
    if let Some(next) = r.next_run_in {
        tree.insert("NextRunIn".into(), json!(next.as_secs()));
    }
    Value::Object(tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_nested_objects_lists_and_scalars() {
        let tree = json!({
            "SystemUnit": { "State": "Running", "Uptime": 42, "Muted": false },
            "Call": [ { "id": 3, "Status": "Connected" } ],
        });
        assert_eq!(
            render(&tree),
            "*s SystemUnit State: \"Running\"\n*s SystemUnit Uptime: 42\n\
             *s SystemUnit Muted: False\n*s Call 3 Status: \"Connected\"\n** end\n"
        );
    }

    #[test]
    fn status_renders_like_seed_000() {
        let status = reachability_example();
        let text =
            render(&json!({"Experimental": {"CalliopeDiscovery": calliope_discovery(&status)}}));
        assert!(text.starts_with(
            "*s Experimental CalliopeDiscovery Best 1 Cluster: \"b.b.*\"\n\
             *s Experimental CalliopeDiscovery Best 1 Ip: \"192.0.2.2:5004\"\n\
             *s Experimental CalliopeDiscovery Best 1 RTT: 25\n\
             *s Experimental CalliopeDiscovery Best 1 Transport: \"udp\"\n\
             *s Experimental CalliopeDiscovery Best 2 Cluster: \"c.c.*\"\n"
        ));
        assert!(text.contains(
            "*s Experimental CalliopeDiscovery Best 3 Transport: \"xtls\"\n\
             *s Experimental CalliopeDiscovery DiscoveryTimeInSec: 1\n\
             *s Experimental CalliopeDiscovery Status: \"Completed\"\n"
        ));
        assert!(text.contains("*s Experimental CalliopeDiscovery Probes IgnoredResponses: 0\n"));
    }

    /// A completed run as `reachability::report`'s tests build it: udp best b.b.* 25 ms,
    /// tcp c.c.*, xtls d.d.*.
    fn reachability_example() -> ReachabilityStatus {
        use crate::reachability::{Best, ReachabilityState, Transport};
        let best = |transport, cluster: &str, node: &str, rtt_ms| Best {
            transport,
            cluster: cluster.into(),
            node: node.parse().unwrap(),
            rtt: Duration::from_millis(rtt_ms),
        };
        ReachabilityStatus {
            state: ReachabilityState::Completed,
            discovery_time: Some(Duration::from_millis(1500)),
            best: vec![
                best(Transport::Udp, "b.b.*", "192.0.2.2:5004", 25),
                best(Transport::Tcp, "c.c.*", "192.0.2.3:5004", 26),
                best(Transport::Xtls, "d.d.*", "192.0.2.4:443", 10),
            ],
            clusters_discovered: 5,
            clusters_reached: 4,
            ..ReachabilityStatus::default()
        }
    }
}
