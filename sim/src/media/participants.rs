//! The far-end meeting the node plays (`docs/wire-profile-choices.md` §7 "Far-end media"): its
//! participants, the active speaker, who each video request of a device SCR shows and who each
//! audio slot carries. Node-wide: every session sees the same meeting.

use serde_json::{Value, json};

/// Most participants a meeting has (`[media] participants`, the add call).
pub const MAX_PARTICIPANTS: u8 = 8;

/// Participant *n*'s picture colour is `PALETTE[n - 1]` (RGB).
pub(crate) const PALETTE: [[u8; 3]; MAX_PARTICIPANTS as usize] = [
    [220, 40, 40],
    [40, 180, 60],
    [40, 80, 220],
    [230, 200, 40],
    [200, 60, 200],
    [40, 200, 200],
    [240, 140, 30],
    [150, 150, 150],
];

/// Audio streams the node sends at most (the "up to 3 loudest speakers").
pub(crate) const AUDIO_SLOTS: usize = 3;
/// The active speaker's tone level (amplitude 0.5).
pub(crate) const ACTIVE_DBFS: f64 = -6.0;
/// The other talkers' tone level.
pub(crate) const QUIET_DBFS: f64 = -30.0;

/// Participant `n`'s sceneId.
fn scene(n: u8) -> u32 {
    0x100 + u32::from(n)
}

pub(crate) fn video_csi(n: u8) -> u32 {
    (scene(n) << 8) | 1
}

pub(crate) fn audio_csi(n: u8) -> u32 {
    scene(n) << 8
}

pub(crate) fn tone_hz(n: u8) -> u32 {
    300 + 150 * u32::from(n)
}

/// Participant `n`'s colour; numbers outside 1..=8 get the last one (never happens).
pub(crate) fn colour(n: u8) -> [u8; 3] {
    let i = usize::from(n.clamp(1, MAX_PARTICIPANTS)) - 1;
    PALETTE[i]
}

/// The linear amplitude of a tone at `dbfs` (0 dBFS = full-scale peak).
pub(crate) fn amplitude(dbfs: f64) -> f64 {
    10_f64.powf(dbfs / 20.0)
}

/// Why a meeting change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MeetingError {
    /// No participant with that number is in the meeting.
    NotInMeeting(u8),
    /// Already [`MAX_PARTICIPANTS`].
    Full,
    /// The meeting keeps at least one participant.
    LastOne,
}

impl std::fmt::Display for MeetingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotInMeeting(n) => write!(f, "participant {n} is not in the meeting"),
            Self::Full => write!(f, "the meeting already has {MAX_PARTICIPANTS} participants"),
            Self::LastOne => write!(f, "the last participant cannot leave the meeting"),
        }
    }
}

impl std::error::Error for MeetingError {}

/// What a video request asks to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// Policy 1: the active speaker, or the next participant for later requests.
    ActiveSpeaker,
    /// Policy 0 with a CSI: that participant.
    Pinned(u32),
    /// Nothing the node can show (policy 0 without a CSI, another policy, not servable).
    Nothing,
}

impl Wanted {
    /// From a request's policy and CSI; `servable` false (wrong payload type, no size) is Nothing.
    pub(crate) fn of(policy: u8, csi: u32, servable: bool) -> Self {
        match (servable, policy, csi) {
            (false, _, _) => Self::Nothing,
            (true, 1, _) => Self::ActiveSpeaker,
            (true, 0, c) if c != 0 => Self::Pinned(c),
            _ => Self::Nothing,
        }
    }
}

/// The meeting: its participants and active speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meeting {
    /// The scenario's `participants` it was built from; a different one rebuilds it.
    pub from_scenario: u8,
    /// Numbers in the meeting, ascending.
    numbers: Vec<u8>,
    active: u8,
}

impl Meeting {
    /// Participants 1..=`count` (clamped to 1..=8), participant 1 speaking.
    pub(crate) fn new(count: u8) -> Self {
        let count = count.clamp(1, MAX_PARTICIPANTS);
        Self {
            from_scenario: count,
            numbers: (1..=count).collect(),
            active: 1,
        }
    }

    pub(crate) fn numbers(&self) -> &[u8] {
        &self.numbers
    }

    pub(crate) fn active(&self) -> u8 {
        self.active
    }

    pub(crate) fn contains(&self, n: u8) -> bool {
        self.numbers.contains(&n)
    }

    pub(crate) fn set_active(&mut self, n: u8) -> Result<(), MeetingError> {
        if !self.contains(n) {
            return Err(MeetingError::NotInMeeting(n));
        }
        self.active = n;
        Ok(())
    }

    /// Adds the lowest unused number; that number.
    pub(crate) fn add(&mut self) -> Result<u8, MeetingError> {
        let n = (1..=MAX_PARTICIPANTS)
            .find(|n| !self.contains(*n))
            .ok_or(MeetingError::Full)?;
        self.numbers.push(n);
        self.numbers.sort_unstable();
        Ok(n)
    }

    /// Removes `n`; when it was speaking, the lowest remaining number speaks.
    pub(crate) fn remove(&mut self, n: u8) -> Result<(), MeetingError> {
        if !self.contains(n) {
            return Err(MeetingError::NotInMeeting(n));
        }
        if self.numbers.len() == 1 {
            return Err(MeetingError::LastOne);
        }
        self.numbers.retain(|x| *x != n);
        if self.active == n {
            self.active = self.numbers[0];
        }
        Ok(())
    }

    /// The participant each request shows, in index order: the first policy-1 request the active
    /// speaker, each later one the lowest number no earlier request shows; a pinned request the
    /// participant with that video CSI; `None` for the rest (SCA state 2, no stream).
    pub(crate) fn assign(&self, wanted: &[Wanted]) -> Vec<Option<u8>> {
        let mut shown: Vec<u8> = Vec::new();
        let mut first_active = true;
        wanted
            .iter()
            .map(|w| {
                let p = match *w {
                    Wanted::ActiveSpeaker if first_active => {
                        first_active = false;
                        Some(self.active)
                    }
                    Wanted::ActiveSpeaker => {
                        self.numbers.iter().copied().find(|n| !shown.contains(n))
                    }
                    Wanted::Pinned(csi) => {
                        self.numbers.iter().copied().find(|n| video_csi(*n) == csi)
                    }
                    Wanted::Nothing => None,
                };
                shown.extend(p);
                p
            })
            .collect()
    }

    /// Who each audio slot carries: the active speaker, then the others ascending, at most
    /// [`AUDIO_SLOTS`].
    pub(crate) fn audio_slots(&self) -> Vec<u8> {
        std::iter::once(self.active)
            .chain(self.numbers.iter().copied().filter(|n| *n != self.active))
            .take(AUDIO_SLOTS)
            .collect()
    }

    /// `participants` of the admin snapshot.
    pub(crate) fn participants_json(&self) -> Value {
        self.numbers
            .iter()
            .map(|&n| {
                json!({
                    "number": n,
                    "colour": colour(n),
                    "toneHz": tone_hz(n),
                    "videoCsi": video_csi(n),
                    "audioCsi": audio_csi(n),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_follow_the_contract() {
        assert_eq!(video_csi(1), 0x0001_0101);
        assert_eq!(audio_csi(3), 0x0001_0300);
        assert_eq!((tone_hz(1), tone_hz(8)), (450, 1500));
        assert_eq!(colour(2), [40, 180, 60]);
        assert!((amplitude(ACTIVE_DBFS) - 0.501).abs() < 0.001);
    }

    #[test]
    fn policy_one_requests_get_the_speaker_then_the_others_ascending() {
        let mut m = Meeting::new(3);
        let four = [Wanted::ActiveSpeaker; 4];
        assert_eq!(m.assign(&four), vec![Some(1), Some(2), Some(3), None]);
        m.set_active(2).expect("in the meeting");
        assert_eq!(m.assign(&four), vec![Some(2), Some(1), Some(3), None]);
        assert_eq!(m.audio_slots(), vec![2, 1, 3]);
        let pinned = [
            Wanted::Pinned(video_csi(3)),
            Wanted::ActiveSpeaker,
            Wanted::ActiveSpeaker,
            Wanted::Pinned(video_csi(7)),
            Wanted::Nothing,
        ];
        assert_eq!(
            m.assign(&pinned),
            vec![Some(3), Some(2), Some(1), None, None],
            "a later policy-1 request skips the pinned participant"
        );
        assert_eq!(Wanted::of(1, 0, true), Wanted::ActiveSpeaker);
        assert_eq!(Wanted::of(0, 0, true), Wanted::Nothing);
        assert_eq!(Wanted::of(1, 0, false), Wanted::Nothing);
        assert_eq!(Wanted::of(0, 9, true), Wanted::Pinned(9));
    }

    #[test]
    fn joining_and_leaving() {
        let mut m = Meeting::new(2);
        assert_eq!(m.audio_slots(), vec![1, 2]);
        assert_eq!(m.set_active(5), Err(MeetingError::NotInMeeting(5)));
        assert_eq!(m.add(), Ok(3));
        m.remove(1).expect("in the meeting");
        assert_eq!((m.numbers(), m.active()), (&[2, 3][..], 2));
        assert_eq!(m.add(), Ok(1), "the lowest unused number");
        for want in 4..=8 {
            assert_eq!(m.add(), Ok(want));
        }
        assert_eq!(m.add(), Err(MeetingError::Full));
        assert_eq!(m.remove(9), Err(MeetingError::NotInMeeting(9)));
        for n in 1..8 {
            m.remove(n).expect("not the last");
        }
        assert_eq!(m.remove(8), Err(MeetingError::LastOne));
        assert_eq!(m.active(), 8);
        assert_eq!(Meeting::new(0).numbers(), &[1]);
        assert_eq!(Meeting::new(12).numbers().len(), 8);
        let j = Meeting::new(1).participants_json();
        assert_eq!(
            j,
            json!([{"number": 1, "colour": [220, 40, 40], "toneHz": 450,
                    "videoCsi": 0x0001_0101, "audioCsi": 0x0001_0100}])
        );
    }
}
