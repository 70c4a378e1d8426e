//! The SDP offer roomd sends in a join (wire profile §7) and what it reads from the answer:
//! where the media node listens (its first UDP host candidate, else the connection address)
//! and the id of the CSI header extension.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::media::graph::{AUDIO_PT, VIDEO_PT};
use crate::media::plan::MediaPlan;
use crate::proto::rtp::{CSI_EXTENSION_URI, DEFAULT_CSI_EXTENSION_ID};

/// An offer with one Opus audio stream and one H.264 video m-line carrying every simulcast
/// layer's SSRC, rtcp-mux and the CSI extension on both.
pub fn local_offer(session_id: u64, plan: &MediaPlan) -> String {
    let ext = format!("a=extmap:{DEFAULT_CSI_EXTENSION_ID} {CSI_EXTENSION_URI}\r\n");
    let mut sdp = format!(
        "v=0\r\n\
         o=roomd {session_id} 1 IN IP4 127.0.0.1\r\n\
         s=roomd\r\n\
         c=IN IP4 127.0.0.1\r\n\
         t=0 0\r\n\
         a=group:BUNDLE 0 1\r\n\
         m=audio 9 RTP/AVPF {AUDIO_PT}\r\n\
         a=mid:0\r\n\
         a=rtcp-mux\r\n\
         a=sendrecv\r\n\
         a=rtpmap:{AUDIO_PT} opus/48000/2\r\n\
         {ext}\
         a=ssrc:{} cname:roomd\r\n\
         m=video 9 RTP/AVPF {VIDEO_PT}\r\n\
         a=mid:1\r\n\
         a=rtcp-mux\r\n\
         a=sendrecv\r\n\
         a=rtpmap:{VIDEO_PT} H264/90000\r\n\
         a=fmtp:{VIDEO_PT} profile-level-id=42e01f;packetization-mode=1;max-fs=8160;max-mbps=244800\r\n\
         {ext}",
        plan.audio_ssrc
    );
    for ssrc in &plan.video_ssrcs {
        let _ = write!(sdp, "a=ssrc:{ssrc} cname:roomd\r\n");
    }
    let group: Vec<String> = plan.video_ssrcs.iter().map(u32::to_string).collect();
    let _ = write!(sdp, "a=ssrc-group:SIM {}\r\n", group.join(" "));
    sdp
}

/// The CSI extension's id in an answer (`a=extmap:<id>[/dir] urn:roomd:rtp-hdrext:csi`).
pub fn csi_extension_id(sdp: &str) -> Option<u8> {
    sdp.lines().map(str::trim).find_map(|line| {
        let rest = line.strip_prefix("a=extmap:")?;
        let (id, uri) = rest.split_once(char::is_whitespace)?;
        let id: u8 = id.split('/').next()?.parse().ok()?;
        (uri.trim() == CSI_EXTENSION_URI && (1..=14).contains(&id)).then_some(id)
    })
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
    fn the_offer_has_audio_video_layers_and_the_csi_extension() {
        let plan = MediaPlan::random(3);
        let offer = local_offer(7, &plan);
        assert!(offer.contains("m=audio 9 RTP/AVPF 111") && offer.contains("opus/48000/2"));
        assert!(
            offer.contains("m=video 9 RTP/AVPF 126") && offer.contains("a=rtpmap:126 H264/90000")
        );
        assert!(offer.contains("max-fs=8160;max-mbps=244800"));
        assert_eq!(offer.matches("a=rtcp-mux").count(), 2);
        assert_eq!(
            offer.matches("a=extmap:3 urn:roomd:rtp-hdrext:csi").count(),
            2
        );
        for ssrc in plan.send_ssrcs() {
            assert!(offer.contains(&format!("a=ssrc:{ssrc} cname:roomd")));
        }
        assert!(offer.contains(&format!(
            "a=ssrc-group:SIM {} {} {}",
            plan.video_ssrcs[0], plan.video_ssrcs[1], plan.video_ssrcs[2]
        )));
        assert_eq!(csi_extension_id(&offer), Some(3));
        assert_eq!(
            csi_extension_id("a=extmap:5/sendrecv urn:roomd:rtp-hdrext:csi"),
            Some(5)
        );
        assert_eq!(csi_extension_id("a=extmap:5 urn:other"), None);
        assert_eq!(
            csi_extension_id("a=extmap:15 urn:roomd:rtp-hdrext:csi"),
            None
        );
    }
}
