//! Calendar, bookings cache and OBTP end to end: an activated, registered daemon against
//! roomd-sim's calendar and KMS (encrypted DTOs, paging, minimal events, faults) with events
//! over the real event socket. Retries are shortened in configuration (100 ms → 1 s).

use crate::support;

use roomd::bookings::cache::{CACHE_FILE, TEXT_FILE};
use roomd::cloud::mercury::WsState;
use roomd::config::Config;
use roomd::status::DeviceStatus;
use roomd_sim::{BookingPatch, BookingSpec, BulkSpec, EventMode, Fault, SimHandle};
use support::*;
use tokio::sync::watch;

type Status = watch::Receiver<DeviceStatus>;

fn fast(config: &mut Config) {
    config.cloud.retry_initial_ms = 100;
    config.cloud.retry_max_secs = 1;
    config.websocket.backoff_initial_ms = 100;
    config.websocket.backoff_max_secs = 1;
}

/// Registered, event socket online, first catch-up done.
async fn ready(dir: &std::path::Path) -> (SimHandle, roomd::daemon::Daemon, Status) {
    let (sim, daemon, mut status) = registered_daemon(dir, "", fast).await;
    wait_status(&mut status, "online and caught up", |s| {
        s.websocket.state == WsState::Online && s.bookings.catch_ups >= 1
    })
    .await;
    (sim, daemon, status)
}

fn title_of(daemon: &roomd::daemon::Daemon, id: &str) -> Option<String> {
    daemon
        .bookings()
        .read(|m| m.bookings.get(id).map(|b| b.title_shown().to_string()))
}

async fn wait_title(status: &mut Status, daemon: &roomd::daemon::Daemon, id: &str, title: &str) {
    let bookings = daemon.bookings();
    wait_status(status, &format!("{id} titled {title:?}"), |_| {
        bookings.read(|m| m.bookings.get(id).map(|b| b.title_shown() == title)) == Some(true)
    })
    .await;
}

async fn wait_gone(status: &mut Status, daemon: &roomd::daemon::Daemon, id: &str) {
    let bookings = daemon.bookings();
    wait_status(status, &format!("{id} removed"), |_| {
        bookings.read(|m| !m.bookings.contains_key(id))
    })
    .await;
}

fn spec(title: &str, start_in_mins: i64) -> BookingSpec {
    let mut spec = BookingSpec::new(title, start_in_mins);
    spec.webex_uri = Some("1234@example.webex.com".into());
    spec
}

#[tokio::test]
async fn every_event_type_and_a_minimal_fetch_that_fails_twice() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = ready(dir.path()).await;

    // create (full DTO, encrypted): filed and decrypted with the KMS key.
    let created = sim
        .calendar_create(spec("Quarterly review", 60), EventMode::Full)
        .unwrap();
    let id = created.booking.id.clone();
    wait_title(&mut status, &daemon, &id, "Quarterly review").await;
    // update (full)
    let patch = BookingPatch {
        title: Some("Quarterly review (moved)".into()),
        ..Default::default()
    };
    sim.calendar_update(&id, patch, EventMode::Full).unwrap();
    wait_title(&mut status, &daemon, &id, "Quarterly review (moved)").await;
    // update.minimal: fetched by id
    let patch = BookingPatch {
        title: Some("Quarterly review (minimal)".into()),
        ..Default::default()
    };
    sim.calendar_update(&id, patch, EventMode::Minimal).unwrap();
    wait_title(&mut status, &daemon, &id, "Quarterly review (minimal)").await;
    // delete
    sim.calendar_delete(&id, EventMode::Full).unwrap();
    wait_gone(&mut status, &daemon, &id).await;

    // create.minimal whose fetch fails twice: pending, retried, then filed.
    sim.arm_fault(Fault {
        path: "/calendar/api/v1/calendarEvents/*".into(),
        method: Some("GET".into()),
        status: 500,
        count: 2,
        retry_after: None,
        body: None,
    })
    .unwrap();
    sim.clear_received();
    let minimal = sim
        .calendar_create(spec("Standup", 30), EventMode::Minimal)
        .unwrap();
    let mid = minimal.booking.id.clone();
    wait_title(&mut status, &daemon, &mid, "Standup").await;
    let fetches = sim
        .received()
        .iter()
        .filter(|r| r.path.starts_with("/calendar/api/v1/calendarEvents/"))
        .count();
    assert_eq!(fetches, 3, "two failures, then the fetch that worked");
    assert!(daemon.bookings().read(|m| m.pending.is_empty()));
    let log = LogCapture::global();
    for line in [
        "NotificationChannel: calendar.meeting.create, trackingid",
        "Inserting new meeting - organizer=",
        "Creating new Meeting (id=1)",
        &format!("Attaching CalendarEvent (id={id}) to Meeting (id=1)"),
        "Updating meeting - organizer=",
        &format!("Decrypting title for calendar event with id='{id}'"),
        &format!("Detaching CalendarEvent (id={id}) from Meeting (id=1)"),
        "Removing Meeting (id=1)",
        &format!("fetching calendar event {mid} failed"),
    ] {
        assert!(log.contains(line), "log lacks {line:?}");
    }
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn catch_up_pages_partial_failure_reconnect_gap_and_kms() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_activation_sim(dir.path(), "").await;
    // 500 bookings the device only learns by its first catch-up: 10 pages of 50.
    let mut bulk = BulkSpec::new(500);
    bulk.start_in_mins = 60;
    sim.calendar_bulk(bulk).unwrap();
    sim.clear_received();
    let mut config = activation_config(&sim, dir.path());
    fast(&mut config);
    let daemon = start_daemon(config, roomd::platform::systemd::Notifier::disabled()).await;
    let mut status = daemon.status();
    daemon
        .session()
        .activate(roomd::activation::code::ActivationCode::parse(GOOD_CODE).unwrap())
        .await
        .unwrap();
    let now = wait_status(&mut status, "500 bookings", |s| {
        s.bookings.count == 500 && s.bookings.catch_ups >= 1
    })
    .await;
    assert_eq!(
        now.bookings.catch_up,
        roomd::bookings::CatchUpState::Complete
    );
    let pages = sim
        .received()
        .iter()
        .filter(|r| r.path == "/calendar/api/v1/calendarEvents")
        .count();
    assert_eq!(pages, 10, "every page once, following the Link headers");
    wait_status(&mut status, "socket online", |s| {
        s.websocket.state == WsState::Online
    })
    .await;

    // Page 3 fails: nothing is removed, even a booking the calendar no longer has.
    let victim = sim.calendar_bookings()[0].id.clone();
    sim.calendar_delete(&victim, EventMode::None).unwrap();
    sim.calendar_fail_page(3, 500, 1).unwrap();
    let before = status.borrow().bookings.catch_ups;
    sim.close_websockets(1001, "going away").unwrap(); // reconnect → resync → catch-up
    wait_status(&mut status, "catch-up failed at page 3", |s| {
        s.bookings.catch_up == roomd::bookings::CatchUpState::Failed { page: Some(3) }
    })
    .await;
    assert!(
        title_of(&daemon, &victim).is_some(),
        "kept: the data was partial"
    );
    // The retry is complete and removes it.
    wait_status(&mut status, "caught up again", |s| {
        s.bookings.catch_ups > before
    })
    .await;
    wait_gone(&mut status, &daemon, &victim).await;

    // Created while the socket was down: the catch-up after the reconnect brings it.
    sim.abort_websockets();
    let offline = sim
        .calendar_create(spec("Made offline", 90), EventMode::None)
        .unwrap();
    wait_title(&mut status, &daemon, &offline.booking.id, "Made offline").await;

    // Created without an event, then a sequence gap: the gap's catch-up brings it.
    let silent = sim
        .calendar_create(spec("After a gap", 95), EventMode::None)
        .unwrap();
    sim.mercury_skip_sequence(2);
    sim.mercury_push(serde_json::json!({"eventType":"test.nudge"}))
        .unwrap();
    wait_title(&mut status, &daemon, &silent.booking.id, "After a gap").await;

    // KMS key missing: "(encrypted)", then decrypted on retry once the key is back.
    sim.kms_set_missing("default", true).unwrap();
    sim.kms_add_key("second").unwrap();
    let mut locked = spec("Key comes later", 120);
    locked.key = "second".into();
    sim.kms_set_missing("second", true).unwrap();
    let locked = sim.calendar_create(locked, EventMode::Full).unwrap();
    wait_title(&mut status, &daemon, &locked.booking.id, "(encrypted)").await;
    wait_status(&mut status, "keys missing", |s| s.bookings.keys_missing).await;
    sim.kms_set_missing("second", false).unwrap();
    sim.kms_set_missing("default", false).unwrap();
    wait_title(&mut status, &daemon, &locked.booking.id, "Key comes later").await;
    wait_status(&mut status, "keys present", |s| !s.bookings.keys_missing).await;
    daemon.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn obtp_view_cache_restart_and_corruption() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = ready(dir.path()).await;
    // One joinable booking inside its window now, one without any join URI.
    let joinable = sim
        .calendar_create(spec("Join me", 2), EventMode::Full)
        .unwrap();
    let plain = sim
        .calendar_create(BookingSpec::new("No URI", 3), EventMode::Full)
        .unwrap();
    let now = wait_status(&mut status, "both filed, one joinable", |s| {
        s.bookings.count == 2 && s.bookings.joinable.len() == 1
    })
    .await;
    let first = daemon
        .bookings()
        .read(|m| m.bookings[&joinable.booking.id].xapi_id());
    assert_eq!(now.bookings.joinable, std::slice::from_ref(&first));
    assert_eq!(now.bookings.current_id.as_deref(), Some(first.as_str()));
    // The cache and bookings.txt follow; `roomd bookings` prints the same text.
    let state_dir = dir.path().join("state");
    let mut persisted = daemon.bookings().persisted();
    let target = *daemon.bookings().generation().borrow();
    persisted.wait_for(|g| *g >= target).await.unwrap();
    let text = std::fs::read_to_string(state_dir.join(TEXT_FILE)).unwrap();
    assert_eq!(text, daemon.bookings().text());
    assert!(text.contains(&format!("*r BookingsListResult Booking 1 Id: \"{first}\"")));
    assert!(text.contains("Booking 1 DialInfo ConnectMode: \"OBTP\""));
    assert!(text.contains("Booking 2 Title: \"No URI\""));
    assert!(text.contains("Booking 2 DialInfo ConnectMode: \"Manual\""));
    assert!(text.contains(&format!("Booking 2 MeetingId: \"{}\"", plain.booking.id)));
    daemon.run_until(async {}).await.unwrap();

    // Restart with the cloud unreachable: the bookings are there at once, from the cache.
    sim.set_gds_state("offline");
    let config_dir = dir.path();
    let mut config = activation_config(&sim, config_dir);
    config.cloud.gds_url = Some("https://127.0.0.1:9/gds".into());
    fast(&mut config);
    let restarted = start_daemon(
        config.clone(),
        roomd::platform::systemd::Notifier::disabled(),
    )
    .await;
    let after = restarted.status().borrow().clone();
    assert_eq!(after.bookings.cache, "loaded 2 booking(s) from the cache");
    assert_eq!(restarted.bookings().text(), text);
    restarted.run_until(async {}).await.unwrap();

    // A corrupt cache: moved aside, logged, the daemon runs and rebuilds from the calendar.
    std::fs::write(
        state_dir.join(CACHE_FILE),
        b"{\"schema\":1,\"model\":[garbage",
    )
    .unwrap();
    sim.set_gds_state("online");
    let mut config = activation_config(&sim, config_dir);
    fast(&mut config);
    let rebuilt = start_daemon(config, roomd::platform::systemd::Notifier::disabled()).await;
    let mut status = rebuilt.status();
    assert!(
        status
            .borrow()
            .bookings
            .cache
            .starts_with("corrupt cache moved aside")
    );
    assert!(
        std::fs::read_dir(&state_dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("bookings.json.corrupt-")),
        "moved aside"
    );
    wait_status(&mut status, "rebuilt from the catch-up", |s| {
        s.bookings.count == 2
    })
    .await;
    rebuilt.run_until(async {}).await.unwrap();
    sim.shutdown().await;
}
