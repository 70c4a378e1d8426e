//! The booted aarch64 system test: roomd as an integrator ships it, on an emulated device.
//!
//! `qemu-system-aarch64 -M virt` (TCG, `-nic none`) boots Debian bookworm's arm64 kernel and
//! a root filesystem built from Debian packages (scripts/system/image.sh). The cross-built
//! release `roomd` and `roomd-sim`, their units and the board files reach the guest through a
//! read-only 9p share and are installed the way a package would install them; roomd then
//! runs as the real `systemd/roomd.service` against roomd-sim, both on the guest's loopback.
//! GPIO goes through the real kernel: a gpio-sim chip (module built from Debian's kernel
//! source by the image script) carries the line names of `board/qemu-virt-media.toml`. So do
//! the media devices (media.rs): vivid is the camera, snd-aloop the microphone and speaker,
//! virtio-gpu the display; a call's media is measured where it ends up (the node's decoder,
//! the loopback, a QMP screendump).
//!
//! Run by `make test` (scripts/test.sh step `system`), which builds the image and the
//! binaries and sets `ROOMD_SYSTEM_IMAGE` and `ROOMD_SYSTEM_BINARIES`. Without them the test
//! says so and passes: a plain `cargo test` has neither.

mod guest;
mod media;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guest::{Guest, Image};
use roomd::hw::board::{Board, GpioRole};
use roomd::media::layers::Capture;
use roomd::platform::logging::message_id;
use serde_json::Value;

const BOOT: Duration = Duration::from_secs(300);
const STEP: Duration = Duration::from_secs(120);
/// Activation runs SRP-6a with the 3072-bit group on an emulated CPU.
const CLOUD: Duration = Duration::from_secs(300);
const ACTIVATION_CODE: &str = "4353-4500-1234-5678";
/// The board the guest's roomd.toml names: GPIO line names and the media devices.
const BOARD: &str = "qemu-virt-media";

fn copy_into(from: &Path, to: &Path, mode: u32) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The 9p share: what the guest installs, laid out like the package would be.
fn build_share(share: &Path, binaries: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let here = repo.join("tests/system_qemu/guest");
    for (file, mode) in [("agent.sh", 0o755), ("lib.sh", 0o644)] {
        copy_into(&here.join(file), &share.join("harness").join(file), mode);
    }
    copy_into(
        &repo.join("yocto-layer/meta-roomd/recipes-roomd/roomd/files/roomd-gpio-sim"),
        &share.join("harness/roomd-gpio-sim"),
        0o755,
    );
    for bin in ["roomd", "roomd-sim"] {
        copy_into(&binaries.join(bin), &share.join("bin").join(bin), 0o755);
    }
    for unit in [
        "roomd.service",
        "roomd-sim.service",
        "roomd.sysusers",
        "roomd.tmpfiles",
    ] {
        copy_into(
            &repo.join("systemd").join(unit),
            &share.join("systemd").join(unit),
            0o644,
        );
    }
    for entry in std::fs::read_dir(repo.join("board")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            copy_into(
                &path,
                &share.join("board").join(path.file_name().unwrap()),
                0o644,
            );
        }
    }
    copy_into(
        &here.join("roomd.toml"),
        &share.join("etc/roomd.toml"),
        0o644,
    );
    copy_into(
        &here.join("scenario.toml"),
        &share.join("etc/scenario.toml"),
        0o644,
    );
    media::write_tone(&share.join(media::TONE_FILE));
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |v, key| &v[*key])
}

/// Every string value in a JSON document whose key names a token or secret.
fn secret_strings(value: &Value, key: &str, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            let key = key.to_ascii_lowercase();
            if (key.contains("token") || key.contains("secret") || key.contains("password"))
                && s.len() >= 8
            {
                out.push(s.clone());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| secret_strings(v, key, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| secret_strings(v, k, out)),
        _ => {}
    }
}

struct Figures(Vec<(String, String)>);

impl Figures {
    fn add(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        eprintln!("system-test: {name}: {value}");
        self.0.push((name.to_owned(), value));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booted_aarch64_guest_runs_roomd_under_systemd() {
    let Some(image_dir) = std::env::var_os("ROOMD_SYSTEM_IMAGE") else {
        eprintln!(
            "skipped: ROOMD_SYSTEM_IMAGE is not set. `make test` (scripts/test.sh system) builds \
             the guest image and the aarch64 binaries and runs this test with them."
        );
        return;
    };
    let binaries = PathBuf::from(
        std::env::var_os("ROOMD_SYSTEM_BINARIES")
            .expect("ROOMD_SYSTEM_BINARIES names the aarch64 release build (roomd, roomd-sim)"),
    );
    let image = Image::open(Path::new(&image_dir));
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    build_share(&share, &binaries);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let board = Board::load(&repo.join("board"), BOARD).expect("the guest's board file loads");
    let config = roomd::config::load(&repo.join("tests/system_qemu/guest/roomd.toml"), true)
        .expect("the guest's roomd.toml loads")
        .config;
    assert_eq!(config.device.board, BOARD);
    let geometry = media::Geometry {
        capture: Capture {
            width: config.media.capture_width,
            height: config.media.capture_height,
            fps: config.media.capture_fps,
        },
        display: (config.media.display_width, config.media.display_height),
    };
    // Screendumps and the like, kept when asked (the work directory is removed).
    let artifacts = std::env::var_os("ROOMD_SYSTEM_ARTIFACTS").map(PathBuf::from);
    let mut figures = Figures(Vec::new());
    figures.add(
        "kernel",
        image
            .get("kernel_package_version")
            .unwrap_or("?")
            .to_owned(),
    );

    let mut guest = Guest::spawn(&image, &share, work.path(), geometry.display).await;
    let booted = guest.wait_for_boot(BOOT).await;
    figures.add(
        "QEMU start to guest agent (multi-user)",
        format!("{:.1} s", booted.as_secs_f64()),
    );

    // --- install what a package installs ------------------------------------------------
    guest
        .ok(
            r#"set -e
            install -m 0755 /mnt/roomd/bin/roomd /mnt/roomd/bin/roomd-sim /usr/bin/
            install -m 0644 /mnt/roomd/systemd/roomd.service /mnt/roomd/systemd/roomd-sim.service /usr/lib/systemd/system/
            install -D -m 0644 /mnt/roomd/systemd/roomd.sysusers /usr/lib/sysusers.d/roomd.conf
            install -D -m 0644 /mnt/roomd/systemd/roomd.tmpfiles /usr/lib/tmpfiles.d/roomd.conf
            install -d /usr/share/roomd/board
            install -m 0644 /mnt/roomd/board/*.toml /usr/share/roomd/board/
            systemd-sysusers
            systemd-tmpfiles --create /usr/lib/tmpfiles.d/roomd.conf
            install -m 0644 /mnt/roomd/etc/roomd.toml /etc/roomd/roomd.toml
            install -D -m 0644 /mnt/roomd/etc/scenario.toml /etc/roomd-sim/scenario.toml
            systemctl daemon-reload
            id roomd"#,
            STEP,
        )
        .await;

    // --- the unit: verify and security exposure ------------------------------------------
    let verify = guest
        .run(
            "systemd-analyze verify /usr/lib/systemd/system/roomd.service 2>&1",
            STEP,
        )
        .await;
    assert!(
        verify.status == 0 && verify.text.trim().is_empty(),
        "systemd-analyze verify roomd.service is clean (exit {}):\n{}",
        verify.status,
        verify.text
    );
    let security = guest
        .ok("systemd-analyze security --no-pager roomd.service", STEP)
        .await;
    let exposure: f64 = security
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for roomd.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    figures.add(
        "systemd-analyze security roomd.service",
        format!("{exposure:.1}"),
    );
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{security}");

    // --- GPIO: a gpio-sim chip with the board's line names -------------------------------
    let gpio_sim = image
        .get("gpio_sim")
        .unwrap_or("unavailable: not in manifest");
    assert_eq!(
        gpio_sim, "module",
        "the image has no gpio-sim module ({gpio_sim}); see scripts/system/image.sh's log"
    );
    // The Yocto layer's `roomd-gpio-sim` makes the chip from the board file, as on a
    // qemuarm64 image.
    let names: Vec<&str> = board.gpio.lines.values().map(String::as_str).collect();
    let gpio = guest
        .ok(
            r#"set -e
            sh /mnt/roomd/harness/roomd-gpio-sim /usr/share/roomd/board/qemu-virt-media.toml
            udevadm settle
            chip=$(cat /sys/kernel/config/gpio-sim/roomd/bank0/chip_name)
            ls -l /dev/$chip
            gpioinfo $chip"#,
            STEP,
        )
        .await;
    for name in &names {
        assert!(gpio.contains(name), "gpioinfo shows {name}:\n{gpio}");
    }

    // --- roomd-sim, then roomd as its unit ------------------------------------------------
    guest
        .ok(
            r#"set -e
            systemctl start roomd-sim.service
            install -m 0644 /var/lib/roomd-sim/ca.pem /etc/roomd/sim-ca.pem"#,
            STEP,
        )
        .await;
    let started = Instant::now();
    let start = guest
        .ok(
            &format!(
                r#"set -e
                c=$(journal_cursor)
                systemctl start roomd.service
                systemctl is-active roomd.service
                wait_journal 10 "$c" _SYSTEMD_UNIT=roomd.service MESSAGE_ID={ready} >/dev/null
                systemctl status --no-pager --lines=0 roomd.service"#,
                ready = message_id::READY
            ),
            STEP,
        )
        .await;
    figures.add(
        "systemctl start roomd (Type=notify, to READY=1)",
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    );
    assert!(start.starts_with("active"), "is-active:\n{start}");
    assert!(
        start
            .lines()
            .any(|l| l.trim_start().starts_with("Status: \"")),
        "systemctl status shows the STATUS= line:\n{start}"
    );

    // --- activation, registration, websocket, bookings -----------------------------------
    let started = Instant::now();
    let waits: String = [
        ("activation", message_id::ACTIVATED),
        ("registration", message_id::REGISTERED),
        ("websocket online", message_id::WEBSOCKET_ONLINE),
        ("calendar catch-up", message_id::CALENDAR_CATCH_UP),
    ]
    .iter()
    .map(|(what, id)| {
        format!(
            "wait_journal {secs} \"$c\" MESSAGE_ID={id} >/dev/null || {{ echo 'no {what} event'; exit 1; }}\n",
            secs = CLOUD.as_secs()
        )
    })
    .collect();
    guest
        .ok(
            &format!(
                "set -e\nc=$(journal_cursor)\nroomd activate {ACTIVATION_CODE}\n{waits}\
                 wait_until 60 sh -c 'roomd status | grep -Eq \"Webex WebSocket Status: \\\"?Online\"'\n\
                 wait_until 60 sh -c 'roomd status | grep -Eq \"Bookings Count: \\\"?2\"'"
            ),
            CLOUD * 2,
        )
        .await;
    figures.add(
        "activation code to websocket online and bookings",
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    );
    let status: Value =
        serde_json::from_str(&guest.ok("roomd status --json", STEP).await).expect("status JSON");
    assert_eq!(at(&status, &["Webex", "Activation", "Status"]), "Activated");
    assert_eq!(
        at(&status, &["Webex", "Registration", "Status"]),
        "Registered"
    );
    assert_eq!(at(&status, &["Webex", "WebSocket", "Status"]), "Online");
    assert_eq!(at(&status, &["SystemUnit", "Hardware", "Board"]), BOARD);
    let bookings = guest.ok("roomd bookings", STEP).await;
    assert!(
        bookings.contains("Joinable now") && bookings.contains("Later today"),
        "roomd bookings:\n{bookings}"
    );
    let systemctl_status = guest
        .ok("systemctl show -p StatusText --value roomd.service", STEP)
        .await;
    assert_eq!(systemctl_status.trim(), "registered");

    // --- GPIO through the kernel: LEDs, mute, privacy, join ------------------------------
    let line = |role: GpioRole| board.gpio.lines[&role].as_str();
    let value = |role: GpioRole| format!("$(gpio_line {})/value", line(role));
    let pull = |role: GpioRole| format!("$(gpio_line {})/pull", line(role));
    guest
        .ok(
            &format!(
                r#"set -e
                wait_until 30 grep -qx 1 {status_led}
                wait_until 30 grep -qx 1 {meeting_led}
                grep -qx 0 {mute_led}"#,
                status_led = value(GpioRole::StatusLed),
                meeting_led = value(GpioRole::MeetingLed),
                mute_led = value(GpioRole::MuteLed),
            ),
            STEP,
        )
        .await;
    let press = |role: GpioRole| {
        format!(
            r#"c=$(journal_cursor)
            echo pull-up > {pull}
            wait_journal 60 "$c" MESSAGE_ID={pressed} >/dev/null || {{ echo 'press not counted'; exit 1; }}
            echo pull-down > {pull}
            "#,
            pull = pull(role),
            pressed = message_id::BUTTON_PRESSED
        )
    };
    guest
        .ok(
            &format!(
                "set -e\n{press}\nwait_until 30 sh -c 'roomd status | grep -Eq \"Audio Microphones Mute: \\\"?On\"'\n\
                 wait_until 30 grep -qx 1 {mute_led}",
                press = press(GpioRole::MuteButton),
                mute_led = value(GpioRole::MuteLed)
            ),
            STEP,
        )
        .await;
    guest
        .ok(
            &format!(
                "set -e\nc=$(journal_cursor)\necho pull-up > {pull}\n\
                 wait_journal 60 \"$c\" MESSAGE_ID={switch} >/dev/null\n\
                 wait_until 30 sh -c 'roomd status | grep -Eq \"Video Input MainVideoMute: \\\"?On\"'",
                pull = pull(GpioRole::PrivacySwitch),
                switch = message_id::PRIVACY_SWITCH
            ),
            STEP,
        )
        .await;
    guest
        .ok(
            &format!(
                "set -e\nc0=$(journal_cursor)\n{press}\n\
                 wait_journal 60 \"$c0\" MESSAGE_ID={dial} >/dev/null || {{ echo 'no dial'; exit 1; }}\n\
                 wait_journal 120 \"$c0\" MESSAGE_ID={connected} >/dev/null || {{ echo 'the call did not connect'; exit 1; }}",
                press = press(GpioRole::JoinButton),
                dial = message_id::DIAL_REQUESTED,
                connected = message_id::CALL_CONNECTED
            ),
            STEP * 2,
        )
        .await;
    let status: Value =
        serde_json::from_str(&guest.ok("roomd status --json", STEP).await).expect("status JSON");
    assert_eq!(
        at(&status, &["Calls", "LastDial", "Source"]),
        "gpio:join_button"
    );
    assert!(
        at(&status, &["Calls", "LastDial", "Number"])
            .as_str()
            .is_some_and(|n| n.contains("now@webex.sim.invalid")),
        "the join button dialled the OBTP booking: {}",
        at(&status, &["Calls", "LastDial"])
    );
    assert_eq!(at(&status, &["Audio", "Microphones", "Mute"]), "On");
    assert_eq!(at(&status, &["Video", "Input", "MainVideoMute"]), "On");

    // --- the call's media through vivid, snd-aloop and virtio-gpu -----------------------
    // Unmute (the mute button again) and open the privacy switch: the camera and the
    // microphone go out.
    guest
        .ok(
            &format!(
                "set -e\n{press}\nwait_until 30 sh -c 'roomd status | grep -Eq \"Audio Microphones Mute: \\\"?Off\"'\n\
                 wait_until 30 grep -qx 0 {mute_led}\n\
                 c=$(journal_cursor)\necho pull-down > {pull}\n\
                 wait_journal 60 \"$c\" MESSAGE_ID={switch} >/dev/null\n\
                 wait_until 30 sh -c 'roomd status | grep -Eq \"Video Input MainVideoMute: \\\"?Off\"'",
                press = press(GpioRole::MuteButton),
                mute_led = value(GpioRole::MuteLed),
                pull = pull(GpioRole::PrivacySwitch),
                switch = message_id::PRIVACY_SWITCH
            ),
            STEP,
        )
        .await;
    media::check_call_media(&mut guest, &mut figures, geometry, work.path(), artifacts).await;

    // --- journald for field technicians --------------------------------------------------
    let entries = json_lines(
        &guest
            .ok("journalctl --no-pager -u roomd.service -o json", STEP)
            .await,
    );
    for subsystem in ["activation", "registration", "websocket", "calendar"] {
        assert!(
            entries.iter().any(|e| e["ROOMD_EVENT"] == subsystem
                && e["MESSAGE_ID"].as_str().is_some_and(|id| id.len() == 32)),
            "a journal entry with ROOMD_EVENT={subsystem} and a MESSAGE_ID"
        );
    }
    let credentials: Value = serde_json::from_str(
        &guest
            .ok(
                "test \"$(stat -c %a /var/lib/roomd/credentials.json)\" = 600 && cat /var/lib/roomd/credentials.json",
                STEP,
            )
            .await,
    )
    .expect("credentials.json is JSON");
    let mut secrets = Vec::new();
    secret_strings(&credentials, "", &mut secrets);
    assert!(
        secrets.len() >= 2,
        "the access and refresh tokens are stored: {} secret(s) found",
        secrets.len()
    );
    let digits: String = ACTIVATION_CODE
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    secrets.extend([
        ACTIVATION_CODE.to_owned(),
        digits.clone(),
        ACTIVATION_CODE.replace('-', " "),
    ]);
    let journal = guest
        .ok("journalctl --no-pager -o export --all", STEP)
        .await;
    assert!(journal.len() > 10_000, "the whole journal was read");
    for secret in &secrets {
        assert!(
            !journal.contains(secret.as_str()),
            "a secret ({} characters, starting {:?}) appears in the journal",
            secret.len(),
            &secret[..4]
        );
    }

    // --- the watchdog and a crash: systemd restarts roomd, the bookings stay -------------
    let before: BTreeSet<String> = bookings.lines().map(str::to_owned).collect();
    let started = Instant::now();
    let watchdog = guest
        .ok(
            &format!(
                r#"set -e
                c=$(journal_cursor)
                old=$(main_pid)
                kill -STOP "$old"
                wait_journal 120 "$c" _SYSTEMD_UNIT=roomd.service MESSAGE_ID={ready} >/dev/null || {{ echo 'not restarted'; exit 1; }}
                test "$(main_pid)" != "$old"
                journal_after "$c" UNIT=roomd.service | grep -i watchdog"#,
                ready = message_id::READY
            ),
            Duration::from_secs(180),
        )
        .await;
    figures.add(
        "SIGSTOP to restarted (WatchdogSec=30s)",
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    );
    assert!(
        watchdog.to_lowercase().contains("watchdog timeout"),
        "{watchdog}"
    );
    let crash = guest
        .ok(
            &format!(
                r#"set -e
                c=$(journal_cursor)
                old=$(main_pid)
                kill -9 "$old"
                wait_journal 60 "$c" _SYSTEMD_UNIT=roomd.service MESSAGE_ID={ready} >/dev/null || {{ echo 'not restarted'; exit 1; }}
                test "$(main_pid)" != "$old"
                journal_after "$c" _SYSTEMD_UNIT=roomd.service | grep 'bookings cache loaded'
                roomd bookings"#,
                ready = message_id::READY
            ),
            STEP,
        )
        .await;
    assert!(
        crash.contains("bookings cache loaded: 2 booking(s)"),
        "the bookings came back from the cache:\n{crash}"
    );
    let after: BTreeSet<String> = crash
        .lines()
        .skip_while(|l| !l.contains("bookings cache loaded"))
        .skip(1)
        .map(str::to_owned)
        .collect();
    assert_eq!(after, before, "roomd bookings after kill -9");

    // --- shutdown within 5 s, with STOPPING=1 ---------------------------------------------
    let stop = guest
        .ok(
            &format!(
                r#"set -e
                c=$(journal_cursor)
                t0=$(date +%s%N)
                systemctl stop roomd.service
                t1=$(date +%s%N)
                echo "stop_ms=$(( (t1 - t0) / 1000000 ))"
                wait_journal 10 "$c" _SYSTEMD_UNIT=roomd.service MESSAGE_ID={stopping}
                systemctl is-active roomd.service || true"#,
                stopping = message_id::STOPPING
            ),
            STEP,
        )
        .await;
    let stop_ms: u64 = stop
        .lines()
        .find_map(|l| l.strip_prefix("stop_ms="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stop}"));
    figures.add("systemctl stop roomd", format!("{stop_ms} ms"));
    assert!(stop_ms <= 5000, "systemctl stop took {stop_ms} ms:\n{stop}");
    assert!(
        stop.lines().count() >= 3 && stop.trim_end().ends_with("inactive"),
        "a STOPPING entry and the unit inactive:\n{stop}"
    );

    // --- boot to READY: enabled units, a reboot ------------------------------------------
    guest
        .ok("systemctl enable roomd-sim.service roomd.service", STEP)
        .await;
    guest.send_only("systemctl reboot").await;
    guest.wait_for_boot(BOOT).await;
    let times = guest
        .ok(
            "systemctl is-system-running --wait >/dev/null || true\n\
             systemctl show -p ActiveEnterTimestampMonotonic --value roomd.service\n\
             systemd-analyze time | head -1",
            STEP,
        )
        .await;
    let ready_us: u64 = times
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("{times}"));
    assert!(
        ready_us > 0,
        "roomd reached READY after the reboot:\n{times}"
    );
    figures.add(
        "boot to roomd READY (kernel start, TCG, second boot)",
        format!("{:.1} s", ready_us as f64 / 1e6),
    );
    figures.add(
        "systemd-analyze time",
        times.lines().nth(1).unwrap_or("").trim().to_owned(),
    );

    eprintln!("system-test figures:");
    for (name, value) in &figures.0 {
        eprintln!("  {name}: {value}");
    }
    guest.quit().await;
}
