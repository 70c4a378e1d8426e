//! U2C, the service catalog (wire profile §2): `GET /u2c/catalog?format=hostmap`. Bearer-protected.
//!
//! Service links use logical hosts `<name>.sim.invalid` that only the host catalog resolves, each to
//! two real authorities ([choice]: `host` may carry a port): the alt listener with priority 1 (the
//! primary, switchable to fail) and the proxy listener with priority 5 (the fallback).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::state::AppState;

/// Logical service name and the path of its base URL.
pub(crate) const SERVICES: [(&str, &str); 7] = [
    ("wdm", "/wdm/api/v1"),
    ("identity", "/identity"),
    ("calendar", "/calendar/api/v1"),
    ("locus", "/locus/api/v1"),
    ("kms", "/kms"),
    ("calliope", "/calliope"),
    ("u2c", "/u2c"),
];

/// Domain of the logical hosts.
pub const LOGICAL_DOMAIN: &str = "sim.invalid";

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/catalog", get(catalog))
}

#[derive(Debug, Deserialize)]
struct CatalogQuery {
    format: Option<String>,
}

async fn catalog(State(app): State<AppState>, Query(q): Query<CatalogQuery>) -> Response {
    if q.format.as_deref() != Some("hostmap") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "message": "unsupported format; use format=hostmap" })),
        )
            .into_response();
    }
    Json(hostmap(
        app.sim.endpoints.alt_port,
        app.sim.endpoints.proxy_port,
    ))
    .into_response()
}

/// The hostmap document for the given alt (primary) and proxy (fallback) ports.
pub(crate) fn hostmap(alt_port: u16, proxy_port: u16) -> Value {
    let mut links = Map::new();
    let mut hosts = Map::new();
    for (name, path) in SERVICES {
        let logical = format!("{name}.{LOGICAL_DOMAIN}");
        links.insert(name.to_owned(), json!(format!("https://{logical}{path}")));
        hosts.insert(
            logical,
            json!([
                {
                    "host": format!("localhost:{alt_port}"),
                    "ttl": -1,
                    "priority": 1,
                    "id": format!("urn:TEAM:sim-east_a:{name}"),
                },
                {
                    "host": format!("localhost:{proxy_port}"),
                    "ttl": -1,
                    "priority": 5,
                    "id": format!("urn:TEAM:sim-west_b:{name}"),
                },
            ]),
        );
    }
    json!({
        "serviceLinks": links,
        "hostCatalog": hosts,
        "format": "hostmap",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostmap_shape() {
        let doc = hostmap(1001, 1002);
        assert_eq!(doc["format"], "hostmap");
        assert_eq!(
            doc["serviceLinks"]["wdm"],
            "https://wdm.sim.invalid/wdm/api/v1"
        );
        let wdm = &doc["hostCatalog"]["wdm.sim.invalid"];
        assert_eq!(wdm[0]["host"], "localhost:1001");
        assert_eq!(wdm[0]["priority"], 1);
        assert_eq!(wdm[0]["id"], "urn:TEAM:sim-east_a:wdm");
        assert_eq!(wdm[1]["host"], "localhost:1002");
        assert_eq!(wdm[1]["ttl"], -1);
        assert_eq!(doc["hostCatalog"].as_object().map(Map::len), Some(7));
    }
}
