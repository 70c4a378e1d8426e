//! The media node's shared state: the offers seen in Locus joins, the far-end meeting, one session
//! per peer address with everything it received and sent, and the admin snapshot. The node loop,
//! the admin API and [`crate::SimHandle`] all go through [`MediaNode`]; every change bumps a watch
//! channel so waiters re-check at once, and a meeting change wakes the node loop to re-assign.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc, watch};

use super::audio::{AudioSender, TxAudio};
use super::decode::Decoder;
use super::participants::{AUDIO_SLOTS, Meeting, MeetingError, Wanted, tone_hz};
use super::scr::{self, FIRST_RESEND, MAX_RESENDS, Preset};
use super::sdp::{AUDIO_PT, Offer, VIDEO_PT};
use super::spectrum::AudioLevels;
use super::streams::{Encoder, EncoderKey, Planned, TxStream};
use super::wire::{Sca, Scr, ScrRequest, SenderReport, next_seqno};
use crate::clock::now_ms;
use crate::state::lock;

/// Offers kept (the newest); older ones are only counted.
const MAX_OFFERS: usize = 64;
/// Records kept per list and session (SCAs, SCRs, streams sent); older ones are dropped.
const MAX_RECORDS: usize = 1000;
/// Distinct CSI values remembered per stream.
const MAX_CSIS: usize = 16;
/// The window the frame rate is measured over.
const FPS_WINDOW_NS: u64 = 1_000_000_000;
/// Frequencies whose level the audio measurement reports besides the participants' tones.
const REFERENCE_TONES: [u32; 2] = [1000, 440];

/// Every frequency an audio decoder measures: each possible participant's tone, then 1 kHz and
/// 440 Hz (the snapshot shows those of the meeting's participants).
pub(crate) fn measured_tones() -> Vec<u32> {
    (1..=super::MAX_PARTICIPANTS)
        .map(tone_hz)
        .chain(REFERENCE_TONES)
        .collect()
}

/// A datagram to send: bytes and destination.
pub(crate) type Datagram = (Vec<u8>, SocketAddr);

/// Pipelines taken out of the state, to be dropped (set to Null) after the lock is released.
#[derive(Debug, Default)]
pub(crate) struct Teardown {
    pub decoders: Vec<Decoder>,
    pub encoders: Vec<Encoder>,
    pub audio: Vec<AudioSender>,
}

impl Teardown {
    pub(crate) fn is_empty(&self) -> bool {
        self.decoders.is_empty() && self.encoders.is_empty() && self.audio.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.decoders.len() + self.encoders.len() + self.audio.len()
    }

    pub(crate) fn extend(&mut self, other: Self) {
        self.decoders.extend(other.decoders);
        self.encoders.extend(other.encoders);
        self.audio.extend(other.audio);
    }

    pub(crate) fn run(self) {
        for d in self.decoders {
            d.stop();
        }
        drop(self.encoders);
        drop(self.audio);
    }
}

/// Pipelines a session needs started: video for request `index` showing a participant, audio
/// for a slot carrying one.
#[derive(Debug, Default)]
pub(crate) struct ToStart {
    pub video: Vec<(usize, EncoderKey, u8)>,
    pub audio: Vec<(usize, u8)>,
}

impl ToStart {
    pub(crate) fn is_empty(&self) -> bool {
        self.video.is_empty() && self.audio.is_empty()
    }
}

/// The media node: its address and SSRC, and everything behind one mutex.
#[derive(Debug)]
pub(crate) struct MediaNode {
    pub addr: SocketAddr,
    /// The node's own SSRC: named in the answer's `a=ssrc`, the sender SSRC of its RTCP.
    pub ssrc: u32,
    pub(crate) inner: Mutex<Inner>,
    changes: watch::Sender<u64>,
    /// Datagrams the admin sends (SCRs); the node loop writes them to the socket.
    outbox: mpsc::UnboundedSender<Datagram>,
    /// Wakes the node loop to re-assign every session's streams after a meeting change.
    pub(crate) meeting_changed: Notify,
    /// STUN Binding requests answered.
    pub binding_requests: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub offers: VecDeque<Offer>,
    pub offers_total: u64,
    pub sessions: Vec<Session>,
    pub drop_acks: bool,
    /// Bad datagrams from addresses with no session.
    pub malformed_unattributed: u64,
    /// The far-end meeting; built from the scenario on first use ([`MediaNode::sync_meeting`]).
    meeting: Option<Meeting>,
}

impl MediaNode {
    /// The node at `addr` with a random SSRC, and the receiver of its admin outbox.
    pub(crate) fn new(addr: SocketAddr) -> (Self, mpsc::UnboundedReceiver<Datagram>) {
        let (outbox, rx) = mpsc::unbounded_channel();
        let node = Self {
            addr,
            ssrc: rand::random::<u32>() | 1,
            inner: Mutex::new(Inner::default()),
            changes: watch::channel(0).0,
            outbox,
            meeting_changed: Notify::new(),
            binding_requests: AtomicU64::new(0),
        };
        (node, rx)
    }

    /// Wakes every waiter: the state changed.
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Records the offer of a Locus join; sessions whose packets match its SSRCs adopt it.
    pub(crate) fn record_offer(&self, sdp: &str) -> Offer {
        let offer = Offer::parse(sdp, now_ms());
        let mut inner = lock(&self.inner);
        inner.offers_total += 1;
        if inner.offers.len() == MAX_OFFERS {
            inner.offers.pop_front();
        }
        inner.offers.push_back(offer.clone());
        drop(inner);
        tracing::info!(
            audio_ssrc = ?offer.audio_ssrc,
            video_ssrcs = ?offer.video_ssrcs,
            ext_id = offer.ext_id,
            "media offer recorded"
        );
        self.changed();
        offer
    }

    /// Builds the meeting with `participants` (the scenario's) unless it was built from that
    /// number already: admin changes last until the scenario names another number.
    pub(crate) fn sync_meeting(&self, participants: u8) {
        let mut inner = lock(&self.inner);
        if inner
            .meeting
            .as_ref()
            .is_some_and(|m| m.from_scenario == participants)
        {
            return;
        }
        let rebuilt = inner.meeting.is_some();
        inner.meeting = Some(Meeting::new(participants));
        drop(inner);
        if rebuilt {
            tracing::info!(participants, "media meeting rebuilt from the scenario");
            self.meeting_changed.notify_one();
            self.changed();
        }
    }

    /// Applies `change` to the meeting; on success the node loop re-assigns every session.
    fn change_meeting<T>(
        &self,
        change: impl FnOnce(&mut Meeting) -> Result<T, MeetingError>,
    ) -> Result<T, MeetingError> {
        let mut inner = lock(&self.inner);
        let meeting = inner.meeting_mut();
        let out = change(meeting)?;
        tracing::info!(participants = ?meeting.numbers(), active_speaker = meeting.active(), "media meeting changed");
        drop(inner);
        self.meeting_changed.notify_one();
        self.changed();
        Ok(out)
    }

    /// Makes participant `n` the active speaker; when (wall clock, ms).
    pub(crate) fn set_active_speaker(&self, n: u8) -> Result<u64, MeetingError> {
        self.change_meeting(|m| m.set_active(n))?;
        Ok(now_ms())
    }

    /// Adds a participant (the lowest unused number); its number.
    pub(crate) fn add_participant(&self) -> Result<u8, MeetingError> {
        self.change_meeting(Meeting::add)
    }

    /// Removes participant `n`; the active speaker afterwards.
    pub(crate) fn remove_participant(&self, n: u8) -> Result<u8, MeetingError> {
        self.change_meeting(|m| {
            m.remove(n)?;
            Ok(m.active())
        })
    }

    /// Stops (or resumes) acknowledging the device's SCRs.
    pub(crate) fn set_drop_acks(&self, drop_acks: bool) {
        lock(&self.inner).drop_acks = drop_acks;
        tracing::info!(drop_acks, "media node SCR acknowledgements");
        self.changed();
    }

    /// Sends `preset` to every live session whose offer names video SSRCs; the seqnos used.
    pub(crate) fn send_scr(&self, preset: Preset) -> anyhow::Result<Vec<u16>> {
        let mut inner = lock(&self.inner);
        let now = Instant::now();
        let mut seqnos = Vec::new();
        let mut live = 0;
        for s in inner.sessions.iter_mut().filter(|s| !s.ended) {
            live += 1;
            if let Some((seqno, datagram)) = s.send_scr(self.ssrc, preset, "admin", now) {
                seqnos.push(seqno);
                // The loop owns the socket; it sends this on its next turn.
                let _ = self.outbox.send(datagram);
            }
        }
        drop(inner);
        self.changed();
        if live == 0 {
            anyhow::bail!(
                "no live media session: no device has sent media yet, or every session has ended"
            );
        }
        if seqnos.is_empty() {
            anyhow::bail!("no live media session has an offer with video SSRCs to request");
        }
        Ok(seqnos)
    }

    /// The admin view (`GET /admin/media`).
    pub(crate) fn snapshot(&self) -> Value {
        let mut inner = lock(&self.inner);
        let meeting = inner.meeting_mut().clone();
        json!({
            "node": self.addr.to_string(),
            "nodeSsrc": self.ssrc,
            "dropAcks": inner.drop_acks,
            "offers": inner.offers_total,
            "bindingRequests": self.binding_requests.load(Ordering::Relaxed),
            "malformed": inner.malformed_unattributed,
            "participants": meeting.participants_json(),
            "activeSpeaker": meeting.active(),
            "sessions": inner.sessions.iter().map(|s| s.to_json(&meeting)).collect::<Vec<_>>(),
        })
    }

    /// Waits until `check` holds for the snapshot, re-checking on every change.
    pub(crate) async fn wait(
        &self,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value, Value> {
        let mut changes = self.subscribe();
        let until = async {
            loop {
                // Marked seen before the snapshot, so a change during the check wakes the next wait.
                changes.borrow_and_update();
                let snapshot = self.snapshot();
                if check(&snapshot) {
                    return snapshot;
                }
                if changes.changed().await.is_err() {
                    // The sender lives as long as `self`; never reached.
                    std::future::pending::<()>().await;
                }
            }
        };
        // On timeout the caller gets the state as it is now (at least as new as the last check).
        match tokio::time::timeout(within, until).await {
            Ok(v) => Ok(v),
            Err(_) => Err(self.snapshot()),
        }
    }
}

impl Inner {
    /// The meeting (the scenario's default until [`MediaNode::sync_meeting`] built it).
    pub(crate) fn meeting_mut(&mut self) -> &mut Meeting {
        self.meeting
            .get_or_insert_with(|| Meeting::new(super::MediaScenario::default().participants))
    }

    /// The session of `peer` (`ssrc` the packet's sender), made on its first packet; `None` once
    /// that session has ended: late packets of the call are only counted. A packet naming an SSRC
    /// of an offer newer than the ended session's starts a new session (the port of a closed call
    /// socket came round again for a new call).
    pub(crate) fn session_for(&mut self, peer: SocketAddr, ssrc: u32) -> Option<&mut Session> {
        let i = match self.sessions.iter().rposition(|s| s.peer == peer) {
            Some(i) if self.sessions[i].ended && self.newer_call(i, ssrc) => {
                self.start_session(peer)
            }
            Some(i) => i,
            None => self.start_session(peer),
        };
        let s = &mut self.sessions[i];
        if s.ended {
            s.after_end += 1;
            return None;
        }
        Some(s)
    }

    fn start_session(&mut self, peer: SocketAddr) -> usize {
        tracing::info!(%peer, "media session started (the node latches onto this address)");
        let id = self.sessions.len();
        self.sessions.push(Session::new(id, peer));
        id
    }

    /// Whether `ssrc` belongs to an offer recorded after session `i`'s and not to its own.
    fn newer_call(&self, i: usize, ssrc: u32) -> bool {
        let own = self.sessions[i].offer.as_ref();
        if own.is_some_and(|o| o.has(ssrc)) {
            return false;
        }
        let since = own.map_or(0, |o| o.at_ms);
        self.offers
            .iter()
            .any(|o| o.has(ssrc) && o.at_ms >= since && Some(o) != own)
    }

    /// Lets session `i` adopt the newest offer naming `ssrc` (or, until one does, the newest).
    pub(crate) fn adopt_offer(&mut self, i: usize, ssrc: u32) {
        let Inner {
            offers, sessions, ..
        } = self;
        let Some(s) = sessions.get_mut(i) else {
            return;
        };
        if s.offer_matched {
            return;
        }
        if let Some(o) = offers.iter().rev().find(|o| o.has(ssrc)) {
            s.offer = Some(o.clone());
            s.offer_matched = true;
        } else if s.offer.is_none() {
            s.offer = offers.back().cloned();
        }
    }

    /// The next instant a session timer (SCR resend, scripted SCR) is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.sessions
            .iter()
            .filter(|s| !s.ended)
            .flat_map(|s| {
                s.scrs_sent
                    .iter()
                    .filter_map(|x| x.next_resend)
                    .chain(s.script.map(|(at, _)| at))
            })
            .min()
    }
}

/// One received SSRC of a session.
#[derive(Debug)]
pub(crate) struct RxStream {
    pub ssrc: u32,
    pub payload_type: Option<u8>,
    pub kind: &'static str,
    pub csis: Vec<u32>,
    pub last_csi: Option<u32>,
    pub packets: u64,
    pub bytes: u64,
    pub payload_bytes: u64,
    pub packets_without_csi: u64,
    pub frames_decoded: u64,
    pub size: Option<(u32, u32)>,
    pub resolutions: BTreeMap<String, u64>,
    /// PTS (ns) of the frames decoded in the last second of stream time.
    recent_pts: VecDeque<u64>,
    pub fps: f64,
    pub sender_reports: u64,
    pub last_sr: Option<SenderReport>,
    pub decoder: Option<Decoder>,
    pub decoder_starts: u32,
    pub decode_errors: u64,
    /// No more decoder restarts (it failed too often or cannot be built).
    pub decode_disabled: Option<String>,
    /// The latest measurement of decoded audio.
    pub audio: Option<AudioLevels>,
}

impl RxStream {
    fn new(ssrc: u32, kind: &'static str) -> Self {
        Self {
            ssrc,
            payload_type: None,
            kind,
            csis: Vec::new(),
            last_csi: None,
            packets: 0,
            bytes: 0,
            payload_bytes: 0,
            packets_without_csi: 0,
            frames_decoded: 0,
            size: None,
            resolutions: BTreeMap::new(),
            recent_pts: VecDeque::new(),
            fps: 0.0,
            sender_reports: 0,
            last_sr: None,
            decoder: None,
            decoder_starts: 0,
            decode_errors: 0,
            decode_disabled: None,
            audio: None,
        }
    }

    /// Counts one RTP packet: `len` datagram bytes, `payload` bytes, the CSI element if present.
    pub(crate) fn count(&mut self, pt: u8, len: usize, payload: usize, csi: Option<u32>) {
        self.payload_type = Some(pt);
        if pt == VIDEO_PT {
            self.kind = "video";
        } else if pt == AUDIO_PT {
            self.kind = "audio";
        }
        self.packets += 1;
        self.bytes += len as u64;
        self.payload_bytes += payload as u64;
        match csi {
            Some(c) => {
                self.last_csi = Some(c);
                if !self.csis.contains(&c) && self.csis.len() < MAX_CSIS {
                    self.csis.push(c);
                }
            }
            None => self.packets_without_csi += 1,
        }
    }

    /// Counts one decoded frame. The rate is the frames whose PTS lies in the last second of
    /// stream time before this one, over the time they span: `(n - 1) / (newest - oldest)`.
    pub(crate) fn frame(&mut self, width: u32, height: u32, pts: Option<u64>) {
        self.frames_decoded += 1;
        self.size = Some((width, height));
        *self
            .resolutions
            .entry(format!("{width}x{height}"))
            .or_insert(0) += 1;
        let Some(pts) = pts else {
            return;
        };
        if self.recent_pts.back().is_some_and(|&last| pts < last) {
            // A restarted decoder's clock began again: measure afresh.
            self.recent_pts.clear();
        }
        self.recent_pts.push_back(pts);
        while self
            .recent_pts
            .front()
            .is_some_and(|&f| pts - f > FPS_WINDOW_NS)
        {
            self.recent_pts.pop_front();
        }
        let n = self.recent_pts.len();
        let span = pts - self.recent_pts.front().copied().unwrap_or(pts);
        if n >= 2 && span > 0 {
            let fps = (n - 1) as f64 * 1e9 / span as f64;
            self.fps = (fps * 10.0).round() / 10.0;
        }
    }

    /// The stream's JSON; `tones` are the frequencies whose audio level it shows.
    fn to_json(&self, tones: &[u32]) -> Value {
        let (width, height) = self
            .size
            .map_or((Value::Null, Value::Null), |(w, h)| (w.into(), h.into()));
        json!({
            "ssrc": self.ssrc,
            "pt": self.payload_type,
            "kind": self.kind,
            "csi": self.last_csi,
            "csis": self.csis,
            "packets": self.packets,
            "bytes": self.bytes,
            "payloadBytes": self.payload_bytes,
            "packetsWithoutCsi": self.packets_without_csi,
            "framesDecoded": self.frames_decoded,
            "width": width,
            "height": height,
            "fps": self.fps,
            "resolutions": self.resolutions,
            "decoding": self.decoder.is_some(),
            "decodeErrors": self.decode_errors,
            "decodeDisabled": self.decode_disabled,
            "senderReports": self.sender_reports,
            "lastSr": self.last_sr.map(|sr| json!({
                "packetCount": sr.packet_count,
                "octetCount": sr.octet_count,
                "rtpTimestamp": sr.rtp_timestamp,
            })),
            "audio": self.audio.as_ref().map(|a| audio_json(a, tones)),
        })
    }
}

fn audio_json(a: &AudioLevels, tones: &[u32]) -> Value {
    let levels: Map<String, Value> = tones
        .iter()
        .filter_map(|hz| {
            let (_, db) = a.tones.iter().find(|(f, _)| f == hz)?;
            Some((hz.to_string(), Value::from(*db)))
        })
        .collect();
    json!({
        "levelDbfs": a.level_dbfs,
        "dominantHz": a.dominant_hz,
        "tones": levels,
        "samples": a.samples,
    })
}

/// An SCA the device sent.
#[derive(Debug)]
pub(crate) struct ScaRecord {
    pub at_ms: u64,
    pub sca: Sca,
    pub kind: &'static str,
    /// Every stream's packet count when the SCA arrived.
    pub packets_at: BTreeMap<u32, u64>,
}

/// An SCR the node sent, and its acknowledgement and resends.
#[derive(Debug)]
pub(crate) struct SentScr {
    pub scr: Scr,
    pub preset: &'static str,
    /// `auto` (first video SCA), `admin` or `script`.
    pub origin: &'static str,
    pub at_ms: u64,
    pub acked_at_ms: Option<u64>,
    pub resends: u32,
    pub next_resend: Option<Instant>,
    wait: Duration,
    pub gave_up: bool,
    pub superseded: bool,
    bytes: Vec<u8>,
}

/// An SCR the device sent (its receive request).
#[derive(Debug)]
pub(crate) struct ReceivedScr {
    pub at_ms: u64,
    pub scr: Scr,
    /// How the node serves its requests (sizes, SSRCs, CSIs), fixed at the first arrival.
    pub plan: Vec<Planned>,
    /// How many times this seqno arrived (resends + 1).
    pub times: u32,
    pub acks_sent: u32,
    /// Whether the node started streams for it.
    pub served: bool,
}

/// Everything about one device (one peer address).
#[derive(Debug)]
pub(crate) struct Session {
    pub id: usize,
    pub peer: SocketAddr,
    pub started_ms: u64,
    pub ended: bool,
    pub ended_ms: Option<u64>,
    pub offer: Option<Offer>,
    /// The offer names one of this session's SSRCs (else it is only the newest offer).
    pub offer_matched: bool,
    pub streams: Vec<RxStream>,
    pub scas_received: Vec<ScaRecord>,
    pub scrs_sent: Vec<SentScr>,
    pub scrs_received: Vec<ReceivedScr>,
    pub streams_sent: Vec<TxStream>,
    pub encoders: Vec<Encoder>,
    pub byes: u64,
    pub sdes: u64,
    pub cnames: BTreeMap<u32, String>,
    pub receiver_reports: u64,
    pub rtcp_other: u64,
    pub malformed: u64,
    pub after_end: u64,
    /// Last seqnos the node used towards this device, per kind.
    pub scr_seqno: u16,
    pub sca_seqno: u16,
    pub saw_video_advertisement: bool,
    /// The next scripted SCR (`[media] scr_change_after_secs`).
    pub script: Option<(Instant, Preset)>,
    /// The device SCR whose requests the node serves.
    pub serving: Option<Serving>,
    /// The far-end audio slots, the current ones active.
    pub sent_audio: Vec<TxAudio>,
    pub audio_senders: Vec<AudioSender>,
    /// The session gets far-end audio (it adopted an offer, `[media] send_audio`).
    pub audio_due: bool,
}

/// The device SCR being served: every request's plan and what it asks to see.
#[derive(Debug, Clone)]
pub(crate) struct Serving {
    pub seqno: u16,
    pub plan: Vec<Planned>,
    pub wanted: Vec<Wanted>,
}

impl Serving {
    pub(crate) fn new(seqno: u16, scr: &Scr, plan: Vec<Planned>) -> Self {
        let wanted = wanted(&scr.requests, &plan);
        Self {
            seqno,
            plan,
            wanted,
        }
    }
}

/// What each request asks to see (a request the node cannot serve asks for nothing).
pub(crate) fn wanted(requests: &[ScrRequest], plan: &[Planned]) -> Vec<Wanted> {
    requests
        .iter()
        .zip(plan)
        .map(|(r, p)| Wanted::of(r.policy, r.csi, p.size.is_some()))
        .collect()
}

fn push_bounded<T>(list: &mut Vec<T>, item: T) {
    if list.len() == MAX_RECORDS {
        list.remove(0);
    }
    list.push(item);
}

impl Session {
    fn new(id: usize, peer: SocketAddr) -> Self {
        Self {
            id,
            peer,
            started_ms: now_ms(),
            ended: false,
            ended_ms: None,
            offer: None,
            offer_matched: false,
            streams: Vec::new(),
            scas_received: Vec::new(),
            scrs_sent: Vec::new(),
            scrs_received: Vec::new(),
            streams_sent: Vec::new(),
            encoders: Vec::new(),
            byes: 0,
            sdes: 0,
            cnames: BTreeMap::new(),
            receiver_reports: 0,
            rtcp_other: 0,
            malformed: 0,
            after_end: 0,
            scr_seqno: 0,
            sca_seqno: 0,
            saw_video_advertisement: false,
            script: None,
            serving: None,
            sent_audio: Vec::new(),
            audio_senders: Vec::new(),
            audio_due: false,
        }
    }

    /// The CSI extension id: the offer's, else the contract's default.
    pub(crate) fn ext_id(&self) -> u8 {
        self.offer
            .as_ref()
            .map_or(super::sdp::DEFAULT_CSI_EXT_ID, |o| o.ext_id)
    }

    /// `audio` or `video` for an SSRC of the offer; else from the payload type it sent; else
    /// `unknown`.
    pub(crate) fn kind_of(&self, ssrc: u32) -> &'static str {
        if let Some(o) = &self.offer {
            if o.video_ssrcs.contains(&ssrc) {
                return "video";
            }
            if o.audio_ssrc == Some(ssrc) {
                return "audio";
            }
        }
        match self.streams.iter().find(|s| s.ssrc == ssrc) {
            Some(s) if s.kind != "unknown" => s.kind,
            _ => "unknown",
        }
    }

    pub(crate) fn stream_mut(&mut self, ssrc: u32) -> &mut RxStream {
        let i = match self.streams.iter().position(|s| s.ssrc == ssrc) {
            Some(i) => i,
            None => {
                let kind = self.kind_of(ssrc);
                self.streams.push(RxStream::new(ssrc, kind));
                self.streams.len() - 1
            }
        };
        &mut self.streams[i]
    }

    pub(crate) fn record_scr(&mut self, scr: ReceivedScr) {
        push_bounded(&mut self.scrs_received, scr);
    }

    pub(crate) fn record_sca(&mut self, sca: Sca, kind: &'static str) {
        let packets_at = self.streams.iter().map(|s| (s.ssrc, s.packets)).collect();
        push_bounded(
            &mut self.scas_received,
            ScaRecord {
                at_ms: now_ms(),
                sca,
                kind,
                packets_at,
            },
        );
    }

    /// Marks the node's SCR `seqno` acknowledged (stops its resends). False when no unacked SCR
    /// has that seqno.
    pub(crate) fn ack_sent_scr(&mut self, seqno: u16) -> bool {
        let Some(s) = self
            .scrs_sent
            .iter_mut()
            .rev()
            .find(|s| s.scr.seqno == seqno && s.acked_at_ms.is_none())
        else {
            return false;
        };
        s.acked_at_ms = Some(now_ms());
        s.next_resend = None;
        true
    }

    /// Builds, records and logs the node's SCR `preset` (superseding any pending one); the
    /// datagram to send. `None` when the offer names no video SSRC.
    pub(crate) fn send_scr(
        &mut self,
        node_ssrc: u32,
        preset: Preset,
        origin: &'static str,
        now: Instant,
    ) -> Option<(u16, Datagram)> {
        let srcids = self
            .offer
            .as_ref()
            .map(|o| o.video_ssrcs.clone())
            .unwrap_or_default();
        if srcids.is_empty() {
            tracing::warn!(peer = %self.peer, preset = preset.as_str(), "no SCR sent: the session has no offer with video SSRCs");
            return None;
        }
        for pending in self
            .scrs_sent
            .iter_mut()
            .filter(|s| s.next_resend.is_some())
        {
            pending.next_resend = None;
            pending.superseded = true;
        }
        self.scr_seqno = next_seqno(self.scr_seqno);
        let scr = Scr {
            sender_ssrc: node_ssrc,
            seqno: self.scr_seqno,
            media_ssrc: 0,
            requests: preset.requests(&srcids),
        };
        scr::log_scr("Send", self.peer, &scr);
        let bytes = scr.encode();
        let seqno = scr.seqno;
        push_bounded(
            &mut self.scrs_sent,
            SentScr {
                scr,
                preset: preset.as_str(),
                origin,
                at_ms: now_ms(),
                acked_at_ms: None,
                resends: 0,
                next_resend: Some(now + FIRST_RESEND),
                wait: FIRST_RESEND,
                gave_up: false,
                superseded: false,
                bytes: bytes.clone(),
            },
        );
        Some((seqno, (bytes, self.peer)))
    }

    /// Resends due SCRs and sends a due scripted SCR; the datagrams.
    pub(crate) fn on_timers(
        &mut self,
        node_ssrc: u32,
        now: Instant,
        change_after: Duration,
    ) -> Vec<Datagram> {
        let mut out = Vec::new();
        let peer = self.peer;
        for s in &mut self.scrs_sent {
            if s.next_resend.is_none_or(|at| at > now) {
                continue;
            }
            if s.resends == MAX_RESENDS {
                s.next_resend = None;
                s.gave_up = true;
                tracing::warn!(%peer, "main_video resend: SCR not acknowledged (v1) seqno={} resend count={}, giving up", s.scr.seqno, s.resends);
                continue;
            }
            s.resends += 1;
            s.wait *= 2;
            s.next_resend = Some(now + s.wait);
            tracing::info!(%peer, "main_video resend: SCR (v1) seqno={} resend count={}", s.scr.seqno, s.resends);
            out.push((s.bytes.clone(), peer));
        }
        if let Some((at, preset)) = self.script {
            if at <= now {
                self.script = match preset {
                    Preset::Two if !change_after.is_zero() => {
                        Some((now + change_after, Preset::Three))
                    }
                    _ => None,
                };
                if let Some((_, d)) = self.send_scr(node_ssrc, preset, "script", now) {
                    out.push(d);
                }
            }
        }
        out
    }

    /// Marks the session due far-end audio once it has an offer (with `send_audio`); its id the
    /// first time, so the caller starts the slots.
    pub(crate) fn audio_newly_due(&mut self, send_audio: bool) -> Option<usize> {
        if self.audio_due || !send_audio || self.offer.is_none() || self.ended {
            return None;
        }
        self.audio_due = true;
        Some(self.id)
    }

    /// Serves SCR `seqno` from now on: every earlier stream stops (their encoders to tear down);
    /// [`reconcile`](Self::reconcile) then says what to start.
    pub(crate) fn serve(&mut self, serving: Serving) -> Teardown {
        for old in &mut self.streams_sent {
            old.active = false;
        }
        self.serving = Some(serving);
        Teardown {
            encoders: std::mem::take(&mut self.encoders),
            ..Teardown::default()
        }
    }

    /// Brings the streams in line with `meeting`: a request or audio slot whose participant
    /// changed shows the new one (same SSRC, new CSI; its pipeline follows in place), one left
    /// without a participant stops, one that gained one needs a pipeline. Returns the pipelines
    /// to stop and those to start ([`attach_video`](Self::attach_video) and
    /// [`attach_audio`](Self::attach_audio) take them once started).
    pub(crate) fn reconcile(&mut self, meeting: &Meeting, node_ssrc: u32) -> (Teardown, ToStart) {
        let mut stop = Teardown::default();
        let mut start = ToStart::default();
        if self.ended {
            return (stop, start);
        }
        if let Some(serving) = &self.serving {
            let assigned = meeting.assign(&serving.wanted);
            for (p, who) in serving.plan.iter().zip(assigned) {
                let current = self.streams_sent.iter_mut().find(|t| {
                    t.active && t.scr_seqno == serving.seqno && t.request_index == p.index
                });
                match (current, who) {
                    (Some(t), Some(n)) if t.participant != n => {
                        tracing::info!(peer = %self.peer, srcid = t.ssrc, index = p.index, from = t.participant, to = n, "video re-assigned");
                        t.show(n);
                        if let Some(e) = self.encoders.iter().find(|e| Some(e.id) == t.encoder) {
                            e.show(n);
                        }
                    }
                    (Some(t), None) => {
                        tracing::info!(peer = %self.peer, srcid = t.ssrc, index = p.index, "video request left without a participant; its stream stops");
                        t.active = false;
                        if let Some(i) = self.encoders.iter().position(|e| Some(e.id) == t.encoder)
                        {
                            stop.encoders.push(self.encoders.remove(i));
                        }
                    }
                    (None, Some(n)) => {
                        if let (Some(t), Some(key)) = (TxStream::new(p, serving.seqno, n), p.key())
                        {
                            push_bounded(&mut self.streams_sent, t);
                            start.video.push((p.index, key, n));
                        }
                    }
                    _ => {}
                }
            }
        }
        if self.audio_due {
            let slots = meeting.audio_slots();
            for slot in 0..AUDIO_SLOTS {
                let current = self
                    .sent_audio
                    .iter_mut()
                    .find(|a| a.active && a.slot == slot);
                match (current, slots.get(slot).copied()) {
                    (Some(a), Some(n)) if a.participant != n => {
                        a.carry(n);
                        if let Some(sender) =
                            self.audio_senders.iter().find(|x| Some(x.id) == a.sender)
                        {
                            sender.play(slot, n);
                        }
                    }
                    (Some(a), None) => {
                        a.active = false;
                        if let Some(i) = self
                            .audio_senders
                            .iter()
                            .position(|x| Some(x.id) == a.sender)
                        {
                            stop.audio.push(self.audio_senders.remove(i));
                        }
                    }
                    (None, Some(n)) => {
                        push_bounded(&mut self.sent_audio, TxAudio::new(node_ssrc, slot, n));
                        start.audio.push((slot, n));
                    }
                    _ => {}
                }
            }
        }
        (stop, start)
    }

    /// Takes the encoder started for request `index`, or gives it back when that request no
    /// longer waits for one (the session ended or was re-served meanwhile).
    pub(crate) fn attach_video(
        &mut self,
        index: usize,
        started: anyhow::Result<Encoder>,
    ) -> Option<Encoder> {
        let seqno = self.serving.as_ref().map(|s| s.seqno);
        let waiting = self.streams_sent.iter_mut().find(|t| {
            t.active
                && Some(t.scr_seqno) == seqno
                && t.request_index == index
                && t.encoder.is_none()
        });
        match (waiting, started) {
            (Some(t), Ok(e)) if !self.ended => {
                tracing::info!(peer = %self.peer, srcid = t.ssrc, participant = t.participant, width = e.key.width, height = e.key.height, fps = e.key.fps, kbps = e.key.kbps, "sending a stream");
                t.encoder = Some(e.id);
                self.encoders.push(e);
                None
            }
            (Some(t), Err(e)) => {
                tracing::warn!(width = t.width, height = t.height, error = %format!("{e:#}"), "cannot start an encoder");
                t.error = Some(format!("{e:#}"));
                None
            }
            (_, started) => started.ok(),
        }
    }

    /// Takes the sender started for audio `slot`, or gives it back when not needed any more.
    pub(crate) fn attach_audio(
        &mut self,
        slot: usize,
        started: anyhow::Result<AudioSender>,
    ) -> Option<AudioSender> {
        let waiting = self
            .sent_audio
            .iter_mut()
            .find(|a| a.active && a.slot == slot && a.sender.is_none());
        match (waiting, started) {
            (Some(a), Ok(sender)) if !self.ended => {
                tracing::info!(peer = %self.peer, ssrc = a.ssrc, slot, participant = a.participant, "sending far-end audio");
                a.sender = Some(sender.id);
                self.audio_senders.push(sender);
                None
            }
            (Some(a), Err(e)) => {
                tracing::warn!(slot, error = %format!("{e:#}"), "cannot start an audio sender");
                a.error = Some(format!("{e:#}"));
                None
            }
            (_, started) => started.ok(),
        }
    }

    /// Ends the session (BYE): no more resends or scripted SCRs, streams stop; the pipelines to
    /// tear down.
    pub(crate) fn end(&mut self) -> Teardown {
        if !self.ended {
            self.ended = true;
            self.ended_ms = Some(now_ms());
            tracing::info!(peer = %self.peer, "media session ended");
        }
        for s in &mut self.scrs_sent {
            s.next_resend = None;
        }
        self.script = None;
        for s in &mut self.streams_sent {
            s.active = false;
        }
        for a in &mut self.sent_audio {
            a.active = false;
        }
        self.take_pipelines()
    }

    /// Every pipeline of the session, to tear down.
    pub(crate) fn take_pipelines(&mut self) -> Teardown {
        Teardown {
            decoders: self
                .streams
                .iter_mut()
                .filter_map(|s| s.decoder.take())
                .collect(),
            encoders: std::mem::take(&mut self.encoders),
            audio: std::mem::take(&mut self.audio_senders),
        }
    }

    fn to_json(&self, meeting: &Meeting) -> Value {
        let tones: Vec<u32> = meeting
            .numbers()
            .iter()
            .map(|&n| tone_hz(n))
            .chain(REFERENCE_TONES)
            .collect();
        json!({
            "peer": self.peer.to_string(),
            "startedAtMs": self.started_ms,
            "ended": self.ended,
            "endedAtMs": self.ended_ms,
            "offer": self.offer.as_ref().map(Offer::to_json),
            "offerMatched": self.offer_matched,
            "streams": self.streams.iter().map(|s| s.to_json(&tones)).collect::<Vec<_>>(),
            "scasReceived": self.scas_received.iter().map(sca_json).collect::<Vec<_>>(),
            "scrsSent": self.scrs_sent.iter().map(sent_scr_json).collect::<Vec<_>>(),
            "scrsReceived": self.scrs_received.iter().map(received_scr_json).collect::<Vec<_>>(),
            "streamsSent": self.streams_sent.iter().map(TxStream::to_json).collect::<Vec<_>>(),
            "sentVideo": self.streams_sent.iter().filter(|t| t.active).map(TxStream::sent_json).collect::<Vec<_>>(),
            "sentAudio": self.sent_audio.iter().filter(|a| a.active).map(TxAudio::to_json).collect::<Vec<_>>(),
            "byes": self.byes,
            "sdes": self.sdes,
            "cnames": self.cnames.iter().map(|(k, v)| (k.to_string(), Value::from(v.clone()))).collect::<Map<_, _>>(),
            "receiverReports": self.receiver_reports,
            "rtcpOther": self.rtcp_other,
            "malformed": self.malformed,
            "packetsAfterEnd": self.after_end,
            "pipelines": {
                "decoders": self.streams.iter().filter(|s| s.decoder.is_some()).count(),
                "encoders": self.encoders.len(),
                "audioSenders": self.audio_senders.len(),
            },
        })
    }
}

fn sca_json(r: &ScaRecord) -> Value {
    let s = &r.sca;
    json!({
        "atMs": r.at_ms,
        "seqno": s.seqno,
        "ackSeqno": s.ack_seqno,
        "senderSsrc": s.sender_ssrc,
        "kind": r.kind,
        "total": s.total,
        "live": s.live,
        "entries": s.entries.iter().map(|e| json!({"srcid": e.srcid, "index": e.index, "state": e.state})).collect::<Vec<_>>(),
        "packetsAtSca": r.packets_at.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<Map<_, _>>(),
    })
}

fn sent_scr_json(s: &SentScr) -> Value {
    json!({
        "seqno": s.scr.seqno,
        "preset": s.preset,
        "origin": s.origin,
        "atMs": s.at_ms,
        "senderSsrc": s.scr.sender_ssrc,
        "requests": s.scr.requests.iter().map(|r| json!({
            "srcid": r.srcid,
            "maxFs": r.max_fs,
            "maxWidth": r.max_width,
            "maxHeight": r.max_height,
            "maxCfps": r.max_cfps,
            "maxMbps": r.max_mbps,
            "bitrate": r.bitrate,
        })).collect::<Vec<_>>(),
        "acked": s.acked_at_ms.is_some(),
        "ackedAtMs": s.acked_at_ms,
        "resends": s.resends,
        "gaveUp": s.gave_up,
        "superseded": s.superseded,
    })
}

fn request_json(r: &ScrRequest) -> Value {
    json!({
        "csi": r.csi,
        "srcid": r.srcid,
        "policy": r.policy,
        "priority": r.priority,
        "adjid": r.adjid,
        "dup": r.dup,
        "payloadType": r.payload_type,
        "maxFs": r.max_fs,
        "maxWidth": r.max_width,
        "maxHeight": r.max_height,
        "maxCfps": r.max_cfps,
        "maxMbps": r.max_mbps,
        "bitrate": r.bitrate,
    })
}

fn received_scr_json(s: &ReceivedScr) -> Value {
    json!({
        "seqno": s.scr.seqno,
        "atMs": s.at_ms,
        "senderSsrc": s.scr.sender_ssrc,
        "times": s.times,
        "acked": s.acks_sent > 0,
        "acksSent": s.acks_sent,
        "served": s.served,
        "requests": s.scr.requests.iter().map(request_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_with_offer() -> Session {
        let mut s = Session::new(0, "127.0.0.1:5000".parse().expect("addr"));
        s.offer = Some(Offer::parse(
            "m=video 9 RTP/AVPF 126\r\na=ssrc:21 cname:roomd\r\na=ssrc:22 cname:roomd\r\n",
            0,
        ));
        s
    }

    #[test]
    fn resends_double_then_give_up() {
        let mut s = session_with_offer();
        let t0 = Instant::now();
        let (seqno, (bytes, _)) = s.send_scr(7, Preset::Three, "auto", t0).expect("sent");
        assert_eq!(seqno, 1);
        assert_eq!(
            s.scrs_sent[0].scr.requests.len(),
            2,
            "two video SSRCs in the offer"
        );
        let mut at = t0;
        let mut wait = FIRST_RESEND;
        for n in 1..=MAX_RESENDS {
            at += wait;
            assert!(
                s.on_timers(7, at - Duration::from_millis(1), Duration::ZERO)
                    .is_empty(),
                "not yet due"
            );
            let out = s.on_timers(7, at, Duration::ZERO);
            assert_eq!(
                out,
                vec![(bytes.clone(), s.peer)],
                "resend {n} is the same packet"
            );
            assert_eq!(s.scrs_sent[0].resends, n);
            wait *= 2;
        }
        at += wait;
        assert!(s.on_timers(7, at, Duration::ZERO).is_empty());
        assert!(s.scrs_sent[0].gave_up);
        assert_eq!(s.scrs_sent[0].next_resend, None);
    }

    #[test]
    fn an_ack_or_a_newer_scr_stops_resends() {
        let mut s = session_with_offer();
        let t0 = Instant::now();
        s.send_scr(7, Preset::Three, "auto", t0).expect("sent");
        s.send_scr(7, Preset::Two, "admin", t0).expect("sent");
        assert!(s.scrs_sent[0].superseded && s.scrs_sent[0].next_resend.is_none());
        assert_eq!(s.scrs_sent[1].scr.seqno, 2);
        assert!(!s.ack_sent_scr(9));
        assert!(s.ack_sent_scr(2));
        assert!(!s.ack_sent_scr(2), "already acked");
        assert!(
            s.on_timers(7, t0 + Duration::from_secs(10), Duration::ZERO)
                .is_empty()
        );
        let mut empty = Session::new(1, s.peer);
        assert!(
            empty.send_scr(7, Preset::Three, "auto", t0).is_none(),
            "no offer"
        );
    }

    #[test]
    fn script_sends_two_then_three() {
        let mut s = session_with_offer();
        let t0 = Instant::now();
        let step = Duration::from_secs(2);
        s.script = Some((t0 + step, Preset::Two));
        let out = s.on_timers(7, t0 + step, step);
        assert_eq!(out.len(), 1);
        assert_eq!(s.scrs_sent[0].preset, "two");
        assert_eq!(s.script.map(|(_, p)| p), Some(Preset::Three));
        s.ack_sent_scr(1);
        let out = s.on_timers(7, t0 + step * 2, step);
        assert_eq!(out.len(), 1);
        assert_eq!(s.scrs_sent[1].preset, "three");
        assert_eq!(s.script, None);
    }

    #[test]
    fn an_ended_session_absorbs_its_call_but_not_a_new_one() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let mut inner = Inner::default();
        let first = Offer::parse("m=video 9 RTP/AVPF 126\r\na=ssrc:21 cname:roomd\r\n", 1);
        inner.offers.push_back(first.clone());
        let s = inner.session_for(peer, 21).expect("new session");
        s.offer = Some(first);
        drop(s.end());
        assert!(
            inner.session_for(peer, 21).is_none(),
            "a late packet of the call"
        );
        assert!(inner.session_for(peer, 99).is_none(), "an SSRC of no offer");
        assert_eq!(inner.sessions[0].after_end, 2);
        inner.offers.push_back(Offer::parse(
            "m=video 9 RTP/AVPF 126\r\na=ssrc:31 cname:roomd\r\n",
            2,
        ));
        let s = inner
            .session_for(peer, 31)
            .expect("a new call on the same port");
        assert_eq!(s.id, 1);
        assert_eq!(inner.sessions.len(), 2);
        assert!(
            inner.session_for(peer, 31).is_some(),
            "the new session serves it"
        );
    }

    #[test]
    fn frame_rate_over_the_last_second_of_stream_time() {
        let mut r = RxStream::new(1, "video");
        for i in 0..30_u64 {
            r.frame(640, 360, Some(i * 66_666_667));
        }
        assert_eq!(r.fps, 15.0);
        assert_eq!(r.frames_decoded, 30);
        assert_eq!(r.resolutions.get("640x360"), Some(&30));
        r.frame(320, 180, Some(0));
        assert_eq!(r.size, Some((320, 180)));
        assert_eq!(
            r.fps, 15.0,
            "a restarted clock keeps the last rate until it can measure"
        );
    }

    #[test]
    fn counting_and_kinds() {
        let mut s = session_with_offer();
        s.stream_mut(21).count(126, 100, 80, Some(5));
        s.stream_mut(21).count(126, 100, 80, None);
        s.stream_mut(40).count(111, 50, 30, Some(6));
        assert_eq!(s.kind_of(21), "video");
        assert_eq!(s.kind_of(40), "audio", "from its payload type");
        assert_eq!(s.kind_of(99), "unknown");
        let v = &s.streams[0];
        assert_eq!(
            (v.packets, v.bytes, v.payload_bytes, v.packets_without_csi),
            (2, 200, 160, 1)
        );
        assert_eq!(v.csis, vec![5]);
        s.record_sca(
            Sca {
                sender_ssrc: 21,
                seqno: 1,
                media_ssrc: 0,
                ack_seqno: 0,
                total: 1,
                live: 1,
                entries: vec![],
            },
            "video",
        );
        let j = s.to_json(&Meeting::new(3));
        assert_eq!(
            j["scasReceived"][0]["packetsAtSca"],
            json!({"21": 2, "40": 1})
        );
        assert_eq!(j["streams"][0]["csi"], json!(5));
        assert_eq!(j["streams"][1]["kind"], "audio");
    }
}
