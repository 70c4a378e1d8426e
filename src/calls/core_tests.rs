//! `calls::core` as a table: each row is a scenario of inputs, each input with the actions it
//! must produce (summarised as short strings) and the call's state after it.

use serde_json::{Value, json};

use super::core::CallCore;
use super::messages::*;
use crate::config::MeetingUriRegex;
use crate::proto::locus::{JoinAnswer, LocusDto};

const LOCUS: &str = "https://l/loci/1";
const MEETING: &str = "https://l/loci/2";
const SDP: &str = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 5004 RTP/AVP 96\r\n";

/// A call's locus: this device and the far end in `me`/`far` states, sequence `n`.
fn locus(url: &str, n: u64, state: &str, me: &str, far: &str) -> Value {
    json!({
        "url": url,
        "sequence": { "entries": [n] },
        "fullState": { "state": state, "type": "CALL" },
        "self": { "url": format!("{url}/p/me"), "id": "me", "state": me },
        "participants": [
            { "url": format!("{url}/p/me"), "id": "me", "state": me },
            { "url": format!("{url}/p/far"), "id": "far", "state": far,
              "person": { "name": "Far End" } },
        ],
    })
}

fn event(locus: Value) -> Input {
    Input::Event(json!({ "eventType": "locus.difference", "locus": locus }))
}

fn moved(to: &str, from: &str) -> Input {
    let mut destination = locus(to, 1, "ACTIVE", "JOINED", "JOINED");
    destination["self"]["reason"] = json!("MOVED");
    destination["replaces"] = json!([{ "locusUrl": from }]);
    destination["fullState"]["type"] = json!("MEETING");
    Input::Event(json!({ "eventType": "locus.participant_moved", "locus": destination }))
}

fn joined(call_id: u32, attempt: u32, locus: Value) -> Input {
    let answer: JoinAnswer = serde_json::from_value(json!({
        "locus": locus,
        "mediaConnections": [{ "remoteSdp": SDP }],
    }))
    .unwrap();
    done(
        call_id,
        attempt,
        Done::Joined {
            answer: Ok(answer),
            meeting_name: None,
        },
    )
}

fn done(call_id: u32, attempt: u32, done: Done) -> Input {
    Input::Done {
        call_id,
        attempt,
        done: Box::new(done),
    }
}

fn command(op: OpId, command: Command) -> Input {
    Input::Command { op, command }
}

fn dial(op: OpId) -> Input {
    command(
        op,
        Command::Dial {
            number: "far@example.com".into(),
        },
    )
}

fn ice(call_id: u32, attempt: u32) -> Input {
    done(
        call_id,
        attempt,
        Done::Ice(Ok("127.0.0.1:40000".parse().unwrap())),
    )
}

/// One word or two per action, in order.
fn summary(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Reply { op, result } => match result {
                Ok(Answer::Dialled(d)) => format!("reply {op} dialled {}", d.call_id),
                Ok(Answer::Done) => format!("reply {op} ok"),
                Err(e) => format!("reply {op} error {e:?}"),
            },
            Action::Event(CallEvent::Outgoing { call_id, .. }) => format!("outgoing {call_id}"),
            Action::Event(CallEvent::Incoming { call_id, .. }) => format!("incoming {call_id}"),
            Action::Event(CallEvent::Disconnect { call_id, cause, .. }) => {
                format!("disconnect {call_id} {}", cause.as_str())
            }
            Action::Event(CallEvent::Notice { text, .. }) => format!("notice {text}"),
            Action::Locus { request, .. } => match request {
                LocusRequest::Call { address, .. } => format!("call {address}"),
                LocusRequest::JoinMeeting { address, .. } => format!("meeting {address}"),
                LocusRequest::Join { locus_url, .. } => format!("join {locus_url}"),
                LocusRequest::Leave { locus_url, .. } => format!("leave {locus_url}"),
                LocusRequest::Decline { locus_url } => format!("decline {locus_url}"),
                LocusRequest::Alert { locus_url } => format!("alert {locus_url}"),
                LocusRequest::Hold { held, .. } => format!("hold {held}"),
                LocusRequest::Dtmf { tones, .. } => format!("dtmf {tones}"),
                LocusRequest::Sync { locus_url, .. } => format!("sync {locus_url}"),
            },
            Action::CheckIce { .. } => "ice".into(),
            Action::StartMedia { attempt, .. } => format!("media {attempt}"),
            Action::StopMedia { .. } => "stop media".into(),
        })
        .collect()
}

/// What status shows: the first call's state, or `ended <cause>` of the last ended one.
fn shown(core: &CallCore) -> String {
    match core.status().active.first() {
        Some(call) => call.status.as_str().to_owned(),
        None => core.status().ended.last().map_or("none".into(), |c| {
            format!("ended {}", c.end_cause.clone().unwrap_or_default())
        }),
    }
}

type Step = (Input, &'static [&'static str], &'static str);

fn run(name: &str, steps: Vec<Step>) -> CallCore {
    let mut core = CallCore::new(MeetingUriRegex::default(), 1);
    core.handle(Input::Services { available: true });
    for (n, (input, want, state)) in steps.into_iter().enumerate() {
        let got = summary(&core.handle(input));
        assert_eq!(got, want, "{name}, step {n}: actions");
        assert_eq!(shown(&core), state, "{name}, step {n}: state");
    }
    core
}

fn connected(n: u64) -> Value {
    locus(LOCUS, n, "ACTIVE", "JOINED", "JOINED")
}

/// A call dialled, its join in flight.
fn dialling() -> Vec<Step> {
    vec![(
        dial(1),
        &["outgoing 1", "call far@example.com", "reply 1 dialled 1"],
        "Dialling",
    )]
}

/// A call dialled, joined and checked: connected.
fn connected_call() -> Vec<Step> {
    let mut steps = dialling();
    steps.push((joined(1, 0, connected(1)), &["ice"], "Dialling"));
    steps.push((ice(1, 0), &["media 0"], "Connected"));
    steps
}

#[test]
fn the_table() {
    let rows: Vec<(&str, Vec<Step>)> = vec![
        (
            "a call connects after its join and connectivity check",
            connected_call(),
        ),
        (
            "events during the join wait for its answer, then apply in order",
            [
                dialling(),
                vec![
                // Sequence 2: the far end left; it must not be lost or applied first.
                (
                    event(locus(LOCUS, 2, "ACTIVE", "JOINED", "LEFT")),
                    &[],
                    "Dialling",
                ),
                (joined(1, 0, connected(1)), &["ice"], "Dialling"),
                (
                    ice(1, 0),
                    &["media 0", "stop media", "disconnect 1 RemoteDisconnect"],
                    "ended RemoteDisconnect",
                ),
                ],
            ]
            .concat(),
        ),
        (
            "a hang-up during the join ends the call at once; the locus is left when known",
            [
                dialling(),
                vec![
                (
                    command(2, Command::Disconnect { call_id: None }),
                    &["stop media", "disconnect 1 LocalDisconnect", "reply 2 ok"],
                    "ended LocalDisconnect",
                ),
                (
                    joined(1, 0, connected(1)),
                    &["leave https://l/loci/1"],
                    "ended LocalDisconnect",
                ),
                ],
            ]
            .concat(),
        ),
        (
            "a failed join ends the call as a network error",
            [
                dialling(),
                vec![
                (
                    done(
                        1,
                        0,
                        Done::Joined {
                            answer: Err("HTTP 503".into()),
                            meeting_name: None,
                        },
                    ),
                    &["stop media", "disconnect 1 NetworkError"],
                    "ended NetworkError",
                ),
                ],
            ]
            .concat(),
        ),
        (
            "hang-up of a connected call: leaving until Locus answers",
            [
                connected_call(),
                vec![
                (
                    command(2, Command::Disconnect { call_id: Some(1) }),
                    &["leave https://l/loci/1"],
                    "Disconnecting",
                ),
                (
                    done(1, 0, Done::Left(Ok(()))),
                    &["stop media", "disconnect 1 LocalDisconnect", "reply 2 ok"],
                    "ended LocalDisconnect",
                ),
                ],
            ]
            .concat(),
        ),
        (
            "hold: events wait for the hold's answer",
            [
                connected_call(),
                vec![
                (
                    command(
                        2,
                        Command::Hold {
                            call_id: None,
                            held: true,
                        },
                    ),
                    &["hold true"],
                    "Connected",
                ),
                (
                    event(locus(LOCUS, 3, "ACTIVE", "JOINED", "LEFT")),
                    &[],
                    "Connected",
                ),
                (
                    done(
                        1,
                        0,
                        Done::Held(Ok(serde_json::from_value({
                            let mut held = connected(2);
                            held["self"]["controls"] = json!({ "hold": { "held": true } });
                            held
                        })
                        .unwrap())),
                    ),
                    &["reply 2 ok", "stop media", "disconnect 1 RemoteDisconnect"],
                    "ended RemoteDisconnect",
                ),
                ],
            ]
            .concat(),
        ),
        (
            "an incoming call rings, is declined, ends as a local reject",
            vec![
                (
                    event(locus(LOCUS, 1, "ACTIVE", "NOTIFIED", "JOINED")),
                    &["incoming 1", "alert https://l/loci/1"],
                    "Ringing",
                ),
                (
                    command(2, Command::Reject { call_id: None }),
                    &["decline https://l/loci/1"],
                    "Disconnecting",
                ),
                (
                    done(1, 0, Done::Declined(Ok(()))),
                    &["stop media", "disconnect 1 LocalReject", "reply 2 ok"],
                    "ended LocalReject",
                ),
            ],
        ),
        (
            "commands that cannot happen are refused with the reason",
            vec![
                (
                    command(
                        1,
                        Command::Hold {
                            call_id: None,
                            held: true,
                        },
                    ),
                    &["reply 1 error NoCall"],
                    "none",
                ),
                (
                    command(
                        2,
                        Command::Dtmf {
                            call_id: None,
                            tones: "12x".into(),
                        },
                    ),
                    &["reply 2 error BadTones(\"12x\")"],
                    "none",
                ),
                (
                    dial(3),
                    &["outgoing 1", "call far@example.com", "reply 3 dialled 1"],
                    "Dialling",
                ),
                (dial(4), &["reply 4 error Busy(1)"], "Dialling"),
                (
                    command(5, Command::Accept { call_id: Some(7) }),
                    &["reply 5 error NoSuchCall(7)"],
                    "Dialling",
                ),
            ],
        ),
        (
            "a move leaves the old locus, joins the new one as the same call",
            [
                connected_call(),
                vec![
                (
                    moved(MEETING, LOCUS),
                    &["leave https://l/loci/1"],
                    "Connected",
                ),
                (
                    done(1, 0, Done::Left(Ok(()))),
                    &["stop media", "join https://l/loci/2"],
                    "Connecting",
                ),
                // An answer for the first attempt is stale now.
                (
                    done(1, 0, Done::Held(Err("late".into()))),
                    &[],
                    "Connecting",
                ),
                (
                    joined(1, 1, locus(MEETING, 1, "ACTIVE", "JOINED", "JOINED")),
                    &[
                        "ice",
                        "notice You have been moved to a new call. Now in the new meeting",
                    ],
                    "Connecting",
                ),
                (ice(1, 1), &["media 1"], "Connected"),
                ],
            ]
            .concat(),
        ),
        (
            "a move whose leave fails changes nothing",
            [
                connected_call(),
                vec![
                (
                    moved(MEETING, LOCUS),
                    &["leave https://l/loci/1"],
                    "Connected",
                ),
                (
                    done(1, 0, Done::Left(Err("HTTP 500".into()))),
                    &[
                        "notice nothing happened: leaving the old call failed (HTTP 500); still in the first call",
                    ],
                    "Connected",
                ),
                ],
            ]
            .concat(),
        ),
    ];
    for (name, steps) in rows {
        run(name, steps);
    }
}

#[test]
fn shutdown_ends_a_call_whose_join_is_in_flight_and_leaves_a_connected_one() {
    let mut core = run("dialling", dialling());
    assert_eq!(
        summary(&core.shutdown()),
        ["stop media", "disconnect 1 LocalDisconnect"]
    );
    assert!(core.is_idle());

    let mut core = run("connected", connected_call());
    assert_eq!(summary(&core.shutdown()), [format!("leave {LOCUS}")]);
    // The leave never answered: shutdown's deadline ends the call.
    assert_eq!(
        summary(&core.stopped()),
        ["stop media", "disconnect 1 LocalDisconnect"]
    );
}

#[test]
fn a_sync_holds_the_call_and_a_bad_event_is_counted() {
    let mut core = run("connected", connected_call());
    assert!(summary(&core.handle(Input::Event(json!("not an object")))).is_empty());
    assert_eq!(core.status().locus.bad_events, 1);
    // The event socket came back: every call begun before the resync is fetched.
    assert_eq!(
        summary(&core.handle(Input::Resync { generation: 1 })),
        [format!("sync {LOCUS}")]
    );
    // Meanwhile an event for the call waits.
    assert!(summary(&core.handle(event(locus(LOCUS, 3, "ACTIVE", "JOINED", "LEFT")))).is_empty());
    let synced: LocusDto = serde_json::from_value(connected(2)).unwrap();
    assert_eq!(
        summary(&core.handle(done(1, 0, Done::Synced(Ok(synced))))),
        ["stop media", "disconnect 1 RemoteDisconnect"]
    );
    assert_eq!(core.status().locus.syncs, 1);
}
