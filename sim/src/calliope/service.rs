//! `GET /calliope/api/discovery/v1/clusters` (bearer-protected): every cluster's nodes, with
//! `Cache-Control: max-age=7200`.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::state::AppState;

/// The discovery document's `Cache-Control` (wire profile §6).
pub const CACHE_CONTROL: &str = "max-age=7200";

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/discovery/v1/clusters", get(clusters))
}

async fn clusters(State(app): State<AppState>) -> Response {
    let mut resp = Json(app.sim.calliope.discovery()).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    resp
}
