//! The streams the device asks the media node for, per layout family (wire profile §7
//! "Receiver", choices in `docs/wire-profile-choices.md` "§7 Media and multistream", "SCR from
//! the device"): what `Video Layout LayoutFamily` turns into in the device's SCR.

use crate::proto::multistream::ScrRequest;

/// The layout families the device knows (`Video Layout LayoutFamily`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayoutFamily {
    /// The device default: overlay's streams.
    #[default]
    Auto,
    Equal,
    Prominent,
    Overlay,
    Single,
}

impl LayoutFamily {
    pub const ALL: [LayoutFamily; 5] = [
        LayoutFamily::Auto,
        LayoutFamily::Equal,
        LayoutFamily::Prominent,
        LayoutFamily::Overlay,
        LayoutFamily::Single,
    ];

    /// The xAPI's name, lower case as roomd shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            LayoutFamily::Auto => "auto",
            LayoutFamily::Equal => "equal",
            LayoutFamily::Prominent => "prominent",
            LayoutFamily::Overlay => "overlay",
            LayoutFamily::Single => "single",
        }
    }

    /// A family by name, in any case.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(name))
    }
}

/// H.264, the only video payload type of the offer.
const PT_H264: u8 = 126;
/// The node picks the source: whoever is speaking.
const POLICY_ACTIVE_SPEAKER: u8 = 1;

/// Seed 000's main (speaker) stream: 720p30.
const MAIN: ScrRequest = ScrRequest {
    csi: 0,
    bitrate_bps: 1_500_000,
    srcid: 0,
    policy: POLICY_ACTIVE_SPEAKER,
    priority: 255,
    adjid: 0,
    dup: false,
    payload_type: PT_H264,
    max_mbps: 108_000,
    max_fs: 3600,
    max_cfps: 3000,
    max_width: 1280,
    max_height: 720,
};

/// Seed 000's overlay thumbnail: 320×180 at 30 fps, 100 kb/s, in one adjacency group (33)
/// so the node fills them with distinct speakers, but may repeat the main one (dup).
const THUMBNAIL: ScrRequest = ScrRequest {
    csi: 0,
    bitrate_bps: 100_000,
    srcid: 0,
    policy: POLICY_ACTIVE_SPEAKER,
    priority: 254,
    adjid: 33,
    dup: true,
    payload_type: PT_H264,
    max_mbps: 7200,
    max_fs: 240,
    max_cfps: 3000,
    max_width: 3840,
    max_height: 3840,
};

/// One tile of the equal grid: 640×360 at 30 fps.
const TILE: ScrRequest = ScrRequest {
    csi: 0,
    bitrate_bps: 500_000,
    srcid: 0,
    policy: POLICY_ACTIVE_SPEAKER,
    priority: 255,
    adjid: 0,
    dup: false,
    payload_type: PT_H264,
    max_mbps: 27_600,
    max_fs: 920,
    max_cfps: 3000,
    max_width: 640,
    max_height: 360,
};

/// The requests of `family`, exactly the §7 table: `overlay` and `auto` 1 main + 6
/// thumbnails (seed 000), `prominent` 1 main + 4 thumbnails, `equal` 4 tiles of 640×360,
/// `single` 1 main. Every `srcid` is 0: the caller assigns the SSRC of each receive slot.
pub fn receive_requests(family: LayoutFamily) -> Vec<ScrRequest> {
    let (main, thumbnails, tiles) = match family {
        LayoutFamily::Single => (1, 0, 0),
        LayoutFamily::Prominent => (1, 4, 0),
        LayoutFamily::Equal => (0, 0, 4),
        LayoutFamily::Auto | LayoutFamily::Overlay => (1, 6, 0),
    };
    let mut requests = Vec::with_capacity(main + thumbnails + tiles);
    requests.extend(std::iter::repeat_n(MAIN, main));
    requests.extend(std::iter::repeat_n(THUMBNAIL, thumbnails));
    requests.extend(std::iter::repeat_n(TILE, tiles));
    requests
}

/// A rectangle of the display, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

impl Rect {
    fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        let c = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        Self {
            x: c(x),
            y: c(y),
            width: c(width),
            height: c(height),
        }
    }

    /// The centre point (for measuring what a region shows).
    pub fn centre(&self) -> (i32, i32) {
        (self.x + self.width / 2, self.y + self.height / 2)
    }
}

/// Where each of the family's receive streams goes on a `width`×`height` display, in the
/// order of [`receive_requests`]: the main stream first, then the thumbnails.
///
/// - overlay/auto: main full screen, 6 thumbnails in a row along the bottom edge;
/// - prominent: main in the left three quarters, 4 thumbnails stacked on the right;
/// - equal: a 2×2 grid; single: the main stream full screen.
pub fn regions(family: LayoutFamily, width: u32, height: u32) -> Vec<Rect> {
    let (w, h) = (width.max(16), height.max(9));
    let margin = w / 64;
    match family {
        LayoutFamily::Single => vec![Rect::new(0, 0, w, h)],
        LayoutFamily::Auto | LayoutFamily::Overlay => {
            let tw = w / 8;
            let th = tw * 9 / 16;
            let gap = margin;
            let row = 6 * tw + 5 * gap;
            let x0 = w.saturating_sub(row) / 2;
            let y = h.saturating_sub(th + margin);
            std::iter::once(Rect::new(0, 0, w, h))
                .chain((0..6).map(|k| Rect::new(x0 + k * (tw + gap), y, tw, th)))
                .collect()
        }
        LayoutFamily::Prominent => {
            let mw = w * 3 / 4;
            let mh = (mw * 9 / 16).min(h);
            let tw = w - mw;
            let th = (tw * 9 / 16).min(h / 4);
            std::iter::once(Rect::new(0, h.saturating_sub(mh) / 2, mw, mh))
                .chain((0..4).map(|k| Rect::new(mw, k * th, tw, th)))
                .collect()
        }
        LayoutFamily::Equal => {
            let (cw, ch) = (w / 2, h / 2);
            (0..4)
                .map(|k| Rect::new((k % 2) * cw, (k / 2) * ch, cw, ch))
                .collect()
        }
    }
}

/// The self-view picture-in-picture: a fifth of the width, top right.
pub fn selfview_region(width: u32, height: u32) -> Rect {
    let margin = width / 64;
    let w = width / 5;
    let h = (w * 9 / 16).min(height);
    Rect::new(width.saturating_sub(w + margin), margin, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_is_seed_000() {
        let requests = receive_requests(LayoutFamily::Overlay);
        assert_eq!(requests.len(), 7);
        assert_eq!(
            requests[0],
            ScrRequest {
                csi: 0,
                bitrate_bps: 1_500_000,
                srcid: 0,
                policy: 1,
                priority: 255,
                adjid: 0,
                dup: false,
                payload_type: 126,
                max_mbps: 108_000,
                max_fs: 3600,
                max_cfps: 3000,
                max_width: 1280,
                max_height: 720,
            }
        );
        for thumbnail in &requests[1..] {
            assert_eq!(
                thumbnail.summary(),
                "bitrate=100000 srcid=0 policy=1 pri=254 adjid=33 dup=true pt=126 (H264) maxmbps=7200 maxfs=240 maxcfps=3000 maxwidth=3840 maxheight=3840"
            );
            assert_eq!(thumbnail.csi, 0);
        }
    }

    #[test]
    fn auto_is_overlay_and_names_parse_in_any_case() {
        let overlay = receive_requests(LayoutFamily::Overlay);
        assert_eq!(receive_requests(LayoutFamily::Auto), overlay);
        assert_eq!(LayoutFamily::parse("Overlay"), Some(LayoutFamily::Overlay));
        assert_eq!(LayoutFamily::parse("AUTO"), Some(LayoutFamily::Auto));
        assert_eq!(LayoutFamily::parse("custom"), None);
        assert_eq!(LayoutFamily::parse(""), None);
    }

    #[test]
    fn prominent_single_and_equal() {
        let overlay = receive_requests(LayoutFamily::Overlay);
        assert_eq!(
            receive_requests(LayoutFamily::Prominent),
            overlay[..5].to_vec()
        );
        assert_eq!(
            receive_requests(LayoutFamily::Single),
            overlay[..1].to_vec()
        );
        let equal = receive_requests(LayoutFamily::Equal);
        assert_eq!(equal.len(), 4);
        for tile in equal {
            assert_eq!(
                tile,
                ScrRequest {
                    csi: 0,
                    bitrate_bps: 500_000,
                    srcid: 0,
                    policy: 1,
                    priority: 255,
                    adjid: 0,
                    dup: false,
                    payload_type: 126,
                    max_mbps: 27_600,
                    max_fs: 920,
                    max_cfps: 3000,
                    max_width: 640,
                    max_height: 360,
                }
            );
        }
    }

    #[test]
    fn every_family_is_listed_and_requests_something() {
        for family in LayoutFamily::ALL {
            let requests = receive_requests(family);
            assert!(!requests.is_empty());
            assert!(
                requests
                    .iter()
                    .all(|r| r.srcid == 0 && r.csi == 0 && r.payload_type == 126)
            );
        }
    }

    #[test]
    fn every_family_has_a_region_per_request_inside_the_display() {
        for family in LayoutFamily::ALL {
            let regions = regions(family, 1280, 720);
            assert_eq!(regions.len(), receive_requests(family).len(), "{family:?}");
            for r in &regions {
                assert!(
                    r.x >= 0 && r.y >= 0 && r.width > 0 && r.height > 0,
                    "{family:?} {r:?}"
                );
                assert!(
                    r.x + r.width <= 1280 && r.y + r.height <= 720,
                    "{family:?} {r:?}"
                );
            }
        }
        // The main stream's centre is not covered by a thumbnail or the self-view.
        let overlay = regions(LayoutFamily::Overlay, 1280, 720);
        let (cx, cy) = overlay[0].centre();
        let selfview = selfview_region(1280, 720);
        for r in overlay[1..].iter().chain([&selfview]) {
            assert!(!(cx >= r.x && cx < r.x + r.width && cy >= r.y && cy < r.y + r.height));
        }
    }
}
