//! Locus figures, each against a baseline measured in the same run.
//!
//! 1. Delta apply: `locus.difference` deltas that each change one participant of a 100-participant
//!    locus, parsed with `parse_dto` and applied to a `LocusTracker` in order (every one
//!    ACCEPT_NEW, merged by participant url), in deltas/s, vs a bare `serde_json::from_slice`
//!    of the same delta bytes into the same type (and, for reference, into a `Value`).
//! 2. `compare()` of consecutive sequences (10 entries and a folded range, as Locus sends them),
//!    in comparisons/s, and `update_action()` for a delta.
//!
//! Each figure is the best of 5 runs, the runs of 1 interleaved. `cargo bench --bench locus`; `ROOMD_BENCH_ROUNDS=N` sets the number of deltas (default 20000).

use roomd_testkit::figures;

use std::hint::black_box;
use std::time::{Duration, Instant};

use roomd::locus::{Applied, LocusTracker, Sequence, compare, update_action};
use roomd::proto::locus::{self, LocusDto};
use serde_json::{Value, json};

const PARTICIPANTS: u64 = 100;
const LOCUS: &str =
    "https://locus.sim.invalid/locus/api/v1/loci/5b1bd1f6-1c2e-4a9b-9d4f-0e6c3f1b2a77";
const T0: u64 = 259_005_341_176_400;

/// The sequence after `n` changes: the last 10 entries, the older ones folded into the range.
fn seq_at(n: u64) -> Sequence {
    let first = n.saturating_sub(9);
    Sequence {
        entries: (first..=n).map(|i| T0 + i * 2).collect(),
        range_start: if first > 0 { T0 } else { 0 },
        range_end: if first > 0 { T0 + (first - 1) * 2 } else { 0 },
    }
}

fn participant(i: u64, version: u64) -> Value {
    let url = format!("{LOCUS}/participant/{i:04}");
    json!({
        "url": url,
        "id": format!("0b7e4c1a-0000-4000-8000-{i:012}"),
        "state": if version % 2 == 0 { "JOINED" } else { "LEFT" },
        "type": "USER",
        "person": {"id": format!("person-{i}"), "name": format!("Participant {i}"),
                   "email": format!("p{i}@example.com"), "orgId": "org-1", "isExternal": false},
        "devices": [{"url": format!("https://wdm.sim.invalid/wdm/api/v1/devices/{i}"),
                     "deviceType": "TP_ENDPOINT", "state": "JOINED", "intent": {"type": "NONE"},
                     "correlationId": format!("corr-{i}-{version}")}],
        "status": {"audioStatus": "SENDRECV", "videoStatus": "SENDRECV", "csis": [i * 1000, i * 1000 + 1]},
        "controls": {"audio": {"muted": version % 3 == 0}, "hold": {"held": false}},
        "isCreator": i == 0,
    })
}

fn full_dto() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "url": LOCUS,
        "syncUrl": format!("{LOCUS}/sync"),
        "fullState": {"state": "ACTIVE", "type": "MEETING", "active": true, "count": PARTICIPANTS},
        "info": {"webExMeetingName": "All hands", "sipUri": "allhands@example.webex.com"},
        "host": {"id": "person-0", "name": "Participant 0"},
        "self": participant(0, 0),
        "participants": (0..PARTICIPANTS).map(|i| participant(i, 0)).collect::<Vec<_>>(),
        "mediaShares": [{"name": "content", "url": format!("{LOCUS}/mediashares/1")}],
        "sequence": seq_at(0),
    }))
    .unwrap()
}

/// Change `n`: participant `n % 100` changes.
fn delta(n: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "url": LOCUS,
        "syncUrl": format!("{LOCUS}/sync"),
        "fullState": {"state": "ACTIVE", "type": "MEETING", "active": true, "count": PARTICIPANTS},
        "self": participant(0, 0),
        "participants": [participant(n % PARTICIPANTS, n)],
        "sequence": seq_at(n),
        "baseSequence": seq_at(n - 1),
    }))
    .unwrap()
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// The best of `reps` timed runs (the least disturbed by other work on the machine).
fn best<F: FnMut() -> Duration>(reps: usize, mut f: F) -> Duration {
    (0..reps).map(|_| f()).min().unwrap()
}

fn main() {
    let rounds: u64 = std::env::var("ROOMD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let full = full_dto();
    let deltas: Vec<Vec<u8>> = (1..=rounds).map(delta).collect();
    let mean_bytes = deltas.iter().map(Vec::len).sum::<usize>() / deltas.len();
    println!(
        "locus: {PARTICIPANTS} participants ({} KiB full DTO), {rounds} deltas of {mean_bytes} bytes changing 1 participant",
        full.len() / 1024
    );
    figures::about(
        &format!(
            "`locus.difference` deltas changing one participant of a {PARTICIPANTS}-participant locus, parsed with `parse_dto` and applied to a `LocusTracker` in order; `compare()` and `update_action()` alone"
        ),
        "a bare `serde_json::from_slice` of the same delta bytes into the same type (`LocusDto`); best of 5 interleaved runs",
    );

    // 1. Delta apply vs bare parse, interleaved so both see the same machine load.
    let parse_typed = || {
        let start = Instant::now();
        for bytes in &deltas {
            black_box(serde_json::from_slice::<LocusDto>(black_box(bytes)).unwrap());
        }
        start.elapsed()
    };
    let parse_value = || {
        let start = Instant::now();
        for bytes in &deltas {
            black_box(serde_json::from_slice::<Value>(black_box(bytes)).unwrap());
        }
        start.elapsed()
    };
    let parse_apply = || {
        let now = Instant::now();
        let mut tracker = LocusTracker::new().with_jitter(Duration::ZERO);
        assert_eq!(
            tracker.apply(locus::parse_dto(&full).unwrap(), now),
            Applied::Updated
        );
        let start = Instant::now();
        for bytes in &deltas {
            let dto = locus::parse_dto(black_box(bytes)).unwrap();
            let result = tracker.apply(dto, now);
            debug_assert_eq!(result, Applied::Updated);
            black_box(result);
        }
        (start.elapsed(), tracker)
    };
    let mut baseline_typed = Duration::MAX;
    let mut baseline_value = Duration::MAX;
    let mut applied = Duration::MAX;
    let mut last = None;
    for _ in 0..5 {
        baseline_typed = baseline_typed.min(parse_typed());
        let (elapsed, tracker) = parse_apply();
        applied = applied.min(elapsed);
        last = Some(tracker);
        baseline_value = baseline_value.min(parse_value());
    }
    let tracker = last.unwrap();
    let stats = tracker.stats();
    assert_eq!(stats.applied, rounds + 1, "every delta applied: {stats:?}");
    let current = tracker.current().unwrap();
    assert_eq!(current.participants.len(), PARTICIPANTS as usize);
    assert_eq!(current.sequence, Some(seq_at(rounds)));

    let n = deltas.len();
    println!(
        "delta parse+apply: {:.0} deltas/s ({:.2} us each) vs from_slice::<LocusDto> {:.0}/s ({:.2} us): {:.2} x the bare parse",
        per_second(n, applied),
        applied.as_secs_f64() * 1e6 / n as f64,
        per_second(n, baseline_typed),
        baseline_typed.as_secs_f64() * 1e6 / n as f64,
        applied.as_secs_f64() / baseline_typed.as_secs_f64(),
    );
    println!(
        "  for reference, from_slice::<Value> {:.0}/s ({:.2} us): parse+apply is {:.2} x that",
        per_second(n, baseline_value),
        baseline_value.as_secs_f64() * 1e6 / n as f64,
        applied.as_secs_f64() / baseline_value.as_secs_f64(),
    );
    let us_each = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    figures::figure(
        &format!(
            "delta parse + apply ({} deltas/s)",
            figures::number(per_second(n, applied))
        ),
        us_each(applied),
        "µs/delta",
    )
    .against("from_slice::<LocusDto>", us_each(baseline_typed))
    .record();
    figures::figure("the same, for reference", us_each(applied), "µs/delta")
        .against("from_slice::<Value>", us_each(baseline_value))
        .record();

    // 2. compare() and update_action() alone.
    let pairs: Vec<(Sequence, Sequence)> = (1..=1000).map(|n| (seq_at(n - 1), seq_at(n))).collect();
    let reps = 200;
    let compared = best(5, || {
        let start = Instant::now();
        for _ in 0..reps {
            for (a, b) in &pairs {
                black_box(compare(black_box(a), black_box(b)));
            }
        }
        start.elapsed()
    });
    let actions = best(5, || {
        let start = Instant::now();
        for _ in 0..reps {
            for (a, b) in &pairs {
                black_box(update_action(black_box(a), black_box(b), Some(a), false));
            }
        }
        start.elapsed()
    });
    let m = pairs.len() * reps;
    println!(
        "compare(): {:.1} M/s ({:.0} ns each); update_action() for a delta: {:.1} M/s ({:.0} ns each)",
        per_second(m, compared) / 1e6,
        compared.as_secs_f64() * 1e9 / m as f64,
        per_second(m, actions) / 1e6,
        actions.as_secs_f64() * 1e9 / m as f64,
    );
    figures::figure(
        "compare() of consecutive sequences",
        compared.as_secs_f64() * 1e9 / m as f64,
        "ns",
    )
    .record();
    figures::figure(
        "update_action() for a delta",
        actions.as_secs_f64() * 1e9 / m as f64,
        "ns",
    )
    .record();
}
