//! A front-end restart of the simulated cloud, as a device sees a real one: every HTTPS listener
//! (main, proxy, alt) closes, so connects are refused, every open HTTP connection and event socket
//! is dropped without a close frame, and after the down time the listeners bind the same ports
//! again. The data (tokens, devices, bookings, keys, loci) is kept, as a cloud keeps it in its
//! databases while its front ends restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::bail;
use serde::Serialize;

use crate::alt::{AltControl, AltMode};
use crate::mercury::Hub;

/// What one restart did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restarted {
    /// Event sockets dropped.
    pub aborted_sockets: usize,
    /// How long the listeners stay closed.
    pub down_ms: u64,
}

/// The listeners a restart closes, and whether one is under way.
#[derive(Debug)]
pub(crate) struct FrontEnds {
    listeners: [Arc<AltControl>; 3],
    restarting: Arc<AtomicBool>,
}

impl FrontEnds {
    pub(crate) fn new(listeners: [Arc<AltControl>; 3]) -> Self {
        Self {
            listeners,
            restarting: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Closes every listener and drops every event socket now; a task re-binds after `down`.
    /// A listener that was already refusing (the alt host switched off) stays so.
    pub(crate) fn restart(&self, hub: &Hub, down: Duration) -> anyhow::Result<Restarted> {
        if down > Duration::from_secs(600) {
            bail!("down time {} ms is over the 600 s limit", down.as_millis());
        }
        if self.restarting.swap(true, Ordering::SeqCst) {
            bail!("a restart is already under way");
        }
        let mut resume = Vec::new();
        for listener in &self.listeners {
            let was = listener.mode();
            if was != AltMode::Refuse {
                if let Err(e) = listener.set_mode(AltMode::Refuse) {
                    self.restarting.store(false, Ordering::SeqCst);
                    return Err(e);
                }
                resume.push((Arc::clone(listener), was));
            }
        }
        let aborted_sockets = hub.abort(None);
        let down_ms = u64::try_from(down.as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            aborted_sockets,
            down_ms,
            "front-end restart: listeners closed"
        );
        let restarting = Arc::clone(&self.restarting);
        tokio::spawn(async move {
            tokio::time::sleep(down).await;
            for (listener, mode) in resume {
                if let Err(e) = listener.set_mode(mode) {
                    tracing::error!(error = %format!("{e:#}"), "front-end restart: re-binding failed");
                }
            }
            restarting.store(false, Ordering::SeqCst);
            tracing::info!("front-end restart: listeners serving again");
        });
        Ok(Restarted {
            aborted_sockets,
            down_ms,
        })
    }
}
