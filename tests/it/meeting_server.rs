//! The Meeting Server events client end to end: an in-process daemon with a `[meeting_server]`
//! section against roomd-sim's simulated Meeting Server (own CA, real TLS, real WebSocket).
//! The frames both sides exchanged are read back from the simulator in order.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use roomd::config::MeetingServerConfig;
use roomd::status::DeviceStatus;
use roomd_sim::{
    CmsCallFields, CmsConfigPatch, CmsDirection, CmsFrame, CmsParticipantFields, CmsScriptOptions,
    CmsSubscriptionState, SimHandle,
};
use serde_json::{Value, json};
use support::*;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

fn credentials(dir: &Path, mode: u32) -> std::path::PathBuf {
    let path = dir.join("cms.credentials");
    std::fs::write(&path, "roomd:roomd-secret\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn meeting_server_config(sim: &SimHandle, dir: &Path) -> MeetingServerConfig {
    MeetingServerConfig {
        base_url: sim.meeting_server_url(),
        credentials_file: credentials(dir, 0o600),
        ca_file: Some(sim.cms_ca_path().to_path_buf()),
        client_cert_file: None,
        client_key_file: None,
        inactivity_timeout_secs: 60,
    }
}

async fn daemon_with(
    sim: &SimHandle,
    dir: &Path,
    tweak: impl FnOnce(&mut MeetingServerConfig),
) -> (roomd::daemon::Daemon, watch::Receiver<DeviceStatus>) {
    let mut config = config_for(sim, dir);
    let mut ms = meeting_server_config(sim, dir);
    tweak(&mut ms);
    config.meeting_server = Some(ms);
    let daemon = start_daemon(config, roomd::platform::systemd::Notifier::disabled()).await;
    let status = daemon.status();
    (daemon, status)
}

fn conference(status: &DeviceStatus) -> &roomd::meeting_server::MeetingServerStatus {
    status
        .meeting_server
        .as_ref()
        .expect("meeting server status")
}

/// Text frames of a connection as (direction, body).
fn texts(frames: &[CmsFrame]) -> Vec<(CmsDirection, Value)> {
    frames
        .iter()
        .filter(|f| f.kind == "text")
        .map(|f| (f.direction, f.body.clone()))
        .collect()
}

fn kind_of(body: &Value) -> String {
    match body["type"].as_str() {
        Some("messageAck") => format!("ack {}", body["messageAck"]["messageId"]),
        Some("message") => format!(
            "{} {}",
            body["message"]["type"].as_str().unwrap_or("?"),
            body["message"]["messageId"]
        ),
        _ => body.to_string(),
    }
}

#[tokio::test]
async fn the_seed_001_message_flow_then_a_conference_with_a_move() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let (daemon, mut status) = daemon_with(&sim, dir.path(), |_| {}).await;
    wait_status(&mut status, "connected, calls subscription active", |s| {
        s.meeting_server.as_ref().is_some_and(|m| {
            m.state == roomd::meeting_server::ConnectionState::Connected
                && m.subscriptions.iter().any(|(i, r, _, st)| {
                    *i == 1 && *r == "calls" && st.is_some_and(|s| s.as_str() == "active")
                })
        })
    })
    .await;

    // A conference starts, then one participant joins: the client learns of it from the
    // calls list and subscribes to its roster and info with the complete set.
    let call = sim
        .cms_create_call(CmsCallFields {
            name: Some("Andy's coSpace".into()),
            ..Default::default()
        })
        .unwrap();
    wait_status(&mut status, "roster subscription active", |s| {
        s.meeting_server.as_ref().is_some_and(|m| {
            m.subscriptions.iter().any(|(_, r, c, st)| {
                *r == "callRoster"
                    && c.as_deref() == Some(call.call.as_str())
                    && st.is_some_and(|s| s.as_str() == "active")
            })
        })
    })
    .await;
    let connection = sim.cms_connections()[0].id;
    // The server's callInfoUpdate (message 6) follows the roster going active.
    sim.wait_meeting_server(
        |s| s.connections[0].messages_sent >= 6 && s.connections[0].awaiting_ack.is_none(),
        WAIT,
    )
    .await
    .unwrap();
    let flow: Vec<(CmsDirection, String)> = texts(&sim.cms_frames(connection).unwrap())
        .iter()
        .map(|(d, b)| (*d, kind_of(b)))
        .collect();
    use CmsDirection::{Received as C, Sent as S};
    // Seed 001 §5 steps 1-9, each side numbering its own messages, every message acked.
    let expected = vec![
        (C, "subscribeRequest 1".to_string()),
        (S, "ack 1".into()),
        (S, "subscriptionUpdate 1".into()),
        (C, "ack 1".into()),
        (S, "subscriptionUpdate 2".into()),
        (C, "ack 2".into()),
        (S, "callListUpdate 3".into()),
        (C, "ack 3".into()),
        (C, "subscribeRequest 2".into()),
        (S, "ack 2".into()),
        (S, "subscriptionUpdate 4".into()),
        (C, "ack 4".into()),
        (S, "subscriptionUpdate 5".into()),
        (C, "ack 5".into()),
        (S, "callInfoUpdate 6".into()),
        (C, "ack 6".into()),
    ];
    assert_eq!(flow[..expected.len()], expected[..], "{flow:#?}");
    let frames = texts(&sim.cms_frames(connection).unwrap());
    let second = &frames[8].1["message"]["subscriptions"];
    let kinds: Vec<&str> = second
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["calls", "callInfo", "callRoster"],
        "the complete set"
    );
    assert_eq!(second[0]["index"], 1, "calls keeps its index");

    // Participants join, one is moved: the roster keeps movedParticipant and canMove.
    sim.cms_add_participant(
        &call.call,
        CmsParticipantFields {
            name: Some("Alice".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let bob = sim
        .cms_add_participant(
            &call.call,
            CmsParticipantFields {
                name: Some("Bob".into()),
                can_move: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    let moved = sim
        .cms_move_participant(&call.call, &bob.participant, None)
        .unwrap();
    let now = wait_status(&mut status, "moved participant in the roster", |s| {
        s.meeting_server.as_ref().is_some_and(|m| {
            m.conferences
                .calls
                .get(&call.call)
                .is_some_and(|c| c.roster.contains_key(&moved.participant) && c.roster.len() == 2)
        })
    })
    .await;
    let conference_now = &conference(&now).conferences.calls[&call.call];
    let p = &conference_now.roster[&moved.participant];
    assert_eq!(p.moved_from(), Some(bob.participant.as_str()));
    assert_eq!(
        p.moved_from_call_bridge(),
        Some(sim.meeting_server().bridge.as_str())
    );
    assert_eq!(p.can_move(), Some(true));
    let tree = roomd::api::xstatus::tree(&now, Duration::ZERO);
    let call_tree = &tree["Conference"]["Call"][0];
    assert_eq!(call_tree["Name"], "Andy's coSpace");
    assert!(
        call_tree["Participant"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["MovedParticipant"] == json!(bob.participant))
    );

    // The conference ends: its subscriptions are deactivated and roomd drops them.
    sim.cms_end_call(&call.call).unwrap();
    wait_status(&mut status, "back to the calls list only", |s| {
        s.meeting_server
            .as_ref()
            .is_some_and(|m| m.conferences.calls.is_empty() && m.subscriptions.len() == 1)
    })
    .await;
    let snapshot = sim
        .wait_meeting_server(
            |s| {
                s.connections[0].subscriptions.len() == 1 && s.connections[0].awaiting_ack.is_none()
            },
            WAIT,
        )
        .await
        .unwrap();
    assert!(snapshot.violations.is_empty(), "{:?}", snapshot.violations);
    let frames = texts(&sim.cms_frames(connection).unwrap());
    assert!(frames.iter().any(|(d, b)| {
        *d == S
            && b["message"]["type"] == "subscriptionUpdate"
            && b["message"]["subscriptions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["state"] == "deactivated")
    }));
    assert!(LogCapture::global().contains("moved into \"Andy's coSpace\""));
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn the_scripted_conference_and_the_subscription_limit() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let (daemon, mut status) = daemon_with(&sim, dir.path(), |_| {}).await;
    wait_status(&mut status, "connected", |s| {
        s.meeting_server.as_ref().is_some_and(|m| {
            m.state == roomd::meeting_server::ConnectionState::Connected
                && !m.subscriptions.is_empty()
        })
    })
    .await;
    let sim = std::sync::Arc::new(sim);
    let script = {
        let sim = std::sync::Arc::clone(&sim);
        tokio::task::spawn_blocking(move || sim.cms_run_script(CmsScriptOptions::default()))
            .await
            .unwrap()
            .unwrap()
    };
    sim.wait_meeting_server(|s| s.script.as_ref().is_some_and(|x| x.done), WAIT)
        .await
        .unwrap();
    let now = wait_status(&mut status, "three in the roster, one moved", |s| {
        s.meeting_server.as_ref().is_some_and(|m| {
            m.conferences
                .calls
                .get(&script.call)
                .is_some_and(|c| c.roster.len() == 3 && c.roster.contains_key(&script.moved))
        })
    })
    .await;
    let call = &conference(&now).conferences.calls[&script.call];
    assert_eq!(call.participant_count(), Some(3));
    assert_eq!(
        call.roster[&script.moved].moved_from(),
        Some(script.participants[1].as_str())
    );

    // 60 more conferences: roomd follows 49 of all 61 (1 + 2 × 49 = 99 subscriptions) and
    // never sends the server more than 100.
    for i in 0..60 {
        sim.cms_create_call(CmsCallFields {
            name: Some(format!("room {i}")),
            ..Default::default()
        })
        .unwrap();
    }
    let now = wait_status(&mut status, "61 calls known", |s| {
        s.meeting_server
            .as_ref()
            .is_some_and(|m| m.conferences.calls.len() == 61 && m.unfollowed_calls == 12)
    })
    .await;
    assert_eq!(conference(&now).subscriptions.len(), 99);
    sim.wait_meeting_server(
        |s| s.connections[0].subscriptions.len() == 99 && s.connections[0].awaiting_ack.is_none(),
        WAIT,
    )
    .await
    .unwrap();
    assert!(
        sim.cms_violations().is_empty(),
        "{:?}",
        sim.cms_violations()
    );
    assert!(
        sim.meeting_server().connections[0]
            .subscriptions
            .iter()
            .all(|s| s.state != CmsSubscriptionState::Deactivated || s.call.is_some())
    );
    daemon.run_until(async {}).await.unwrap();
    std::sync::Arc::into_inner(sim).unwrap().shutdown().await;
}

#[tokio::test]
async fn a_silent_server_is_probed_then_reconnected() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let (daemon, mut status) =
        daemon_with(&sim, dir.path(), |ms| ms.inactivity_timeout_secs = 2).await;
    wait_status(&mut status, "connected", |s| {
        s.meeting_server
            .as_ref()
            .is_some_and(|m| m.state == roomd::meeting_server::ConnectionState::Connected)
    })
    .await;
    // While the server is chatty nothing happens; then it goes silent (reads and sends nothing).
    let first = sim.cms_connections()[0].id;
    sim.cms_set_silent(true, Some(first)).unwrap();
    let snapshot = sim
        .wait_meeting_server(|s| s.connections.len() >= 2 && s.connections[1].open, WAIT)
        .await
        .unwrap();
    assert!(snapshot.connection(first).is_some());
    let now = wait_status(&mut status, "reconnected", |s| {
        s.meeting_server.as_ref().is_some_and(|m| {
            m.state == roomd::meeting_server::ConnectionState::Connected && m.reconnects == 1
        })
    })
    .await;
    assert_eq!(
        conference(&now).state,
        roomd::meeting_server::ConnectionState::Connected
    );
    assert!(LogCapture::global().contains("no message for 2 s (the server sends no pings)"));
    // The probe went out at half the timeout, before the reconnect.
    assert!(
        LogCapture::global()
            .contains("nothing received for 1 s; re-sending the subscription as a probe")
    );
    sim.cms_set_silent(false, Some(first)).unwrap();
    // Never a ping: the server would have recorded it as a violation.
    assert!(
        sim.cms_violations().is_empty(),
        "{:?}",
        sim.cms_violations()
    );
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_and_bad_credentials() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    sim.set_cms_config(CmsConfigPatch {
        require_client_cert: Some(true),
        ..Default::default()
    })
    .unwrap();
    let (daemon, mut status) = daemon_with(&sim, dir.path(), |ms| {
        ms.client_cert_file = Some(sim.cms_client_cert_path().to_path_buf());
        ms.client_key_file = Some(sim.cms_client_key_path().to_path_buf());
    })
    .await;
    wait_status(&mut status, "connected with a client certificate", |s| {
        s.meeting_server
            .as_ref()
            .is_some_and(|m| m.state == roomd::meeting_server::ConnectionState::Connected)
    })
    .await;
    daemon.run_until(async {}).await.unwrap();

    // Without the certificate the handshake fails; roomd says so and keeps retrying.
    let dir2 = tempfile::tempdir().unwrap();
    let (daemon, mut status) = daemon_with(&sim, dir2.path(), |_| {}).await;
    let now = wait_status(&mut status, "refused", |s| {
        s.meeting_server.as_ref().is_some_and(|m| {
            m.reconnects >= 1 && m.state == roomd::meeting_server::ConnectionState::Disconnected
        })
    })
    .await;
    assert!(conference(&now).detail.is_some());
    daemon.run_until(async {}).await.unwrap();

    // A credentials file others can read is refused by name; the daemon runs on.
    let dir3 = tempfile::tempdir().unwrap();
    let (daemon, status) = daemon_with(&sim, dir3.path(), |ms| {
        ms.credentials_file = credentials(dir3.path(), 0o644);
    })
    .await;
    let now = status.borrow().clone();
    let ms = conference(&now);
    assert_eq!(
        ms.state,
        roomd::meeting_server::ConnectionState::Misconfigured
    );
    assert!(
        ms.detail
            .as_deref()
            .unwrap()
            .contains("readable by others (mode 644); make it 0600"),
        "{:?}",
        ms.detail
    );
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}
