//! The HTTPS client every cloud service goes through: verified TLS against our
//! [`TrustStore`], a `trackingid` header on each request (`ROOMD_<uuid>_<seq>`, echoed in
//! logs so a request can be found on both ends), bounded bodies, and errors that say
//! what went wrong in words a technician can act on.

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::tls::{TlsError, TrustStore};

/// Bodies larger than this are refused: no cloud answer we parse comes near it.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `ROOMD_<uuid>_<seq>`: one uuid per process, a sequence number per request.
#[derive(Debug)]
pub struct TrackingIds {
    session: uuid::Uuid,
    seq: AtomicU64,
}

impl Default for TrackingIds {
    fn default() -> Self {
        Self {
            session: uuid::Uuid::new_v4(),
            seq: AtomicU64::new(0),
        }
    }
}

impl TrackingIds {
    pub fn next(&self) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("ROOMD_{}_{seq}", self.session)
    }
}

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum HttpError {
    /// invalid URL {url}: {reason}
    Url { url: String, reason: String },
    /// TLS certificate of {url} is not trusted ({reason}); is its CA in the trust store?
    UntrustedCertificate { url: String, reason: String },
    /// TLS handshake with {url} failed: {reason}
    Tls { url: String, reason: String },
    /// cannot connect to {url}: {reason}
    Connect { url: String, reason: String },
    /// {url} did not answer within {timeout:?}
    Timeout { url: String, timeout: Duration },
    /// {url} answered HTTP {status}{detail}
    Status {
        url: String,
        status: u16,
        retry_after: Option<Duration>,
        tracking_id: String,
        /// `: <message from the body>` when the body said why, else empty.
        detail: String,
    },
    /// {url} sent a body larger than {limit} bytes
    TooLarge { url: String, limit: usize },
    /// {url} sent a body that is not valid {what}: {reason}
    Decode {
        url: String,
        what: &'static str,
        reason: String,
    },
    /// request to {url} failed: {reason}
    Other { url: String, reason: String },
    /// {0}
    Setup(#[from] TlsError),
}

impl HttpError {
    /// The server's `Retry-After`, for 429 and 503 answers.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short reason for status lines (`connection refused`, `HTTP 503`).
    pub fn short_reason(&self) -> String {
        match self {
            HttpError::UntrustedCertificate { .. } => "certificate not trusted".into(),
            HttpError::Tls { .. } => "TLS handshake failed".into(),
            HttpError::Connect { reason, .. } => reason.clone(),
            HttpError::Timeout { .. } => "timed out".into(),
            HttpError::Status { status, .. } => format!("HTTP {status}"),
            HttpError::TooLarge { .. } | HttpError::Decode { .. } => "bad response".into(),
            HttpError::Url { .. } | HttpError::Setup(_) => "configuration error".into(),
            HttpError::Other { reason, .. } => reason.clone(),
        }
    }
}

/// A response that arrived whole, with a 2xx status.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub tracking_id: String,
}

#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    tracking: Arc<TrackingIds>,
    timeout: Duration,
}

impl HttpClient {
    pub fn new(trust: &TrustStore, timeout: Duration) -> Result<Self, HttpError> {
        Self::with_tls(trust.client_config()?, timeout)
    }

    /// A client for activation only: TLS without certificate verification (see
    /// [`crate::net::tls::unverified_client_config`]).
    pub fn unverified_for_activation(timeout: Duration) -> Result<Self, HttpError> {
        Self::with_tls(super::tls::unverified_client_config(), timeout)
    }

    /// A client over a TLS configuration built elsewhere (e.g. with a client certificate).
    pub fn with_tls(tls: rustls::ClientConfig, timeout: Duration) -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("roomd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Other {
                url: String::new(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            client,
            tracking: Arc::new(TrackingIds::default()),
            timeout,
        })
    }

    /// `GET url`; non-2xx answers become [`HttpError::Status`].
    pub async fn get(&self, url: &str) -> Result<Response, HttpError> {
        self.send(Request::new(Method::GET, url)).await
    }

    /// Sends one request. 2xx and 304 are answers; anything else is [`HttpError::Status`].
    pub async fn send(&self, request: Request<'_>) -> Result<Response, HttpError> {
        let url = request.url;
        let parsed = reqwest::Url::parse(url).map_err(|e| HttpError::Url {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let tracking_id = self.tracking.next();
        let method = request.method.clone();
        tracing::debug!(trackingid = %tracking_id, %url, "{method}");
        let mut builder = self
            .client
            .request(request.method, parsed)
            .header("trackingid", &tracking_id);
        if let Some(token) = request.bearer {
            builder = builder.bearer_auth(token.expose());
        }
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        builder = match request.body {
            Some(Body::Json(bytes)) => builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes),
            Some(Body::Form(text)) => builder
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(text.into_inner()),
            None => builder,
        };
        let mut response = builder
            .send()
            .await
            .map_err(|e| classify(url, self.timeout, &e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let answered = response.status().is_success() || status == 304;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| classify(url, self.timeout, &e))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(HttpError::TooLarge {
                    url: url.to_string(),
                    limit: MAX_BODY_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !answered {
            tracing::debug!(trackingid = %tracking_id, %url, status, "HTTP error status");
            return Err(HttpError::Status {
                url: url.to_string(),
                status,
                retry_after: retry_after(&headers),
                tracking_id,
                detail: error_message(&body)
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default(),
            });
        }
        Ok(Response {
            status,
            headers,
            body,
            tracking_id,
        })
    }
}

/// Percent-encoding for query and form values: RFC 3986 unreserved characters stay, every
/// other byte becomes `%XX`.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// A request body. Form bodies carry secrets (refresh tokens), so they stay redacted.
#[derive(Debug)]
pub enum Body {
    Json(Vec<u8>),
    Form(crate::secret::Secret<String>),
}

pub use reqwest::Method;

#[derive(Debug)]
pub struct Request<'a> {
    pub method: Method,
    pub url: &'a str,
    pub body: Option<Body>,
    pub bearer: Option<&'a crate::secret::Secret<String>>,
    pub headers: Vec<(&'static str, String)>,
}

impl<'a> Request<'a> {
    pub fn new(method: Method, url: &'a str) -> Self {
        Self {
            method,
            url,
            body: None,
            bearer: None,
            headers: Vec::new(),
        }
    }

    pub fn json<T: serde::Serialize>(mut self, body: &T) -> Self {
        self.body = Some(Body::Json(
            serde_json::to_vec(body).expect("request bodies serialise"),
        ));
        self
    }

    pub fn form(mut self, body: crate::secret::Secret<String>) -> Self {
        self.body = Some(Body::Form(body));
        self
    }

    pub fn bearer(mut self, token: &'a crate::secret::Secret<String>) -> Self {
        self.bearer = Some(token);
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// The `message` (or OAuth `error`) of a JSON error body, for error reports.
fn error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = value
        .get("message")
        .or_else(|| value.get("error_description"))
        .or_else(|| value.get("error"))?
        .as_str()?;
    Some(text.chars().take(200).collect())
}

/// `Retry-After` in its delta-seconds form (the form the cloud uses).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// Turns reqwest's layered error into one sentence naming the real cause.
fn classify(url: &str, timeout: Duration, error: &reqwest::Error) -> HttpError {
    let url = url.to_string();
    if error.is_timeout() {
        return HttpError::Timeout { url, timeout };
    }
    if let Some(tls) = find_cause::<rustls::Error>(error) {
        return tls_error(url, tls);
    }
    if error.is_connect() {
        let reason = match find_cause::<std::io::Error>(error) {
            Some(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                "connection refused".to_string()
            }
            Some(io) => io.to_string(),
            None => error
                .source()
                .map_or_else(|| error.to_string(), |s| s.to_string()),
        };
        return HttpError::Connect { url, reason };
    }
    HttpError::Other {
        url,
        reason: error.to_string(),
    }
}

/// The first error of type `T` in the chain, looking inside `io::Error`s too: std's
/// `io::Error::source()` skips the error it wraps, so that one is reached via `get_ref`.
fn find_cause<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(cause) = current {
        if let Some(found) = cause.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if let Some(found) = io.get_ref().and_then(|inner| find_cause::<T>(inner)) {
                return Some(found);
            }
        }
        current = cause.source();
    }
    None
}

fn tls_error(url: String, error: &rustls::Error) -> HttpError {
    match error {
        rustls::Error::InvalidCertificate(reason) => HttpError::UntrustedCertificate {
            url,
            reason: format!("{reason:?}"),
        },
        other => HttpError::Tls {
            url,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(percent_encode("a+b/c=d e~"), "a%2Bb%2Fc%3Dd%20e~");
        assert_eq!(
            percent_encode("kms://kms.sim.invalid/keys/default"),
            "kms%3A%2F%2Fkms.sim.invalid%2Fkeys%2Fdefault"
        );
    }

    #[test]
    fn tracking_ids_share_a_session_and_count_up() {
        let ids = TrackingIds::default();
        let first = ids.next();
        let second = ids.next();
        assert!(
            first.starts_with("ROOMD_") && first.ends_with("_0"),
            "{first}"
        );
        assert_eq!(first.trim_end_matches("_0"), second.trim_end_matches("_1"));
    }

    #[test]
    fn retry_after_seconds_parse() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
