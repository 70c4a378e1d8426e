//! The simulated KMS: `GET /kms/keys?uri=<encryptionKeyUrl>` →
//! `{"uri","jwk":{"kty":"oct","k":"<base64url 32 bytes>"}}`, 404 `{"message":"key not found"}` for an
//! unknown key or one the admin marked missing. Bearer-protected. [choice: the real KMS ECDH/RSA
//! channel is out of scope]

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::base64_url;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/keys", get(key))
}

#[derive(Debug, Deserialize)]
struct KeyQuery {
    uri: Option<String>,
}

async fn key(State(app): State<AppState>, Query(q): Query<KeyQuery>) -> Response {
    let Some(uri) = q.uri.filter(|u| !u.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "message": "uri query parameter required" })),
        )
            .into_response();
    };
    match app.sim.calendar.kms_lookup(&uri) {
        Some(bytes) => Json(json!({
            "uri": uri,
            "jwk": { "kty": "oct", "k": base64_url(&bytes) },
        }))
        .into_response(),
        None => {
            tracing::info!(%uri, "KMS key not found (unknown or marked missing)");
            (
                StatusCode::NOT_FOUND,
                Json(json!({ "message": "key not found" })),
            )
                .into_response()
        }
    }
}
