//! Identity (wire profile §1 step 8): `POST /identity/access_token` with the form
//! `grant_type=refresh_token&refresh_token=…` issues a new access token; the refresh token stays.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/access_token", post(access_token))
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

async fn access_token(State(app): State<AppState>, body: Bytes) -> Response {
    let mut grant_type = None;
    let mut refresh_token = None;
    for (k, v) in form_urlencoded::parse(&body) {
        match &*k {
            "grant_type" => grant_type = Some(v.into_owned()),
            "refresh_token" => refresh_token = Some(v.into_owned()),
            _ => {}
        }
    }
    if grant_type.as_deref() != Some("refresh_token") {
        return oauth_error(
            "unsupported_grant_type",
            "only grant_type=refresh_token is supported",
        );
    }
    let Some(refresh_token) = refresh_token else {
        return oauth_error("invalid_request", "refresh_token is required");
    };
    let life = app.sim.with_scenario(|s| s.tokens.clone());
    match app.sim.tokens.refresh(&refresh_token, &life) {
        Some(issued) => {
            tracing::info!("access token refreshed");
            let mut body = issued.to_json();
            body["scope"] = json!("spark:all");
            Json(body).into_response()
        }
        None => {
            tracing::info!("refresh token rejected");
            oauth_error("invalid_grant", "refresh token rejected")
        }
    }
}
