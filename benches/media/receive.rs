//! (f) The receive path: CPU of decoding, composing and rendering 1 × 720p + 6 × 180p H.264
//! streams (the overlay layout of seed 000) through roomd's receive graph, against
//! `gst-launch-1.0` running the same graph text.
//!
//! The streams are encoded once at the start (x264enc, as RTP with the CSI extension, the way
//! the node sends them) and replayed in real time from a sender thread of this process over
//! UDP on loopback to two child processes, one after the other (five times each, alternating):
//!
//! - roomd: this bench binary again (`--receive-child`), running
//!   `roomd::media::receive_pipeline::ReceivePipeline` with the overlay layout placed by
//!   `set_layout`, fed the way a call's session feeds it: one UDP socket, each datagram
//!   demultiplexed and parsed (`proto::rtp`), mapped to its slot by SSRC and pushed;
//! - the baseline: `gst-launch-1.0` of `receive_pipeline::describe`'s text, with each `appsrc`
//!   a `udpsrc` on a port of its own (same caps) and the layout as compositor pad properties.
//!
//! Both run the same live graph (jitter buffers, the board's decoder, compositor at the
//! display's 1280×720@30, display and speaker sinks with sync). The figure is the children's
//! CPU time (`/proc/<pid>/stat`, all threads) from the first packet sent to shortly after the
//! last, the median of the runs of each side; the sender's own CPU counts for neither.

use std::io::{BufRead as _, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use roomd::hw::board::ElementSpec;
use roomd::media::layout::{self, LayoutFamily, Rect};
use roomd::media::receive_pipeline::{self, Playout, ReceivePipeline, ReceiveSpec};
use roomd::proto::rtp;
use roomd_testkit::figures;

/// The display the streams are composed for (roomd's default `[media] display_*`).
const DISPLAY: (u32, u32, u32) = (1280, 720, 30);
/// Main stream and six thumbnails: size and bitrate (kbit/s) as seed 000's overlay SCR asks.
const STREAMS: [(u32, u32, u32); 7] = [
    (1280, 720, 1500),
    (320, 180, 100),
    (320, 180, 100),
    (320, 180, 100),
    (320, 180, 100),
    (320, 180, 100),
    (320, 180, 100),
];
const FPS: u32 = 30;
/// The CSI extension's id in the packets (any 1–14; the depayloader ignores it).
const EXT_ID: u8 = 3;
/// Time each child gets to reach PLAYING and settle before the first packet.
const SETTLE: Duration = Duration::from_secs(2);
/// After the last packet: what is still in the jitter buffers gets decoded and shown.
const DRAIN: Duration = Duration::from_millis(300);

fn ssrc(stream: usize) -> u32 {
    0x5eed_0000 + stream as u32
}

/// Seconds of media per run (`ROOMD_BENCH_RECEIVE_SECS`, default 10).
fn seconds() -> u32 {
    figures::env_count("ROOMD_BENCH_RECEIVE_SECS", 10)
}

/// Runs per side, alternating (`ROOMD_BENCH_RECEIVE_RUNS`, default 5: single runs of either
/// side vary by ±10 % on a shared 2-core machine; the median of 3 read 1.15× and 0.94× in two
/// benches of the same tree, the median of 5 0.99×).
fn runs() -> usize {
    figures::env_count("ROOMD_BENCH_RECEIVE_RUNS", 5)
}

/// One packet of the replay: when (from the start), which stream, the datagram.
struct Scheduled {
    at: Duration,
    stream: usize,
    datagram: Vec<u8>,
}

/// Encodes `frames` frames of every stream; the packets in send order.
fn encode(frames: u32) -> Vec<Scheduled> {
    let mut all = Vec::new();
    for (stream, &(w, h, kbps)) in STREAMS.iter().enumerate() {
        let text = format!(
            "videotestsrc is-live=false num-buffers={frames} pattern=ball foreground-color={} \
             ! video/x-raw,format=I420,width={w},height={h},framerate={FPS}/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bitrate={kbps} threads=1 \
             ! video/x-h264,profile=constrained-baseline \
             ! rtph264pay pt={} mtu=1180 config-interval=-1 \
             ! appsink name=sink sync=false max-buffers=0",
            0xff00_0000_u32 | ((0x40_30_20 * (stream as u32 + 1)) & 0x00ff_ffff),
            roomd::media::graph::VIDEO_PT,
        );
        let pipeline = gst::parse::launch(&text)
            .expect("encoder parses")
            .downcast::<gst::Pipeline>()
            .unwrap();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let csi = (0x101 + stream as u32) << 8 | 1;
        while let Ok(sample) = sink.pull_sample() {
            let Some(buffer) = sample.buffer() else {
                continue;
            };
            let at = Duration::from_nanos(buffer.pts().map_or(0, gst::ClockTime::nseconds));
            let map = buffer.map_readable().unwrap();
            let datagram = rtp::with_csi(map.as_slice(), ssrc(stream), EXT_ID, csi)
                .expect("the payloader's packets are RTP");
            all.push(Scheduled {
                at,
                stream,
                datagram,
            });
        }
        pipeline.set_state(gst::State::Null).unwrap();
    }
    // Encoders shift their timestamps (x264enc starts at 1000 h, room for negative DTS): the
    // replay starts at the earliest.
    let first = all.iter().map(|p| p.at).min().unwrap_or_default();
    for p in &mut all {
        p.at -= first;
    }
    all.sort_by_key(|p| p.at);
    all
}

/// Sends every packet at its time; `to[stream]` is where stream `stream` goes.
fn replay(packets: &[Scheduled], to: &[std::net::SocketAddr]) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t0 = Instant::now();
    for p in packets {
        let due = t0 + p.at;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let _ = socket.send_to(&p.datagram, to[p.stream]);
    }
}

/// user + system CPU seconds of process `pid`, all its threads.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<f64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    (at(11) + at(12)) / super::clock_ticks()
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spec() -> ReceiveSpec {
    let board = super::board();
    ReceiveSpec {
        playout: Playout {
            video_decoder: board
                .media
                .video_decoder
                .clone()
                .unwrap_or_else(|| ElementSpec::new("openh264dec")),
            speaker: board.media.speaker.clone(),
            display: board.media.display.clone(),
            display_width: DISPLAY.0,
            display_height: DISPLAY.1,
            display_fps: DISPLAY.2,
            jitter_ms: 80,
        },
        video_slots: STREAMS.len(),
        audio_slots: 3,
        echo_probe: "bench-echo-probe".into(),
        selfview_width: 320,
        selfview_height: 180,
    }
}

fn regions() -> Vec<Rect> {
    layout::regions(LayoutFamily::Overlay, DISPLAY.0, DISPLAY.1)
}

/// The child side of the roomd run: `--receive-child <port>`. Prints `ready` once playing,
/// then pushes what arrives until killed.
pub fn child(args: &[String]) -> ! {
    let port: u16 = args
        .first()
        .and_then(|p| p.parse().ok())
        .expect("--receive-child <port>");
    roomd::media::gst::init().expect("GStreamer");
    let (events, _keep) = tokio::sync::mpsc::unbounded_channel();
    let receive = ReceivePipeline::start(&spec(), events).expect("the receive graph starts");
    let slots: Vec<Option<Rect>> = regions().into_iter().map(Some).collect();
    receive.set_layout(&slots, None);
    let socket = UdpSocket::bind(("127.0.0.1", port)).expect("the child's port");
    let ssrcs: Vec<u32> = (0..STREAMS.len()).map(ssrc).collect();
    println!("ready");
    let mut datagram = vec![0_u8; 2048];
    loop {
        let Ok(len) = socket.recv(&mut datagram) else {
            continue;
        };
        let datagram = &datagram[..len];
        // What a call's session does with a datagram from the node (media::session).
        if rtp::demux(datagram) != rtp::Demux::Rtp {
            continue;
        }
        let Ok(packet) = rtp::parse(datagram) else {
            continue;
        };
        let _csi = packet.csi(EXT_ID);
        if packet.header.payload_type != roomd::media::graph::VIDEO_PT {
            continue;
        }
        if let Some(slot) = ssrcs.iter().position(|s| *s == packet.header.ssrc) {
            receive.push_video(slot, datagram);
        }
    }
}

/// `describe`'s text as `gst-launch-1.0` arguments: every `appsrc` a `udpsrc` on a port of its
/// own (the video slots' ports returned in slot order), the layout as pad properties.
fn baseline_args() -> (Vec<String>, Vec<u16>) {
    const APPSRC_ONLY: [&str; 5] = [
        "is-live=true",
        "format=time",
        "do-timestamp=true",
        "leaky-type=downstream",
        "max-buffers=2",
    ];
    let text = receive_pipeline::describe(&spec());
    let mut words = Vec::new();
    let mut video_ports = Vec::new();
    let mut in_appsrc = false;
    for word in super::shell_words(&text) {
        if word == "appsrc" {
            in_appsrc = true;
            let port = free_port();
            words.push("udpsrc".to_owned());
            words.push(format!("port={port}"));
            words.push("address=127.0.0.1".to_owned());
            continue;
        }
        if in_appsrc {
            if word == "!" {
                in_appsrc = false;
            } else {
                if let Some(name) = word.strip_prefix("name=vsrc") {
                    assert_eq!(name.parse::<usize>().ok(), Some(video_ports.len()));
                    let port = words[words.len() - 2]
                        .strip_prefix("port=")
                        .and_then(|p| p.parse().ok())
                        .unwrap();
                    video_ports.push(port);
                }
                if APPSRC_ONLY.contains(&word.as_str()) {
                    continue;
                }
            }
        }
        words.push(word.clone());
        if word == "background=black" {
            // As ReceivePipeline::place does it: slot i on pad sink_{i+1}, self-view hidden.
            for (i, r) in regions().iter().enumerate() {
                let zorder = if r.width >= DISPLAY.0 as i32 / 2 {
                    1
                } else {
                    2
                };
                let pad = format!("sink_{}", i + 1);
                for (prop, value) in [
                    ("xpos", r.x),
                    ("ypos", r.y),
                    ("width", r.width),
                    ("height", r.height),
                    ("zorder", zorder),
                ] {
                    words.push(format!("{pad}::{prop}={value}"));
                }
                words.push(format!("{pad}::alpha=1.0"));
            }
            words.push(format!("sink_{}::alpha=0.0", STREAMS.len() + 1));
        }
    }
    assert_eq!(
        video_ports.len(),
        STREAMS.len(),
        "every video slot's appsrc became a udpsrc: {text}"
    );
    assert!(
        words.iter().any(|w| w.starts_with("sink_1::xpos")),
        "the compositor's pads were placed: {text}"
    );
    (words, video_ports)
}

/// Runs `child` through one replay; its CPU seconds over the replay.
fn measure(mut child: Child, packets: &[Scheduled], to: &[std::net::SocketAddr]) -> f64 {
    std::thread::sleep(SETTLE);
    let pid = child.id();
    if let Ok(Some(status)) = child.try_wait() {
        panic!("the receiving process exited before the replay: {status}");
    }
    let cpu0 = proc_cpu(pid);
    replay(packets, to);
    std::thread::sleep(DRAIN);
    let cpu1 = proc_cpu(pid);
    if let Ok(Some(status)) = child.try_wait() {
        panic!("the receiving process exited during the replay: {status}");
    }
    let _ = child.kill();
    let _ = child.wait();
    cpu1 - cpu0
}

fn roomd_run(packets: &[Scheduled]) -> f64 {
    let port = free_port();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--receive-child")
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the bench binary runs again as the receiving child");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the roomd child started");
    let to = vec![std::net::SocketAddr::from(([127, 0, 0, 1], port)); STREAMS.len()];
    measure(child, packets, &to)
}

fn baseline_run(packets: &[Scheduled]) -> Option<f64> {
    let (args, ports) = baseline_args();
    let child = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(&args)
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let to: Vec<_> = ports
        .iter()
        .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    Some(measure(child, packets, &to))
}

pub fn run() {
    let secs = seconds();
    let t0 = Instant::now();
    let packets = encode(secs * FPS);
    let bytes: usize = packets.iter().map(|p| p.datagram.len()).sum();
    println!(
        "(f) receive path: {} packets ({:.1} MB) of 1x720p + 6x180p encoded in {:.1} s; {secs} s of media per run, {} runs each",
        packets.len(),
        bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64(),
        runs()
    );
    let (mut roomd, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..runs() {
        roomd.push(roomd_run(&packets));
        match baseline_run(&packets) {
            Some(cpu) => bare.push(cpu),
            None => {
                println!("(f) gst-launch-1.0 not runnable here: skipped");
                figures::note("(f) gst-launch-1.0 not runnable here: skipped");
                return;
            }
        }
    }
    // Medians: a run that other work on the machine starves falls behind and drops frames
    // (both graphs are live), which lowers its CPU as much as it skews a sum.
    let (roomd_cpu, bare_cpu) = (super::median(&roomd), super::median(&bare));
    println!(
        "(f) roomd's receive graph {roomd_cpu:.2} CPU s (median; runs {roomd:.2?}) vs gst-launch-1.0 of the same graph {bare_cpu:.2} CPU s (runs {bare:.2?}): {:.2}x (target <= 1.1x)",
        roomd_cpu / bare_cpu
    );
    figures::figure(
        &format!(
            "(f) receive: decode + compose + render 1×720p + 6×180p for {secs} s, median of {} runs",
            roomd.len()
        ),
        roomd_cpu,
        "CPU s",
    )
    .against("gst-launch-1.0 of the same graph (udpsrc inputs)", bare_cpu)
    .target(figures::Target::RatioAtMost(1.1))
    .record();
}
