//! What the sender encodes for one SCR request (wire profile §7 "Sender", choices in
//! `docs/wire-profile-choices.md` "§7 Media and multistream"): the largest 16:9 picture the
//! request's frame size and dimensions allow, at the frame rate its macroblock rate and frame
//! rate caps allow, never more than the camera captures.
//!
//! Pure arithmetic, so the encoder pipeline, the tests and the simulator's expectations agree.

use crate::proto::multistream::ScrRequest;

/// What the camera delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// One encoder layer's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
}

/// The lowest bitrate a layer is given: below it H.264 at 32×18 is mush anyway.
const MIN_BITRATE_KBPS: u32 = 16;

/// H.264 macroblocks (16×16) of a frame: `ceil(w/16) · ceil(h/16)`, the unit of max-fs and
/// max-mbps. Saturates instead of overflowing.
pub fn macroblocks(width: u32, height: u32) -> u32 {
    width.div_ceil(16).saturating_mul(height.div_ceil(16))
}

/// A request limit, 0 meaning none.
fn limit(value: u32) -> u64 {
    if value == 0 {
        u64::MAX
    } else {
        u64::from(value)
    }
}

/// Macroblocks of the 16:9 frame 16k × 9k (no overflow for any k that fits a u32 width).
fn macroblocks_k(k: u64) -> u64 {
    k * (9 * k).div_ceil(16)
}

/// The layer for `request` from `capture`: the largest 16:9 size `16k × 9k` (k even, so
/// both are even, which the encoder needs) with `ceil(w/16)·ceil(h/16) ≤ max_fs`,
/// `w ≤ max_width`, `h ≤ max_height` (0 = no limit for all three) and not larger than the
/// capture; fps = min(capture fps, `max_cfps/100`, `max_mbps` / macroblocks per frame) (0 = no
/// limit for the two caps), at least 1; bitrate = `bitrate_bps/1000` kbps, at least 16, or
/// when 0 the default 0.1 bit per pixel per frame. `None` when not even 32×18 (k = 2) fits:
/// the request gets state disabled.
pub fn layer_for(request: &ScrRequest, capture: Capture) -> Option<LayerConfig> {
    let max_width = limit(u32::from(request.max_width)).min(u64::from(capture.width));
    let max_height = limit(u32::from(request.max_height)).min(u64::from(capture.height));
    let mut k = (max_width / 16).min(max_height / 9);
    let max_fs = limit(request.max_fs);
    if request.max_fs != 0 {
        // macroblocks_k(k) ≥ 9k²/16, so no k above sqrt(16·max_fs/9) fits: start the
        // search there rather than walking down from a huge capture.
        k = k.min((16 * max_fs / 9).isqrt());
    }
    k &= !1;
    while k >= 2 && macroblocks_k(k) > max_fs {
        k -= 2;
    }
    if k < 2 {
        return None;
    }
    // k ≤ capture.width / 16, so both fit a u32.
    let width = (16 * k) as u32;
    let height = (9 * k) as u32;
    let per_frame = macroblocks(width, height);
    let mut fps = capture.fps;
    if request.max_cfps != 0 {
        fps = fps.min(u32::from(request.max_cfps) / 100);
    }
    if request.max_mbps != 0 {
        fps = fps.min(request.max_mbps / per_frame);
    }
    let fps = fps.max(1);
    let bitrate_kbps = if request.bitrate_bps == 0 {
        let bps = u64::from(width) * u64::from(height) * u64::from(fps) / 10;
        u32::try_from(bps / 1000).unwrap_or(u32::MAX)
    } else {
        request.bitrate_bps / 1000
    };
    Some(LayerConfig {
        width,
        height,
        fps,
        bitrate_kbps: bitrate_kbps.max(MIN_BITRATE_KBPS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CAMERA: Capture = Capture {
        width: 1920,
        height: 1080,
        fps: 30,
    };

    /// The node's default request for a layer (§7 "SCR from the node").
    fn request(
        max_fs: u32,
        width: u16,
        height: u16,
        max_mbps: u32,
        bitrate_bps: u32,
    ) -> ScrRequest {
        ScrRequest {
            csi: 0,
            bitrate_bps,
            srcid: 0,
            policy: 0,
            priority: 255,
            adjid: 0,
            dup: false,
            payload_type: 126,
            max_mbps,
            max_fs,
            max_cfps: 3000,
            max_width: width,
            max_height: height,
        }
    }

    fn unlimited(max_fs: u32) -> ScrRequest {
        ScrRequest {
            max_width: 0,
            max_height: 0,
            max_mbps: 0,
            max_cfps: 0,
            ..request(max_fs, 0, 0, 0, 0)
        }
    }

    #[test]
    fn macroblocks_round_up() {
        assert_eq!(macroblocks(1280, 720), 3600);
        assert_eq!(macroblocks(640, 360), 40 * 23);
        assert_eq!(macroblocks(320, 180), 240);
        assert_eq!(macroblocks(1, 1), 1);
        assert_eq!(macroblocks(0, 720), 0);
        assert_eq!(macroblocks(u32::MAX, u32::MAX), u32::MAX);
    }

    #[test]
    fn the_node_default_layers() {
        assert_eq!(
            layer_for(&request(3600, 1280, 720, 108_000, 1_500_000), CAMERA),
            Some(LayerConfig {
                width: 1280,
                height: 720,
                fps: 30,
                bitrate_kbps: 1500
            })
        );
        assert_eq!(
            layer_for(&request(920, 640, 360, 27_600, 500_000), CAMERA),
            Some(LayerConfig {
                width: 640,
                height: 360,
                fps: 30,
                bitrate_kbps: 500
            })
        );
        assert_eq!(
            layer_for(&request(240, 320, 180, 7200, 150_000), CAMERA),
            Some(LayerConfig {
                width: 320,
                height: 180,
                fps: 30,
                bitrate_kbps: 150
            })
        );
    }

    #[test]
    fn max_fs_alone_picks_the_size() {
        let size = |max_fs| layer_for(&unlimited(max_fs), CAMERA).map(|l| (l.width, l.height));
        assert_eq!(size(3600), Some((1280, 720)));
        assert_eq!(size(3599), Some((1248, 702)));
        assert_eq!(size(920), Some((640, 360)));
        assert_eq!(size(240), Some((320, 180)));
        assert_eq!(size(4), Some((32, 18)));
        assert_eq!(size(3), None);
        // No limit at all: the capture.
        assert_eq!(size(0), Some((1920, 1080)));
        // Seed 000's presentation request (max_fs 32400 = 4K) on a 1080p camera.
        assert_eq!(size(32_400), Some((1920, 1080)));
    }

    #[test]
    fn width_height_and_capture_cap_the_size() {
        let size = |request: ScrRequest, capture| {
            layer_for(&request, capture).map(|l| (l.width, l.height))
        };
        assert_eq!(
            size(request(3600, 640, 720, 0, 0), CAMERA),
            Some((640, 360))
        );
        assert_eq!(
            size(request(3600, 1280, 200, 0, 0), CAMERA),
            Some((352, 198))
        );
        // Not 16:9-aligned caps round down to an even k.
        assert_eq!(
            size(request(3600, 1000, 1000, 0, 0), CAMERA),
            Some((992, 558))
        );
        let small = Capture {
            width: 800,
            height: 600,
            fps: 30,
        };
        assert_eq!(
            size(request(3600, 1280, 720, 0, 0), small),
            Some((800, 450))
        );
        let portrait = Capture {
            width: 720,
            height: 1280,
            fps: 30,
        };
        assert_eq!(size(unlimited(0), portrait), Some((704, 396)));
        let tiny = Capture {
            width: 31,
            height: 1080,
            fps: 30,
        };
        assert_eq!(size(unlimited(0), tiny), None);
        assert_eq!(size(request(3600, 16, 9, 0, 0), CAMERA), None);
        let none = Capture {
            width: 0,
            height: 0,
            fps: 0,
        };
        assert_eq!(size(unlimited(0), none), None);
    }

    #[test]
    fn fps_from_max_cfps_and_max_mbps() {
        let fps = |request: ScrRequest, capture| layer_for(&request, capture).unwrap().fps;
        let sixty = Capture { fps: 60, ..CAMERA };
        // max_cfps 3000 → 30 of the camera's 60.
        assert_eq!(fps(request(3600, 1280, 720, 0, 0), sixty), 30);
        assert_eq!(
            fps(
                ScrRequest {
                    max_cfps: 1550,
                    ..request(3600, 1280, 720, 0, 0)
                },
                sixty
            ),
            15
        );
        // max_mbps 54000 at 3600 MBs per frame → 15.
        assert_eq!(fps(request(3600, 1280, 720, 54_000, 0), sixty), 15);
        // No caps: the camera's rate.
        assert_eq!(fps(unlimited(3600), sixty), 60);
        // Never below 1.
        assert_eq!(fps(request(3600, 1280, 720, 100, 0), sixty), 1);
        assert_eq!(
            fps(
                ScrRequest {
                    max_cfps: 50,
                    ..request(3600, 1280, 720, 0, 0)
                },
                sixty
            ),
            1
        );
        assert_eq!(fps(unlimited(3600), Capture { fps: 0, ..CAMERA }), 1);
    }

    #[test]
    fn bitrate_from_the_request_or_the_default() {
        let kbps = |request: ScrRequest| layer_for(&request, CAMERA).unwrap().bitrate_kbps;
        assert_eq!(kbps(request(3600, 1280, 720, 0, 1_500_999)), 1500);
        assert_eq!(kbps(request(3600, 1280, 720, 0, 5000)), 16);
        // 0.1 bit per pixel per frame: 1280·720·30/10 bps.
        assert_eq!(kbps(request(3600, 1280, 720, 0, 0)), 2764);
        assert_eq!(kbps(request(4, 32, 18, 0, 0)), 16);
    }

    /// Whether the size k (16k × 9k) satisfies every size constraint.
    fn fits(request: &ScrRequest, capture: Capture, k: u64) -> bool {
        let (w, h) = (16 * k, 9 * k);
        (request.max_fs == 0 || macroblocks_k(k) <= u64::from(request.max_fs))
            && (request.max_width == 0 || w <= u64::from(request.max_width))
            && (request.max_height == 0 || h <= u64::from(request.max_height))
            && w <= u64::from(capture.width)
            && h <= u64::from(capture.height)
    }

    proptest! {
        #[test]
        fn the_layer_satisfies_every_constraint_and_is_the_largest(
            max_fs in prop_oneof![Just(0u32), 0u32..40_000, any::<u32>()],
            max_width in prop_oneof![Just(0u16), any::<u16>()],
            max_height in prop_oneof![Just(0u16), any::<u16>()],
            max_mbps in prop_oneof![Just(0u32), any::<u32>()],
            max_cfps in prop_oneof![Just(0u16), any::<u16>()],
            bitrate_bps in any::<u32>(),
            width in prop_oneof![0u32..5000, any::<u32>()],
            height in prop_oneof![0u32..3000, any::<u32>()],
            fps in 0u32..240,
        ) {
            let request = ScrRequest { max_fs, max_width, max_height, max_mbps, max_cfps, bitrate_bps, ..request(0, 0, 0, 0, 0) };
            let capture = Capture { width, height, fps };
            match layer_for(&request, capture) {
                Some(layer) => {
                    prop_assert_eq!(layer.width % 16, 0);
                    let k = u64::from(layer.width / 16);
                    prop_assert_eq!(u64::from(layer.height), 9 * k);
                    prop_assert!(k >= 2 && k % 2 == 0);
                    prop_assert!(fits(&request, capture, k));
                    prop_assert!(!fits(&request, capture, k + 2), "k+2 = {} also fits", k + 2);
                    prop_assert!(layer.fps >= 1);
                    if layer.fps > 1 {
                        prop_assert!(layer.fps <= fps);
                        prop_assert!(max_cfps == 0 || layer.fps <= u32::from(max_cfps) / 100);
                        prop_assert!(max_mbps == 0 || u64::from(layer.fps) * u64::from(macroblocks(layer.width, layer.height)) <= u64::from(max_mbps));
                    }
                    prop_assert!(layer.bitrate_kbps >= MIN_BITRATE_KBPS);
                    if bitrate_bps != 0 {
                        prop_assert_eq!(layer.bitrate_kbps, (bitrate_bps / 1000).max(MIN_BITRATE_KBPS));
                    }
                }
                None => prop_assert!(!fits(&request, capture, 2)),
            }
        }
    }
}
