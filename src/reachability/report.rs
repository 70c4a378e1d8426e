//! What one discovery run found: per cluster and transport reachable + RTT, the counting
//! rules of the log line, the best node per transport, the join body's `reachability` object,
//! and the status `roomd status` shows (`Experimental CalliopeDiscovery …`).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

/// A STUN transport, in the order ties are broken (udp, tcp, xtls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
    Xtls,
}

impl Transport {
    /// Every transport, in tie-break (and `Best N`) order.
    pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Xtls];

    /// `udp`, `tcp`, `xtls`: the discovery document's keys, the log's `trnsp:`, status' `Transport`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Xtls => "xtls",
        }
    }

    /// The `N` of status' `Best N`: 1 udp, 2 tcp, 3 xtls.
    pub fn best_index(self) -> usize {
        match self {
            Transport::Udp => 1,
            Transport::Tcp => 2,
            Transport::Xtls => 3,
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One probe: the first node of one transport of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportResult {
    pub node: SocketAddr,
    /// Request → matching response; `None`: not reached.
    pub rtt: Option<Duration>,
    /// The XOR-MAPPED-ADDRESS the node saw us as.
    pub mapped: Option<SocketAddr>,
    /// Requests sent (udp counts its retransmissions).
    pub requests_sent: u32,
    /// Responses ignored: not STUN, another transaction id, an error response.
    pub ignored: u32,
    /// Why the node was not reached (`timed out after 1000 ms`, `connection refused`, …).
    pub failure: Option<String>,
}

impl TransportResult {
    pub fn reachable(&self) -> bool {
        self.rtt.is_some()
    }

    /// The RTT in whole milliseconds, as logged and reported.
    pub fn rtt_ms(&self) -> Option<u64> {
        self.rtt.map(|d| d.as_millis() as u64)
    }
}

/// One discovered cluster; a transport the cluster does not offer is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterResult {
    pub name: String,
    pub udp: Option<TransportResult>,
    pub tcp: Option<TransportResult>,
    pub xtls: Option<TransportResult>,
}

impl ClusterResult {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            udp: None,
            tcp: None,
            xtls: None,
        }
    }

    pub fn get(&self, transport: Transport) -> Option<&TransportResult> {
        match transport {
            Transport::Udp => self.udp.as_ref(),
            Transport::Tcp => self.tcp.as_ref(),
            Transport::Xtls => self.xtls.as_ref(),
        }
    }

    pub fn slot(&mut self, transport: Transport) -> &mut Option<TransportResult> {
        match transport {
            Transport::Udp => &mut self.udp,
            Transport::Tcp => &mut self.tcp,
            Transport::Xtls => &mut self.xtls,
        }
    }

    /// The transport that answered fastest (ties: udp, tcp, xtls); `None`: not reached.
    pub fn fastest(&self) -> Option<(Transport, &TransportResult)> {
        Transport::ALL
            .into_iter()
            .filter_map(|t| self.get(t).filter(|r| r.reachable()).map(|r| (t, r)))
            .min_by_key(|(t, r)| (r.rtt, *t))
    }

    pub fn reached(&self) -> bool {
        self.fastest().is_some()
    }
}

/// The fastest node of a transport (or of all), as status' `Best N` and the log's `BEST` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Best {
    pub cluster: String,
    pub transport: Transport,
    pub node: SocketAddr,
    pub rtt: Duration,
}

impl Best {
    pub fn rtt_ms(&self) -> u64 {
        self.rtt.as_millis() as u64
    }

    /// `CalliopeDiscovery: BEST cluster:<name>, trnsp:<t>, protocol:stun, ip:<ip:port> with RTT:<ms>`.
    pub fn log_line(&self) -> String {
        format!(
            "CalliopeDiscovery: BEST cluster:{}, trnsp:{}, protocol:stun, ip:{} with RTT:{}",
            self.cluster,
            self.transport,
            self.node,
            self.rtt_ms()
        )
    }
}

/// One completed discovery run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachabilityReport {
    pub started_at: SystemTime,
    /// From the first probe to the last answer or timeout.
    pub duration: Duration,
    /// Every discovered cluster, in the document's order.
    pub clusters: Vec<ClusterResult>,
    /// The most probe sockets that were open at once.
    pub peak_in_flight: usize,
}

impl ReachabilityReport {
    pub fn clusters_reached(&self) -> usize {
        self.clusters.iter().filter(|c| c.reached()).count()
    }

    /// `[U, T, X]`: each reached cluster counted once, under its fastest transport.
    pub fn reached_by_fastest(&self) -> [usize; 3] {
        let mut counts = [0; 3];
        for (transport, _) in self.clusters.iter().filter_map(|c| c.fastest()) {
            counts[transport.best_index() - 1] += 1;
        }
        counts
    }

    fn results(&self) -> impl Iterator<Item = (&ClusterResult, Transport, &TransportResult)> {
        self.clusters.iter().flat_map(|c| {
            Transport::ALL
                .into_iter()
                .filter_map(move |t| c.get(t).map(|r| (c, t, r)))
        })
    }

    /// The fastest node of `transport` (ties: the first cluster in the document).
    pub fn best(&self, transport: Transport) -> Option<Best> {
        self.best_of(|t| t == transport)
    }

    /// The fastest node over every transport (ties: udp, tcp, xtls), the log's `BEST`.
    pub fn best_overall(&self) -> Option<Best> {
        self.best_of(|_| true)
    }

    fn best_of(&self, wanted: impl Fn(Transport) -> bool) -> Option<Best> {
        self.results()
            .filter(|(_, t, _)| wanted(*t))
            .filter_map(|(c, t, r)| r.rtt.map(|rtt| (rtt, t, c, r)))
            .min_by_key(|(rtt, t, _, _)| (*rtt, *t))
            .map(|(rtt, transport, c, r)| Best {
                cluster: c.name.clone(),
                transport,
                node: r.node,
                rtt,
            })
    }

    /// `Completed` when any node answered, else `Failed`.
    pub fn status(&self) -> ReachabilityState {
        if self.clusters_reached() > 0 {
            ReachabilityState::Completed
        } else {
            ReachabilityState::Failed
        }
    }

    /// STUN requests sent, retransmissions included.
    pub fn requests_sent(&self) -> u32 {
        self.results().map(|(_, _, r)| r.requests_sent).sum()
    }

    /// Probes (one per cluster and offered transport).
    pub fn probes(&self) -> usize {
        self.results().count()
    }

    pub fn ignored_responses(&self) -> u32 {
        self.results().map(|(_, _, r)| r.ignored).sum()
    }

    /// `CalliopeDiscovery completed with response from N out of M servers. U udp, T tcp, X xTls`.
    pub fn summary_line(&self) -> String {
        let [u, t, x] = self.reached_by_fastest();
        format!(
            "CalliopeDiscovery completed with response from {} out of {} servers. {u} udp, {t} tcp, {x} xTls",
            self.clusters_reached(),
            self.clusters.len()
        )
    }

    /// The join body's `reachability` object: every discovered cluster, each offered transport
    /// `{"reachable":bool,"latencyInMilliseconds":n}` (no latency when unreached).
    pub fn join_body(&self) -> Value {
        let mut body = Map::new();
        for cluster in &self.clusters {
            let mut entry = Map::new();
            for transport in Transport::ALL {
                if let Some(result) = cluster.get(transport) {
                    let value = match result.rtt_ms() {
                        Some(ms) => json!({ "reachable": true, "latencyInMilliseconds": ms }),
                        None => json!({ "reachable": false }),
                    };
                    entry.insert(transport.as_str().into(), value);
                }
            }
            body.insert(cluster.name.clone(), Value::Object(entry));
        }
        Value::Object(body)
    }
}

/// Where media reachability is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReachabilityState {
    /// Off in the configuration.
    Disabled,
    /// No calliope link yet.
    #[default]
    NotStarted,
    Running,
    /// At least one cluster answered.
    Completed,
    /// No answer, or the discovery request failed.
    Failed,
}

impl ReachabilityState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReachabilityState::Disabled => "Disabled",
            ReachabilityState::NotStarted => "NotStarted",
            ReachabilityState::Running => "Running",
            ReachabilityState::Completed => "Completed",
            ReachabilityState::Failed => "Failed",
        }
    }
}

/// Media reachability's slice of the device status (`Experimental CalliopeDiscovery`; the
/// xStatus subtree is built in `api::xstatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachabilityStatus {
    pub state: ReachabilityState,
    /// Why the last run failed, when it did before probing.
    pub detail: Option<String>,
    /// How long the last complete run's probes took (`DiscoveryTimeInSec`).
    pub discovery_time: Option<Duration>,
    /// The fastest udp, tcp and xtls nodes of the last complete run (`Best 1/2/3`), in that order;
    /// a transport nothing answered on is missing.
    pub best: Vec<Best>,
    pub clusters_discovered: usize,
    pub clusters_reached: usize,
    /// Reached clusters by fastest transport (the log's `U udp, T tcp, X xTls`).
    pub reached_udp: usize,
    pub reached_tcp: usize,
    pub reached_xtls: usize,
    /// Probes (cluster × transport) and STUN requests sent (retransmissions included).
    pub probes: usize,
    pub requests_sent: u32,
    /// Responses ignored: not STUN, another transaction id, error responses.
    pub ignored_responses: u32,
    /// The most probe sockets open at once.
    pub peak_in_flight: usize,
    pub last_completed: Option<SystemTime>,
    /// Delay until the next run, as scheduled when the document arrived.
    pub next_run_in: Option<Duration>,
    pub runs: u32,
}

impl Default for ReachabilityStatus {
    fn default() -> Self {
        Self {
            state: ReachabilityState::NotStarted,
            detail: None,
            discovery_time: None,
            best: Vec::new(),
            clusters_discovered: 0,
            clusters_reached: 0,
            reached_udp: 0,
            reached_tcp: 0,
            reached_xtls: 0,
            probes: 0,
            requests_sent: 0,
            ignored_responses: 0,
            peak_in_flight: 0,
            last_completed: None,
            next_run_in: None,
            runs: 0,
        }
    }
}

impl ReachabilityStatus {
    /// Folds a completed run in (keeps the run counter and schedule).
    pub fn apply(&mut self, report: &ReachabilityReport) {
        let [u, t, x] = report.reached_by_fastest();
        self.state = report.status();
        self.detail = None;
        self.discovery_time = Some(report.duration);
        self.best = Transport::ALL
            .into_iter()
            .filter_map(|t| report.best(t))
            .collect();
        self.clusters_discovered = report.clusters.len();
        self.clusters_reached = report.clusters_reached();
        (self.reached_udp, self.reached_tcp, self.reached_xtls) = (u, t, x);
        self.probes = report.probes();
        self.requests_sent = report.requests_sent();
        self.ignored_responses = report.ignored_responses();
        self.peak_in_flight = report.peak_in_flight;
        self.last_completed = Some(report.started_at + report.duration);
        self.runs += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(node: &str, rtt_ms: Option<u64>) -> Option<TransportResult> {
        Some(TransportResult {
            node: node.parse().unwrap(),
            rtt: rtt_ms.map(Duration::from_millis),
            mapped: None,
            requests_sent: 1,
            ignored: 0,
            failure: rtt_ms.is_none().then(|| "timed out".into()),
        })
    }

    fn report() -> ReachabilityReport {
        let mut a = ClusterResult::new("a.a.*");
        a.udp = result("192.0.2.1:5004", Some(30));
        a.tcp = result("192.0.2.1:5004", Some(29));
        a.xtls = result("192.0.2.1:443", Some(40));
        let mut b = ClusterResult::new("b.b.*");
        b.udp = result("192.0.2.2:5004", Some(25));
        b.tcp = result("192.0.2.2:5004", None);
        let mut c = ClusterResult::new("c.c.*");
        c.tcp = result("192.0.2.3:5004", Some(20));
        c.xtls = result("192.0.2.3:443", Some(20));
        let mut d = ClusterResult::new("d.d.*");
        d.xtls = result("192.0.2.4:443", Some(10));
        let mut silent = ClusterResult::new("silent.*");
        silent.udp = result("192.0.2.9:5004", None);
        silent.tcp = result("192.0.2.9:5004", None);
        ReachabilityReport {
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(1250),
            clusters: vec![a, b, c, d, silent],
            peak_in_flight: 11,
        }
    }

    #[test]
    fn counts_each_reached_cluster_once_under_its_fastest_transport() {
        let report = report();
        // a: tcp 29 < udp 30; b: udp; c: tcp/xtls tie → tcp; d: xtls.
        assert_eq!(report.reached_by_fastest(), [1, 2, 1]);
        assert_eq!(
            report.summary_line(),
            "CalliopeDiscovery completed with response from 4 out of 5 servers. 1 udp, 2 tcp, 1 xTls"
        );
        assert_eq!(report.status(), ReachabilityState::Completed);
        assert_eq!(report.probes(), 10);
    }

    #[test]
    fn best_per_transport_and_overall() {
        let report = report();
        let udp = report.best(Transport::Udp).unwrap();
        assert_eq!((udp.cluster.as_str(), udp.rtt_ms()), ("b.b.*", 25));
        assert_eq!(report.best(Transport::Tcp).unwrap().cluster, "c.c.*");
        assert_eq!(report.best(Transport::Xtls).unwrap().cluster, "d.d.*");
        assert_eq!(
            report.best_overall().unwrap().log_line(),
            "CalliopeDiscovery: BEST cluster:d.d.*, trnsp:xtls, protocol:stun, ip:192.0.2.4:443 with RTT:10"
        );
    }

    #[test]
    fn join_body_lists_every_cluster_and_only_offered_transports() {
        let body = report().join_body();
        assert_eq!(
            body["a.a.*"]["udp"],
            json!({"reachable": true, "latencyInMilliseconds": 30})
        );
        assert_eq!(body["b.b.*"]["tcp"], json!({"reachable": false}));
        assert!(body["b.b.*"].get("xtls").is_none());
        assert_eq!(body.as_object().unwrap().len(), 5);
    }

    #[test]
    fn nothing_reached_is_failed() {
        let mut report = report();
        report.clusters.retain(|c| c.name == "silent.*");
        assert_eq!(report.status(), ReachabilityState::Failed);
        assert!(report.best_overall().is_none());
        assert_eq!(
            report.summary_line(),
            "CalliopeDiscovery completed with response from 0 out of 1 servers. 0 udp, 0 tcp, 0 xTls"
        );
    }
}
