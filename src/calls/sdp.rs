//! The SDP offer roomd sends in a join and the one thing it reads from the answer today: where
//! the media node listens (its first UDP host candidate, else the connection address).

use std::net::{IpAddr, SocketAddr};

/// An offer with one Opus audio and one H.264 video stream, send and receive.
pub fn local_offer(session_id: u64) -> String {
    format!(
        "v=0\r\n\
         o=roomd {session_id} 1 IN IP4 127.0.0.1\r\n\
         s=roomd\r\n\
         c=IN IP4 127.0.0.1\r\n\
         t=0 0\r\n\
         a=group:BUNDLE 0 1\r\n\
         m=audio 9 RTP/AVPF 111\r\n\
         a=mid:0\r\n\
         a=rtcp-mux\r\n\
         a=sendrecv\r\n\
         a=rtpmap:111 opus/48000/2\r\n\
         m=video 9 RTP/AVPF 96\r\n\
         a=mid:1\r\n\
         a=rtcp-mux\r\n\
         a=sendrecv\r\n\
         a=rtpmap:96 H264/90000\r\n\
         a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\n"
    )
}

/// The media node's address from an SDP answer: the first `a=candidate` over UDP, else the
/// session `c=` address with the first m-line's port.
pub fn media_address(sdp: &str) -> Option<SocketAddr> {
    let lines = || sdp.lines().map(str::trim);
    let candidate = lines().find_map(|line| {
        // a=candidate:<foundation> <component> <transport> <priority> <ip> <port> typ <type>
        let fields: Vec<&str> = line
            .strip_prefix("a=candidate:")?
            .split_whitespace()
            .collect();
        if fields.len() < 6 || !fields[2].eq_ignore_ascii_case("udp") {
            return None;
        }
        let ip: IpAddr = fields[4].parse().ok()?;
        let port: u16 = fields[5].parse().ok()?;
        Some(SocketAddr::new(ip, port))
    });
    candidate.or_else(|| {
        let ip: IpAddr = lines()
            .find_map(|l| {
                l.strip_prefix("c=IN IP4 ")
                    .or_else(|| l.strip_prefix("c=IN IP6 "))
            })?
            .split('/')
            .next()?
            .parse()
            .ok()?;
        let port: u16 = lines()
            .find_map(|l| l.strip_prefix("m="))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        (port != 0).then(|| SocketAddr::new(ip, port))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_candidate_wins_over_the_connection_line() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/AVP 0\r\n\
                   a=candidate:1 1 UDP 2130706431 127.0.0.1 40000 typ host\r\n";
        assert_eq!(media_address(sdp), Some("127.0.0.1:40000".parse().unwrap()));
        let bare = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/AVP 0\r\n";
        assert_eq!(media_address(bare), Some("10.0.0.1:5004".parse().unwrap()));
        assert_eq!(media_address("garbage"), None);
        assert_eq!(
            media_address("a=candidate:1 1 TCP 1 127.0.0.1 9 typ host"),
            None
        );
    }

    #[test]
    fn the_offer_has_audio_and_video() {
        let offer = local_offer(7);
        assert!(offer.contains("m=audio") && offer.contains("opus/48000/2"));
        assert!(offer.contains("m=video") && offer.contains("H264/90000"));
    }
}
