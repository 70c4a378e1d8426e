//! Shutdown signalling, as in mini-redis: one watch channel every task observes, plus a completion
//! channel whose sender every task holds, so the owner knows when the last task has finished.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// Held by every task. Cloning it keeps the owner's [`Trigger::wait_all`] waiting until it is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Shutdown {
    signal: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
}

impl Shutdown {
    /// Resolves once shutdown has been requested (or the trigger was dropped).
    pub(crate) async fn wait(&self) {
        let mut signal = self.signal.clone();
        // An error means the trigger is gone, which is also a request to stop.
        let _ = signal.wait_for(|stop| *stop).await;
    }
}

/// Held by the owner: requests shutdown and waits for the tasks. Dropping it also stops the tasks.
#[derive(Debug)]
pub(crate) struct Trigger {
    signal: watch::Sender<bool>,
    done: mpsc::Receiver<()>,
}

impl Trigger {
    pub(crate) fn trigger(&self) {
        self.signal.send_replace(true);
    }

    /// Requests shutdown and waits until every [`Shutdown`] clone is dropped, at most `bound`.
    /// Returns false when the bound elapsed first.
    pub(crate) async fn wait_all(mut self, bound: Duration) -> bool {
        self.trigger();
        // `recv` yields None only once every sender (one per task) is dropped; no task sends.
        tokio::time::timeout(bound, self.done.recv()).await.is_ok()
    }
}

pub(crate) fn channel() -> (Trigger, Shutdown) {
    let (signal_tx, signal_rx) = watch::channel(false);
    let (done_tx, done_rx) = mpsc::channel(1);
    (
        Trigger {
            signal: signal_tx,
            done: done_rx,
        },
        Shutdown {
            signal: signal_rx,
            _done: done_tx,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_every_holder() {
        let (trigger, shutdown) = channel();
        let task_token = shutdown.clone();
        drop(shutdown);
        let task = tokio::spawn(async move {
            task_token.wait().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(task_token);
        });
        assert!(trigger.wait_all(Duration::from_secs(5)).await);
        assert!(task.is_finished() || task.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_when_a_task_hangs() {
        let (trigger, shutdown) = channel();
        let _stuck = shutdown; // never dropped while we wait
        assert!(!trigger.wait_all(Duration::from_secs(5)).await);
    }
}
