//! Sending the video a device's SCR asks for: choosing each request's size, and one GStreamer
//! encoder per served request showing the participant assigned to it
//! (`videotestsrc pattern=solid-color ! x264enc ! rtph264pay ! appsink`, constrained baseline as
//! the answer's `profile-level-id=42e01f`). A pad probe after the source draws the participant's
//! number and the timecode strip into every frame ([`super::picture`]) and switches participants
//! at a frame boundary: it drops the one frame already painted in the old colour, sets the new
//! colour and asks the encoder for an IDR with SPS/PPS for the next frame. Every frame's
//! participant is remembered by PTS, so each packet goes out with the CSI of the participant its
//! frame shows, under the request's SSRC with its own sequence numbers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::PipelineEvent;
use super::gst_util::{Pipeline, forward_encoded};
use super::participants::{colour, video_csi};
use super::picture::{I420, draw_number, draw_timecode};
use super::sdp::VIDEO_PT;
use super::wire::{Rtp, ScrRequest, rtp_with_csi};
use crate::clock::now_ms;

/// The payloader's MTU: with the 12-byte CSI extension block a datagram stays within the
/// contract's 1200 bytes.
pub(crate) const PAYLOAD_MTU: u32 = 1180;
/// Bitrate when a request names none (kbit/s).
const DEFAULT_KBPS: u32 = 500;
/// x264enc's useful range (kbit/s).
const MIN_KBPS: u32 = 16;
const MAX_KBPS: u32 = 20_000;
/// Frame participants remembered for packets still in the encoder.
const MAX_FRAME_TAGS: usize = 64;

/// 16×16 macroblocks of a `width`×`height` frame.
pub(crate) fn macroblocks(width: u32, height: u32) -> u32 {
    width.div_ceil(16) * height.div_ceil(16)
}

/// The largest 16:9 size `16k`×`9k` (k even, so both are even) whose macroblocks fit `max_fs` and
/// that fits `max_width`×`max_height`; `None` when not even 32×18 fits.
pub(crate) fn size_for(max_fs: u32, max_width: u16, max_height: u16) -> Option<(u32, u32)> {
    let mut best = None;
    let mut k = 2_u32;
    loop {
        let (w, h) = (16 * k, 9 * k);
        if w > u32::from(max_width) || h > u32::from(max_height) || macroblocks(w, h) > max_fs {
            return best;
        }
        best = Some((w, h));
        k += 2;
    }
}

/// How the node serves one request of a device's SCR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub index: usize,
    pub srcid: u32,
    /// `None`: the request cannot be served (its SCA entry says disabled).
    pub size: Option<(u32, u32)>,
    pub fps: u32,
    pub kbps: u32,
}

impl Planned {
    /// What its encoder makes; `None` when it cannot be served.
    pub(crate) fn key(&self) -> Option<EncoderKey> {
        let (width, height) = self.size?;
        Some(EncoderKey {
            width,
            height,
            fps: self.fps,
            kbps: self.kbps,
        })
    }
}

/// Plans every request: size within `min(max_fs, send_max_fs)` and the request's bounds, frame
/// rate `send_fps` capped by `max_cfps` and `max_mbps`, bitrate from the request. A request for
/// another payload type than H.264 pt 126 cannot be served.
pub(crate) fn plan(requests: &[ScrRequest], send_max_fs: u32, send_fps: u32) -> Vec<Planned> {
    requests
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let size = (r.payload_type == VIDEO_PT)
                .then(|| size_for(r.max_fs.min(send_max_fs), r.max_width, r.max_height))
                .flatten();
            let mut fps = send_fps.max(1);
            if r.max_cfps > 0 {
                fps = fps.min((u32::from(r.max_cfps) / 100).max(1));
            }
            if let (Some((w, h)), true) = (size, r.max_mbps > 0) {
                fps = fps.min((r.max_mbps / macroblocks(w, h)).max(1));
            }
            let kbps = if r.bitrate == 0 {
                DEFAULT_KBPS
            } else {
                (r.bitrate / 1000).clamp(MIN_KBPS, MAX_KBPS)
            };
            Planned {
                index,
                // A request without an SSRC still needs one to be sent on.
                srcid: if r.srcid == 0 {
                    rand::random::<u32>() | 1
                } else {
                    r.srcid
                },
                size,
                fps,
                kbps,
            }
        })
        .collect()
}

/// What one encoder produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EncoderKey {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub kbps: u32,
}

/// `foreground-color` of `videotestsrc` (big-endian ARGB, opaque) for participant `n`.
fn argb(n: u8) -> u32 {
    let [r, g, b] = colour(n);
    0xFF00_0000 | (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b)
}

/// The upstream GstForceKeyUnit event: the encoder's next frame is an IDR with SPS/PPS.
fn force_key_unit() -> gst::Event {
    let s = gst::Structure::builder("GstForceKeyUnit")
        .field("all-headers", true)
        .field("count", 0_u32)
        .build();
    gst::event::CustomUpstream::new(s)
}

/// Which participant the frames from a PTS on show, so a packet gets its frame's CSI.
#[derive(Debug)]
struct FrameTags(VecDeque<(u64, u8)>);

impl FrameTags {
    fn new(participant: u8) -> Self {
        Self(VecDeque::from([(0, participant)]))
    }

    fn switch(&mut self, pts: u64, participant: u8) {
        if self.0.len() == MAX_FRAME_TAGS {
            self.0.pop_front();
        }
        self.0.push_back((pts, participant));
    }

    /// The participant of the frame at `pts` (the latest switch at or before it); older switches
    /// are forgotten, packets come in PTS order.
    fn at(&mut self, pts: Option<u64>) -> u8 {
        if let Some(pts) = pts {
            while self.0.len() > 1 && self.0[1].0 <= pts {
                self.0.pop_front();
            }
        }
        self.0.front().map_or(1, |t| t.1)
    }
}

/// What the source's pad probe keeps between frames.
#[derive(Debug)]
struct ProbeState {
    /// The participant whose colour `videotestsrc` paints.
    painted: u8,
    /// The next frame starts the new participant's stream.
    switch_pending: bool,
}

/// A running encoder for one request. Dropping it sets the pipeline to Null.
#[derive(Debug)]
pub(crate) struct Encoder {
    pub id: u64,
    pub key: EncoderKey,
    /// The participant to show; the pad probe follows it at the next frame.
    participant: Arc<AtomicU8>,
    _pipeline: Pipeline,
}

impl Encoder {
    /// Builds and starts the encoder showing `participant`; its packets are reported as
    /// [`PipelineEvent::Encoded`] with the participant of their frame.
    pub(crate) fn start(
        id: u64,
        session: usize,
        key: EncoderKey,
        participant: u8,
        events: &UnboundedSender<PipelineEvent>,
    ) -> anyhow::Result<Self> {
        let EncoderKey {
            width,
            height,
            fps,
            kbps,
        } = key;
        let description = format!(
            "videotestsrc name=src is-live=true pattern=solid-color foreground-color={} ! \
             video/x-raw,format=I420,width={width},height={height},framerate={fps}/1 ! \
             x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate={kbps} threads=1 ! \
             video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 mtu={PAYLOAD_MTU} pt={VIDEO_PT} ! appsink name=sink sync=false",
            argb(participant)
        );
        let what = format!("the {width}x{height} encoder");
        let pipeline =
            Pipeline::launch(&description).with_context(|| format!("building {what}"))?;
        let src = pipeline.by_name::<gst::Element>("src")?;
        let enc = pipeline.by_name::<gst::Element>("enc")?;
        let src_pad = src
            .static_pad("src")
            .context("videotestsrc has no src pad")?;
        let enc_pad = enc.static_pad("src").context("x264enc has no src pad")?;
        let wanted = Arc::new(AtomicU8::new(participant));
        let tags = Arc::new(Mutex::new(FrameTags::new(participant)));
        let layout = I420::new(width as usize, height as usize);
        let state = Mutex::new(ProbeState {
            painted: participant,
            switch_pending: false,
        });
        // Weak: the probe lives on the source's pad, a strong reference would keep the elements alive.
        let (src_ref, enc_ref): (glib::WeakRef<gst::Element>, glib::WeakRef<gst::Pad>) =
            (src.downgrade(), enc_pad.downgrade());
        let (probe_wanted, probe_tags) = (Arc::clone(&wanted), Arc::clone(&tags));
        src_pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Ok(mut st) = state.lock() else {
                return gst::PadProbeReturn::Ok;
            };
            let want = probe_wanted.load(Ordering::Relaxed);
            if want != st.painted {
                // This frame is already painted in the old colour: drop it, paint the next one new.
                if let Some(src) = src_ref.upgrade() {
                    src.set_property("foreground-color", argb(want));
                }
                st.painted = want;
                st.switch_pending = true;
                return gst::PadProbeReturn::Drop;
            }
            let Some(buffer) = info.buffer_mut() else {
                return gst::PadProbeReturn::Ok;
            };
            if std::mem::take(&mut st.switch_pending) {
                if let Some(pad) = enc_ref.upgrade() {
                    pad.send_event(force_key_unit());
                }
                let pts = buffer.pts().map_or(0, gst::ClockTime::nseconds);
                if let Ok(mut t) = probe_tags.lock() {
                    t.switch(pts, want);
                }
            }
            let frame = buffer.make_mut();
            if let Ok(mut map) = frame.map_writable() {
                draw_number(&layout, map.as_mut_slice(), u32::from(want));
                // The wall clock in ms mod 2^32, as the contract's strip holds it.
                draw_timecode(&layout, map.as_mut_slice(), now_ms() as u32);
            }
            gst::PadProbeReturn::Ok
        });
        let sink = pipeline.by_name::<gst_app::AppSink>("sink")?;
        forward_encoded(
            &pipeline,
            &sink,
            events,
            (session, id),
            Box::new(move |pts| {
                let mut tags = tags.lock().map_err(|_| gst::FlowError::Error)?;
                Ok(Some(tags.at(pts)))
            }),
        );
        pipeline
            .play()
            .with_context(|| format!("starting {what}"))?;
        Ok(Self {
            id,
            key,
            participant: wanted,
            _pipeline: pipeline,
        })
    }

    /// Shows `participant` from the next frame on (an IDR); no restart.
    pub(crate) fn show(&self, participant: u8) {
        self.participant.store(participant, Ordering::Relaxed);
    }
}

/// One stream the node sends (or sent) to a session for one request of a device SCR, while a
/// participant is assigned to it.
#[derive(Debug, Clone)]
pub(crate) struct TxStream {
    pub ssrc: u32,
    /// The assigned participant's video CSI (packets carry their frame's, which follows).
    pub csi: u32,
    pub participant: u8,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub request_index: usize,
    pub scr_seqno: u16,
    /// The encoder feeding it; `None` while starting or when the encoder failed.
    pub encoder: Option<u64>,
    pub packets: u64,
    pub bytes: u64,
    /// False once a newer SCR replaced it, the request lost its participant or the session ended.
    pub active: bool,
    pub error: Option<String>,
    next_sequence: u16,
}

impl TxStream {
    /// The stream of request `p` showing `participant`; `None` when `p` cannot be served.
    pub(crate) fn new(p: &Planned, scr_seqno: u16, participant: u8) -> Option<Self> {
        let (width, height) = p.size?;
        Some(Self {
            ssrc: p.srcid,
            csi: video_csi(participant),
            participant,
            width,
            height,
            fps: p.fps,
            request_index: p.index,
            scr_seqno,
            encoder: None,
            packets: 0,
            bytes: 0,
            active: true,
            error: None,
            next_sequence: rand::random(),
        })
    }

    /// Assigns another participant.
    pub(crate) fn show(&mut self, participant: u8) {
        self.participant = participant;
        self.csi = video_csi(participant);
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "ssrc": self.ssrc,
            "csi": self.csi,
            "participant": self.participant,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "requestIndex": self.request_index,
            "scrSeqno": self.scr_seqno,
            "packets": self.packets,
            "bytes": self.bytes,
            "active": self.active,
            "error": self.error,
        })
    }

    /// An entry of a session's `sentVideo`.
    pub(crate) fn sent_json(&self) -> Value {
        json!({
            "srcid": self.ssrc,
            "requestIndex": self.request_index,
            "participant": self.participant,
            "csi": self.csi,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
        })
    }
}

/// Sequence numbering and counting of one outgoing RTP stream of the node.
pub(crate) trait Outgoing {
    fn ssrc(&self) -> u32;
    /// Takes the next sequence number and counts a datagram of `len` bytes.
    fn next(&mut self, len: usize) -> u16;
}

impl Outgoing for TxStream {
    fn ssrc(&self) -> u32 {
        self.ssrc
    }

    fn next(&mut self, len: usize) -> u16 {
        let seq = self.next_sequence;
        self.next_sequence = seq.wrapping_add(1);
        self.packets += 1;
        self.bytes += len as u64;
        seq
    }
}

/// `packet` (from an encoder) as `stream`'s datagram: its SSRC, next sequence number and `csi`
/// (extension element `ext_id`); `None` when the packet is not RTP.
pub(crate) fn rewrite(
    packet: &[u8],
    stream: &mut impl Outgoing,
    csi: u32,
    ext_id: u8,
) -> Option<Vec<u8>> {
    let Ok(rtp) = Rtp::parse(packet) else {
        tracing::debug!(
            len = packet.len(),
            "encoder produced a packet that is not RTP"
        );
        return None;
    };
    let padding = rtp.body.len() != rtp.payload.len();
    let len = 12 + 12 + rtp.body.len();
    let seq = stream.next(len);
    Some(rtp_with_csi(
        rtp.payload_type,
        rtp.marker,
        seq,
        rtp.timestamp,
        stream.ssrc(),
        ext_id,
        csi,
        rtp.body,
        padding,
    ))
}

/// The datagram of one encoded video packet for the active stream fed by `encoder`, with the CSI
/// of `participant` (the packet's frame; the stream's own when unknown).
pub(crate) fn fan_out(
    packet: &[u8],
    encoder: u64,
    participant: Option<u8>,
    streams: &mut [TxStream],
    ext_id: u8,
) -> Vec<Vec<u8>> {
    streams
        .iter_mut()
        .filter(|s| s.active && s.encoder == Some(encoder))
        .filter_map(|s| {
            let csi = participant.map_or(s.csi, video_csi);
            rewrite(packet, s, csi, ext_id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(max_fs: u32, w: u16, h: u16) -> ScrRequest {
        ScrRequest {
            payload_type: 126,
            max_fs,
            max_width: w,
            max_height: h,
            max_cfps: 3000,
            bitrate: 100_000,
            srcid: 9,
            ..ScrRequest::default()
        }
    }

    #[test]
    fn sizes_are_the_largest_16_by_9_that_fit() {
        assert_eq!(size_for(3600, 1280, 720), Some((1280, 720)));
        assert_eq!(size_for(920, 3840, 3840), Some((640, 360)));
        assert_eq!(size_for(240, 3840, 3840), Some((320, 180)));
        assert_eq!(size_for(60, 3840, 3840), Some((160, 90)));
        assert_eq!(
            size_for(8160, 1280, 720),
            Some((1280, 720)),
            "bounded by width/height"
        );
        assert_eq!(size_for(3600, 1000, 3840), Some((992, 558)));
        assert_eq!(size_for(3, 3840, 3840), None);
        assert_eq!(size_for(4, 31, 3840), None);
        assert_eq!(macroblocks(1280, 720), 3600);
        assert_eq!(macroblocks(640, 360), 920);
    }

    #[test]
    fn plan_caps_size_rate_and_bitrate() {
        let mut main = request(3600, 1280, 720);
        main.bitrate = 1_500_000;
        main.max_mbps = 108_000;
        let mut slow = request(240, 3840, 3840);
        slow.max_cfps = 750;
        let mut audio = request(240, 3840, 3840);
        audio.payload_type = 111;
        let mut tight = request(240, 320, 180);
        tight.max_mbps = 1200;
        let p = plan(&[main, slow, audio, tight], 920, 15);
        assert_eq!(
            p[0].size,
            Some((640, 360)),
            "send_max_fs caps the main request"
        );
        assert_eq!((p[0].fps, p[0].kbps), (15, 1500));
        assert_eq!((p[1].size, p[1].fps, p[1].kbps), (Some((320, 180)), 7, 100));
        assert_eq!(p[2].size, None, "not H.264");
        assert_eq!(p[2].key(), None);
        assert_eq!(p[3].fps, 5, "1200 macroblocks/s over 240");
        assert!(p.iter().all(|x| x.srcid == 9));
        assert_eq!(
            p[1].key(),
            Some(EncoderKey {
                width: 320,
                height: 180,
                fps: 7,
                kbps: 100
            })
        );
        let mut zero = request(240, 320, 180);
        zero.srcid = 0;
        zero.bitrate = 0;
        let z = &plan(&[zero], 920, 15)[0];
        assert_ne!(z.srcid, 0);
        assert_eq!(z.kbps, DEFAULT_KBPS);
    }

    #[test]
    fn frame_tags_follow_the_pts() {
        let mut t = FrameTags::new(1);
        assert_eq!(t.at(Some(5)), 1);
        t.switch(100, 2);
        assert_eq!(t.at(Some(99)), 1, "a packet of an older frame");
        assert_eq!(t.at(Some(100)), 2);
        assert_eq!(t.at(None), 2);
        for i in 0..100 {
            t.switch(200 + i, 3);
        }
        assert_eq!(t.0.len(), MAX_FRAME_TAGS);
        assert_eq!(argb(1), 0xFFDC_2828);
    }

    #[test]
    fn fan_out_rewrites_ssrc_sequence_and_adds_the_frames_csi() {
        let p = plan(&[request(240, 320, 180), request(240, 320, 180)], 920, 15);
        let mut streams: Vec<_> = p
            .iter()
            .zip([1, 2])
            .filter_map(|(x, n)| TxStream::new(x, 4, n))
            .collect();
        streams[1].ssrc = 10;
        streams[0].encoder = Some(7);
        streams[1].encoder = Some(8);
        let first_seq = streams[0].next_sequence;
        let mut packet = vec![
            0x80,
            0x80 | 126,
            0,
            5,
            0,
            0,
            0x10,
            0,
            0xAA,
            0xBB,
            0xCC,
            0xDD,
        ];
        packet.extend_from_slice(&[0x65, 1, 2, 3]);
        let out = fan_out(&packet, 7, Some(1), &mut streams, 4);
        assert_eq!(out.len(), 1);
        let a = Rtp::parse(&out[0]).expect("rtp");
        assert_eq!((a.ssrc, a.sequence, a.timestamp), (9, first_seq, 0x1000));
        assert!(a.marker);
        assert_eq!(a.csi(4), Some(video_csi(1)));
        assert_eq!(a.payload, &[0x65, 1, 2, 3]);
        assert_eq!(streams[0].packets, 1);
        assert_eq!(streams[0].bytes, out[0].len() as u64);
        // Re-assigned: the stream's CSI changes, packets of older frames keep theirs.
        streams[1].show(3);
        let older = fan_out(&packet, 8, Some(2), &mut streams, 4);
        let b = Rtp::parse(&older[0]).expect("rtp");
        assert_eq!((b.ssrc, b.csi(4)), (10, Some(video_csi(2))));
        let unknown = fan_out(&packet, 8, None, &mut streams, 4);
        let c = Rtp::parse(&unknown[0]).expect("rtp");
        assert_eq!(c.csi(4), Some(video_csi(3)));
        assert_eq!(c.sequence, b.sequence.wrapping_add(1));
        assert_eq!(
            fan_out(&packet, 9, Some(1), &mut streams, 4).len(),
            0,
            "another encoder"
        );
        streams[0].active = false;
        assert!(fan_out(&packet, 7, Some(1), &mut streams, 4).is_empty());
        assert!(fan_out(&[1, 2, 3], 8, Some(1), &mut streams, 4).is_empty());
    }
}
