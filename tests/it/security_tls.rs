//! TLS verification cannot be turned off outside activation (docs/security.md): no
//! configuration key, environment variable or command-line flag does it, the code builds an
//! unverified client in one place only (activation, where SRP authenticates both ends), and a
//! server whose certificate is not trusted is refused by every client roomd has (discovery,
//! registration, event socket, calendar, Meeting Server) with a logged error, while the daemon
//! keeps running. The untrusted server (`support::untrusted_tls`) proves no request crossed.

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;

use roomd::cloud::mercury::WsState;
use roomd::config::{ConfigError, MeetingServerConfig};
use roomd::platform::systemd::Notifier;
use roomd::status::CloudState;
use roomd_sim::{Fault, SimHandle};
use serde_json::{Value, json};
use support::untrusted_tls::{TlsSeen, UntrustedTlsServer};
use support::*;

/// Words a setting that weakens certificate checks would carry in its name.
const WEAKENING: [&str; 9] = [
    "insecure",
    "verify",
    "danger",
    "invalid_cert",
    "skip_cert",
    "no_tls",
    "accept_any",
    "trust_all",
    "self_signed",
];

fn config_error(dir: &Path, text: &str) -> String {
    let path = dir.join("roomd.toml");
    std::fs::write(&path, text).unwrap();
    match roomd::config::load(&path, true) {
        Err(e @ ConfigError::Invalid { .. }) => e.to_string(),
        other => panic!("{text:?} was not refused as invalid: {other:?}"),
    }
}

/// The keys serde lists after "expected one of" in an unknown-key error.
fn expected_keys(message: &str) -> Vec<String> {
    let list = message
        .split_once("expected one of ")
        .map_or(message, |(_, list)| list);
    list.split(", ")
        .map(|k| k.trim().trim_matches('`').to_owned())
        .filter(|k| !k.is_empty())
        .collect()
}

#[test]
fn no_configuration_key_turns_verification_off() {
    let dir = tempfile::tempdir().unwrap();
    // The whole schema, read from the loader's own unknown-key errors: every table, then
    // every key of each; none is a switch for certificate checks.
    let tables = expected_keys(&config_error(dir.path(), "no_such_table = 1\n"));
    assert!(tables.contains(&"cloud".to_owned()), "{tables:?}");
    let mut keys = BTreeSet::new();
    for table in &tables {
        let message = config_error(dir.path(), &format!("[{table}]\nno_such_key = 1\n"));
        if message.contains("expected one of") {
            for key in expected_keys(&message) {
                keys.insert(format!("{table}.{key}"));
            }
        }
    }
    assert!(keys.contains("cloud.extra_ca_files"), "{keys:?}");
    assert!(keys.contains("meeting_server.ca_file"), "{keys:?}");
    let weakening: Vec<&String> = keys
        .iter()
        .filter(|k| WEAKENING.iter().any(|w| k.contains(w)))
        .collect();
    assert!(
        weakening.is_empty(),
        "keys that look like a way around certificate checks: {weakening:?}"
    );
    println!("{} tables, {} keys checked", tables.len(), keys.len());

    // Such keys, where one would look for them, are refused, naming file, line and key.
    for (table, key) in [
        ("cloud", "insecure = true"),
        ("cloud", "verify_tls = false"),
        ("cloud", "danger_accept_invalid_certs = true"),
        ("meeting_server", "verify_certificate = false"),
        ("tls", "verify = false"),
    ] {
        let message = config_error(dir.path(), &format!("[{table}]\n{key}\n"));
        let name = key.split(' ').next().unwrap();
        let known_table = tables.contains(&table.to_owned());
        let expected = if known_table {
            format!("roomd.toml:2:1: unknown key `{name}` in [{table}]")
        } else {
            format!("roomd.toml:1:2: unknown key `{table}`")
        };
        assert!(message.contains(&expected), "{message}");
    }
}

/// A configuration for `roomd check` against the simulator without its CA.
fn untrusting_config(sim: &SimHandle, dir: &Path) -> std::path::PathBuf {
    let mut config = config_for(sim, dir);
    config.cloud.extra_ca_files.clear();
    write_config(dir, &config)
}

#[tokio::test]
async fn no_environment_variable_or_flag_turns_verification_off() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let path = untrusting_config(&sim, dir.path());
    let key_log = dir.path().join("tls-keys.log");
    let mut check = roomd_command();
    check.arg("check").arg("--config").arg(&path);
    // What other TLS stacks honour: extra CA files, "don't verify" switches, key logging.
    let ca = sim.ca_path();
    for (name, value) in [
        ("SSL_CERT_FILE", ca.as_os_str()),
        ("SSL_CERT_DIR", ca.parent().unwrap().as_os_str()),
        ("CURL_CA_BUNDLE", ca.as_os_str()),
        ("REQUESTS_CA_BUNDLE", ca.as_os_str()),
        ("SSLKEYLOGFILE", key_log.as_os_str()),
        ("NODE_TLS_REJECT_UNAUTHORIZED", "0".as_ref()),
        ("ROOMD_INSECURE", "1".as_ref()),
        ("ROOMD_TLS_VERIFY", "0".as_ref()),
    ] {
        check.env(name, value);
    }
    let out = tokio::task::spawn_blocking(move || check.output().unwrap())
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let gds = report
        .lines()
        .find(|l| l.contains("GDS"))
        .unwrap_or_else(|| panic!("no GDS line: {report}"));
    assert!(
        gds.contains("FAIL:") && gds.contains("not trusted"),
        "{gds}"
    );
    assert!(!key_log.exists(), "TLS keys were logged to SSLKEYLOGFILE");
    assert!(sim.received().is_empty(), "a request reached the simulator");

    for flag in [
        "--insecure",
        "--no-verify",
        "--danger-accept-invalid-certs",
        "-k",
    ] {
        for sub in ["run", "check"] {
            let out = roomd_command()
                .args([sub, flag, "--config"])
                .arg(&path)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "roomd {sub} {flag}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&format!("unexpected argument '{flag}'")),
                "roomd {sub} {flag}: {stderr}"
            );
        }
    }
    sim.shutdown().await;
}

/// Outside `src/net/tls.rs`, which defines it, the unverified client is reached from
/// activation only; nothing else turns rustls' checks off or logs TLS keys.
#[test]
fn verification_is_turned_off_in_the_activation_client_only() {
    let allowed: BTreeSet<(&str, &str)> = [
        ("src/net/tls.rs", ".dangerous()"),
        ("src/net/tls.rs", "with_custom_certificate_verifier"),
        ("src/net/tls.rs", "unverified_client_config"),
        ("src/net/tls.rs", "ServerCertVerifier"),
        ("src/net/http.rs", "unverified_client_config"),
        ("src/net/http.rs", "unverified_for_activation"),
        ("src/session/activation.rs", "unverified_for_activation"),
    ]
    .into_iter()
    .collect();
    let needles = [
        ".dangerous()",
        "with_custom_certificate_verifier",
        "unverified_client_config",
        "unverified_for_activation",
        "ServerCertVerifier",
        "KeyLogFile",
        "key_log",
        "danger_accept_invalid",
    ];
    let mut found = BTreeSet::new();
    let mut pending = vec![repo_dir().join("src")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let relative = path
                .strip_prefix(repo_dir())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for needle in needles {
                    if line.contains(needle) {
                        found.insert((relative.clone(), needle));
                    }
                }
            }
        }
    }
    let unexpected: Vec<_> = found
        .iter()
        .filter(|(file, needle)| !allowed.contains(&(file.as_str(), *needle)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "certificate checks turned off (or keys logged) outside activation: {unexpected:?}"
    );
    // The one call outside the TLS module is the activation client.
    let session = std::fs::read_to_string(repo_dir().join("src/session/activation.rs")).unwrap();
    let calls: Vec<&str> = session
        .lines()
        .filter(|l| l.contains("unverified_for_activation"))
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
}

/// Asserts the untrusted server saw handshakes refused and nothing else.
fn assert_refused(seen: &TlsSeen, what: &str) {
    assert_eq!(
        (seen.completed, seen.request_bytes),
        (0, 0),
        "{what}: a handshake with the untrusted server completed: {seen:?}"
    );
    let error = seen.last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("alert"),
        "{what}: the client should have sent a TLS alert: {seen:?}"
    );
}

#[tokio::test]
async fn discovery_refuses_an_untrusted_server_and_the_daemon_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let untrusted = UntrustedTlsServer::start().await;
    let mut config = config_for(&sim, dir.path());
    config.cloud.gds_url = Some(format!("{}/gds", untrusted.base_url()));
    config.cloud.retry_initial_ms = 50;
    config.cloud.retry_max_secs = 1;
    let socket = config.control_socket();
    let daemon = start_daemon(config, Notifier::disabled()).await;
    let mut status = daemon.status();
    let unreachable = wait_status(&mut status, "discovery unreachable, retried", |s| {
        s.cloud.state == CloudState::Unreachable && s.cloud.failures >= 2
    })
    .await;
    assert_eq!(unreachable.cloud.detail, "certificate not trusted");
    assert_refused(&untrusted.wait_refusals(2).await, "GDS");
    let logged = format!(
        "TLS certificate of {}/gds/health is not trusted",
        untrusted.base_url()
    );
    assert!(
        LogCapture::global().contains(&logged),
        "no log line with {logged:?}"
    );
    // Still running: it answers on its control socket.
    let answer =
        roomd::api::control::request(&socket, &roomd::api::control::ControlRequest::Status)
            .await
            .expect("the daemon answers");
    assert!(format!("{answer:?}").contains("Unreachable"), "{answer:?}");
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

/// A U2C hostmap (wire profile §2) in which `untrusted` serves the services in `moved` and the
/// simulator's proxy listener the rest.
fn hostmap(sim: &SimHandle, untrusted: &UntrustedTlsServer, moved: &[&str]) -> Value {
    let services = [
        ("wdm", "/wdm/api/v1"),
        ("identity", "/identity"),
        ("calendar", "/calendar/api/v1"),
        ("locus", "/locus/api/v1"),
        ("kms", "/kms"),
        ("calliope", "/calliope"),
        ("u2c", "/u2c"),
    ];
    let mut links = serde_json::Map::new();
    let mut hosts = serde_json::Map::new();
    for (name, path) in services {
        let logical = format!("{name}.untrusted-test.invalid");
        let port = if moved.contains(&name) {
            untrusted.port()
        } else {
            sim.proxy_addr().port()
        };
        links.insert(name.into(), json!(format!("https://{logical}{path}")));
        hosts.insert(
            logical,
            json!([{ "host": format!("localhost:{port}"), "ttl": -1, "priority": 1,
                     "id": format!("urn:TEAM:test:{name}") }]),
        );
    }
    json!({ "serviceLinks": links, "hostCatalog": hosts, "format": "hostmap" })
}

fn always(path: &str, method: &str, body: Value) -> Fault {
    Fault {
        path: path.into(),
        method: Some(method.into()),
        status: 200,
        count: 10_000,
        retry_after: None,
        body: Some(body),
    }
}

/// Starts an activation-ready daemon, arms `faults`, activates; returns once activated.
async fn activated_with(
    dir: &Path,
    faults: impl FnOnce(&SimHandle) -> Vec<Fault>,
) -> (
    SimHandle,
    roomd::daemon::Daemon,
    tokio::sync::watch::Receiver<roomd::status::DeviceStatus>,
) {
    let sim = start_activation_sim(dir, "").await;
    for fault in faults(&sim) {
        sim.arm_fault(fault).unwrap();
    }
    let mut config = activation_config(&sim, dir);
    config.cloud.retry_initial_ms = 50;
    config.cloud.retry_max_secs = 1;
    config.websocket.backoff_initial_ms = 50;
    config.websocket.backoff_max_secs = 1;
    let daemon = start_daemon(config, Notifier::disabled()).await;
    let status = daemon.status();
    let code = roomd::activation::code::ActivationCode::parse(GOOD_CODE).unwrap();
    // Activation itself is the exception: its TLS is not verified (SRP is).
    daemon.session().activate(code).await.expect("activation");
    (sim, daemon, status)
}

#[tokio::test]
async fn registration_refuses_an_untrusted_service_host() {
    let dir = tempfile::tempdir().unwrap();
    let untrusted = UntrustedTlsServer::start().await;
    let (sim, daemon, mut status) = activated_with(dir.path(), |sim| {
        vec![always(
            "/u2c/catalog",
            "GET",
            hostmap(sim, &untrusted, &["wdm"]),
        )]
    })
    .await;
    let failing = wait_status(
        &mut status,
        "registration failing on the untrusted host",
        |s| {
            s.registration
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("not trusted"))
        },
    )
    .await;
    assert!(!failing.is_registered());
    assert_refused(&untrusted.wait_refusals(2).await, "WDM");
    assert!(
        !sim.received().iter().any(|r| r.path.starts_with("/wdm/")),
        "nothing went to the real WDM either"
    );
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn the_event_socket_and_the_calendar_refuse_untrusted_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let socket_host = UntrustedTlsServer::start().await;
    let calendar_host = UntrustedTlsServer::start().await;
    let (sim, daemon, mut status) = activated_with(dir.path(), |sim| {
        let device = json!({
            "url": format!("https://localhost:{}/wdm/api/v1/devices/untrusted-test", sim.proxy_addr().port()),
            "webSocketUrl": format!("wss://localhost:{}/mercury/registrations/untrusted-test/messages", socket_host.port()),
            "userId": "untrusted-test-user",
            "orgId": roomd_sim::DEFAULT_ORG_ID,
            "features": { "developer": [], "entitlement": [], "user": [] },
        });
        vec![
            always("/u2c/catalog", "GET", hostmap(sim, &calendar_host, &["calendar", "kms"])),
            always("/wdm/api/v1/devices", "POST", device),
        ]
    })
    .await;
    let authority = format!("localhost:{}", socket_host.port());
    let now = wait_status(
        &mut status,
        "registered; event socket and calendar failing",
        |s| {
            s.registration.state == roomd::status::RegistrationState::Registered
                && s.websocket
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.contains(&authority))
                && s.websocket.connects == 0
                && matches!(
                    s.bookings.catch_up,
                    roomd::bookings::CatchUpState::Failed { .. }
                )
        },
    )
    .await;
    assert_ne!(now.websocket.state, WsState::Online);
    let detail = now.websocket.detail.clone().unwrap_or_default();
    assert!(detail.contains("invalid peer certificate"), "{detail}");
    assert_refused(&socket_host.wait_refusals(2).await, "event socket");
    assert_refused(&calendar_host.wait_refusals(1).await, "calendar");
    let calendar_logged = format!(
        "TLS certificate of https://localhost:{}/",
        calendar_host.port()
    );
    assert!(
        LogCapture::global().contains(&calendar_logged),
        "no log line with {calendar_logged:?}"
    );
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn the_meeting_server_is_refused_without_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let credentials = dir.path().join("cms-credentials");
    std::fs::write(&credentials, "roomd:roomd-secret\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut config = config_for(&sim, dir.path());
    // The cloud CA is trusted, the Meeting Server's own CA (meeting_server.ca_file) is not.
    config.meeting_server = Some(MeetingServerConfig {
        base_url: sim.meeting_server_url(),
        credentials_file: credentials,
        ca_file: None,
        client_cert_file: None,
        client_key_file: None,
        inactivity_timeout_secs: 60,
    });
    let daemon = start_daemon(config, Notifier::disabled()).await;
    let mut status = daemon.status();
    let refused = wait_status(&mut status, "Meeting Server refused", |s| {
        s.meeting_server.as_ref().is_some_and(|m| {
            m.detail
                .as_deref()
                .is_some_and(|d| d.contains("not trusted"))
        })
    })
    .await;
    assert_ne!(
        refused.meeting_server.unwrap().state,
        roomd::meeting_server::ConnectionState::Connected
    );
    assert!(
        sim.meeting_server().connections.is_empty(),
        "no events socket was opened"
    );
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}
