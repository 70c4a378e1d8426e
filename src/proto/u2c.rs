//! The U2C service catalog (wire profile §2): the hostmap format, and seed 000's
//! per-service shape, both turned into an ordered list of base URLs per service.
//!
//! Hostmap: `serviceLinks` name a logical URL per service; `hostCatalog` maps the logical
//! host to real hosts with priorities (lower wins). A `host` may carry a port
//! (`localhost:8446`) [choice, for loopback simulation]. A link whose host is not in the
//! catalog is used as it is.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::proto::{ParseError, parse_json};

/// One place a service can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub base_url: String,
    pub priority: i64,
    pub id: Option<String>,
}

/// Base URLs per service name, best first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Catalog {
    pub services: BTreeMap<String, Vec<Candidate>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HostmapDoc {
    service_links: BTreeMap<String, String>,
    #[serde(default)]
    host_catalog: BTreeMap<String, Vec<HostEntry>>,
}

#[derive(Deserialize)]
struct HostEntry {
    host: String,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceDoc {
    service_name: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    service_urls: Vec<ServiceUrl>,
    #[serde(default)]
    logical_names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceUrl {
    base_url: String,
    #[serde(default)]
    priority: i64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ServiceList {
    List(Vec<ServiceDoc>),
    Wrapped { services: Vec<ServiceDoc> },
    One(ServiceDoc),
}

/// Parses either catalog shape.
pub fn parse_catalog(body: &[u8]) -> Result<Catalog, ParseError> {
    let value: serde_json::Value = parse_json("U2C catalog", body)?;
    if value.get("serviceLinks").is_some() {
        let doc: HostmapDoc = serde_json::from_value(value).map_err(|e| ParseError::Json {
            what: "U2C hostmap catalog",
            reason: e.to_string(),
        })?;
        return Ok(from_hostmap(doc));
    }
    let list: ServiceList = serde_json::from_value(value).map_err(|e| ParseError::Json {
        what: "U2C catalog (neither hostmap nor per-service shape)",
        reason: e.to_string(),
    })?;
    let docs = match list {
        ServiceList::List(docs) | ServiceList::Wrapped { services: docs } => docs,
        ServiceList::One(doc) => vec![doc],
    };
    Ok(from_services(docs))
}

fn from_hostmap(doc: HostmapDoc) -> Catalog {
    let mut services = BTreeMap::new();
    for (name, link) in doc.service_links {
        let Some((scheme, authority, rest)) = split_url(&link) else {
            continue;
        };
        let mut candidates: Vec<Candidate> = match doc.host_catalog.get(authority) {
            Some(hosts) if !hosts.is_empty() => hosts
                .iter()
                .map(|h| Candidate {
                    base_url: format!("{scheme}://{}{rest}", h.host),
                    priority: h.priority,
                    id: h.id.clone(),
                })
                .collect(),
            _ => vec![Candidate {
                base_url: link.clone(),
                priority: 0,
                id: None,
            }],
        };
        candidates.sort_by_key(|c| c.priority);
        services.insert(name, candidates);
    }
    Catalog { services }
}

fn from_services(docs: Vec<ServiceDoc>) -> Catalog {
    let mut services = BTreeMap::new();
    for doc in docs {
        let mut candidates: Vec<Candidate> = doc
            .service_urls
            .iter()
            .map(|u| Candidate {
                base_url: u.base_url.trim_end_matches('/').to_string(),
                priority: u.priority,
                id: doc.id.clone(),
            })
            .collect();
        if candidates.is_empty() {
            candidates = doc
                .logical_names
                .iter()
                .map(|n| Candidate {
                    base_url: n.trim_end_matches('/').to_string(),
                    priority: 0,
                    id: doc.id.clone(),
                })
                .collect();
        }
        candidates.sort_by_key(|c| c.priority);
        services.insert(doc.service_name, candidates);
    }
    Catalog { services }
}

/// `https://host:port/path` → ("https", "host:port", "/path").
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    (!authority.is_empty()).then_some((scheme, authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostmap_resolves_logical_hosts_by_priority() {
        let body = br#"{"serviceLinks":{"wdm":"https://wdm.sim.invalid/wdm/api/v1",
            "direct":"https://direct.example/x"},
          "hostCatalog":{"wdm.sim.invalid":[
             {"host":"localhost:2","ttl":-1,"priority":5,"id":"urn:TEAM:b:wdm"},
             {"host":"localhost:1","ttl":-1,"priority":1,"id":"urn:TEAM:a:wdm"}]},
          "format":"hostmap"}"#;
        let catalog = parse_catalog(body).unwrap();
        let wdm = &catalog.services["wdm"];
        assert_eq!(wdm[0].base_url, "https://localhost:1/wdm/api/v1");
        assert_eq!(wdm[1].base_url, "https://localhost:2/wdm/api/v1");
        assert_eq!(wdm[0].id.as_deref(), Some("urn:TEAM:a:wdm"));
        assert_eq!(
            catalog.services["direct"][0].base_url,
            "https://direct.example/x"
        );
    }

    #[test]
    fn seed_000_per_service_shape_is_accepted() {
        let body = br#"{"id":"urn:TEAM:us-east-2_a:wdm",
          "serviceUrls":[{"priority":5,"baseUrl":"https://wdm.a7.ciscospark.com/wdm/api/v1"}],
          "ttl":-1,"internalServiceUrls":[],"serviceName":"wdm",
          "logicalNames":["https://wdm-a.wbx2.com/wdm/api/v1"]}"#;
        let catalog = parse_catalog(body).unwrap();
        assert_eq!(
            catalog.services["wdm"][0].base_url,
            "https://wdm.a7.ciscospark.com/wdm/api/v1"
        );
    }

    #[test]
    fn garbage_is_a_named_error() {
        let err = parse_catalog(br#"{"nothing":"here"}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("U2C catalog (neither hostmap"),
            "{err}"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_catalog(&bytes);
        }
    }
}
