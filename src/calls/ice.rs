//! The connectivity check between `client.ice.start` and `client.ice.end`: a STUN Binding to the
//! media node named in the SDP answer, over UDP, with the same schedule and answer checks as a
//! reachability probe (it is one).

use std::net::SocketAddr;
use std::time::Duration;

use crate::reachability::Transport;
use crate::reachability::probe::{ProbeOptions, probe};

/// Sends at 0, 100, 300 and 700 ms; answers that are not our Binding success are ignored.
/// The node's view of our address, or why there was none.
pub async fn check(node: SocketAddr, timeout: Duration) -> Result<SocketAddr, String> {
    let options = ProbeOptions {
        timeout,
        ..ProbeOptions::default()
    };
    let result = probe(Transport::Udp, node, &options, None).await;
    result
        .mapped
        .ok_or_else(|| result.failure.unwrap_or_else(|| "no STUN answer".into()))
}
