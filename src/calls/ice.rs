//! The connectivity check between `client.ice.start` and `client.ice.end`: a STUN Binding to the
//! media node named in the SDP answer, over UDP, retransmitted like a reachability probe.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::proto::stun;

/// Sends at 0, 100, 300 and 700 ms; answers that are not our Binding success are ignored.
pub async fn check(node: SocketAddr, timeout: Duration) -> Result<SocketAddr, String> {
    let bind: SocketAddr = if node.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let (txid, request) = stun::binding_request();
    let attempt = async {
        let mut buf = [0u8; 1500];
        let mut next_send = tokio::time::Instant::now();
        let mut gap = Duration::from_millis(100);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_send) => {
                    socket
                        .send_to(&request, node)
                        .await
                        .map_err(|e| format!("cannot send to {node}: {e}"))?;
                    next_send += gap;
                    gap *= 2;
                }
                received = socket.recv_from(&mut buf) => {
                    let (len, from) = received.map_err(|e| format!("receiving from {node}: {e}"))?;
                    if from != node {
                        continue;
                    }
                    match stun::parse_binding_response(&buf[..len], txid) {
                        Ok(mapped) => return Ok(mapped),
                        Err(e) => tracing::debug!("ICE check: ignored a datagram from {node}: {e}"),
                    }
                }
            }
        }
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| {
        format!(
            "no STUN answer from {node} within {} ms",
            timeout.as_millis()
        )
    })?
}
