//! The media engine end to end: an in-process roomd in a call with roomd-sim's media node,
//! real GStreamer pipelines on both sides, real UDP on loopback. The node decodes what roomd
//! sends, so resolutions are measured, not assumed.

use crate::support;

use std::path::Path;
use std::time::Duration;

use futures_util::SinkExt as _;
use roomd::api::xapi::auth::set_password;
use roomd::media::status::MediaView;
use roomd::status::DeviceStatus;
use roomd::store::StateDir;
use roomd_testkit::far_end::{self, live_session as session};
use serde_json::{Value, json};
use support::{LogCapture, wait_status, wait_status_within};
use tokio::sync::watch;

type Status = watch::Receiver<DeviceStatus>;

/// Emulated aarch64 encodes about 11× slower: ask for fewer frames there.
const FRAMES: u64 = if cfg!(target_arch = "aarch64") { 3 } else { 10 };
/// Bound for waits on media (qemu needs far longer than native for the same frames).
const MEDIA_TIMEOUT: Duration = Duration::from_secs(if cfg!(target_arch = "aarch64") {
    240
} else {
    60
});

/// The sim's media node with its defaults (three-layer SCR on the first SCA, streams for the
/// device's requests) and the Locus far end answering at once.
const MEDIA_SCENARIO: &str = "[locus]\nanswer_delay_ms = 0\n[media]\nauto_scr = true\nparticipants = 7\nsend_audio = false\n";

async fn in_call(
    dir: &Path,
    scenario: &str,
    tweak: impl FnOnce(&mut roomd::config::Config),
) -> (
    roomd_sim::SimHandle,
    roomd::daemon::Daemon,
    Status,
    MediaView,
) {
    let (sim, daemon, mut status) = support::registered_daemon(dir, scenario, tweak).await;
    support::wait_call_control(&mut status).await;
    daemon
        .room()
        .dial(support::dial_request("bob@example.com"))
        .await
        .expect("dial");
    let s = wait_status_within(MEDIA_TIMEOUT, &mut status, "media session", |s| {
        s.media.session.is_some()
    })
    .await;
    let view = s.media.session.clone().unwrap();
    (sim, daemon, status, view)
}

fn stream(media: &Value, ssrc: u32) -> Option<&Value> {
    far_end::received_stream(media, u64::from(ssrc))
}

fn packets(media: &Value, ssrc: u32) -> u64 {
    stream(media, ssrc).map_or(0, |s| s["packets"].as_u64().unwrap_or(0))
}

fn frames_at(media: &Value, ssrc: u32, size: &str) -> u64 {
    stream(media, ssrc).map_or(0, |s| s["resolutions"][size].as_u64().unwrap_or(0))
}

/// The device's SCA that acknowledged `seqno`.
fn ack_of(media: &Value, seqno: u64) -> Option<&Value> {
    session(media)?["scasReceived"]
        .as_array()?
        .iter()
        .find(|s| s["ackSeqno"] == seqno)
}

fn layer_ssrcs(view: &MediaView) -> Vec<u32> {
    view.layers.iter().map(|l| l.ssrc).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_layers_are_decoded_at_the_requested_sizes_and_follow_scr_changes() {
    let logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status, view) = in_call(dir.path(), MEDIA_SCENARIO, |c| {
        c.media.capture_width = 1280;
        c.media.capture_height = 720;
        c.media.capture_fps = 30;
    })
    .await;
    let ssrcs = layer_ssrcs(&view);
    assert_eq!(ssrcs.len(), 3);
    let sizes = ["1280x720", "640x360", "320x180"];

    // The node's three-layer SCR → three streams it decodes at exactly those sizes.
    let media = sim
        .wait_media(MEDIA_TIMEOUT, "three layers decoded", |m| {
            ssrcs
                .iter()
                .zip(sizes)
                .all(|(&ssrc, size)| frames_at(m, ssrc, size) >= FRAMES)
        })
        .await;
    let node = session(&media).unwrap();
    let first_scr = node["scrsSent"][0].clone();
    assert_eq!(first_scr["requests"].as_array().unwrap().len(), 3);
    assert!(
        ack_of(&media, first_scr["seqno"].as_u64().unwrap()).is_some(),
        "the device acknowledged the SCR: {node:#}"
    );
    for (&ssrc, size) in ssrcs.iter().zip(sizes) {
        let s = stream(&media, ssrc).unwrap();
        assert_eq!(s["kind"], "video");
        assert_eq!(s["packetsWithoutCsi"], 0, "CSI on every packet: {s:#}");
        assert_eq!(s["csi"], view.layers[0].csi);
        let other_sizes: u64 = s["resolutions"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.as_str() != size)
            .map(|(_, v)| v.as_u64().unwrap())
            .sum();
        assert_eq!(
            other_sizes, 0,
            "ssrc {ssrc:#x} decoded only at {size}: {s:#}"
        );
    }
    let audio = stream(&media, view.audio.ssrc).expect("audio arrives");
    assert_eq!(audio["packetsWithoutCsi"], 0);
    assert_eq!(audio["csi"], view.audio.csi);
    assert!(logs.contains("Video Receive: SCR [ver=1 seqno=1 "));
    assert!(logs.contains("Video Send: SCR [ver=1 seqno=1 "));

    // Sender reports for every layer that sent.
    sim.wait_media(MEDIA_TIMEOUT, "sender reports", |m| {
        ssrcs
            .iter()
            .all(|&ssrc| stream(m, ssrc).is_some_and(|s| s["senderReports"].as_u64() > Some(0)))
    })
    .await;

    // Two layers: the third stops (no packet after the SCA that acked the change)...
    let two = sim.media_scr("two").unwrap()[0];
    let media = sim
        .wait_media(MEDIA_TIMEOUT, "the two-layer SCR acked", |m| {
            ack_of(m, u64::from(two)).is_some()
        })
        .await;
    let ack = ack_of(&media, u64::from(two)).unwrap().clone();
    assert_eq!(ack["entries"].as_array().unwrap().len(), 2, "{ack:#}");
    let at_ack = |ssrc: u32| ack["packetsAtSca"][ssrc.to_string()].as_u64().unwrap_or(0);
    let media = sim
        .wait_media(MEDIA_TIMEOUT, "layers 1 and 2 go on", |m| {
            packets(m, ssrcs[0]) > at_ack(ssrcs[0]) + 30
                && packets(m, ssrcs[1]) > at_ack(ssrcs[1]) + 10
        })
        .await;
    assert_eq!(
        packets(&media, ssrcs[2]),
        at_ack(ssrcs[2]),
        "layer 3 stopped at the SCA"
    );
    wait_status(&mut status, "layer 3 off in status", |s| {
        s.media.session.as_ref().is_some_and(|m| {
            m.layers[2].state == roomd::media::status::LayerState::Off
                && m.layers[0].state == roomd::media::status::LayerState::Live
        })
    })
    .await;

    // ...and back to three: layer 3 starts again at 320×180 without a new capture.
    let before = frames_at(&media, ssrcs[2], "320x180");
    let three = sim.media_scr("three").unwrap()[0];
    sim.wait_media(MEDIA_TIMEOUT, "layer 3 decoded again", |m| {
        ack_of(m, u64::from(three)).is_some()
            && frames_at(m, ssrcs[2], "320x180") >= before + FRAMES
    })
    .await;

    // Every SCR the node sent was acknowledged with its seqno.
    let media = sim.media();
    for scr in session(&media).unwrap()["scrsSent"].as_array().unwrap() {
        assert_eq!(scr["acked"], true, "{scr:#}");
        assert!(ack_of(&media, scr["seqno"].as_u64().unwrap()).is_some());
    }

    // The receive side: the node serves the room's layout; roomd counts frames per CSI.
    let s = wait_status_within(MEDIA_TIMEOUT, &mut status, "received frames", |s| {
        s.media
            .session
            .as_ref()
            .is_some_and(|m| m.receive.len() == 7 && m.receive.iter().all(|r| r.frames > 0))
    })
    .await;
    let received = &s.media.session.as_ref().unwrap().receive;
    let mut csis: Vec<u32> = received.iter().filter_map(|r| r.csi).collect();
    csis.sort_unstable();
    csis.dedup();
    assert_eq!(csis.len(), 7, "one CSI per received stream: {received:?}");
    let call = s.calls.active[0].clone();
    let names: Vec<&str> = call.diagnostics.iter().map(|d| d.name).collect();
    for name in [
        "client.media.tx.start",
        "client.media.rx.start",
        "client.media.render.start",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    daemon.room().calls().disconnect(None).await.unwrap();
    let s = wait_status(&mut status, "media torn down", |s| {
        s.media.session.is_none()
            && s.calls.ended.iter().any(|c| {
                c.diagnostics
                    .iter()
                    .any(|d| d.name == "client.media.render.stop")
            })
    })
    .await;
    let ended: Vec<&str> = s.calls.ended[0]
        .diagnostics
        .iter()
        .map(|d| d.name)
        .collect();
    let leave = ended
        .iter()
        .position(|n| *n == "client.call.leave")
        .unwrap();
    let tx_stop = ended
        .iter()
        .position(|n| *n == "client.media.tx.stop")
        .unwrap();
    assert!(leave < tx_stop, "{ended:?}");
    sim.wait_media(MEDIA_TIMEOUT, "the node saw the BYE", |m| {
        m["sessions"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["ended"] == true))
    })
    .await;
    let _ = daemon.run_until(async {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_silences_the_microphone_and_privacy_stops_the_camera() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = "[locus]\nanswer_delay_ms = 0\n[media]\nauto_scr = true\ndecode = false\nsend_streams = false\n";
    let (sim, daemon, mut status, view) = in_call(dir.path(), scenario, |_| {}).await;
    let video = view.layers[0].ssrc;
    let audio = view.audio.ssrc;
    sim.wait_media(MEDIA_TIMEOUT, "audio and video flow", |m| {
        packets(m, audio) > 10 && packets(m, video) > 10
    })
    .await;
    let scas = |m: &Value| {
        session(m).map_or(Vec::new(), |s| {
            s["scasReceived"].as_array().unwrap().clone()
        })
    };
    let newest = |m: &Value, ssrc: u32| scas(m).into_iter().rev().find(|s| s["senderSsrc"] == ssrc);

    // Mute: an audio SCA with no live source; the microphone is silenced at the source, so
    // the encoder goes on with silence frames (the node's jitter buffer never starves).
    let room = daemon.room();
    room.set_microphones_muted(true);
    let media = sim
        .wait_media(MEDIA_TIMEOUT, "the mute SCA", |m| {
            newest(m, audio).is_some_and(|s| s["live"] == 0)
        })
        .await;
    let sca = newest(&media, audio).unwrap();
    assert_eq!(sca["entries"][0]["state"], 1, "muted is state 1: {sca:#}");
    let at = sca["packetsAtSca"][audio.to_string()].as_u64().unwrap();
    let video_at = sca["packetsAtSca"][video.to_string()].as_u64().unwrap();
    sim.wait_media(
        MEDIA_TIMEOUT,
        "video and silence frames go on while muted",
        |m| packets(m, video) > video_at + 20 && packets(m, audio) > at + 20,
    )
    .await;
    room.set_microphones_muted(false);
    sim.wait_media(MEDIA_TIMEOUT, "audio live again", |m| {
        newest(m, audio).is_some_and(|s| s["live"] == 1)
    })
    .await;

    // Privacy switch: a video SCA with the layers as avatar (state 1), then no video.
    room.set_camera_off(true);
    let media = sim
        .wait_media(MEDIA_TIMEOUT, "the privacy SCA", |m| {
            newest(m, video).is_some_and(|s| s["live"] == 0)
        })
        .await;
    let sca = newest(&media, video).unwrap();
    let states: Vec<&Value> = sca["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["state"])
        .collect();
    assert!(
        !states.is_empty() && states.iter().all(|s| **s == 1),
        "{sca:#}"
    );
    let video_at: Vec<u64> = view
        .layers
        .iter()
        .map(|l| {
            sca["packetsAtSca"][l.ssrc.to_string()]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    let audio_at = sca["packetsAtSca"][audio.to_string()].as_u64().unwrap();
    let media = sim
        .wait_media(MEDIA_TIMEOUT, "audio goes on with the camera off", |m| {
            packets(m, audio) > audio_at + 20
        })
        .await;
    for (layer, at) in view.layers.iter().zip(&video_at) {
        assert_eq!(
            packets(&media, layer.ssrc),
            *at,
            "no video after the privacy SCA"
        );
    }
    wait_status(&mut status, "layers shown as avatar", |s| {
        s.media
            .session
            .as_ref()
            .is_some_and(|m| m.layers[0].state == roomd::media::status::LayerState::Avatar)
    })
    .await;
    room.set_camera_off(false);
    sim.wait_media(MEDIA_TIMEOUT, "video again", |m| {
        newest(m, video).is_some_and(|s| s["live"] == 1) && packets(m, video) > video_at[0]
    })
    .await;
    let _ = daemon.run_until(async {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_scr_is_resent_eight_times_then_given_up() {
    let logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let scenario = "[locus]\nanswer_delay_ms = 0\n[media]\nauto_scr = false\ndecode = false\nsend_streams = false\n";
    let password = "admin-password";
    let (sim, daemon, mut status) = support::registered_daemon(dir.path(), scenario, |c| {
        // 5 ms doubling: the eight resends take 1.3 s instead of 64.
        c.media.scr_resend_initial_ms = 5;
        let state = StateDir::open(c.state_dir()).unwrap();
        set_password(&state, "admin", password).unwrap();
    })
    .await;
    support::wait_call_control(&mut status).await;
    sim.media_drop_acks(true);
    daemon
        .room()
        .dial(support::dial_request("bob@example.com"))
        .await
        .unwrap();
    let s = wait_status_within(MEDIA_TIMEOUT, &mut status, "the SCR given up", |s| {
        s.media.session.as_ref().is_some_and(|m| m.scr_gave_up == 1)
    })
    .await;
    let m = s.media.session.as_ref().unwrap();
    assert_eq!(m.scr_resends, 8);
    let media = sim.media();
    let scr = &session(&media).unwrap()["scrsReceived"][0];
    assert_eq!(scr["times"], 9, "sent once, resent 8 times: {scr:#}");
    assert_eq!(scr["acked"], false);
    assert_eq!(
        scr["requests"].as_array().unwrap().len(),
        7,
        "overlay: 1 + 6"
    );
    for n in 1..=7 {
        assert!(logs.contains(&format!("SCR (v1) seqno=1 resend count={n}")));
    }
    assert!(logs.contains(
        "main_video resend: SCR not acknowledged (v1) seqno=1 resend count=8, giving up"
    ));
    let s = wait_status(&mut status, "rx.stop recorded", |s| {
        s.calls.active.first().is_some_and(|c| {
            c.diagnostics
                .iter()
                .any(|d| d.name == "client.media.rx.stop")
        })
    })
    .await;
    assert!(
        logs.contains("Diagnostic event: client.media.rx.stop mediaType=video error=media-engine")
    );
    drop(s);

    // A layout change through the xAPI sends a new SCR, which is acknowledged this time.
    sim.media_drop_acks(false);
    let url = daemon.xapi_urls()[0].clone();
    let mut ws = support::xapi_connect(&url, "admin", password)
        .await
        .unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        json!({"jsonrpc": "2.0", "id": "1", "method": "xCommand/Video/Layout/LayoutFamily/Set",
               "params": {"LayoutFamily": "single"}})
        .to_string(),
    ))
    .await
    .unwrap();
    let reply = support::next_json(&mut ws).await;
    assert!(reply.get("result").is_some(), "{reply}");
    let media = sim
        .wait_media(MEDIA_TIMEOUT, "the layout SCR acked", |m| {
            session(m).is_some_and(|s| {
                s["scrsReceived"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["acked"] == true)
            })
        })
        .await;
    let acked = session(&media).unwrap()["scrsReceived"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["acked"] == true)
        .unwrap()
        .clone();
    assert_eq!(
        acked["requests"].as_array().unwrap().len(),
        1,
        "single: {acked:#}"
    );
    wait_status(&mut status, "nothing pending", |s| {
        s.media
            .session
            .as_ref()
            .is_some_and(|m| !m.scr_pending && m.layout == roomd::media::LayoutFamily::Single)
    })
    .await;
    let _ = daemon.run_until(async {}).await;
}

/// Waits for a packet of `stream` out of a send pipeline (dropping the others).
async fn packet_of(
    packets: &mut tokio::sync::mpsc::Receiver<roomd::media::send_pipeline::OutPacket>,
    stream: roomd::media::send_pipeline::SendStream,
) {
    let wait = async {
        while let Some(packet) = packets.recv().await {
            if packet.stream == stream {
                return;
            }
        }
        panic!("the packet channel closed");
    };
    tokio::time::timeout(MEDIA_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| panic!("no {stream:?} packet within {MEDIA_TIMEOUT:?}"));
}

/// The send graph alone: the microphone is sent before any SCR opens a layer, a layer flows
/// while another is still stopped, and opening that one later (a renegotiation of the capture
/// through the tee while the first layer and self-view run) starts it too. With sinks that
/// waited to preroll, the pipeline stayed in PAUSED until every layer had a frame: no audio
/// before the SCR, none at all while a layer stays stopped, and a renegotiation between two
/// layers' first frames stalled the capture for good (the CI flake of this file's mute test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_microphone_and_open_layers_flow_while_other_layers_are_stopped() {
    use roomd::hw::board::ElementSpec;
    use roomd::media::graph::GraphSpec;
    use roomd::media::layers::LayerConfig;
    use roomd::media::send_pipeline::{SendPipeline, SendStream};

    let element = |name: &str, properties: &[(&str, &str)]| ElementSpec {
        element: name.into(),
        properties: properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        caps: None,
    };
    let spec = GraphSpec {
        camera: element("videotestsrc", &[("is-live", "true")]),
        microphone: element("audiotestsrc", &[("is-live", "true"), ("wave", "sine")]),
        video_encoder: element(
            "x264enc",
            &[("tune", "zerolatency"), ("speed-preset", "ultrafast")],
        ),
        capture_width: 320,
        capture_height: 180,
        capture_fps: 15,
        layers: 2,
        live: true,
        layers_start_stopped: true,
        audio: true,
        sink: "appsink",
        layer_presets: Vec::new(),
        selfview: Some((160, 90)),
        dsp: None,
    };
    let (tx, mut packets) = tokio::sync::mpsc::channel(1024);
    let pipeline = SendPipeline::build(&spec, tx).unwrap();
    pipeline.start().unwrap();
    packet_of(&mut packets, SendStream::Audio).await;
    let layer = LayerConfig {
        width: 320,
        height: 180,
        fps: 15,
        bitrate_kbps: 300,
    };
    pipeline.configure_layer(0, Some(layer));
    packet_of(&mut packets, SendStream::Layer(0)).await;
    pipeline.configure_layer(
        1,
        Some(LayerConfig {
            width: 160,
            height: 90,
            ..layer
        }),
    );
    packet_of(&mut packets, SendStream::Layer(1)).await;
    packet_of(&mut packets, SendStream::Layer(0)).await;
    packet_of(&mut packets, SendStream::Audio).await;
}
