//! (g) Glass-to-glass latency on loopback: roomd-sim's media node and an in-process roomd in a
//! call, the room's layout `single` (the node's main stream fills the display).
//!
//! Video: the node draws its wall clock (ms mod 2³², 32 blocks MSB first, white 1) into the
//! bottom 1/12 of every frame it encodes (`docs/wire-profile-choices.md` §7 "Far-end media").
//! The bench's board writes roomd's display (1280×720@30, `GRAY8`) to a FIFO with an
//! unbuffered `filesink` (sync, as a display renders); a thread reads it and stamps each frame
//! with the wall clock when its first bytes arrive, i.e. when the sink rendered it. The strip
//! is read back from the rendered picture; latency = render time − timecode, for the first
//! rendered frame showing each timecode (the compositor repeats a frame until the next).
//!
//! Audio (mouth-to-ear): the speaker goes to a FIFO the same way (S16LE mono 48 kHz). The node
//! makes participant 3 then 1 the active speaker, alternately; each switch changes the
//! loudest tone of the mix (slot 0 at −6 dBFS) from 450 Hz to 750 Hz or back, from the node's
//! next 20 ms audio buffer on. `set_active_speaker` returns the node's wall-clock ms of the
//! switch; the bench finds where the new tone overtakes the old one in what the speaker
//! played (Goertzel, 10 ms windows, 1 ms steps) and takes latency = play time − switch time.
//! The node applies a switch to the next buffer its live source makes, so the audio figure
//! includes up to one 20 ms frame of the node's own.
//!
//! Reference (not measured): the receive jitter buffer's configured latency, which both paths
//! wait out by design.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roomd::hw::board::{Board, ElementSpec};
use roomd_testkit::daemon::{dial_until_media, registered_daemon_on, sim_board};
use roomd_testkit::figures;

const DISPLAY: (u32, u32, u32) = (1280, 720, 30);
const SAMPLE_RATE: f64 = 48_000.0;
/// The far end: three participants (tones 450, 600, 750 Hz), 720p30 main stream, audio on;
/// the node does not decode what roomd sends (its CPU is not what is measured).
const SCENARIO: &str = "[locus]\nanswer_delay_ms = 0\n[media]\nauto_scr = true\nparticipants = 3\n\
                        send_audio = true\nsend_fps = 30\nsend_max_fs = 3600\ndecode = false\n";
const TIMEOUT: Duration = Duration::from_secs(120);

fn frames_wanted() -> usize {
    figures::env_count("ROOMD_BENCH_G2G_FRAMES", 300)
}

fn switches_wanted() -> usize {
    figures::env_count("ROOMD_BENCH_M2E_SWITCHES", 10)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1e3
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// An unbuffered filesink into `fifo` with `caps` before it, rendering in real time.
fn fifo_sink(fifo: &Path, caps: &str) -> ElementSpec {
    let mut spec = ElementSpec::new("filesink");
    for (k, v) in [
        ("location", fifo.display().to_string()),
        ("sync", "true".into()),
        ("buffer-mode", "unbuffered".into()),
    ] {
        spec.properties.insert(k.into(), v);
    }
    spec.caps = Some(caps.into());
    spec
}

/// Reads `fifo` for ever (reopening after each writer closes it), handing `consume` every
/// chunk with the wall-clock ms it arrived at.
fn read_fifo(fifo: PathBuf, mut consume: impl FnMut(&[u8], f64, bool) + Send + 'static) {
    std::thread::spawn(move || {
        let mut buf = vec![0_u8; 1 << 20];
        loop {
            let Ok(mut file) = std::fs::File::open(&fifo) else {
                return;
            };
            let mut first = true;
            loop {
                match file.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        consume(&buf[..n], now_ms(), first);
                        first = false;
                    }
                }
            }
        }
    });
}

/// The timecode in a GRAY8 frame whose bottom 1/12 is the strip (block centres, 7×7 means).
fn read_strip(frame: &[u8], width: usize, height: usize) -> u32 {
    let stride = width.next_multiple_of(4);
    let strip = (height / 12).max(1);
    let cy = height - strip / 2;
    (0..32).fold(0_u32, |acc, i| {
        let cx = (2 * i + 1) * width / 64;
        let mut sum = 0_u32;
        let mut n = 0_u32;
        for y in cy.saturating_sub(3)..(cy + 4).min(height) {
            for x in cx.saturating_sub(3)..(cx + 4).min(width) {
                sum += u32::from(frame[y * stride + x]);
                n += 1;
            }
        }
        (acc << 1) | u32::from(sum / n.max(1) > 128)
    })
}

/// Video: the latency of each timecode's first rendered frame.
#[derive(Default)]
struct Video {
    latencies: Vec<f64>,
    seen: HashSet<u32>,
    frames: u64,
    last: Option<u32>,
}

fn watch_display(fifo: PathBuf, video: Arc<Mutex<Video>>) {
    let (w, h) = (DISPLAY.0 as usize, DISPLAY.1 as usize);
    let size = w.next_multiple_of(4) * h;
    let mut frame = Vec::with_capacity(size);
    let mut started = 0.0;
    read_fifo(fifo, move |mut bytes, at, reopened| {
        if reopened {
            frame.clear();
        }
        while !bytes.is_empty() {
            if frame.is_empty() {
                started = at;
            }
            let take = (size - frame.len()).min(bytes.len());
            frame.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if frame.len() == size {
                let tc = read_strip(&frame, w, h);
                frame.clear();
                let mut v = video.lock().unwrap();
                v.frames += 1;
                // The wall clock's ms mod 2^32 when rendered, less the timecode.
                let latency = f64::from((started as u64 as u32).wrapping_sub(tc)) + started.fract();
                let plausible = (0.0..5000.0).contains(&latency);
                // A new picture (and not a misread one: timecodes only grow).
                let newer = v.last.is_none_or(|last| tc.wrapping_sub(last) < 5000);
                if plausible && newer && v.seen.insert(tc) {
                    v.last = Some(tc);
                    v.latencies.push(latency);
                }
            }
        }
    });
}

/// Audio: every sample the speaker played, and when each chunk of them arrived.
#[derive(Default)]
struct Audio {
    samples: Vec<f32>,
    /// (index of the chunk's first sample, wall-clock ms it arrived).
    chunks: Vec<(usize, f64)>,
    odd_byte: Option<u8>,
}

fn watch_speaker(fifo: PathBuf, audio: Arc<Mutex<Audio>>) {
    read_fifo(fifo, move |bytes, at, reopened| {
        let mut a = audio.lock().unwrap();
        if reopened {
            a.odd_byte = None;
        }
        let start = a.samples.len();
        a.chunks.push((start, at));
        let mut bytes = bytes.to_vec();
        if let Some(b) = a.odd_byte.take() {
            bytes.insert(0, b);
        }
        if bytes.len() % 2 == 1 {
            a.odd_byte = bytes.pop();
        }
        for pair in bytes.chunks_exact(2) {
            let s = i16::from_le_bytes([pair[0], pair[1]]);
            a.samples.push(f32::from(s) / 32768.0);
        }
    });
}

/// Goertzel power of `hz` in `samples`.
fn power(samples: &[f32], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / SAMPLE_RATE;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0_f64, 0.0_f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// When (wall-clock ms) the speaker started playing `new_hz` louder than `old_hz`, looking
/// from `from_ms` on; `None` if not within two seconds.
fn onset(audio: &Audio, from_ms: f64, old_hz: f64, new_hz: f64) -> Option<f64> {
    const WINDOW: usize = 480;
    const HOP: usize = 48;
    const CONFIRM: usize = 5;
    let first = audio.chunks.iter().find(|(_, at)| *at >= from_ms)?.0;
    let end = (first + 2 * SAMPLE_RATE as usize).min(audio.samples.len());
    let newer = |i: usize| {
        let w = &audio.samples[i..i + WINDOW];
        power(w, new_hz) > power(w, old_hz)
    };
    let mut i = first;
    while i + WINDOW + CONFIRM * HOP <= end {
        if (0..=CONFIRM).all(|k| newer(i + k * HOP)) {
            // Equal powers: the new tone fills half the window.
            let sample = i + WINDOW / 2;
            let chunk = audio
                .chunks
                .iter()
                .rev()
                .find(|(start, _)| *start <= sample)?;
            return Some(chunk.1 + (sample - chunk.0) as f64 / SAMPLE_RATE * 1e3);
        }
        i += HOP;
    }
    None
}

fn tone_hz(participant: u8) -> f64 {
    300.0 + 150.0 * f64::from(participant)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn measuring_board(dir: &Path) -> Board {
    let mut board = sim_board();
    let display = dir.join("display.fifo");
    let speaker = dir.join("speaker.fifo");
    mkfifo(&display);
    mkfifo(&speaker);
    board.media.display = fifo_sink(&display, "video/x-raw,format=GRAY8");
    board.media.speaker = fifo_sink(&speaker, "audio/x-raw,format=S16LE,rate=48000,channels=1");
    board
}

struct Measured {
    video: Vec<f64>,
    rendered_frames: u64,
    audio: Vec<f64>,
    switches: usize,
    jitter_ms: u32,
}

async fn measure() -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let board = measuring_board(dir.path());
    let video = Arc::new(Mutex::new(Video::default()));
    let audio = Arc::new(Mutex::new(Audio::default()));
    watch_display(dir.path().join("display.fifo"), video.clone());
    watch_speaker(dir.path().join("speaker.fifo"), audio.clone());
    let mut jitter_ms = 0;
    let (sim, daemon, mut status) = registered_daemon_on(
        dir.path(),
        SCENARIO,
        |c| {
            c.media.display_width = DISPLAY.0;
            c.media.display_height = DISPLAY.1;
            c.media.display_fps = DISPLAY.2;
            jitter_ms = c.media.jitter_buffer_ms;
        },
        board,
    )
    .await;
    daemon.room().set_layout_family("single").unwrap();
    dial_until_media(&daemon, &mut status, "bob@example.com", TIMEOUT).await;

    // Video: the first `frames_wanted` timecodes rendered.
    let wanted = frames_wanted();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while video.lock().unwrap().latencies.len() < wanted && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (latencies, rendered_frames) = {
        let v = video.lock().unwrap();
        (v.latencies.clone(), v.frames)
    };

    // Audio: alternate the active speaker between participants 3 and 1.
    let mut switches = Vec::new();
    let mut speaker = 1_u8;
    for k in 0..switches_wanted() {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let next = if k % 2 == 0 { 3 } else { 1 };
        let at = sim.set_active_speaker(next).expect("the node switches") as f64;
        switches.push((at, tone_hz(speaker), tone_hz(next)));
        speaker = next;
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let heard: Vec<f64> = {
        let a = audio.lock().unwrap();
        switches
            .iter()
            .filter_map(|&(at, old, new)| onset(&a, at - 20.0, old, new).map(|t| t - at))
            .collect()
    };
    let _ = daemon.room().calls().disconnect(None).await;
    let _ = daemon.run_until(async {}).await;
    drop(sim);
    Measured {
        video: latencies,
        rendered_frames,
        audio: heard,
        switches: switches.len(),
        jitter_ms,
    }
}

pub fn run() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let m = runtime.block_on(measure());
    runtime.shutdown_timeout(Duration::from_secs(5));
    let jitter = f64::from(m.jitter_ms);
    let reference = format!("the receive jitter buffer ({} ms, configured)", m.jitter_ms);
    if m.video.len() < 30 {
        println!(
            "(g) glass-to-glass: only {} timecodes read from {} rendered frames: no figure",
            m.video.len(),
            m.rendered_frames
        );
        figures::note(&format!(
            "(g) glass-to-glass: only {} timecodes read from {} rendered frames, no figure",
            m.video.len(),
            m.rendered_frames
        ));
    } else {
        let mut v = m.video.clone();
        v.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&v, 0.5), percentile(&v, 0.99));
        println!(
            "(g) glass-to-glass video (node timecode -> roomd's display sink, 720p30, single layout): p50 {p50:.1} ms, p99 {p99:.1} ms over {} frames ({} rendered), min {:.1} ms; jitter buffer {jitter} ms",
            v.len(),
            m.rendered_frames,
            v[0]
        );
        for (label, value) in [("p50", p50), ("p99", p99)] {
            figures::figure(
                &format!(
                    "(g) glass-to-glass video latency, {label} of {} frames (720p30, loopback)",
                    v.len()
                ),
                value,
                "ms",
            )
            .against(&reference, jitter)
            .record();
        }
    }
    if m.audio.is_empty() {
        println!(
            "(h) mouth-to-ear: no tone switch found in the speaker's output ({} switches)",
            m.switches
        );
        figures::note("(h) mouth-to-ear: no tone switch found in the speaker's output");
    } else {
        let mut a = m.audio.clone();
        a.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&a, 0.5), percentile(&a, 0.99));
        println!(
            "(h) mouth-to-ear audio (active-speaker switch at the node -> new tone at roomd's speaker sink): p50 {p50:.1} ms, p99 {p99:.1} ms over {} of {} switches ({a:.1?})",
            a.len(),
            m.switches
        );
        for (label, value) in [("p50", p50), ("p99 (max)", p99)] {
            figures::figure(
                &format!(
                    "(h) mouth-to-ear audio latency, {label} of {} tone switches (loopback)",
                    a.len()
                ),
                value,
                "ms",
            )
            .against(&reference, jitter)
            .record();
        }
    }
}
