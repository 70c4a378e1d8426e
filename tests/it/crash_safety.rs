//! kill -9 at random moments while state files are being rewritten (credentials, the bookings
//! cache): what is left on disk always loads, and is one of the versions that was written
//! (never a torn or mixed file).
//!
//! The writer is this test binary itself, re-run as a child with an environment variable naming
//! the directory: it rewrites its file in a loop, each version numbered (credentials in `org_id`,
//! the bookings cache in `next_meeting`).

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use rand::Rng;
use roomd::bookings::cache::{self, CACHE_FILE, Loaded};
use roomd::bookings::model::BookingsModel;
use roomd::proto::activation::parse_service_data;
use roomd::store::StateDir;
use roomd::store::credentials::{CREDENTIALS_FILE, Credentials};
use support::target_command;

const WRITER_ENV: &str = "ROOMD_CRASH_WRITER_DIR";
const BOOKINGS_WRITER_ENV: &str = "ROOMD_CRASH_BOOKINGS_DIR";

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

/// Bookings state number `n`: 1..=30 bookings titled `v<n>`, marked in `next_meeting`.
fn bookings_version(n: u64) -> BookingsModel {
    use roomd::proto::calendar::MeetingDto;
    let mut model = BookingsModel::default();
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

/// In a child run with `env` set: writes versions 1, 2, 3, ... with `save` until killed (it
/// prints `started` after the first). In a normal test run: does nothing.
fn write_until_killed(env: &str, save: impl Fn(&StateDir, u64)) {
    let Some(dir) = std::env::var_os(env) else {
        return;
    };
    let state = StateDir::open(dir).unwrap();
    save(&state, 1);
    println!("started");
    for n in 2.. {
        save(&state, n);
    }
}

/// `rounds` times: runs the child test `writer` (with `env` naming a fresh-state directory),
/// kills it with SIGKILL at a random moment up to `max_delay` after its first write, and asks
/// `loaded` which version the directory holds now (it panics on a torn state). Between rounds
/// the writer's `file` and temp files are removed. Returns the newest version seen.
fn kill_at_random_moments(
    rounds: usize,
    writer: &str,
    env: &str,
    file: &str,
    max_delay: Duration,
    loaded: impl Fn(usize, &StateDir) -> u64,
) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    let mut newest = 0;
    for round in 0..rounds {
        let mut child = target_command(&std::env::current_exe().unwrap())
            .args(["--exact", writer, "--nocapture", "--test-threads=1"])
            .env(env, dir.path())
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
        let micros = rng.random_range(0..max_delay.as_micros() as u64);
        std::thread::sleep(Duration::from_micros(micros));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let state = StateDir::open(dir.path()).unwrap();
        newest = newest.max(loaded(round, &state));
        clear(dir.path(), file);
    }
    newest
}

/// Removes `file` and the temp files a killed writer left (harmless, but not for the next round).
fn clear(dir: &Path, file: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name();
        if name.to_string_lossy().starts_with('.') {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
    }
    std::fs::remove_file(dir.join(file)).unwrap();
}

/// Whether this run is a writer child (then the kill tests do nothing).
fn is_child() -> bool {
    std::env::var_os(WRITER_ENV).is_some() || std::env::var_os(BOOKINGS_WRITER_ENV).is_some()
}

/// The child: rewrites `credentials.json` until killed.
#[test]
fn crash_writer_child() {
    write_until_killed(WRITER_ENV, |state, n| version(n).save(state).unwrap());
}

/// The child: rewrites the bookings cache until killed.
#[test]
fn crash_bookings_writer_child() {
    write_until_killed(BOOKINGS_WRITER_ENV, |state, n| {
        cache::save(state, &bookings_version(n), 300).unwrap()
    });
}

#[test]
fn kill_9_during_credential_writes_leaves_old_or_new() {
    if is_child() {
        return;
    }
    let newest = kill_at_random_moments(
        40,
        "crash_safety::crash_writer_child",
        WRITER_ENV,
        CREDENTIALS_FILE,
        Duration::from_millis(20),
        |round, state| {
            let loaded = Credentials::load(state)
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
            n
        },
    );
    assert!(newest > 1, "the writer never got past its first version");
}

#[test]
fn kill_9_at_200_points_during_bookings_cache_writes_leaves_old_or_new() {
    if is_child() {
        return;
    }
    let newest = kill_at_random_moments(
        200,
        "crash_safety::crash_bookings_writer_child",
        BOOKINGS_WRITER_ENV,
        CACHE_FILE,
        Duration::from_millis(10),
        |round, state| {
            let Loaded::Cache(model) = cache::load(state) else {
                panic!("round {round}: the cache does not load after kill -9");
            };
            let n = model.next_meeting - 1_000_000;
            assert_eq!(
                model,
                bookings_version(n),
                "round {round}: a torn or mixed state"
            );
            n
        },
    );
    assert!(newest > 1, "the writer never got past its first version");
}
