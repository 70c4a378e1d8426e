//! Requests to post-activation services: bearer token, one forced refresh on 401, and
//! `Retry-After` on 429/503 honoured (capped) for a bounded number of attempts.

use std::sync::Arc;
use std::time::Duration;

use crate::cloud::tokens::{TokenError, TokenManager};
use crate::net::backoff::Backoff;
use crate::net::http::{HttpClient, HttpError, Method, Request, Response};

/// Attempts per request when the server asks us to come back later.
pub const MAX_ATTEMPTS: u32 = 4;

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum CloudError {
    /// {0}
    Http(#[from] HttpError),
    /// {0}
    Token(#[from] TokenError),
}

impl CloudError {
    pub fn status(&self) -> Option<u16> {
        match self {
            CloudError::Http(HttpError::Status { status, .. }) => Some(*status),
            _ => None,
        }
    }

    /// A host that refuses connections or fails with 5xx: try the next host.
    pub fn is_host_failure(&self) -> bool {
        match self {
            CloudError::Http(HttpError::Connect { .. } | HttpError::Timeout { .. }) => true,
            CloudError::Http(HttpError::Status { status, .. }) => *status >= 500,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthedClient {
    http: HttpClient,
    tokens: Arc<TokenManager>,
    retry_after_cap: Duration,
}

impl AuthedClient {
    pub fn new(http: HttpClient, tokens: Arc<TokenManager>, retry_after_cap: Duration) -> Self {
        Self {
            http,
            tokens,
            retry_after_cap,
        }
    }

    /// Sends `method url` with an optional JSON body and extra headers.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        json: Option<&serde_json::Value>,
        headers: &[(&'static str, String)],
    ) -> Result<Response, CloudError> {
        let mut refreshed = false;
        let mut attempt = 0;
        // Waits when the server says "later": its Retry-After (capped), else 2, 4, 8 s ±20 %.
        let mut later = Backoff::new(Duration::from_secs(2), self.retry_after_cap);
        loop {
            attempt += 1;
            let token = self.tokens.access_token().await;
            let mut request = Request::new(method.clone(), url).bearer(&token);
            if let Some(body) = json {
                request = request.json(body);
            }
            for (name, value) in headers {
                request = request.header(name, value.clone());
            }
            match self.http.send(request).await {
                Err(HttpError::Status { status: 401, .. }) if !refreshed => {
                    tracing::info!(%url, "HTTP 401: refreshing the access token once, then retrying");
                    self.tokens.refresh(Some(&token)).await?;
                    refreshed = true;
                }
                // 429 always means "come back later"; a 503 only when it says when (a bare
                // 503 is a failing host: the caller fails over instead of waiting here).
                Err(HttpError::Status {
                    status: status @ (429 | 503),
                    retry_after,
                    ..
                }) if attempt < MAX_ATTEMPTS && (status == 429 || retry_after.is_some()) => {
                    let wait = later.next_delay_after(retry_after);
                    tracing::warn!(
                        %url,
                        status,
                        "HTTP {status}: waiting {:.1} s as the server asked (attempt {attempt} of {MAX_ATTEMPTS})",
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
                other => return Ok(other?),
            }
        }
    }
}
