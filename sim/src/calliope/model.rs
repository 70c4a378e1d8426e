//! `[calliope]`: the generated media clusters, their RTTs and the ground truth.

use anyhow::bail;
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};

/// Transports a cluster offers, in the wire profile's order (ties go to the first).
pub const TRANSPORTS: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Xtls];

/// Most clusters a scenario may ask for (names are `sim-cNNN`).
pub const MAX_CLUSTERS: u32 = 999;

/// Largest RTT a scenario may inject.
pub const MAX_RTT_MS: u64 = 10_000;

/// The best node of a transport is at least this much faster than the second.
pub const BEST_MARGIN_MS: u64 = 10;

/// A media node transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Xtls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Xtls => "xtls",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Self::Udp => 0,
            Self::Tcp => 1,
            Self::Xtls => 2,
        }
    }
}

/// `[calliope]`: media clusters for reachability discovery (wire profile §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalliopeScenario {
    /// false: no nodes are bound and discovery answers no clusters. Default true.
    pub enabled: bool,
    /// How many clusters (`sim-c001` …); default 210, at most 999.
    pub clusters: u32,
    /// How many of them never answer on any transport; default 44.
    pub silent: u32,
    /// Injected RTT range in milliseconds; defaults 5 and 150; max - min must be at least 10.
    pub rtt_min_ms: u64,
    pub rtt_max_ms: u64,
    /// Seed of the RTTs and of which clusters are silent.
    pub seed: u64,
    /// How far the best node per transport leads the second, in ms; default 10. Raise it when
    /// the prober's measurements are noisy (many probes on few, or emulated, cores).
    pub best_margin_ms: u64,
}

/// The default `[calliope] seed`.
pub const DEFAULT_SEED: u64 = 0x5EED_CA11_0000_0007;

impl Default for CalliopeScenario {
    fn default() -> Self {
        Self {
            enabled: true,
            clusters: 210,
            silent: 44,
            rtt_min_ms: 5,
            rtt_max_ms: 150,
            seed: DEFAULT_SEED,
            best_margin_ms: BEST_MARGIN_MS,
        }
    }
}

impl CalliopeScenario {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.clusters > MAX_CLUSTERS {
            bail!("calliope.clusters must be at most {MAX_CLUSTERS}");
        }
        if self.silent > self.clusters {
            bail!(
                "calliope.silent ({}) must be at most calliope.clusters ({})",
                self.silent,
                self.clusters
            );
        }
        if self.rtt_max_ms > MAX_RTT_MS {
            bail!("calliope.rtt_max_ms must be at most {MAX_RTT_MS}");
        }
        if self.best_margin_ms < BEST_MARGIN_MS {
            bail!("calliope.best_margin_ms must be at least {BEST_MARGIN_MS}");
        }
        if self.rtt_min_ms + self.best_margin_ms > self.rtt_max_ms {
            bail!(
                "calliope.rtt_max_ms ({}) must be at least rtt_min_ms ({}) + best_margin_ms ({}), so \
                 the best node can lead by that much",
                self.rtt_max_ms,
                self.rtt_min_ms,
                self.best_margin_ms
            );
        }
        Ok(())
    }

    /// Number of clusters actually served.
    pub(crate) fn served(&self) -> u32 {
        if self.enabled { self.clusters } else { 0 }
    }
}

/// One generated cluster before its sockets exist: name, silence and an RTT per transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterPlan {
    pub name: String,
    pub silent: bool,
    /// RTT in ms per transport, in [`TRANSPORTS`] order.
    pub rtt_ms: [u64; 3],
}

/// `sim-cNNN.sim-cNNN.*` style name of cluster `i` (from 1).
pub(crate) fn cluster_name(i: u32) -> String {
    format!("sim-c{i:03}.sim-c{i:03}.sim.invalid")
}

/// The clusters of a valid scenario, deterministic in its seed. Per transport, the fastest
/// answering node is unique: it gets `rtt_min_ms` and every other node at least `rtt_min_ms + 10`.
pub(crate) fn plan(s: &CalliopeScenario) -> Vec<ClusterPlan> {
    let n = s.served();
    let mut rng = StdRng::seed_from_u64(s.seed);
    let mut order: Vec<u32> = (0..n).collect();
    order.shuffle(&mut rng);
    let silent: std::collections::HashSet<u32> =
        order.iter().copied().take(s.silent as usize).collect();
    let mut plans: Vec<ClusterPlan> = (0..n)
        .map(|i| ClusterPlan {
            name: cluster_name(i + 1),
            silent: silent.contains(&i),
            rtt_ms: [0; 3].map(|_| rng.random_range(s.rtt_min_ms..=s.rtt_max_ms)),
        })
        .collect();
    for t in 0..3 {
        let best = plans
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.silent)
            .min_by_key(|(i, p)| (p.rtt_ms[t], *i))
            .map(|(i, _)| i);
        if let Some(best) = best {
            for (i, p) in plans.iter_mut().enumerate() {
                if i == best {
                    p.rtt_ms[t] = s.rtt_min_ms;
                } else {
                    p.rtt_ms[t] = p.rtt_ms[t].max(s.rtt_min_ms + s.best_margin_ms);
                }
            }
        }
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plan_has_a_unique_best_with_margin() {
        let s = CalliopeScenario::default();
        s.validate().expect("valid");
        let p = plan(&s);
        assert_eq!(p.len(), 210);
        assert_eq!(p.iter().filter(|c| c.silent).count(), 44);
        assert_eq!(p[0].name, "sim-c001.sim-c001.sim.invalid");
        assert_eq!(p, plan(&s), "deterministic");
        for t in 0..3 {
            let mut rtts: Vec<u64> = p
                .iter()
                .filter(|c| !c.silent)
                .map(|c| c.rtt_ms[t])
                .collect();
            rtts.sort_unstable();
            assert!(rtts[1] >= rtts[0] + BEST_MARGIN_MS, "{t}: {rtts:?}");
            assert!(rtts.iter().all(|r| (5..=150).contains(r)));
        }
    }

    #[test]
    fn invalid_settings() {
        let bad = |f: fn(&mut CalliopeScenario)| {
            let mut s = CalliopeScenario::default();
            f(&mut s);
            s.validate().is_err()
        };
        assert!(bad(|s| s.silent = 211));
        assert!(bad(|s| s.clusters = 1000));
        assert!(bad(|s| s.rtt_max_ms = 14));
        assert!(bad(|s| s.rtt_max_ms = 20_000));
        let off = CalliopeScenario {
            enabled: false,
            ..CalliopeScenario::default()
        };
        assert!(plan(&off).is_empty());
    }
}
