//! Media reachability figures, each against a baseline measured in the same run.
//!
//! The set-up is the simulator's default (wire profile choices §6): 210 clusters, 44 of them
//! silent on every transport, answering RTTs drawn from 5–150 ms (seeded) per cluster and
//! transport, served by loopback responders (udp, tcp, TLS) this bench starts itself.
//!
//! 1. Wall time of one discovery run with the defaults (1000 ms probe timeout, 256 sockets),
//!    vs the ideal (every probe at once: the probe timeout, which the silent clusters must
//!    wait out, or the slowest answer if that is later), vs the same probes run one after
//!    another (measured on a subset, scaled to 630 probes), and vs seed 000's 195 s.
//! 2. Peak sockets in flight vs the `max_in_flight` bound and the number of probes.
//! 3. Peak RSS growth during the run (VmHWM after, reset before, − VmRSS before) vs the responders' own
//!    footprint measured at set-up.
//!
//! `cargo bench --bench reachability`.

use roomd_testkit::figures;
use roomd_testkit::stun_responder as responder;

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use responder::{NodeSpec, Responders, TestTls};
use roomd::reachability::{ClusterDocument, ProbeOptions, Transport, run_discovery};

const CLUSTERS: usize = 210;
const SILENT: usize = 44;
const RTT_MS: std::ops::RangeInclusive<u64> = 5..=150;
/// Seed 000: `DiscoveryTimeInSec: 195` on a real device.
const SEED_000_SECS: f64 = 195.0;

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let rss_start = proc_status_kib("VmRSS:").unwrap_or(0);
    let tls = TestTls::generate();
    let client_tls = tls.client_config();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0006);
    let mut responders = Responders::default();
    let mut clusters = Vec::with_capacity(CLUSTERS);
    let mut slowest = Duration::ZERO;
    // Silent clusters spread through the document, as a real list would have them.
    let silent_every = CLUSTERS / SILENT;
    let mut silent_left = SILENT;
    for i in 0..CLUSTERS {
        let silent = silent_left > 0 && i % silent_every == 0;
        let spec = if silent {
            silent_left -= 1;
            NodeSpec::silent()
        } else {
            let mut draw = || rng.random_range(RTT_MS.clone());
            let (u, t, x) = (draw(), draw(), draw());
            slowest = slowest.max(Duration::from_millis(u.max(t).max(x)));
            NodeSpec::answering(u, t, x)
        };
        let node = responders.start(&spec, &tls).await;
        clusters.push((format!("sim-c{i:03}.sim-c{i:03}.*"), node.cluster()));
    }
    let rss_responders = proc_status_kib("VmRSS:").unwrap_or(0);
    let document = ClusterDocument::new(clusters);
    let options = ProbeOptions::default();
    let probes = CLUSTERS * 3;

    // Warm-up (TLS session machinery, first allocations), not measured.
    let warm = ClusterDocument::new(document.clusters[1..4].to_vec());
    let _ = run_discovery(&warm, &options, client_tls.clone()).await;

    // Resets VmHWM to the current RSS (Linux 4.0+), so the peak below is this run's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = proc_status_kib("VmRSS:").unwrap_or(0);
    let started = Instant::now();
    let report = run_discovery(&document, &options, client_tls.clone()).await;
    let wall = started.elapsed();
    let hwm_after = proc_status_kib("VmHWM:").unwrap_or(0);

    // Sequential baseline: the first 10 clusters (2 of them silent), one probe at a time.
    let subset = ClusterDocument::new(document.clusters[..10].to_vec());
    let subset_probes = subset.clusters.len() * 3;
    let sequential = ProbeOptions {
        max_in_flight: 1,
        ..options.clone()
    };
    let started = Instant::now();
    let _ = run_discovery(&subset, &sequential, client_tls.clone()).await;
    let per_probe = started.elapsed() / subset_probes as u32;
    // Scaled by the share of silent probes in the whole set, not the subset's.
    let subset_silent = subset
        .clusters
        .iter()
        .filter(|(name, _)| {
            report
                .clusters
                .iter()
                .any(|c| &c.name == name && !c.reached())
        })
        .count();
    let answering_per_probe = if subset_silent < subset.clusters.len() {
        (per_probe * subset_probes as u32)
            .saturating_sub(options.timeout * (subset_silent * 3) as u32)
            / ((subset.clusters.len() - subset_silent) * 3) as u32
    } else {
        per_probe
    };
    let sequential_estimate = options.timeout * (SILENT * 3) as u32
        + answering_per_probe * ((CLUSTERS - SILENT) * 3) as u32;
    let ideal = options.timeout.max(slowest);

    assert_eq!(report.clusters.len(), CLUSTERS);
    println!("reachability: {CLUSTERS} clusters ({SILENT} silent), {probes} probes, RTT 5-150 ms");
    println!("  {}", report.summary_line());
    if let Some(best) = report.best_overall() {
        println!("  {}", best.log_line());
    }
    for t in Transport::ALL {
        if let Some(best) = report.best(t) {
            println!(
                "  best {t}: {} {} {} ms",
                best.cluster,
                best.node,
                best.rtt_ms()
            );
        }
    }
    println!(
        "1. wall time {:.3} s (target <= 2 s); ideal {:.3} s: x{:.2}; sequential estimate {:.1} s: x{:.4}; seed 000 {SEED_000_SECS} s: x{:.4}",
        wall.as_secs_f64(),
        ideal.as_secs_f64(),
        wall.as_secs_f64() / ideal.as_secs_f64(),
        sequential_estimate.as_secs_f64(),
        wall.as_secs_f64() / sequential_estimate.as_secs_f64(),
        wall.as_secs_f64() / SEED_000_SECS,
    );
    println!(
        "2. peak sockets in flight {} of max_in_flight {} (x{:.2}) and {probes} probes (x{:.2})",
        report.peak_in_flight,
        options.max_in_flight,
        report.peak_in_flight as f64 / options.max_in_flight as f64,
        report.peak_in_flight as f64 / probes as f64,
    );
    let responders_kib = rss_responders.saturating_sub(rss_start);
    let growth_kib = hwm_after.saturating_sub(rss_before);
    println!(
        "3. peak RSS growth during the run {growth_kib} KiB ({:.1} KiB per probe); responders' set-up {responders_kib} KiB: x{:.2}",
        growth_kib as f64 / probes as f64,
        growth_kib as f64 / responders_kib.max(1) as f64,
    );
    println!(
        "   requests sent {}, ignored responses {}",
        report.requests_sent(),
        report.ignored_responses()
    );

    figures::about(
        &format!(
            "wall time of one media reachability discovery run with the defaults ({} ms probe timeout, {} sockets): {CLUSTERS} clusters ({SILENT} silent on every transport), RTTs 5–150 ms, loopback udp/tcp/TLS responders",
            options.timeout.as_millis(),
            options.max_in_flight
        ),
        "the ideal (every probe at once: the probe timeout, or the slowest answer if later); also the same probes one after another, and seed 000's device",
    );
    figures::figure("discovery wall time", wall.as_secs_f64(), "s")
        .against("ideal", ideal.as_secs_f64())
        .target(figures::Target::AtMost(2.0))
        .record();
    figures::figure("discovery wall time", wall.as_secs_f64(), "s")
        .against(
            "the same probes one at a time (estimate)",
            sequential_estimate.as_secs_f64(),
        )
        .record();
    figures::figure("discovery wall time", wall.as_secs_f64(), "s")
        .against("seed 000's device", SEED_000_SECS)
        .record();
    figures::figure(
        "peak sockets in flight",
        report.peak_in_flight as f64,
        "sockets",
    )
    .against("max_in_flight bound", options.max_in_flight as f64)
    .record();
    figures::figure(
        "peak sockets in flight",
        report.peak_in_flight as f64,
        "sockets",
    )
    .against("probes", probes as f64)
    .record();
    figures::figure(
        &format!(
            "peak RSS growth during the run ({:.1} KiB per probe)",
            growth_kib as f64 / probes as f64
        ),
        growth_kib as f64 / 1024.0,
        "MiB",
    )
    .against("responders' set-up", responders_kib.max(1) as f64 / 1024.0)
    .record();
    drop(responders);
}
