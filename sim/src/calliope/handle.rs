//! [`SimHandle`] mirrors of `/admin/calliope*`.

use serde_json::Value;

use super::Misbehave;
use crate::SimHandle;

impl SimHandle {
    /// The clusters with their nodes (`addr`, `rtt_ms`, `probes`), the ground truth
    /// `best{udp,tcp,xtls}` (`cluster`, `addr`, `rtt_ms`) and `probes{udp,tcp,xtls}` (Binding
    /// requests received) (as `GET /admin/calliope`).
    pub fn calliope(&self) -> Value {
        self.sim.calliope.snapshot()
    }

    /// Makes every node of `cluster` answer `garbage` (random non-STUN bytes after 1 ms),
    /// `wrong_txid` (a Binding success with another transaction id after 1 ms) or `normal` again
    /// (as `POST /admin/calliope/misbehave`). Errors on an unknown cluster or mode.
    pub fn calliope_misbehave(&self, cluster: &str, mode: &str) -> anyhow::Result<()> {
        self.sim
            .calliope
            .misbehave(cluster, Misbehave::parse(mode)?)
    }
}
