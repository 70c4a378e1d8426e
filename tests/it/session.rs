//! The activated session against the simulator: token refresh on schedule (paused time),
//! 401 → one refresh → retry, refresh token rejected → needs activation, 429 Retry-After,
//! U2C host failover, WDM 404 → register again, lock-down across restarts, the code file,
//! and no secret in any log line.

use crate::support;

use std::time::Duration;

use roomd::activation::code::ActivationCode;
use roomd::platform::systemd::Notifier;
use roomd::session::CODE_FILE;
use roomd::status::ActivationState;
use support::*;

fn code(text: &str) -> ActivationCode {
    ActivationCode::parse(text).unwrap()
}

fn registered(s: &roomd::status::DeviceStatus) -> bool {
    s.registration.state == roomd::status::RegistrationState::Registered
}

#[tokio::test(start_paused = true)]
async fn tokens_are_refreshed_when_a_tenth_of_their_lifetime_is_left() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    // One-hour tokens: refresh 6 minutes (10 %) before expiry, at 54 min.
    let sim = start_activation_sim(dir.path(), "[tokens]\naccess_lifetime_secs = 3600\n").await;
    let mut config = activation_config(&sim, dir.path());
    config.cloud.registration_refresh_secs = 100_000;
    let daemon = start_daemon(config, Notifier::disabled()).await;
    let mut status = daemon.status();
    daemon.session().activate(code(GOOD_CODE)).await.unwrap();
    wait_status(&mut status, "registered", registered).await;
    let activated_at = tokio::time::Instant::now();
    let refreshed = wait_status_within(
        Duration::from_secs(4000),
        &mut status,
        "first token refresh",
        |s| s.registration.token_refreshes == 1,
    )
    .await;
    let after = activated_at.elapsed();
    assert!(
        after >= Duration::from_secs(3240 - 5) && after <= Duration::from_secs(3240 + 5),
        "refreshed after {after:?}, expected 54 min"
    );
    assert!(refreshed.registration.token_expires_at.is_some());
    let refreshes = sim
        .received()
        .iter()
        .filter(|r| r.path == "/identity/access_token")
        .count();
    assert_eq!(refreshes, 1);
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn a_401_forces_one_refresh_then_the_request_is_retried() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = registered_daemon(dir.path(), "", |c| {
        c.cloud.registration_refresh_secs = 1;
    })
    .await;
    // The event socket authorizes with the token too; let it settle first so the 401 is the PUT's.
    wait_status(&mut status, "event socket online", |s| {
        s.websocket.state == roomd::cloud::mercury::WsState::Online
    })
    .await;
    sim.clear_received();
    sim.expire_access_tokens();
    let before = status.borrow().registration.refreshes;
    wait_status(
        &mut status,
        "token refreshed after 401, then a registration refresh",
        |s| s.registration.token_refreshes == 1 && s.registration.refreshes > before,
    )
    .await;
    // Whichever request met the expired token first (the registration PUT, or a calendar
    // catch-up running at that moment) is retried after the one refresh. A catch-up's retry
    // can come after the registration refresh the wait above saw, and the simulator announces
    // no request: look at what it received until the retry is there (bounded).
    let retried = |paths: &[(String, String)]| {
        let refresh = paths
            .iter()
            .position(|(m, p)| m == "POST" && p == "/identity/access_token")?;
        (refresh > 0 && paths[refresh..].contains(&paths[refresh - 1])).then_some(refresh)
    };
    let requests = || -> Vec<(String, String)> {
        sim.received()
            .iter()
            .map(|r| (r.method.clone(), r.path.clone()))
            .collect()
    };
    let wait = async {
        loop {
            let paths = requests();
            if let Some(refresh) = retried(&paths) {
                return (paths, refresh);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (paths, refresh) = match tokio::time::timeout(Duration::from_secs(30), wait).await {
        Ok(found) => found,
        Err(_) => panic!(
            "no request that met the 401 was retried after the one refresh: {:?}",
            requests()
        ),
    };
    assert!(
        paths[refresh..].iter().any(|(m, _)| m == "PUT"),
        "the registration refresh went through: {paths:?}"
    );
    assert!(registered(&daemon.status().borrow()));
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn a_rejected_refresh_token_means_needs_activation_and_the_daemon_keeps_running() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_activation_sim(dir.path(), "").await;
    let mut config = activation_config(&sim, dir.path());
    config.cloud.registration_refresh_secs = 1;
    let socket = config.control_socket();
    let mut systemd = FakeSystemd::bind(dir.path());
    let daemon = start_daemon(config, Notifier::to_path(&systemd.path)).await;
    let mut status = daemon.status();
    daemon.session().activate(code(GOOD_CODE)).await.unwrap();
    wait_status(&mut status, "registered", registered).await;
    sim.revoke_refresh_tokens();
    sim.expire_access_tokens();
    let needs = wait_status(&mut status, "needs activation", |s| {
        matches!(s.activation, ActivationState::NeedsActivation { .. })
    })
    .await;
    assert!(
        needs
            .status_line()
            .starts_with("needs activation: the identity service rejected the refresh token"),
        "{}",
        needs.status_line()
    );
    systemd.wait_for("STATUS=needs activation").await;
    // Still answering, and a new code is accepted.
    let answer =
        roomd::api::control::request(&socket, &roomd::api::control::ControlRequest::Ping).await;
    assert!(answer.is_ok());
    sim.reset_activation("43534500");
    daemon.session().activate(code(GOOD_CODE)).await.unwrap();
    wait_status(&mut status, "registered again", registered).await;
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_activation_sim(dir.path(), "").await;
    sim.arm_fault(roomd_sim::Fault {
        path: "/u2c/catalog".into(),
        method: None,
        status: 429,
        count: 1,
        retry_after: Some(1),
        body: None,
    })
    .unwrap();
    let daemon = start_daemon(activation_config(&sim, dir.path()), Notifier::disabled()).await;
    let mut status = daemon.status();
    daemon.session().activate(code(GOOD_CODE)).await.unwrap();
    wait_status(&mut status, "registered", registered).await;
    let catalog: Vec<_> = sim
        .received()
        .into_iter()
        .filter(|r| r.path == "/u2c/catalog")
        .collect();
    assert_eq!(catalog.len(), 2, "one 429, one retry");
    let waited = catalog[1].at_ms - catalog[0].at_ms;
    assert!(
        waited >= 1000,
        "retried after {waited} ms, Retry-After said 1 s"
    );
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn registration_fails_over_to_the_next_host() {
    LogCapture::global();
    for mode in ["refuse", "503"] {
        let dir = tempfile::tempdir().unwrap();
        let sim = start_activation_sim(dir.path(), "").await;
        sim.set_alt_mode(mode).unwrap();
        let daemon = start_daemon(activation_config(&sim, dir.path()), Notifier::disabled()).await;
        let mut status = daemon.status();
        daemon.session().activate(code(GOOD_CODE)).await.unwrap();
        let done = wait_status(&mut status, "registered", registered).await;
        let url = done.registration.device_url.unwrap();
        assert!(
            url.contains(&format!("localhost:{}", sim.proxy_addr().port())),
            "alt host {mode}: registered at {url}"
        );
        daemon.run_until(async {}).await.unwrap();
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn wdm_forgetting_the_device_leads_to_a_new_registration() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = registered_daemon(dir.path(), "", |c| {
        c.cloud.registration_refresh_secs = 1;
    })
    .await;
    let url = status.borrow().registration.device_url.clone().unwrap();
    let device = url.rsplit('/').next().unwrap().to_string();
    assert!(sim.delete_wdm_device(&device));
    let wait = async {
        loop {
            if sim.wdm_devices().len() == 1 {
                return;
            }
            status.changed().await.unwrap();
        }
    };
    tokio::time::timeout(TIMEOUT, wait)
        .await
        .expect("registered again");
    let posts = sim
        .received()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/wdm/api/v1/devices")
        .count();
    assert_eq!(posts, 2, "registered, then again after the 404");
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn lock_down_survives_restart_and_the_code_file_is_consumed() {
    let logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_activation_sim(dir.path(), "").await;
    let config = activation_config(&sim, dir.path());
    let state_dir = config.state_dir();
    std::fs::create_dir_all(&state_dir).unwrap();
    // An integrator's provisioning step drops the code into the state directory.
    std::fs::write(state_dir.join(CODE_FILE), format!("{GOOD_CODE}\n")).unwrap();
    let daemon = start_daemon(config.clone(), Notifier::disabled()).await;
    let mut status = daemon.status();
    wait_status(&mut status, "registered from the code file", registered).await;
    assert!(
        !state_dir.join(CODE_FILE).exists(),
        "code file consumed and deleted"
    );
    daemon.run_until(async {}).await.unwrap();

    // Restart with a different cloud URL: the locked one stays in use.
    let mut changed = config.clone();
    changed.cloud.gds_url = Some("https://localhost:9/gds".into());
    let daemon = start_daemon(changed, Notifier::disabled()).await;
    let mut status = daemon.status();
    let again = wait_status(&mut status, "registered after restart", registered).await;
    assert_eq!(again.cloud.gds_url, sim.gds_url());
    assert!(logs.contains("differs from the one locked at activation"));
    daemon.run_until(async {}).await.unwrap();

    // No token and no activation code in any log line of this test.
    let (access, refresh) = sim.tokens();
    let events = logs.events_of_this_test();
    // Each roomd event has one subsystem (ROOMD_EVENT); registration has its own.
    for event in events
        .iter()
        .filter(|e| e.target == "roomd" || e.target.starts_with("roomd::"))
    {
        assert_eq!(event.subsystems.len(), 1, "{event:?}");
    }
    assert!(
        events
            .iter()
            .any(|e| e.text.contains("WDM registration succeeded")
                && e.subsystems == ["registration"])
    );
    assert!(
        events
            .iter()
            .any(|e| e.text.contains("activation succeeded") && e.subsystems == ["activation"])
    );
    for event in &events {
        for secret in access.iter().chain(&refresh) {
            assert!(
                !event.text.contains(secret.as_str()),
                "token leaked: {event:?}"
            );
        }
        for code_part in ["4353450012345678", "12345678", "4353-4500-1234-5678"] {
            assert!(
                !event.text.contains(code_part),
                "activation code leaked: {event:?}"
            );
        }
    }
    sim.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_trust_store_is_rebuilt_on_its_timer() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = registered_daemon(dir.path(), "", |c| {
        c.cloud.trust_refresh_secs = 81_465;
        c.cloud.registration_refresh_secs = 1_000_000;
    })
    .await;
    let first = status.borrow().clone();
    assert_eq!(first.registration.trust_list_cas, 1);
    assert_eq!(first.registration.trust_refreshes, 0);
    let start = tokio::time::Instant::now();
    wait_status_within(
        Duration::from_secs(90_000),
        &mut status,
        "trust refresh",
        |s| s.registration.trust_refreshes == 1,
    )
    .await;
    let after = start.elapsed().as_secs();
    assert!(
        (81_460..=81_470).contains(&after),
        "rebuilt after {after} s"
    );
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn activation_waits_for_gds_to_be_online() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_activation_sim(dir.path(), "").await;
    sim.set_gds_state("offline");
    let mut config = activation_config(&sim, dir.path());
    config.cloud.retry_initial_ms = 100;
    config.cloud.retry_max_secs = 1;
    let daemon = start_daemon(config, Notifier::disabled()).await;
    let mut status = daemon.status();
    let session = daemon.session();
    let activation = tokio::spawn(async move { session.activate(code(GOOD_CODE)).await });
    wait_status(&mut status, "activating while GDS is offline", |s| {
        matches!(s.activation, ActivationState::Activating) && s.cloud.failures >= 2
    })
    .await;
    assert!(
        !sim.received()
            .iter()
            .any(|r| r.path.starts_with("/activation")),
        "nothing sent to activation while GDS is offline"
    );
    sim.set_gds_state("online");
    let answer = tokio::time::timeout(TIMEOUT, activation)
        .await
        .unwrap()
        .unwrap();
    answer.expect("activated once GDS is online");
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}
