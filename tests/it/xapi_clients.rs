//! Real clients against a registered in-process roomd: the `jsxapi` npm package (v6) and the
//! touch panel in headless Chromium (playwright-core). The Node scripts in `tests/node` print
//! one JSON line per step; this harness starts the simulator and roomd, runs them, and checks
//! roomd's side (the dial reached roomd's dial path).
//!
//! `make test` installs Node, Chromium and `tests/node/node_modules` (`scripts/deps.sh npm`).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use roomd::api::xapi::auth::set_password;
use roomd::store::StateDir;
use serde_json::Value;
use support::{LogCapture, wait_status};
use tokio::io::AsyncBufReadExt;

const ADMIN_PASSWORD: &str = "jsxapi-admin-pw";
const PANEL_PASSWORD: &str = "panel pw & more";

/// A booking that is not joinable for a long while, so the lists are never empty.
const SCENARIO: &str = r#"bookings = [{ title = "Later sync", start_in_mins = 90, webex_uri = "later@webex.sim.invalid" }]"#;

fn node_dir() -> PathBuf {
    support::repo_dir().join("tests/node")
}

fn require_node_modules() {
    assert!(
        node_dir().join("node_modules/jsxapi").is_dir()
            && node_dir().join("node_modules/playwright-core").is_dir(),
        "tests/node/node_modules is missing: run `scripts/deps.sh npm` (make test does)"
    );
}

/// Runs a Node test script; returns its step lines, failing with all of them on a bad exit.
async fn run_node(script: &str, env: &[(&str, String)]) -> Vec<Value> {
    let mut command = tokio::process::Command::new("node");
    command
        .arg(node_dir().join(script))
        .current_dir(node_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("node runs (make test installs it)");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut steps = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            eprintln!("{script}: {line}");
            if let Ok(step) = serde_json::from_str::<Value>(&line) {
                steps.push(step);
            }
        }
        child.wait().await.unwrap()
    };
    // The scripts bound themselves (90 s / 120 s); this is the outer guard.
    let status = tokio::time::timeout(std::time::Duration::from_secs(180), read)
        .await
        .expect("the node script finishes");
    assert!(status.success(), "{script} failed ({status}): {steps:#?}");
    steps
}

fn step<'a>(steps: &'a [Value], name: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {steps:#?}"))
}

async fn registered(dir: &Path) -> (roomd_sim::SimHandle, roomd::daemon::Daemon, String) {
    let (sim, daemon, mut status) = support::registered_daemon(dir, SCENARIO, |_| {}).await;
    let state = StateDir::open(dir.join("state")).unwrap();
    set_password(&state, "admin", ADMIN_PASSWORD).unwrap();
    set_password(&state, "touchpanel", PANEL_PASSWORD).unwrap();
    wait_status(&mut status, "bookings filed", |s| s.bookings.count >= 1).await;
    let base = daemon.xapi_urls()[0]
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_owned();
    (sim, daemon, base)
}

#[tokio::test]
async fn jsxapi_client_drives_the_xapi() {
    LogCapture::global();
    require_node_modules();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, base) = registered(dir.path()).await;
    let steps = run_node(
        "jsxapi_client.mjs",
        &[
            ("ROOMD_XAPI_URL", format!("ws://{base}")),
            ("ROOMD_XAPI_USER", "admin".into()),
            ("ROOMD_XAPI_PASSWORD", ADMIN_PASSWORD.into()),
            ("ROOMD_SIM_ADMIN", sim.admin_url()),
        ],
    )
    .await;
    for name in [
        "bad_credentials",
        "connect",
        "status_get",
        "bookings_list",
        "volume_feedback",
        "start_time_buffer_event",
        "dial_booking",
        "call_disconnect",
        "close",
    ] {
        assert_eq!(step(&steps, name)["ok"], true, "{name}");
    }
    let dial = step(&steps, "dial_booking");
    assert_eq!(dial["outcome"], "result", "{dial}");
    let call_id = dial["callId"].as_u64().expect("Dial answers a CallId") as u32;
    let hung_up = step(&steps, "call_disconnect");
    assert_eq!(hung_up["status"], "Connected");
    assert_eq!(hung_up["causeType"], "LocalDisconnect");
    // roomd's side: the dial of that booking reached the dial path.
    let status = daemon.status().borrow().clone();
    let last = status.calls.last_dial.expect("a dial was recorded");
    assert_eq!(last.booking_id.as_deref(), dial["bookingId"].as_str());
    assert_eq!(last.source, "xapi:admin");
    assert!(last.number.contains("webex.sim.invalid"), "{}", last.number);
    let ended = status
        .calls
        .ended
        .iter()
        .find(|c| c.id == call_id)
        .expect("the dialled call ended in roomd");
    assert_eq!(ended.remote_number, last.number);
    assert_eq!(ended.end_cause.as_deref(), Some("LocalDisconnect"));
    let level = step(&steps, "volume_feedback")["level"].as_u64();
    assert_eq!(level, Some(u64::from(status.controls.volume)));
    assert!(LogCapture::global().contains("xAPI login refused for user \"admin\""));
}

#[tokio::test]
async fn touch_panel_join_button_dials_the_booking() {
    LogCapture::global();
    if cfg!(target_arch = "aarch64") {
        eprintln!(
            "skipped: the browser test runs in the native pass (Chromium is an x86-64 host binary)"
        );
        return;
    }
    require_node_modules();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, base) = registered(dir.path()).await;
    let artefacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("touch-panel");
    let password: String = PANEL_PASSWORD
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    let steps = run_node(
        "touch_panel.mjs",
        &[
            (
                "ROOMD_TOUCH_URL",
                format!("http://{base}/touch#user=touchpanel&password={password}"),
            ),
            ("ROOMD_SIM_ADMIN", sim.admin_url()),
            ("ROOMD_ARTEFACT_DIR", artefacts.display().to_string()),
        ],
    )
    .await;
    let join = step(&steps, "join");
    let booking = join["bookingId"].as_str().expect("the joined booking");
    let status = daemon.status().borrow().clone();
    let last = status
        .calls
        .last_dial
        .expect("the Join press reached roomd's dial path");
    assert_eq!(last.booking_id.as_deref(), Some(booking));
    assert_eq!(last.source, "xapi:touchpanel");
    // The panel showed the call and its Leave button hung it up.
    assert_eq!(step(&steps, "in_call")["ok"], true);
    let ended = status.calls.ended.last().expect("the joined call ended");
    assert_eq!(ended.remote_number, last.number);
    assert_eq!(ended.end_cause.as_deref(), Some("LocalDisconnect"));
    // Standby from the panel, and a touch on it woke the room again.
    assert_eq!(step(&steps, "standby")["ok"], true);
    assert!(
        !daemon.status().borrow().controls.standby,
        "awake after the touch"
    );
    assert!(
        artefacts.join("touch-panel.png").is_file(),
        "screenshot saved"
    );
    eprintln!("screenshots in {}", artefacts.display());
}
