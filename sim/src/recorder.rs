//! What the simulator received: every HTTPS request, kept in a bounded log tests can inspect.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::state::{SimState, lock};

/// How many entries each log keeps; older ones are dropped first.
pub const LOG_CAPACITY: usize = 10_000;

/// Request bodies larger than this are refused with 413 (still recorded, without the body).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// One HTTPS request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedRequest {
    pub method: String,
    /// Path without the query, e.g. `/gds/health`.
    pub path: String,
    /// Raw query string without `?`; empty when there is none.
    pub query: String,
    /// In arrival order; names are lower-case (HTTP/2 requires it, HTTP/1.1 is normalised to match).
    pub headers: Vec<(String, String)>,
    /// Body as UTF-8 (invalid bytes replaced).
    pub body: String,
    /// Arrival time, milliseconds since the UNIX epoch.
    pub at_ms: u64,
    /// The listener that received it: `main`, `proxy`, `alt` or `meeting_server`.
    #[serde(default)]
    pub listener: String,
}

impl ReceivedRequest {
    /// First value of a header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A FIFO log that keeps the newest `capacity` entries.
#[derive(Debug)]
pub(crate) struct BoundedLog<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
}

impl<T: Clone> BoundedLog<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    pub(crate) fn push(&self, item: T) {
        let mut items = lock(&self.items);
        while items.len() >= self.capacity {
            items.pop_front();
        }
        items.push_back(item);
    }

    pub(crate) fn snapshot(&self) -> Vec<T> {
        lock(&self.items).iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        lock(&self.items).clear();
    }
}

/// Middleware on the HTTPS router: records the request (body included) before anything else runs,
/// so faulted and unrouted requests are recorded too.
pub(crate) async fn record(
    State((sim, listener)): State<(Arc<SimState>, &'static str)>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let mut entry = ReceivedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::new(),
        at_ms: now_ms(),
        listener: listener.to_owned(),
    };
    let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(path = %entry.path, error = %e, "request body refused");
            entry.body = format!("<body not read: {e}>");
            sim.requests.push(entry);
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large or broken",
            )
                .into_response();
        }
    };
    entry.body = String::from_utf8_lossy(&bytes).into_owned();
    tracing::debug!(method = %entry.method, path = %entry.path, "https request");
    sim.requests.push(entry);
    // The parts keep their extensions, so a WebSocket upgrade still works downstream.
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_log_drops_oldest() {
        let log = BoundedLog::new(3);
        for i in 0..5 {
            log.push(i);
        }
        assert_eq!(log.snapshot(), vec![2, 3, 4]);
        log.clear();
        assert!(log.snapshot().is_empty());
    }

    #[test]
    fn header_lookup_ignores_case() {
        let r = ReceivedRequest {
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            headers: vec![("trackingid".into(), "ROOMD_x_1".into())],
            body: String::new(),
            at_ms: 0,
            listener: "main".into(),
        };
        assert_eq!(r.header("TrackingID"), Some("ROOMD_x_1"));
        assert_eq!(r.header("authorization"), None);
    }
}
