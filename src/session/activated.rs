//! Activated: registration, token refresh, trust refresh and commands, until the credentials
//! stop working, a factory reset or shutdown ends it. [`ActivatedSession`] holds the state
//! between events; each event has its method, which says whether the session goes on.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::activation::{log_trust_list, trust_with};
use super::error::SessionError;
use super::services::{
    calendar_urls, calliope_source, first_url, start_calendar_sync, start_event_socket,
    start_reachability,
};
use super::{Next, SessionCommand, SessionContext};
use crate::cloud::authed::AuthedClient;
use crate::cloud::calendar::CalendarClient;
use crate::cloud::locus::{LocusClient, LocusUrls};
use crate::cloud::mercury::MercuryStatus;
use crate::cloud::registration::{self, HostSelector, Refreshed, Registered};
use crate::cloud::tokens::{RefreshObserver, TokenManager};
use crate::net::backoff::Backoff;
use crate::net::http::HttpClient;
use crate::net::tls::TrustStore;
use crate::platform::logging::{Subsystem, message_id};
use crate::proto::u2c::Catalog;
use crate::reachability::DiscoverySource;
use crate::shutdown::{Shutdown, Tasks};
use crate::status::{ActivationState, RegistrationState};
use crate::store::credentials::{Credentials, StoredRegistration};

/// Runs the activated session with `credentials` until something ends it.
pub(super) async fn run(
    ctx: &SessionContext,
    credentials: Credentials,
    commands: &mut mpsc::Receiver<SessionCommand>,
    shutdown: &mut Shutdown,
) -> Next {
    ctx.set_activation(ActivationState::Activated {
        device_identifier: credentials.device_identifier.clone(),
        org_id: credentials.org_id.clone(),
    });
    let trust = trust_with(ctx, &credentials);
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
    let observer: RefreshObserver = Box::new(move |expires| {
        status.send_modify(|s| {
            s.registration.token_expires_at = Some(expires);
            s.registration.token_refreshes += 1;
        })
    });
    let tokens = Arc::new(
        TokenManager::new(http.clone(), ctx.state.clone(), credentials).with_observer(observer),
    );
    tokens.schedule_from_stored().await;

    let (ws_urls, ws_url_rx) = watch::channel::<Option<String>>(None);
    let (reregister_tx, mut reregister) = mpsc::channel::<()>(1);
    let (calendar, calendar_rx) = watch::channel::<Option<CalendarClient>>(None);
    let (calliope, calliope_rx) = watch::channel::<Option<DiscoverySource>>(None);
    // The calendar subscribes before the event socket starts, so it misses no event.
    let services = Tasks::new();
    start_calendar_sync(ctx, &services, calendar_rx);
    start_reachability(ctx, &services, calliope_rx);
    start_event_socket(ctx, &services, &trust, &tokens, ws_url_rx, reregister_tx);

    let mut session = ActivatedSession::new(ctx, trust, http, tokens, ws_urls, calendar, calliope);
    let next = loop {
        let refresh_at = session.token_refresh_at().await;
        let flow = tokio::select! {
            _ = tokio::time::sleep_until(session.next_registration) => session.on_registration_due().await,
            _ = tokio::time::sleep_until(refresh_at) => session.on_token_refresh_due().await,
            _ = tokio::time::sleep_until(session.next_trust) => session.on_trust_refresh_due().await,
            Some(()) = reregister.recv() => session.on_event_socket_closed(),
            command = commands.recv() => session.on_command(command).await,
            _ = shutdown.recv() => ControlFlow::Break(Next::Stop),
        };
        if let ControlFlow::Break(next) = flow {
            break next;
        }
    };
    // No registration, no calls: the manager answers dials with "not registered".
    ctx.call_services.send_replace(None);
    if let Err(e) = services.shutdown(Duration::from_secs(3)).await {
        tracing::warn!("event socket: {e}");
    }
    ctx.status
        .send_modify(|s| s.websocket = MercuryStatus::default());
    next
}

/// What an activated session keeps between events.
struct ActivatedSession<'a> {
    ctx: &'a SessionContext,
    trust: TrustStore,
    tokens: Arc<TokenManager>,
    /// The credentials as the token manager keeps them current.
    credentials: Arc<Mutex<Credentials>>,
    client: AuthedClient,
    /// The longest a cloud request backs off (`cloud.retry_max_secs`).
    retry_cap: Duration,
    hosts: HostSelector,
    registered: Option<Registered>,
    registration_backoff: Backoff,
    next_registration: Instant,
    registration_every: Duration,
    trust_every: Duration,
    next_trust: Instant,
    token_backoff: Backoff,
    token_retry_at: Option<Instant>,
    /// The registration's `webSocketUrl`, for the event socket.
    ws_urls: watch::Sender<Option<String>>,
    calendar: watch::Sender<Option<CalendarClient>>,
    calliope: watch::Sender<Option<DiscoverySource>>,
    locus_base: Option<String>,
    locus_urls: Option<LocusUrls>,
}

impl<'a> ActivatedSession<'a> {
    fn new(
        ctx: &'a SessionContext,
        trust: TrustStore,
        http: HttpClient,
        tokens: Arc<TokenManager>,
        ws_urls: watch::Sender<Option<String>>,
        calendar: watch::Sender<Option<CalendarClient>>,
        calliope: watch::Sender<Option<DiscoverySource>>,
    ) -> Self {
        let retry_cap = Duration::from_secs(ctx.config.cloud.retry_max_secs.max(1));
        let trust_every = Duration::from_secs(ctx.config.cloud.trust_refresh_secs.max(1));
        Self {
            ctx,
            trust,
            credentials: tokens.credentials().clone(),
            client: AuthedClient::new(http, tokens.clone(), retry_cap),
            tokens,
            retry_cap,
            hosts: HostSelector::default(),
            registered: None,
            registration_backoff: ctx.backoff(),
            next_registration: Instant::now(),
            registration_every: Duration::from_secs(
                ctx.config.cloud.registration_refresh_secs.max(1),
            ),
            trust_every,
            next_trust: Instant::now() + trust_every,
            token_backoff: ctx.backoff(),
            token_retry_at: None,
            ws_urls,
            calendar,
            calliope,
            locus_base: None,
            locus_urls: None,
        }
    }

    async fn token_refresh_at(&self) -> Instant {
        match self.token_retry_at {
            Some(at) => at,
            None => self.tokens.refresh_at().await,
        }
    }

    /// Registers (or refreshes the registration) and hands the services their URLs.
    async fn on_registration_due(&mut self) -> ControlFlow<Next> {
        let step = registration_step(
            self.ctx,
            &self.client,
            &self.credentials,
            &mut self.hosts,
            self.registered.as_ref(),
        )
        .instrument(Subsystem::Registration.span())
        .await;
        match step {
            Ok((now, catalog)) => {
                if let Some(catalog) = catalog {
                    self.use_catalog(&catalog);
                }
                // Every registration, refreshes included, goes to the event socket: one that
                // a close code stopped (4000, 4400/4403) starts over at the next registration
                // instead of staying down until a restart.
                match &now.registration.web_socket_url {
                    Some(url) => {
                        self.ws_urls.send_replace(Some(url.clone()));
                    }
                    None => {
                        tracing::warn!("the WDM registration has no webSocketUrl; no event socket")
                    }
                }
                let urls = self.locus_base.clone().map(|locus| LocusUrls {
                    locus,
                    device_url: now.registration.url.clone(),
                });
                if urls != self.locus_urls {
                    self.locus_urls = urls.clone();
                    let client = self.client.clone();
                    self.ctx.call_services.send_replace(urls.map(|urls| {
                        crate::calls::CallServices {
                            locus: LocusClient::new(client, urls),
                        }
                    }));
                }
                self.registered = Some(now);
                self.registration_backoff.reset();
                self.next_registration = Instant::now() + self.registration_every;
                ControlFlow::Continue(())
            }
            Err(RegistrationOutcome::NeedsActivation(reason)) => {
                ControlFlow::Break(needs_activation(self.ctx, &reason))
            }
            Err(RegistrationOutcome::Retry(reason)) => {
                let delay = self.registration_backoff.next_delay();
                let _registration = Subsystem::Registration.span().entered();
                tracing::warn!(
                    message_id = message_id::REGISTRATION_FAILED,
                    "registration failed: {reason}; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                self.ctx
                    .set_registration(RegistrationState::Registering, Some(reason));
                self.next_registration = Instant::now() + delay;
                ControlFlow::Continue(())
            }
        }
    }

    /// A fresh catalog: the Locus, calendar and calliope services it names.
    fn use_catalog(&mut self, catalog: &Catalog) {
        self.locus_base = first_url(catalog, &mut self.hosts, "locus");
        if self.locus_base.is_none() {
            tracing::warn!("the service catalog has no locus service; no calls");
        }
        match calendar_urls(catalog, &mut self.hosts) {
            Some(urls) => {
                self.calendar
                    .send_replace(Some(CalendarClient::new(self.client.clone(), urls)));
            }
            None => tracing::warn!(
                "the service catalog has no calendar or kms service; no bookings from the cloud"
            ),
        }
        if let Some(source) = calliope_source(
            self.ctx,
            catalog,
            &mut self.hosts,
            &self.client,
            &self.trust,
        ) {
            self.calliope.send_replace(Some(source));
        }
    }

    async fn on_token_refresh_due(&mut self) -> ControlFlow<Next> {
        match self.tokens.refresh(None).await {
            Ok(()) => {
                self.token_retry_at = None;
                self.token_backoff.reset();
            }
            Err(e) if e.needs_activation() => {
                return ControlFlow::Break(needs_activation(self.ctx, &e.to_string()));
            }
            Err(e) => {
                let delay = self.token_backoff.next_delay();
                tracing::warn!(
                    "{e}; retrying the token refresh in {:.1} s",
                    delay.as_secs_f64()
                );
                self.token_retry_at = Some(Instant::now() + delay);
            }
        }
        ControlFlow::Continue(())
    }

    /// Rebuilds the trust store from the platform, the configuration and the stored trustList.
    async fn on_trust_refresh_due(&mut self) -> ControlFlow<Next> {
        let credentials = self.credentials.lock().await.clone();
        self.trust = trust_with(self.ctx, &credentials);
        match HttpClient::new(&self.trust, self.ctx.timeout()) {
            Ok(http) => self.client = AuthedClient::new(http, self.tokens.clone(), self.retry_cap),
            Err(e) => tracing::error!("trust store refresh: {e}"),
        }
        log_trust_list(Some(&credentials.trust_list), self.trust_every.as_secs());
        self.ctx
            .status
            .send_modify(|s| s.registration.trust_refreshes += 1);
        self.next_trust = Instant::now() + self.trust_every;
        ControlFlow::Continue(())
    }

    /// The event socket was closed for good: register afresh (a new socket URL).
    fn on_event_socket_closed(&mut self) -> ControlFlow<Next> {
        self.registered = None;
        self.next_registration = Instant::now();
        ControlFlow::Continue(())
    }

    async fn on_command(&mut self, command: Option<SessionCommand>) -> ControlFlow<Next> {
        match command {
            None => ControlFlow::Break(Next::Stop),
            Some(SessionCommand::Activate { reply, .. }) => {
                let _ = reply.send(Err(SessionError::AlreadyActivated));
                ControlFlow::Continue(())
            }
            Some(SessionCommand::FactoryReset { reply }) => {
                let registered = self
                    .registered
                    .as_ref()
                    .map(|r| (self.client.clone(), r.registration.url.clone()));
                let _ = reply.send(super::reset::factory_reset(self.ctx, registered).await);
                ControlFlow::Break(Next::Reset)
            }
        }
    }
}

/// Why a registration pass failed.
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
) -> Result<(Registered, Option<Catalog>), RegistrationOutcome> {
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

/// The credentials no longer work: back to waiting for a code.
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
