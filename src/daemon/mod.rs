//! The daemon: wires configuration, clients and tasks together, reports to systemd, and
//! stops every task on shutdown. [`run`] takes the shutdown trigger as a future so tests
//! start a real daemon in-process (as mini-redis's `server::run`).

pub mod cloud_health;
pub mod status;

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::Instrument;

use crate::api::control;
use crate::cloud::gds::GdsClient;
use crate::config::{Config, ConfigError};
use crate::hw::board::Board;
use crate::media;
use crate::net::backoff::Backoff;
use crate::net::http::{HttpClient, HttpError};
use crate::net::tls::{TlsError, TrustStore};
use crate::platform::logging::{Subsystem, message_id};
use crate::platform::systemd::Notifier;
use crate::shutdown::{Shutdown, ShutdownTimeout, Tasks};
use status::{DeviceStatus, SystemState};

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
    let gds_url = config.require_cloud()?.to_string();
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

    let trust = TrustStore::with_files(&config.cloud.extra_ca_files)?;
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

    let (status_tx, status_rx) = watch::channel(initial);
    let tasks = Tasks::new();
    {
        let status_rx = status_rx.clone();
        tasks.spawn(Subsystem::Control.span(), move |shutdown| {
            control::serve(listener, socket_path, status_rx, started, shutdown)
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
        status_tx,
        notifier,
        started,
        span: tracing::Span::none(),
    })
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
