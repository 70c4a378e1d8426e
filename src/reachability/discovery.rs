//! The calliope cluster document (`GET {calliope}/api/discovery/v1/clusters`) and when to
//! fetch it again: `Cache-Control: max-age` (default 7200 s) × rand(0.75..1.0).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::cloud::authed::{AuthedClient, CloudError};
use crate::net::http::Method;
use crate::proto::ParseError;

use super::report::Transport;

/// `max-age` when the answer has none.
pub const DEFAULT_MAX_AGE_SECS: u64 = 7200;

/// One cluster's nodes per transport (`"ip:port"` strings that did not parse are dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub xtls: Vec<SocketAddr>,
}

impl Cluster {
    pub fn nodes(&self, transport: Transport) -> &[SocketAddr] {
        match transport {
            Transport::Udp => &self.udp,
            Transport::Tcp => &self.tcp,
            Transport::Xtls => &self.xtls,
        }
    }

    /// The node a probe goes to: the first one of the transport.
    pub fn probe_target(&self, transport: Transport) -> Option<SocketAddr> {
        self.nodes(transport).first().copied()
    }
}

/// The discovery document: clusters by name, in the document's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterDocument {
    pub clusters: Vec<(String, Cluster)>,
    /// Entries dropped while parsing (`cluster/transport: reason`).
    pub rejected: Vec<String>,
}

impl ClusterDocument {
    pub fn new(clusters: Vec<(String, Cluster)>) -> Self {
        Self {
            clusters,
            rejected: Vec::new(),
        }
    }
}

/// Parses `{"clusters":{"<name>":{"udp":["ip:port"…],"tcp":[…],"xtls":[…]}}}` leniently:
/// unknown fields are ignored, a node that is not `ip:port` is dropped and named in
/// `rejected`; only a body without a `clusters` object is an error.
pub fn parse_clusters(body: &[u8]) -> Result<ClusterDocument, ParseError> {
    let invalid = |reason: &str| ParseError::Invalid {
        what: "calliope cluster document",
        reason: reason.to_string(),
    };
    let value: Value = crate::proto::parse_json("calliope cluster document", body)?;
    let clusters = value
        .get("clusters")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("no `clusters` object"))?;
    let mut document = ClusterDocument::default();
    for (name, entry) in clusters {
        let Some(entry) = entry.as_object() else {
            document
                .rejected
                .push(format!("{name}: not an object, skipped"));
            continue;
        };
        let mut cluster = Cluster::default();
        for transport in Transport::ALL {
            let Some(nodes) = entry.get(transport.as_str()) else {
                continue;
            };
            let Some(nodes) = nodes.as_array() else {
                document
                    .rejected
                    .push(format!("{name}/{transport}: not a list"));
                continue;
            };
            for node in nodes {
                match node.as_str().map(str::parse::<SocketAddr>) {
                    Some(Ok(addr)) => match transport {
                        Transport::Udp => cluster.udp.push(addr),
                        Transport::Tcp => cluster.tcp.push(addr),
                        Transport::Xtls => cluster.xtls.push(addr),
                    },
                    _ => document
                        .rejected
                        .push(format!("{name}/{transport}: {node} is not ip:port")),
                }
            }
        }
        document.clusters.push((name.clone(), cluster));
    }
    Ok(document)
}

/// `max-age` of a `Cache-Control` value (`public, max-age=7200`), if there is a valid one.
pub fn parse_max_age(cache_control: &str) -> Option<u64> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        value.trim().trim_matches('"').parse().ok()
    })
}

/// The delay before the next run: `max_age` × `percent` / 100, `percent` drawn from 75..100.
pub fn next_run_secs(max_age_secs: u64, percent: f64) -> u64 {
    (max_age_secs as f64 * percent / 100.0) as u64
}

/// Draws the next run's delay and logs it as seed 000 does
/// (`CalliopeDiscovery Cache-Control::max-age=7200 rand (75 - 100) -> 6962`).
pub fn schedule_next(max_age_secs: u64) -> Duration {
    use rand::Rng as _;
    let percent = rand::rng().random_range(75.0..100.0);
    let secs = next_run_secs(max_age_secs, percent);
    tracing::info!(
        "CalliopeDiscovery Cache-Control::max-age={max_age_secs} rand (75 - 100) -> {secs}"
    );
    Duration::from_secs(secs)
}

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum DiscoveryError {
    /// {0}
    Cloud(#[from] CloudError),
    /// {0}
    Protocol(#[from] ParseError),
}

/// What the discovery request answered.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub document: ClusterDocument,
    /// The answer's `Cache-Control: max-age`, if it had one.
    pub max_age_secs: Option<u64>,
}

/// Where discovery runs from, as the session hands it over once the U2C catalog names a
/// `calliope` service: the authenticated client, the base URL, and the TLS configuration of
/// the cloud trust store for the xtls probes.
#[derive(Debug, Clone)]
pub struct DiscoverySource {
    pub client: AuthedClient,
    /// The catalog's `calliope` link (`…/calliope`).
    pub calliope: String,
    pub tls: Arc<rustls::ClientConfig>,
}

impl DiscoverySource {
    /// `{calliope}/api/discovery/v1/clusters`.
    pub fn url(&self) -> String {
        format!(
            "{}/api/discovery/v1/clusters",
            self.calliope.trim_end_matches('/')
        )
    }

    /// Fetches the cluster document.
    pub async fn fetch(&self) -> Result<Discovered, DiscoveryError> {
        let response = self
            .client
            .send(Method::GET, &self.url(), None, &[])
            .await?;
        let max_age_secs = response
            .headers
            .get_all("cache-control")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_max_age);
        let document = parse_clusters(&response.body)?;
        for reason in &document.rejected {
            tracing::warn!("calliope cluster document: {reason}");
        }
        Ok(Discovered {
            document,
            max_age_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_clusters_in_order_leniently() {
        let body = br#"{"clusters":{
            "wdfw2.wdfw2.*":{"udp":["207.182.171.212:5004"],"tcp":["207.182.188.205:5004","x"],"xtls":["207.182.171.212:443"],"extra":1},
            "only-tcp.*":{"tcp":["[2001:db8::1]:5004"]},
            "bad":"nope"
        },"other":true}"#;
        let doc = parse_clusters(body).unwrap();
        assert_eq!(doc.clusters.len(), 2);
        assert_eq!(doc.clusters[0].0, "wdfw2.wdfw2.*");
        let first = &doc.clusters[0].1;
        assert_eq!(
            first.probe_target(Transport::Udp),
            Some("207.182.171.212:5004".parse().unwrap())
        );
        assert_eq!(first.tcp.len(), 1);
        assert_eq!(doc.clusters[1].1.probe_target(Transport::Udp), None);
        assert_eq!(doc.rejected.len(), 2);
        assert!(parse_clusters(b"{}").is_err());
        assert!(parse_clusters(b"not json").is_err());
    }

    #[test]
    fn max_age_from_cache_control() {
        assert_eq!(parse_max_age("max-age=7200"), Some(7200));
        assert_eq!(
            parse_max_age("public, Max-Age = 60 , must-revalidate"),
            Some(60)
        );
        assert_eq!(parse_max_age("no-cache"), None);
        assert_eq!(parse_max_age("max-age=soon"), None);
    }

    #[test]
    fn next_run_is_three_quarters_to_all_of_max_age() {
        assert_eq!(next_run_secs(7200, 96.7), 6962);
        assert_eq!(next_run_secs(7200, 75.0), 5400);
        for _ in 0..100 {
            let d = schedule_next(7200).as_secs();
            assert!((5400..7200).contains(&d), "{d}");
        }
    }
}
