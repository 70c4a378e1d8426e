//! The daemon: wires configuration, clients and tasks together, reports to systemd, and
//! stops every task on shutdown. [`run`] takes the shutdown trigger as a future so tests
//! start a real daemon in-process (as mini-redis's `server::run`).

pub mod cloud_health;
pub mod device_control;
pub mod hardware;
pub mod ringer;
pub mod standby;

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::Instrument;

use crate::api::control;
use crate::api::xapi::commands::Backends;
use crate::api::xapi::document::Configuration;
use crate::api::xapi::{XapiContext, XapiServer};
use crate::bookings::obtp::{SystemClock, WallClock};
use crate::bookings::store::BookingsStore;
use crate::cloud::gds::GdsClient;
use crate::config::{Config, ConfigError};
use crate::events::EventBus;
use crate::hw::board::Board;
use crate::media;
use crate::media::RoomControls;
use crate::meeting_server::client::MeetingServerClient;
use crate::meeting_server::{ConnectionState, MeetingServerStatus};
use crate::net::backoff::Backoff;
use crate::net::http::{HttpClient, HttpError};
use crate::net::tls::{TlsError, TrustStore};
use crate::platform::logging::{Subsystem, message_id};
use crate::platform::systemd::Notifier;
use crate::reachability::Reachability;
use crate::room::Room;
use crate::session::{self, SessionContext, SessionHandle};
use crate::shutdown::{Shutdown, ShutdownTimeout, Tasks};
use crate::status::{ActivationState, DeviceStatus, SystemState, slices};
use crate::store::credentials::Credentials;
use crate::store::{StateDir, StoreError};
use std::sync::Arc;
use tokio::sync::mpsc;

/// How long every task gets to finish after the shutdown signal.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct DaemonOptions {
    pub config: Config,
    pub board: Board,
    pub notifier: Notifier,
    /// Interval of WATCHDOG=1 pings (half of `WATCHDOG_USEC`), if systemd asked for them.
    pub watchdog: Option<Duration>,
}

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum DaemonError {
    /// {0}
    Config(#[from] ConfigError),
    /// {0}
    Tls(#[from] TlsError),
    /// {0}
    Http(#[from] HttpError),
    /// {0}
    Control(#[from] control::ControlError),
    /// {0}
    Shutdown(#[from] ShutdownTimeout),
    /// {0}
    Store(#[from] StoreError),
    /// {0}
    Media(media::gst::MediaError),
}

/// Runs the daemon until `shutdown` completes.
pub async fn run(
    options: DaemonOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    Daemon::start(options).await?.run_until(shutdown).await
}

/// A started daemon: every task running, READY sent.
#[derive(Debug)]
pub struct Daemon {
    tasks: Tasks,
    session: SessionHandle,
    bus: EventBus,
    bookings: BookingsStore,
    room: Room,
    reachability: Reachability,
    xapi_urls: Vec<String>,
    sim_gpio: Option<crate::hw::gpio::SimGpio>,
    status_tx: watch::Sender<DeviceStatus>,
    notifier: Notifier,
    started: Instant,
    span: tracing::Span,
}

impl Daemon {
    /// Sets everything up and spawns the tasks; errors here are start-up errors.
    pub async fn start(options: DaemonOptions) -> Result<Daemon, DaemonError> {
        let span = Subsystem::Daemon.span();
        let mut daemon = start_inner(options).instrument(span.clone()).await?;
        daemon.span = span;
        Ok(daemon)
    }

    /// The live status (what `roomd status` shows), for in-process observers.
    pub fn status(&self) -> watch::Receiver<DeviceStatus> {
        self.status_tx.subscribe()
    }

    /// The internal API: activation and factory reset (the control socket and the xAPI use it).
    pub fn session(&self) -> SessionHandle {
        self.session.clone()
    }

    /// The event bus (cloud events by namespace, resync requests), for in-process consumers.
    pub fn events(&self) -> EventBus {
        self.bus.clone()
    }

    /// The bookings (model, persisted generation, OBTP events), for in-process consumers.
    pub fn bookings(&self) -> BookingsStore {
        self.bookings.clone()
    }

    /// The room's controls (volume, mute, layout, dial), shared by the xAPI and the buttons.
    pub fn room(&self) -> Room {
        self.room.clone()
    }

    /// Media reachability's latest result (join bodies carry [`Reachability::join_body`]).
    pub fn reachability(&self) -> Reachability {
        self.reachability.clone()
    }

    /// The simulated GPIO lines' handles when the board's backend is `sim` (press a button,
    /// read an LED).
    pub fn sim_gpio(&self) -> Option<&crate::hw::gpio::SimGpio> {
        self.sim_gpio.as_ref()
    }

    /// The xAPI WebSocket URLs as bound (`ws://127.0.0.1:8080/ws`).
    pub fn xapi_urls(&self) -> &[String] {
        &self.xapi_urls
    }

    /// Waits for `shutdown`, then stops every task within [`SHUTDOWN_DEADLINE`].
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let span = self.span.clone();
        async move {
            shutdown.await;
            self.stop().await
        }
        .instrument(span)
        .await
    }

    async fn stop(self) -> Result<(), DaemonError> {
        tracing::info!(message_id = message_id::STOPPING, "stopping");
        self.status_tx
            .send_modify(|s| s.system = SystemState::Stopping);
        self.notifier.stopping("stopping");
        let finished = self.tasks.shutdown(SHUTDOWN_DEADLINE).await;
        match &finished {
            Ok(()) => tracing::info!(
                message_id = message_id::STOPPED,
                "stopped cleanly after {:.1} s of uptime",
                self.started.elapsed().as_secs_f64()
            ),
            Err(e) => tracing::error!("{e}"),
        }
        Ok(finished?)
    }
}

async fn start_inner(options: DaemonOptions) -> Result<Daemon, DaemonError> {
    let started = Instant::now();
    let DaemonOptions {
        config,
        board,
        notifier,
        watchdog,
    } = options;
    let state = StateDir::open(config.state_dir())?;
    let (bookings, cache_outcome) =
        BookingsStore::open(&state, config.calendar.start_time_buffer_secs);
    let stored = match Credentials::load(&state) {
        Ok(found) => found,
        Err(e) => {
            tracing::error!("{e}; the device needs activation again");
            None
        }
    };
    let (gds_url, activation_url) = locked_cloud_urls(&config, stored.as_ref())?;
    tracing::info!(
        message_id = message_id::STARTED,
        board = %board.name,
        "roomd {} starting (board {:?}: {})",
        env!("CARGO_PKG_VERSION"),
        board.name,
        board.description
    );

    let mut initial = DeviceStatus::new(&board.name, &gds_url);
    let gst_span = Subsystem::Media.span();
    match gst_span.in_scope(media::gst::init) {
        Ok(version) => {
            gst_span.in_scope(|| {
                tracing::info!(message_id = message_id::GSTREAMER, "{version} initialised");
            });
            initial.gstreamer = Some(version);
        }
        // Media is needed for calls only; the device still registers and reports without it.
        Err(e) => gst_span.in_scope(|| tracing::error!("{e}; calls will not have media")),
    }
    // Every board role's element must be installed: a board this image cannot play stops the
    // start here, naming the element and its package, rather than failing in a call.
    let resolved_media = if !config.media.enabled {
        gst_span
            .in_scope(|| tracing::info!("media disabled by configuration: calls carry no media"));
        None
    } else if initial.gstreamer.is_some() {
        match media::elements::check_board(&board.media) {
            Ok(resolved) => {
                gst_span.in_scope(|| {
                    tracing::info!(
                        decoder = %resolved.video_decoder.element,
                        "board media roles present (decoder {})",
                        resolved.video_decoder.element
                    );
                    if let Some(warning) = media::elements::v4l2_stop_leak_here(&board.media) {
                        tracing::warn!("{warning}");
                    }
                });
                Some(resolved)
            }
            Err(e) => {
                gst_span.in_scope(|| tracing::error!("board {:?}: {e}", board.name));
                return Err(DaemonError::Media(e));
            }
        }
    } else {
        None
    };

    let trust = TrustStore::with_files(&config.cloud.extra_ca_files)?;
    let base_trust = trust.clone();
    let base_trust_for_ms = trust.clone();
    if trust.extra_count() > 0 {
        tracing::info!(
            "trusting {} additional CA certificate(s) from configuration",
            trust.extra_count()
        );
    }
    let http = HttpClient::new(
        &trust,
        Duration::from_secs(config.cloud.request_timeout_secs.max(1)),
    )?;
    let socket_path = config.control_socket();
    let listener = control::bind(&socket_path).await?;
    tracing::info!(path = %socket_path.display(), "control socket listening");

    if stored.is_some() {
        initial.activation = ActivationState::Activating;
    }
    initial.bookings.cache = cache_outcome;
    let configuration = Configuration::load(&state);
    let (controls_tx, controls_rx) = watch::channel(RoomControls {
        volume: configuration.default_volume,
        ..RoomControls::default()
    });
    let media_options = media_options(&config, resolved_media.as_ref());
    let (status_tx, status_rx) = watch::channel(initial);
    let tasks = Tasks::new();
    let bus = EventBus::new();
    let reachability = Reachability::new();
    let (call_services_tx, call_services_rx) = watch::channel(None);
    let (calls, call_manager) = crate::calls::Calls::new(
        slices::calls(&status_tx),
        slices::media(&status_tx),
        controls_rx,
        call_services_rx,
        bus.clone(),
        reachability.clone(),
        crate::calls::CallsOptions {
            meeting_uri_regex: config.calls.meeting_uri_regex.clone(),
            ice_timeout: Duration::from_millis(config.calls.ice_timeout_ms.max(1)),
            media: media_options,
        },
    );
    tasks.spawn(Subsystem::Calls.span(), move |shutdown| {
        call_manager.run(shutdown)
    });
    if let Some(resolved) = &resolved_media {
        let speaker = resolved.media.speaker.clone();
        let (status_rx, controls_rx) = (status_rx.clone(), controls_tx.subscribe());
        tasks.spawn(Subsystem::Media.span(), move |shutdown| {
            ringer::run(speaker, status_rx, controls_rx, shutdown)
        });
    }
    let room = Room::new(controls_tx, status_tx.clone(), bookings.clone(), calls);
    {
        let room = room.clone();
        let minutes = config.device.standby_delay_mins;
        let delay = if minutes.is_finite() && minutes > 0.0 {
            Duration::from_secs_f64(minutes.min(10_000.0) * 60.0)
        } else {
            Duration::ZERO
        };
        tasks.spawn(Subsystem::Device.span(), move |shutdown| {
            standby::run(room, delay, shutdown)
        });
    }
    {
        let (bus, room) = (bus.clone(), room.clone());
        tasks.spawn(Subsystem::Device.span(), move |shutdown| {
            device_control::run_device_control(bus, room, shutdown)
        });
    }
    {
        let (bus, status_tx) = (bus.clone(), status_tx.clone());
        tasks.spawn(Subsystem::Device.span(), move |shutdown| {
            device_control::run_feature_toggles(bus, status_tx, shutdown)
        });
    }
    if let Some(meeting_server) = &config.meeting_server {
        start_meeting_server(
            &tasks,
            &config,
            meeting_server,
            &base_trust_for_ms,
            &status_tx,
        );
    }
    {
        let (bookings, state) = (bookings.clone(), state.clone());
        tasks.spawn(Subsystem::Calendar.span(), move |shutdown| {
            crate::bookings::store::persist(bookings, state, shutdown)
        });
    }
    {
        let (bookings, status) = (bookings.clone(), slices::bookings(&status_tx));
        let clock: Arc<dyn WallClock> = Arc::new(SystemClock);
        tasks.spawn(Subsystem::Calendar.span(), move |shutdown| {
            crate::bookings::store::run_obtp(bookings, clock, status, shutdown)
        });
    }
    let (commands_tx, commands_rx) = mpsc::channel(8);
    let session = SessionHandle::new(commands_tx);
    let sim_gpio = hardware::start(&tasks, &board, &status_tx, &room);
    let xapi_urls = start_xapi(
        &tasks,
        &config,
        XapiContext::new(
            Backends {
                room: room.clone(),
                bookings: bookings.clone(),
                session: session.clone(),
            },
            status_tx.clone(),
            watch::channel(configuration).0,
            state.clone(),
            started,
            config.xapi.max_sessions,
        ),
    )
    .await;
    {
        let status_rx = status_rx.clone();
        let session = session.clone();
        let bookings = bookings.clone();
        let control_state = state.clone();
        tasks.spawn(Subsystem::Control.span(), move |shutdown| {
            control::serve(
                listener,
                socket_path,
                control::ControlContext {
                    status: status_rx,
                    started,
                    session,
                    bookings,
                    state: control_state,
                },
                shutdown,
            )
        });
    }
    {
        let context = SessionContext {
            config: config.clone(),
            state,
            status: status_tx.clone(),
            base_trust,
            gds_url: gds_url.clone(),
            activation_url,
            bus: bus.clone(),
            bookings: bookings.clone(),
            call_services: call_services_tx,
            reachability: reachability.clone(),
        };
        tasks.spawn(Subsystem::Activation.span(), move |shutdown| {
            session::run(context, stored, commands_rx, shutdown)
        });
    }
    {
        let client = GdsClient::new(http, &gds_url);
        let status_tx = status_tx.clone();
        let interval = Duration::from_secs(config.cloud.health_interval_secs.max(1));
        let backoff = Backoff::new(
            Duration::from_millis(config.cloud.retry_initial_ms.max(1)),
            Duration::from_secs(config.cloud.retry_max_secs.max(1)),
        );
        tasks.spawn(Subsystem::Cloud.span(), move |shutdown| {
            cloud_health::monitor(client, status_tx, interval, backoff, shutdown)
        });
    }
    status_tx.send_modify(|s| s.system = SystemState::Running);
    {
        let notifier = notifier.clone();
        tasks.spawn(Subsystem::Systemd.span(), move |shutdown| {
            report_to_systemd(notifier, status_rx, watchdog, shutdown)
        });
    }
    Ok(Daemon {
        tasks,
        session,
        bus,
        bookings,
        room,
        reachability,
        xapi_urls,
        sim_gpio,
        status_tx,
        notifier,
        started,
        span: tracing::Span::none(),
    })
}

/// Binds and serves the local xAPI; a listener that cannot be bound is logged and the rest of
/// the device keeps working (the cloud side does not need it).
async fn start_xapi(tasks: &Tasks, config: &Config, ctx: XapiContext) -> Vec<String> {
    if config.xapi.listen.is_empty() {
        return Vec::new();
    }
    let span = Subsystem::Xapi.span();
    match XapiServer::bind(&config.xapi, ctx)
        .instrument(span.clone())
        .await
    {
        Ok(server) => {
            let urls = server.urls();
            tasks.spawn(span, move |shutdown| server.serve(shutdown));
            urls
        }
        Err(e) => {
            span.in_scope(|| tracing::error!("{e}; the local xAPI and touch panel are off"));
            Vec::new()
        }
    }
}

/// Starts the Meeting Server events client; a configuration mistake is logged and shown in
/// status, and the rest of the device keeps working.
fn start_meeting_server(
    tasks: &Tasks,
    config: &Config,
    meeting_server: &crate::config::MeetingServerConfig,
    trust: &TrustStore,
    status_tx: &watch::Sender<DeviceStatus>,
) {
    let span = Subsystem::MeetingServer.span();
    let timeout = Duration::from_secs(config.cloud.request_timeout_secs.max(1));
    let backoff = Backoff::new(
        Duration::from_millis(config.cloud.retry_initial_ms.max(1)),
        Duration::from_secs(config.websocket.backoff_max_secs.max(1)),
    );
    let client = match MeetingServerClient::new(meeting_server, trust, timeout, backoff) {
        Ok(client) => client,
        Err(e) => {
            span.in_scope(|| tracing::error!("Meeting Server events disabled: {e}"));
            status_tx.send_modify(|s| {
                s.meeting_server = Some(MeetingServerStatus {
                    base_url: meeting_server.base_url.clone(),
                    state: ConnectionState::Misconfigured,
                    detail: Some(e.to_string()),
                    ..Default::default()
                })
            });
            return;
        }
    };
    let mut client_status = client.status();
    let status_tx = status_tx.clone();
    tasks.spawn(span.clone(), |shutdown| client.run(shutdown));
    tasks.spawn(span, move |mut shutdown| async move {
        loop {
            let now = client_status.borrow_and_update().clone();
            status_tx.send_modify(|s| s.meeting_server = Some(now));
            tokio::select! {
                changed = client_status.changed() => if changed.is_err() { return },
                _ = shutdown.recv() => return,
            }
        }
    });
}

/// The cloud URLs in force: after activation the ones locked then, whatever the
/// configuration says now (lock-down, wire profile §1.7).
fn locked_cloud_urls(
    config: &Config,
    stored: Option<&Credentials>,
) -> Result<(String, Option<String>), DaemonError> {
    let configured_gds = config.require_cloud()?.to_string();
    let configured_activation = config.cloud.activation_url.clone();
    let Some(stored) = stored else {
        return Ok((configured_gds, configured_activation));
    };
    if stored.locked_gds_url != configured_gds {
        tracing::warn!(
            "cloud.gds_url in the configuration ({configured_gds}) differs from the one locked at activation ({}); \
             the locked URL stays in use until `roomd factory-reset --yes`",
            stored.locked_gds_url
        );
    }
    if stored.locked_activation_url.is_some()
        && stored.locked_activation_url != configured_activation
    {
        tracing::warn!(
            "cloud.activation_url in the configuration differs from the one locked at activation; \
             the locked URL stays in use until `roomd factory-reset --yes`"
        );
    }
    Ok((
        stored.locked_gds_url.clone(),
        stored
            .locked_activation_url
            .clone()
            .or(configured_activation),
    ))
}

/// READY=1 once every task is up, STATUS= whenever the line changes, WATCHDOG=1 pings.
async fn report_to_systemd(
    notifier: Notifier,
    mut status: watch::Receiver<DeviceStatus>,
    watchdog: Option<Duration>,
    mut shutdown: Shutdown,
) {
    let mut line = status.borrow_and_update().status_line();
    notifier.ready(&line);
    tracing::info!(message_id = message_id::READY, "ready: {line}");
    let mut pings = watchdog.map(tokio::time::interval);
    loop {
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let next = status.borrow_and_update().status_line();
                if next != line {
                    notifier.status(&next);
                    line = next;
                }
            }
            _ = async { pings.as_mut().expect("guarded").tick().await }, if pings.is_some() => {
                notifier.watchdog();
            }
            _ = shutdown.recv() => return,
        }
    }
}

/// The media engine's options from `[media]` and the board (its elements checked against
/// the registry); `None` when media is disabled or GStreamer did not initialise (calls then
/// connect without media).
fn media_options(
    config: &Config,
    board: Option<&media::elements::ResolvedMedia>,
) -> Option<media::session::MediaOptions> {
    let m = &config.media;
    let board = board?;
    Some(media::session::MediaOptions {
        graph: media::graph::GraphSpec::from_board(
            &board.media,
            (
                m.capture_width.max(32),
                m.capture_height.max(18),
                m.capture_fps.clamp(1, 120),
            ),
            m.max_layers.clamp(1, 8),
        ),
        scr_resend_initial: Duration::from_millis(m.scr_resend_initial_ms.max(1)),
        scr_resend_max: m.scr_resend_max,
        rtcp_interval: Duration::from_millis(m.rtcp_interval_ms.max(10)),
        quality_interval: Duration::from_secs(m.quality_interval_secs.max(1)),
        receive: m.receive,
        output: media::session::OutputOptions {
            playout: media::receive_pipeline::Playout {
                video_decoder: board.video_decoder.clone(),
                speaker: board.media.speaker.clone(),
                display: board.media.display.clone(),
                display_width: m.display_width.clamp(32, 7680) & !1,
                display_height: m.display_height.clamp(18, 4320) & !1,
                display_fps: m.display_fps.clamp(1, 120),
                jitter_ms: m.jitter_buffer_ms.min(2000),
            },
            echo_cancellation: m.echo_cancellation,
            noise_suppression: m.noise_suppression,
            gain_control: m.gain_control,
        },
    })
}
