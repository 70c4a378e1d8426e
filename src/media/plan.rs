//! What a call's media looks like on the wire before any packet flows: the SSRCs of the offer
//! (audio, one per simulcast layer, one per receive slot) and the CSIs of the capture devices.

use rand::Rng as _;

/// Receive slots the offer reserves SSRCs for: the largest layout (overlay: 1 main + 6).
pub const RECEIVE_SLOTS: usize = 7;

/// `(sceneId << 8) | av` (wire profile §7); av 0 audio, 1 video.
pub fn csi(scene_id: u32, video: bool) -> u32 {
    ((scene_id & 0x7f_ffff) << 8) | u32::from(video)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlan {
    pub audio_ssrc: u32,
    /// One per simulcast layer, in layer order (the offer's `a=ssrc-group:SIM`).
    pub video_ssrcs: Vec<u32>,
    /// The SSRCs the node is asked to send receive slot `i` on.
    pub receive_ssrcs: Vec<u32>,
    pub audio_csi: u32,
    pub video_csi: u32,
}

impl MediaPlan {
    /// Fresh random SSRCs (distinct, non-zero) and scene ids for a call.
    pub fn random(layers: usize) -> Self {
        let mut rng = rand::rng();
        let mut used = std::collections::HashSet::new();
        let mut ssrc = || loop {
            let candidate: u32 = rng.random();
            if candidate != 0 && used.insert(candidate) {
                return candidate;
            }
        };
        let audio_ssrc = ssrc();
        let video_ssrcs = (0..layers.max(1)).map(|_| ssrc()).collect();
        let receive_ssrcs = (0..RECEIVE_SLOTS).map(|_| ssrc()).collect();
        let mut rng = rand::rng();
        Self {
            audio_ssrc,
            video_ssrcs,
            receive_ssrcs,
            audio_csi: csi(rng.random_range(1..=0x7f_ffff), false),
            video_csi: csi(rng.random_range(1..=0x7f_ffff), true),
        }
    }

    /// Every SSRC roomd sends on.
    pub fn send_ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.audio_ssrc).chain(self.video_ssrcs.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csis_tag_audio_and_video() {
        assert_eq!(csi(0x12_3456, true), 0x1234_5601);
        assert_eq!(csi(0x12_3456, false), 0x1234_5600);
        let plan = MediaPlan::random(3);
        assert_eq!(plan.video_ssrcs.len(), 3);
        assert_eq!(plan.receive_ssrcs.len(), RECEIVE_SLOTS);
        assert_eq!(plan.video_csi & 0xff, 1);
        assert_eq!(plan.audio_csi & 0xff, 0);
        let mut all: Vec<u32> = plan
            .send_ssrcs()
            .chain(plan.receive_ssrcs.clone())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 1 + 3 + RECEIVE_SLOTS);
    }
}
