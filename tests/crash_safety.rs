//! kill -9 at random moments while credentials are being rewritten: what is left on disk
//! always loads, and is one of the versions that was written (never a torn file).
//!
//! The writer is this test binary itself, re-run as a child with `ROOMD_CRASH_WRITER_DIR`
//! set: it rewrites `credentials.json` in a loop, each version numbered in `org_id`.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use rand::Rng;
use roomd::proto::activation::parse_service_data;
use roomd::store::StateDir;
use roomd::store::credentials::{CREDENTIALS_FILE, Credentials};
use support::target_command;

const WRITER_ENV: &str = "ROOMD_CRASH_WRITER_DIR";

fn version(n: u64) -> Credentials {
    let data = parse_service_data(
        br#"{"deviceIdentifier":"d","orgId":"o","serviceUrls":{"u2c":"https://u","identity":"https://i"},
            "trustList":["-----BEGIN CERTIFICATE-----\nMIIB...padding to make the file a few KB\n-----END CERTIFICATE-----"],
            "tokens":{"access_token":"AT","expires_in":3600,"refresh_token":"RT"}}"#,
    )
    .unwrap();
    let mut credentials = Credentials::from_activation(&data, "https://gds", SystemTime::now());
    credentials.org_id = format!("v{n}");
    credentials
}

/// The child: writes versions 1, 2, 3, ... until killed. Does nothing in a normal run.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let state = StateDir::open(dir).unwrap();
    let mut n = 1;
    version(n).save(&state).unwrap();
    println!("started");
    loop {
        n += 1;
        version(n).save(&state).unwrap();
    }
}

#[test]
fn kill_9_during_credential_writes_leaves_old_or_new() {
    if std::env::var_os(WRITER_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::thread_rng();
    let mut last_seen = 0u64;
    let rounds = 40;
    for round in 0..rounds {
        let mut child = target_command(&std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait for the child's first complete write, then kill it at a random moment.
        // (The test harness prints its own lines first.)
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            let read = stdout.read_line(&mut line).unwrap();
            assert!(
                read > 0,
                "round {round}: writer exited before its first write"
            );
            if line.trim_end().ends_with("started") {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..20_000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let state = StateDir::open(dir.path()).unwrap();
        let loaded = Credentials::load(&state)
            .unwrap_or_else(|e| panic!("round {round}: torn credentials: {e}"))
            .expect("credentials present");
        let n: u64 = loaded.org_id.trim_start_matches('v').parse().unwrap();
        assert!(n >= 1, "round {round}");
        assert_eq!(loaded, {
            let mut expected = version(n);
            expected.activated_at_ms = loaded.activated_at_ms;
            expected.tokens = loaded.tokens.clone();
            expected
        });
        last_seen = last_seen.max(n);
        // Leftover temp files of a killed writer are harmless; clear them for the next round.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let name = entry.unwrap().file_name();
            if name.to_string_lossy().starts_with('.') {
                std::fs::remove_file(dir.path().join(name)).unwrap();
            }
        }
        std::fs::remove_file(dir.path().join(CREDENTIALS_FILE)).unwrap();
    }
    assert!(last_seen > 1, "the writer never got past its first version");
}

const BOOKINGS_WRITER_ENV: &str = "ROOMD_CRASH_BOOKINGS_DIR";

/// Bookings state number `n`: 1..=30 bookings titled `v<n>`, marked in `next_meeting`.
fn bookings_version(n: u64) -> roomd::bookings::model::BookingsModel {
    use roomd::proto::calendar::MeetingDto;
    let mut model = roomd::bookings::model::BookingsModel::default();
    for i in 0..(n % 30 + 1) {
        model.upsert(
            &MeetingDto {
                id: format!("booking-{i}"),
                start: Some("2026-11-21T10:00:00.000Z".into()),
                duration_minutes: Some(30),
                encrypted_subject: Some(format!("v{n}")),
                webex_uri: Some(format!("{i}@example.webex.com")),
                ..Default::default()
            },
            &Default::default(),
        );
    }
    model.next_meeting = 1_000_000 + n;
    model
}

/// The child: rewrites the bookings cache with versions 1, 2, 3, ... until killed.
#[test]
fn crash_bookings_writer_child() {
    let Some(dir) = std::env::var_os(BOOKINGS_WRITER_ENV) else {
        return;
    };
    let state = StateDir::open(dir).unwrap();
    let mut n = 1;
    roomd::bookings::cache::save(&state, &bookings_version(n), 300).unwrap();
    println!("started");
    loop {
        n += 1;
        roomd::bookings::cache::save(&state, &bookings_version(n), 300).unwrap();
    }
}

#[test]
fn kill_9_at_200_points_during_bookings_cache_writes_leaves_old_or_new() {
    use roomd::bookings::cache::{CACHE_FILE, Loaded, load};
    if std::env::var_os(BOOKINGS_WRITER_ENV).is_some() || std::env::var_os(WRITER_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::thread_rng();
    let mut newest = 0u64;
    for round in 0..200 {
        let mut child = target_command(&std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_bookings_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(BOOKINGS_WRITER_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            let read = stdout.read_line(&mut line).unwrap();
            assert!(
                read > 0,
                "round {round}: writer exited before its first write"
            );
            if line.trim_end().ends_with("started") {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..10_000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let state = StateDir::open(dir.path()).unwrap();
        let Loaded::Cache(model) = load(&state) else {
            panic!("round {round}: the cache does not load after kill -9");
        };
        let n = model.next_meeting - 1_000_000;
        assert_eq!(
            model,
            bookings_version(n),
            "round {round}: a torn or mixed state"
        );
        newest = newest.max(n);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let name = entry.unwrap().file_name();
            if name.to_string_lossy().starts_with('.') {
                std::fs::remove_file(dir.path().join(name)).unwrap();
            }
        }
        std::fs::remove_file(dir.path().join(CACHE_FILE)).unwrap();
    }
    assert!(newest > 1, "the writer never got past its first version");
}
