//! A call's media through the guest's real kernel drivers, measured where it ends up:
//!
//! - camera: vivid's `/dev/video0` (V4L2) → roomd's `v4l2src` → the layers the media node
//!   asked for → the node decodes them (`GET /admin/media`: frames per size);
//! - microphone: the harness plays a 1 kHz tone into `hw:Loopback,0,0` → roomd's `alsasrc`
//!   on `hw:Loopback,1,0` → the node measures the device's audio (`dominantHz`);
//! - speaker: the node's far-end tones → roomd's `alsasink` on `hw:Loopback,0,1` → the harness
//!   records `hw:Loopback,1,1` and measures it here;
//! - display: the composed layout → `kmssink` on virtio-gpu → QMP `screendump`: the main
//!   region shows the active speaker's colour, the first thumbnail the next participant's.
//!
//! roomd runs as its hardened unit throughout (DevicePolicy=closed with DeviceAllow=); the
//! harness shows the device cgroup is enforced in this kernel (a transient unit without
//! char-video4linux cannot open /dev/video0) and which devices roomd's process holds: after the
//! far end hangs up, none of the camera, PCMs or display card.
//!
//! The far end (docs/wire-profile-choices.md "§7 Far-end media"): participant n shows the
//! solid colour PALETTE[n-1] and sends a sine at 300 + 150·n Hz; the active speaker's is the
//! loudest.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use roomd::media::layers::{Capture, layer_for};
use roomd::media::layout::{self, LayoutFamily};
use roomd::platform::logging::message_id;
use roomd::proto::multistream::ScrRequest;
use roomd_testkit::audio;
use roomd_testkit::far_end::{
    PALETTE, live_session as session, received_stream as stream, tone_hz,
};
use serde_json::Value;

use crate::Figures;
use crate::guest::{Guest, Picture};

const STEP: Duration = Duration::from_secs(120);
/// Bound for what the media pipelines deliver under TCG.
const MEDIA: Duration = Duration::from_secs(180);
/// Between two looks at state that has no change notification (the node's snapshot, the
/// display, the loopback's recording).
const POLL: Duration = Duration::from_millis(500);
/// Frames the node must decode of every layer.
const FRAMES: u64 = 10;

/// The scenario's meeting (tests/system_qemu/guest/scenario.toml).
const PARTICIPANTS: u8 = 2;

/// The tone the harness plays into the room's microphone.
const MIC_TONE_HZ: f64 = 1000.0;
/// Where it lies on the share, relative to its root.
pub const TONE_FILE: &str = "harness/tone-1000hz.s16";
const TONE_SECONDS: usize = 90;
/// The node's spectrum has 5.86 Hz bins: two either side.
const NODE_HZ_TOLERANCE: f64 = 12.0;
/// The harness's own scan below is 1 Hz fine over a 1 s recording.
const SPEAKER_HZ_TOLERANCE: f64 = 3.0;
/// Per channel: the display path goes RGB → I420 (sim) → H.264 → I420 → RGB (roomd) → XRGB.
const COLOUR_TOLERANCE: i32 = 40;

/// `TONE_SECONDS` of a 1 kHz sine at −6 dBFS peak, raw S16LE mono at 48 kHz (`aplay -t raw`).
pub fn write_tone(path: &Path) {
    let rate = f64::from(audio::RATE);
    let samples = TONE_SECONDS * audio::RATE as usize;
    let mut bytes = Vec::with_capacity(samples * 2);
    for i in 0..samples {
        let v = 0.5 * (2.0 * std::f64::consts::PI * MIC_TONE_HZ * i as f64 / rate).sin();
        bytes.extend_from_slice(&((v * 32767.0) as i16).to_le_bytes());
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// What the media checks need to know of roomd's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub capture: Capture,
    pub display: (u32, u32),
}

fn streams<'a>(media: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    session(media)
        .and_then(|s| s["streams"].as_array())
        .into_iter()
        .flatten()
        .filter(move |s| s["kind"] == kind)
}

fn frames_at(media: &Value, ssrc: u64, size: &str) -> u64 {
    stream(media, ssrc).map_or(0, |s| s["resolutions"][size].as_u64().unwrap_or(0))
}

/// The device's audio as the node measured it: (dominant Hz, level of `hz` in dBFS).
fn device_audio(media: &Value, hz: u32) -> (Option<f64>, Option<f64>) {
    let Some(audio) = streams(media, "audio").next().map(|s| &s["audio"]) else {
        return (None, None);
    };
    (
        audio["dominantHz"].as_f64(),
        audio["tones"][hz.to_string()].as_f64(),
    )
}

/// The node's first SCR (on the device's first video SCA), as roomd's type.
fn first_scr(media: &Value) -> Option<Vec<ScrRequest>> {
    let scr = session(media)?["scrsSent"].as_array()?.first()?;
    scr["requests"]
        .as_array()?
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap_or(0);
            Some(ScrRequest {
                csi: 0,
                bitrate_bps: u32::try_from(n("bitrate")).ok()?,
                srcid: u32::try_from(r["srcid"].as_u64()?).ok()?,
                policy: 0,
                priority: 255,
                adjid: 0,
                dup: false,
                payload_type: 126,
                max_mbps: u32::try_from(n("maxMbps")).ok()?,
                max_fs: u32::try_from(n("maxFs")).ok()?,
                max_cfps: u16::try_from(n("maxCfps")).ok()?,
                max_width: u16::try_from(n("maxWidth")).ok()?,
                max_height: u16::try_from(n("maxHeight")).ok()?,
            })
        })
        .collect()
}

async fn node_media(guest: &mut Guest) -> Value {
    let text = guest.ok("sim_admin GET /admin/media", STEP).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET /admin/media: {e}:\n{text}"))
}

/// Looks at the node's snapshot until `check` holds for it.
async fn wait_node(
    guest: &mut Guest,
    what: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let media = node_media(guest).await;
        if check(&media) {
            return media;
        }
        if started.elapsed() >= within {
            guest
                .fail_with_journal(&format!(
                    "{what}: not within {within:?}; the node's session:\n{:#}",
                    session(&media).unwrap_or(&media)
                ))
                .await;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// 1 s of what roomd plays on the speaker: the loopback's capture side, as samples.
async fn record_speaker(guest: &mut Guest) -> Vec<f32> {
    let text = guest
        .ok(
            // stderr apart: arecord reports overruns (a late reader under TCG) there, even with -q.
            "arecord -q -D plughw:Loopback,1,1 -f S16_LE -r 48000 -c 1 -t raw -d 1 /tmp/speaker.raw \
             2>/tmp/arecord.log || { cat /tmp/arecord.log; exit 1; }\n\
             base64 -w0 /tmp/speaker.raw",
            STEP,
        )
        .await;
    let bytes = BASE64
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("the recording's base64: {e}"));
    bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// The strongest frequency between 100 Hz and 4 kHz (a 5 Hz scan, then 1 Hz around its peak).
fn dominant_hz(samples: &[f32]) -> f64 {
    let peak = |from: f64, to: f64, step: f64| {
        let mut best = (from, f64::MIN);
        let mut f = from;
        while f <= to {
            let db = audio::tone_dbfs(samples, f);
            if db > best.1 {
                best = (f, db);
            }
            f += step;
        }
        best.0
    };
    let coarse = peak(100.0, 4000.0, 5.0);
    peak(coarse - 5.0, coarse + 5.0, 1.0)
}

/// The palette entry (participant number) nearest to `rgb`, and its largest channel distance.
fn nearest_participant(rgb: [u8; 3]) -> (u8, i32) {
    let distance = |p: &[u8; 3]| {
        (0..3)
            .map(|c| (i32::from(p[c]) - i32::from(rgb[c])).abs())
            .max()
            .unwrap_or(0)
    };
    let (i, p) = PALETTE
        .iter()
        .enumerate()
        .min_by_key(|(_, p)| distance(p))
        .unwrap();
    (i as u8 + 1, distance(p))
}

/// Where each participant must show, and what the display shows there.
struct Display {
    main: (usize, usize),
    thumbnail: (usize, usize),
}

impl Display {
    fn new(size: (u32, u32)) -> Self {
        let regions = layout::regions(LayoutFamily::Auto, size.0, size.1);
        let at = |i: usize| {
            let (x, y) = regions[i].centre();
            (x as usize, y as usize)
        };
        Self {
            main: at(0),
            thumbnail: at(1),
        }
    }

    /// (main, first thumbnail): the participant each shows, if its colour is one within the
    /// tolerance, and the colour.
    fn read(&self, picture: &Picture) -> [(Option<u8>, [u8; 3]); 2] {
        [self.main, self.thumbnail].map(|(x, y)| {
            // The thumbnail is 40×22 on a 320×180 display: average a 5×5 patch at its centre.
            let rgb = picture.around(x, y, 2);
            let (n, d) = nearest_participant(rgb);
            ((d <= COLOUR_TOLERANCE).then_some(n), rgb)
        })
    }
}

/// Screendumps until the main region shows `main` and the first thumbnail `thumbnail`.
async fn wait_display(
    guest: &mut Guest,
    display: &Display,
    dump: &Path,
    (main, thumbnail): (u8, u8),
    artifacts: &Option<PathBuf>,
) -> [(Option<u8>, [u8; 3]); 2] {
    let started = Instant::now();
    loop {
        let picture = guest.screendump(dump).await;
        let seen = display.read(&picture);
        if seen[0].0 == Some(main) && seen[1].0 == Some(thumbnail) {
            return seen;
        }
        if started.elapsed() >= MEDIA {
            keep(artifacts, dump, "screendump-failed.ppm");
            guest
                .fail_with_journal(&format!(
                    "the display ({}×{}) does not show participant {main} in the main region and \
                     {thumbnail} in the first thumbnail within {MEDIA:?}: main {:?}, thumbnail {:?}",
                    picture.width, picture.height, seen[0], seen[1],
                ))
                .await;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Records the speaker until its loudest tone is `participant`'s; that recording's
/// dominant frequency and the participants' tone levels.
async fn wait_speaker(guest: &mut Guest, participant: u8) -> (f64, Vec<(u8, f64)>) {
    let started = Instant::now();
    let candidates: Vec<f64> = (1..=PARTICIPANTS).map(tone_hz).collect();
    loop {
        let samples = record_speaker(guest).await;
        let loudest = audio::loudest_of(&samples, &candidates);
        let level = audio::tone_dbfs(&samples, tone_hz(participant));
        if loudest == tone_hz(participant) && level > -50.0 {
            let levels = (1..=PARTICIPANTS)
                .map(|n| (n, audio::tone_dbfs(&samples, tone_hz(n))))
                .collect();
            return (dominant_hz(&samples), levels);
        }
        if started.elapsed() >= MEDIA {
            let alsa = guest
                .run(
                    "head -n 30 /proc/asound/card0/cable#* /proc/asound/card0/pcm0p/sub1/status \
                     /proc/asound/card0/pcm0p/sub1/hw_params",
                    STEP,
                )
                .await;
            guest
                .fail_with_journal(&format!(
                    "the speaker does not play participant {participant}'s {} Hz within {MEDIA:?}: \
                     loudest of {candidates:?} is {loudest} Hz at {level:.1} dBFS, whole {:.1} dBFS\n\
                     --- the loopback ---\n{}",
                    tone_hz(participant),
                    audio::rms_dbfs(&samples),
                    alsa.text
                ))
                .await;
        }
    }
}

fn levels_text(levels: &[(u8, f64)]) -> String {
    levels
        .iter()
        .map(|(n, db)| format!("{} Hz {db:.1} dBFS", tone_hz(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every media check of the call; the call is up, the microphone unmuted and the privacy
/// switch open. Ends the call from the far end when done.
pub async fn check_call_media(
    guest: &mut Guest,
    figures: &mut Figures,
    geometry: Geometry,
    work: &Path,
    artifacts: Option<PathBuf>,
) {
    let started = Instant::now();

    // --- the devices, through the hardened unit ------------------------------------------
    let unit = guest
        .ok(
            "systemctl show -p DevicePolicy -p DeviceAllow -p SupplementaryGroups roomd.service",
            STEP,
        )
        .await;
    assert!(
        unit.contains("DevicePolicy=closed"),
        "roomd.service: DevicePolicy=closed:\n{unit}"
    );
    for class in ["char-video4linux", "char-alsa", "char-drm"] {
        assert!(
            unit.contains(class),
            "roomd.service allows {class}:\n{unit}"
        );
    }
    // The device cgroup is enforced by this kernel: a transient unit like roomd's, as roomd
    // and in group video (so the file mode allows it), cannot open the camera without
    // DeviceAllow=char-video4linux, and can with it.
    let probe = guest
        .ok(
            r#"probe() {
                systemd-run --quiet --wait --pipe --collect -p User=roomd -p SupplementaryGroups=video \
                    -p DevicePolicy=closed -p "DeviceAllow=$1" /bin/sh -c 'exec 3<>/dev/video0' </dev/null 2>&1
                echo "exit=$?"
            }
            echo "without: $(probe 'char-alsa rw')"
            echo "with: $(probe 'char-video4linux rw')""#,
            STEP,
        )
        .await;
    let line = |prefix: &str| {
        probe
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        line("without:").contains("Operation not permitted")
            && !line("without:").ends_with("exit=0"),
        "without DeviceAllow=char-video4linux, /dev/video0 cannot be opened:\n{probe}"
    );
    assert!(
        line("with:").ends_with("exit=0"),
        "with DeviceAllow=char-video4linux, /dev/video0 opens:\n{probe}"
    );
    figures.add(
        "device cgroup (transient unit as roomd, open /dev/video0)",
        format!(
            "without char-video4linux: {}; with: {}",
            line("without:").trim_start_matches("without: "),
            line("with:").trim_start_matches("with: ")
        ),
    );
    // What roomd's own process holds: the camera, the loopback's capture (device 1) and
    // playback (device 0) PCMs, the DRM card.
    let wanted = [
        "/dev/video0",
        "/dev/snd/pcmC0D1c",
        "/dev/snd/pcmC0D0p",
        "/dev/dri/card0",
    ];
    let held = guest
        .ok(
            &format!(
                r#"holds_all() {{
                    local open; open="$(roomd_devices)"
                    for d in {}; do grep -qx "$d" <<<"$open" || return 1; done
                }}
                wait_until 60 holds_all || {{ echo "roomd holds:"; roomd_devices; exit 1; }}
                roomd_devices"#,
                wanted.join(" ")
            ),
            STEP,
        )
        .await;
    figures.add(
        "devices roomd.service holds in the call",
        held.split_whitespace().collect::<Vec<_>>().join(" "),
    );

    // --- camera: the node decodes every layer it asked for, at the size asked ------------
    let media = wait_node(
        guest,
        "the node's SCR and the device's layers",
        MEDIA,
        |m| {
            first_scr(m).is_some_and(|requests| {
                !requests.is_empty()
                    && requests.iter().all(|r| {
                        layer_for(r, geometry.capture).is_some_and(|c| {
                            frames_at(m, u64::from(r.srcid), &format!("{}x{}", c.width, c.height))
                                >= FRAMES
                        })
                    })
            })
        },
    )
    .await;
    let requests = first_scr(&media).unwrap();
    let mut decoded = Vec::new();
    for r in &requests {
        let c = layer_for(r, geometry.capture).unwrap();
        let size = format!("{}x{}", c.width, c.height);
        let s = stream(&media, u64::from(r.srcid)).unwrap();
        let other: u64 = s["resolutions"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| **k != size)
            .map(|(_, v)| v.as_u64().unwrap_or(0))
            .sum();
        assert_eq!(
            other, 0,
            "ssrc {:#x} (request {}x{}) decoded only at {size}: {s:#}",
            r.srcid, r.max_width, r.max_height
        );
        assert_eq!(s["packetsWithoutCsi"], 0, "{s:#}");
        decoded.push(format!(
            "asked ≤{}x{} → {size} ({} frames, {} fps)",
            r.max_width, r.max_height, s["framesDecoded"], s["fps"]
        ));
    }
    figures.add("node decodes the vivid camera's layers", decoded.join("; "));
    // What a call costs the guest (TCG): the busiest processes over 5 s, the load average.
    let load = guest
        .ok(
            "top -b -n 2 -d 5 -w 120 | awk '/^top -/{n++} n==2' | sed -n '1p;8,12p'",
            STEP,
        )
        .await;
    figures.add(
        "guest during the call (top)",
        load.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(" | "),
    );

    // --- microphone: a tone into the loopback arrives at the node at its frequency -------
    let (before, _) = device_audio(&media, 1000);
    assert!(
        before.is_none_or(|hz| (hz - MIC_TONE_HZ).abs() > NODE_HZ_TOLERANCE),
        "the device's audio is at {before:?} Hz before the tone plays"
    );
    let tone_started = Instant::now();
    guest
        .ok(
            &format!(
                "systemd-run --quiet --collect --unit=harness-tone aplay -q -D plughw:Loopback,0,0 \
                 -t raw -f S16_LE -r 48000 -c 1 /mnt/roomd/{TONE_FILE}"
            ),
            STEP,
        )
        .await;
    let media = wait_node(guest, "the microphone's tone at the node", MEDIA, |m| {
        device_audio(m, 1000)
            .0
            .is_some_and(|hz| (hz - MIC_TONE_HZ).abs() <= NODE_HZ_TOLERANCE)
    })
    .await;
    let tone_latency = tone_started.elapsed();
    guest
        .ok(
            "systemctl stop harness-tone.service 2>/dev/null || true",
            STEP,
        )
        .await;
    let (hz, level) = device_audio(&media, 1000);
    let audio = &streams(&media, "audio").next().unwrap()["audio"];
    figures.add(
        "1 kHz into hw:Loopback,0,0 → node (device audio)",
        format!(
            "dominant {:.1} Hz, 1000 Hz at {:.1} dBFS, level {} dBFS, seen after {:.1} s",
            hz.unwrap(),
            level.unwrap_or(f64::NAN),
            audio["levelDbfs"],
            tone_latency.as_secs_f64()
        ),
    );

    // --- speaker: the active speaker's tone out of the loopback --------------------------
    let (hz, levels) = wait_speaker(guest, 1).await;
    figures.add(
        "hw:Loopback,1,1 (roomd's speaker) with participant 1 speaking",
        format!("dominant {hz:.0} Hz; {}", levels_text(&levels)),
    );
    assert!(
        (hz - tone_hz(1)).abs() <= SPEAKER_HZ_TOLERANCE,
        "the speaker's dominant frequency is {hz} Hz, not participant 1's {} Hz",
        tone_hz(1)
    );

    // --- display: the active speaker in the main region ----------------------------------
    let display = Display::new(geometry.display);
    let dump = work.join("screendump.ppm");
    let seen = wait_display(guest, &display, &dump, (1, 2), &artifacts).await;
    figures.add(
        "screendump with participant 1 speaking",
        format!(
            "main centre {:?} (participant 1 is {:?}), first thumbnail {:?} (participant 2 is {:?})",
            seen[0].1, PALETTE[0], seen[1].1, PALETTE[1]
        ),
    );
    keep(&artifacts, &dump, "screendump-speaker-1.ppm");

    // --- the active speaker changes: the display and the speaker follow ------------------
    let switched = Instant::now();
    guest
        .ok(
            r#"sim_admin POST /admin/media/active-speaker '{"participant": 2}'"#,
            STEP,
        )
        .await;
    let seen = wait_display(guest, &display, &dump, (2, 1), &artifacts).await;
    let display_after = switched.elapsed();
    let (hz, levels) = wait_speaker(guest, 2).await;
    figures.add(
        "active speaker 1 → 2: display and speaker follow",
        format!(
            "main {:?}, thumbnail {:?} after {:.1} s; speaker dominant {hz:.0} Hz ({})",
            seen[0].1,
            seen[1].1,
            display_after.as_secs_f64(),
            levels_text(&levels)
        ),
    );
    keep(&artifacts, &dump, "screendump-speaker-2.ppm");
    assert!(
        (hz - tone_hz(2)).abs() <= SPEAKER_HZ_TOLERANCE,
        "the speaker's dominant frequency is {hz} Hz, not participant 2's {} Hz",
        tone_hz(2)
    );

    // --- the far end hangs up: roomd lets go of the speaker, microphone and display -------
    let loci: Value = serde_json::from_str(&guest.ok("sim_admin GET /admin/locus", STEP).await)
        .expect("GET /admin/locus");
    let id = loci["loci"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|l| l["id"].as_str())
        .unwrap_or_else(|| panic!("no locus: {loci:#}"))
        .to_owned();
    let after = guest
        .ok(
            &format!(
                r#"set -e
                c=$(journal_cursor)
                sim_admin POST /admin/locus/{id}/hangup '{{}}' >/dev/null
                wait_journal 60 "$c" _SYSTEMD_UNIT=roomd.service MESSAGE_ID={ended} >/dev/null || {{ echo 'the call did not end'; exit 1; }}
                released() {{ ! roomd_devices | grep -Eq '^/dev/(video|snd/pcm|dri/)'; }}
                wait_until 60 released || {{ echo "roomd still holds:"; roomd_devices; exit 1; }}
                if journalctl -b -u roomd.service -o cat | grep -F 'video4linux2 plugin'; then
                    echo 'roomd runs without GST_V4L2_FORCE_DRAIN'; exit 1
                fi
                roomd_devices"#,
                ended = message_id::CALL_ENDED
            ),
            STEP,
        )
        .await;
    // The camera too: the guest's GStreamer (1.22.0) keeps the capture's buffer pool and a
    // descriptor of /dev/video0 after every call unless the unit's GST_V4L2_FORCE_DRAIN=1
    // reaches roomd (docs/platform.md "Camera descriptors after a call"); roomd warns at start
    // when it does not.
    figures.add(
        "devices roomd.service holds after the far end hung up",
        after.split_whitespace().collect::<Vec<_>>().join(" "),
    );
    figures.add(
        "media checks (devices, camera, microphone, speaker, display, hang-up)",
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    );
}

/// Copies `file` to the artifacts directory, if one was asked for (`ROOMD_SYSTEM_ARTIFACTS`).
fn keep(artifacts: &Option<PathBuf>, file: &Path, name: &str) {
    if let Some(dir) = artifacts {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::copy(file, dir.join(name));
    }
}
