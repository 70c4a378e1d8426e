//! Media reachability (wire profile §6, `docs/wire-profile-choices.md` §6), server side: the
//! calliope discovery document and the STUN media nodes it names.
//!
//! - `model`: `[calliope]` ([`CalliopeScenario`]) and the deterministic cluster plan (RTTs, silent
//!   clusters, a unique best node per transport with a 10 ms margin).
//! - `stun`: RFC 5389 Binding request/response by hand, RFC 4571 framing.
//! - `nodes`: one light task per node socket (udp, tcp, xtls), answering after the node's RTT.
//! - `service`: `GET /calliope/api/discovery/v1/clusters` (bearer, `Cache-Control: max-age=7200`).
//! - `admin`: `GET /admin/calliope`, `POST /admin/calliope/misbehave`; `handle`: [`crate::SimHandle`]
//!   mirrors.
//!
//! The nodes are bound once at start (the plan of the scenario the simulator started with); a
//! scenario replaced at run time does not change them.

mod admin;
mod handle;
mod model;
mod nodes;
mod service;
pub(crate) mod stun;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, UdpSocket};

pub(crate) use admin::router as admin_router;
pub use model::{BEST_MARGIN_MS, CalliopeScenario, MAX_CLUSTERS, TRANSPORTS, Transport};
pub(crate) use nodes::spawn;
pub(crate) use service::router as service_router;

/// How a cluster's nodes answer (`POST /admin/calliope/misbehave`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Misbehave {
    /// A Binding success after the node's RTT.
    Normal = 0,
    /// 20+ random non-STUN bytes 1 ms after a request, never the right answer.
    Garbage = 1,
    /// A well-formed Binding success with another transaction id 1 ms after a request.
    WrongTxid = 2,
}

impl Misbehave {
    pub(crate) fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "normal" => Ok(Self::Normal),
            "garbage" => Ok(Self::Garbage),
            "wrong_txid" => Ok(Self::WrongTxid),
            other => bail!("unknown misbehave mode {other:?}; use garbage, wrong_txid or normal"),
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Garbage,
            2 => Self::WrongTxid,
            _ => Self::Normal,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Garbage => "garbage",
            Self::WrongTxid => "wrong_txid",
        }
    }
}

#[derive(Debug)]
struct Node {
    addr: SocketAddr,
    rtt_ms: u64,
    /// Binding requests received.
    probes: AtomicU64,
}

#[derive(Debug)]
struct ClusterState {
    name: String,
    silent: bool,
    mode: AtomicU8,
    /// One node per transport, in [`TRANSPORTS`] order.
    nodes: [Node; 3],
}

/// The media clusters: addresses, RTTs, probe counters and misbehave modes.
#[derive(Debug, Default)]
pub(crate) struct Calliope {
    clusters: Vec<ClusterState>,
    /// Binding requests received per transport.
    probes: [AtomicU64; 3],
}

/// The bound node sockets, by cluster index, waiting for [`spawn`].
#[derive(Debug, Default)]
pub(crate) struct Sockets {
    udp: Vec<(usize, UdpSocket)>,
    tcp: Vec<(usize, TcpListener)>,
    xtls: Vec<(usize, TcpListener)>,
}

/// Binds one udp, one tcp and one xtls socket per cluster of `scenario` on `ip`, ephemeral ports.
pub(crate) async fn bind(
    scenario: &CalliopeScenario,
    ip: IpAddr,
) -> anyhow::Result<(Calliope, Sockets)> {
    let plans = model::plan(scenario);
    let mut clusters = Vec::with_capacity(plans.len());
    let mut sockets = Sockets::default();
    let any = SocketAddr::new(ip, 0);
    for (i, p) in plans.into_iter().enumerate() {
        let udp = UdpSocket::bind(any)
            .await
            .with_context(|| format!("binding the udp node of {}", p.name))?;
        let tcp = TcpListener::bind(any)
            .await
            .with_context(|| format!("binding the tcp node of {}", p.name))?;
        let xtls = TcpListener::bind(any)
            .await
            .with_context(|| format!("binding the xtls node of {}", p.name))?;
        let node = |addr: SocketAddr, t: Transport| Node {
            addr,
            rtt_ms: p.rtt_ms[t.index()],
            probes: AtomicU64::new(0),
        };
        clusters.push(ClusterState {
            nodes: [
                node(udp.local_addr()?, Transport::Udp),
                node(tcp.local_addr()?, Transport::Tcp),
                node(xtls.local_addr()?, Transport::Xtls),
            ],
            name: p.name,
            silent: p.silent,
            mode: AtomicU8::new(Misbehave::Normal as u8),
        });
        sockets.udp.push((i, udp));
        sockets.tcp.push((i, tcp));
        sockets.xtls.push((i, xtls));
    }
    Ok((
        Calliope {
            clusters,
            probes: Default::default(),
        },
        sockets,
    ))
}

impl Calliope {
    /// What node `t` of cluster `c` sends back for `msg` from `from`, and after how long; `None`
    /// when it stays quiet (not a Binding request, or a silent cluster). Counts Binding requests.
    pub(crate) fn answer(
        &self,
        c: usize,
        t: Transport,
        msg: &[u8],
        from: SocketAddr,
    ) -> Option<(Duration, Vec<u8>)> {
        let txid = stun::binding_request(msg)?;
        let cluster = self.clusters.get(c)?;
        let node = &cluster.nodes[t.index()];
        node.probes.fetch_add(1, Ordering::Relaxed);
        self.probes[t.index()].fetch_add(1, Ordering::Relaxed);
        if cluster.silent {
            return None;
        }
        let quick = Duration::from_millis(1);
        Some(
            match Misbehave::from_u8(cluster.mode.load(Ordering::Relaxed)) {
                Misbehave::Normal => (
                    Duration::from_millis(node.rtt_ms),
                    stun::binding_success(&txid, from),
                ),
                Misbehave::Garbage => (quick, stun::garbage(24)),
                Misbehave::WrongTxid => {
                    (quick, stun::binding_success(&stun::other_txid(&txid), from))
                }
            },
        )
    }

    /// Sets the misbehave mode of the cluster named `name`.
    pub(crate) fn misbehave(&self, name: &str, mode: Misbehave) -> anyhow::Result<()> {
        let Some(c) = self.clusters.iter().find(|c| c.name == name) else {
            bail!("no cluster {name:?}");
        };
        c.mode.store(mode as u8, Ordering::Relaxed);
        tracing::info!(cluster = %name, mode = mode.as_str(), "calliope cluster misbehaves");
        Ok(())
    }

    /// `{"clusters":{"<name>":{"udp":["ip:port"],"tcp":[..],"xtls":[..]}}}`.
    pub(crate) fn discovery(&self) -> Value {
        let mut clusters = Map::new();
        for c in &self.clusters {
            let mut entry = Map::new();
            for t in TRANSPORTS {
                entry.insert(
                    t.as_str().to_owned(),
                    json!([c.nodes[t.index()].addr.to_string()]),
                );
            }
            clusters.insert(c.name.clone(), Value::Object(entry));
        }
        json!({ "clusters": clusters })
    }

    /// The admin view: clusters with nodes and RTTs, the ground truth best node per transport and
    /// the probe counts.
    pub(crate) fn snapshot(&self) -> Value {
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|c| {
                let mut v = json!({
                    "name": c.name,
                    "silent": c.silent,
                    "mode": Misbehave::from_u8(c.mode.load(Ordering::Relaxed)).as_str(),
                });
                for t in TRANSPORTS {
                    let n = &c.nodes[t.index()];
                    v[t.as_str()] = json!({
                        "addr": n.addr.to_string(),
                        "rtt_ms": n.rtt_ms,
                        "probes": n.probes.load(Ordering::Relaxed),
                    });
                }
                v
            })
            .collect();
        let mut best = Map::new();
        for t in TRANSPORTS {
            let b = self
                .clusters
                .iter()
                .filter(|c| !c.silent)
                .min_by_key(|c| c.nodes[t.index()].rtt_ms);
            best.insert(
                t.as_str().to_owned(),
                b.map_or(Value::Null, |c| {
                    let n = &c.nodes[t.index()];
                    json!({"cluster": c.name, "addr": n.addr.to_string(), "rtt_ms": n.rtt_ms})
                }),
            );
        }
        let mut probes = Map::new();
        for t in TRANSPORTS {
            probes.insert(
                t.as_str().to_owned(),
                json!(self.probes[t.index()].load(Ordering::Relaxed)),
            );
        }
        json!({ "clusters": clusters, "best": best, "probes": probes })
    }
}
