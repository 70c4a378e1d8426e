//! The event WebSocket at `GET /mercury` (placeholder for the mercury protocol, wire profile §3).
//!
//! Today it records the text frames clients send and lets the admin API push frames to, or close,
//! every connected socket.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use tokio::sync::mpsc;

use crate::recorder::{BoundedLog, LOG_CAPACITY};
use crate::shutdown::Shutdown;
use crate::state::{AppState, lock};

/// Frames queued per socket before pushes to it count as undelivered.
const QUEUE_DEPTH: usize = 256;

/// How long a closing socket waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What the admin side asks one socket task to do.
#[derive(Debug)]
enum Command {
    Text(String),
    Close {
        code: u16,
        reason: String,
    },
    /// Drop the TCP connection without a close frame (the client sees 1006).
    Abort,
}

/// Connected sockets and the frames they sent.
#[derive(Debug)]
pub(crate) struct Hub {
    next_id: AtomicU64,
    clients: Mutex<HashMap<u64, mpsc::Sender<Command>>>,
    pub received: BoundedLog<String>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            next_id: AtomicU64::new(1),
            clients: Mutex::new(HashMap::new()),
            received: BoundedLog::new(LOG_CAPACITY),
        }
    }
}

/// Removes its socket from the hub when dropped, whether the socket ran or the upgrade failed.
#[derive(Debug)]
struct Registration {
    hub: Arc<Hub>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.hub.clients).remove(&self.id);
    }
}

impl Hub {
    fn register(self: &Arc<Self>) -> (Registration, mpsc::Receiver<Command>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        lock(&self.clients).insert(id, tx);
        (
            Registration {
                hub: Arc::clone(self),
                id,
            },
            rx,
        )
    }

    /// Sends to every socket; returns how many accepted the command.
    fn send_all(&self, make: impl Fn() -> Command) -> usize {
        lock(&self.clients)
            .values()
            .filter(|tx| tx.try_send(make()).is_ok())
            .count()
    }

    pub(crate) fn connected(&self) -> usize {
        lock(&self.clients).len()
    }

    /// Queues one text frame to every connected socket.
    pub(crate) fn broadcast(&self, text: &str) -> usize {
        self.send_all(|| Command::Text(text.to_owned()))
    }

    /// Closes every socket with `code` and `reason`.
    pub(crate) fn close_all(&self, code: u16, reason: &str) -> anyhow::Result<usize> {
        validate_close(code, reason)?;
        Ok(self.send_all(|| Command::Close {
            code,
            reason: reason.to_owned(),
        }))
    }

    /// Drops every connection without a close handshake.
    pub(crate) fn abort_all(&self) -> usize {
        self.send_all(|| Command::Abort)
    }
}

/// Codes a server may put in a close frame (RFC 6455 §7.4): 1005, 1006 and 1015 are never sent,
/// 1004 is reserved, and the reason must fit the 125-byte control frame.
fn validate_close(code: u16, reason: &str) -> anyhow::Result<()> {
    let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !sendable {
        bail!("close code {code} cannot be sent; use 1000-1003, 1007-1014 or 3000-4999");
    }
    if reason.len() > 123 {
        bail!("close reason is {} bytes; at most 123 fit", reason.len());
    }
    Ok(())
}

/// `GET /mercury`: upgrades to a WebSocket.
pub(crate) async fn upgrade(State(app): State<AppState>, ws: WebSocketUpgrade) -> Response {
    // Register before answering 101, so a push right after the client's handshake reaches it.
    let (registration, commands) = app.sim.hub.register();
    let hub = Arc::clone(&app.sim.hub);
    let shutdown = app.shutdown.clone();
    ws.on_upgrade(move |socket| run(socket, commands, registration, hub, shutdown))
}

async fn run(
    mut socket: WebSocket,
    mut commands: mpsc::Receiver<Command>,
    registration: Registration,
    hub: Arc<Hub>,
    shutdown: Shutdown,
) {
    tracing::info!(id = registration.id, "websocket connected");
    loop {
        tokio::select! {
            () = shutdown.wait() => {
                close(&mut socket, 1001, "roomd-sim shutting down").await;
                break;
            }
            cmd = commands.recv() => match cmd {
                Some(Command::Text(text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Command::Close { code, reason }) => {
                    close(&mut socket, code, &reason).await;
                    break;
                }
                Some(Command::Abort) | None => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => hub.received.push(text.as_str().to_owned()),
                Some(Ok(Message::Binary(data))) => {
                    tracing::debug!(len = data.len(), "websocket binary frame ignored");
                }
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    tracing::info!(id = registration.id, ?frame, "websocket closed by client");
                    break;
                }
                Some(Err(e)) => {
                    tracing::info!(id = registration.id, error = %e, "websocket error");
                    break;
                }
                None => break,
            },
        }
    }
    drop(registration);
}

/// Sends a close frame and waits briefly for the client's answer, so the close handshake completes.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes() {
        assert!(validate_close(4000, "replaced").is_ok());
        assert!(validate_close(1000, "").is_ok());
        assert!(validate_close(1006, "").is_err());
        assert!(validate_close(1005, "").is_err());
        assert!(validate_close(999, "").is_err());
        assert!(validate_close(4000, &"x".repeat(124)).is_err());
    }

    #[test]
    fn registration_is_removed_on_drop() {
        let hub = Arc::new(Hub::default());
        let (reg, mut rx) = hub.register();
        assert_eq!(hub.connected(), 1);
        assert_eq!(hub.broadcast("{}"), 1);
        assert!(matches!(rx.try_recv(), Ok(Command::Text(t)) if t == "{}"));
        drop(reg);
        assert_eq!(hub.connected(), 0);
        assert_eq!(hub.broadcast("{}"), 0);
    }
}
