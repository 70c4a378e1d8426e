//! The locus model: loci, participants, sequences, and how they render as the wire profile §5 DTO
//! (full, or a delta with `baseSequence` and only the changed participants).

use rand::Rng as _;
use serde_json::{Value, json};

/// Entries a sequence keeps before the oldest fold into `[rangeStart, rangeEnd]`.
pub const MAX_SEQUENCE_ENTRIES: usize = 10;

/// Where sequences start: near 2.59 × 10^14 like the SDK's vectors.
const SEQUENCE_BASE: u64 = 259_040_000_000_000;

/// A locus sequence: u64 entries, strictly increasing, plus the folded range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sequence {
    pub entries: Vec<u64>,
    pub range_start: u64,
    pub range_end: u64,
}

impl Sequence {
    /// A fresh sequence with one entry near 2.59 × 10^14.
    pub(crate) fn fresh() -> Self {
        let first = SEQUENCE_BASE + rand::rng().random_range(0..1_000_000_000);
        Self {
            entries: vec![first],
            range_start: 0,
            range_end: 0,
        }
    }

    fn last(&self) -> u64 {
        self.entries.last().copied().unwrap_or(self.range_end)
    }

    /// One change: a new entry 1..=3 above the last; beyond 10 entries the oldest fold into the range.
    pub(crate) fn advance(&mut self) {
        let next = self.last() + rand::rng().random_range(1..=3);
        self.entries.push(next);
        if self.entries.len() > MAX_SEQUENCE_ENTRIES {
            let fold: Vec<u64> = self
                .entries
                .drain(..self.entries.len() - MAX_SEQUENCE_ENTRIES)
                .collect();
            if self.range_start == 0 {
                self.range_start = fold[0];
            }
            self.range_end = fold[fold.len() - 1];
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "entries": self.entries,
            "rangeStart": self.range_start,
            "rangeEnd": self.range_end,
        })
    }
}

/// `fullState.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocusType {
    Call,
    Meeting,
}

impl LocusType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Call => "CALL",
            Self::Meeting => "MEETING",
        }
    }
}

/// How the far end of an outgoing call behaves (from the dialled address's local part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FarEnd {
    /// Answers after `[locus] answer_delay_ms`.
    Answer,
    /// `decline…`: declines after the delay.
    Decline,
    /// `noanswer…`: never answers.
    NoAnswer,
}

impl FarEnd {
    pub(crate) fn of(address: &str) -> Self {
        let local = local_part(address).to_ascii_lowercase();
        if local.starts_with("decline") {
            Self::Decline
        } else if local.starts_with("noanswer") {
            Self::NoAnswer
        } else {
            Self::Answer
        }
    }
}

/// The part of an address before `@` (without a `sip:` scheme); the whole address without `@`.
pub(crate) fn local_part(address: &str) -> &str {
    let a = address.strip_prefix("sip:").unwrap_or(address);
    a.split_once('@').map_or(a, |(l, _)| l)
}

/// The last path segment of a URL: the id in a WDM device URL or a participant URL.
pub(crate) fn last_segment(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

/// What a pending move does to the device's next leave or join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MoveFail {
    /// The leave of the old locus answers 500.
    Leave,
    /// The join of the destination answers 403.
    Join,
    /// The join of the destination answers with another meeting's locus.
    WrongMeeting,
}

impl MoveFail {
    pub(crate) fn parse(s: Option<&str>) -> Result<Option<Self>, String> {
        match s {
            None => Ok(None),
            Some("leave") => Ok(Some(Self::Leave)),
            Some("join") => Ok(Some(Self::Join)),
            Some("wrong_meeting") => Ok(Some(Self::WrongMeeting)),
            Some(other) => Err(format!(
                "unknown fail mode {other:?}; use null, leave, join or wrong_meeting"
            )),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Leave => "leave",
            Self::Join => "join",
            Self::WrongMeeting => "wrong_meeting",
        }
    }
}

/// One participant. Local participants are registered devices (their `device_url` is a WDM URL);
/// the others are simulated people.
#[derive(Debug, Clone)]
pub(crate) struct Participant {
    pub id: String,
    pub name: String,
    /// Email or SIP address.
    pub address: String,
    /// `USER` or `RESOURCE_ROOM`.
    pub kind: &'static str,
    /// IDLE, NOTIFIED, DECLINED, JOINED or LEFT.
    pub state: &'static str,
    pub device_url: String,
    /// A registered device (a candidate for `self`).
    pub local: bool,
    pub reason: Option<String>,
    pub held: bool,
    pub csis: Vec<u32>,
    /// The device said it is ringing (`PUT …/participant/alert`).
    pub ringing: bool,
}

impl Participant {
    /// A simulated person with a made-up device.
    pub(crate) fn remote(name: &str, address: &str, state: &'static str) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            address: address.to_owned(),
            kind: "USER",
            state,
            device_url: format!(
                "https://wdm.sim.invalid/wdm/api/v1/devices/{}",
                uuid::Uuid::new_v4()
            ),
            local: false,
            reason: None,
            held: false,
            csis: csis(),
            ringing: false,
        }
    }

    /// A registered device.
    pub(crate) fn device(device_url: &str, state: &'static str) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            name: "Simulated Room".to_owned(),
            address: format!("{}@rooms.sim.invalid", last_segment(device_url)),
            kind: "RESOURCE_ROOM",
            state,
            device_url: device_url.to_owned(),
            local: true,
            reason: None,
            held: false,
            csis: csis(),
            ringing: false,
        }
    }

    /// Whether this participant is the device `device_url` (compared by WDM id, so the authority
    /// the device used does not matter).
    pub(crate) fn is_device(&self, device_url: &str) -> bool {
        self.local && last_segment(&self.device_url) == last_segment(device_url)
    }

    fn device_state(&self) -> &'static str {
        match self.state {
            "JOINED" => "JOINED",
            "LEFT" | "DECLINED" => "LEFT",
            _ => "IDLE",
        }
    }

    pub(crate) fn to_json(&self, locus_url: &str) -> Value {
        let intent = match self.state {
            "NOTIFIED" => json!({"type": "JOIN"}),
            _ => Value::Null,
        };
        json!({
            "url": participant_url(locus_url, &self.id),
            "id": self.id,
            "state": self.state,
            "type": self.kind,
            "person": {"name": self.name, "email": self.address},
            "devices": [{
                "url": self.device_url,
                "state": self.device_state(),
                "intent": intent,
            }],
            "reason": self.reason,
            "controls": {"hold": {"held": self.held}},
            "status": {"csis": self.csis},
        })
    }
}

fn csis() -> Vec<u32> {
    let mut rng = rand::rng();
    let base: u32 = rng.random_range(1..0x0100_0000) << 8;
    vec![base, base + 1]
}

pub(crate) fn participant_url(locus_url: &str, id: &str) -> String {
    format!("{locus_url}/participant/{id}")
}

/// One locus.
#[derive(Debug, Clone)]
pub(crate) struct Locus {
    pub id: String,
    /// `{base}/locus/api/v1/loci/{id}`, absolute.
    pub url: String,
    pub kind: LocusType,
    /// INITIALIZING, ACTIVE, INACTIVE, TERMINATING or ENDED.
    pub state: &'static str,
    /// `info.topic` and `info.webExMeetingName`.
    pub name: String,
    /// `info.sipUri`: the dialled or meeting address.
    pub sip_uri: String,
    pub participants: Vec<Participant>,
    /// Index of the host in `participants`.
    pub host: usize,
    pub sequence: Sequence,
    /// Loci this one replaces (a move's origin).
    pub replaces: Vec<String>,
    pub far_end: FarEnd,
    /// A pending move fail mode for the next leave (old locus) or join (destination).
    pub move_fail: Option<MoveFail>,
    pub dtmf: Vec<Value>,
    /// Every request received for this locus: `{method, path, body, at_ms}`.
    pub requests: Vec<Value>,
    /// Join bodies: `{deviceUrl, correlationId, reachability}`.
    pub joins: Vec<Value>,
}

impl Locus {
    pub(crate) fn new(base: &str, kind: LocusType, name: &str, sip_uri: &str) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        Self {
            url: format!("{base}/locus/api/v1/loci/{id}"),
            id,
            kind,
            state: "INITIALIZING",
            name: name.to_owned(),
            sip_uri: sip_uri.to_owned(),
            participants: Vec::new(),
            host: 0,
            sequence: Sequence::fresh(),
            replaces: Vec::new(),
            far_end: FarEnd::Answer,
            move_fail: None,
            dtmf: Vec::new(),
            requests: Vec::new(),
            joins: Vec::new(),
        }
    }

    pub(crate) fn sync_url(&self) -> String {
        format!("{}/sync", self.url)
    }

    /// The participant `self` is for `device` (by WDM id), else the first local participant.
    fn self_index(&self, device: Option<&str>) -> Option<usize> {
        device
            .and_then(|d| self.participants.iter().position(|p| p.is_device(d)))
            .or_else(|| self.participants.iter().position(|p| p.local))
    }

    pub(crate) fn device_index(&self, device_url: &str) -> Option<usize> {
        self.participants
            .iter()
            .position(|p| p.is_device(device_url))
    }

    fn self_json(&self, device: Option<&str>) -> Value {
        self.self_index(device)
            .map_or(Value::Null, |i| self.participants[i].to_json(&self.url))
    }

    fn full_state(&self) -> Value {
        json!({"state": self.state, "type": self.kind.as_str()})
    }

    /// The full DTO, `self` being `device`'s participant (no `baseSequence`).
    pub(crate) fn render(&self, device: Option<&str>) -> Value {
        let host = self.participants.get(self.host).map_or(
            Value::Null,
            |h| json!({"id": h.id, "name": h.name, "url": participant_url(&self.url, &h.id)}),
        );
        json!({
            "url": self.url,
            "fullState": self.full_state(),
            "participants": self
                .participants
                .iter()
                .map(|p| p.to_json(&self.url))
                .collect::<Vec<_>>(),
            "self": self.self_json(device),
            "host": host,
            "info": {
                "topic": self.name,
                "webExMeetingName": self.name,
                "sipUri": self.sip_uri,
            },
            "controls": {"lock": {"locked": false}, "record": {"recording": false}},
            "mediaShares": [{"name": "content", "floor": {"disposition": "RELEASED"}}],
            "replaces": self
                .replaces
                .iter()
                .map(|u| json!({"locusUrl": u}))
                .collect::<Vec<_>>(),
            "sequence": self.sequence.to_json(),
            "syncUrl": self.sync_url(),
        })
    }

    /// A delta after a change from `base`: the changed participants only, `baseSequence` = `base`.
    pub(crate) fn render_delta(
        &self,
        base: &Sequence,
        changed: &[usize],
        device: Option<&str>,
    ) -> Value {
        json!({
            "url": self.url,
            "syncUrl": self.sync_url(),
            "fullState": self.full_state(),
            "self": self.self_json(device),
            "participants": changed
                .iter()
                .filter_map(|i| self.participants.get(*i))
                .map(|p| p.to_json(&self.url))
                .collect::<Vec<_>>(),
            "sequence": self.sequence.to_json(),
            "baseSequence": base.to_json(),
        })
    }

    /// The admin view.
    pub(crate) fn admin_json(&self) -> Value {
        json!({
            "id": self.id,
            "url": self.url,
            "type": self.kind.as_str(),
            "state": self.state,
            "name": self.name,
            "sipUri": self.sip_uri,
            "participants": self.participants.iter().map(|p| json!({
                "id": p.id,
                "url": participant_url(&self.url, &p.id),
                "name": p.name,
                "address": p.address,
                "state": p.state,
                "local": p.local,
                "deviceUrl": p.device_url,
                "reason": p.reason,
                "held": p.held,
                "ringing": p.ringing,
            })).collect::<Vec<_>>(),
            "ringing": self.participants.iter().any(|p| p.ringing),
            "sequence": self.sequence.to_json(),
            "replaces": self.replaces,
            "moveFail": self.move_fail.map(MoveFail::as_str),
            "dtmf": self.dtmf,
            "joins": self.joins,
            "requests": self.requests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_grow_by_one_to_three_and_fold() {
        let mut s = Sequence::fresh();
        assert!((259_000_000_000_000..260_000_000_000_000).contains(&s.entries[0]));
        let mut all = s.entries.clone();
        for _ in 0..15 {
            s.advance();
            all.push(*s.entries.last().expect("entry"));
        }
        for w in all.windows(2) {
            assert!((1..=3).contains(&(w[1] - w[0])), "{w:?}");
        }
        assert_eq!(s.entries.len(), MAX_SEQUENCE_ENTRIES);
        assert_eq!(s.range_start, all[0]);
        assert_eq!(s.range_end, all[5]);
        assert_eq!(s.entries[0], all[6]);
    }

    #[test]
    fn far_end_from_local_part() {
        assert_eq!(FarEnd::of("decline-me@example.com"), FarEnd::Decline);
        assert_eq!(FarEnd::of("sip:NoAnswer1@example.com"), FarEnd::NoAnswer);
        assert_eq!(FarEnd::of("bob@decline.com"), FarEnd::Answer);
        assert_eq!(local_part("bob"), "bob");
        assert_eq!(last_segment("https://h/wdm/api/v1/devices/abc/"), "abc");
    }

    #[test]
    fn full_dto_and_delta_shapes() {
        let mut l = Locus::new("https://localhost:1", LocusType::Call, "Bob", "bob@x");
        l.participants.push(Participant::device(
            "https://a/wdm/api/v1/devices/d1",
            "JOINED",
        ));
        l.participants
            .push(Participant::remote("Bob", "bob@x", "NOTIFIED"));
        let full = l.render(Some("https://other:2/wdm/api/v1/devices/d1"));
        assert!(full.get("baseSequence").is_none());
        assert_eq!(full["self"]["id"], json!(l.participants[0].id));
        assert_eq!(full["fullState"]["type"], "CALL");
        assert_eq!(full["syncUrl"], json!(format!("{}/sync", l.url)));
        let base = l.sequence.clone();
        l.sequence.advance();
        let d = l.render_delta(&base, &[1], None);
        assert_eq!(d["participants"].as_array().map(Vec::len), Some(1));
        assert_eq!(d["baseSequence"]["entries"], json!(base.entries));
    }
}
