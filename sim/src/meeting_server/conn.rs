//! One events socket: reads client frames, sends the queued server messages one at a time (each
//! after the previous one's ack), closes on what the Meeting Server does not support, and goes
//! quiet in silence mode.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::ws::{self, Inbound};
use super::{CmsClose, CmsDirection, Command, MeetingServer};
use crate::shutdown::Shutdown;

/// A write the client does not take within this long drops the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a closing socket waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What reading a batch of frames decided.
enum Next {
    Continue,
    /// Close with this code and reason (a violation was recorded if it was one).
    Close(u16, String),
    /// The client sent a close frame: answer it and stop.
    ClientClosed(Option<u16>, String),
}

pub(crate) async fn run<IO>(
    cms: Arc<MeetingServer>,
    id: u64,
    notify: Arc<Notify>,
    mut io: IO,
    shutdown: Shutdown,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    tracing::info!(connection = id, "meeting server socket open");
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut deadline: Option<Instant> = None;
    let mut was_silent = false;
    let end = loop {
        if let Some(cmd) = cms.take_command(id) {
            match cmd {
                Command::Close { code, reason } => {
                    break close(&cms, id, &mut io, code, &reason).await;
                }
                Command::Abort => {
                    break CmsClose {
                        code: None,
                        reason: "dropped by the admin API".to_owned(),
                        by: "abort".to_owned(),
                    };
                }
            }
        }
        let silent = cms.is_silent(id);
        if silent != was_silent {
            tracing::info!(
                connection = id,
                silent,
                "meeting server socket silence changed"
            );
            was_silent = silent;
            // The time spent silent does not count against the client's ack.
            deadline = None;
        }
        if !silent {
            // Frames read before a silence, or several in one read, are handled here.
            match handle_frames(&cms, id, &mut io, &mut buf).await {
                Ok(Next::Continue) => {}
                Ok(Next::Close(code, reason)) => {
                    break close(&cms, id, &mut io, code, &reason).await;
                }
                Ok(Next::ClientClosed(code, reason)) => {
                    break answer_close(&cms, id, &mut io, code, reason).await;
                }
                Err(gone) => break gone,
            }
            if let Some(text) = cms.next_outgoing(id) {
                if let Err(gone) = send(&mut io, &ws::text_frame(&text)).await {
                    break gone;
                }
                deadline = None;
            }
            match cms.awaiting(id) {
                None => deadline = None,
                Some(_) if deadline.is_none() => {
                    let secs = cms.config().ack_timeout_secs;
                    deadline = Some(Instant::now() + Duration::from_secs(secs));
                }
                Some(_) => {}
            }
        }
        let ack_deadline = deadline.filter(|_| !silent);
        tokio::select! {
            () = shutdown.wait() => break close(&cms, id, &mut io, 1001, "roomd-sim shutting down").await,
            () = notify.notified() => {}
            read = io.read(&mut chunk), if !silent => match read {
                Ok(0) | Err(_) => break gone(),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
            () = sleep_until(ack_deadline), if ack_deadline.is_some() => {
                let awaiting = cms.awaiting(id);
                cms.violation(id, "ack_timeout", format!("no messageAck for messageId {awaiting:?} in time"));
                break close(&cms, id, &mut io, 1008, "messageAck timeout").await;
            }
        }
    };
    cms.closed(id, end);
    let _ = tokio::time::timeout(CLOSE_GRACE, io.shutdown()).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn gone() -> CmsClose {
    CmsClose {
        code: None,
        reason: "connection ended without a close frame".to_owned(),
        by: "gone".to_owned(),
    }
}

async fn send<IO: AsyncWrite + Unpin>(io: &mut IO, bytes: &[u8]) -> Result<(), CmsClose> {
    let write = async {
        io.write_all(bytes).await?;
        io.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(gone()),
    }
}

/// Handles every complete frame in `buf`: text goes to the protocol (its ack is sent at once),
/// everything the Meeting Server does not support closes the socket.
async fn handle_frames<IO: AsyncWrite + Unpin>(
    cms: &MeetingServer,
    id: u64,
    io: &mut IO,
    buf: &mut Vec<u8>,
) -> Result<Next, CmsClose> {
    loop {
        let frame = match ws::parse(buf) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(Next::Continue),
            Err(e) => {
                cms.violation(id, "protocol", e.reason());
                return Ok(Next::Close(e.close_code(), e.reason()));
            }
        };
        let (kind, body, violation, reason) = match frame {
            Inbound::Text(text) => {
                if let Some(ack) = cms.on_text(id, &text) {
                    send(io, &ws::text_frame(&ack)).await?;
                }
                // Stop at a silence that began meanwhile: the rest waits in `buf`.
                if cms.is_silent(id) {
                    return Ok(Next::Continue);
                }
                continue;
            }
            Inbound::Close(code, reason) => {
                cms.log(
                    id,
                    CmsDirection::Received,
                    "close",
                    json!({ "code": code, "reason": reason }),
                );
                return Ok(Next::ClientClosed(code, reason));
            }
            Inbound::Ping => (
                "ping",
                Value::Null,
                "ping_frame",
                "ping frames are not supported",
            ),
            Inbound::Pong => (
                "pong",
                Value::Null,
                "pong_frame",
                "pong frames are not supported",
            ),
            Inbound::Binary(len) => (
                "binary",
                json!({ "len": len }),
                "binary_frame",
                "binary frames are not supported",
            ),
            Inbound::Fragment => (
                "fragment",
                Value::Null,
                "fragmented_frame",
                "fragmented frames are not supported",
            ),
        };
        cms.log(id, CmsDirection::Received, kind, body);
        cms.violation(id, violation, reason);
        return Ok(Next::Close(1003, reason.to_owned()));
    }
}

/// Sends a close frame, then waits briefly for the client's (other frames are dropped).
async fn close<IO: AsyncRead + AsyncWrite + Unpin>(
    cms: &MeetingServer,
    id: u64,
    io: &mut IO,
    code: u16,
    reason: &str,
) -> CmsClose {
    cms.log(
        id,
        CmsDirection::Sent,
        "close",
        json!({ "code": code, "reason": reason }),
    );
    let end = CmsClose {
        code: Some(code),
        reason: reason.to_owned(),
        by: "server".to_owned(),
    };
    if send(io, &ws::close_frame(code, reason)).await.is_err() {
        return end;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            while let Ok(Some(frame)) = ws::parse(&mut buf) {
                if matches!(frame, Inbound::Close(..)) {
                    return;
                }
            }
        }
    })
    .await;
    end
}

/// Answers the client's close frame with the same code (1000 when it had none or one that may
/// not be sent back).
async fn answer_close<IO: AsyncWrite + Unpin>(
    cms: &MeetingServer,
    id: u64,
    io: &mut IO,
    code: Option<u16>,
    reason: String,
) -> CmsClose {
    let echo = code
        .filter(|c| matches!(c, 1000..=1003 | 1007..=1014 | 3000..=4999))
        .unwrap_or(1000);
    cms.log(
        id,
        CmsDirection::Sent,
        "close",
        json!({ "code": echo, "reason": "" }),
    );
    let _ = send(io, &ws::close_frame(echo, "")).await;
    CmsClose {
        code,
        reason,
        by: "client".to_owned(),
    }
}
