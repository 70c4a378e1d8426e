//! The GDS health document (`GET {gds}/health`, seed 000 "Activation"):
//!
//! ```json
//! {"lastUpdated":"2022-04-22T15:38:09.516Z","message":"Healthy","serviceName":"GDS",
//!  "serviceState":"online","serviceType":"REQUIRED","upstreamServices":[{...}]}
//! ```

use serde::{Deserialize, Serialize};

/// Deeper nesting than this is refused (a hostile server could otherwise recurse us).
pub const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct HealthDocument {
    pub last_updated: Option<String>,
    pub message: Option<String>,
    pub service_name: Option<String>,
    /// `online` is the only state in which activation may go ahead.
    pub service_state: String,
    pub service_type: Option<String>,
    pub upstream_services: Vec<HealthDocument>,
}

#[derive(Debug, displaydoc::Display, thiserror::Error, PartialEq, Eq)]
pub enum HealthParseError {
    /// GDS health document is not valid JSON: {0}
    Json(String),
    /// GDS health document has no `serviceState`
    MissingState,
    /// GDS health document nests upstream services deeper than 8 levels
    TooDeep,
}

impl HealthDocument {
    pub fn is_online(&self) -> bool {
        self.service_state.eq_ignore_ascii_case("online")
    }

    /// Upstream services that are not online, by name: the reason a GDS is unhealthy.
    pub fn failing_upstreams(&self) -> Vec<String> {
        self.upstream_services
            .iter()
            .filter(|u| !u.is_online())
            .map(|u| {
                format!(
                    "{}={}",
                    u.service_name.as_deref().unwrap_or("?"),
                    u.service_state
                )
            })
            .collect()
    }

    fn depth(&self) -> usize {
        1 + self
            .upstream_services
            .iter()
            .map(HealthDocument::depth)
            .max()
            .unwrap_or(0)
    }
}

/// Parses a health document from the bytes of a response body.
pub fn parse_health(body: &[u8]) -> Result<HealthDocument, HealthParseError> {
    // serde_json's own recursion limit (128) guards the stack; MAX_DEPTH is our policy.
    let doc: HealthDocument =
        serde_json::from_slice(body).map_err(|e| HealthParseError::Json(e.to_string()))?;
    if doc.service_state.trim().is_empty() {
        return Err(HealthParseError::MissingState);
    }
    if doc.depth() > MAX_DEPTH {
        return Err(HealthParseError::TooDeep);
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEED_000: &str = r#"{
      "lastUpdated" : "2022-04-22T15:38:09.516Z",
      "message" : "Healthy",
      "serviceName" : "GDS",
      "serviceState" : "online",
      "serviceType" : "REQUIRED",
      "upstreamServices" : [
        { "lastUpdated" : "2022-04-22T15:38:09.506Z", "message" : "Healthy",
          "serviceName" : "FederationLookupService", "serviceState" : "online",
          "serviceType" : "REQUIRED", "upstreamServices" : [] },
        { "lastUpdated" : "2022-04-22T15:38:09.407Z", "message" : "Healthy",
          "serviceName" : "Cassandra", "serviceState" : "offline",
          "serviceType" : "REQUIRED", "upstreamServices" : [] }
      ]
    }"#;

    #[test]
    fn parses_the_seed_document() {
        let doc = parse_health(SEED_000.as_bytes()).unwrap();
        assert!(doc.is_online());
        assert_eq!(doc.service_name.as_deref(), Some("GDS"));
        assert_eq!(doc.upstream_services.len(), 2);
        assert_eq!(doc.failing_upstreams(), vec!["Cassandra=offline"]);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let doc = parse_health(br#"{"serviceState":"offline","newField":{"x":1}}"#).unwrap();
        assert!(!doc.is_online());
    }

    #[test]
    fn bad_documents_are_named_errors() {
        assert_eq!(
            parse_health(br#"{"message":"Healthy"}"#),
            Err(HealthParseError::MissingState)
        );
        assert!(matches!(
            parse_health(b"<html>502 Bad Gateway</html>"),
            Err(HealthParseError::Json(_))
        ));
        let mut deep = String::from(r#"{"serviceState":"online"}"#);
        for _ in 0..MAX_DEPTH {
            deep = format!(r#"{{"serviceState":"online","upstreamServices":[{deep}]}}"#);
        }
        assert_eq!(
            parse_health(deep.as_bytes()),
            Err(HealthParseError::TooDeep)
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_health(&bytes);
        }

        #[test]
        fn round_trips_generated_documents(state in "[a-z]{1,10}", message in ".{0,20}", n in 0usize..4) {
            let doc = HealthDocument {
                service_state: state.clone(),
                message: Some(message),
                upstream_services: (0..n).map(|i| HealthDocument {
                    service_name: Some(format!("svc{i}")),
                    service_state: "online".into(),
                    ..Default::default()
                }).collect(),
                ..Default::default()
            };
            let bytes = serde_json::to_vec(&doc).unwrap();
            prop_assert_eq!(parse_health(&bytes).unwrap(), doc);
        }
    }
}
