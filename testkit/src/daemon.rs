//! A roomd daemon under test (feature `roomd`): simulators set up for it, its configuration,
//! an in-process start, waits on its status, an xAPI context without a cloud behind it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use roomd::config::Config;
use roomd::hw::board::Board;
use roomd_sim::{SimHandle, SimOptions};

use crate::capture::LogCapture;
use crate::{TIMEOUT, repo_dir};

/// A simulator for a daemon under test, with its state under `dir/sim`.
pub async fn start_sim(dir: &Path) -> SimHandle {
    // Every in-process log of a test goes through the capture (and so to the secret scan).
    LogCapture::global();
    let mut options = SimOptions::new(dir.join("sim"));
    options.scenario.calliope.clusters = SMALL_CALLIOPE.0;
    options.scenario.calliope.silent = SMALL_CALLIOPE.1;
    // As QUIET_MEDIA_NODE: no layers asked for, no streams sent, nothing decoded.
    options.scenario.media.auto_scr = false;
    options.scenario.media.send_streams = false;
    options.scenario.media.decode = false;
    options.scenario.media.send_audio = false;
    roomd_sim::start(options).await.expect("simulator starts")
}

/// Clusters and silent clusters of the sims tests start unless they ask for `[calliope]`:
/// every registered daemon probes them all, and 210 × 3 probes per test (TLS included)
/// would dominate the suite, above all under qemu. `tests/it/reachability.rs` uses the full 210.
const SMALL_CALLIOPE: (u32, u32) = (3, 1);

/// The sim's media node for tests that are not about media: it asks for no layers, sends no
/// streams and decodes nothing, so a call costs a small capture and Opus, not three encoders
/// (above all under qemu). Tests about media put their own `[media]` in the scenario.
const QUIET_MEDIA_NODE: &str =
    "[media]\nauto_scr = false\nsend_streams = false\ndecode = false\nsend_audio = false\n";

/// A configuration for an in-process daemon talking to `sim`, with its files under `dir`.
pub fn config_for(sim: &SimHandle, dir: &Path) -> Config {
    let mut config = Config::default();
    config.device.board_dir = repo_dir().join("board");
    config.device.state_dir = Some(dir.join("state"));
    config.device.runtime_dir = Some(dir.join("run"));
    config.cloud.gds_url = Some(sim.gds_url());
    config.cloud.extra_ca_files = vec![sim.ca_path().to_path_buf()];
    // Parallel daemons must not fight over the default xAPI port.
    config.xapi.listen = vec!["127.0.0.1:0".parse().unwrap()];
    // A small capture: most tests place calls without caring about the pictures.
    config.media.capture_width = 320;
    config.media.capture_height = 180;
    config.media.capture_fps = 15;
    // And a small display: every call composes one, and under qemu-user 720p30 of black
    // background costs a core.
    config.media.display_width = 320;
    config.media.display_height = 180;
    config.media.display_fps = 15;
    config
}

pub fn sim_board() -> Board {
    Board::load(&repo_dir().join("board"), "sim").expect("board/sim.toml loads")
}

/// Writes `config` as `dir/etc/roomd.toml` and returns its path.
pub fn write_config(dir: &Path, config: &Config) -> PathBuf {
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let path = etc.join("roomd.toml");
    std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
    path
}

/// Starts an in-process daemon on board `sim` with `config`.
pub async fn start_daemon(
    config: Config,
    notifier: roomd::platform::systemd::Notifier,
) -> roomd::daemon::Daemon {
    start_daemon_on(config, sim_board(), notifier).await
}

/// Starts an in-process daemon on `board` with `config`.
pub async fn start_daemon_on(
    config: Config,
    board: Board,
    notifier: roomd::platform::systemd::Notifier,
) -> roomd::daemon::Daemon {
    LogCapture::global();
    roomd::daemon::Daemon::start(roomd::daemon::DaemonOptions {
        config,
        board,
        notifier,
        watchdog: None,
    })
    .await
    .expect("daemon starts")
}

/// Waits (bounded) for the next status change and returns the cloud part of it.
pub async fn next_cloud_status(
    status: &mut tokio::sync::watch::Receiver<roomd::status::DeviceStatus>,
) -> roomd::status::CloudHealth {
    tokio::time::timeout(TIMEOUT, status.changed())
        .await
        .expect("status changes in time")
        .expect("daemon alive");
    status.borrow_and_update().cloud.clone()
}

/// The codes the activation tests' scenario knows.
pub const GOOD_CODE: &str = "4353-4500-1234-5678";
pub const NO_TRUST_CODE: &str = "1111-2222-3333-4444";
pub const TAMPER_CODE: &str = "5555-6666-7777-8888";
pub const MITM_CODE: &str = "9999-0000-1111-2222";
pub const EXPIRED_CODE: &str = "2222-3333-4444-5555";

/// A simulator whose scenario has a device for each activation case.
pub async fn start_activation_sim(dir: &Path, extra_toml: &str) -> SimHandle {
    LogCapture::global();
    let calliope = if extra_toml.contains("[calliope]") {
        String::new()
    } else {
        format!(
            "[calliope]\nclusters = {}\nsilent = {}\n",
            SMALL_CALLIOPE.0, SMALL_CALLIOPE.1
        )
    };
    let media = if extra_toml.contains("[media]") {
        ""
    } else {
        QUIET_MEDIA_NODE
    };
    let scenario = roomd_sim::Scenario::from_toml_str(&format!(
        r#"{extra_toml}
{calliope}
{media}
[[devices]]
activation_code = "4353450012345678"
[[devices]]
activation_code = "1111222233334444"
trust_list = false
[[devices]]
activation_code = "5555666677778888"
fault = "tamper-hmac"
[[devices]]
activation_code = "9999000011112222"
fault = "mitm"
[[devices]]
activation_code = "2222333344445555"
expired = true
"#
    ))
    .expect("scenario parses");
    let mut options = SimOptions::new(dir.join("sim"));
    options.scenario = scenario;
    roomd_sim::start(options).await.expect("simulator starts")
}

/// `config_for` plus the activation service URL.
pub fn activation_config(sim: &SimHandle, dir: &Path) -> Config {
    let mut config = config_for(sim, dir);
    config.cloud.activation_url = Some(sim.activation_url());
    config
}

/// Waits (bounded) until `check` holds for the daemon's status.
pub async fn wait_status(
    status: &mut tokio::sync::watch::Receiver<roomd::status::DeviceStatus>,
    what: &str,
    check: impl Fn(&roomd::status::DeviceStatus) -> bool,
) -> roomd::status::DeviceStatus {
    wait_status_within(TIMEOUT, status, what, check).await
}

/// [`wait_status`] with its own bound (paused-time tests wait hours of virtual time).
pub async fn wait_status_within(
    within: Duration,
    status: &mut tokio::sync::watch::Receiver<roomd::status::DeviceStatus>,
    what: &str,
    check: impl Fn(&roomd::status::DeviceStatus) -> bool,
) -> roomd::status::DeviceStatus {
    let wait = async {
        loop {
            {
                let current = status.borrow_and_update();
                if check(&current) {
                    return current.clone();
                }
            }
            status.changed().await.expect("daemon alive");
        }
    };
    match tokio::time::timeout(within, wait).await {
        Ok(found) => found,
        Err(_) => panic!("status never reached: {what}; last: {:?}", *status.borrow()),
    }
}

/// A simulator and an in-process daemon activated with [`GOOD_CODE`] and registered.
/// `extra_toml` goes into the sim's scenario; `tweak` adjusts the daemon's configuration.
pub async fn registered_daemon(
    dir: &Path,
    extra_toml: &str,
    tweak: impl FnOnce(&mut Config),
) -> (
    SimHandle,
    roomd::daemon::Daemon,
    tokio::sync::watch::Receiver<roomd::status::DeviceStatus>,
) {
    registered_daemon_on(dir, extra_toml, tweak, sim_board()).await
}

/// [`registered_daemon`] on `board`.
pub async fn registered_daemon_on(
    dir: &Path,
    extra_toml: &str,
    tweak: impl FnOnce(&mut Config),
    board: Board,
) -> (
    SimHandle,
    roomd::daemon::Daemon,
    tokio::sync::watch::Receiver<roomd::status::DeviceStatus>,
) {
    let sim = start_activation_sim(dir, extra_toml).await;
    let mut config = activation_config(&sim, dir);
    if !extra_toml.contains("[media]") {
        // As the quiet media node: a test not about media composes no display and runs no
        // echo canceller in its calls (under qemu-user they cost a core between them).
        config.media.receive = false;
        config.media.echo_cancellation = false;
    }
    tweak(&mut config);
    let daemon = start_daemon_on(
        config,
        board,
        roomd::platform::systemd::Notifier::disabled(),
    )
    .await;
    let mut status = daemon.status();
    let code = roomd::activation::code::ActivationCode::parse(GOOD_CODE).unwrap();
    daemon.session().activate(code).await.expect("activation");
    wait_status(&mut status, "registered", |s| s.is_registered()).await;
    (sim, daemon, status)
}

/// Waits until call control can be used end to end: the Locus service is known and the event
/// socket is online (Locus events reach only an online socket).
pub async fn wait_call_control(
    status: &mut tokio::sync::watch::Receiver<roomd::status::DeviceStatus>,
) {
    wait_status(status, "call control available, event socket online", |s| {
        s.calls.available && s.websocket.state == roomd::cloud::mercury::WsState::Online
    })
    .await;
}

/// A dial request for `number` from the tests.
pub fn dial_request(number: &str) -> roomd::room::DialRequest {
    roomd::room::DialRequest {
        number: Some(number.into()),
        booking_id: None,
        source: "test".into(),
    }
}

/// Dials `number` once call control is up and waits (at most `within`) for the call's media
/// session; returns the status that has it.
pub async fn dial_until_media(
    daemon: &roomd::daemon::Daemon,
    status: &mut tokio::sync::watch::Receiver<roomd::status::DeviceStatus>,
    number: &str,
    within: std::time::Duration,
) -> roomd::status::DeviceStatus {
    wait_call_control(status).await;
    daemon
        .room()
        .dial(dial_request(number))
        .await
        .expect("dial");
    wait_status_within(within, status, "the call's media session", |s| {
        s.media.session.is_some()
    })
    .await
}

/// An xAPI context over `state` with a detached room (no cloud session behind it) and a fresh
/// device status, whose sender is returned too.
pub fn detached_xapi_context(
    state: roomd::store::StateDir,
    max_sessions: usize,
) -> (
    roomd::api::xapi::XapiContext,
    tokio::sync::watch::Sender<roomd::status::DeviceStatus>,
) {
    use roomd::status::DeviceStatus;
    let (bookings, _) = roomd::bookings::store::BookingsStore::open(&state, 300);
    let (status, _) = tokio::sync::watch::channel(DeviceStatus::new("sim", "https://gds.invalid"));
    let (commands, _) = tokio::sync::mpsc::channel(1);
    let ctx = roomd::api::xapi::XapiContext::new(
        roomd::api::xapi::commands::Backends {
            room: roomd::room::Room::new(
                tokio::sync::watch::channel(roomd::media::RoomControls::default()).0,
                status.clone(),
                bookings.clone(),
                roomd::calls::Calls::detached(),
            ),
            bookings,
            session: roomd::session::SessionHandle::new(commands),
        },
        status.clone(),
        tokio::sync::watch::channel(roomd::api::xapi::document::Configuration::default()).0,
        state,
        std::time::Instant::now(),
        max_sessions,
    );
    (ctx, status)
}
