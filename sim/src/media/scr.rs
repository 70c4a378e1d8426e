//! The node's own Sub-channel Requests (what it asks the device to send): the contract's
//! three-layer default and the two-layer change, the resend schedule, and seed-style log lines.

use std::fmt;
use std::time::Duration;

use super::wire::{MSTR_VERSION, Sca, Scr, ScrRequest};

/// The first resend of an unacknowledged SCR comes this long after the send; each next one
/// after twice the previous wait.
pub(crate) const FIRST_RESEND: Duration = Duration::from_millis(250);
/// Resends of one SCR before the node gives up on it.
pub(crate) const MAX_RESENDS: u32 = 8;

/// Which SCR the node sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Preset {
    /// 1280×720, 640×360 and 320×180 (the default, sent on the device's first video SCA).
    Three,
    /// The first two layers of [`Preset::Three`].
    Two,
}

impl Preset {
    pub(crate) fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "three" => Ok(Self::Three),
            "two" => Ok(Self::Two),
            other => anyhow::bail!("unknown SCR preset {other:?}; use \"three\" or \"two\""),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Three => "three",
            Self::Two => "two",
        }
    }

    fn layers(self) -> usize {
        match self {
            Self::Three => 3,
            Self::Two => 2,
        }
    }

    /// The requests of this preset, layer *i* on `srcids[i]` (fewer when the offer has fewer
    /// video SSRCs than layers).
    pub(crate) fn requests(self, srcids: &[u32]) -> Vec<ScrRequest> {
        LAYERS
            .iter()
            .zip(srcids)
            .take(self.layers())
            .map(|(l, &srcid)| ScrRequest {
                csi: 0,
                bitrate: l.bitrate,
                srcid,
                policy: 0,
                priority: 255,
                adjid: 0,
                dup: false,
                payload_type: super::sdp::VIDEO_PT,
                max_mbps: l.max_mbps,
                max_fs: l.max_fs,
                max_cfps: 3000,
                max_width: l.width,
                max_height: l.height,
            })
            .collect()
    }
}

struct Layer {
    width: u16,
    height: u16,
    max_fs: u32,
    max_mbps: u32,
    bitrate: u32,
}

/// The contract's simulcast layers, highest first.
const LAYERS: [Layer; 3] = [
    Layer {
        width: 1280,
        height: 720,
        max_fs: 3600,
        max_mbps: 108_000,
        bitrate: 1_500_000,
    },
    Layer {
        width: 640,
        height: 360,
        max_fs: 920,
        max_mbps: 27_600,
        bitrate: 500_000,
    },
    Layer {
        width: 320,
        height: 180,
        max_fs: 240,
        max_mbps: 7200,
        bitrate: 150_000,
    },
];

/// The head of a seed-style log line: `SCR [ver=1 seqno=4 sender_ssrc=0x… media_ssrc=0x00000000]`.
pub(crate) struct Head {
    name: &'static str,
    seqno: u16,
    sender_ssrc: u32,
    media_ssrc: u32,
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [ver={MSTR_VERSION} seqno={} sender_ssrc=0x{:08x} media_ssrc=0x{:08x}]",
            self.name, self.seqno, self.sender_ssrc, self.media_ssrc
        )
    }
}

pub(crate) fn scr_head(s: &Scr) -> Head {
    Head {
        name: "SCR",
        seqno: s.seqno,
        sender_ssrc: s.sender_ssrc,
        media_ssrc: s.media_ssrc,
    }
}

pub(crate) fn sca_head(s: &Sca) -> Head {
    Head {
        name: "SCA",
        seqno: s.seqno,
        sender_ssrc: s.sender_ssrc,
        media_ssrc: s.media_ssrc,
    }
}

/// One request as seed 000 logs it (`[sci 011] bitrate=100000 srcid=0 policy=1 pri=254 …`).
pub(crate) fn request_line(index: usize, r: &ScrRequest) -> String {
    format!(
        "[sci {index:03}] bitrate={} srcid=0x{:08x} csi=0x{:08x} policy={} pri={} adjid={} dup={} pt={} (H264) \
         maxmbps={} maxfs={} maxcfps={} maxwidth={} maxheight={}",
        r.bitrate,
        r.srcid,
        r.csi,
        r.policy,
        r.priority,
        r.adjid,
        r.dup,
        r.payload_type,
        r.max_mbps,
        r.max_fs,
        r.max_cfps,
        r.max_width,
        r.max_height
    )
}

/// Logs an SCR at info, one line for the head and one per request (as seed 000's Multistream).
pub(crate) fn log_scr(direction: &str, peer: std::net::SocketAddr, s: &Scr) {
    tracing::info!(%peer, "Video {direction}: {} requests={}", scr_head(s), s.requests.len());
    for (i, r) in s.requests.iter().enumerate() {
        tracing::info!(%peer, "Video {}", request_line(i, r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_follow_the_contract() {
        let three = Preset::Three.requests(&[11, 12, 13]);
        assert_eq!(three.len(), 3);
        let sizes: Vec<_> = three
            .iter()
            .map(|r| {
                (
                    r.srcid,
                    r.max_fs,
                    r.max_width,
                    r.max_height,
                    r.max_cfps,
                    r.max_mbps,
                    r.bitrate,
                )
            })
            .collect();
        assert_eq!(
            sizes,
            vec![
                (11, 3600, 1280, 720, 3000, 108_000, 1_500_000),
                (12, 920, 640, 360, 3000, 27_600, 500_000),
                (13, 240, 320, 180, 3000, 7200, 150_000),
            ]
        );
        assert!(
            three
                .iter()
                .all(|r| r.policy == 0 && r.priority == 255 && r.csi == 0 && r.payload_type == 126)
        );
        assert_eq!(Preset::Two.requests(&[11, 12, 13]), three[..2].to_vec());
        assert_eq!(Preset::Three.requests(&[11]).len(), 1);
        assert!(Preset::parse("four").is_err());
        assert_eq!(Preset::parse("two").map(Preset::as_str).ok(), Some("two"));
    }

    #[test]
    fn log_lines_look_like_the_seed() {
        let s = Scr {
            sender_ssrc: 0xdbf6_f52d,
            seqno: 8,
            media_ssrc: 0,
            requests: vec![],
        };
        assert_eq!(
            scr_head(&s).to_string(),
            "SCR [ver=1 seqno=8 sender_ssrc=0xdbf6f52d media_ssrc=0x00000000]"
        );
        let line = request_line(11, &Preset::Three.requests(&[0, 0, 0])[2]);
        assert!(
            line.starts_with("[sci 011] bitrate=150000 srcid=0x00000000"),
            "{line}"
        );
        assert!(line.ends_with("maxwidth=320 maxheight=180"), "{line}");
    }
}
