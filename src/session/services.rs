//! The services an activated session starts beside registration: the event socket, the
//! calendar sync and media reachability, and the catalog lookups that feed them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::SessionContext;
use crate::bookings::sync::{Sync, SyncTimers};
use crate::cloud::authed::AuthedClient;
use crate::cloud::calendar::{CalendarClient, CalendarUrls};
use crate::cloud::mercury::Supervisor;
use crate::cloud::mercury::link::CloudLink;
use crate::cloud::registration::HostSelector;
use crate::cloud::tokens::TokenManager;
use crate::events::Namespace;
use crate::net::tls::TrustStore;
use crate::platform::logging::Subsystem;
use crate::reachability::{DiscoverySource, ProbeOptions, ReachabilityState, ReachabilityTask};
use crate::shutdown::Tasks;
use crate::status::slices;

/// Starts the event-socket supervisor and the task that mirrors its status; the socket
/// dials once `urls` carries the registration's `webSocketUrl`.
pub(super) fn start_event_socket(
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
pub(super) fn start_calendar_sync(
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

/// The preferred base URL of a catalog service.
pub(super) fn first_url(
    catalog: &crate::proto::u2c::Catalog,
    hosts: &mut HostSelector,
    service: &str,
) -> Option<String> {
    hosts
        .order(catalog, service)
        .ok()
        .and_then(|order| order.into_iter().next())
}

/// The calendar and KMS base URLs: the best host of each service in the catalog.
pub(super) fn calendar_urls(
    catalog: &crate::proto::u2c::Catalog,
    hosts: &mut HostSelector,
) -> Option<CalendarUrls> {
    Some(CalendarUrls {
        calendar: first_url(catalog, hosts, "calendar")?,
        kms: first_url(catalog, hosts, "kms")?,
    })
}

/// Starts media reachability; it runs once `source` carries the catalog's calliope link.
pub(super) fn start_reachability(
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
pub(super) fn calliope_source(
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
