//! I/O for the Meeting Server events client: the API user's credentials (a 0600 file),
//! TLS with the configured trust bundle and optional client certificate, `POST
//! /api/v1/authTokens`, the `/events/v1` socket, and reconnects. The server sends no pings,
//! so a socket is declared dead after `inactivity_timeout_secs` without any message; at half
//! of that the subscription is re-sent as a probe the server must ack.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::session::EventsSession;
use super::slots::ConnectionSlot;
use super::{ConnectionState, MeetingServerError, MeetingServerStatus};
use crate::config::MeetingServerConfig;
use crate::net::backoff::Backoff;
use crate::net::http::{HttpClient, HttpError, Method, Request};
use crate::net::tls::TrustStore;
use crate::net::websocket::{self, CloseFrame, Message, WsStream};
use crate::platform::logging::message_id;
use crate::secret::Secret;
use crate::shutdown::Shutdown;

/// A socket that stayed up this long resets the reconnect backoff.
const STABLE: Duration = Duration::from_secs(60);
const CLOSE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct MeetingServerClient {
    base_url: String,
    /// host:port, for the connection limit.
    authority: String,
    user: String,
    password: Secret<String>,
    http: HttpClient,
    tls: Arc<rustls::ClientConfig>,
    inactivity: Duration,
    timeout: Duration,
    status: watch::Sender<MeetingServerStatus>,
    backoff: Backoff,
}

/// Why one socket ended.
#[derive(Debug)]
enum Ended {
    Shutdown,
    Lost(String),
}

impl MeetingServerClient {
    /// Checks the configuration (credentials file and its mode, TLS files) up front so a
    /// mistake is reported at start, naming the file.
    pub fn new(
        config: &MeetingServerConfig,
        platform: &TrustStore,
        timeout: Duration,
        backoff: Backoff,
    ) -> Result<Self, MeetingServerError> {
        let (user, password) = read_credentials(&config.credentials_file)?;
        let mut trust = platform.clone();
        if let Some(ca) = &config.ca_file {
            trust
                .add_file(ca)
                .map_err(|e| MeetingServerError::Tls(e.to_string()))?;
        }
        let tls = match (&config.client_cert_file, &config.client_key_file) {
            (Some(chain), Some(key)) => trust.client_config_with_certificate(chain, key),
            (None, None) => trust.client_config(),
            _ => {
                return Err(MeetingServerError::Tls(
                    "client_cert_file and client_key_file must be set together".into(),
                ));
            }
        }
        .map_err(|e| MeetingServerError::Tls(e.to_string()))?;
        let base_url = config.base_url.trim_end_matches('/').to_string();
        let authority = base_url
            .strip_prefix("https://")
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| MeetingServerError::Url(base_url.clone()))?;
        let http = HttpClient::with_tls(tls.clone(), timeout)?;
        let (status, _) = watch::channel(MeetingServerStatus {
            base_url: base_url.clone(),
            state: ConnectionState::Disconnected,
            ..Default::default()
        });
        Ok(Self {
            base_url,
            authority,
            user,
            password,
            http,
            tls: Arc::new(tls),
            inactivity: Duration::from_secs(config.inactivity_timeout_secs.max(2)),
            timeout,
            status,
            backoff,
        })
    }

    pub fn status(&self) -> watch::Receiver<MeetingServerStatus> {
        self.status.subscribe()
    }

    /// Keeps one socket up until shutdown.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut session = EventsSession::new();
        loop {
            let started = Instant::now();
            let ended = self.connect_once(&mut session, &mut shutdown).await;
            let reason = match ended {
                Ok(Ended::Shutdown) => break,
                Ok(Ended::Lost(reason)) => reason,
                Err(e) => e.to_string(),
            };
            if started.elapsed() >= STABLE {
                self.backoff.reset();
            }
            let delay = self.backoff.next_delay();
            tracing::warn!(
                message_id = message_id::MEETING_SERVER_LOST,
                "Meeting Server events: {reason}; reconnecting in {:.1} s",
                delay.as_secs_f64()
            );
            self.status.send_modify(|s| {
                s.state = ConnectionState::Disconnected;
                s.detail = Some(reason);
                s.reconnects += 1;
            });
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.recv() => break,
            }
        }
        self.status.send_modify(|s| {
            s.state = ConnectionState::Disconnected;
            s.detail = Some("stopped".into());
        });
    }

    async fn connect_once(
        &self,
        session: &mut EventsSession,
        shutdown: &mut Shutdown,
    ) -> Result<Ended, MeetingServerError> {
        self.status
            .send_modify(|s| s.state = ConnectionState::Connecting);
        let _slot = ConnectionSlot::acquire(&self.authority)?;
        let token = self.auth_token().await?;
        let url = format!(
            "wss://{}/events/v1?authToken={}",
            self.authority,
            token.expose()
        );
        let mut socket = websocket::connect(&url, Arc::clone(&self.tls), &[], self.timeout).await?;
        tracing::info!(
            message_id = message_id::MEETING_SERVER_CONNECTED,
            "Meeting Server events: connected to {}",
            self.base_url
        );
        self.status.send_modify(|s| {
            s.state = ConnectionState::Connected;
            s.detail = None;
        });
        for frame in session.on_open() {
            send(&mut socket, frame).await?;
        }
        self.publish(session);
        let mut last_message = Instant::now();
        let mut probed = false;
        loop {
            let probe_at = last_message + self.inactivity / 2;
            let dead_at = last_message + self.inactivity;
            tokio::select! {
                message = socket.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        last_message = Instant::now();
                        probed = false;
                        match session.on_text(text.as_str()) {
                            Ok(replies) => {
                                for frame in replies {
                                    send(&mut socket, frame).await?;
                                }
                            }
                            Err(e) => tracing::warn!("Meeting Server events: frame dropped: {e}"),
                        }
                        self.publish(session);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame
                            .map(|f| format!("closed by the server ({} {})", u16::from(f.code), f.reason))
                            .unwrap_or_else(|| "closed by the server".into());
                        return Ok(Ended::Lost(why));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Ok(Ended::Lost(e.to_string())),
                    None => return Ok(Ended::Lost("connection ended".into())),
                },
                _ = tokio::time::sleep_until(probe_at), if !probed => {
                    // Same set, same indexes: the server acks it, proving the socket alive.
                    tracing::info!(
                        "Meeting Server events: nothing received for {} s; re-sending the subscription as a probe",
                        (self.inactivity / 2).as_secs()
                    );
                    send(&mut socket, session.probe()).await?;
                    probed = true;
                }
                _ = tokio::time::sleep_until(dead_at) => {
                    close(&mut socket).await;
                    return Ok(Ended::Lost(format!(
                        "no message for {} s (the server sends no pings)",
                        self.inactivity.as_secs()
                    )));
                }
                _ = shutdown.recv() => {
                    close(&mut socket).await;
                    return Ok(Ended::Shutdown);
                }
            }
        }
    }

    /// Checks the API user (`roomd check`): asks for an auth token and drops it.
    pub async fn probe_auth(&self) -> Result<(), MeetingServerError> {
        self.auth_token().await.map(drop)
    }

    /// `POST /api/v1/authTokens` with Basic auth → `X-Cisco-CMS-Auth-Token`.
    async fn auth_token(&self) -> Result<Secret<String>, MeetingServerError> {
        let url = format!("{}/api/v1/authTokens", self.base_url);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.user,
            self.password.expose()
        ));
        let response = self
            .http
            .send(
                Request::new(Method::POST, &url).header("authorization", format!("Basic {basic}")),
            )
            .await
            .map_err(|e| match e {
                HttpError::Status {
                    status: 401 | 403, ..
                } => MeetingServerError::Unauthorized(format!("user {:?}", self.user)),
                other => MeetingServerError::Http(other),
            })?;
        response
            .headers
            .get("x-cisco-cms-auth-token")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(|v| Secret::new(v.to_string()))
            .ok_or(MeetingServerError::NoToken)
    }

    fn publish(&self, session: &EventsSession) {
        self.status.send_modify(|s| {
            s.messages_received = session.messages_received;
            s.subscriptions = session
                .subscriptions()
                .iter()
                .map(|sub| {
                    (
                        sub.index,
                        sub.resource.as_str(),
                        sub.call.clone(),
                        session.states.get(&sub.index).copied(),
                    )
                })
                .collect();
            s.unfollowed_calls = session.unfollowed.len();
            s.conferences = session.model.clone();
        });
    }
}

/// One whole text frame (tungstenite never fragments what it sends).
async fn send(socket: &mut WsStream, frame: String) -> Result<(), MeetingServerError> {
    socket.send(Message::text(frame)).await.map_err(|e| {
        MeetingServerError::Connect(websocket::WsConnectError::Handshake {
            authority: "meeting server".into(),
            reason: format!("send failed: {e}"),
        })
    })
}

async fn close(socket: &mut WsStream) {
    let frame = CloseFrame {
        code: 1000.into(),
        reason: "done".into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if socket.send(Message::Close(Some(frame))).await.is_ok() {
            while let Some(Ok(_)) = socket.next().await {}
        }
    })
    .await;
}

/// `user:password` from a file only its owner may read.
pub fn read_credentials(path: &Path) -> Result<(String, Secret<String>), MeetingServerError> {
    use std::os::unix::fs::PermissionsExt;
    let bad = |reason: String| MeetingServerError::Credentials {
        path: path.to_path_buf(),
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(MeetingServerError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = Secret::new(std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?);
    let line = text.expose().lines().next().unwrap_or("").trim_end();
    let (user, password) = line
        .split_once(':')
        .ok_or_else(|| bad("expected one line `user:password`".into()))?;
    if user.is_empty() || password.is_empty() {
        return Err(bad("user and password must not be empty".into()));
    }
    Ok((user.to_string(), Secret::new(password.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn credentials_must_be_private_and_well_formed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cms");
        std::fs::write(&path, "api:s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_credentials(&path).unwrap_err();
        assert!(
            err.to_string().contains("readable by others (mode 644)"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (user, password) = read_credentials(&path).unwrap();
        assert_eq!(user, "api");
        assert_eq!(password.expose(), "s3cret");
        assert_eq!(format!("{password:?}"), "<redacted>");
        std::fs::write(&path, "no-colon\n").unwrap();
        assert!(
            read_credentials(&path)
                .unwrap_err()
                .to_string()
                .contains("user:password")
        );
    }
}
