//! UDP sockets for media reachability probes. For now each datagram is recorded and echoed back;
//! STUN Binding (wire profile §6) replaces the echo in a later issue.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use crate::clock::now_ms;
use crate::shutdown::Shutdown;
use crate::state::SimState;

/// Largest datagram read; longer ones are truncated (and recorded with the truncated length).
const MAX_DATAGRAM: usize = 65_535;

/// One datagram the simulator received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpDatagram {
    /// The sim's socket that received it.
    pub to: SocketAddr,
    /// The sender.
    pub from: SocketAddr,
    pub len: usize,
    /// Payload as lower-case hex.
    pub hex: String,
    /// Arrival time, milliseconds since the UNIX epoch.
    pub at_ms: u64,
}

pub(crate) async fn run(socket: UdpSocket, sim: Arc<SimState>, shutdown: Shutdown) {
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "udp socket has no local address; not serving it");
            return;
        }
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, from) = tokio::select! {
            () = shutdown.wait() => break,
            res = socket.recv_from(&mut buf) => match res {
                Ok(r) => r,
                Err(e) => {
                    // ICMP port-unreachable from an earlier echo surfaces here on some systems;
                    // it says nothing about this socket, so keep serving.
                    tracing::debug!(%local, error = %e, "udp receive error");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let payload = &buf[..len];
        sim.udp.push(UdpDatagram {
            to: local,
            from,
            len,
            hex: hex(payload),
            at_ms: now_ms(),
        });
        tracing::debug!(%local, %from, len, "udp datagram");
        if let Err(e) = socket.send_to(payload, from).await {
            tracing::debug!(%local, %from, error = %e, "udp echo failed");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0x01, 0xab, 0xff]), "0001abff");
        assert_eq!(hex(&[]), "");
    }
}
