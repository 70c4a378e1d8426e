//! The fault soak (`make soak`, not part of `make test`): the real `roomd` binary against the
//! simulator while a seeded RNG injects faults and changes bookings, then 200 `kill -9` restarts.
//!
//! Checked: after every checkpoint, every restart and at the end roomd's `bookings.txt` equals
//! the simulator's ground truth; no panic in roomd's log; memory bounded (peak RSS reported);
//! every event-socket reconnect within the backoff schedule. Prints a report (also written to
//! `$ROOMD_SOAK_DIR/report.md`) and exits non-zero on any failure.
//!
//! Environment: `ROOMD_SOAK_SEED` (default 1), `ROOMD_SOAK_FAULTS` (1000), `ROOMD_SOAK_KILLS`
//! (200), `ROOMD_SOAK_DIR` (default a fresh temporary directory, kept on failure).
//!
//! Clock jumps move roomd's wall clock with libfaketime (`faketime` package); without it they
//! are skipped and the report says so.

/// The kit's helpers for a daemon under test, and this build's `roomd` binary.
mod support {
    pub use roomd_testkit::daemon::*;

    pub fn roomd_command() -> std::process::Command {
        roomd_testkit::process::roomd_command_for(std::path::Path::new(env!("CARGO_BIN_EXE_roomd")))
    }
}

mod faults;
mod report;
mod rng;
mod roomd;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use roomd_sim::{BookingSpec, EventMode, SimHandle};

use faults::{Fault, Timeline};
use report::Report;
use rng::Rng;
use roomd::{Roomd, RoomdFiles};

/// Longest a recovery may take before the soak calls it a failure.
const RECOVERY: Duration = Duration::from_secs(60);
/// Bookings alive at most: enough for three list pages of 50.
const MAX_BOOKINGS: usize = 140;
/// Faults between equality checkpoints.
const CHECKPOINT_EVERY: usize = 100;
/// The whole soak's bound (`make soak` promises ≤ 20 min).
const SOAK_BOUND: Duration = Duration::from_secs(20 * 60);

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn main() {
    let seed = env_number("ROOMD_SOAK_SEED", 1);
    let faults = env_number("ROOMD_SOAK_FAULTS", 1000) as usize;
    let kills = env_number("ROOMD_SOAK_KILLS", 200) as usize;
    let (dir, _temp) = match std::env::var_os("ROOMD_SOAK_DIR") {
        Some(d) => (PathBuf::from(d), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("roomd-soak-")
                .tempdir()
                .expect("temporary directory");
            (t.path().to_path_buf(), Some(t))
        }
    };
    std::fs::create_dir_all(&dir).expect("soak directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = runtime.block_on(soak(&dir, seed, faults, kills));
    let text = report.render();
    println!("{text}");
    std::fs::write(dir.join("report.md"), &text).expect("write report");
    if report.failed() {
        if let Some(t) = _temp {
            // Keep the logs of a failed run.
            let kept = t.keep();
            eprintln!("soak FAILED; files kept in {}", kept.display());
        }
        std::process::exit(1);
    }
}

async fn soak(dir: &Path, seed: u64, fault_count: usize, kills: usize) -> Report {
    let mut report = Report::new(seed, fault_count, kills);
    let sim = support::start_activation_sim(dir, "").await;
    let files = RoomdFiles::prepare(&sim, dir);
    report.clock_jumps_available = files.faketime.is_some();
    let mut rng = Rng::new(seed);
    let mut roomd = Roomd::spawn(&files).await;
    roomd.activate(&files, support::GOOD_CODE).await;
    wait_online_after(&sim, 0)
        .await
        .expect("first event socket online");
    let started = Instant::now();
    let over_bound = || started.elapsed() > SOAK_BOUND;

    // Phase 1: faults while bookings change.
    let mut live: Vec<String> = Vec::new();
    let mut timeline = Timeline::default();
    for i in 0..fault_count {
        if over_bound() {
            report.fail(format!("over the {SOAK_BOUND:?} bound after {i} faults"));
            break;
        }
        change_bookings(&sim, &mut rng, &mut live, &mut report);
        let fault = Fault::pick(&mut rng);
        let before = last_connection_id(&sim);
        let outcome = fault.inject(&sim, &files, &mut rng, &mut timeline).await;
        report.count_fault(fault.kind);
        if let Err(e) = outcome {
            report.fail(format!("fault {i} ({fault:?}) could not be injected: {e}"));
            break;
        }
        // One socket fault in three is not awaited: the next fault lands while roomd is
        // still reconnecting (the schedule check still sees that gap). Withheld pongs and a
        // half-open socket only bite while they last, so those are always awaited.
        let awaited =
            fault.kind.drops_socket() && (fault.kind.needs_awaiting() || rng.below(3) > 0);
        if awaited {
            if let Err(e) = wait_online_after(&sim, before).await {
                report.fail(format!(
                    "fault {i} ({fault:?}): no event socket online again within {RECOVERY:?}: {e}"
                ));
                break;
            }
            fault.after_reconnect(&sim);
        }
        timeline.collect(&sim);
        if (i + 1) % CHECKPOINT_EVERY == 0 || i + 1 == fault_count {
            faults::calm(&sim, &files);
            if let Err(e) = wait_equal(&sim, &mut roomd, &files).await {
                report.fail(format!("checkpoint after fault {}: {e}", i + 1));
                break;
            }
            report.checkpoint(i + 1, roomd.rss_kib(), live.len());
        }
    }
    report.fault_phase = started.elapsed();
    report.peak_rss_kib = roomd.peak_rss_kib();
    timeline.collect(&sim);
    report.reconnects = faults::check_reconnects(&sim.mercury_connections(), &files, &timeline);

    // Phase 2: kill -9 at random points, restart, compare.
    let kill_started = Instant::now();
    if report.failures().is_empty() {
        for k in 0..kills {
            if over_bound() {
                report.fail(format!("over the {SOAK_BOUND:?} bound after {k} restarts"));
                break;
            }
            change_bookings(&sim, &mut rng, &mut live, &mut report);
            let delay = Duration::from_millis(rng.below(600));
            // The random point: somewhere in start-up, registration, catch-up or idle.
            tokio::time::sleep(delay).await;
            report.peak_rss_kib = report.peak_rss_kib.max(roomd.peak_rss_kib());
            roomd.kill9().await;
            change_bookings(&sim, &mut rng, &mut live, &mut report);
            roomd = Roomd::spawn(&files).await;
            if let Err(e) = wait_equal(&sim, &mut roomd, &files).await {
                report.fail(format!("kill -9 {} (after {delay:?}): {e}", k + 1));
                break;
            }
            report.kills_done += 1;
        }
    }
    report.kill_phase = kill_started.elapsed();
    report.peak_rss_kib = report.peak_rss_kib.max(roomd.peak_rss_kib());
    roomd.stop().await;
    report.panics = roomd::panics_in_logs(&files);
    report.log_lines = roomd::log_lines(&files);
    report.final_bookings = live.len();
    sim.shutdown().await;
    report
}

/// One random booking change: create (while below the cap), update or delete, with a random
/// event mode (a full or minimal event, or none: then only a catch-up tells roomd).
fn change_bookings(sim: &SimHandle, rng: &mut Rng, live: &mut Vec<String>, report: &mut Report) {
    let mode = match rng.below(10) {
        0..=5 => EventMode::Full,
        6..=7 => EventMode::Minimal,
        _ => EventMode::None,
    };
    let action = if live.is_empty() {
        0
    } else if live.len() >= MAX_BOOKINGS {
        1 + rng.below(2)
    } else {
        // Half creates, a quarter updates, a quarter deletes: the list grows to several pages.
        [0, 0, 1, 2][rng.below(4) as usize]
    };
    match action {
        0 => {
            let n = report.bookings_created + 1;
            let spec: BookingSpec = serde_json::from_value(serde_json::json!({
                "title": format!("Soak meeting {n}"),
                // Inside roomd's window (now − 1 d … now + 7 d) even after a clock jump.
                "start_in_mins": 120 + rng.below(5 * 24 * 60) as i64,
                "duration_mins": 15 + 15 * rng.below(8) as u32,
                "webex_uri": format!("soak{n}@webex.sim.invalid"),
            }))
            .expect("booking spec");
            let change = sim.calendar_create(spec, mode).expect("create booking");
            live.push(change.booking.id);
            report.bookings_created += 1;
        }
        1 => {
            let id = &live[rng.below(live.len() as u64) as usize];
            let patch = serde_json::from_value(serde_json::json!({
                "title": format!("Soak meeting renamed {}", rng.below(1_000_000)),
                "start_in_mins": 120 + rng.below(5 * 24 * 60) as i64,
            }))
            .expect("booking patch");
            sim.calendar_update(id, patch, mode)
                .expect("update booking");
            report.bookings_updated += 1;
        }
        _ => {
            let id = live.swap_remove(rng.below(live.len() as u64) as usize);
            // A delete has no minimal form.
            let mode = if mode == EventMode::Minimal {
                EventMode::Full
            } else {
                mode
            };
            sim.calendar_delete(&id, mode).expect("delete booking");
            report.bookings_deleted += 1;
        }
    }
}

fn last_connection_id(sim: &SimHandle) -> u64 {
    sim.mercury_connections().last().map_or(0, |c| c.id)
}

/// Waits for an event socket newer than connection `after` to be online and still open.
async fn wait_online_after(sim: &SimHandle, after: u64) -> anyhow::Result<()> {
    sim.wait_connections(
        |conns| {
            conns
                .iter()
                .any(|c| c.id > after && c.online_at_ms.is_some() && c.closed_at_ms.is_none())
        },
        RECOVERY,
    )
    .await
    .map(drop)
}

/// Waits until roomd's `bookings.txt` equals the simulator's bookings, re-reading it whenever
/// roomd logs something (it logs every bookings change), bounded by [`RECOVERY`].
async fn wait_equal(sim: &SimHandle, roomd: &mut Roomd, files: &RoomdFiles) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + RECOVERY;
    loop {
        let truth = report::truth(sim);
        let seen = report::bookings_txt(&files.state_dir().join("bookings.txt"));
        if seen.as_ref() == Ok(&truth) {
            return Ok(());
        }
        if !roomd.next_log_line(deadline).await {
            let diff = match seen {
                Ok(seen) => report::difference(&truth, &seen),
                Err(e) => format!("bookings.txt unreadable: {e}"),
            };
            anyhow::bail!("roomd's bookings never matched the simulator's: {diff}");
        }
    }
}
