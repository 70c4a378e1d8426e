//! Call control end to end: an in-process roomd registered with the simulator places and
//! receives calls through the sim's Locus over real TLS and the real event socket.

use crate::support;

use std::path::Path;

use roomd::calls::{CallKind, CallState, CallView, Direction};
use roomd::status::DeviceStatus;
use serde_json::Value;
use support::{LogCapture, dial_request as dial, wait_status};
use tokio::sync::watch;

/// The far end answers at once, so tests never wait on a timer.
const SCENARIO: &str = "[locus]\nanswer_delay_ms = 0\n";

type Status = watch::Receiver<DeviceStatus>;

async fn registered(dir: &Path) -> (roomd_sim::SimHandle, roomd::daemon::Daemon, Status) {
    let (sim, daemon, mut status) = support::registered_daemon(dir, SCENARIO, |_| {}).await;
    support::wait_call_control(&mut status).await;
    (sim, daemon, status)
}

fn call(status: &DeviceStatus) -> Option<&CallView> {
    status.calls.active.first()
}

async fn wait_call(status: &mut Status, what: &str, state: CallState) -> CallView {
    let s = wait_status(status, what, |s| call(s).is_some_and(|c| c.status == state)).await;
    call(&s).unwrap().clone()
}

async fn wait_ended(status: &mut Status, what: &str, id: u32) -> CallView {
    let s = wait_status(status, what, |s| {
        s.calls.active.iter().all(|c| c.id != id) && s.calls.ended.iter().any(|c| c.id == id)
    })
    .await;
    s.calls.ended.iter().find(|c| c.id == id).unwrap().clone()
}

/// The sim's view of one locus (GET /admin/locus).
fn locus(sim: &roomd_sim::SimHandle, url: &str) -> Value {
    sim.locus(url)
        .unwrap_or_else(|| panic!("the sim has no locus {url}: {:#}", sim.loci()))
}

fn names(call: &CallView) -> Vec<&'static str> {
    call.diagnostics.iter().map(|d| d.name).collect()
}

/// `want` appears in `seen` in this order (other events may sit between).
fn in_order(seen: &[&str], want: &[&str]) -> bool {
    let mut rest = seen.iter();
    want.iter().all(|w| rest.any(|s| s == w))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outgoing_call_connects_with_its_diagnostics_in_order_and_hangs_up() {
    let logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = registered(dir.path()).await;
    let outcome = daemon.room().dial(dial("bob@example.com")).await.unwrap();
    let connected = wait_call(&mut status, "the call connects", CallState::Connected).await;
    assert_eq!(connected.id, outcome.call_id);
    assert_eq!(connected.correlation_id, outcome.conference_id);
    assert_eq!(
        (connected.direction, connected.kind),
        (Direction::Outgoing, CallKind::Call)
    );
    assert_eq!(connected.remote_number, "bob@example.com");
    assert!(
        in_order(
            &names(&connected),
            &[
                "client.call.initiated",
                "client.media-engine.local-sdp-generated",
                "client.locus.join.request",
                "client.locus.join.response",
                "client.media-engine.remote-sdp-received",
                "client.ice.start",
                "client.ice.end",
                "client.media-engine.ready",
            ]
        ),
        "{:?}",
        names(&connected)
    );
    assert!(logs.contains("Diagnostic event: client.locus.join.response"));
    let url = connected.locus_url.clone().unwrap();
    let seen = locus(&sim, &url);
    assert_eq!(seen["type"], "CALL", "{seen:#}");
    let join = seen["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .ends_with("/loci/call")
        })
        .unwrap_or_else(|| panic!("no POST /loci/call recorded: {seen:#}"));
    assert_eq!(
        join["body"]["correlationId"],
        outcome.conference_id.as_str()
    );
    assert_eq!(join["body"]["invitee"]["address"], "bob@example.com");
    assert!(
        join["body"]["localMedias"][0]["localSdp"]
            .as_str()
            .unwrap()
            .contains("m=video")
    );
    assert!(join["body"]["reachability"].is_object());

    daemon.room().calls().disconnect(None).await.unwrap();
    let ended = wait_ended(&mut status, "the call ends", outcome.call_id).await;
    assert_eq!(ended.end_cause.as_deref(), Some("LocalDisconnect"));
    assert_eq!(names(&ended).last(), Some(&"client.call.leave"));
    assert_eq!(locus(&sim, &url)["state"], "ENDED");
    daemon.run_until(async {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_uri_joins_through_meeting_info_and_the_participant_url() {
    let _logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = registered(dir.path()).await;
    daemon
        .room()
        .dial(dial("standup@acme.webex.com"))
        .await
        .unwrap();
    let connected = wait_call(&mut status, "the meeting connects", CallState::Connected).await;
    assert_eq!(connected.kind, CallKind::Meeting);
    let seen = locus(&sim, connected.locus_url.as_deref().unwrap());
    assert_eq!(seen["type"], "MEETING");
    let paths: Vec<String> = seen["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("POST ") && p.ends_with("/participant")),
        "{paths:?}"
    );
    // A dial string the regex does not match is a call, not a meeting.
    daemon.room().calls().disconnect(None).await.unwrap();
    wait_status(&mut status, "no call", |s| s.calls.active.is_empty()).await;
    daemon.run_until(async {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_call_rings_is_accepted_and_ends_when_the_far_end_hangs_up() {
    let _logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = registered(dir.path()).await;
    let url = sim.locus_incoming("alice@example.com", "Alice").unwrap();
    let ringing = wait_call(&mut status, "the room rings", CallState::Ringing).await;
    assert_eq!(ringing.direction, Direction::Incoming);
    assert_eq!(ringing.display_name, "Alice");
    assert_eq!(ringing.locus_url.as_deref(), Some(url.as_str()));
    wait_status(&mut status, "the status LED rings", |s| {
        s.hardware.status_led == roomd::hw::gpio::led::LedPattern::Ringing
    })
    .await;
    daemon.room().calls().accept(None).await.unwrap();
    let connected = wait_call(&mut status, "answered", CallState::Connected).await;
    assert_eq!(connected.id, ringing.id);
    sim.locus_hangup(&url).unwrap();
    let ended = wait_ended(&mut status, "the far end hangs up", ringing.id).await;
    assert_eq!(ended.end_cause.as_deref(), Some("RemoteDisconnect"));
    wait_status(&mut status, "the status LED is back", |s| {
        s.hardware.status_led == roomd::hw::gpio::led::LedPattern::On
    })
    .await;
    daemon.run_until(async {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_call_can_be_rejected() {
    let _logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = registered(dir.path()).await;
    let url = sim.locus_incoming("carol@example.com", "Carol").unwrap();
    let ringing = wait_call(&mut status, "the room rings", CallState::Ringing).await;
    daemon
        .room()
        .calls()
        .reject(Some(ringing.id))
        .await
        .unwrap();
    let ended = wait_ended(&mut status, "rejected", ringing.id).await;
    assert_eq!(ended.end_cause.as_deref(), Some("LocalReject"));
    let seen = locus(&sim, &url);
    let me = seen["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["state"] == "DECLINED");
    assert!(me.is_some(), "the device's participant declined: {seen:#}");
    daemon.run_until(async {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_resume_and_dtmf() {
    let _logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status) = registered(dir.path()).await;
    let calls = daemon.room().calls().clone();
    daemon.room().dial(dial("dave@example.com")).await.unwrap();
    let connected = wait_call(&mut status, "connected", CallState::Connected).await;
    calls.hold(None, true).await.unwrap();
    wait_call(&mut status, "on hold", CallState::OnHold).await;
    assert!(calls.send_dtmf(None, "1").await.is_err(), "no DTMF on hold");
    calls.hold(None, false).await.unwrap();
    wait_call(&mut status, "resumed", CallState::Connected).await;
    calls.send_dtmf(Some(connected.id), "123#").await.unwrap();
    let bad = calls.send_dtmf(None, "12x").await.unwrap_err();
    assert!(bad.to_string().contains("DTMF"), "{bad}");
    let seen = locus(&sim, connected.locus_url.as_deref().unwrap());
    let dtmf = seen["dtmf"].as_array().unwrap();
    assert_eq!(dtmf.len(), 1, "only the valid tones were sent: {seen:#}");
    assert_eq!(dtmf[0]["tones"], "123#");
    assert_eq!(dtmf[0]["correlationId"], connected.correlation_id.as_str());
    daemon.run_until(async {}).await.unwrap();
}

async fn joined_meeting(
    dir: &Path,
) -> (
    roomd_sim::SimHandle,
    roomd::daemon::Daemon,
    Status,
    CallView,
) {
    let (sim, daemon, mut status) = registered(dir).await;
    daemon
        .room()
        .dial(dial("sync@acme.webex.com"))
        .await
        .unwrap();
    let connected = wait_call(&mut status, "in the meeting", CallState::Connected).await;
    (sim, daemon, status, connected)
}

async fn wait_participants(status: &mut Status, what: &str, n: usize) -> DeviceStatus {
    wait_status(status, what, |s| {
        call(s).is_some_and(|c| c.participants == n)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_deltas_wait_then_apply_in_order() {
    let _logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status, connected) = joined_meeting(dir.path()).await;
    let url = connected.locus_url.clone().unwrap();
    let before = connected.participants;
    sim.locus_deltas("reorder", 2).unwrap();
    sim.locus_add_participant(&url, "Erin").unwrap();
    sim.locus_add_participant(&url, "Frank").unwrap();
    let s = wait_participants(&mut status, "both joins applied", before + 2).await;
    assert!(s.calls.locus.queued >= 1, "{:?}", s.calls.locus);
    assert_eq!(s.calls.locus.syncs, 0, "applied without a sync");
    daemon.run_until(async {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_fills_the_wait_queue_and_a_sync_recovers() {
    let _logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status, connected) = joined_meeting(dir.path()).await;
    let url = connected.locus_url.clone().unwrap();
    let before = connected.participants;
    sim.locus_deltas("skip", 1).unwrap();
    for name in ["G1", "G2", "G3", "G4", "G5", "G6", "G7"] {
        sim.locus_add_participant(&url, name).unwrap();
    }
    let s = wait_participants(&mut status, "all seven after the sync", before + 7).await;
    assert!(s.calls.locus.syncs >= 1, "{:?}", s.calls.locus);
    daemon.run_until(async {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_desync_syncs_and_falls_back_to_the_locus_url() {
    let _logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status, connected) = joined_meeting(dir.path()).await;
    let url = connected.locus_url.clone().unwrap();
    let before = connected.participants;
    let sync_path = format!(
        "{}/sync",
        url.split_once("/locus/")
            .map(|(_, p)| format!("/locus/{p}"))
            .unwrap()
    );
    sim.arm_fault(roomd_sim::Fault {
        path: sync_path,
        method: Some("GET".into()),
        status: 500,
        count: 1,
        retry_after: None,
        body: None,
    })
    .unwrap();
    sim.locus_deltas("force_desync", 1).unwrap();
    sim.locus_add_participant(&url, "Heidi").unwrap();
    let s = wait_participants(&mut status, "recovered by the full GET", before + 1).await;
    assert_eq!(s.calls.locus.desyncs, 1, "{:?}", s.calls.locus);
    assert_eq!(s.calls.locus.syncs, 1, "{:?}", s.calls.locus);
    daemon.run_until(async {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_keeps_mute_and_layout_and_tells_the_room() {
    let logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status, connected) = joined_meeting(dir.path()).await;
    let room = daemon.room();
    room.set_microphones_muted(true);
    room.set_layout_family("prominent").unwrap();
    let old = connected.locus_url.clone().unwrap();
    let new = sim.locus_move(&old, "Space 2", None).unwrap();
    let s = wait_status(&mut status, "moved", |s| {
        call(s).is_some_and(|c| {
            c.locus_url.as_deref() == Some(new.as_str()) && c.status == CallState::Connected
        })
    })
    .await;
    let moved = call(&s).unwrap();
    assert_eq!(moved.id, connected.id, "the call keeps its CallId");
    assert_ne!(
        moved.correlation_id, connected.correlation_id,
        "a new correlation id"
    );
    assert_eq!(
        s.calls.notice.as_deref(),
        Some("You have been moved to a new call. Now in Space 2")
    );
    assert_eq!(
        s.calls.moves.last().unwrap().outcome,
        roomd::calls::MoveOutcome::Moved
    );
    assert!(s.controls.microphones_muted, "mute carried over");
    assert_eq!(
        s.controls.layout,
        roomd::media::layout::LayoutFamily::Prominent,
        "layout carried over"
    );
    let destination = locus(&sim, &new);
    let join = destination["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "POST")
        .unwrap_or_else(|| panic!("no join of the destination: {destination:#}"));
    assert_eq!(join["body"]["audioMuted"], true);
    assert_eq!(join["body"]["correlationId"], moved.correlation_id.as_str());
    assert!(logs.contains("You have been moved to a new call. Now in Space 2"));
    daemon.run_until(async {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_move_failures_are_reported_distinctly() {
    let _logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (sim, daemon, mut status, connected) = joined_meeting(dir.path()).await;
    let first = connected.locus_url.clone().unwrap();

    // 1. Leaving fails: nothing happened, still in the first call.
    sim.locus_move(&first, "Nowhere", Some("leave")).unwrap();
    let s = wait_status(&mut status, "move 1 reported", |s| s.calls.moves.len() == 1).await;
    assert_eq!(
        s.calls.moves[0].outcome,
        roomd::calls::MoveOutcome::NothingHappened
    );
    assert_eq!(call(&s).unwrap().locus_url.as_deref(), Some(first.as_str()));

    // 3. The join lands in another meeting.
    let asked = sim
        .locus_move(&first, "Space 3", Some("wrong_meeting"))
        .unwrap();
    let s = wait_status(&mut status, "move 2 reported", |s| s.calls.moves.len() == 2).await;
    assert_eq!(
        s.calls.moves[1].outcome,
        roomd::calls::MoveOutcome::WrongMeeting,
        "{:?}",
        s.calls.moves
    );
    let landed = call(&s).unwrap().locus_url.clone().unwrap();
    assert_ne!(landed, asked);

    // 2. Left, but the destination refuses the join: dropped, not reconnected.
    sim.locus_move(&landed, "Space 4", Some("join")).unwrap();
    let s = wait_status(&mut status, "move 3 reported", |s| s.calls.moves.len() == 3).await;
    assert_eq!(
        s.calls.moves[2].outcome,
        roomd::calls::MoveOutcome::DroppedNotReconnected
    );
    let ended = wait_ended(&mut status, "the call is gone", connected.id).await;
    assert_eq!(ended.end_cause.as_deref(), Some("MoveFailed"));
    daemon.run_until(async {}).await.unwrap();
}

/// The sim's locus whose `POST /loci/call` carried `correlation_id`, with its requests.
fn locus_of_call(sim: &roomd_sim::SimHandle, correlation_id: &str) -> Option<Value> {
    sim.loci()["loci"].as_array()?.iter().find_map(|l| {
        let ours = l["requests"].as_array()?.iter().any(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/loci/call"))
                && r["body"]["correlationId"] == correlation_id
        });
        ours.then(|| l.clone())
    })
}

fn has_leave(locus: &Value) -> bool {
    locus["requests"].as_array().is_some_and(|requests| {
        requests
            .iter()
            .any(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/leave")))
    })
}

/// Locus holds its join answers for 10 s: a hang-up ends the call at once (within 1 s) and
/// the locus is left once the answer names it; a shutdown does not wait for the join either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_join_holds_up_neither_a_hang_up_nor_a_shutdown() {
    const HELD: &str = "[locus]\nanswer_delay_ms = 0\njoin_delay_ms = 10000\n";
    const PROMPTLY: std::time::Duration = std::time::Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    // Requests time out after 10 s by default: the held answer must still be heard.
    let (sim, daemon, mut status) = support::registered_daemon(dir.path(), HELD, |config| {
        config.cloud.request_timeout_secs = 30;
    })
    .await;
    support::wait_call_control(&mut status).await;

    let outcome = daemon.room().dial(dial("bob@example.com")).await.unwrap();
    let dialling = wait_call(&mut status, "dialling", CallState::Dialling).await;
    assert_eq!(dialling.id, outcome.call_id);
    tokio::time::timeout(PROMPTLY, daemon.room().calls().disconnect(None))
        .await
        .expect("Call Disconnect answers within 1 s while the join is held")
        .expect("disconnected");
    let ended = tokio::time::timeout(PROMPTLY, wait_ended(&mut status, "ended", outcome.call_id))
        .await
        .expect("the call ends within 1 s while the join is held");
    assert_eq!(ended.end_cause.as_deref(), Some("LocalDisconnect"));
    // The answer arrives after its 10 s and names the locus; the device leaves it then.
    sim.wait_connections(
        |_| locus_of_call(&sim, &outcome.conference_id).is_some_and(|l| has_leave(&l)),
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "the locus of the hung-up call is not left once the join answered: {e}\n{:#}",
            sim.loci()
        )
    });

    // A second join held: shutdown does not wait for it.
    let second = daemon.room().dial(dial("carol@example.com")).await.unwrap();
    wait_status(&mut status, "dialling again", |s| {
        s.calls.active.iter().any(|c| c.id == second.call_id)
    })
    .await;
    tokio::time::timeout(PROMPTLY, daemon.run_until(async {}))
        .await
        .expect("shutdown within 1 s while a join is held")
        .unwrap();
    sim.shutdown().await;
}
