//! Fault injection for every HTTPS route: the next `count` matching requests get a canned status
//! instead of the real handler, e.g. 503 with `Retry-After` to exercise the agent's backoff.

use std::sync::{Arc, Mutex};

use anyhow::bail;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use serde::{Deserialize, Serialize};

use crate::state::{SimState, lock};

/// One armed fault, as posted to `POST /admin/faults`. `count` is what remains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Exact request path, or a prefix when it ends with `*` (`/gds/*`).
    pub path: String,
    /// Only requests with this method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// HTTP status to answer, 200..=599.
    pub status: u16,
    /// How many requests to fault (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// Seconds for a `Retry-After` header.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// JSON body to answer with; a short `{"message":…}` when absent.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

fn one() -> u32 {
    1
}

impl Fault {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if !(200..=599).contains(&self.status) {
            bail!("status {} must be within 200..=599", self.status);
        }
        if self.count == 0 {
            bail!("count must be at least 1");
        }
        if !self.path.starts_with('/') {
            bail!("path {:?} must start with '/'", self.path);
        }
        Ok(())
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let path_ok = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.path,
        };
        path_ok
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }

    fn response(&self) -> Response {
        // Validated on arming, so this only falls back for hand-built faults.
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let body = self.body.clone().unwrap_or_else(|| {
            serde_json::json!({
                "message": format!(
                    "{} (fault injected by roomd-sim)",
                    status.canonical_reason().unwrap_or("error")
                )
            })
        });
        let mut resp = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            status.into_response()
        } else {
            (status, axum::Json(body)).into_response()
        };
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Armed faults, first match wins.
#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    faults: Mutex<Vec<Fault>>,
}

impl FaultTable {
    pub(crate) fn arm(&self, fault: Fault) -> anyhow::Result<()> {
        fault.validate()?;
        lock(&self.faults).push(fault);
        Ok(())
    }

    pub(crate) fn clear(&self) {
        lock(&self.faults).clear();
    }

    pub(crate) fn list(&self) -> Vec<Fault> {
        lock(&self.faults).clone()
    }

    /// Consumes one use of the first fault matching the request, if any.
    fn take(&self, method: &str, path: &str) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let i = faults.iter().position(|f| f.matches(method, path))?;
        let fault = faults[i].clone();
        faults[i].count -= 1;
        if faults[i].count == 0 {
            faults.remove(i);
        }
        Some(fault)
    }
}

/// Middleware on the HTTPS router, inside the recorder: answers from an armed fault when one matches.
pub(crate) async fn inject(State(sim): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    let fault = sim.faults.take(req.method().as_str(), req.uri().path());
    match fault {
        Some(f) => {
            tracing::info!(path = %req.uri().path(), status = f.status, "injecting fault");
            f.response()
        }
        None => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(path: &str, count: u32) -> Fault {
        Fault {
            path: path.into(),
            method: None,
            status: 503,
            count,
            retry_after: Some(5),
            body: None,
        }
    }

    #[test]
    fn exact_path_counts_down() {
        let t = FaultTable::default();
        t.arm(fault("/gds/health", 2)).expect("arm");
        assert!(t.take("GET", "/gds/health").is_some());
        assert!(t.take("GET", "/gds/healthz").is_none());
        assert!(t.take("GET", "/gds/health").is_some());
        assert!(t.take("GET", "/gds/health").is_none());
        assert!(t.list().is_empty());
    }

    #[test]
    fn star_is_a_prefix_and_method_filters() {
        let t = FaultTable::default();
        let mut f = fault("/activation/*", 1);
        f.method = Some("post".into());
        t.arm(f).expect("arm");
        assert!(t.take("GET", "/activation/x").is_none());
        assert!(t.take("POST", "/activation/idb/token").is_some());
    }

    #[test]
    fn invalid_faults_are_refused() {
        let t = FaultTable::default();
        assert!(t.arm(fault("/x", 0)).is_err());
        assert!(t.arm(fault("x", 1)).is_err());
        let mut f = fault("/x", 1);
        f.status = 99;
        assert!(t.arm(f).is_err());
    }

    #[test]
    fn parses_admin_body_with_defaults() {
        let f: Fault =
            serde_json::from_str(r#"{"path":"/gds/health","status":503}"#).expect("parse");
        assert_eq!(f.count, 1);
        assert_eq!(f.retry_after, None);
        assert!(
            serde_json::from_str::<Fault>(r#"{"path":"/","status":503,"retryAfter":1}"#).is_err()
        );
    }
}
