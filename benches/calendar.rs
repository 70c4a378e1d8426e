//! Calendar and bookings figures, each against a baseline measured in the same run.
//!
//! 1. DTO parse + apply: `calendar.meeting.update` events parsed and filed into a model of
//!    10,000 bookings, on one core, with no persistence in the loop, vs a bare
//!    `serde_json::from_str` of the same text.
//! 2. Event → cache persisted → feedback, at 1,000 events/s: the store's persister writes each
//!    new state with write + fsync + rename + fsync (group commit: events arriving during a
//!    write share the next one); latency from the event until the persisted generation covers
//!    it, vs one bare `write_atomic` of the same bytes.
//! 3. Catch-up of 10,000 bookings (200 pages of 50, encrypted) from roomd-sim over loopback
//!    HTTPS, as the daemon's own catch-up measures it, vs fetching the same pages with a bare
//!    HTTP client that does not parse them.
//! 4. RSS of the daemon process with those 10,000 bookings, vs before it had any.
//!
//! Targets from the calendar issue: parse + file ≥ 50,000 DTOs/s; event → persisted ≤ 5 ms
//! (checked at p99); catch-up of 10,000 bookings ≤ 2 s.
//!
//! `cargo bench --bench calendar`.

use roomd_testkit::figures;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use roomd::bookings::model::BookingsModel;
use roomd::bookings::store::{self, BookingsStore};
use roomd::proto::calendar::{self, CalendarEvent};
use roomd::shutdown::Tasks;
use roomd::store::StateDir;
use rustls_pki_types::pem::PemObject;

fn dto_event(i: usize, version: usize) -> String {
    serde_json::json!({
        "eventType": "calendar.meeting.update",
        "calendarMeetingExternal": {
            "id": format!("meeting-{i:05}"),
            "start": "2026-11-23T10:00:00.000Z",
            "durationMinutes": 30,
            "organizer": "d3701784-bbe3-41ff-afc6-b14086d26d4f",
            "encryptedSubject": format!("Weekly sync {version}"),
            "encryptedLocation": "Room 1",
            "meetingJoinType": "WEBEX",
            "webexURI": format!("{i}@example.webex.com"),
            "meetingJoinInfo": {"meetingJoinURI": format!("{i}@example.webex.com")},
        }
    })
    .to_string()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The model alone: RSS growth for 10,000 filed bookings (measured first, on a fresh heap),
/// and the size of their cache file.
fn model_memory() {
    let keys = HashMap::new();
    let before = rss_kib();
    let mut model = BookingsModel::default();
    for i in 0..10_000 {
        let value: serde_json::Value = serde_json::from_str(&dto_event(i, 0)).unwrap();
        if let Ok(CalendarEvent::Upsert(dto)) =
            calendar::parse_event("calendar.meeting.update", &value)
        {
            model.upsert(&dto, &keys);
        }
    }
    let after = rss_kib();
    let cache = serde_json::to_vec(&model).unwrap().len();
    println!(
        "RSS growth for 10,000 bookings in the model: {:.1} MiB (process {:.1} -> {:.1} MiB = {:.2} x); cache file {:.1} MiB",
        (after.saturating_sub(before)) as f64 / 1024.0,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after as f64 / before.max(1) as f64,
        cache as f64 / 1_048_576.0
    );
    figures::figure(
        "process RSS with 10,000 bookings in the model",
        after as f64 / 1024.0,
        "MiB",
    )
    .against("before", before.max(1) as f64 / 1024.0)
    .record();
    figures::figure(
        "RSS growth for 10,000 bookings in the model",
        after.saturating_sub(before) as f64 / 1024.0,
        "MiB",
    )
    .record();
    figures::figure(
        "cache file of 10,000 bookings",
        cache as f64 / 1_048_576.0,
        "MiB",
    )
    .record();
    std::hint::black_box(model);
}

fn parse_and_apply() {
    const N: usize = 200_000;
    let texts: Vec<String> = (0..N).map(|i| dto_event(i % 10_000, i / 10_000)).collect();
    let started = Instant::now();
    for text in &texts {
        std::hint::black_box(serde_json::from_str::<serde_json::Value>(text).unwrap());
    }
    let bare = started.elapsed();
    let mut model = BookingsModel::default();
    let keys = HashMap::new();
    let started = Instant::now();
    for text in &texts {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let event_type = value["eventType"].as_str().unwrap().to_string();
        if let Ok(CalendarEvent::Upsert(dto)) = calendar::parse_event(&event_type, &value) {
            model.upsert(&dto, &keys);
        }
    }
    let roomd = started.elapsed();
    assert_eq!(model.bookings.len(), 10_000);
    let rate = |d: Duration| N as f64 / d.as_secs_f64();
    println!(
        "DTO parse, bare serde_json (baseline):          {:>10.0} DTOs/s",
        rate(bare)
    );
    println!(
        "DTO parse + file into 10,000 bookings (roomd):  {:>10.0} DTOs/s  = {:.2} x baseline (target >= 50,000/s)",
        rate(roomd),
        rate(roomd) / rate(bare)
    );
    figures::figure(
        "DTO parse + file into 10,000 bookings, one core",
        rate(roomd),
        "DTOs/s",
    )
    .against("bare serde_json", rate(bare))
    .target(figures::Target::AtLeast(50_000.0))
    .record();
}

async fn persisted_latency(dir: PathBuf) {
    let state = StateDir::open(dir.join("state")).unwrap();
    let (bookings, _) = BookingsStore::open(&state, 300);
    // A realistic room: 50 bookings.
    let keys = HashMap::new();
    for i in 0..50 {
        let text = dto_event(i, 0);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        if let Ok(CalendarEvent::Upsert(dto)) =
            calendar::parse_event("calendar.meeting.update", &value)
        {
            bookings.update(|m| (m.upsert(&dto, &keys), true));
        }
    }
    let tasks = Tasks::new();
    {
        let (bookings, state) = (bookings.clone(), state.clone());
        tasks.spawn(tracing::Span::none(), move |sd| {
            store::persist(bookings, state, sd)
        });
    }
    let mut persisted = bookings.persisted();
    // Baseline: one bare atomic write of the same bytes, 300 times.
    let bytes = std::fs::read(state.file("bookings.json")).unwrap_or_else(|_| vec![b'x'; 20_000]);
    let mut bare = Vec::new();
    for _ in 0..300 {
        let started = Instant::now();
        state.write_atomic("baseline.json", &bytes).unwrap();
        bare.push(started.elapsed());
    }
    // 1,000 events/s for 3 s; each waits until the persisted generation covers it.
    let mut latencies = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let generation_start = *bookings.generation().borrow();
    for n in 0..3000 {
        tick.tick().await;
        let started = Instant::now();
        let text = dto_event(n % 50, n + 1);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let Ok(CalendarEvent::Upsert(dto)) =
            calendar::parse_event("calendar.meeting.update", &value)
        else {
            unreachable!()
        };
        bookings.update(|m| (m.upsert(&dto, &keys), true));
        let target = *bookings.generation().borrow();
        persisted.wait_for(|g| *g >= target).await.unwrap();
        latencies.push(started.elapsed());
    }
    let generations = *bookings.generation().borrow() - generation_start;
    tasks.shutdown(Duration::from_secs(5)).await.unwrap();
    bare.sort();
    latencies.sort();
    println!(
        "persist, bare write_atomic of the cache (baseline): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&bare, 0.5).as_secs_f64() * 1e3,
        percentile(&bare, 0.99).as_secs_f64() * 1e3
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "event -> persisted -> feedback at 1,000 events/s: p50 {:.2} ms, p99 {:.2} ms = p99 {:.2} x baseline ({generations} changes; target <= 5 ms)",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        percentile(&latencies, 0.99).as_secs_f64() / percentile(&bare, 0.99).as_secs_f64()
    );
    figures::figure(
        "event → cache persisted → feedback at 1,000 events/s, p50",
        ms(percentile(&latencies, 0.5)),
        "ms",
    )
    .against("bare write_atomic p50", ms(percentile(&bare, 0.5)))
    .record();
    figures::figure(
        &format!(
            "the same, p99 ({} persisted changes for 3,000 events)",
            figures::number(generations as f64)
        ),
        ms(percentile(&latencies, 0.99)),
        "ms",
    )
    .against("bare write_atomic p99", ms(percentile(&bare, 0.99)))
    .target(figures::Target::AtMost(5.0))
    .record();
}

async fn catch_up_and_rss(dir: PathBuf) {
    let scenario =
        roomd_sim::Scenario::from_toml_str("[[devices]]\nactivation_code = \"4353450012345678\"\n")
            .unwrap();
    let mut options = roomd_sim::SimOptions::new(dir.join("sim"));
    options.scenario = scenario;
    let sim = roomd_sim::start(options).await.unwrap();
    let mut bulk = roomd_sim::BulkSpec::new(10_000);
    bulk.start_in_mins = 30;
    bulk.spacing_mins = 1;
    sim.calendar_bulk(bulk).unwrap();

    let mut config = roomd::config::Config::default();
    config.device.board_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("board");
    config.device.state_dir = Some(dir.join("state"));
    config.device.runtime_dir = Some(dir.join("run"));
    config.cloud.gds_url = Some(sim.gds_url());
    config.cloud.activation_url = Some(sim.activation_url());
    config.cloud.extra_ca_files = vec![sim.ca_path().to_path_buf()];
    let board = roomd::hw::board::Board::load(&config.device.board_dir, "sim").unwrap();
    let rss_before = rss_kib();
    let daemon = roomd::daemon::Daemon::start(roomd::daemon::DaemonOptions {
        config,
        board,
        notifier: roomd::platform::systemd::Notifier::disabled(),
        watchdog: None,
    })
    .await
    .unwrap();
    let mut status = daemon.status();
    daemon
        .session()
        .activate(roomd::activation::code::ActivationCode::parse("4353450012345678").unwrap())
        .await
        .unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(120),
        status.wait_for(|s| s.bookings.catch_ups >= 1 && s.bookings.count == 10_000),
    )
    .await
    .expect("caught up within 2 minutes")
    .unwrap()
    .clone();
    let took = done.bookings.catch_up_duration.unwrap();
    let rss_after = rss_kib();

    // Baseline: the same 200 pages with a bare HTTP client (same TLS, no parsing).
    let (access, _) = sim.tokens();
    let token = access.last().unwrap().clone();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(sim.proxy_ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    let from = roomd::clock::iso8601(std::time::SystemTime::now() - Duration::from_secs(86_400));
    let to = roomd::clock::iso8601(std::time::SystemTime::now() + Duration::from_secs(7 * 86_400));
    let mut url = Some(format!(
        "{}/calendar/api/v1/calendarEvents?max=50&offset=0&fromDate={from}&toDate={to}&compact=true",
        sim.service_base_url()
    ));
    let started = Instant::now();
    let mut pages = 0;
    while let Some(next) = url.take() {
        let response = http.get(&next).bearer_auth(&token).send().await.unwrap();
        url = response
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(calendar::next_link);
        std::hint::black_box(response.bytes().await.unwrap());
        pages += 1;
    }
    let bare = started.elapsed();
    println!(
        "catch-up of 10,000 bookings, bare page fetch (baseline, {pages} pages): {:.2} s",
        bare.as_secs_f64()
    );
    println!(
        "catch-up of 10,000 bookings, roomd (fetch, decrypt, file):         {:.2} s = {:.2} x baseline (target <= 2 s)",
        took.as_secs_f64(),
        took.as_secs_f64() / bare.as_secs_f64()
    );
    figures::figure(
        "catch-up of 10,000 encrypted bookings (fetch, decrypt, file)",
        took.as_secs_f64(),
        "s",
    )
    .against(
        &format!("bare fetch of the same {pages} pages"),
        bare.as_secs_f64(),
    )
    .target(figures::Target::AtMost(2.0))
    .record();
    println!(
        "RSS of the whole bench process (roomd and roomd-sim, each holding 10,000 bookings): {:.1} MiB (before activation {:.1} MiB) = {:.2} x",
        rss_after as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        rss_after as f64 / rss_before.max(1) as f64
    );
    figures::figure(
        "RSS of the bench process (roomd and roomd-sim, 10,000 bookings each)",
        rss_after as f64 / 1024.0,
        "MiB",
    )
    .against("before activation", rss_before.max(1) as f64 / 1024.0)
    .record();
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

fn main() {
    figures::about(
        "calendar DTOs parsed and filed, event → cache persisted → feedback, catch-up of 10,000 bookings from roomd-sim over loopback HTTPS, RSS",
        "per figure, in the same run: a bare serde_json parse of the same text; one bare write_atomic of the same bytes; the same pages fetched without parsing; RSS before",
    );
    let dir = tempfile::tempdir().unwrap();
    model_memory();
    parse_and_apply();
    let one_core = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    one_core.block_on(persisted_latency(dir.path().join("persist")));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(catch_up_and_rss(dir.path().join("catch-up")));
}
