//! Sending the streams a device's SCR asks for: choosing each request's size, encoding every
//! distinct size once with GStreamer (`videotestsrc ! x264enc ! rtph264pay ! appsink`, constrained
//! baseline as the answer's `profile-level-id=42e01f`), and
//! fanning each packet out to every request of that size with the request's SSRC, its own
//! sequence numbers and its CSI in the header extension.

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer_app as gst_app;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::PipelineEvent;
use super::gst_util::{Pipeline, watch_bus};
use super::sdp::VIDEO_PT;
use super::wire::{Rtp, ScrRequest, rtp_with_csi};

/// The payloader's MTU: with the 12-byte CSI extension block a datagram stays within the
/// contract's 1200 bytes.
const PAYLOAD_MTU: u32 = 1180;
/// Bitrate when a request names none (kbit/s).
const DEFAULT_KBPS: u32 = 500;
/// x264enc's useful range (kbit/s).
const MIN_KBPS: u32 = 16;
const MAX_KBPS: u32 = 20_000;

/// The CSI the node gives request `index`'s stream: scene `0x100 + index`, video.
pub(crate) fn csi_for(index: usize) -> u32 {
    let scene = 0x100_u32.saturating_add(u32::try_from(index).unwrap_or(u32::MAX));
    (scene << 8) | 1
}

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
    pub csi: u32,
    /// `None`: the request cannot be served (its SCA entry says disabled).
    pub size: Option<(u32, u32)>,
    pub fps: u32,
    pub kbps: u32,
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
                csi: csi_for(index),
                size,
                fps,
                kbps,
            }
        })
        .collect()
}

/// What one encoder produces: every request of one size shares it (lowest frame rate and bitrate
/// among them, so none gets more than it asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EncoderKey {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub kbps: u32,
}

/// The encoders a plan needs, one per distinct size, in first-request order.
pub(crate) fn encoder_keys(plan: &[Planned]) -> Vec<EncoderKey> {
    let mut keys: Vec<EncoderKey> = Vec::new();
    for p in plan {
        let Some((width, height)) = p.size else {
            continue;
        };
        match keys
            .iter_mut()
            .find(|k| (k.width, k.height) == (width, height))
        {
            Some(k) => {
                k.fps = k.fps.min(p.fps);
                k.kbps = k.kbps.min(p.kbps);
            }
            None => keys.push(EncoderKey {
                width,
                height,
                fps: p.fps,
                kbps: p.kbps,
            }),
        }
    }
    keys
}

/// A running encoder. Dropping it sets the pipeline to Null.
#[derive(Debug)]
pub(crate) struct Encoder {
    pub id: u64,
    pub key: EncoderKey,
    _pipeline: Pipeline,
}

impl Encoder {
    /// Builds and starts the encoder; its packets are reported as [`PipelineEvent::Encoded`].
    pub(crate) fn start(
        id: u64,
        session: usize,
        key: EncoderKey,
        events: &UnboundedSender<PipelineEvent>,
    ) -> anyhow::Result<Self> {
        let EncoderKey {
            width,
            height,
            fps,
            kbps,
        } = key;
        let description = format!(
            "videotestsrc is-live=true ! video/x-raw,width={width},height={height},framerate={fps}/1 ! \
             x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate={kbps} ! \
             video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 mtu={PAYLOAD_MTU} pt={VIDEO_PT} ! appsink name=sink sync=false"
        );
        let what = format!("the {width}x{height} encoder");
        let pipeline =
            Pipeline::launch(&description).with_context(|| format!("building {what}"))?;
        let sink = pipeline.by_name::<gst_app::AppSink>("sink")?;
        let packets = events.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buffer) = sample.buffer() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let packet = map.as_slice().to_vec();
                    // The node loop is gone only at shutdown; then nobody needs the packet.
                    let _ = packets.send(PipelineEvent::Encoded {
                        session,
                        encoder: id,
                        packet,
                    });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let errors = events.clone();
        watch_bus(&pipeline, move |message| {
            let _ = errors.send(PipelineEvent::EncodeError {
                session,
                encoder: id,
                message,
            });
        });
        pipeline
            .play()
            .with_context(|| format!("starting {what}"))?;
        Ok(Self {
            id,
            key,
            _pipeline: pipeline,
        })
    }
}

/// One stream the node sends (or sent) to a session for one request of a device SCR.
#[derive(Debug, Clone)]
pub(crate) struct TxStream {
    pub ssrc: u32,
    pub csi: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub request_index: usize,
    pub scr_seqno: u16,
    /// The encoder feeding it; `None` while starting or when the encoder failed.
    pub encoder: Option<u64>,
    pub packets: u64,
    pub bytes: u64,
    /// False once a newer SCR replaced it or the session ended.
    pub active: bool,
    pub error: Option<String>,
    next_sequence: u16,
}

impl TxStream {
    pub(crate) fn new(p: &Planned, scr_seqno: u16) -> Option<Self> {
        let (width, height) = p.size?;
        Some(Self {
            ssrc: p.srcid,
            csi: p.csi,
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

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "ssrc": self.ssrc,
            "csi": self.csi,
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
}

/// The datagrams of one encoded packet: one per active stream fed by `encoder`, each with the
/// stream's SSRC, next sequence number and CSI (extension element `ext_id`). A packet that does
/// not parse as RTP gives none.
pub(crate) fn fan_out(
    packet: &[u8],
    encoder: u64,
    streams: &mut [TxStream],
    ext_id: u8,
) -> Vec<Vec<u8>> {
    let Ok(rtp) = Rtp::parse(packet) else {
        tracing::debug!(
            encoder,
            len = packet.len(),
            "encoder produced a packet that is not RTP"
        );
        return Vec::new();
    };
    let padding = rtp.body.len() != rtp.payload.len();
    streams
        .iter_mut()
        .filter(|s| s.active && s.encoder == Some(encoder))
        .map(|s| {
            let out = rtp_with_csi(
                rtp.payload_type,
                rtp.marker,
                s.next_sequence,
                rtp.timestamp,
                s.ssrc,
                ext_id,
                s.csi,
                rtp.body,
                padding,
            );
            s.next_sequence = s.next_sequence.wrapping_add(1);
            s.packets += 1;
            s.bytes += out.len() as u64;
            out
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
        assert_eq!((p[0].fps, p[0].kbps, p[0].csi), (15, 1500, 0x0001_0001));
        assert_eq!((p[1].size, p[1].fps, p[1].kbps), (Some((320, 180)), 7, 100));
        assert_eq!(p[2].size, None, "not H.264");
        assert_eq!(p[3].fps, 5, "1200 macroblocks/s over 240");
        assert_eq!(csi_for(1), 0x0001_0101);
        assert!(p.iter().all(|x| x.srcid == 9));
        let keys = encoder_keys(&p);
        assert_eq!(keys.len(), 2, "one per distinct size");
        assert_eq!(
            keys[1],
            EncoderKey {
                width: 320,
                height: 180,
                fps: 5,
                kbps: 100
            }
        );
        let mut zero = request(240, 320, 180);
        zero.srcid = 0;
        zero.bitrate = 0;
        let z = &plan(&[zero], 920, 15)[0];
        assert_ne!(z.srcid, 0);
        assert_eq!(z.kbps, DEFAULT_KBPS);
    }

    #[test]
    fn fan_out_rewrites_ssrc_sequence_and_adds_the_csi() {
        let p = plan(&[request(240, 320, 180), request(240, 320, 180)], 920, 15);
        let mut streams: Vec<_> = p.iter().filter_map(|x| TxStream::new(x, 4)).collect();
        streams[1].ssrc = 10;
        for s in &mut streams {
            s.encoder = Some(7);
        }
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
        let out = fan_out(&packet, 7, &mut streams, 4);
        assert_eq!(out.len(), 2);
        let a = Rtp::parse(&out[0]).expect("rtp");
        assert_eq!((a.ssrc, a.sequence, a.timestamp), (9, first_seq, 0x1000));
        assert!(a.marker);
        assert_eq!(a.csi(4), Some(csi_for(0)));
        assert_eq!(a.payload, &[0x65, 1, 2, 3]);
        let b = Rtp::parse(&out[1]).expect("rtp");
        assert_eq!((b.ssrc, b.csi(4)), (10, Some(csi_for(1))));
        assert_eq!(streams[0].packets, 1);
        assert_eq!(
            fan_out(&packet, 8, &mut streams, 4).len(),
            0,
            "another encoder"
        );
        streams[0].active = false;
        assert_eq!(fan_out(&packet, 7, &mut streams, 4).len(), 1);
        assert_eq!(
            Rtp::parse(&fan_out(&packet, 7, &mut streams, 4)[0])
                .expect("rtp")
                .sequence,
            streams[1].next_sequence.wrapping_sub(1)
        );
        assert!(fan_out(&[1, 2, 3], 7, &mut streams, 4).is_empty());
    }
}
