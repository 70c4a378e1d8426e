//! Media reachability (wire profile §6, `docs/wire-profile-choices.md` §6): which calliope
//! media clusters the device reaches, over which transport, how fast. The result is cached
//! ([`Reachability`]), logged as seed 000 logs it, shown in `roomd status`, and carried in call
//! join bodies ([`Reachability::join_body`]).
//!
//! | module | what lives there |
//! |---|---|
//! | [`discovery`] | the cluster document, `Cache-Control: max-age` and the next run's time |
//! | [`probe`] | STUN Binding over udp, tcp and xtls; [`run_discovery`] probes every cluster at once |
//! | [`report`] | results, counting rules, log lines, the join body, the status struct |
//!
//! The task ([`ReachabilityTask`]) waits for the session to hand over a [`DiscoverySource`]
//! (once the U2C catalog has a `calliope` link), runs, and runs again after max-age ×
//! rand(0.75..1.0) (or `reachability.interval_secs`).

pub mod discovery;
pub mod probe;
pub mod report;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::net::backoff::Backoff;
use crate::shutdown::Shutdown;
use crate::status_slice::StatusSlice;

pub use discovery::{Cluster, ClusterDocument, DiscoverySource};
pub use probe::{ProbeOptions, run_discovery};
pub use report::{
    Best, ClusterResult, ReachabilityReport, ReachabilityState, ReachabilityStatus, Transport,
    TransportResult,
};

/// The latest reachability result, shared by the daemon (cheap to clone).
#[derive(Debug, Clone)]
pub struct Reachability {
    latest: watch::Sender<Option<Arc<ReachabilityReport>>>,
}

impl Default for Reachability {
    fn default() -> Self {
        Self::new()
    }
}

impl Reachability {
    pub fn new() -> Self {
        Self {
            latest: watch::Sender::new(None),
        }
    }

    /// The last complete run, if any finished yet.
    pub fn latest(&self) -> Option<Arc<ReachabilityReport>> {
        self.latest.borrow().clone()
    }

    /// The join body's `reachability` object (`{}` before the first run completed).
    pub fn join_body(&self) -> serde_json::Value {
        match self.latest() {
            Some(report) => report.join_body(),
            None => serde_json::json!({}),
        }
    }

    /// Sees every completed run.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<ReachabilityReport>>> {
        self.latest.subscribe()
    }

    /// Makes `report` the latest.
    pub fn publish(&self, report: ReachabilityReport) -> Arc<ReachabilityReport> {
        let report = Arc::new(report);
        self.latest.send_replace(Some(Arc::clone(&report)));
        report
    }
}

/// The periodic discovery task.
#[derive(Debug)]
pub struct ReachabilityTask {
    pub handle: Reachability,
    /// Set by the session once the catalog has a `calliope` link.
    pub source: watch::Receiver<Option<DiscoverySource>>,
    pub options: ProbeOptions,
    /// Overrides max-age × rand(0.75..1.0) between runs.
    pub interval: Option<Duration>,
    /// Delays after a failed discovery request.
    pub retry: Backoff,
    pub status: StatusSlice<ReachabilityStatus>,
}

impl ReachabilityTask {
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut next_at: Option<Instant> = None;
        let mut last_url: Option<String> = None;
        loop {
            let source = self.source.borrow_and_update().clone();
            let Some(source) = source else {
                tokio::select! {
                    changed = self.source.changed() => if changed.is_err() { return },
                    _ = shutdown.recv() => return,
                }
                continue;
            };
            if last_url.as_deref() != Some(&source.url()) {
                // A new calliope service: what we had is about other clusters.
                next_at = None;
            }
            let at = next_at.unwrap_or_else(Instant::now);
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                changed = self.source.changed() => {
                    if changed.is_err() { return }
                    continue;
                }
                _ = shutdown.recv() => return,
            }
            last_url = Some(source.url());
            tokio::select! {
                next = self.run_once(&source) => next_at = Some(next),
                _ = shutdown.recv() => return,
            }
        }
    }

    /// One run: the document, the probes, the logs, the status; returns when to run next.
    async fn run_once(&mut self, source: &DiscoverySource) -> Instant {
        self.status.update(|s| {
            s.state = ReachabilityState::Running;
            s.detail = None;
        });
        tracing::info!("Starting calliope discovery");
        let discovered = match source.fetch().await {
            Ok(discovered) => discovered,
            Err(e) => {
                let delay = self.retry.next_delay();
                tracing::warn!(
                    "CalliopeDiscovery: {} failed: {e}; retrying in {:.1} s",
                    source.url(),
                    delay.as_secs_f64()
                );
                self.status.update(|s| {
                    s.state = ReachabilityState::Failed;
                    s.detail = Some(e.to_string());
                    s.next_run_in = Some(delay);
                });
                return Instant::now() + delay;
            }
        };
        self.retry.reset();
        let fetched = Instant::now();
        let delay = match self.interval {
            Some(interval) => {
                tracing::info!(
                    "CalliopeDiscovery next run in {} s (reachability.interval_secs)",
                    interval.as_secs()
                );
                interval
            }
            None => discovery::schedule_next(
                discovered
                    .max_age_secs
                    .unwrap_or(discovery::DEFAULT_MAX_AGE_SECS),
            ),
        };
        let report = run_discovery(&discovered.document, &self.options, source.tls.clone()).await;
        tracing::info!("{}", report.summary_line());
        if let Some(best) = report.best_overall() {
            tracing::info!("{}", best.log_line());
        }
        let report = self.handle.publish(report);
        self.status.update(|s| {
            s.apply(&report);
            s.next_run_in = Some(delay);
        });
        fetched + delay
    }
}
