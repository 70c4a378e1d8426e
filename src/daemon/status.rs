//! The daemon's observable state: one value, shared through a `watch` channel, rendered
//! as the xStatus tree (`roomd status`) and as systemd STATUS= lines.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::clock::iso8601;
use crate::cloud::mercury::{MercuryStatus, WsState};
use crate::meeting_server::MeetingServerStatus;
use crate::reachability::ReachabilityStatus;

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStatus {
    pub system: SystemState,
    pub board: String,
    pub gstreamer: Option<String>,
    pub cloud: CloudHealth,
    pub activation: ActivationState,
    pub registration: RegistrationStatus,
    pub websocket: MercuryStatus,
    pub audio: AudioStatus,
    /// Present when a Meeting Server is configured.
    pub meeting_server: Option<MeetingServerStatus>,
    pub bookings: BookingsStatus,
    pub video: VideoStatus,
    pub calls: CallsStatus,
    pub hardware: HardwareStatus,
    pub xapi: XapiStatus,
    /// Media reachability (`Experimental CalliopeDiscovery`).
    pub reachability: ReachabilityStatus,
    /// The media engine (`Media …`): the call's layers, audio and received streams.
    pub media: MediaStatus,
}

/// The media engine's state (`media::session` keeps it up to date, about once a second).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaStatus {
    /// The call's media session, while one runs.
    pub session: Option<MediaView>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaView {
    pub call_id: u32,
    /// The media node (`ip:port`).
    pub node: String,
    pub layout: String,
    pub layers: Vec<MediaLayerView>,
    pub audio: MediaAudioView,
    /// Streams the node sends, by SSRC.
    pub receive: Vec<MediaReceiveView>,
    pub scr_received: u32,
    pub sca_sent: u32,
    pub scr_sent: u32,
    pub sca_received: u32,
    pub scr_resends: u32,
    pub scr_gave_up: u32,
    /// Our last SCR still waits for its SCA.
    pub scr_pending: bool,
}

/// One simulcast layer as sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaLayerView {
    pub index: u32,
    pub ssrc: u32,
    pub csi: u32,
    /// `Live`, `Avatar` (privacy switch closed) or `Off` (not requested).
    pub state: &'static str,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub packets: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaAudioView {
    pub ssrc: u32,
    pub csi: u32,
    /// `Live` or `Muted`.
    pub state: &'static str,
    pub packets: u64,
}

/// One stream the node sends.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaReceiveView {
    pub ssrc: u32,
    pub csi: Option<u32>,
    pub packets: u64,
    /// Whole frames out of the depayloader.
    pub frames: u64,
}

/// Camera and layout, as the privacy switch and the xAPI set them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoStatus {
    /// The privacy switch is closed: the camera sends nothing (`Video Input MainVideoMute: On`).
    pub camera_off: bool,
    /// `auto`, `equal`, `prominent`, `overlay`, `single`.
    pub layout_family: String,
}

impl Default for VideoStatus {
    fn default() -> Self {
        Self {
            camera_off: false,
            layout_family: "auto".into(),
        }
    }
}

/// Dial requests and calls (`calls::manager` keeps this up to date).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallsStatus {
    /// Call control has the Locus service (the device is registered).
    pub available: bool,
    pub dial_requests: u32,
    pub last_dial: Option<DialRecord>,
    /// Calls in progress (ringing, connecting, connected, on hold), oldest first.
    pub active: Vec<CallView>,
    /// The last few calls that ended, newest last.
    pub ended: Vec<CallView>,
    /// The last user-visible notice (a move: "You have been moved to a new call. Now in …").
    pub notice: Option<String>,
    /// Participant moves seen, with their outcome.
    pub moves: Vec<MoveRecord>,
    /// Locus DTO handling, summed over every call.
    pub locus: LocusCounters,
}

/// One call as status, the xAPI's `Call[n]` and `roomd status` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallView {
    /// The xAPI CallId, from 1 per daemon run.
    pub id: u32,
    /// RoomOS names: `Dialling`, `Ringing`, `Connecting`, `Connected`, `OnHold`, `Disconnecting`, `Idle`.
    pub status: &'static str,
    /// `Incoming` or `Outgoing`.
    pub direction: &'static str,
    /// `Call` or `Meeting`.
    pub kind: &'static str,
    pub remote_number: String,
    pub display_name: String,
    pub locus_url: Option<String>,
    /// Participants `JOINED` in the locus (self included).
    pub participants: usize,
    pub correlation_id: String,
    pub started: SystemTime,
    pub connected_at: Option<SystemTime>,
    /// How it ended (`CauseType` of the xAPI's CallDisconnect); `None` while active.
    pub end_cause: Option<String>,
    pub end_detail: Option<String>,
    /// Diagnostic events in the order they happened.
    pub diagnostics: Vec<DiagnosticRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiagnosticRecord {
    pub name: &'static str,
    pub at: SystemTime,
}

/// A participant move and what came of it (seed 002's three failure cases are distinct).
#[derive(Debug, Clone, PartialEq)]
pub struct MoveRecord {
    pub call_id: u32,
    /// `Moved`, `NothingHappened`, `DroppedNotReconnected`, `WrongMeeting`.
    pub outcome: &'static str,
    pub from: String,
    pub to: String,
    pub name: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocusCounters {
    pub applied: u64,
    pub kept: u64,
    pub queued: u64,
    pub syncs: u64,
    pub desyncs: u64,
    pub bad_events: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DialRecord {
    pub number: String,
    /// `webex-N` when the dial came from a booking.
    pub booking_id: Option<String>,
    /// `xapi:<user>`, `gpio:join_button`, ...
    pub source: String,
    pub at: SystemTime,
}

/// GPIO as the hardware task drives and reads it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HardwareStatus {
    /// `sim`, `cdev`, or `unavailable`.
    pub gpio: String,
    pub detail: Option<String>,
    /// The status LED's pattern (`Off`, `Activating`, `Registered`, `Error`).
    pub status_led: &'static str,
    pub mute_led: bool,
    pub meeting_led: bool,
    pub privacy_switch_closed: bool,
    pub join_presses: u32,
    pub mute_presses: u32,
}

/// The local xAPI's listeners and sessions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct XapiStatus {
    /// `ws://127.0.0.1:8080/ws`, `wss://192.0.2.10:8443/ws`.
    pub listeners: Vec<String>,
    pub sessions: usize,
    pub logins_refused: u32,
}

/// Calendar bookings as `roomd status` shows them (the list itself is `roomd bookings`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BookingsStatus {
    pub count: usize,
    /// Minimal events whose DTO is still being fetched.
    pub pending: usize,
    /// `Bookings Current Id` (`webex-N`).
    pub current_id: Option<String>,
    /// Bookings whose Join button shows now.
    pub joinable: Vec<String>,
    /// What loading the cache found.
    pub cache: String,
    /// `Never`, `Running`, `Complete`, `Failed at page N`.
    pub catch_up: String,
    pub last_catch_up: Option<SystemTime>,
    /// How long the last complete catch-up took.
    pub catch_up_duration: Option<Duration>,
    pub catch_ups: u32,
    /// Some encrypted field waits for a KMS key.
    pub keys_missing: bool,
}

/// Speaker volume and microphone mute, as the room (and the cloud's `device.control`) set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioStatus {
    /// 0..=100.
    pub volume: u8,
    /// Speaker mute (`Audio VolumeMute`).
    pub volume_muted: bool,
    pub microphones_muted: bool,
}

impl Default for AudioStatus {
    fn default() -> Self {
        Self {
            volume: DEFAULT_VOLUME,
            volume_muted: false,
            microphones_muted: false,
        }
    }
}

/// RoomOS's factory default volume.
pub const DEFAULT_VOLUME: u8 = 50;

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

/// WDM registration as last seen.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegistrationStatus {
    /// `Disconnected`, `Registering`, `Registered`.
    pub state: &'static str,
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
            registration: RegistrationStatus {
                state: "Disconnected",
                ..Default::default()
            },
            websocket: MercuryStatus::default(),
            audio: AudioStatus::default(),
            meeting_server: None,
            bookings: BookingsStatus {
                catch_up: "Never".into(),
                ..Default::default()
            },
            video: VideoStatus::default(),
            calls: CallsStatus::default(),
            hardware: HardwareStatus {
                gpio: "unavailable".into(),
                status_led: "Off",
                ..Default::default()
            },
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
            ActivationState::Activated { .. } if self.registration.state == "Registered" => {
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
        let mut activation = json!({ "Status": self.activation.as_str() });
        match &self.activation {
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
        let mut registration = json!({ "Status": self.registration.state });
        if let Some(url) = &self.registration.device_url {
            registration["DeviceUrl"] = json!(url);
        }
        if let Some(detail) = &self.registration.detail {
            registration["Detail"] = json!(detail);
        }
        registration["Refreshes"] = json!(self.registration.refreshes);
        registration["TrustStore"] = json!({
            "AdditionalCAs": self.registration.trust_list_cas,
            "Refreshes": self.registration.trust_refreshes,
        });
        if let Some(at) = self.registration.token_expires_at {
            registration["TokenExpires"] = json!(iso8601(at));
            registration["TokenRefreshes"] = json!(self.registration.token_refreshes);
        }
        if !self.registration.features.is_empty() {
            registration["Feature"] = json!(
                self.registration
                    .features
                    .iter()
                    .enumerate()
                    .map(|(i, (group, key, value))| json!({
                        "id": i + 1, "Group": group, "Key": key, "Value": value
                    }))
                    .collect::<Vec<_>>()
            );
        }
        let ws = &self.websocket;
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
                "State": self.system.as_str(),
                "Software": { "Name": "roomd", "Version": env!("CARGO_PKG_VERSION") },
                "Uptime": uptime.as_secs(),
                "Hardware": { "Board": self.board },
                "GStreamer": { "Version": self.gstreamer.clone().unwrap_or_else(|| "not initialised".into()) },
            },
            "Webex": {
                "Status": self.registration.state,
                "Activation": activation,
                "Registration": registration,
                "Discovery": discovery,
                "WebSocket": websocket,
            },
        });
        let b = &self.bookings;
        let mut bookings = json!({
            "Current": { "Id": b.current_id.clone().unwrap_or_default() },
            "Count": b.count,
            "Pending": b.pending,
            "Joinable": b.joinable.join(","),
            "Cache": b.cache,
            "CatchUp": { "Status": b.catch_up, "Completed": b.catch_ups },
            "KeysMissing": b.keys_missing,
        });
        if let Some(at) = b.last_catch_up {
            bookings["CatchUp"]["LastCompleted"] = json!(iso8601(at));
        }
        if let Some(took) = b.catch_up_duration {
            bookings["CatchUp"]["DurationMs"] = json!(took.as_millis() as u64);
        }
        tree["Bookings"] = bookings;
        tree["Audio"] = json!({
            "Volume": self.audio.volume,
            "VolumeMute": on_off(self.audio.volume_muted),
            "Microphones": { "Mute": on_off(self.audio.microphones_muted) },
        });
        tree["Video"] = json!({
            "Input": { "MainVideoMute": on_off(self.video.camera_off) },
            "Layout": { "LayoutFamily": { "Local": self.video.layout_family } },
        });
        let mut calls = json!({
            "Available": self.calls.available,
            "DialRequests": self.calls.dial_requests,
        });
        if let Some(dial) = &self.calls.last_dial {
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
                "Status": c.status,
                "Direction": c.direction,
                "Type": c.kind,
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
        calls["Active"] = json!(self.calls.active.len());
        calls["Call"] = json!(self.calls.active.iter().map(view).collect::<Vec<_>>());
        calls["Ended"] = json!(self.calls.ended.iter().map(view).collect::<Vec<_>>());
        if let Some(notice) = &self.calls.notice {
            calls["Notice"] = json!(notice);
        }
        if !self.calls.moves.is_empty() {
            calls["Move"] = json!(
                self.calls
                    .moves
                    .iter()
                    .map(|m| json!({
                        "CallId": m.call_id, "Outcome": m.outcome, "From": m.from, "To": m.to,
                        "Name": m.name, "Detail": m.detail.clone().unwrap_or_default(),
                    }))
                    .collect::<Vec<_>>()
            );
        }
        let l = &self.calls.locus;
        calls["Locus"] = json!({
            "Applied": l.applied, "Kept": l.kept, "Queued": l.queued, "Syncs": l.syncs,
            "Desyncs": l.desyncs, "BadEvents": l.bad_events,
        });
        tree["Calls"] = calls;
        if let Some(m) = &self.media.session {
            tree["Media"] = json!({
                "CallId": m.call_id,
                "Node": m.node,
                "Layout": m.layout,
                "Transmit": {
                    "Video": { "Layer": m.layers.iter().map(|l| json!({
                        "id": l.index + 1,
                        "Ssrc": format!("{:#010x}", l.ssrc),
                        "Csi": l.csi,
                        "State": l.state,
                        "Resolution": format!("{}x{}", l.width, l.height),
                        "FrameRate": l.fps,
                        "BitrateKbps": l.bitrate_kbps,
                        "Packets": l.packets,
                    })).collect::<Vec<_>>() },
                    "Audio": {
                        "Ssrc": format!("{:#010x}", m.audio.ssrc),
                        "Csi": m.audio.csi,
                        "State": m.audio.state,
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
        let hw = &self.hardware;
        let mut gpio = json!({
            "Backend": hw.gpio,
            "StatusLed": hw.status_led,
            "MuteLed": on_off(hw.mute_led),
            "MeetingLed": on_off(hw.meeting_led),
            "PrivacySwitch": if hw.privacy_switch_closed { "Closed" } else { "Open" },
            "JoinPresses": hw.join_presses,
            "MutePresses": hw.mute_presses,
        });
        if let Some(detail) = &hw.detail {
            gpio["Detail"] = json!(detail);
        }
        tree["SystemUnit"]["Hardware"]["Gpio"] = gpio;
        tree["XAPI"] = json!({
            "Listeners": self.xapi.listeners.join(" "),
            "Sessions": self.xapi.sessions,
            "LoginsRefused": self.xapi.logins_refused,
        });
        if let Some(ms) = &self.meeting_server {
            tree["Conference"] = conference_tree(ms);
        }
        tree["Experimental"] = json!({ "CalliopeDiscovery": self.reachability.xstatus() });
        tree
    }
}

/// xStatus `Conference`: the Meeting Server connection and the conferences it reports.
fn conference_tree(ms: &MeetingServerStatus) -> Value {
    let mut server = json!({
        "Url": ms.base_url,
        "Status": ms.state,
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
        status.registration.state = "Registered";
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
