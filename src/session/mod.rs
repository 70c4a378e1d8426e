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

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Mutex, mpsc, oneshot, watch};

use crate::activation::code::ActivationCode;
use crate::activation::flow::{ActivationClient, ActivationError};
use crate::bookings::store::BookingsStore;
use crate::bookings::sync::{Sync, SyncTimers};
use crate::cloud::authed::AuthedClient;
use crate::cloud::calendar::{CalendarClient, CalendarUrls};
use crate::cloud::locus::{LocusClient, LocusUrls};
use crate::cloud::mercury::link::CloudLink;
use crate::cloud::mercury::{MercuryConfig, MercuryStatus, Supervisor};
use crate::cloud::registration::{self, HostSelector, Refreshed, Registered};
use crate::cloud::tokens::TokenManager;
use crate::config::Config;
use crate::events::{EventBus, Namespace};
use crate::net::backoff::Backoff;
use crate::net::http::HttpClient;
use crate::net::tls::TrustStore;
use crate::platform::logging::{Subsystem, message_id};
use crate::proto::activation::DeviceInfo;
use crate::proto::wdm::{Capabilities, RegisterRequest};
use crate::reachability::{
    DiscoverySource, ProbeOptions, Reachability, ReachabilityState, ReachabilityTask,
};
use crate::shutdown::{Shutdown, Tasks};
use crate::status::{ActivationState, CloudState, DeviceStatus, RegistrationState, slices};
use crate::store::StateDir;
use crate::store::credentials::{Credentials, StoredRegistration};
use tracing::Instrument;

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
        reply: oneshot::Sender<Result<String, String>>,
    },
    FactoryReset {
        reply: oneshot::Sender<Result<String, String>>,
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
    pub async fn activate(&self, code: ActivationCode) -> Result<String, String> {
        self.ask(|reply| SessionCommand::Activate { code, reply })
            .await
    }

    /// Unregisters (best effort) and wipes credentials and state.
    pub async fn factory_reset(&self) -> Result<String, String> {
        self.ask(|reply| SessionCommand::FactoryReset { reply })
            .await
    }

    async fn ask(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<String, String>>) -> SessionCommand,
    ) -> Result<String, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| "roomd is stopping".to_string())?;
        answer.await.map_err(|_| "roomd is stopping".to_string())?
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
            None => match wait_for_code(&ctx, &mut commands, &mut shutdown).await {
                Some(active) => active,
                None => return,
            },
        };
        match activated(&ctx, active, &mut commands, &mut shutdown).await {
            Next::NeedsActivation | Next::Reset => {}
            Next::Stop => return,
        }
    }
}

/// Not activated: waits for a code (command or file) and activates with it.
async fn wait_for_code(
    ctx: &SessionContext,
    commands: &mut mpsc::Receiver<SessionCommand>,
    shutdown: &mut Shutdown,
) -> Option<Credentials> {
    let mut poll = tokio::time::interval(CODE_FILE_POLL);
    loop {
        tokio::select! {
            command = commands.recv() => match command? {
                SessionCommand::Activate { code, reply } => {
                    let result = activate(ctx, &code, shutdown).await;
                    match result {
                        Ok(credentials) => {
                            let _ = reply.send(Ok(format!("activated as device {}", credentials.device_identifier)));
                            return Some(credentials);
                        }
                        Err(message) => { let _ = reply.send(Err(message)); }
                    }
                }
                SessionCommand::FactoryReset { reply } => {
                    let _ = reply.send(factory_reset(ctx, None).await);
                }
            },
            _ = poll.tick() => {
                if let Some(code) = take_code_file(ctx) {
                    if let Ok(credentials) = activate(ctx, &code, shutdown).await {
                        return Some(credentials);
                    }
                }
            }
            _ = shutdown.recv() => return None,
        }
    }
}

/// Reads and deletes the provisioning code file; a malformed code is logged and dropped.
fn take_code_file(ctx: &SessionContext) -> Option<ActivationCode> {
    let bytes = ctx.state.read(CODE_FILE).ok()??;
    if let Err(e) = ctx.state.remove(CODE_FILE) {
        tracing::error!("cannot delete the activation code file: {e}");
    }
    match ActivationCode::parse(&String::from_utf8_lossy(&bytes)) {
        Ok(code) => {
            tracing::info!(
                "activation code file found in the state directory (consumed and deleted)"
            );
            Some(code)
        }
        Err(e) => {
            tracing::error!(
                "activation code file {}: {e}",
                ctx.state.file(CODE_FILE).display()
            );
            None
        }
    }
}

/// GDS gate, then the SRP exchange; stores the credentials and installs the trustList.
async fn activate(
    ctx: &SessionContext,
    code: &ActivationCode,
    shutdown: &mut Shutdown,
) -> Result<Credentials, String> {
    let Some(activation_url) = ctx.activation_url.clone() else {
        return Err("`cloud.activation_url` is not set in any configuration file".into());
    };
    let previous = ctx.status.borrow().activation.clone();
    ctx.set_activation(ActivationState::Activating);
    let result = async {
        wait_for_gds(ctx, shutdown).await?;
        let http =
            HttpClient::unverified_for_activation(ctx.timeout()).map_err(|e| e.to_string())?;
        let client = ActivationClient::new(http, &activation_url);
        let data = client
            .activate(code, &ctx.device_info())
            .await
            .map_err(|e: ActivationError| e.to_string())?;
        log_trust_list(
            data.trust_list.as_deref(),
            ctx.config.cloud.trust_refresh_secs,
        );
        let credentials = Credentials::from_activation(&data, &ctx.gds_url, SystemTime::now())
            .with_activation_url(&activation_url);
        credentials.save(&ctx.state).map_err(|e| e.to_string())?;
        Ok(credentials)
    }
    .await;
    match &result {
        Ok(credentials) => {
            tracing::info!(
                message_id = message_id::ACTIVATED,
                device_identifier = %credentials.device_identifier,
                "activation succeeded; cloud settings are locked until a factory reset"
            );
        }
        Err(message) => {
            tracing::error!(
                message_id = message_id::ACTIVATION_FAILED,
                "activation failed: {message}"
            );
            ctx.set_activation(previous);
        }
    }
    result
}

/// Activation proceeds only when GDS reports `online` (wire profile §1.1).
async fn wait_for_gds(ctx: &SessionContext, shutdown: &mut Shutdown) -> Result<(), String> {
    let mut status = ctx.status.subscribe();
    let wait = async {
        loop {
            if status.borrow_and_update().cloud.state == CloudState::Online {
                return Ok(());
            }
            if status.changed().await.is_err() {
                return Err("roomd is stopping".to_string());
            }
        }
    };
    tokio::select! {
        result = tokio::time::timeout(Duration::from_secs(120), wait) => {
            result.map_err(|_| "GDS is not online (see `roomd status`); try again later".to_string())?
        }
        _ = shutdown.recv() => Err("roomd is stopping".into()),
    }
}

/// Seed 000's log lines for the service data's CA list.
fn log_trust_list(trust_list: Option<&[String]>, refresh_secs: u64) {
    match trust_list {
        Some(list) => {
            tracing::info!(
                "process_additional_CAs: Parsed {} additional CA certificate(s)",
                list.len()
            );
            tracing::info!("process_additional_CAs: Updated CA certificates from srpconfig");
        }
        None => {
            tracing::info!(
                "process_additional_CAs: No 'trustList' sub-document in configData. No CA certificates will be updated"
            );
            tracing::info!("process_additional_CAs: Parsed 0 additional CA certificate(s)");
        }
    }
    tracing::info!("Restarting CA trust store refresh in {refresh_secs} second(s)");
}

/// The platform/config trust plus the stored trustList.
fn trust_with(ctx: &SessionContext, credentials: &Credentials) -> TrustStore {
    let mut trust = ctx.base_trust.clone();
    for (index, pem) in credentials.trust_list.iter().enumerate() {
        if let Err(e) = trust.add_pem(pem.as_bytes(), &format!("trustList[{index}]")) {
            tracing::error!("{e}");
        }
    }
    trust
}

/// Activated: registration, token refresh, trust refresh, commands, until something ends it.
async fn activated(
    ctx: &SessionContext,
    credentials: Credentials,
    commands: &mut mpsc::Receiver<SessionCommand>,
    shutdown: &mut Shutdown,
) -> Next {
    ctx.set_activation(ActivationState::Activated {
        device_identifier: credentials.device_identifier.clone(),
        org_id: credentials.org_id.clone(),
    });
    let mut trust = trust_with(ctx, &credentials);
    // Counted in the store itself, so a trustList entry that failed to parse is not shown.
    let cas = trust.extra_count() - ctx.base_trust.extra_count();
    ctx.status
        .send_modify(|s| s.registration.trust_list_cas = cas);
    let http = match HttpClient::new(&trust, ctx.timeout()) {
        Ok(http) => http,
        Err(e) => {
            tracing::error!("{e}");
            return Next::Stop;
        }
    };
    let expires = UNIX_EPOCH + Duration::from_millis(credentials.tokens.access_expires_at_ms);
    ctx.status
        .send_modify(|s| s.registration.token_expires_at = Some(expires));
    let status = ctx.status.clone();
    let observer: crate::cloud::tokens::RefreshObserver = Box::new(move |expires| {
        status.send_modify(|s| {
            s.registration.token_expires_at = Some(expires);
            s.registration.token_refreshes += 1;
        })
    });
    let tokens = Arc::new(
        TokenManager::new(http.clone(), ctx.state.clone(), credentials).with_observer(observer),
    );
    let shared = tokens.credentials().clone();
    tokens.schedule_from_stored().await;
    let cap = Duration::from_secs(ctx.config.cloud.retry_max_secs.max(1));
    let mut client = AuthedClient::new(http, tokens.clone(), cap);
    let mut hosts = HostSelector::default();
    let mut registered: Option<Registered> = None;
    let mut backoff = ctx.backoff();
    let mut next_registration = tokio::time::Instant::now();
    let registration_every = Duration::from_secs(ctx.config.cloud.registration_refresh_secs.max(1));
    let trust_every = Duration::from_secs(ctx.config.cloud.trust_refresh_secs.max(1));
    let mut next_trust = tokio::time::Instant::now() + trust_every;
    let mut token_backoff = ctx.backoff();
    let mut token_retry_at: Option<tokio::time::Instant> = None;
    let (ws_urls, ws_url_rx) = watch::channel::<Option<String>>(None);
    let (reregister_tx, mut reregister) = mpsc::channel::<()>(1);
    let (calendar_tx, calendar_rx) = watch::channel::<Option<CalendarClient>>(None);
    let mut locus_base: Option<String> = None;
    let mut locus_urls: Option<LocusUrls> = None;
    // The calendar subscribes before the event socket starts, so it misses no event.
    let ws_tasks = Tasks::new();
    start_calendar_sync(ctx, &ws_tasks, calendar_rx);
    let (calliope_tx, calliope_rx) = watch::channel::<Option<DiscoverySource>>(None);
    start_reachability(ctx, &ws_tasks, calliope_rx);
    start_event_socket(ctx, &ws_tasks, &trust, &tokens, ws_url_rx, reregister_tx);

    let next = async { loop {
        let refresh_at = token_retry_at.unwrap_or(tokens.refresh_at().await);
        tokio::select! {
            _ = tokio::time::sleep_until(next_registration) => {
                match registration_step(ctx, &client, &shared, &mut hosts, registered.as_ref())
                    .instrument(Subsystem::Registration.span())
                    .await {
                    Ok((now, catalog)) => {
                        if let Some(catalog) = catalog {
                            locus_base = first_url(&catalog, &mut hosts, "locus");
                            if locus_base.is_none() {
                                tracing::warn!("the service catalog has no locus service; no calls");
                            }
                            match calendar_urls(&catalog, &mut hosts) {
                                Some(urls) => { calendar_tx.send_replace(Some(CalendarClient::new(client.clone(), urls))); }
                                None => tracing::warn!("the service catalog has no calendar or kms service; no bookings from the cloud"),
                            }
                            if let Some(source) = calliope_source(ctx, &catalog, &mut hosts, &client, &trust) {
                                calliope_tx.send_replace(Some(source));
                            }
                        }
                        // Every registration, refreshes included, goes to the event socket: one
                        // that a close code stopped (4000, 4400/4403) starts over at the next
                        // registration instead of staying down until a restart.
                        match &now.registration.web_socket_url {
                            Some(url) => { ws_urls.send_replace(Some(url.clone())); }
                            None => tracing::warn!("the WDM registration has no webSocketUrl; no event socket"),
                        }
                        let urls = locus_base.clone().map(|locus| LocusUrls {
                            locus,
                            device_url: now.registration.url.clone(),
                        });
                        if urls != locus_urls {
                            locus_urls = urls.clone();
                            ctx.call_services.send_replace(urls.map(|urls| crate::calls::CallServices {
                                locus: LocusClient::new(client.clone(), urls),
                            }));
                        }
                        registered = Some(now);
                        backoff.reset();
                        next_registration = tokio::time::Instant::now() + registration_every;
                    }
                    Err(RegistrationOutcome::NeedsActivation(reason)) => {
                        return needs_activation(ctx, &reason);
                    }
                    Err(RegistrationOutcome::Retry(reason)) => {
                        let delay = backoff.next_delay();
                        let _registration = Subsystem::Registration.span().entered();
                        tracing::warn!(
                            message_id = message_id::REGISTRATION_FAILED,
                            "registration failed: {reason}; retrying in {:.1} s",
                            delay.as_secs_f64()
                        );
                        ctx.set_registration(RegistrationState::Registering, Some(reason));
                        next_registration = tokio::time::Instant::now() + delay;
                    }
                }
            }
            _ = tokio::time::sleep_until(refresh_at) => {
                match tokens.refresh(None).await {
                    Ok(()) => { token_retry_at = None; token_backoff.reset(); }
                    Err(e) if e.needs_activation() => return needs_activation(ctx, &e.to_string()),
                    Err(e) => {
                        let delay = token_backoff.next_delay();
                        tracing::warn!("{e}; retrying the token refresh in {:.1} s", delay.as_secs_f64());
                        token_retry_at = Some(tokio::time::Instant::now() + delay);
                    }
                }
            }
            _ = tokio::time::sleep_until(next_trust) => {
                let credentials = shared.lock().await.clone();
                trust = trust_with(ctx, &credentials);
                match HttpClient::new(&trust, ctx.timeout()) {
                    Ok(http) => client = AuthedClient::new(http, tokens.clone(), cap),
                    Err(e) => tracing::error!("trust store refresh: {e}"),
                }
                log_trust_list(Some(&credentials.trust_list), trust_every.as_secs());
                ctx.status.send_modify(|s| s.registration.trust_refreshes += 1);
                next_trust = tokio::time::Instant::now() + trust_every;
            }
            Some(()) = reregister.recv() => {
                // The event socket was closed for good: register afresh (a new socket URL).
                registered = None;
                next_registration = tokio::time::Instant::now();
            }
            command = commands.recv() => match command {
                None => return Next::Stop,
                Some(SessionCommand::Activate { reply, .. }) => {
                    let _ = reply.send(Err(
                        "the device is already activated and locked down; run `roomd factory-reset --yes` first".into(),
                    ));
                }
                Some(SessionCommand::FactoryReset { reply }) => {
                    let url = registered.as_ref().map(|r| r.registration.url.clone());
                    let _ = reply.send(factory_reset(ctx, url.map(|u| (client.clone(), u))).await);
                    return Next::Reset;
                }
            },
            _ = shutdown.recv() => return Next::Stop,
        }
    } }
    .await;
    // No registration, no calls: the manager answers dials with "not registered".
    ctx.call_services.send_replace(None);
    if let Err(e) = ws_tasks.shutdown(Duration::from_secs(3)).await {
        tracing::warn!("event socket: {e}");
    }
    ctx.status
        .send_modify(|s| s.websocket = MercuryStatus::default());
    next
}

/// Starts the event-socket supervisor and the task that mirrors its status; the socket
/// dials once `urls` carries the registration's `webSocketUrl`.
fn start_event_socket(
    ctx: &SessionContext,
    tasks: &Tasks,
    trust: &TrustStore,
    tokens: &Arc<TokenManager>,
    urls: watch::Receiver<Option<String>>,
    reregister: mpsc::Sender<()>,
) {
    let tls = match trust.client_config() {
        Ok(tls) => Arc::new(tls),
        Err(e) => {
            tracing::error!("event socket disabled: {e}");
            return;
        }
    };
    let config = ctx.mercury_config();
    let link = CloudLink::new(Arc::clone(tokens), tls, config.timers(), reregister);
    let supervisor = Supervisor::new(link, config, urls, ctx.bus.clone());
    let mut ws_status = supervisor.status();
    let status = ctx.status.clone();
    tasks.spawn(Subsystem::Websocket.span(), |shutdown| {
        supervisor.run(shutdown)
    });
    tasks.spawn(
        Subsystem::Websocket.span(),
        move |mut shutdown| async move {
            loop {
                tokio::select! {
                    changed = ws_status.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let now = ws_status.borrow_and_update().clone();
                        status.send_modify(|s| s.websocket = now);
                    }
                    _ = shutdown.recv() => return,
                }
            }
        },
    );
}

/// Starts the calendar sync; it works once `client` carries the catalog's calendar URLs.
fn start_calendar_sync(
    ctx: &SessionContext,
    tasks: &Tasks,
    client: watch::Receiver<Option<CalendarClient>>,
) {
    let sync = Sync {
        store: ctx.bookings.clone(),
        client,
        bus: ctx.bus.clone(),
        events: ctx.bus.subscribe(Namespace::Calendar, 256),
        status: slices::bookings(&ctx.status),
        timers: SyncTimers {
            catch_up_every: Duration::from_secs(ctx.config.calendar.catch_up_interval_secs.max(1)),
            retry_initial: Duration::from_millis(ctx.config.cloud.retry_initial_ms.max(1)),
            retry_max: Duration::from_secs(ctx.config.cloud.retry_max_secs.max(1)),
        },
    };
    tasks.spawn(Subsystem::Calendar.span(), |shutdown| sync.run(shutdown));
}

/// The calendar and KMS base URLs: the best host of each service in the catalog.
/// The preferred base URL of a catalog service.
fn first_url(
    catalog: &crate::proto::u2c::Catalog,
    hosts: &mut HostSelector,
    service: &str,
) -> Option<String> {
    hosts
        .order(catalog, service)
        .ok()
        .and_then(|order| order.into_iter().next())
}

fn calendar_urls(
    catalog: &crate::proto::u2c::Catalog,
    hosts: &mut HostSelector,
) -> Option<CalendarUrls> {
    Some(CalendarUrls {
        calendar: first_url(catalog, hosts, "calendar")?,
        kms: first_url(catalog, hosts, "kms")?,
    })
}

/// Starts media reachability; it runs once `source` carries the catalog's calliope link.
fn start_reachability(
    ctx: &SessionContext,
    tasks: &Tasks,
    source: watch::Receiver<Option<DiscoverySource>>,
) {
    let config = &ctx.config.reachability;
    if !config.enabled {
        ctx.status
            .send_modify(|s| s.reachability.state = ReachabilityState::Disabled);
        return;
    }
    let task = ReachabilityTask {
        handle: ctx.reachability.clone(),
        source,
        options: ProbeOptions::from_config(config),
        interval: config.interval_secs.map(|s| Duration::from_secs(s.max(1))),
        retry: ctx.backoff(),
        status: slices::reachability(&ctx.status),
    };
    tasks.spawn(Subsystem::Media.span(), |shutdown| task.run(shutdown));
}

/// The catalog's calliope link with the client and the cloud trust for xtls probes; `None`
/// (logged) when media reachability is off or the catalog has no calliope service.
fn calliope_source(
    ctx: &SessionContext,
    catalog: &crate::proto::u2c::Catalog,
    hosts: &mut HostSelector,
    client: &AuthedClient,
    trust: &TrustStore,
) -> Option<DiscoverySource> {
    if !ctx.config.reachability.enabled {
        return None;
    }
    let Some(calliope) = first_url(catalog, hosts, "calliope") else {
        tracing::warn!("the service catalog has no calliope service; no media reachability");
        return None;
    };
    match trust.client_config() {
        Ok(tls) => Some(DiscoverySource {
            client: client.clone(),
            calliope,
            tls: Arc::new(tls),
        }),
        Err(e) => {
            tracing::error!("media reachability disabled: {e}");
            None
        }
    }
}

enum RegistrationOutcome {
    NeedsActivation(String),
    Retry(String),
}

/// One registration pass: catalog, then refresh (or register when new or forgotten).
async fn registration_step(
    ctx: &SessionContext,
    client: &AuthedClient,
    shared: &Arc<Mutex<Credentials>>,
    hosts: &mut HostSelector,
    current: Option<&Registered>,
) -> Result<(Registered, Option<crate::proto::u2c::Catalog>), RegistrationOutcome> {
    let credentials = shared.lock().await.clone();
    let body = ctx.register_body(&credentials);
    let classify = |e: registration::RegistrationError| match &e {
        registration::RegistrationError::Cloud(crate::cloud::authed::CloudError::Token(t))
            if t.needs_activation() =>
        {
            RegistrationOutcome::NeedsActivation(t.to_string())
        }
        _ => RegistrationOutcome::Retry(e.to_string()),
    };
    if let Some(current) = current {
        match registration::refresh(client, current, &body)
            .await
            .map_err(classify)?
        {
            Refreshed::Unchanged => {
                ctx.status.send_modify(|s| s.registration.refreshes += 1);
                return Ok((current.clone(), None));
            }
            Refreshed::Updated(updated) => {
                store_registration(ctx, shared, &updated).await;
                ctx.status.send_modify(|s| s.registration.refreshes += 1);
                return Ok((updated, None));
            }
            Refreshed::Gone => {
                tracing::warn!("WDM no longer knows this device (404); registering again");
            }
        }
    }
    ctx.set_registration(RegistrationState::Registering, None);
    let u2c = credentials
        .service_urls
        .get("u2c")
        .cloned()
        .unwrap_or_default();
    let catalog = registration::fetch_catalog(client, &u2c)
        .await
        .map_err(classify)?;
    let registered = registration::register(client, &catalog, hosts, &body)
        .await
        .map_err(classify)?;
    store_registration(ctx, shared, &registered).await;
    Ok((registered, Some(catalog)))
}

async fn store_registration(
    ctx: &SessionContext,
    shared: &Arc<Mutex<Credentials>>,
    registered: &Registered,
) {
    {
        let mut credentials = shared.lock().await;
        credentials.registration = Some(StoredRegistration {
            url: registered.registration.url.clone(),
            etag: registered.etag.clone(),
            web_socket_url: registered.registration.web_socket_url.clone(),
        });
        if let Err(e) = credentials.save(&ctx.state) {
            tracing::error!("cannot save the registration: {e}");
        }
    }
    let features = registered
        .registration
        .features
        .all()
        .into_iter()
        .map(|(group, key, value)| (group.to_string(), key.to_string(), value.to_json()))
        .collect();
    ctx.status.send_modify(|s| {
        s.registration.state = RegistrationState::Registered;
        s.registration.detail = None;
        s.registration.device_url = Some(registered.registration.url.clone());
        s.registration.features = features;
    });
}

fn needs_activation(ctx: &SessionContext, reason: &str) -> Next {
    tracing::error!(
        message_id = message_id::NEEDS_ACTIVATION,
        "{reason}; waiting for a new activation code (roomd activate)"
    );
    ctx.set_activation(ActivationState::NeedsActivation {
        reason: reason.to_string(),
    });
    ctx.set_registration(RegistrationState::Disconnected, None);
    Next::NeedsActivation
}

/// Unregisters when registered (best effort), then wipes the state directory.
async fn factory_reset(
    ctx: &SessionContext,
    registered: Option<(AuthedClient, String)>,
) -> Result<String, String> {
    if let Some((client, url)) = registered {
        match registration::unregister(&client, &url).await {
            Ok(()) => tracing::info!("unregistered from WDM"),
            Err(e) => tracing::warn!("could not unregister from WDM ({e}); wiping anyway"),
        }
    }
    ctx.bookings.update(|m| {
        *m = Default::default();
        ((), true)
    });
    // The cache writer persists the emptied model in the background: let it finish first,
    // so its temporary file does not vanish under the wipe (or reappear after it).
    let cleared = *ctx.bookings.generation().borrow();
    let mut persisted = ctx.bookings.persisted();
    if tokio::time::timeout(
        Duration::from_secs(5),
        persisted.wait_for(|g| *g >= cleared),
    )
    .await
    .is_err()
    {
        tracing::warn!(
            "factory reset: the bookings cache was not written within 5 s; wiping anyway"
        );
    }
    let removed = ctx.state.wipe().map_err(|e| e.to_string())?;
    ctx.set_activation(ActivationState::NotActivated);
    ctx.status
        .send_modify(|s| s.registration = Default::default());
    ctx.set_registration(RegistrationState::Disconnected, None);
    tracing::warn!(
        message_id = message_id::FACTORY_RESET,
        "factory reset: credentials and state wiped ({removed} file(s))"
    );
    Ok(format!("factory reset done: {removed} file(s) removed"))
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
