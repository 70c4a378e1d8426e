//! Activation and registration end to end against the simulator: SRP over real TLS,
//! service data verified before decryption, trustList installed, U2C + WDM, tokens.

use crate::support;

use std::os::unix::fs::PermissionsExt;

use roomd::activation::code::ActivationCode;
use roomd::activation::flow::ActivationError;
use roomd::platform::systemd::Notifier;
use roomd::session::{FailureKind, SessionError};
use roomd::status::ActivationState;
use roomd::store::credentials::CREDENTIALS_FILE;
use support::*;

fn code(text: &str) -> ActivationCode {
    ActivationCode::parse(text).unwrap()
}

#[tokio::test]
async fn activation_then_registration_with_the_trust_list_installed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_activation_sim(dir.path(), "").await;
    let config = activation_config(&sim, dir.path());
    let state_dir = config.state_dir();
    let daemon = start_daemon(config, Notifier::disabled()).await;
    let mut status = daemon.status();

    let answer = daemon.session().activate(code(GOOD_CODE)).await.unwrap();
    assert!(!answer.device_identifier.is_empty());
    assert_eq!(
        answer.to_string(),
        format!("activated as device {}", answer.device_identifier)
    );
    let registered = wait_status(&mut status, "registered", |s| {
        s.registration.state == roomd::status::RegistrationState::Registered
    })
    .await;
    assert!(matches!(
        registered.activation,
        ActivationState::Activated { .. }
    ));
    assert!(registered.status_line().starts_with("registered"));
    // The event socket follows the registration.
    let online = wait_status(&mut status, "event socket online", |s| {
        s.websocket.state == roomd::cloud::mercury::WsState::Online
    })
    .await;
    assert_eq!(online.status_line(), "registered");
    // Feature toggles follow the bool/number/string rule.
    assert!(
        registered
            .registration
            .features
            .iter()
            .any(|(g, k, v)| g == "developer"
                && k == "roomd-obtp"
                && *v == serde_json::json!(true))
    );
    assert!(
        registered
            .registration
            .features
            .iter()
            .any(|(_, k, v)| k == "roomd-max-bookings" && *v == serde_json::json!(50.0))
    );

    // The service URLs are behind the "proxy" whose CA only the trustList carried.
    let config_trust: Vec<_> = sim.received().iter().map(|r| r.path.clone()).collect();
    assert!(
        config_trust.iter().any(|p| p == "/u2c/catalog"),
        "{config_trust:?}"
    );
    assert!(
        config_trust.iter().any(|p| p == "/wdm/api/v1/devices"),
        "{config_trust:?}"
    );
    assert_eq!(sim.wdm_devices().len(), 1);
    let activations = sim.activations();
    assert_eq!(activations.len(), 1);

    // Secrets at rest: 0600 file in a 0700 directory.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state_dir), 0o700);
    assert_eq!(mode(&state_dir.join(CREDENTIALS_FILE)), 0o600);

    // Locked down: a second activation is refused with a clear message.
    let refused = daemon
        .session()
        .activate(code(GOOD_CODE))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, SessionError::AlreadyActivated),
        "{refused}"
    );
    assert_eq!(refused.kind(), FailureKind::Refused);

    // Factory reset unregisters and wipes.
    let reset = daemon.session().factory_reset().await.unwrap();
    assert!(reset.removed > 0, "{reset}");
    assert!(sim.wdm_devices().is_empty(), "unregistered from WDM");
    assert!(!state_dir.join(CREDENTIALS_FILE).exists());
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn a_wrong_code_is_rejected_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_activation_sim(dir.path(), "").await;
    let config = activation_config(&sim, dir.path());
    let state_dir = config.state_dir();
    let daemon = start_daemon(config, Notifier::disabled()).await;
    let err = daemon
        .session()
        .activate(code("4353-4500-0000-0000"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SessionError::Activation(ActivationError::Rejected)),
        "{err}"
    );
    assert!(
        err.to_string().contains("rejected the code (HTTP 401"),
        "{err}"
    );
    assert_eq!(err.kind(), FailureKind::CodeRejected);
    assert!(!state_dir.join(CREDENTIALS_FILE).exists());
    assert!(matches!(
        daemon.status().borrow().activation,
        ActivationState::NotActivated
    ));
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn server_side_failures_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_activation_sim(dir.path(), "").await;
    let config = activation_config(&sim, dir.path());
    let state_dir = config.state_dir();
    let daemon = start_daemon(config, Notifier::disabled()).await;
    let session = daemon.session();

    let tampered = session.activate(code(TAMPER_CODE)).await.unwrap_err();
    assert!(
        tampered.to_string().contains("serviceDataHMAC"),
        "{tampered}"
    );
    assert_eq!(tampered.kind(), FailureKind::Protocol);
    let mitm = session.activate(code(MITM_CODE)).await.unwrap_err();
    assert!(mitm.to_string().contains("serviceDataHMAC"), "{mitm}");
    let expired = session.activate(code(EXPIRED_CODE)).await.unwrap_err();
    assert!(
        matches!(expired, SessionError::Activation(ActivationError::Expired)),
        "{expired}"
    );
    let unknown = session
        .activate(code("8888-8888-8888-8888"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            unknown,
            SessionError::Activation(ActivationError::UnknownCode)
        ),
        "{unknown}"
    );
    assert!(
        unknown
            .to_string()
            .contains("does not know this activation code"),
        "{unknown}"
    );
    assert!(!state_dir.join(CREDENTIALS_FILE).exists());

    // Five wrong passwords lock the id.
    for _ in 0..5 {
        let _ = session.activate(code("4353-4500-0000-0001")).await;
    }
    let locked = session.activate(code(GOOD_CODE)).await.unwrap_err();
    assert!(
        matches!(locked, SessionError::Activation(ActivationError::Locked)),
        "{locked}"
    );
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn without_the_trust_list_post_activation_tls_fails() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_activation_sim(dir.path(), "").await;
    let daemon = start_daemon(activation_config(&sim, dir.path()), Notifier::disabled()).await;
    let mut status = daemon.status();
    daemon
        .session()
        .activate(code(NO_TRUST_CODE))
        .await
        .unwrap();
    let stuck = wait_status(&mut status, "registration failing on TLS", |s| {
        s.registration
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("not trusted"))
    })
    .await;
    assert_ne!(
        stuck.registration.state,
        roomd::status::RegistrationState::Registered
    );
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}
