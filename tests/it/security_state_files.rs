//! State files stay private (docs/security.md): after activation, registration, a calendar
//! catch-up, xAPI passwords and the xAPI device certificate, after a token refresh, and after
//! a restart as the real `roomd run` binary, every file roomd wrote under its state directory
//! is 0600 and every directory 0700 (the whole tree is walked, not a list of names); the
//! runtime directory holds only the control socket (0660, for group roomd); and roomd writes
//! nothing into its configuration directory.

use crate::support;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use roomd::api::control::{self, ControlRequest, ControlResponse};
use roomd::api::xapi::auth::USERS_FILE;
use roomd::api::xapi::{CERT_FILE, KEY_FILE};
use roomd::bookings::cache::{CACHE_FILE, TEXT_FILE};
use roomd::cloud::mercury::WsState;
use roomd::store::credentials::CREDENTIALS_FILE;
use support::*;

const BOOKING: &str = r#"
[[bookings]]
title = "Security review"
start_in_mins = 30
webex_uri = "review@webex.sim.invalid"
"#;
const ADMIN_PASSWORD: &str = "state-files-admin";

/// Every entry under `root` (itself included), by path, with its type and permission bits.
fn walk(root: &Path) -> BTreeMap<PathBuf, (std::fs::FileType, u32)> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        // Not followed: a symlink is reported as one.
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        }
        found.insert(path, (meta.file_type(), meta.permissions().mode() & 0o7777));
    }
    found
}

/// The state directory: directories 0700, regular files 0600, nothing else; `expected` files
/// among them (so the walk is known to have seen roomd's files).
fn assert_state_private(state: &Path, when: &str, expected: &[&str]) {
    let entries = walk(state);
    let wrong: Vec<String> = entries
        .iter()
        .filter_map(|(path, (kind, mode))| {
            let fine = if kind.is_dir() {
                *mode == 0o700
            } else {
                kind.is_file() && *mode == 0o600
            };
            (!fine).then(|| format!("{} ({kind:?}, {mode:04o})", path.display()))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{when}: state entries that are not 0700 directories or 0600 files:\n{}",
        wrong.join("\n")
    );
    for name in expected {
        assert!(
            entries.contains_key(&state.join(name)),
            "{when}: {name} missing from the state directory: {:?}",
            entries.keys().collect::<Vec<_>>()
        );
    }
    println!(
        "{when}: {} entries under {}, all private",
        entries.len(),
        state.display()
    );
}

/// The runtime directory: the control socket (0660: group roomd may use it) and nothing else.
fn assert_runtime_holds_only_the_socket(runtime: &Path, when: &str) {
    let entries = walk(runtime);
    let inside: Vec<_> = entries
        .iter()
        .filter(|(path, _)| *path != runtime)
        .collect();
    assert_eq!(
        inside.len(),
        1,
        "{when}: runtime directory holds {inside:?}"
    );
    let (path, (kind, mode)) = inside[0];
    assert!(
        path.ends_with("control.sock") && kind.is_socket(),
        "{when}: {path:?}"
    );
    assert_eq!(*mode, 0o660, "{when}: control socket mode");
}

fn state_files() -> Vec<&'static str> {
    vec![
        CREDENTIALS_FILE,
        CACHE_FILE,
        TEXT_FILE,
        USERS_FILE,
        CERT_FILE,
        KEY_FILE,
    ]
}

#[tokio::test]
async fn every_state_file_is_0600_in_0700_directories_through_refresh_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_activation_sim(dir.path(), BOOKING).await;
    let mut config = activation_config(&sim, dir.path());
    // A second listener on an address std does not call loopback, so it serves TLS with the
    // device certificate roomd generates (and stores) on first start; on Linux the
    // IPv4-mapped loopback address is reachable from this host only.
    config.xapi.listen = vec![
        "127.0.0.1:0".parse().unwrap(),
        "[::ffff:127.0.0.1]:0".parse().unwrap(),
    ];
    // A registration refresh every second: the request that meets the expired token below.
    config.cloud.registration_refresh_secs = 1;
    let state = config.state_dir();
    let runtime = config.runtime_dir();
    let socket = config.control_socket();
    let daemon = start_daemon(
        config.clone(),
        roomd::platform::systemd::Notifier::disabled(),
    )
    .await;
    let mut status = daemon.status();
    let code = roomd::activation::code::ActivationCode::parse(GOOD_CODE).unwrap();
    daemon.session().activate(code).await.expect("activation");
    wait_status(
        &mut status,
        "registered, online, caught up with the booking",
        |s| {
            s.registration.state == roomd::status::RegistrationState::Registered
                && s.websocket.state == WsState::Online
                && s.bookings.catch_ups >= 1
                && s.bookings.count == 1
        },
    )
    .await;
    let answer = control::request(
        &socket,
        &ControlRequest::Passwd {
            user: "admin".into(),
            password: roomd::secret::Secret::new(ADMIN_PASSWORD.into()),
        },
    )
    .await
    .unwrap();
    assert!(matches!(answer, ControlResponse::Done { .. }), "{answer:?}");
    let url = daemon.xapi_urls()[0].clone();
    assert!(xapi_connect(&url, "admin", ADMIN_PASSWORD).await.is_ok());
    assert_state_private(&state, "registered", &state_files());
    assert_runtime_holds_only_the_socket(&runtime, "registered");

    // A token refresh rewrites the credentials.
    sim.expire_access_tokens();
    wait_status(&mut status, "access token refreshed", |s| {
        s.registration.token_refreshes >= 1
    })
    .await;
    assert_state_private(&state, "after a token refresh", &state_files());
    daemon.run_until(async {}).await.unwrap();

    // Restart as the product binary (its own umask and start-up path) on the same state.
    let path = write_config(dir.path(), &config);
    let etc_before = walk(path.parent().unwrap());
    let systemd = FakeSystemd::bind(dir.path());
    let mut systemd = systemd;
    let child = spawn_roomd_run(&path, &systemd);
    systemd.wait_for("STATUS=registered").await;
    let out = tokio::task::spawn_blocking({
        let path = path.clone();
        move || {
            roomd_command()
                .args(["status", "--json", "--config"])
                .arg(path)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_state_private(&state, "after a restart as `roomd run`", &state_files());
    assert_runtime_holds_only_the_socket(&runtime, "after a restart as `roomd run`");
    assert_eq!(
        walk(path.parent().unwrap()),
        etc_before,
        "roomd wrote into its configuration directory"
    );
    drop(child);
    sim.shutdown().await;
}
