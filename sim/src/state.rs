//! Shared state: what every service and the admin API read and change.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::events::Hub;
use crate::faults::FaultTable;
use crate::recorder::{BoundedLog, LOG_CAPACITY, ReceivedRequest};
use crate::scenario::Scenario;
use crate::shutdown::Shutdown;
use crate::udp::UdpDatagram;

/// The simulator's data; shared by the HTTPS services, the admin API and [`crate::SimHandle`].
#[derive(Debug)]
pub(crate) struct SimState {
    scenario: Mutex<Scenario>,
    pub requests: BoundedLog<ReceivedRequest>,
    pub faults: FaultTable,
    pub hub: Arc<Hub>,
    pub udp: BoundedLog<UdpDatagram>,
}

impl SimState {
    pub(crate) fn new(scenario: Scenario) -> Self {
        Self {
            scenario: Mutex::new(scenario),
            requests: BoundedLog::new(LOG_CAPACITY),
            faults: FaultTable::default(),
            hub: Arc::new(Hub::default()),
            udp: BoundedLog::new(LOG_CAPACITY),
        }
    }

    pub(crate) fn scenario(&self) -> Scenario {
        lock(&self.scenario).clone()
    }

    /// Reads one part of the scenario without cloning all of it.
    pub(crate) fn with_scenario<R>(&self, f: impl FnOnce(&Scenario) -> R) -> R {
        f(&lock(&self.scenario))
    }

    pub(crate) fn replace_scenario(&self, scenario: Scenario) {
        *lock(&self.scenario) = scenario;
    }

    pub(crate) fn set_gds_state(&self, state: &str) {
        lock(&self.scenario).gds.service_state = state.to_owned();
    }
}

/// State of the HTTPS router: the data plus a shutdown token for tasks a handler spawns (WebSockets).
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub sim: Arc<SimState>,
    pub shutdown: Shutdown,
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the data consistent, and a
/// panicking test thread must not take the whole simulator down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
