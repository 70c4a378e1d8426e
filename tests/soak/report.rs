//! Ground truth, roomd's view of it, and the soak report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use roomd_sim::SimHandle;

use crate::faults::{FaultKind, Reconnects};

/// A booking as both sides must agree on it: meeting id → (title, start).
pub type Bookings = BTreeMap<String, (String, String)>;

/// The simulator's bookings.
pub fn truth(sim: &SimHandle) -> Bookings {
    sim.calendar_bookings()
        .into_iter()
        .map(|b| (b.id, (b.title, b.start)))
        .collect()
}

/// `bookings.txt` (`*r BookingsListResult Booking <n> MeetingId: "…"` lines) as [`Bookings`].
pub fn bookings_txt(path: &Path) -> Result<Bookings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows: BTreeMap<u64, BTreeMap<&str, String>> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("*r BookingsListResult Booking ") else {
            continue;
        };
        let Some((n, rest)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        for key in ["MeetingId", "Title", "Time StartTime"] {
            if let Some(value) = rest.strip_prefix(&format!("{key}: ")) {
                let value = value.trim_matches('"').to_owned();
                rows.entry(n).or_default().insert(key, value);
            }
        }
    }
    rows.into_values()
        .map(|mut r| {
            let id = r.remove("MeetingId").ok_or("a booking without MeetingId")?;
            let title = r.remove("Title").unwrap_or_default();
            let start = r.remove("Time StartTime").unwrap_or_default();
            Ok((id, (title, start)))
        })
        .collect()
}

/// What differs, briefly: missing, extra and changed ids.
pub fn difference(truth: &Bookings, seen: &Bookings) -> String {
    let t: BTreeSet<_> = truth.keys().collect();
    let s: BTreeSet<_> = seen.keys().collect();
    let missing: Vec<_> = t.difference(&s).take(5).collect();
    let extra: Vec<_> = s.difference(&t).take(5).collect();
    let changed: Vec<_> = truth
        .iter()
        .filter_map(|(id, v)| seen.get(id).filter(|w| *w != v).map(|w| (id, v, w)))
        .take(5)
        .collect();
    format!(
        "{} in the simulator, {} in roomd; missing {missing:?}, extra {extra:?}, changed (truth, roomd) {changed:?}",
        truth.len(),
        seen.len()
    )
}

#[derive(Debug, Default)]
pub struct Report {
    seed: u64,
    faults_planned: usize,
    kills_planned: usize,
    faults_by_kind: BTreeMap<FaultKind, usize>,
    failures: Vec<String>,
    /// (faults so far, roomd RSS KiB, live bookings) at each checkpoint.
    checkpoints: Vec<(usize, u64, usize)>,
    pub clock_jumps_available: bool,
    pub bookings_created: usize,
    pub bookings_updated: usize,
    pub bookings_deleted: usize,
    pub final_bookings: usize,
    pub kills_done: usize,
    pub fault_phase: Duration,
    pub kill_phase: Duration,
    pub peak_rss_kib: u64,
    pub reconnects: Reconnects,
    pub panics: Vec<String>,
    pub log_lines: usize,
}

impl Report {
    pub fn new(seed: u64, faults_planned: usize, kills_planned: usize) -> Self {
        Self {
            seed,
            faults_planned,
            kills_planned,
            ..Default::default()
        }
    }

    pub fn count_fault(&mut self, kind: FaultKind) {
        *self.faults_by_kind.entry(kind).or_default() += 1;
    }

    pub fn checkpoint(&mut self, faults: usize, rss_kib: u64, live: usize) {
        self.checkpoints.push((faults, rss_kib, live));
    }

    pub fn fail(&mut self, why: String) {
        eprintln!("soak: FAIL: {why}");
        self.failures.push(why);
    }

    /// RSS growth from the first checkpoint to the last, bounded: at most 16 MiB or 50 %.
    fn memory_bounded(&self) -> Result<(), String> {
        let (Some(first), Some(last)) = (self.checkpoints.first(), self.checkpoints.last()) else {
            return Ok(());
        };
        let limit = (first.1 + 16 * 1024).max(first.1 * 3 / 2);
        if last.1 > limit {
            return Err(format!(
                "RSS grew from {} KiB (after {} faults) to {} KiB (after {}), over the {limit} KiB bound",
                first.1, first.0, last.1, last.0
            ));
        }
        Ok(())
    }

    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
            || !self.panics.is_empty()
            || !self.reconnects.violations.is_empty()
            || self.memory_bounded().is_err()
            || self.kills_done < self.kills_planned
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let verdict = if self.failed() { "FAILED" } else { "PASSED" };
        out += &format!("# roomd soak: {verdict}\n\n");
        out += &format!(
            "seed {}, {} faults planned, {} kill -9 restarts planned\n\n",
            self.seed, self.faults_planned, self.kills_planned
        );
        out += "## Faults injected\n\n| fault | count |\n|---|---:|\n";
        for (kind, n) in &self.faults_by_kind {
            out += &format!("| {kind:?} | {n} |\n");
        }
        if !self.clock_jumps_available {
            out += "\nClock jumps were NOT applied: libfaketime (Debian package `faketime`) is missing.\n";
        }
        out += &format!(
            "\nBookings: {} created, {} updated, {} deleted, {} at the end.\n",
            self.bookings_created,
            self.bookings_updated,
            self.bookings_deleted,
            self.final_bookings
        );
        out += &format!(
            "\nFault phase {:.0} s, kill phase {:.0} s ({} of {} restarts done).\n",
            self.fault_phase.as_secs_f64(),
            self.kill_phase.as_secs_f64(),
            self.kills_done,
            self.kills_planned
        );
        out += "\n## Bookings equality checkpoints (roomd RSS)\n\n| after faults | RSS KiB | bookings |\n|---:|---:|---:|\n";
        for (n, rss, live) in &self.checkpoints {
            out += &format!("| {n} | {rss} | {live} |\n");
        }
        out += &format!(
            "\nPeak RSS (VmHWM, largest of every roomd process): {} KiB.\n",
            self.peak_rss_kib
        );
        if let Err(e) = self.memory_bounded() {
            out += &format!("Memory NOT bounded: {e}\n");
        }
        let mut gaps = self.reconnects.gaps_ms.clone();
        gaps.sort_unstable();
        let pct = |p: usize| {
            gaps.get((gaps.len() * p / 100).min(gaps.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        out += &format!(
            "\n## Reconnects\n\n{} reconnects: median {} ms, p90 {} ms, p99 {} ms, max {} ms; {} outside the schedule.\nBound: {}.\n",
            gaps.len(),
            pct(50),
            pct(90),
            pct(99),
            gaps.last().copied().unwrap_or(0),
            self.reconnects.violations.len(),
            self.reconnects.bound_note
        );
        for v in &self.reconnects.violations {
            out += &format!("- {v}\n");
        }
        out += &format!(
            "\n## Log\n\n{} lines of roomd log; {} panic line(s).\n",
            self.log_lines,
            self.panics.len()
        );
        for p in self.panics.iter().take(10) {
            out += &format!("- {p}\n");
        }
        if !self.failures.is_empty() {
            out += "\n## Failures\n\n";
            for f in &self.failures {
                out += &format!("- {f}\n");
            }
        }
        out
    }
}
