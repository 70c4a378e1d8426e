//! One xAPI WebSocket session: JSON-RPC requests in, replies and feedback out, one frame per
//! write. Generic over the byte stream so tests can record every write.
//!
//! Write-ordering rules (wire profile §8): a reply only ever answers an id the client sent; the
//! `xFeedback/Subscribe` reply is flushed before any feedback for that subscription; a close
//! frame without a code is answered with 1000.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::XapiContext;
use super::auth::Role;
use super::commands::{self, Args, CommandError};
use super::document::{self, SetError};
use super::tree::{self, XPath};
use crate::proto::jsonrpc::{
    self, COMMAND_ERROR, INTERNAL_ERROR, INVALID_PARAMS, Method, PERMISSION_DENIED, Request, Root,
};
use crate::status::DeviceStatus;

/// Subscriptions one session may hold.
pub const MAX_SUBSCRIPTIONS: usize = 64;

/// Who is on the other end.
#[derive(Debug, Clone)]
pub struct Peer {
    pub role: Role,
    pub user: String,
    pub address: std::net::SocketAddr,
}

#[derive(Debug)]
struct Subscription {
    path: XPath,
}

struct Session {
    ctx: Arc<XapiContext>,
    peer: Peer,
    subscriptions: BTreeMap<u64, Subscription>,
    next_id: u64,
    status: watch::Receiver<DeviceStatus>,
    configuration: watch::Receiver<document::Configuration>,
    /// The documents as this session last reported them; feedback is the difference.
    last_status: Value,
    last_configuration: Value,
}

/// The server's own close: "going away" when roomd stops.
const GOING_AWAY: &str = "roomd is stopping";

/// Serves `ws` until the client closes, the connection fails, or shutdown.
pub async fn run<S>(
    mut ws: WebSocketStream<S>,
    ctx: Arc<XapiContext>,
    peer: Peer,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut status = ctx.status.subscribe();
    let mut configuration = ctx.configuration.subscribe();
    let last_status = document::status_document(&status.borrow_and_update(), &ctx.network);
    let last_configuration = configuration.borrow_and_update().document();
    let mut obtp = ctx.backends.bookings.obtp_events();
    let mut call_events = ctx.backends.room.calls().events();
    let mut generation = ctx.backends.bookings.generation();
    generation.borrow_and_update();
    let mut session = Session {
        ctx,
        peer,
        subscriptions: BTreeMap::new(),
        next_id: 1,
        status,
        configuration,
        last_status,
        last_configuration,
    };
    loop {
        let outgoing: Vec<String> = tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => session.handle_text(text.as_str()).await,
                Some(Ok(Message::Binary(_))) => {
                    tracing::warn!("binary frame ignored: the xAPI speaks JSON text frames");
                    Vec::new()
                }
                Some(Ok(Message::Close(frame))) => {
                    answer_close(&mut ws, frame.is_none()).await;
                    return;
                }
                Some(Ok(_)) => Vec::new(),
                Some(Err(e)) => {
                    tracing::info!("session ended: {e}");
                    return;
                }
                None => return,
            },
            changed = session.status.changed() => {
                if changed.is_err() { return }
                session.status_feedback()
            }
            changed = session.configuration.changed() => {
                if changed.is_err() { return }
                session.configuration_feedback()
            }
            event = obtp.recv() => match event {
                Ok(event) => session.event_feedback(&document::obtp_event(&event)),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("{n} booking event(s) not delivered: the session fell behind");
                    Vec::new()
                }
                Err(broadcast::error::RecvError::Closed) => Vec::new(),
            },
            event = call_events.recv() => match event {
                Ok(event) => session.event_feedback(&document::call_event(&event)),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("{n} call event(s) not delivered: the session fell behind");
                    Vec::new()
                }
                Err(broadcast::error::RecvError::Closed) => Vec::new(),
            },
            changed = generation.changed() => {
                if changed.is_err() { return }
                generation.borrow_and_update();
                let count = session.ctx.backends.bookings.read(|m| m.ordered().len());
                session.event_feedback(&document::bookings_updated(count))
            }
            _ = stopped(&mut stop) => {
                let close = CloseFrame { code: CloseCode::Away, reason: GOING_AWAY.into() };
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(close))).await;
                return;
            }
        };
        for text in outgoing {
            // One send = one frame = one flush: nothing shares a write with what follows.
            if let Err(e) = ws.send(Message::text(text)).await {
                tracing::info!("session ended while writing: {e}");
                return;
            }
        }
    }
}

/// Resolves once the server says stop (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Answers the client's close. tungstenite would echo a code-less close without a code, which
/// jsxapi reports as an error, so that one is answered by hand with 1000 (normal closure).
async fn answer_close<S>(ws: &mut WebSocketStream<S>, codeless: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    const CLOSE_1000: [u8; 4] = [0x88, 0x02, 0x03, 0xE8];
    let answered = async {
        if codeless {
            let stream = ws.get_mut();
            stream.write_all(&CLOSE_1000).await?;
            stream.flush().await?;
            stream.shutdown().await
        } else {
            ws.flush().await.map_err(std::io::Error::other)
        }
    };
    if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(1), answered).await {
        tracing::debug!("closing: {e}");
    }
}

impl Session {
    async fn handle_text(&mut self, text: &str) -> Vec<String> {
        let request = match jsonrpc::parse_request(text) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(
                    code = e.code,
                    "bad request from {}: {}",
                    self.peer.user,
                    e.message
                );
                // Never answer an id the client did not send.
                return e
                    .id
                    .map(|id| vec![jsonrpc::error_reply(&id, e.code, &e.message)])
                    .unwrap_or_default();
            }
        };
        let Request { id, method, params } = request;
        let mut out = Vec::new();
        let result = match method {
            Method::Subscribe => {
                // Everything that changed before this subscription goes out first, so the
                // current value sent after the reply is never followed by an older change.
                out.extend(self.status_feedback());
                out.extend(self.configuration_feedback());
                match self.subscribe(&params) {
                    Ok((sub_id, current)) => {
                        if let Some(id) = &id {
                            out.push(jsonrpc::reply(id, &json!({ "Id": sub_id })));
                        }
                        out.extend(current);
                        return out;
                    }
                    Err(e) => Err(e),
                }
            }
            Method::Unsubscribe => self.unsubscribe(&params),
            Method::Get | Method::Query => self.get(&params, &method),
            Method::Set => self.set(&params),
            Method::Command(path) => {
                let result = commands::execute(
                    &self.ctx.backends,
                    self.peer.role,
                    &self.peer.user,
                    &path,
                    &params,
                )
                .await;
                if let Err(e) = &result {
                    tracing::info!(
                        code = e.code,
                        "xCommand {} by {}: {}",
                        path.join(" "),
                        self.peer.user,
                        e.message
                    );
                }
                // The command's own state change goes out as feedback before its reply.
                out.extend(self.status_feedback());
                result
            }
            Method::Unknown(name) => Err(CommandError {
                code: jsonrpc::METHOD_NOT_FOUND,
                message: format!("Method not found: {name}"),
            }),
        };
        if let Some(id) = &id {
            out.push(match result {
                Ok(value) => jsonrpc::reply(id, &value),
                Err(e) => jsonrpc::error_reply(id, e.code, &e.message),
            });
        }
        out
    }

    fn subscribe(
        &mut self,
        params: &Map<String, Value>,
    ) -> Result<(u64, Option<String>), CommandError> {
        let args = Args(params);
        let path =
            XPath::parse(args.required("Query")?).map_err(|e| invalid(format!("Query: {e}")))?;
        let document = match path.root {
            Root::Status => Some(&self.last_status),
            Root::Configuration => Some(&self.last_configuration),
            Root::Event => None,
        };
        if let Some(document) = document {
            if !tree::resolves(document, &path.segments) {
                return Err(invalid("No match on Path argument"));
            }
        }
        if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return Err(CommandError {
                code: COMMAND_ERROR,
                message: format!("Too many subscriptions (at most {MAX_SUBSCRIPTIONS})"),
            });
        }
        let notify = args
            .get("NotifyCurrentValue")
            .is_some_and(|v| v == &json!(true) || v == &json!("True"));
        let id = self.next_id;
        self.next_id += 1;
        let current = match (notify, document) {
            (true, Some(document)) => tree::project(document, &path.segments)
                .map(|body| jsonrpc::feedback(id, path.root, &body)),
            _ => None,
        };
        self.subscriptions.insert(id, Subscription { path });
        Ok((id, current))
    }

    fn unsubscribe(&mut self, params: &Map<String, Value>) -> Result<Value, CommandError> {
        let id = Args(params)
            .get("Id")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .ok_or_else(|| invalid("Missing required parameter: Id"))?;
        self.subscriptions
            .remove(&id)
            .map(|_| json!(true))
            .ok_or_else(|| invalid(format!("No subscription with Id {id}")))
    }

    fn get(&self, params: &Map<String, Value>, method: &Method) -> Result<Value, CommandError> {
        let key = if *method == Method::Query {
            "Query"
        } else {
            "Path"
        };
        let args = Args(params);
        let path = args
            .get(key)
            .or_else(|| args.get("Path"))
            .ok_or_else(|| invalid(format!("Missing required parameter: {key}")))?;
        let path = XPath::parse(path).map_err(|e| invalid(format!("{key}: {e}")))?;
        let document = match path.root {
            Root::Status => {
                let status = self.status.borrow();
                document::with_uptime(
                    document::status_document(&status, &self.ctx.network),
                    self.ctx.started.elapsed(),
                    &status,
                )
            }
            Root::Configuration => self.configuration.borrow().document(),
            Root::Event => return Err(invalid("No match on Path argument")),
        };
        tree::lookup(&document, &path.segments)
            .cloned()
            .ok_or_else(|| invalid("No match on Path argument"))
    }

    fn set(&mut self, params: &Map<String, Value>) -> Result<Value, CommandError> {
        if self.peer.role != Role::Admin {
            return Err(CommandError {
                code: PERMISSION_DENIED,
                message: "Permission denied".into(),
            });
        }
        let args = Args(params);
        let path = args.required("Path")?;
        let value = args.required("Value")?;
        let path = XPath::parse(path).map_err(|e| invalid(format!("Path: {e}")))?;
        if path.root != Root::Configuration {
            return Err(invalid("No match on Path argument"));
        }
        let names: Vec<String> = path
            .segments
            .iter()
            .map(|s| match s {
                tree::Segment::Name(n) => n.clone(),
                tree::Segment::Item(i) => i.to_string(),
            })
            .collect();
        let mut next = self.ctx.configuration.borrow().clone();
        next.set(&names, value).map_err(|e| match e {
            SetError::NoMatch => invalid("No match on Path argument"),
            other => invalid(other.to_string()),
        })?;
        next.save(&self.ctx.state).map_err(|e| CommandError {
            code: INTERNAL_ERROR,
            message: format!("configuration not saved: {e}"),
        })?;
        tracing::info!(
            "xSet Configuration {} by {}",
            names.join(" "),
            self.peer.user
        );
        self.ctx.configuration.send_replace(next);
        Ok(Value::Null)
    }

    /// Feedback for what changed in Status since this session last looked.
    fn status_feedback(&mut self) -> Vec<String> {
        let now = document::status_document(&self.status.borrow_and_update(), &self.ctx.network);
        let delta = tree::diff(&self.last_status, &now);
        self.last_status = now;
        match delta {
            Some(delta) => self.matching(Root::Status, &delta),
            None => Vec::new(),
        }
    }

    fn configuration_feedback(&mut self) -> Vec<String> {
        let now = self.configuration.borrow_and_update().document();
        let delta = tree::diff(&self.last_configuration, &now);
        self.last_configuration = now;
        match delta {
            Some(delta) => self.matching(Root::Configuration, &delta),
            None => Vec::new(),
        }
    }

    fn event_feedback(&self, event: &Value) -> Vec<String> {
        self.matching(Root::Event, event)
    }

    /// One notification per subscription that `delta` touches.
    fn matching(&self, root: Root, delta: &Value) -> Vec<String> {
        self.subscriptions
            .iter()
            .filter(|(_, sub)| sub.path.root == root)
            .filter_map(|(id, sub)| {
                tree::project(delta, &sub.path.segments)
                    .map(|body| jsonrpc::feedback(*id, root, &body))
            })
            .collect()
    }
}

fn invalid(message: impl Into<String>) -> CommandError {
    CommandError {
        code: INVALID_PARAMS,
        message: message.into(),
    }
}
