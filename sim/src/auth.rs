//! Bearer authentication for the post-activation services (U2C, WDM and later ones): a valid access
//! token in `Authorization: Bearer <token>`, or 401 `{"message":"invalid or expired token"}` with
//! `WWW-Authenticate: Bearer`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use serde_json::json;

use crate::state::SimState;

/// What a valid token says about its holder; handlers read it as `Extension<Grant>`.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub org_id: String,
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

pub(crate) async fn require_bearer(
    State(sim): State<Arc<SimState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let org = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .and_then(|t| sim.tokens.check_access(t));
    match org {
        Some(org_id) => {
            req.extensions_mut().insert(Grant { org_id });
            next.run(req).await
        }
        None => {
            tracing::info!(path = %req.uri().path(), "bearer token missing or invalid");
            let mut resp = (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "message": "invalid or expired token" })),
            )
                .into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_header() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
