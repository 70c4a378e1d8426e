//! Every call's pipelines go to Null and are freed when the call ends: the process has no
//! more GStreamer pipelines, threads or (non-TCP) file descriptors after three calls than after one.
//! Alone in its test binary (not in `tests/it`), so no other test's pipelines or threads are
//! counted.

use roomd_testkit::daemon as support;

use std::collections::HashSet;
use std::time::Duration;

use roomd::media::gst::live_pipelines;
use serde_json::Value;
use support::wait_status_within;

/// How long idle threads of the last call may take to leave.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const MEDIA_TIMEOUT: Duration = Duration::from_secs(if cfg!(target_arch = "aarch64") {
    240
} else {
    60
});

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

/// Inodes of the TCP sockets in this network namespace.
fn tcp_socket_inodes() -> HashSet<String> {
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| line.split_whitespace().nth(9).map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Open descriptors other than TCP sockets. The sim runs in this process, so its HTTP and
/// websocket connections to roomd (pooled, closed on idle timers) are counted twice and come
/// and go on their own schedule; what a call's media owns (its UDP socket, GStreamer's
/// socketpairs, pipes and eventfds) is never TCP.
fn non_tcp_fds() -> usize {
    let tcp = tcp_socket_inodes();
    std::fs::read_dir("/proc/self/fd")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| std::fs::read_link(entry.path()).ok())
                .filter(|target| {
                    let target = target.to_string_lossy();
                    target
                        .strip_prefix("socket:[")
                        .and_then(|rest| rest.strip_suffix(']'))
                        .is_none_or(|inode| !tcp.contains(inode))
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_threads_and_fds_do_not_outlive_their_calls() {
    let dir = tempfile::tempdir().unwrap();
    // Every part runs: three layers, the node decoding them and sending seven video streams
    // and three audio streams back, which roomd decodes, composes and mixes.
    let scenario = "[locus]\nanswer_delay_ms = 0\n[media]\nauto_scr = true\nsend_max_fs = 240\nparticipants = 7\n";
    let (sim, daemon, mut status) = support::registered_daemon(dir.path(), scenario, |_| {}).await;
    support::wait_call_control(&mut status).await;
    let mut after = Vec::new();
    for call in 1..=3 {
        daemon
            .room()
            .dial(support::dial_request("bob@example.com"))
            .await
            .unwrap();
        let s = wait_status_within(MEDIA_TIMEOUT, &mut status, "media both ways", |s| {
            s.media.session.as_ref().is_some_and(|m| {
                m.layers.iter().all(|l| l.packets > 0)
                    && m.receive.len() == 10
                    && m.receive.iter().filter(|r| r.frames > 0).count() == 7
            })
        })
        .await;
        assert!(live_pipelines() >= 2, "send and receive pipelines run");
        let ssrc = s.media.session.as_ref().unwrap().layers[0].ssrc;
        sim.wait_media(MEDIA_TIMEOUT, "the node decodes", |m| {
            m["sessions"].as_array().is_some_and(|sessions| {
                sessions.iter().any(|s| {
                    s["streams"].as_array().is_some_and(|streams| {
                        streams
                            .iter()
                            .any(|st| st["ssrc"] == ssrc && st["framesDecoded"].as_u64() > Some(0))
                    })
                })
            })
        })
        .await;
        daemon.room().calls().disconnect(None).await.unwrap();
        wait_status_within(MEDIA_TIMEOUT, &mut status, "media torn down", |s| {
            s.media.session.is_none() && s.calls.active.is_empty()
        })
        .await;
        assert_eq!(live_pipelines(), 0, "call {call}: every pipeline freed");
        sim.wait_media(MEDIA_TIMEOUT, "the node ended the session", |m: &Value| {
            m["sessions"]
                .as_array()
                .is_some_and(|s| s.len() == call && s.iter().all(|s| s["ended"] == true))
        })
        .await;
        after.push((count("/proc/self/task"), non_tcp_fds()));
    }
    let (threads_1, fds_1) = after[0];
    // GLib keeps up to two idle pool threads around; a leak would add the encoders' and
    // streaming threads of every call (dozens). Idle pool threads beyond those leave on their
    // own time (under qemu-user, seconds after the call), and nothing announces it: look
    // again until the counts settle or the bound passes.
    let settled = async {
        loop {
            let now = (count("/proc/self/task"), non_tcp_fds());
            if now.0 <= threads_1 + 2 && now.1 <= fds_1 {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let last = tokio::time::timeout(SETTLE_TIMEOUT, settled).await;
    eprintln!("threads and non-TCP fds after each call: {after:?}, settled: {last:?}");
    assert!(
        last.is_ok(),
        "threads and non-TCP fds after each call: {after:?}, now {:?} (threads, fds)",
        (count("/proc/self/task"), non_tcp_fds())
    );
    let _ = daemon.run_until(async {}).await;
}
