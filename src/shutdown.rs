//! Graceful shutdown, as in mini-redis: a broadcast every task listens to, and a
//! completion sentinel (an mpsc sender each task holds) whose closing proves every task
//! has finished.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tracing::Instrument;

/// A task's view of the shutdown signal.
#[derive(Debug)]
pub struct Shutdown {
    is_shutdown: bool,
    notify: broadcast::Receiver<()>,
}

impl Shutdown {
    pub fn is_shutdown(&self) -> bool {
        self.is_shutdown
    }

    /// Waits for the shutdown signal; returns at once if it was already seen.
    pub async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        // Closed or lagged both mean the daemon is going away.
        let _ = self.notify.recv().await;
        self.is_shutdown = true;
    }
}

/// Spawns the daemon's tasks and stops them all.
#[derive(Debug)]
pub struct Tasks {
    notify: broadcast::Sender<()>,
    done_tx: mpsc::Sender<()>,
    done_rx: mpsc::Receiver<()>,
}

#[derive(Debug, displaydoc::Display, thiserror::Error)]
/// tasks still running {0:?} after the shutdown signal
pub struct ShutdownTimeout(pub Duration);

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}

impl Tasks {
    pub fn new() -> Self {
        let (notify, _) = broadcast::channel(1);
        let (done_tx, done_rx) = mpsc::channel(1);
        Self {
            notify,
            done_tx,
            done_rx,
        }
    }

    pub fn shutdown_signal(&self) -> Shutdown {
        Shutdown {
            is_shutdown: false,
            notify: self.notify.subscribe(),
        }
    }

    /// Spawns `task` inside `span`; the task gets its own [`Shutdown`] and holds the
    /// completion sentinel until it returns.
    pub fn spawn<F, Fut>(&self, span: tracing::Span, task: F)
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let done = self.done_tx.clone();
        let fut = task(self.shutdown_signal());
        tokio::spawn(
            async move {
                fut.await;
                drop(done);
            }
            .instrument(span),
        );
    }

    /// Signals every task and waits for all of them, at most `within`.
    pub async fn shutdown(self, within: Duration) -> Result<(), ShutdownTimeout> {
        let Tasks {
            notify,
            done_tx,
            mut done_rx,
        } = self;
        drop(notify);
        drop(done_tx);
        tokio::time::timeout(within, done_rx.recv())
            .await
            .map(|_| ())
            .map_err(|_| ShutdownTimeout(within))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn every_task_sees_the_signal_and_completes() {
        let tasks = Tasks::new();
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let finished = finished.clone();
            tasks.spawn(tracing::Span::none(), |mut shutdown| async move {
                shutdown.recv().await;
                assert!(shutdown.is_shutdown());
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        tasks.shutdown(Duration::from_secs(5)).await.unwrap();
        assert_eq!(finished.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_task_is_reported() {
        let tasks = Tasks::new();
        tasks.spawn(tracing::Span::none(), |_shutdown| async move {
            std::future::pending::<()>().await;
        });
        let err = tasks.shutdown(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "tasks still running 5s after the shutdown signal"
        );
    }
}
