//! The streams the device asks the media node for, per layout family (wire profile §7
//! "Receiver", choices in `docs/wire-profile-choices.md` "§7 Media and multistream", "SCR from
//! the device"): what `Video Layout LayoutFamily` turns into in the device's SCR.

use crate::proto::multistream::ScrRequest;

/// The layout families the device knows (`Video Layout LayoutFamily`), lower case.
pub const LAYOUT_FAMILIES: [&str; 5] = ["auto", "equal", "prominent", "overlay", "single"];

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

/// The requests of `family` (case-insensitive), exactly the §7 table: `overlay` and `auto`
/// 1 main + 6 thumbnails (seed 000), `prominent` 1 main + 4 thumbnails, `equal` 4 tiles of
/// 640×360, `single` 1 main. An unknown family gets overlay's requests, the device default.
/// Every `srcid` is 0: the caller assigns the SSRC of each receive slot.
pub fn receive_requests(family: &str) -> Vec<ScrRequest> {
    let (main, thumbnails, tiles) = if family.eq_ignore_ascii_case("single") {
        (1, 0, 0)
    } else if family.eq_ignore_ascii_case("prominent") {
        (1, 4, 0)
    } else if family.eq_ignore_ascii_case("equal") {
        (0, 0, 4)
    } else {
        (1, 6, 0)
    };
    let mut requests = Vec::with_capacity(main + thumbnails + tiles);
    requests.extend(std::iter::repeat_n(MAIN, main));
    requests.extend(std::iter::repeat_n(THUMBNAIL, thumbnails));
    requests.extend(std::iter::repeat_n(TILE, tiles));
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_is_seed_000() {
        let requests = receive_requests("overlay");
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
    fn auto_and_unknown_families_are_overlay() {
        let overlay = receive_requests("overlay");
        assert_eq!(receive_requests("auto"), overlay);
        assert_eq!(receive_requests("Overlay"), overlay);
        assert_eq!(receive_requests("AUTO"), overlay);
        assert_eq!(receive_requests("custom"), overlay);
        assert_eq!(receive_requests(""), overlay);
    }

    #[test]
    fn prominent_single_and_equal() {
        let overlay = receive_requests("overlay");
        assert_eq!(receive_requests("prominent"), overlay[..5].to_vec());
        assert_eq!(receive_requests("Prominent"), overlay[..5].to_vec());
        assert_eq!(receive_requests("single"), overlay[..1].to_vec());
        assert_eq!(receive_requests("SINGLE"), overlay[..1].to_vec());
        let equal = receive_requests("Equal");
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
        for family in LAYOUT_FAMILIES {
            let requests = receive_requests(family);
            assert!(!requests.is_empty());
            assert!(
                requests
                    .iter()
                    .all(|r| r.srcid == 0 && r.csi == 0 && r.payload_type == 126)
            );
        }
    }
}
