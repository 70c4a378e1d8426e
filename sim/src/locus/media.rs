//! The media node: one UDP socket that answers every STUN Binding request at once (for the
//! client's ICE checks), and the remote SDP of a join answer that names it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use tokio::net::UdpSocket;

use crate::calliope::stun;
use crate::shutdown::Shutdown;
use crate::state::SimState;

/// Binds the media node on `ip`, ephemeral port.
pub(crate) async fn bind(ip: std::net::IpAddr) -> anyhow::Result<UdpSocket> {
    let addr = SocketAddr::new(ip, 0);
    UdpSocket::bind(addr)
        .await
        .with_context(|| format!("binding the media node on {addr}"))
}

/// Answers Binding requests with a Binding success (XOR-MAPPED-ADDRESS of the sender) at once;
/// ignores everything else.
pub(crate) async fn run(socket: UdpSocket, sim: Arc<SimState>, shutdown: Shutdown) {
    let mut buf = vec![0_u8; 2048];
    loop {
        let (len, from) = tokio::select! {
            () = shutdown.wait() => return,
            res = socket.recv_from(&mut buf) => match res {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "media node receive error");
                    continue;
                }
            },
        };
        let Some(txid) = stun::binding_request(&buf[..len]) else {
            continue;
        };
        sim.locus.media_requests.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = socket
            .send_to(&stun::binding_success(&txid, from), from)
            .await
        {
            tracing::debug!(%from, error = %e, "media node answer failed");
        }
    }
}

/// The remote SDP of a join answer: an audio and a video m-line whose host candidate is the media
/// node.
pub(crate) fn remote_sdp(node: SocketAddr) -> String {
    let ip = node.ip();
    let port = node.port();
    let session: u64 = rand::random::<u32>().into();
    let ufrag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let pwd = uuid::Uuid::new_v4().simple().to_string();
    let candidate = format!("a=candidate:1 1 UDP 2130706431 {ip} {port} typ host");
    [
        "v=0".to_owned(),
        format!("o=roomd-sim {session} 1 IN IP4 {ip}"),
        "s=-".to_owned(),
        format!("c=IN IP4 {ip}"),
        "t=0 0".to_owned(),
        format!("a=ice-ufrag:{ufrag}"),
        format!("a=ice-pwd:{pwd}"),
        format!("m=audio {port} RTP/AVP 111"),
        format!("c=IN IP4 {ip}"),
        "a=rtpmap:111 opus/48000/2".to_owned(),
        candidate.clone(),
        "a=mid:0".to_owned(),
        "a=sendrecv".to_owned(),
        format!("m=video {port} RTP/AVP 96"),
        format!("c=IN IP4 {ip}"),
        "a=rtpmap:96 H264/90000".to_owned(),
        candidate,
        "a=mid:1".to_owned(),
        "a=sendrecv".to_owned(),
    ]
    .iter()
    .map(|l| format!("{l}\r\n"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_names_the_node() {
        let sdp = remote_sdp("127.0.0.1:40000".parse().expect("addr"));
        assert!(sdp.starts_with("v=0\r\no=roomd-sim "));
        assert!(sdp.contains("\r\nc=IN IP4 127.0.0.1\r\n"));
        assert!(sdp.contains("\r\nm=audio 40000 "));
        assert!(sdp.contains("\r\nm=video 40000 "));
        assert_eq!(
            sdp.matches("a=candidate:1 1 UDP 2130706431 127.0.0.1 40000 typ host")
                .count(),
            2
        );
    }
}
