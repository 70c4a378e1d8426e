//! The device's cloud session, as a state machine in one task:
//!
//! not activated ──code──▶ activating ──ok──▶ activated ──▶ registering ──▶ registered
//!       ▲                     │ fail                │ refresh token rejected
//!       └─────────────────────┘          needs activation ◀┘ (a new code is accepted)
//!
//! Codes arrive from the control socket (`roomd activate`), from the internal API the
//! xAPI will call ([`SessionHandle::activate`]), or from a code file an integrator drops
//! into the state directory (consumed and deleted). Once activated the cloud settings are
//! locked until `roomd factory-reset`.

mod activated;
mod activation;
pub mod error;
mod reset;
mod services;

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

pub use error::{Activated, FactoryResetDone, FailureKind, SessionError};

use crate::activation::code::ActivationCode;
use crate::bookings::store::BookingsStore;
use crate::cloud::mercury::MercuryConfig;
use crate::config::Config;
use crate::events::EventBus;
use crate::net::backoff::Backoff;
use crate::net::tls::TrustStore;
use crate::proto::activation::DeviceInfo;
use crate::proto::wdm::{Capabilities, RegisterRequest};
use crate::reachability::Reachability;
use crate::shutdown::Shutdown;
use crate::status::{ActivationState, DeviceStatus, RegistrationState};
use crate::store::StateDir;
use crate::store::credentials::Credentials;

/// The file an integrator's provisioning step may drop into the state directory.
pub const CODE_FILE: &str = "activation-code";
/// What the device reports as its software to activation and WDM.
const SYSTEM_VERSION: &str = concat!("roomd ", env!("CARGO_PKG_VERSION"));
/// How often the state directory is checked for a code file.
pub const CODE_FILE_POLL: Duration = Duration::from_secs(2);

/// What the session was asked to do.
#[derive(Debug)]
pub enum SessionCommand {
    Activate {
        code: ActivationCode,
        reply: oneshot::Sender<Result<Activated, SessionError>>,
    },
    FactoryReset {
        reply: oneshot::Sender<Result<FactoryResetDone, SessionError>>,
    },
}

/// The internal API (control socket now, xAPI `SystemUnit Activate` later).
#[derive(Debug, Clone)]
pub struct SessionHandle {
    commands: mpsc::Sender<SessionCommand>,
}

impl SessionHandle {
    pub fn new(commands: mpsc::Sender<SessionCommand>) -> Self {
        Self { commands }
    }

    /// Activates with `code` (already validated); answers once activation finished.
    pub async fn activate(&self, code: ActivationCode) -> Result<Activated, SessionError> {
        self.ask(|reply| SessionCommand::Activate { code, reply })
            .await
    }

    /// Unregisters (best effort) and wipes credentials and state.
    pub async fn factory_reset(&self) -> Result<FactoryResetDone, SessionError> {
        self.ask(|reply| SessionCommand::FactoryReset { reply })
            .await
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, SessionError>>) -> SessionCommand,
    ) -> Result<T, SessionError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| SessionError::Stopping)?;
        answer.await.map_err(|_| SessionError::Stopping)?
    }
}

/// Everything the session needs from the daemon.
#[derive(Debug)]
pub struct SessionContext {
    pub config: Config,
    pub state: StateDir,
    pub status: watch::Sender<DeviceStatus>,
    /// Platform roots plus configured extra CAs; the service data's trustList adds to it.
    pub base_trust: TrustStore,
    pub gds_url: String,
    pub activation_url: Option<String>,
    /// Where the event socket publishes cloud events.
    pub bus: EventBus,
    pub bookings: BookingsStore,
    /// Where call control learns the Locus service and this device's URL once registered.
    pub call_services: watch::Sender<Option<crate::calls::CallServices>>,
    /// Media reachability results (the join bodies carry them).
    pub reachability: Reachability,
}

impl SessionContext {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.cloud.request_timeout_secs.max(1))
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.config.cloud.retry_initial_ms.max(1)),
            Duration::from_secs(self.config.cloud.retry_max_secs.max(1)),
        )
    }

    fn mercury_config(&self) -> MercuryConfig {
        let ws = &self.config.websocket;
        MercuryConfig {
            ping_interval: Duration::from_secs(ws.ping_interval_secs.max(1)),
            pong_timeout: Duration::from_secs(ws.pong_timeout_secs.max(1)),
            connect_timeout: self.timeout(),
            backoff_initial: Duration::from_millis(ws.backoff_initial_ms.max(1)),
            backoff_max: Duration::from_secs(ws.backoff_max_secs.max(1)),
            stable_after: Duration::from_secs(ws.stable_secs.max(1)),
            switchover_drain: Duration::from_secs(ws.switchover_drain_secs.max(1)),
            ..MercuryConfig::default()
        }
    }

    fn set_activation(&self, state: ActivationState) {
        self.status.send_modify(|s| s.activation = state);
    }

    fn set_registration(&self, state: RegistrationState, detail: Option<String>) {
        self.status.send_modify(|s| {
            s.registration.state = state;
            s.registration.detail = detail;
        });
    }

    fn device_info(&self) -> DeviceInfo {
        DeviceInfo {
            device_identifier: local_device_id(&self.state),
            system_name: hostname(),
            system_version: SYSTEM_VERSION.into(),
            model: self.config.device.model.clone(),
            serial: self.config.device.serial.clone().unwrap_or_else(machine_id),
        }
    }

    fn register_body(&self, credentials: &Credentials) -> RegisterRequest {
        RegisterRequest {
            device_identifier: credentials.device_identifier.clone(),
            system_name: hostname(),
            system_version: SYSTEM_VERSION.into(),
            device_type: "TP_ENDPOINT".into(),
            model: self.config.device.model.clone(),
            name: format!("roomd {}", self.config.device.model),
            localized_model: self.config.device.model.clone(),
            capabilities: Capabilities {
                group_call_supported: true,
            },
            is_device_managed: true,
        }
    }
}

/// How an activated session ended.
enum Next {
    NeedsActivation,
    Reset,
    Stop,
}

/// Runs the session; `stored` is what the daemon found in the state directory at start.
pub async fn run(
    ctx: SessionContext,
    stored: Option<Credentials>,
    mut commands: mpsc::Receiver<SessionCommand>,
    mut shutdown: Shutdown,
) {
    let mut credentials = stored;
    loop {
        let active = match credentials.take() {
            Some(active) => active,
            None => match activation::wait_for_code(&ctx, &mut commands, &mut shutdown).await {
                Some(active) => active,
                None => return,
            },
        };
        match activated::run(&ctx, active, &mut commands, &mut shutdown).await {
            Next::NeedsActivation | Next::Reset => {}
            Next::Stop => return,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "roomd".into())
}

fn machine_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// A stable local identifier for this installation (kept in the state directory).
fn local_device_id(state: &StateDir) -> String {
    const FILE: &str = "device-id";
    if let Ok(Some(bytes)) = state.read(FILE) {
        let id = String::from_utf8_lossy(&bytes).trim().to_string();
        if !id.is_empty() {
            return id;
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    if let Err(e) = state.write_atomic(FILE, id.as_bytes()) {
        tracing::warn!("cannot store the device id: {e}");
    }
    id
}
