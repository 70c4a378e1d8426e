//! Shared state: what every service and the admin API read and change.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::activation::Activation;
use crate::alt::AltControl;
use crate::calendar::Calendar;
use crate::calliope::Calliope;
use crate::faults::FaultTable;
use crate::locus::Loci;
use crate::media::MediaNode;
use crate::mercury::Hub;
use crate::recorder::{BoundedLog, LOG_CAPACITY, ReceivedRequest};
use crate::restart::{FrontEnds, Restarted};
use crate::scenario::{Scenario, WdmFeatures};
use crate::shutdown::Shutdown;
use crate::tokens::TokenStore;
use crate::udp::UdpDatagram;
use crate::wdm::WdmStore;

/// Where the listeners are, for services that put URLs in their answers.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    /// `https://localhost:<proxy port>`: base of every post-activation service.
    pub service_base: String,
    pub proxy_port: u16,
    pub alt_port: u16,
    /// The proxy CA, sent in the service data's `trustList`.
    pub proxy_ca_pem: String,
    /// The media node the join answers' remote SDP names.
    pub media_node: std::net::SocketAddr,
}

/// The simulator's data; shared by the HTTPS services, the admin API and [`crate::SimHandle`].
#[derive(Debug)]
pub(crate) struct SimState {
    scenario: Mutex<Scenario>,
    pub requests: BoundedLog<ReceivedRequest>,
    pub faults: FaultTable,
    /// The mercury event WebSocket: sockets, registrations, logs, admin settings.
    pub mercury: Arc<Hub>,
    pub udp: BoundedLog<UdpDatagram>,
    pub endpoints: Endpoints,
    pub activation: Activation,
    pub tokens: TokenStore,
    pub wdm: WdmStore,
    pub alt: Arc<AltControl>,
    /// The HTTPS listeners a front-end restart closes.
    pub front_ends: FrontEnds,
    /// Calendar bookings, KMS keys, list page faults.
    pub calendar: Calendar,
    /// Every locus and the delta fault mode.
    pub locus: Loci,
    /// The media clusters (bound at start).
    pub calliope: Arc<Calliope>,
    /// The media node: offers, sessions, SCA/SCR records (its socket is bound at start).
    pub media: MediaNode,
}

impl SimState {
    pub(crate) fn new(
        scenario: Scenario,
        endpoints: Endpoints,
        alt: Arc<AltControl>,
        front_ends: [Arc<AltControl>; 3],
        calliope: Arc<Calliope>,
        media: MediaNode,
    ) -> Self {
        Self {
            activation: Activation::new(&scenario),
            mercury: Arc::new(Hub::new(auth_timeout(&scenario))),
            calendar: Calendar::new(&scenario),
            scenario: Mutex::new(scenario),
            requests: BoundedLog::new(LOG_CAPACITY),
            faults: FaultTable::default(),
            udp: BoundedLog::new(LOG_CAPACITY),
            endpoints,
            tokens: TokenStore::default(),
            wdm: WdmStore::default(),
            alt,
            front_ends: FrontEnds::new(front_ends),
            locus: Loci::default(),
            calliope,
            media,
        }
    }

    /// A front-end restart (`crate::restart`).
    pub(crate) fn restart(&self, down: Duration) -> anyhow::Result<Restarted> {
        self.front_ends.restart(&self.mercury, down)
    }

    pub(crate) fn scenario(&self) -> Scenario {
        lock(&self.scenario).clone()
    }

    /// Reads one part of the scenario without cloning all of it.
    pub(crate) fn with_scenario<R>(&self, f: impl FnOnce(&Scenario) -> R) -> R {
        f(&lock(&self.scenario))
    }

    /// Replaces the scenario; activation follows its devices (unchanged codes keep their state),
    /// mercury its authorization timeout (for sockets opened afterwards) and the calendar its
    /// bookings (only when they changed) and keys (added, never replaced).
    pub(crate) fn replace_scenario(&self, scenario: Scenario) {
        self.activation.sync(&scenario);
        self.mercury.set_auth_timeout(auth_timeout(&scenario));
        let mut current = lock(&self.scenario);
        self.calendar.sync(&current, &scenario);
        *current = scenario;
    }

    pub(crate) fn set_gds_state(&self, state: &str) {
        lock(&self.scenario).gds.service_state = state.to_owned();
    }

    /// New WDM features: kept in the scenario for new registrations and applied to every device.
    pub(crate) fn set_wdm_features(&self, features: WdmFeatures) {
        self.wdm.set_features(&features);
        lock(&self.scenario).wdm.features = features;
    }
}

fn auth_timeout(scenario: &Scenario) -> Duration {
    Duration::from_secs(scenario.mercury.auth_timeout_secs)
}

/// Which listener a router serves, for URLs that point back at it and for the recorder.
#[derive(Debug)]
pub(crate) struct ListenerCtx {
    /// `main`, `proxy` or `alt`.
    pub name: &'static str,
    /// `https://localhost:<port>`.
    pub base_url: String,
}

/// State of the HTTPS router: the data plus a shutdown token for tasks a handler spawns (WebSockets).
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub sim: Arc<SimState>,
    pub shutdown: Shutdown,
    pub listener: Arc<ListenerCtx>,
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the data consistent, and a
/// panicking test thread must not take the whole simulator down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
