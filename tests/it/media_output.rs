//! What the room hears and sees: the board's speaker and display roles played for real.
//! The test board writes the speaker to a raw file (S16LE mono 48 kHz, in real time) that
//! the test measures with its own Goertzel (`roomd_testkit::audio`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use roomd::calls::CallState;
use roomd::hw::board::{Board, ElementSpec};
use roomd_testkit::audio;
use roomd_testkit::daemon::{registered_daemon_on, sim_board, wait_status};

use crate::support::{self, LogCapture};

const MEASURE_TIMEOUT: Duration = Duration::from_secs(60);

/// The sim board with its speaker writing `dir/speaker.raw`.
fn measuring_board(dir: &Path) -> (Board, PathBuf) {
    let mut board = sim_board();
    let speaker = dir.join("speaker.raw");
    let mut spec = ElementSpec::new("filesink");
    spec.properties
        .insert("location".into(), speaker.display().to_string());
    spec.properties.insert("sync".into(), "true".into());
    spec.caps = Some("audio/x-raw,format=S16LE,rate=48000,channels=1".into());
    board.media.speaker = spec;
    (board, speaker)
}

/// Polls the speaker file (a file has no change event) until `check` holds for its last
/// half second; returns those samples.
async fn until_heard(speaker: &Path, what: &str, check: impl Fn(&[f32]) -> bool) -> Vec<f32> {
    let poll = async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let samples = audio::tail_s16_mono(speaker, 0.5);
            if samples.len() >= 12_000 && check(&samples) {
                return samples;
            }
        }
    };
    match tokio::time::timeout(MEASURE_TIMEOUT, poll).await {
        Ok(samples) => samples,
        Err(_) => {
            let last = audio::tail_s16_mono(speaker, 0.5);
            panic!(
                "never heard: {what}; last half second: {:.1} dBFS, ring tone {:.1} dBFS",
                audio::rms_dbfs(&last),
                audio::tone_dbfs(&last, roomd::media::ring::RING_HZ)
            )
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_tone_is_heard_on_an_incoming_call_and_stops_on_answer() {
    let _logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (board, speaker) = measuring_board(dir.path());
    let (sim, daemon, mut status) = registered_daemon_on(dir.path(), "", |_| {}, board).await;
    support::wait_call_control(&mut status).await;
    sim.locus_incoming("alice@example.com", "Alice").unwrap();
    wait_status(&mut status, "the room rings", |s| {
        s.calls
            .active
            .iter()
            .any(|c| c.status == CallState::Ringing)
    })
    .await;
    let ring = roomd::media::ring::RING_HZ;
    let heard = until_heard(&speaker, "the ring tone", |s| {
        audio::tone_dbfs(s, ring) > -30.0
    })
    .await;
    // At the default volume 50 the two −12 dBFS tones play at −18 dBFS each (RMS −21).
    let level = audio::tone_dbfs(&heard, ring);
    assert!(
        (-24.0..-18.0).contains(&level),
        "ring tone at {level:.1} dBFS"
    );

    daemon.room().calls().accept(None).await.unwrap();
    wait_status(&mut status, "answered", |s| {
        s.calls
            .active
            .iter()
            .any(|c| c.status == CallState::Connected)
    })
    .await;
    until_heard(&speaker, "the ring tone stops", |s| {
        audio::tone_dbfs(s, ring) < -60.0
    })
    .await;
    let _ = daemon.run_until(async {}).await;
}

#[tokio::test]
async fn a_board_element_that_is_not_installed_stops_the_start() {
    let _logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = roomd_testkit::daemon::start_sim(dir.path()).await;
    let config = roomd_testkit::daemon::config_for(&sim, dir.path());
    let mut board = sim_board();
    board.media.display = ElementSpec::new("kmssink-not-installed");
    let err = roomd::daemon::Daemon::start(roomd::daemon::DaemonOptions {
        config,
        board,
        notifier: roomd::platform::systemd::Notifier::disabled(),
        watchdog: None,
    })
    .await
    .map(|_| ())
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "board role `display`: GStreamer element `kmssink-not-installed` is not installed \
         (install the plugin package that provides it)"
    );
}
