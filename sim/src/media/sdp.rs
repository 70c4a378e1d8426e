//! The SDP the media node reads (the device's offer, from a Locus join's
//! `localMedias[0].localSdp`) and writes (the join answer's `remoteSdp`).

use std::net::SocketAddr;

use serde_json::{Value, json};

/// The URI of the CSI header extension.
pub(crate) const CSI_EXTENSION_URI: &str = "urn:roomd:rtp-hdrext:csi";
/// The CSI extension id when the offer names none (the contract's `a=extmap:3`).
pub(crate) const DEFAULT_CSI_EXT_ID: u8 = 3;
/// Audio and video payload types of the contract.
pub(crate) const AUDIO_PT: u8 = 111;
pub(crate) const VIDEO_PT: u8 = 126;

/// What the node needs from a device's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offer {
    /// The first `a=ssrc` of the audio m-line.
    pub audio_ssrc: Option<u32>,
    /// The video layers' SSRCs in layer order: the `a=ssrc-group:SIM` order when the offer has one,
    /// else the order of the video m-line's `a=ssrc` lines.
    pub video_ssrcs: Vec<u32>,
    /// The id of `a=extmap:<id> urn:roomd:rtp-hdrext:csi` (first one found).
    pub ext_id: u8,
    /// When the offer was recorded (ms since the epoch).
    pub at_ms: u64,
}

impl Offer {
    /// Parses an offer leniently: what it cannot find stays empty (and `ext_id` the default).
    pub(crate) fn parse(sdp: &str, at_ms: u64) -> Self {
        #[derive(PartialEq)]
        enum Section {
            Session,
            Audio,
            Video,
            Other,
        }
        let mut section = Section::Session;
        let mut audio_ssrc = None;
        let mut video_ssrcs = Vec::new();
        let mut simulcast: Option<Vec<u32>> = None;
        let mut ext_id = None;
        for line in sdp.lines().map(str::trim) {
            if let Some(m) = line.strip_prefix("m=") {
                section = match m.split_whitespace().next() {
                    Some("audio") => Section::Audio,
                    Some("video") => Section::Video,
                    _ => Section::Other,
                };
            } else if let Some(rest) = line.strip_prefix("a=ssrc:") {
                let Some(ssrc) = rest.split_whitespace().next().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                match section {
                    Section::Audio if audio_ssrc.is_none() => audio_ssrc = Some(ssrc),
                    Section::Video if !video_ssrcs.contains(&ssrc) => video_ssrcs.push(ssrc),
                    _ => {}
                }
            } else if let Some(rest) = line.strip_prefix("a=ssrc-group:SIM") {
                if section == Section::Video && simulcast.is_none() {
                    simulcast = Some(
                        rest.split_whitespace()
                            .filter_map(|s| s.parse().ok())
                            .collect(),
                    );
                }
            } else if let Some(rest) = line.strip_prefix("a=extmap:") {
                let mut parts = rest.split_whitespace();
                let id = parts
                    .next()
                    .and_then(|i| i.split('/').next()?.parse::<u8>().ok());
                if parts.next() == Some(CSI_EXTENSION_URI) && ext_id.is_none() {
                    // One-byte form ids are 1..=14.
                    ext_id = id.filter(|i| (1..=14).contains(i));
                }
            }
        }
        Self {
            audio_ssrc,
            video_ssrcs: simulcast.filter(|s| !s.is_empty()).unwrap_or(video_ssrcs),
            ext_id: ext_id.unwrap_or(DEFAULT_CSI_EXT_ID),
            at_ms,
        }
    }

    /// Whether `ssrc` is one of the offer's (audio or video).
    pub(crate) fn has(&self, ssrc: u32) -> bool {
        self.audio_ssrc == Some(ssrc) || self.video_ssrcs.contains(&ssrc)
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "audioSsrc": self.audio_ssrc,
            "videoSsrcs": self.video_ssrcs,
            "extId": self.ext_id,
            "atMs": self.at_ms,
        })
    }
}

/// The remote SDP of a join answer: BUNDLEd audio (Opus pt 111) and video (H.264 pt 126)
/// m-lines, both `a=rtcp-mux` and the CSI `a=extmap` with the offer's id, whose host candidate
/// is the media node; the video m-line names the node's own SSRC (the sender SSRC of its RTCP).
pub(crate) fn remote_sdp(node: SocketAddr, node_ssrc: u32, ext_id: u8) -> String {
    let ip = node.ip();
    let port = node.port();
    let session: u64 = rand::random::<u32>().into();
    let ufrag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let pwd = uuid::Uuid::new_v4().simple().to_string();
    let candidate = format!("a=candidate:1 1 UDP 2130706431 {ip} {port} typ host");
    let extmap = format!("a=extmap:{ext_id} {CSI_EXTENSION_URI}");
    [
        "v=0".to_owned(),
        format!("o=roomd-sim {session} 1 IN IP4 {ip}"),
        "s=-".to_owned(),
        format!("c=IN IP4 {ip}"),
        "t=0 0".to_owned(),
        "a=group:BUNDLE 0 1".to_owned(),
        format!("a=ice-ufrag:{ufrag}"),
        format!("a=ice-pwd:{pwd}"),
        format!("m=audio {port} RTP/AVPF {AUDIO_PT}"),
        format!("c=IN IP4 {ip}"),
        format!("a=rtpmap:{AUDIO_PT} opus/48000/2"),
        "a=rtcp-mux".to_owned(),
        extmap.clone(),
        candidate.clone(),
        "a=mid:0".to_owned(),
        "a=sendrecv".to_owned(),
        format!("m=video {port} RTP/AVPF {VIDEO_PT}"),
        format!("c=IN IP4 {ip}"),
        format!("a=rtpmap:{VIDEO_PT} H264/90000"),
        format!("a=fmtp:{VIDEO_PT} profile-level-id=42e01f;packetization-mode=1"),
        "a=rtcp-mux".to_owned(),
        extmap,
        format!("a=ssrc:{node_ssrc} cname:roomd-sim"),
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

    const OFFER: &str = "v=0\r\no=roomd 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
        m=audio 9 RTP/AVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=rtcp-mux\r\n\
        a=extmap:5 urn:roomd:rtp-hdrext:csi\r\na=ssrc:1001 cname:roomd\r\n\
        m=video 9 RTP/AVPF 126\r\na=rtpmap:126 H264/90000\r\na=rtcp-mux\r\n\
        a=extmap:5 urn:roomd:rtp-hdrext:csi\r\na=ssrc:2003 cname:roomd\r\n\
        a=ssrc:2001 cname:roomd\r\na=ssrc:2002 cname:roomd\r\na=ssrc:2001 msid:x\r\n\
        a=ssrc-group:SIM 2001 2002 2003\r\n";

    #[test]
    fn offer_gives_ssrcs_in_layer_order_and_the_extension_id() {
        let o = Offer::parse(OFFER, 7);
        assert_eq!(o.audio_ssrc, Some(1001));
        assert_eq!(
            o.video_ssrcs,
            vec![2001, 2002, 2003],
            "SIM group order wins"
        );
        assert_eq!(o.ext_id, 5);
        assert!(o.has(1001) && o.has(2002) && !o.has(9));
        assert_eq!(o.to_json()["videoSsrcs"], json!([2001, 2002, 2003]));
    }

    #[test]
    fn offer_without_a_group_or_extmap() {
        let o = Offer::parse(
            "m=video 9 RTP/AVPF 126\na=extmap:2/sendrecv urn:other\na=ssrc:9 cname:x\na=ssrc:8 cname:x\n",
            0,
        );
        assert_eq!(o.video_ssrcs, vec![9, 8]);
        assert_eq!(o.audio_ssrc, None);
        assert_eq!(o.ext_id, DEFAULT_CSI_EXT_ID);
        let o = Offer::parse(
            "m=video 9 RTP/AVPF 126\na=extmap:4/sendrecv urn:roomd:rtp-hdrext:csi\n",
            0,
        );
        assert_eq!(o.ext_id, 4);
        let o = Offer::parse("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n", 0);
        assert!(o.video_ssrcs.is_empty() && o.audio_ssrc.is_none());
        let o = Offer::parse(
            "m=video 9 RTP/AVPF 126\na=extmap:15 urn:roomd:rtp-hdrext:csi\n",
            0,
        );
        assert_eq!(o.ext_id, DEFAULT_CSI_EXT_ID, "15 is not a one-byte id");
    }

    #[test]
    fn answer_names_the_node_and_echoes_the_extension() {
        let sdp = remote_sdp("127.0.0.1:40000".parse().expect("addr"), 0xABCD, 5);
        assert!(sdp.starts_with("v=0\r\no=roomd-sim "));
        assert!(sdp.contains("\r\nc=IN IP4 127.0.0.1\r\n"));
        assert!(sdp.contains("\r\nm=audio 40000 RTP/AVPF 111\r\n"));
        assert!(sdp.contains("\r\nm=video 40000 RTP/AVPF 126\r\n"));
        assert!(sdp.contains("\r\na=rtpmap:126 H264/90000\r\n"));
        assert_eq!(sdp.matches("a=rtcp-mux\r\n").count(), 2);
        assert_eq!(
            sdp.matches("a=extmap:5 urn:roomd:rtp-hdrext:csi\r\n")
                .count(),
            2
        );
        assert!(sdp.contains("\r\na=ssrc:43981 cname:roomd-sim\r\n"));
        assert_eq!(
            sdp.matches("a=candidate:1 1 UDP 2130706431 127.0.0.1 40000 typ host")
                .count(),
            2
        );
    }
}
