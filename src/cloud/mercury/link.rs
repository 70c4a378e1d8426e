//! The daemon's [`Link`]: sockets authorised with the current access token over the
//! session's trust store, token refresh through the [`TokenManager`], and re-registration
//! requests to the session.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tracing::Instrument;

use super::connection::{self, Control, Dial, Shared, Timers};
use super::{BoxFuture, Link, Reports};
use crate::cloud::tokens::TokenManager;
use crate::net::http::TrackingIds;
use crate::platform::logging::Subsystem;
use crate::proto::mercury::connect_url;

#[derive(Debug)]
pub struct CloudLink {
    tokens: Arc<TokenManager>,
    tls: Arc<rustls::ClientConfig>,
    timers: Timers,
    reregister: mpsc::Sender<()>,
    tracking: TrackingIds,
}

impl CloudLink {
    /// `reregister` reaches the session loop, which registers with WDM again.
    pub fn new(
        tokens: Arc<TokenManager>,
        tls: Arc<rustls::ClientConfig>,
        timers: Timers,
        reregister: mpsc::Sender<()>,
    ) -> Self {
        Self {
            tokens,
            tls,
            timers,
            reregister,
            tracking: TrackingIds::default(),
        }
    }
}

impl Link for CloudLink {
    fn dial(
        &self,
        id: u64,
        url: String,
        shared: Arc<Shared>,
        reports: Reports,
        control: mpsc::Receiver<Control>,
    ) -> BoxFuture<'static, ()> {
        let tokens = Arc::clone(&self.tokens);
        let tls = Arc::clone(&self.tls);
        let timers = self.timers;
        let tracking_id = self.tracking.next();
        Box::pin(
            async move {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                let dial = Dial {
                    id,
                    url: connect_url(&url, now_ms),
                    access_token: tokens.access_token().await,
                    tls,
                    tracking_id,
                };
                connection::run(dial, timers, shared, reports, control).await;
            }
            .instrument(Subsystem::Websocket.span()),
        )
    }

    fn refresh_token(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let seen = self.tokens.access_token().await;
            if let Err(e) = self.tokens.refresh(Some(&seen)).await {
                tracing::warn!("token refresh for the event socket failed: {e}");
            }
        })
    }

    fn reregister(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Full channel: a re-registration is already asked for.
            let _ = self.reregister.try_send(());
        })
    }
}
