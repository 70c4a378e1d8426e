//! The event websocket end to end: an activated, registered daemon against roomd-sim's
//! mercury server over real TLS on loopback. Timers are shortened in configuration (ping 1 s,
//! pong timeout 1 s, backoff 100 ms → 1 s); every wait is bounded and awaits an event.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use roomd::cloud::mercury::WsState;
use roomd::config::Config;
use roomd::events::{Namespace, ResyncReason};
use roomd::status::DeviceStatus;
use roomd_sim::{ClosedBy, ConnectionState, SimHandle};
use serde_json::json;
use support::*;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

fn fast_socket(config: &mut Config) {
    config.websocket.ping_interval_secs = 1;
    config.websocket.pong_timeout_secs = 1;
    config.websocket.backoff_initial_ms = 100;
    config.websocket.backoff_max_secs = 1;
    config.websocket.switchover_drain_secs = 5;
}

type Status = watch::Receiver<DeviceStatus>;

/// A registered daemon whose event socket is online (as both ends see it).
async fn online(dir: &std::path::Path) -> (SimHandle, roomd::daemon::Daemon, Status) {
    let (sim, daemon, mut status) = registered_daemon(dir, "", fast_socket).await;
    wait_status(&mut status, "event socket online", |s| {
        s.websocket.state == WsState::Online
    })
    .await;
    sim.wait_mercury_online(WAIT)
        .await
        .expect("sim sees it online");
    (sim, daemon, status)
}

/// Waits until the sim has `n` sockets that reached online, the last of them online now.
async fn wait_online_count(sim: &SimHandle, n: usize) -> Vec<roomd_sim::ConnectionInfo> {
    sim.wait_connections(
        |all| {
            all.iter().filter(|c| c.online_at_ms.is_some()).count() >= n
                && all
                    .last()
                    .is_some_and(|c| c.state == ConnectionState::Online)
        },
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("{n} sockets online: {e}; {:#?}", sim.mercury_connections()))
}

#[tokio::test]
async fn authorizes_first_comes_online_and_acks() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = online(dir.path()).await;
    let connection = &sim.mercury_connections()[0];
    for param in [
        "outboundWireFormat=text",
        "bufferStates=true",
        "aliasHttpStatus=true",
        "clientTimestamp=",
    ] {
        assert!(connection.query.contains(param), "{}", connection.query);
    }
    let first = &sim.mercury_received()[0];
    let frame: serde_json::Value = serde_json::from_str(&first.text).unwrap();
    assert_eq!(frame["type"], "authorization");
    assert!(
        frame["data"]["token"]
            .as_str()
            .unwrap()
            .starts_with("Bearer ")
    );

    // device.control is applied and visible in status; every event is acked.
    let pushed = sim
        .mercury_push(json!({"eventType":"device.control","action":"volume.set","level":70}))
        .unwrap();
    sim.mercury_push(json!({"eventType":"device.control","action":"mute"}))
        .unwrap();
    let muted = wait_status(&mut status, "volume 70, muted", |s| {
        s.controls.volume == 70 && s.controls.microphones_muted
    })
    .await;
    assert_eq!(muted.controls.volume, 70);
    sim.wait_acked(&pushed[0].id, WAIT).await.expect("acked");
    sim.mercury_push(json!({"eventType":"device.control","action":"unmute"}))
        .unwrap();
    wait_status(&mut status, "unmuted", |s| !s.controls.microphones_muted).await;
    let xstatus = roomd::api::xstatus::tree(&status.borrow(), Duration::ZERO);
    assert_eq!(xstatus["Audio"]["Volume"], 70);
    assert_eq!(xstatus["Webex"]["WebSocket"]["Status"], "Online");
    assert!(LogCapture::global().contains(&format!(
        "NotificationChannel: device.control, trackingid {}",
        pushed[0].tracking_id
    )));
    // A bad command is logged by name and changes nothing.
    sim.mercury_push(json!({"eventType":"device.control","action":"volume.set","level":900}))
        .unwrap();
    sim.mercury_push(json!({"eventType":"device.control","action":"mute"}))
        .unwrap();
    wait_status(&mut status, "muted again", |s| s.controls.microphones_muted).await;
    assert_eq!(status.borrow().controls.volume, 70);
    assert!(LogCapture::global().contains("volume.set level 900 is not an integer 0..=100"));

    // featureToggle_update changes the feature list in status.
    sim.mercury_feature_toggle("roomd-obtp", "false", "DEV")
        .unwrap();
    wait_status(&mut status, "feature toggled", |s| {
        s.registration
            .features
            .iter()
            .any(|(g, k, v)| g == "developer" && k == "roomd-obtp" && *v == json!(false))
    })
    .await;
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn close_codes_against_the_real_server() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = online(dir.path()).await;
    let mut sockets = 1;

    // Transient codes and 1000 with a reconnect reason: a new socket comes online.
    for (code, reason) in [(1001, ""), (1011, "oops"), (1000, "idle"), (4001, "")] {
        sim.close_websockets(code, reason).unwrap();
        sockets += 1;
        wait_online_count(&sim, sockets).await;
    }
    // 1006: the connection drops without a close frame.
    sim.abort_websockets();
    sockets += 1;
    wait_online_count(&sim, sockets).await;

    // 4401: the token is refreshed before reconnecting.
    let refreshes = status.borrow().registration.token_refreshes;
    sim.close_websockets(4401, "token expired").unwrap();
    sockets += 1;
    wait_online_count(&sim, sockets).await;
    wait_status(&mut status, "token refreshed", |s| {
        s.registration.token_refreshes > refreshes
    })
    .await;

    // 1008: re-register with WDM, then reconnect (slowly: the backoff maximum, 1 s here).
    let posts = |sim: &SimHandle| {
        sim.received()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/wdm/api/v1/devices")
            .count()
    };
    let before = posts(&sim);
    sim.close_websockets(1008, "policy").unwrap();
    sockets += 1;
    wait_online_count(&sim, sockets).await;
    assert_eq!(posts(&sim), before + 1, "registered again");

    // 1000 with any other reason, and 4000: stop, and say why.
    sim.close_websockets(1000, "goodbye").unwrap();
    let stopped = wait_status(&mut status, "stopped", |s| {
        s.websocket.state == WsState::Stopped
    })
    .await;
    assert!(
        stopped
            .websocket
            .detail
            .as_deref()
            .unwrap()
            .contains("goodbye")
    );
    assert!(stopped.status_line().contains("event socket stopped"));
    daemon.run_until(async {}).await.unwrap();
    // No socket was opened after the stop.
    assert_eq!(sim.mercury_connections().len(), sockets);
    sim.shutdown().await;
}

#[tokio::test]
async fn replaced_socket_stops_and_refusal_before_online_fails() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = online(dir.path()).await;
    sim.close_websockets(4000, "replaced").unwrap();
    wait_status(&mut status, "stopped", |s| {
        s.websocket.state == WsState::Stopped
    })
    .await;
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;

    // 4403 before online (the registration is unknown to the server): no retry.
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = online(dir.path()).await;
    let device = sim.wdm_devices()[0]["deviceIdentifier"].clone();
    let id = sim.wdm_devices()[0]["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert!(device.is_string());
    assert!(sim.delete_wdm_device(&id));
    sim.abort_websockets();
    let failed = wait_status(&mut status, "refused", |s| {
        s.websocket.state == WsState::Failed
    })
    .await;
    assert!(
        failed
            .websocket
            .last_close
            .as_deref()
            .unwrap()
            .contains("4403"),
        "closed with 4403"
    );
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

/// A socket stopped by a close code stays down only until the next registration refresh, not
/// until a restart: 4000 "replaced", then the refresh (every second here) starts it over.
#[tokio::test]
async fn a_stopped_socket_starts_over_at_the_next_registration() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = registered_daemon(dir.path(), "", |config| {
        fast_socket(config);
        config.cloud.registration_refresh_secs = 1;
    })
    .await;
    wait_online_count(&sim, 1).await;
    sim.close_websockets(4000, "replaced").unwrap();
    wait_status(&mut status, "stopped", |s| {
        s.websocket.state == WsState::Stopped
    })
    .await;
    let all = wait_online_count(&sim, 2).await;
    assert_eq!(all[0].close_code, Some(4000), "{all:#?}");
    wait_status(&mut status, "online again", |s| {
        s.websocket.state == WsState::Online
    })
    .await;
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn withheld_and_mismatched_pongs_and_a_half_open_socket_are_detected() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, _status) = online(dir.path()).await;

    sim.mercury_set_pong_mode("withhold").unwrap();
    let all = wait_online_count(&sim, 2).await;
    let first = &all[0];
    assert_eq!(first.closed_by, Some(ClosedBy::Client), "{first:?}");
    assert_eq!(first.close_code, Some(1000));
    assert_eq!(first.close_reason.as_deref(), Some("Pong not received"));

    sim.mercury_set_pong_mode("mismatch").unwrap();
    let all = wait_online_count(&sim, 3).await;
    assert_eq!(all[1].close_reason.as_deref(), Some("Pong mismatch"));

    // Half-open: the server stops reading and writing; only the ping timeout can tell.
    sim.mercury_set_pong_mode("answer").unwrap();
    let current = all.last().unwrap().id;
    assert!(sim.mercury_stall_connection(current, true));
    let all = wait_online_count(&sim, 4).await;
    let stalled = all.iter().find(|c| c.id == current).unwrap();
    assert_ne!(stalled.state, ConnectionState::Online);
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn make_before_break_loses_and_duplicates_nothing() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = online(dir.path()).await;
    let mut burst = daemon.events().subscribe(Namespace::Other, 1024);
    let sim = std::sync::Arc::new(sim);
    // Push continuously (in a blocking thread: the handle's push is synchronous) while the
    // server asks for the switch.
    let pusher = {
        let sim = std::sync::Arc::clone(&sim);
        tokio::task::spawn_blocking(move || {
            let mut delivered: Vec<(String, u64)> = Vec::new();
            let mut switched_at = None;
            let deadline = std::time::Instant::now() + WAIT;
            for i in 0.. {
                let out = sim
                    .mercury_push(json!({"eventType":"test.burst","n":i}))
                    .unwrap();
                delivered.extend(out.into_iter().map(|d| (d.id, d.connection)));
                if i == 100 {
                    assert_eq!(sim.mercury_shutdown().len(), 1);
                }
                // Keep pushing until 100 events went to the new socket.
                let first = delivered[0].1;
                if switched_at.is_none() && delivered.last().is_some_and(|(_, c)| *c != first) {
                    switched_at = Some(delivered.len());
                }
                if switched_at.is_some_and(|at| delivered.len() >= at + 100) {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "no switchover");
                std::thread::yield_now();
            }
            delivered
        })
    };
    let delivered = pusher.await.unwrap();
    let total = delivered.len();
    let connections: HashSet<u64> = delivered.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        connections.len(),
        2,
        "events went to the old socket, then the new"
    );
    let mut received = Vec::new();
    while received.len() < total {
        let event = tokio::time::timeout(WAIT, burst.recv())
            .await
            .expect("event")
            .expect("bus");
        received.push(event.id.clone());
    }
    let sent: Vec<String> = delivered.into_iter().map(|(id, _)| id).collect();
    assert_eq!(received, sent, "same events, same order, once each");
    let after = wait_status(&mut status, "switched", |s| s.websocket.switchovers == 1).await;
    assert_eq!(
        after.websocket.reconnects, 0,
        "a switchover is not a reconnect"
    );
    let old = &sim.mercury_connections()[0];
    assert_eq!(old.close_code, Some(4001));
    // Nothing more arrives (no duplicate was queued behind the last event).
    assert!(burst.try_recv().is_err());
    daemon.run_until(async {}).await.unwrap();
    std::sync::Arc::into_inner(sim).unwrap().shutdown().await;
}

#[tokio::test]
async fn sequence_gap_requests_a_resync() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = online(dir.path()).await;
    let mut resync = daemon.events().resync();
    let before = resync.borrow_and_update().generation;
    sim.mercury_skip_sequence(3);
    sim.mercury_push(json!({"eventType":"test.after-gap"}))
        .unwrap();
    tokio::time::timeout(WAIT, resync.changed())
        .await
        .unwrap()
        .unwrap();
    let now = resync.borrow().clone();
    assert_eq!(now.generation, before + 1);
    assert!(
        matches!(now.reason, ResyncReason::SequenceGap { expected, got } if got == expected + 3),
        "{now:?}"
    );
    // The counter reaches status on the next one-second sync.
    wait_status(&mut status, "gap counted", |s| {
        s.websocket.sequence_gaps == 1
    })
    .await;
    assert!(LogCapture::global().contains("sequence-mismatch"));
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_and_oversized_frames_are_dropped_and_the_socket_stays() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = online(dir.path()).await;
    let mut events = daemon.events().subscribe(Namespace::Other, 8);
    let connection = sim.mercury_connections()[0].id;
    sim.mercury_push_raw(r#"{"trackingId":"broken_7","data":{"#);
    sim.mercury_push_raw("[1,2,3]");
    sim.mercury_push_oversized((1 << 20) + 1, "big_1").unwrap();
    let after = sim.mercury_push(json!({"eventType":"test.after"})).unwrap();
    let event = tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.id, after[0].id);
    assert_eq!(after[0].connection, connection, "same socket");
    wait_status(&mut status, "3 frames dropped", |s| {
        s.websocket.dropped_frames == 3
    })
    .await;
    let log = LogCapture::global();
    assert!(log.contains("frame dropped, trackingid broken_7: frame is not valid JSON"));
    assert!(log.contains(
        "frame dropped, trackingid big_1: frame of 1048577 bytes exceeds the 1048576-byte limit"
    ));
    assert_eq!(sim.mercury_connections().len(), 1);
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}
