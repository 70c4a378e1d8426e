//! `proto::srtp` against an independent SRTP implementation: libsrtp 2, through GStreamer's
//! `srtpenc` and `srtpdec` (gst-plugins-bad, `scripts/deps.sh` installs it), for both
//! profiles, RTP and RTCP, both ways:
//!
//! ```text
//! roomd protect  →  appsrc ! srtpdec ! appsink   (libsrtp must accept and decrypt every packet)
//! appsrc ! srtpenc ! appsink  →  roomd unprotect  (roomd must accept and decrypt every packet)
//! ```
//!
//! The same master key and salt on both sides (srtpdec takes them in its sink caps and from
//! its `request-key` signal, srtpenc as its `key` property: key || salt). The RTP streams
//! start at sequence number 65500 so the rollover counter steps to 1 half way, and carry
//! CSRCs, header extensions and padding. srtpdec drops what it cannot authenticate without an
//! error, so every test compares the whole list of packets that came out.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use roomd::proto::srtp::{SrtpContext, SrtpProfile};

const SSRCS: [u32; 2] = [0x1234_5678, 0x0bad_cafe];
/// Bounds a pipeline run; the runs take milliseconds.
const RUN_TIMEOUT_SECONDS: u64 = 30;

/// libsrtp's names of a profile's cipher and authentication (GCM authenticates in its cipher).
fn libsrtp_names(profile: SrtpProfile) -> (&'static str, &'static str) {
    match profile {
        SrtpProfile::Aes128CmHmacSha1_80 => ("aes-128-icm", "hmac-sha1-80"),
        SrtpProfile::AeadAes128Gcm => ("aes-128-gcm", "null"),
    }
}

fn master_key_and_salt(profile: SrtpProfile) -> (Vec<u8>, Vec<u8>) {
    let key = (0..profile.master_key_len() as u8)
        .map(|n| n.wrapping_mul(37) ^ 0x5a)
        .collect();
    let salt = (0..profile.master_salt_len() as u8)
        .map(|n| n.wrapping_mul(11) ^ 0xc3)
        .collect();
    (key, salt)
}

/// 80 RTP packets per SSRC from sequence number 65500 (across the wrap), interleaved: some
/// with 2 CSRCs, some with a one-word RFC 8285 header extension, some padded.
fn rtp_packets() -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    for n in 0..80u16 {
        for (s, ssrc) in SSRCS.into_iter().enumerate() {
            let seq = 65500u16.wrapping_add(n);
            let csrcs = if n % 3 == 0 { 2 } else { 0 };
            let extension = n % 4 == 1;
            let padding = if n % 5 == 2 { 4 } else { 0 };
            let mut packet = vec![
                0x80 | csrcs
                    | if extension { 0x10 } else { 0 }
                    | if padding > 0 { 0x20 } else { 0 },
                (96 + s as u8) | if n % 10 == 9 { 0x80 } else { 0 },
            ];
            packet.extend_from_slice(&seq.to_be_bytes());
            packet.extend_from_slice(&(u32::from(n) * 3000).to_be_bytes());
            packet.extend_from_slice(&ssrc.to_be_bytes());
            for csrc in 0..csrcs {
                packet.extend_from_slice(&(0xc000_0000 + u32::from(csrc)).to_be_bytes());
            }
            if extension {
                packet.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, n as u8, 0, 0]);
            }
            let payload_len = 1 + (usize::from(n) * 37) % 300;
            packet.extend((0..payload_len).map(|i| (i as u8).wrapping_add(n as u8)));
            if padding > 0 {
                packet.extend_from_slice(&[0, 0, 0, padding]);
            }
            packets.push(packet);
        }
    }
    packets
}

/// 12 RTCP packets, alternating SSRCs: receiver reports (one report block) and sender
/// reports (sender info, no blocks).
fn rtcp_packets() -> Vec<Vec<u8>> {
    (0..12u8)
        .map(|n| {
            let ssrc = SSRCS[usize::from(n % 2)];
            let mut packet = if n % 2 == 0 {
                vec![0x81, 201, 0, 7]
            } else {
                vec![0x80, 200, 0, 6]
            };
            packet.extend_from_slice(&ssrc.to_be_bytes());
            packet.extend((0..24).map(|i| i ^ n));
            packet
        })
        .collect()
}

/// A pipeline with an `appsrc` and an `appsink` for RTP and for RTCP.
struct Harness {
    pipeline: gst::Pipeline,
    rtp_in: gst_app::AppSrc,
    rtcp_in: gst_app::AppSrc,
    rtp_out: gst_app::AppSink,
    rtcp_out: gst_app::AppSink,
}

impl Harness {
    fn launch(text: &str) -> Self {
        gst::init().expect("GStreamer initialises");
        for element in ["srtpenc", "srtpdec", "appsrc", "appsink"] {
            assert!(
                gst::ElementFactory::find(element).is_some(),
                "GStreamer element {element} is missing: run `scripts/deps.sh` \
                 (gstreamer1.0-plugins-bad, gstreamer1.0-plugins-base)"
            );
        }
        let pipeline = gst::parse::launch(text)
            .expect("the pipeline parses")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let src = |name: &str| {
            pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .expect("an appsrc")
        };
        let sink = |name: &str| {
            pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .expect("an appsink")
        };
        Self {
            rtp_in: src("rtp_in"),
            rtcp_in: src("rtcp_in"),
            rtp_out: sink("rtp_out"),
            rtcp_out: sink("rtcp_out"),
            pipeline,
        }
    }

    /// Pushes the packets, ends both streams, waits for the end and returns what came out of
    /// the RTP and the RTCP sinks, in order.
    fn run(&self, rtp: &[Vec<u8>], rtcp: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        self.pipeline
            .set_state(gst::State::Playing)
            .expect("the pipeline plays");
        for (source, packets) in [(&self.rtp_in, rtp), (&self.rtcp_in, rtcp)] {
            for packet in packets {
                source
                    .push_buffer(gst::Buffer::from_slice(packet.clone()))
                    .expect("appsrc takes the packet");
            }
            source.end_of_stream().expect("appsrc ends");
        }
        let bus = self.pipeline.bus().expect("a bus");
        let message = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(RUN_TIMEOUT_SECONDS),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("the pipeline ends in time");
        if let gst::MessageView::Error(error) = message.view() {
            panic!("{}", roomd::media::gst::error_text(error));
        }
        let drain = |sink: &gst_app::AppSink| {
            std::iter::from_fn(|| sink.try_pull_sample(gst::ClockTime::ZERO))
                .map(|sample| {
                    let buffer = sample.buffer().expect("a sample's buffer");
                    buffer.map_readable().expect("readable").to_vec()
                })
                .collect::<Vec<_>>()
        };
        (drain(&self.rtp_out), drain(&self.rtcp_out))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// What srtpdec needs to know of a stream: profile, master key || salt, ROC 0.
fn srtp_caps(media: &str, profile: SrtpProfile, ssrc: u32) -> gst::Caps {
    let (key, salt) = master_key_and_salt(profile);
    let (cipher, auth) = libsrtp_names(profile);
    gst::Caps::builder(media)
        .field("ssrc", ssrc)
        .field("srtp-key", gst::Buffer::from_slice([key, salt].concat()))
        .field("srtp-cipher", cipher)
        .field("srtp-auth", auth)
        .field("srtcp-cipher", cipher)
        .field("srtcp-auth", auth)
        .field("roc", 0u32)
        .build()
}

#[test]
fn libsrtp_decrypts_what_roomd_protects() {
    for profile in [SrtpProfile::AeadAes128Gcm, SrtpProfile::Aes128CmHmacSha1_80] {
        let harness = Harness::launch(
            "srtpdec name=dec \
             appsrc name=rtp_in format=time ! dec.rtp_sink \
             dec.rtp_src ! appsink name=rtp_out sync=false wait-on-eos=false \
             appsrc name=rtcp_in format=time ! dec.rtcp_sink \
             dec.rtcp_src ! appsink name=rtcp_out sync=false wait-on-eos=false",
        );
        harness
            .rtp_in
            .set_caps(Some(&srtp_caps("application/x-srtp", profile, SSRCS[0])));
        harness
            .rtcp_in
            .set_caps(Some(&srtp_caps("application/x-srtcp", profile, SSRCS[0])));
        // The second SSRC's key comes through the signal, as for a stream met mid-call.
        let dec = harness.pipeline.by_name("dec").expect("srtpdec");
        dec.connect("request-key", false, move |args| {
            let ssrc = args[1].get::<u32>().expect("the SSRC");
            Some(srtp_caps("application/x-srtp", profile, ssrc).to_value())
        });

        let (key, salt) = master_key_and_salt(profile);
        let mut roomd = SrtpContext::new(profile, &key, &salt).expect("a context");
        let protect = |packets: Vec<Vec<u8>>, rtcp: bool, roomd: &mut SrtpContext| {
            packets
                .into_iter()
                .map(|mut packet| {
                    if rtcp {
                        roomd.protect_rtcp(&mut packet).expect("protect RTCP");
                    } else {
                        roomd.protect_rtp(&mut packet).expect("protect RTP");
                    }
                    packet
                })
                .collect::<Vec<_>>()
        };
        let srtp = protect(rtp_packets(), false, &mut roomd);
        let srtcp = protect(rtcp_packets(), true, &mut roomd);

        let (rtp, rtcp) = harness.run(&srtp, &srtcp);
        assert_eq!(
            rtp.len(),
            rtp_packets().len(),
            "{profile}: srtpdec dropped SRTP packets"
        );
        assert!(
            rtp == rtp_packets(),
            "{profile}: SRTP decrypts to the packets"
        );
        assert_eq!(
            rtcp.len(),
            rtcp_packets().len(),
            "{profile}: srtpdec dropped SRTCP packets"
        );
        assert!(
            rtcp == rtcp_packets(),
            "{profile}: SRTCP decrypts to the packets"
        );
    }
}

#[test]
fn roomd_unprotects_what_libsrtp_protects() {
    for profile in [SrtpProfile::AeadAes128Gcm, SrtpProfile::Aes128CmHmacSha1_80] {
        let harness = Harness::launch(
            "srtpenc name=enc \
             appsrc name=rtp_in format=time caps=application/x-rtp ! enc.rtp_sink_0 \
             enc.rtp_src_0 ! appsink name=rtp_out sync=false wait-on-eos=false \
             appsrc name=rtcp_in format=time caps=application/x-rtcp ! enc.rtcp_sink_0 \
             enc.rtcp_src_0 ! appsink name=rtcp_out sync=false wait-on-eos=false",
        );
        let (key, salt) = master_key_and_salt(profile);
        let (cipher, auth) = libsrtp_names(profile);
        let enc = harness.pipeline.by_name("enc").expect("srtpenc");
        enc.set_property(
            "key",
            gst::Buffer::from_slice([key.clone(), salt.clone()].concat()),
        );
        enc.set_property_from_str("rtp-cipher", cipher);
        enc.set_property_from_str("rtp-auth", auth);
        enc.set_property_from_str("rtcp-cipher", cipher);
        enc.set_property_from_str("rtcp-auth", auth);

        let (srtp, srtcp) = harness.run(&rtp_packets(), &rtcp_packets());
        assert_eq!(srtp.len(), rtp_packets().len(), "{profile}: srtpenc's SRTP");
        assert_eq!(
            srtcp.len(),
            rtcp_packets().len(),
            "{profile}: srtpenc's SRTCP"
        );

        // The transform is deterministic: the same key and index give the same SRTP bytes.
        let mut roomd_sender = SrtpContext::new(profile, &key, &salt).expect("a context");
        for (plain, theirs) in rtp_packets().into_iter().zip(&srtp) {
            let mut ours = plain;
            roomd_sender.protect_rtp(&mut ours).expect("protect RTP");
            assert!(
                &ours == theirs,
                "{profile}: roomd and libsrtp protect alike"
            );
        }

        let mut roomd = SrtpContext::new(profile, &key, &salt).expect("a context");
        let mut rtp = Vec::new();
        for mut packet in srtp {
            roomd
                .unprotect_rtp(&mut packet)
                .expect("unprotect libsrtp's SRTP");
            rtp.push(packet);
        }
        assert!(rtp == rtp_packets(), "{profile}: libsrtp's SRTP decrypts");
        let mut rtcp = Vec::new();
        for mut packet in srtcp {
            roomd
                .unprotect_rtcp(&mut packet)
                .expect("unprotect libsrtp's SRTCP");
            rtcp.push(packet);
        }
        assert!(
            rtcp == rtcp_packets(),
            "{profile}: libsrtp's SRTCP decrypts"
        );
    }
}
