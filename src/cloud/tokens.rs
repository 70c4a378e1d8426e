//! Access-token lifecycle (wire profile §1.8, seed 004): refresh before expiry, when less
//! than min(24 h, 10 % of the token's lifetime) remains; a 401 forces one refresh; a refresh
//! token the identity service rejects means the device needs activation again.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::net::http::{HttpClient, HttpError, Method, Request, percent_encode};
use crate::proto::ParseError;
use crate::proto::activation::parse_token_grant;
use crate::secret::Secret;
use crate::store::credentials::{Credentials, StoredTokens};
use crate::store::{StateDir, StoreError};

/// Refresh this long before expiry at most (seed 004: refresh a day ahead).
pub const REFRESH_AHEAD_MAX: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum TokenError {
    /// the identity service rejected the refresh token ({0}); the device needs activation again
    Rejected(String),
    /// the refresh token expired; the device needs activation again
    RefreshExpired,
    /// token refresh failed: {0}
    Http(#[from] HttpError),
    /// token refresh answer: {0}
    Protocol(#[from] ParseError),
    /// saving refreshed tokens: {0}
    Store(#[from] StoreError),
}

impl TokenError {
    pub fn needs_activation(&self) -> bool {
        matches!(self, TokenError::Rejected(_) | TokenError::RefreshExpired)
    }
}

/// How long before expiry to refresh a token of this lifetime.
pub fn refresh_ahead(lifetime: Duration) -> Duration {
    REFRESH_AHEAD_MAX.min(lifetime / 10)
}

/// Shared owner of the credentials file and the tokens in it.
pub struct TokenManager {
    http: HttpClient,
    token_url: String,
    state: StateDir,
    credentials: Arc<Mutex<Credentials>>,
    /// When the current access token should be refreshed (monotonic, so timers follow
    /// tokio's clock and tests can pause it).
    refresh_at: Mutex<Instant>,
    refreshing: Mutex<()>,
    on_refresh: Option<RefreshObserver>,
}

/// Told about every successful refresh (status reporting), with the new expiry.
pub type RefreshObserver = Box<dyn Fn(SystemTime) + Send + Sync>;

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// Takes ownership of the credentials; others share them through [`Self::credentials`].
    pub fn new(http: HttpClient, state: StateDir, credentials: Credentials) -> Self {
        let identity = credentials
            .service_urls
            .get("identity")
            .cloned()
            .unwrap_or_default();
        Self {
            http,
            token_url: format!("{}/access_token", identity.trim_end_matches('/')),
            state,
            refresh_at: Mutex::new(Instant::now()),
            credentials: Arc::new(Mutex::new(credentials)),
            refreshing: Mutex::new(()),
            on_refresh: None,
        }
    }

    pub fn with_observer(mut self, observer: RefreshObserver) -> Self {
        self.on_refresh = Some(observer);
        self
    }

    /// Computes the refresh deadline from the stored expiry (call after creation).
    pub async fn schedule_from_stored(&self) {
        let tokens = self.credentials.lock().await.tokens.clone();
        *self.refresh_at.lock().await = deadline(&tokens, SystemTime::now());
    }

    pub fn credentials(&self) -> &Arc<Mutex<Credentials>> {
        &self.credentials
    }

    pub async fn access_token(&self) -> Secret<String> {
        self.credentials.lock().await.tokens.access_token.clone()
    }

    pub async fn refresh_at(&self) -> Instant {
        *self.refresh_at.lock().await
    }

    /// Refreshes now. Concurrent callers wait for one refresh instead of each sending one;
    /// `seen` is the access token the caller found wanting (a refresh that already replaced
    /// it counts).
    pub async fn refresh(&self, seen: Option<&Secret<String>>) -> Result<(), TokenError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let current = self.credentials.lock().await.tokens.clone();
        if let Some(seen) = seen {
            if seen != &current.access_token {
                return Ok(());
            }
        }
        let now = SystemTime::now();
        if current
            .refresh_expires_at_ms
            .is_some_and(|at| at <= crate::store::credentials::unix_ms(now))
        {
            return Err(TokenError::RefreshExpired);
        }
        let form = Secret::new(format!(
            "grant_type=refresh_token&refresh_token={}",
            percent_encode(current.refresh_token.expose())
        ));
        let response = match self
            .http
            .send(Request::new(Method::POST, &self.token_url).form(form))
            .await
        {
            Ok(response) => response,
            Err(HttpError::Status {
                status: 400 | 401,
                detail,
                ..
            }) => {
                return Err(TokenError::Rejected(
                    detail.trim_start_matches(": ").to_string(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let grant = parse_token_grant(&response.body)?;
        let mut tokens = StoredTokens::from_grant(&grant, now);
        if grant.refresh_token_expires_in.is_none() {
            tokens.refresh_expires_at_ms = current.refresh_expires_at_ms;
        }
        let next = deadline(&tokens, now);
        {
            let mut credentials = self.credentials.lock().await;
            credentials.tokens = tokens;
            credentials.save(&self.state)?;
        }
        *self.refresh_at.lock().await = next;
        if let Some(observer) = &self.on_refresh {
            observer(now + Duration::from_secs(grant.expires_in));
        }
        tracing::info!(
            message_id = crate::platform::logging::message_id::TOKEN_REFRESHED,
            trackingid = %response.tracking_id,
            expires_in_s = grant.expires_in,
            "access token refreshed; next refresh in {} s",
            next.saturating_duration_since(Instant::now()).as_secs()
        );
        Ok(())
    }
}

/// The monotonic instant at which tokens expiring as stored should be refreshed.
fn deadline(tokens: &StoredTokens, now: SystemTime) -> Instant {
    let ahead = refresh_ahead(tokens.lifetime());
    Instant::now() + tokens.remaining(now).saturating_sub(ahead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_ahead_is_the_smaller_of_a_day_and_a_tenth() {
        assert_eq!(
            refresh_ahead(Duration::from_secs(14 * 86_400)),
            REFRESH_AHEAD_MAX
        );
        assert_eq!(
            refresh_ahead(Duration::from_secs(3600)),
            Duration::from_secs(360)
        );
    }
}
