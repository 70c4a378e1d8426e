//! The Meeting Server's HTTP side (seed 001 §4): `POST /api/v1/authTokens` and the
//! `GET /events/v1?authToken=` upgrade.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use hyper_util::rt::TokioIo;
use serde_json::json;

use super::{CmsClose, MeetingServer, Refusal, conn, ws};
use crate::recorder;
use crate::shutdown::Shutdown;
use crate::state::SimState;

/// Seconds a 503 for a full server asks the client to wait.
const FULL_RETRY_AFTER: &str = "5";

#[derive(Debug, Clone)]
struct App {
    cms: Arc<MeetingServer>,
    shutdown: Shutdown,
}

pub(super) fn router(cms: Arc<MeetingServer>, sim: Arc<SimState>, shutdown: Shutdown) -> Router {
    Router::new()
        .route("/api/v1/authTokens", post(auth_tokens))
        .route("/events/v1", get(events))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({ "message": "no such route on the roomd-sim meeting server" })),
            )
        })
        .layer(middleware::from_fn_with_state(
            (sim, "meeting_server"),
            recorder::record,
        ))
        .with_state(App { cms, shutdown })
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}

/// `(user, password)` from `Authorization: Basic ...`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Constant-time comparison, so the simulator does not teach timing attacks by example.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn auth_tokens(State(app): State<App>, headers: HeaderMap) -> Response {
    let config = app.cms.config();
    let ok = basic_credentials(&headers)
        .is_some_and(|(u, p)| same(&u, &config.user) & same(&p, &config.password));
    if !ok {
        let mut resp = message(StatusCode::UNAUTHORIZED, "invalid credentials");
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"roomd-sim meeting server\""),
        );
        return resp;
    }
    let token = app.cms.issue_token();
    tracing::info!("meeting server auth token issued");
    let mut resp = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&token) {
        resp.headers_mut().insert("x-cisco-cms-auth-token", v);
    }
    resp
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

async fn events(State(app): State<App>, mut req: Request) -> Response {
    let token = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "authToken")
            .map(|(_, v)| v.into_owned())
    });
    if !token.is_some_and(|t| app.cms.token_valid(&t)) {
        return message(StatusCode::UNAUTHORIZED, "invalid or expired authToken");
    }
    let headers = req.headers();
    let is_upgrade = header_has_token(headers, header::UPGRADE, "websocket")
        && header_has_token(headers, header::CONNECTION, "upgrade");
    if !is_upgrade {
        return message(StatusCode::BAD_REQUEST, "not a WebSocket upgrade");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        let mut resp = message(StatusCode::BAD_REQUEST, "Sec-WebSocket-Version must be 13");
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return resp;
    }
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
    else {
        return message(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key missing");
    };
    let accept = ws::accept_key(key);
    let (id, notify) = match app.cms.open() {
        Ok(slot) => slot,
        Err(Refusal::Full(max)) => {
            let mut resp = message(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("at most {max} event connections"),
            );
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(FULL_RETRY_AFTER),
            );
            return resp;
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let cms = Arc::clone(&app.cms);
    let shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => conn::run(cms, id, notify, TokioIo::new(upgraded), shutdown).await,
            Err(e) => cms.closed(
                id,
                CmsClose {
                    code: None,
                    reason: format!("upgrade failed: {e}"),
                    by: "gone".to_owned(),
                },
            ),
        }
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(basic_credentials(&h), None);
        // The guide's example: bob:beilder.
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Ym9iOmJlaWxkZXI="),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("bob".to_owned(), "beilder".to_owned()))
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&h), None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
