//! Acoustic echo cancellation end to end: the far end's audio, played on the board's speaker,
//! comes back into its microphone through a simulated room, with a near-end talker; what the
//! node decodes of the device's audio keeps the talker and loses the echo.
//!
//! The room is a GStreamer pipeline of the test's own, joined to the daemon's speaker and
//! microphone roles by `inter` elements (one process, real time, the system clock):
//!
//! ```text
//! roomd speaker:    … ! webrtcechoprobe ! … ! interaudiosink channel=<spk>
//! room:             interaudiosrc channel=<spk> ! volume 0.5 (−6 dB) ! audiomixer ! tee
//!                       tee. ! valve ! queue ! interaudiosink channel=<mic> ts-offset=…
//!                       tee. ! queue ! appsink                    (what the microphone picks up)
//!                   audiotestsrc 1000 Hz, −18 dBFS peak ! audiomixer  (the near-end talker)
//! roomd microphone: interaudiosrc channel=<mic> ! … ! webrtcdsp ! … ! opusenc
//! ```
//!
//! The echo's delay is the room's 50 ms (the sink's `ts-offset` and the microphone channel's
//! reserve), plus the speaker channel's 30 ms reserve, plus up to 10 ms in each channel and
//! the pipelines' own buffering: about 100 ms in all. The far end is three talkers, as the node's default: participant 1 speaking
//! (450 Hz, −6 dBFS peak) and two quiet ones (−30). At the default volume 50 the speaker plays
//! 450 Hz at −12 dBFS; the room's 6 dB makes it −18 at the microphone, as loud as the talker
//! (continuous double talk). Levels here are on the node's scale: a tone's peak amplitude in
//! dBFS (a sine of amplitude 0.5 is −6).
//!
//! The quiet talkers are participants 2 and 4 (600 and 900 Hz), not the default 2 and 3:
//! participant 3's 750 Hz and the talker's 1000 Hz are both whole numbers of cycles in the
//! canceller's 4 ms block, so both look frozen to it and its coherence test takes the talker
//! for echo (it is then suppressed by 50 dB or more). A voice is never such a tone.
//!
//! The canceller runs without noise suppression and gain control, so the talker is measured
//! against the canceller alone (with roomd's defaults, both on, it went out 2.7 to 7.5 dB
//! down; noise suppression alone takes 12.8 dB off a steady tone).
//!
//! ERLE (echo return loss enhancement) = the far-end tone at the microphone (measured in the
//! room) − the far-end tone in what the node decoded, the median of the five seconds after
//! 5 s of convergence (counted in the device's decoded audio from the moment the echo reached
//! the microphone). With `echo_cancellation = false` the same chain sends the echo as it is: that
//! run is the baseline that shows the ERLE is the canceller's, not the chain's.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use roomd::hw::board::{Board, ElementSpec};
use roomd_testkit::audio;
use roomd_testkit::daemon::{dial_until_media, registered_daemon_on, sim_board};
use roomd_testkit::far_end;
use serde_json::Value;
use tokio::sync::watch;

use crate::support::LogCapture;

const TIMEOUT: Duration = Duration::from_secs(60);
const RATE: usize = 48_000;

/// The far end's active speaker (participant 1) and the near-end talker.
const FAR_HZ: u32 = 450;
const NEAR_HZ: u32 = 1000;
/// The near-end talker's amplitude: −18 dBFS peak, the echo's level at the microphone.
const NEAR_AMPLITUDE: f64 = 0.125;
/// The room: the echo comes back 6 dB down, 50 ms late.
const ROOM_GAIN: f64 = 0.5;
const ROOM_DELAY: Duration = Duration::from_millis(50);
/// What each of the room's channels holds in reserve ([`Room::let_in`]).
const CUSHION: Duration = Duration::from_millis(30);
/// Convergence before the measured seconds, in the device's decoded audio.
const CONVERGENCE_SECS: usize = 5;
/// The seconds measured after convergence; a run's figure is their median. On a loaded
/// machine a second or two may show the room glitching: a channel read later than its
/// reserve lasts gets 10 ms of silence, the echo's delay grows by as much, and the canceller
/// takes a second to follow (up to −31 dBFS of echo for that second was seen).
const MEASURED_SECS: usize = 5;

/// The issue's limits: the echo at least 20 dB down; the talker kept, that is within 6 dB of
/// what the microphone picked up (the level the same chain sends without the canceller).
const MIN_ERLE_DB: f64 = 20.0;
const NEAR_KEPT_DB: f64 = 6.0;

/// The peak level of a tone from its RMS level ([`audio::tone_dbfs`]'s scale): +3.01 dB.
fn peak_dbfs(samples: &[f32], hz: u32) -> f64 {
    audio::tone_dbfs(samples, f64::from(hz)) + 20.0 * std::f64::consts::SQRT_2.log10()
}

/// What the microphone picks up, over its last second.
#[derive(Debug, Clone, Copy)]
struct AtMicrophone {
    far_dbfs: f64,
    near_dbfs: f64,
}

/// The simulated room (see the module doc); stopped on drop.
struct Room {
    pipeline: gst::Pipeline,
    heard: watch::Receiver<Option<AtMicrophone>>,
}

impl Room {
    /// Starts the room between the speaker channel `spk` and the microphone channel `mic`
    /// (unique in the process), the microphone's side closed ([`Room::let_in`]).
    ///
    /// An `inter` channel has no jitter buffer: its reader takes 10 ms each time, silence
    /// when less is there, and its writer drops the oldest 10 ms when more than 200 ms (the
    /// readers' `buffer-time`) gather. Each channel is started from its reading side (the room
    /// reads the speaker before the daemon plays, the daemon reads the microphone before the
    /// room opens it), so neither starts with a backlog, and then given a reserve of
    /// [`CUSHION`] (the microphone's out of the room's delay).
    fn start(spk: &str, mic: &str) -> Self {
        gst::init().expect("GStreamer initialises");
        let mono = "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved";
        let text = format!(
            "interaudiosrc channel={spk} buffer-time=200000000 latency-time=10000000 \
             period-time=10000000 ! audioconvert ! audioresample ! {mono} \
             ! volume volume={ROOM_GAIN} ! audiomixer name=air ! {mono} ! tee name=mic \
             mic. ! valve name=door drop=true \
             ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=1000000000 \
             ! interaudiosink name=reach channel={mic} ts-offset={delay} async=false \
             mic. ! queue ! appsink name=tap sync=false async=false \
             audiotestsrc is-live=true wave=sine freq={NEAR_HZ} volume={NEAR_AMPLITUDE} \
             samplesperbuffer=480 ! {mono} ! air.",
            delay = ROOM_DELAY.as_nanos(),
        );
        let pipeline = gst::parse::launch(&text)
            .expect("the room pipeline parses")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let tap = pipeline
            .by_name("tap")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .expect("the room's tap");
        let (tx, heard) = watch::channel(None);
        let window = Mutex::new((VecDeque::<f32>::with_capacity(RATE), 0_usize));
        tap.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buffer) = sample.buffer() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let mut window = window.lock().map_err(|_| gst::FlowError::Error)?;
                    let (samples, since) = &mut *window;
                    for b in map.as_slice().chunks_exact(2) {
                        if samples.len() == RATE {
                            samples.pop_front();
                        }
                        samples.push_back(f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0);
                    }
                    *since += map.len() / 2;
                    // A measurement every 200 ms, once a whole second is in.
                    if samples.len() == RATE && *since >= RATE / 5 {
                        *since = 0;
                        let second = samples.make_contiguous();
                        tx.send_replace(Some(AtMicrophone {
                            far_dbfs: peak_dbfs(second, FAR_HZ),
                            near_dbfs: peak_dbfs(second, NEAR_HZ),
                        }));
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline
            .set_state(gst::State::Playing)
            .expect("the room plays");
        Self { pipeline, heard }
    }

    /// Once the daemon plays its speaker and reads its microphone: gives the speaker's
    /// channel its reserve (the room stops reading it for [`CUSHION`]: pausing a live
    /// pipeline moves its clock on by as much) and lets the room into the microphone.
    async fn let_in(&self) {
        self.pipeline
            .set_state(gst::State::Paused)
            .expect("the room pauses");
        tokio::time::sleep(CUSHION).await;
        self.pipeline
            .set_state(gst::State::Playing)
            .expect("the room plays again");
        self.pipeline
            .by_name("door")
            .expect("the room's door")
            .set_property("drop", false);
    }

    /// Gives the microphone's channel its reserve out of the room's delay: the air renders
    /// [`CUSHION`] sooner, so that much of what it held is in the channel at once. The echo's
    /// delay stays the same. Once the room has run open for more than [`ROOM_DELAY`].
    fn settle_microphone(&self) {
        let sooner = ROOM_DELAY.saturating_sub(CUSHION).as_nanos();
        self.pipeline
            .by_name("reach")
            .expect("the room's reach into the microphone")
            .set_property("ts-offset", i64::try_from(sooner).expect("ns fit"));
    }

    /// Waits (bounded) until `check` holds for what the microphone picks up; returns that.
    async fn wait(&self, what: &str, check: impl Fn(&AtMicrophone) -> bool) -> AtMicrophone {
        let mut heard = self.heard.clone();
        let found = tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Some(at) = *heard.borrow_and_update() {
                    if check(&at) {
                        return at;
                    }
                }
                heard.changed().await.expect("the room's tap lives");
            }
        })
        .await;
        match found {
            Ok(at) => at,
            Err(_) => panic!(
                "the room never heard: {what}; last: {:?}; room errors: {:?}",
                *self.heard.borrow(),
                self.errors()
            ),
        }
    }

    /// The latest measurement.
    fn now(&self) -> AtMicrophone {
        self.heard.borrow().expect("the room has measured")
    }

    fn errors(&self) -> Vec<String> {
        let Some(bus) = self.pipeline.bus() else {
            return Vec::new();
        };
        std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Error]))
            .map(|m| format!("{m:?}"))
            .collect()
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The sim board with its speaker and microphone joined to the room's channels.
fn room_board(spk: &str, mic: &str) -> Board {
    let mono = "audio/x-raw,format=S16LE,rate=48000,channels=1";
    let mut board = sim_board();
    let mut speaker = ElementSpec::new("interaudiosink");
    speaker.properties.insert("channel".into(), spk.into());
    speaker.caps = Some(mono.into());
    board.media.speaker = speaker;
    let mut microphone = ElementSpec::new("interaudiosrc");
    for (key, value) in [
        ("channel", mic),
        ("buffer-time", "200000000"),
        ("latency-time", "10000000"),
        ("period-time", "10000000"),
    ] {
        microphone.properties.insert(key.into(), value.into());
    }
    microphone.caps = Some(mono.into());
    board.media.microphone = microphone;
    board
}

/// The far end: participants 1 to 4, 1 speaking; 3 leaves before the call (see the module
/// doc), so the node sends 1, 2 and 4. It answers at once and decodes the device's audio, and
/// sends no video (the device decodes none, so the DSP is not starved of CPU). It asks for
/// the device's layers (`auto_scr`), as a real node does.
const FAR_END: &str = "[locus]\nanswer_delay_ms = 0\n\
    [media]\nauto_scr = true\nsend_streams = false\nparticipants = 4\n";
const LEAVES: u8 = 3;

/// What the node measured of the device's audio (`ssrc`).
fn sent_audio(media: &Value, ssrc: u32) -> Option<&Value> {
    far_end::received_stream(media, u64::from(ssrc))
        .map(|s| &s["audio"])
        .filter(|a| a.is_object())
}

fn decoded_samples(media: &Value, ssrc: u32) -> u64 {
    sent_audio(media, ssrc).map_or(0, |a| a["samples"].as_u64().unwrap_or(0))
}

fn sent_tone(media: &Value, ssrc: u32, hz: u32) -> f64 {
    sent_audio(media, ssrc)
        .and_then(|a| a["tones"][hz.to_string()].as_f64())
        .unwrap_or_else(|| panic!("no {hz} Hz level for SSRC {ssrc}: {media:#}"))
}

/// The figures of one run.
#[derive(Debug)]
struct EchoRun {
    /// At the microphone (the room's tap): the median of the measured seconds.
    mic: AtMicrophone,
    /// In what the node decoded: the median of the measured seconds.
    sent_far_dbfs: f64,
    sent_near_dbfs: f64,
    /// Both tones in what the node decoded, for each second after the echo arrived.
    by_second: Vec<(f64, f64)>,
}

impl EchoRun {
    fn erle_db(&self) -> f64 {
        self.mic.far_dbfs - self.sent_far_dbfs
    }

    fn near_change_db(&self) -> f64 {
        self.sent_near_dbfs - self.mic.near_dbfs
    }

    /// A figure, not a limit (as media_output's).
    fn print(&self, label: &str) {
        let seconds: Vec<String> = self
            .by_second
            .iter()
            .map(|(far, near)| format!("{far:.1}/{near:.1}"))
            .collect();
        eprintln!(
            "media echo ({label}): at the microphone {FAR_HZ} Hz {:.1} dBFS, {NEAR_HZ} Hz \
             {:.1} dBFS; sent {FAR_HZ} Hz {:.1} dBFS, {NEAR_HZ} Hz {:.1} dBFS; ERLE {:.1} dB, \
             near end {:+.1} dB; sent {FAR_HZ}/{NEAR_HZ} Hz for each second after the echo \
             began: [{}] dBFS",
            self.mic.far_dbfs,
            self.mic.near_dbfs,
            self.sent_far_dbfs,
            self.sent_near_dbfs,
            self.erle_db(),
            self.near_change_db(),
            seconds.join(", "),
        );
    }
}

/// A call on a board in the room; measures the echo and the talker at the microphone and in
/// what the node decoded after [`CONVERGENCE_SECS`]. `name` makes the room's channels unique
/// in the test process.
async fn echo_run(name: &str, echo_cancellation: bool) -> Option<EchoRun> {
    if cfg!(target_arch = "aarch64") {
        // Under qemu-user the room and both of roomd's pipelines fall behind the clock.
        eprintln!("skipped: the real-time echo measurement runs in the native pass");
        return None;
    }
    let _logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let spk = format!("roomd-it-{name}-spk");
    let mic = format!("roomd-it-{name}-mic");
    let room = Room::start(&spk, &mic);
    room.wait("the near-end talker", |h| h.near_dbfs > -24.0)
        .await;

    let (sim, daemon, mut status) = registered_daemon_on(
        dir.path(),
        FAR_END,
        |c| {
            c.media.echo_cancellation = echo_cancellation;
            // The canceller alone (see the module doc): noise suppression takes a steady tone
            // for noise, which it is by its model (the talker's 1000 Hz went out 12.8 dB down
            // with it and no gain control), and gain control then lifts what is left (+4 to
            // +5 dB without suppression). Both move the talker for reasons unrelated to echo.
            c.media.noise_suppression = false;
            c.media.gain_control = false;
        },
        room_board(&spk, &mic),
    )
    .await;
    sim.remove_participant(LEAVES)
        .expect("participant 3 leaves");
    let s = dial_until_media(&daemon, &mut status, "bob@example.com", TIMEOUT).await;
    let ssrc = s.media.session.as_ref().unwrap().audio.ssrc;
    // The receive and send pipelines, and with them the speaker and microphone, run from the
    // session's start.
    room.let_in().await;

    // Convergence starts when the far end's echo reaches the microphone.
    room.wait("the far end's echo", |h| h.far_dbfs > -30.0)
        .await;
    room.settle_microphone();
    let start = decoded_samples(
        &sim.wait_media(TIMEOUT, "the node decodes the device's audio", |m| {
            decoded_samples(m, ssrc) > 0
        })
        .await,
        ssrc,
    );
    // The node measures the last second it decoded: one figure per second of it.
    let mut by_second = Vec::new();
    let mut at_mic = Vec::new();
    for second in 1..=CONVERGENCE_SECS + MEASURED_SECS {
        let until = start + (second * RATE) as u64;
        let media = sim
            .wait_media(
                TIMEOUT,
                &format!("{second} s of the device's audio after the echo began"),
                |m| decoded_samples(m, ssrc) >= until,
            )
            .await;
        by_second.push((
            sent_tone(&media, ssrc, FAR_HZ),
            sent_tone(&media, ssrc, NEAR_HZ),
        ));
        at_mic.push(room.now());
    }
    let measured = CONVERGENCE_SECS..;
    let run = EchoRun {
        mic: AtMicrophone {
            far_dbfs: median(at_mic[measured.clone()].iter().map(|m| m.far_dbfs)),
            near_dbfs: median(at_mic[measured.clone()].iter().map(|m| m.near_dbfs)),
        },
        sent_far_dbfs: median(by_second[measured.clone()].iter().map(|s| s.0)),
        sent_near_dbfs: median(by_second[measured].iter().map(|s| s.1)),
        by_second,
    };
    let _ = daemon.run_until(async {}).await;
    drop(room);
    Some(run)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The room itself: the echo at the microphone is the speaker's 450 Hz (−12 dBFS at volume
/// 50) 6 dB down, the talker at its −18; within 2 dB.
fn assert_room(run: &EchoRun) {
    assert!(
        (run.mic.far_dbfs + 18.0).abs() < 2.0 && (run.mic.near_dbfs + 18.0).abs() < 2.0,
        "the microphone picks up {:?}, expected both tones at −18 dBFS",
        run.mic
    );
}

/// The issue's test. roomd's `webrtcdsp` must run delay-agnostic: aligned by the probe's
/// timestamps instead (the default) it cancels nothing here (ERLE 0 to 2 dB), as the far end
/// only starts seconds after the DSP did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_of_the_far_end_is_cancelled_and_the_near_end_talker_is_kept() {
    let Some(run) = echo_run("echo-aec", true).await else {
        return;
    };
    run.print("echo cancellation on");
    assert_room(&run);
    assert!(
        run.erle_db() >= MIN_ERLE_DB,
        "ERLE {:.1} dB < {MIN_ERLE_DB} dB after {CONVERGENCE_SECS} s of convergence: {run:?}",
        run.erle_db()
    );
    assert!(
        run.near_change_db().abs() <= NEAR_KEPT_DB,
        "the near-end talker moved {:+.1} dB (more than {NEAR_KEPT_DB}): {run:?}",
        run.near_change_db()
    );
}

/// The baseline: without the canceller the same room and chain send the echo as the
/// microphone picks it up, so the ERLE above is the canceller's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_echo_cancellation_the_echo_is_sent_as_picked_up() {
    let Some(run) = echo_run("echo-off", false).await else {
        return;
    };
    run.print("echo cancellation off");
    assert_room(&run);
    assert!(
        run.erle_db().abs() <= 3.0 && run.near_change_db().abs() <= 3.0,
        "without the canceller both tones go out as picked up (±3 dB): {run:?}"
    );
}
