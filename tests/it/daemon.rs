//! The daemon in-process against the simulator on port 0: start-up, READY/STATUS/STOPPING
//! through a fake NOTIFY_SOCKET, `roomd status` over the control socket, clean shutdown,
//! and the GDS health gate's retries.

use crate::support;

use std::time::Duration;

use roomd::api::control::{self, ControlRequest, ControlResponse};
use roomd::api::xstatus;
use roomd::daemon::DaemonOptions;
use roomd::platform::systemd::Notifier;
use roomd::status::CloudState;
use support::*;
use tokio::sync::oneshot;

#[tokio::test]
async fn starts_reports_to_systemd_answers_status_and_stops_cleanly() {
    let logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let mut systemd = FakeSystemd::bind(dir.path());
    let config = config_for(&sim, dir.path());
    let socket = config.control_socket();

    let options = DaemonOptions {
        config,
        board: sim_board(),
        notifier: Notifier::to_path(&systemd.path),
        watchdog: Some(Duration::from_millis(200)),
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let daemon = tokio::spawn(roomd::daemon::run(options, async {
        let _ = stop_rx.await;
    }));

    let ready = systemd.wait_for("READY=1").await;
    assert!(ready.contains("STATUS="), "{ready}");
    systemd
        .wait_for("STATUS=cloud reachable (GDS online)")
        .await;
    systemd.wait_for("WATCHDOG=1").await;

    let status = match control::request(&socket, &ControlRequest::Status)
        .await
        .unwrap()
    {
        ControlResponse::Status { status } => status,
        other => panic!("unexpected answer {other:?}"),
    };
    let tree = xstatus::render(&status);
    assert!(
        tree.contains("*s SystemUnit State: \"Running\"\n"),
        "{tree}"
    );
    assert!(
        tree.contains("*s Webex Discovery Status: \"Online\"\n"),
        "{tree}"
    );
    assert!(
        tree.contains("*s SystemUnit Hardware Board: \"sim\"\n"),
        "{tree}"
    );
    assert!(
        tree.contains("*s SystemUnit GStreamer Version: \"GStreamer 1."),
        "{tree}"
    );

    let health: Vec<_> = sim
        .received()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/gds/health")
        .collect();
    assert!(!health.is_empty());
    let tracking = health[0]
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("trackingid"))
        .map(|(_, v)| v.clone())
        .expect("trackingid header");
    assert!(tracking.starts_with("ROOMD_"), "{tracking}");
    assert!(logs.contains("GDS health: serviceState=online"));

    stop_tx.send(()).unwrap();
    systemd.wait_for("STOPPING=1").await;
    let result = tokio::time::timeout(Duration::from_secs(6), daemon)
        .await
        .expect("daemon stops within the 5 s deadline")
        .unwrap();
    result.unwrap();
    assert!(!socket.exists(), "control socket removed");
    assert!(logs.contains("stopped cleanly"));

    // Every event roomd emitted carries exactly one subsystem (ROOMD_EVENT in journald).
    for event in logs
        .events_of_this_test()
        .iter()
        .filter(|e| e.target == "roomd" || e.target.starts_with("roomd::"))
    {
        assert_eq!(
            event.subsystems.len(),
            1,
            "event without one subsystem: {event:?}"
        );
    }
    sim.shutdown().await;
}

/// With time paused, the retries' spacing is exact: 1, 2, 4, 8, 8 s (±20 % jitter).
#[tokio::test(start_paused = true)]
async fn unhealthy_gds_is_retried_with_backoff_until_it_recovers() {
    // Installed before any span exists, so this test's events are seen with their spans.
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    sim.set_gds_state("offline");
    let mut config = config_for(&sim, dir.path());
    config.cloud.retry_initial_ms = 1000;
    config.cloud.retry_max_secs = 8;
    let daemon = start_daemon(config, Notifier::disabled()).await;
    let mut status = daemon.status();

    let mut failure_times = Vec::new();
    let mut last_failures = 0;
    while failure_times.len() < 6 {
        let cloud = next_cloud_status(&mut status).await;
        if cloud.failures > last_failures {
            assert_eq!(cloud.state, CloudState::Unhealthy);
            assert!(
                cloud.detail.starts_with("reports offline"),
                "{}",
                cloud.detail
            );
            last_failures = cloud.failures;
            failure_times.push(tokio::time::Instant::now());
        }
    }
    let gaps: Vec<f64> = failure_times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    for (gap, base) in gaps.iter().zip([1.0, 2.0, 4.0, 8.0, 8.0]) {
        assert!(
            *gap >= base * 0.8 - 0.05 && *gap <= base * 1.2 + 0.05,
            "gaps {gaps:?} do not follow 1,2,4,8,8 s ±20 %"
        );
    }
    let requests = sim
        .received()
        .iter()
        .filter(|r| r.path == "/gds/health")
        .count();
    assert_eq!(requests, 6, "one request per attempt, no hammering");

    sim.set_gds_state("online");
    loop {
        let cloud = next_cloud_status(&mut status).await;
        if cloud.state == CloudState::Online {
            assert_eq!(cloud.failures, 0);
            break;
        }
    }
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_from_a_503_is_honoured() {
    // Installed before any span exists, so this test's events are seen with their spans.
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    sim.arm_fault(roomd_sim::Fault {
        path: "/gds/health".into(),
        method: None,
        status: 503,
        count: 1,
        retry_after: Some(7),
        body: None,
    })
    .unwrap();
    let daemon = start_daemon(config_for(&sim, dir.path()), Notifier::disabled()).await;
    let mut status = daemon.status();
    let mut first_failure = None;
    loop {
        let cloud = next_cloud_status(&mut status).await;
        match cloud.state {
            CloudState::Unreachable => {
                assert_eq!(cloud.detail, "HTTP 503");
                assert_eq!(cloud.next_check, Some(Duration::from_secs(7)));
                first_failure = Some(tokio::time::Instant::now());
            }
            CloudState::Online => {
                let waited = first_failure.expect("503 seen first").elapsed();
                assert!(
                    waited >= Duration::from_secs(7) && waited < Duration::from_millis(7500),
                    "waited {waited:?} instead of Retry-After 7 s"
                );
                break;
            }
            _ => {}
        }
    }
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_cloud_is_reported_and_the_daemon_keeps_running() {
    // Installed before any span exists, so this test's events are seen with their spans.
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let mut config = config_for(&sim, dir.path());
    // A port nothing listens on.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = unused.local_addr().unwrap().port();
    drop(unused);
    config.cloud.gds_url = Some(format!("https://localhost:{port}/gds"));
    config.cloud.retry_initial_ms = 50;
    let mut systemd = FakeSystemd::bind(dir.path());
    let socket = config.control_socket();
    let daemon = start_daemon(config, Notifier::to_path(&systemd.path)).await;
    let line = systemd
        .wait_for("STATUS=waiting for cloud: GDS unreachable (connection refused)")
        .await;
    assert!(line.contains("retry in"), "{line}");
    // Still serving status while the cloud is away.
    let answer = control::request(&socket, &ControlRequest::Status)
        .await
        .unwrap();
    let ControlResponse::Status { status } = answer else {
        panic!("unexpected {answer:?}")
    };
    assert_eq!(status["Webex"]["Discovery"]["Status"], "Unreachable");
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}
