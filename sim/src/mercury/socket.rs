//! One mercury socket: authorizing → online → (shutting-down) → closed.
//!
//! The task owns the WebSocket. It reads the client (authorization, acks, pings), writes what the
//! hub queues (events, shutdown, raw frames, closes) in order, and, while stalled, does neither:
//! the TCP connection stays open but silent, like a half-open connection, so a client notices only
//! through its ping timeout.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};

use super::frames::{self, ClientFrame};
use super::hub::{Command, Outcome, SocketIo};
use super::{ClosedBy, PongMode};
use crate::auth::bearer_token;
use crate::shutdown::Shutdown;
use crate::state::SimState;

/// How long a closing socket waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Checks the authorization frame's token and the registration: `Err((code, reason))` closes.
fn authorize(sim: &SimState, registration: &str, token: &str) -> Result<(), (u16, &'static str)> {
    let valid = bearer_token(token).is_some_and(|t| sim.tokens.check_access(t).is_some());
    if !valid {
        return Err((4401, "invalid token"));
    }
    if !sim.wdm.contains(registration) {
        return Err((4403, "unknown registration"));
    }
    Ok(())
}

fn server(code: u16, reason: &str) -> Outcome {
    Outcome {
        code: Some(code),
        reason: Some(reason.to_owned()),
        by: ClosedBy::Server,
    }
}

fn aborted(reason: &str) -> Outcome {
    Outcome {
        code: None,
        reason: Some(reason.to_owned()),
        by: ClosedBy::Aborted,
    }
}

fn dropped() -> Outcome {
    Outcome {
        code: None,
        reason: None,
        by: ClosedBy::Dropped,
    }
}

/// Closes with `code`, unless stalled: a stalled socket cannot write, so its TCP is dropped instead.
async fn close_unless_stalled(
    socket: &mut WebSocket,
    stalled: bool,
    code: u16,
    reason: &str,
) -> Outcome {
    if stalled {
        aborted(&format!(
            "{reason} (stalled: dropped without a close frame)"
        ))
    } else {
        close(socket, code, reason).await
    }
}

pub(crate) async fn run(
    mut socket: WebSocket,
    io: SocketIo,
    registration: String,
    sim: Arc<SimState>,
    shutdown: Shutdown,
) {
    let SocketIo {
        id,
        mut commands,
        queued,
        mut stall,
        auth_timeout,
        mut finish,
    } = io;
    let hub = Arc::clone(&sim.mercury);
    let auth_deadline = tokio::time::sleep(auth_timeout);
    tokio::pin!(auth_deadline);
    let mut authorized = false;
    let mut stalled = *stall.borrow_and_update();
    let mut stall_alive = true;
    // Frames queued while stalled: written on unstall, lost if the socket closes first.
    let mut held: VecDeque<String> = VecDeque::new();

    let outcome = 'run: loop {
        tokio::select! {
            () = shutdown.wait() => {
                // The simulator is stopping: tell the client why, but do not wait for its answer.
                let reason = "roomd-sim shutting down";
                if stalled {
                    break aborted(reason);
                }
                let frame = CloseFrame { code: 1001, reason: reason.into() };
                let _ = socket.send(Message::Close(Some(frame))).await;
                break server(1001, reason);
            }
            () = &mut auth_deadline, if !authorized => {
                break close_unless_stalled(&mut socket, stalled, 1008, "authorization timeout").await;
            }
            changed = stall.changed(), if stall_alive => {
                if changed.is_err() {
                    stall_alive = false;
                    continue;
                }
                stalled = *stall.borrow_and_update();
                tracing::info!(connection = id, stalled, "mercury socket stall changed");
                if !stalled {
                    while let Some(text) = held.pop_front() {
                        if socket.send(Message::Text(text.into())).await.is_err() {
                            break 'run dropped();
                        }
                    }
                }
            }
            cmd = commands.recv() => match cmd {
                Some(Command::Text(text)) => {
                    queued.fetch_sub(1, Ordering::AcqRel);
                    if stalled {
                        held.push_back(text);
                    } else if socket.send(Message::Text(text.into())).await.is_err() {
                        break dropped();
                    }
                }
                Some(Command::Close { code, reason, admin }) => {
                    break if admin {
                        close(&mut socket, code, &reason).await
                    } else {
                        close_unless_stalled(&mut socket, stalled, code, &reason).await
                    };
                }
                Some(Command::Abort) => break aborted("aborted by admin"),
                None => break aborted("hub gone"),
            },
            msg = socket.recv(), if !stalled => match msg {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    hub.record_frame(id, &registration, text.to_owned(), false);
                    let frame = frames::parse_client(text);
                    if !authorized {
                        // The first frame must authorize.
                        let ClientFrame::Authorization { token } = frame else {
                            break close(&mut socket, 4400, "bad authorization frame").await;
                        };
                        if let Err((code, reason)) = authorize(&sim, &registration, &token) {
                            break close(&mut socket, code, reason).await;
                        }
                        authorized = true;
                        // False only when an admin close is already queued; it comes next.
                        hub.go_online(id);
                        continue;
                    }
                    match frame {
                        ClientFrame::Ack { message_id } => hub.record_ack(id, &message_id),
                        ClientFrame::Ping { id: ping } => {
                            let pong = match hub.record_ping(id) {
                                PongMode::Answer => Some(frames::pong(&ping)),
                                PongMode::Mismatch => {
                                    Some(frames::pong(&serde_json::Value::from(frames::new_id())))
                                }
                                PongMode::Withhold => None,
                            };
                            if let Some(pong) = pong {
                                if socket.send(Message::Text(pong.into())).await.is_err() {
                                    break dropped();
                                }
                                hub.pong_sent(id);
                            }
                        }
                        // Recorded above; anything else (not JSON included) is ignored.
                        ClientFrame::Authorization { .. } | ClientFrame::Other | ClientFrame::NotJson => {}
                    }
                }
                Some(Ok(Message::Binary(data))) => {
                    hub.record_frame(
                        id,
                        &registration,
                        String::from_utf8_lossy(&data).into_owned(),
                        true,
                    );
                    if !authorized {
                        break close(&mut socket, 4400, "bad authorization frame").await;
                    }
                }
                // WebSocket-level pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    // The next read flushes the close reply the WebSocket layer queued.
                    let _ = tokio::time::timeout(CLOSE_GRACE, socket.recv()).await;
                    break Outcome {
                        code: frame.as_ref().map(|f| f.code),
                        reason: frame.map(|f| f.reason.as_str().to_owned()),
                        by: ClosedBy::Client,
                    };
                }
                Some(Err(e)) => {
                    tracing::info!(connection = id, error = %e, "mercury socket error");
                    break dropped();
                }
                None => break dropped(),
            },
        }
    };
    if !held.is_empty() {
        tracing::info!(
            connection = id,
            lost = held.len(),
            "mercury socket closed while stalled; held frames lost"
        );
    }
    finish.outcome = outcome;
    // Dropping the socket ends the TCP connection; dropping `finish` marks the connection closed.
    drop(socket);
    drop(finish);
}

/// Sends a close frame and waits briefly for the client's answer, so the close handshake completes.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) -> Outcome {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return dropped();
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    server(code, reason)
}
