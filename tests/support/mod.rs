//! Shared helpers for integration tests: a simulator on port 0, a daemon configuration
//! pointing at it, a fake systemd notify socket, and a log capture.

#![allow(dead_code)]

pub mod log_scan;
pub mod test_run;
pub mod untrusted_tls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roomd::config::Config;
use roomd::hw::board::Board;
use roomd_sim::{SimHandle, SimOptions};
use tokio::net::UnixDatagram;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

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
    roomd_sim::start(options).await.expect("simulator starts")
}

/// Clusters and silent clusters of the sims tests start unless they ask for `[calliope]`:
/// every registered daemon probes them all, and 210 × 3 probes per test (TLS included)
/// would dominate the suite, above all under qemu. `tests/reachability.rs` uses the full 210.
pub const SMALL_CALLIOPE: (u32, u32) = (3, 1);

/// The sim's media node for tests that are not about media: it asks for no layers, sends no
/// streams and decodes nothing, so a call costs a small capture and Opus, not three encoders
/// (above all under qemu). Tests about media put their own `[media]` in the scenario.
pub const QUIET_MEDIA_NODE: &str =
    "[media]\nauto_scr = false\nsend_streams = false\ndecode = false\n";

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
    config
}

pub fn sim_board() -> Board {
    Board::load(&repo_dir().join("board"), "sim").expect("board/sim.toml loads")
}

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`.
pub struct FakeSystemd {
    pub path: PathBuf,
    socket: UnixDatagram,
    pub seen: Vec<String>,
}

impl FakeSystemd {
    pub fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        Self {
            path,
            socket,
            seen: Vec::new(),
        }
    }

    /// Waits for a datagram containing `needle`; returns that datagram.
    pub async fn wait_for(&mut self, needle: &str) -> String {
        let wait = async {
            let mut buf = vec![0u8; 4096];
            loop {
                let n = self.socket.recv(&mut buf).await.expect("recv notify");
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(text.clone());
                if text.contains(needle) {
                    return text;
                }
            }
        };
        tokio::time::timeout(TIMEOUT, wait)
            .await
            .unwrap_or_else(|_| panic!("no notification with {needle:?}; saw {:?}", self.seen))
    }
}

/// One captured event: its level, message and fields, and the `roomd_event` values of the
/// spans it was emitted in.
#[derive(Debug, Clone)]
pub struct CapturedEvent {
    pub target: String,
    pub level: tracing::Level,
    pub text: String,
    pub subsystems: Vec<String>,
}

#[derive(Clone, Default)]
pub struct LogCapture {
    pub events: Arc<Mutex<Vec<CapturedEvent>>>,
    /// Where every event and span also goes as a line, for the secret scan (`test_run`).
    pub sink: Option<test_run::LineSink>,
}

struct SpanSubsystem(String);

#[derive(Default)]
struct TextVisitor {
    text: String,
    roomd_event: Option<String>,
}

impl Visit for TextVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "roomd_event" {
            self.roomd_event = Some(value.to_string());
        }
        self.text.push_str(&format!(" {}={}", field.name(), value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text
            .push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl<S> tracing_subscriber::Layer<S> for LogCapture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut visitor = TextVisitor::default();
        attrs.record(&mut visitor);
        if let Some(sink) = &self.sink {
            let meta = attrs.metadata();
            sink.line(&format!(
                "{} {} span {}:{}",
                meta.level(),
                meta.target(),
                meta.name(),
                visitor.text
            ));
        }
        if let (Some(span), Some(subsystem)) = (ctx.span(id), visitor.roomd_event) {
            span.extensions_mut().insert(SpanSubsystem(subsystem));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let (Some(sink), Some(span)) = (&self.sink, ctx.span(id)) {
            let mut visitor = TextVisitor::default();
            values.record(&mut visitor);
            sink.line(&format!(
                "{} {} span {} record:{}",
                span.metadata().level(),
                span.metadata().target(),
                span.name(),
                visitor.text
            ));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut visitor = TextVisitor::default();
        event.record(&mut visitor);
        let subsystems = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .filter_map(|span| {
                        span.extensions()
                            .get::<SpanSubsystem>()
                            .map(|s| s.0.clone())
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(sink) = &self.sink {
            sink.line(&format!(
                "{} {} {:?}:{}",
                event.metadata().level(),
                event.metadata().target(),
                subsystems,
                visitor.text
            ));
        }
        self.events.lock().unwrap().push(CapturedEvent {
            target: event.metadata().target().to_string(),
            level: *event.metadata().level(),
            text: visitor.text,
            subsystems,
        });
    }
}

/// Everything at `trace`, except tungstenite's frame dumps: at `trace` it prints every
/// WebSocket frame and handshake request whole, bearer tokens and xAPI credentials included
/// (mercury's authorization frame, the auth subprotocol), and would be most of the log.
/// roomd itself keeps dependencies at `warn` unless `RUST_LOG` says otherwise (docs/security.md).
pub const CAPTURE_FILTER: &str = "trace,tungstenite=debug,tokio_tungstenite=debug";

impl LogCapture {
    /// The process-wide capture, installed as the global subscriber on first use. (A
    /// per-thread default misses events when other tests of the binary race it in
    /// tracing's callsite cache, so every test of a binary shares this one.)
    pub fn global() -> &'static LogCapture {
        static CAPTURE: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
        CAPTURE.get_or_init(|| {
            let capture = LogCapture {
                sink: test_run::in_process_log(),
                ..LogCapture::default()
            };
            let subscriber = tracing_subscriber::registry()
                .with(tracing_subscriber::EnvFilter::new(CAPTURE_FILTER))
                .with(capture.clone());
            // As roomd's own logging does, `log` records (rustls, tungstenite, reqwest) are
            // bridged in too, so the secret scan reads what a trace-level roomd would log.
            subscriber.try_init().expect("no other global subscriber");
            capture
        })
    }

    pub fn events(&self) -> Vec<CapturedEvent> {
        self.events.lock().unwrap().clone()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.events().iter().any(|e| e.text.contains(needle))
    }
}

/// A `Command` for the `roomd` binary. Cross-built test runs execute under qemu-user, so
/// the binary is started through the same runner cargo uses for the tests themselves.
pub fn roomd_command() -> std::process::Command {
    let mut command = target_command(Path::new(env!("CARGO_BIN_EXE_roomd")));
    // The test's own environment must not steer the daemon under test.
    command
        .env_remove("ROOMD_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("JOURNAL_STREAM")
        .env_remove("RUST_LOG");
    command
}

/// A `Command` for a binary built for the target, through the cargo runner when cross-built.
/// In a scanned native test run (`test_run`) the stderr of `roomd` is also copied to the run's
/// logs.
pub fn target_command(bin: &Path) -> std::process::Command {
    let runner = if cfg!(target_arch = "aarch64") {
        std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER").ok()
    } else {
        None
    };
    match runner {
        Some(runner) if !runner.trim().is_empty() => {
            let mut command = std::process::Command::new(runner.trim());
            command.arg(bin);
            command
        }
        _ => test_run::product_command(bin, &[]),
    }
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
    LogCapture::global();
    roomd::daemon::Daemon::start(roomd::daemon::DaemonOptions {
        config,
        board: sim_board(),
        notifier,
        watchdog: None,
    })
    .await
    .expect("daemon starts")
}

/// Waits (bounded) for the next status change and returns the cloud part of it.
pub async fn next_cloud_status(
    status: &mut tokio::sync::watch::Receiver<roomd::daemon::status::DeviceStatus>,
) -> roomd::daemon::status::CloudHealth {
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
    status: &mut tokio::sync::watch::Receiver<roomd::daemon::status::DeviceStatus>,
    what: &str,
    check: impl Fn(&roomd::daemon::status::DeviceStatus) -> bool,
) -> roomd::daemon::status::DeviceStatus {
    wait_status_within(TIMEOUT, status, what, check).await
}

/// [`wait_status`] with its own bound (paused-time tests wait hours of virtual time).
pub async fn wait_status_within(
    within: Duration,
    status: &mut tokio::sync::watch::Receiver<roomd::daemon::status::DeviceStatus>,
    what: &str,
    check: impl Fn(&roomd::daemon::status::DeviceStatus) -> bool,
) -> roomd::daemon::status::DeviceStatus {
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
    tokio::sync::watch::Receiver<roomd::daemon::status::DeviceStatus>,
) {
    let sim = start_activation_sim(dir, extra_toml).await;
    let mut config = activation_config(&sim, dir);
    tweak(&mut config);
    let daemon = start_daemon(config, roomd::platform::systemd::Notifier::disabled()).await;
    let mut status = daemon.status();
    let code = roomd::activation::code::ActivationCode::parse(GOOD_CODE).unwrap();
    daemon.session().activate(code).await.expect("activation");
    wait_status(&mut status, "registered", |s| {
        s.registration.state == "Registered"
    })
    .await;
    (sim, daemon, status)
}

/// Waits until call control can be used end to end: the Locus service is known and the event
/// socket is online (Locus events reach only an online socket).
pub async fn wait_call_control(
    status: &mut tokio::sync::watch::Receiver<roomd::daemon::status::DeviceStatus>,
) {
    wait_status(status, "call control available, event socket online", |s| {
        s.calls.available && s.websocket.state == roomd::cloud::mercury::WsState::Online
    })
    .await;
}

/// A dial request for `number` from the tests.
pub fn dial_request(number: &str) -> roomd::daemon::room::DialRequest {
    roomd::daemon::room::DialRequest {
        number: Some(number.into()),
        booking_id: None,
        source: "test".into(),
    }
}

/// Starts `roomd run --config path` as a process reporting to `systemd`; stderr is piped.
pub fn spawn_roomd_run(path: &Path, systemd: &FakeSystemd) -> RunningRoomd {
    roomd_command()
        .arg("run")
        .arg("--config")
        .arg(path)
        .env("NOTIFY_SOCKET", &systemd.path)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(|child| RunningRoomd(Some(child)))
        .expect("roomd starts")
}
/// A `roomd run` child that is killed if a test fails before stopping it, so a failed test
/// never leaves a daemon behind.
#[derive(Debug)]
pub struct RunningRoomd(Option<std::process::Child>);

impl RunningRoomd {
    /// The child, for a test that stops it itself.
    pub fn take(mut self) -> std::process::Child {
        self.0.take().expect("not taken yet")
    }
}

impl Drop for RunningRoomd {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The jsxapi login subprotocol: `auth-<base64url("user:password")>`.
pub fn auth_protocol(user: &str, password: &str) -> String {
    use base64::Engine;
    test_run::record_xapi_password(password);
    format!(
        "auth-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{user}:{password}"))
    )
}

/// An xAPI WebSocket client logged in the jsxapi way (and checking the subprotocol echo), or
/// the HTTP status the server refused the upgrade with.
pub async fn xapi_connect(
    url: &str,
    user: &str,
    password: &str,
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        auth_protocol(user, password).parse().unwrap(),
    );
    let host = url.trim_start_matches("ws://").trim_end_matches("/ws");
    let stream = tokio::net::TcpStream::connect(host).await.unwrap();
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, response)) => {
            assert_eq!(
                response.headers()["sec-websocket-protocol"],
                auth_protocol(user, password).as_str(),
                "the auth subprotocol is echoed"
            );
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("handshake failed: {e}"),
    }
}

/// The next text frame as JSON (bounded by [`TIMEOUT`]); other frames are skipped.
pub async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("valid frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// An xAPI context over `state` with a detached room (no cloud session behind it) and a fresh
/// device status, whose sender is returned too.
pub fn detached_xapi_context(
    state: roomd::store::StateDir,
    max_sessions: usize,
) -> (
    roomd::api::xapi::XapiContext,
    tokio::sync::watch::Sender<roomd::daemon::status::DeviceStatus>,
) {
    use roomd::daemon::status::DeviceStatus;
    let (bookings, _) = roomd::bookings::store::BookingsStore::open(&state, 300);
    let (status, _) = tokio::sync::watch::channel(DeviceStatus::new("sim", "https://gds.invalid"));
    let (commands, _) = tokio::sync::mpsc::channel(1);
    let ctx = roomd::api::xapi::XapiContext::new(
        roomd::api::xapi::commands::Backends {
            room: roomd::daemon::room::Room::new(
                status.clone(),
                bookings.clone(),
                roomd::calls::Calls::detached(status.clone()),
            ),
            bookings,
            session: roomd::daemon::session::SessionHandle::new(commands),
        },
        status.clone(),
        tokio::sync::watch::channel(roomd::api::xapi::document::Configuration::default()).0,
        state,
        std::time::Instant::now(),
        max_sessions,
    );
    (ctx, status)
}
