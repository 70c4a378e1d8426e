//! GDS, the bootstrap service (wire profile §1 step 1): `GET /gds/health` returns the health document
//! of seed 000. The agent proceeds with activation only when `serviceState` is `online`.

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::clock::iso8601_millis;
use crate::state::AppState;

/// The upstream services seed 000 lists under GDS, with how long before the top-level check each
/// was last checked (the seed shows them a little older than GDS itself).
const UPSTREAMS: [(&str, u64); 3] = [
    ("FederationLookupService", 816),
    ("Cassandra", 915),
    ("CommonIdentity", 946),
];

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

async fn health(State(app): State<AppState>) -> Json<Value> {
    let state = app.sim.with_scenario(|s| s.gds.service_state.clone());
    // Always 200: the body, not the status, says whether GDS is usable (as the real service does).
    Json(health_document(&state, SystemTime::now()))
}

/// The message seed 000 pairs with a state; states the seed does not show read as unhealthy.
fn message_for(state: &str) -> &'static str {
    match state {
        "online" => "Healthy",
        "degraded" => "Degraded",
        _ => "Unhealthy",
    }
}

/// Builds the document. Upstream services share the top-level state, so a non-online GDS also
/// shows why in its dependencies.
pub(crate) fn health_document(state: &str, now: SystemTime) -> Value {
    let upstreams: Vec<Value> = UPSTREAMS
        .iter()
        .map(|(name, age_ms)| {
            let checked = now
                .checked_sub(Duration::from_millis(*age_ms))
                .unwrap_or(now);
            service(name, state, checked, Vec::new())
        })
        .collect();
    service("GDS", state, now, upstreams)
}

fn service(name: &str, state: &str, at: SystemTime, upstreams: Vec<Value>) -> Value {
    json!({
        "lastUpdated": iso8601_millis(at),
        "message": message_for(state),
        "serviceName": name,
        "serviceState": state,
        "serviceType": "REQUIRED",
        "upstreamServices": upstreams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn online_document_matches_seed_shape() {
        let now = UNIX_EPOCH + Duration::from_millis(1_650_641_890_322);
        let doc = health_document("online", now);
        assert_eq!(doc["lastUpdated"], "2022-04-22T15:38:10.322Z");
        assert_eq!(doc["message"], "Healthy");
        assert_eq!(doc["serviceName"], "GDS");
        assert_eq!(doc["serviceState"], "online");
        assert_eq!(doc["serviceType"], "REQUIRED");
        let ups = doc["upstreamServices"].as_array().expect("array");
        let names: Vec<&str> = ups
            .iter()
            .filter_map(|u| u["serviceName"].as_str())
            .collect();
        assert_eq!(
            names,
            ["FederationLookupService", "Cassandra", "CommonIdentity"]
        );
        for u in ups {
            assert_eq!(u["serviceState"], "online");
            assert_eq!(u["serviceType"], "REQUIRED");
            assert_eq!(u["upstreamServices"], json!([]));
        }
        assert_eq!(ups[0]["lastUpdated"], "2022-04-22T15:38:09.506Z");
    }

    #[test]
    fn non_online_messages() {
        let now = SystemTime::now();
        assert_eq!(health_document("offline", now)["message"], "Unhealthy");
        assert_eq!(health_document("degraded", now)["message"], "Degraded");
        assert_eq!(
            health_document("maintenance", now)["serviceState"],
            "maintenance"
        );
    }
}
