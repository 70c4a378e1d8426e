//! The supervisor against a scripted [`Link`] under paused time: the backoff schedule, the
//! stable-connection reset, and what each close-code row makes it do.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;
use crate::events::Resync;
use crate::shutdown::Tasks;

/// What the next dialled socket does.
#[derive(Debug, Clone)]
enum Script {
    /// Fails before any socket exists (refused TCP, TLS error...).
    FailConnect,
    /// Comes online, then the server closes it after `after`.
    OnlineThenClose {
        after: Duration,
        code: u16,
        reason: &'static str,
    },
    /// The server closes before the socket came online.
    CloseBeforeOnline { code: u16 },
    /// Comes online and stays.
    Online,
}

#[derive(Debug, Default)]
struct Record {
    dials: Vec<Instant>,
    refreshes: u32,
    reregisters: u32,
}

#[derive(Debug)]
struct FakeLink {
    script: Mutex<VecDeque<Script>>,
    record: Arc<Mutex<Record>>,
}

impl Link for FakeLink {
    fn dial(
        &self,
        id: u64,
        _url: String,
        _shared: Arc<Shared>,
        reports: Reports,
        mut control: mpsc::Receiver<Control>,
    ) -> BoxFuture<'static, ()> {
        self.record.lock().unwrap().dials.push(Instant::now());
        let step = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Script::Online);
        Box::pin(async move {
            let closed = |code: Option<u16>, reason: &str, was_online: bool, by_us: bool| {
                ConnectionEvent::Closed(CloseInfo {
                    code,
                    reason: reason.into(),
                    was_online,
                    by_us,
                })
            };
            let event = match step {
                Script::FailConnect => closed(None, "connection refused", false, true),
                Script::CloseBeforeOnline { code } => closed(Some(code), "", false, false),
                Script::OnlineThenClose {
                    after,
                    code,
                    reason,
                } => {
                    let _ = reports.send((id, ConnectionEvent::Online)).await;
                    tokio::time::sleep(after).await;
                    closed(Some(code), reason, true, false)
                }
                Script::Online => {
                    let _ = reports.send((id, ConnectionEvent::Online)).await;
                    let _ = control.recv().await;
                    closed(Some(1000), "done", true, true)
                }
            };
            let _ = reports.send((id, event)).await;
        })
    }

    fn refresh_token(&self) -> BoxFuture<'_, ()> {
        self.record.lock().unwrap().refreshes += 1;
        Box::pin(async {})
    }

    fn reregister(&self) -> BoxFuture<'_, ()> {
        self.record.lock().unwrap().reregisters += 1;
        Box::pin(async {})
    }
}

struct Harness {
    record: Arc<Mutex<Record>>,
    status: watch::Receiver<MercuryStatus>,
    resync: watch::Receiver<Resync>,
    tasks: Tasks,
    _urls: watch::Sender<Option<String>>,
}

fn start(script: Vec<Script>) -> Harness {
    let record = Arc::new(Mutex::new(Record::default()));
    let link = FakeLink {
        script: Mutex::new(script.into()),
        record: Arc::clone(&record),
    };
    let (urls, urls_rx) = watch::channel(Some("wss://mercury.test/x".to_string()));
    let bus = EventBus::new();
    let resync = bus.resync();
    let supervisor =
        Supervisor::new(link, MercuryConfig::default(), urls_rx, bus).with_backoff_seed(7);
    let status = supervisor.status();
    let tasks = Tasks::new();
    tasks.spawn(tracing::Span::none(), |shutdown| supervisor.run(shutdown));
    Harness {
        record,
        status,
        resync,
        tasks,
        _urls: urls,
    }
}

async fn wait_for(
    status: &mut watch::Receiver<MercuryStatus>,
    what: impl Fn(&MercuryStatus) -> bool,
) -> MercuryStatus {
    let found = tokio::time::timeout(Duration::from_secs(3600), status.wait_for(|s| what(s)))
        .await
        .expect("state reached within an hour of paused time")
        .expect("supervisor alive");
    found.clone()
}

fn gaps(dials: &[Instant]) -> Vec<f64> {
    dials
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

fn within_jitter(actual: f64, base: f64) -> bool {
    actual >= base * 0.8 - 1e-6 && actual <= base * 1.2 + 1e-6
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_to_32_s_and_resets_after_a_stable_connection() {
    let mut script = vec![Script::FailConnect; 7];
    // Then a connection that stays up past `stable_after` (60 s) and drops...
    script.push(Script::OnlineThenClose {
        after: Duration::from_secs(61),
        code: 1006,
        reason: "",
    });
    // ...after which the schedule starts over at 1 s.
    script.push(Script::FailConnect);
    script.push(Script::Online);
    let mut h = start(script);
    wait_for(&mut h.status, |s| s.connects == 2).await;
    let dials = h.record.lock().unwrap().dials.clone();
    assert_eq!(dials.len(), 10);
    let gaps = gaps(&dials);
    for (gap, base) in gaps.iter().zip([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 32.0]) {
        assert!(
            within_jitter(*gap, base),
            "gap {gap} s, expected {base} s ±20 %: {gaps:?}"
        );
    }
    // gaps[7] = 61 s online + the first delay after the stable connection.
    assert!(within_jitter(gaps[7] - 61.0, 1.0), "{gaps:?}");
    assert!(within_jitter(gaps[8], 2.0), "{gaps:?}");
    h.tasks.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unstable_connection_keeps_backing_off() {
    let short = |code| Script::OnlineThenClose {
        after: Duration::from_secs(5),
        code,
        reason: "",
    };
    let mut h = start(vec![short(1006), short(1011), short(1001), Script::Online]);
    wait_for(&mut h.status, |s| s.connects == 4).await;
    let gaps = gaps(&h.record.lock().unwrap().dials);
    for (gap, base) in gaps.iter().zip([1.0, 2.0, 4.0]) {
        assert!(within_jitter(gap - 5.0, base), "{gaps:?}");
    }
    assert_eq!(h.status.borrow().reconnects, 3);
    h.tasks.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn close_code_rows() {
    struct Row {
        script: Script,
        retries: bool,
        refreshes: u32,
        reregisters: u32,
        final_state: WsState,
    }
    let after_online = |code, reason| Script::OnlineThenClose {
        after: Duration::from_secs(1),
        code,
        reason,
    };
    let rows = [
        Row {
            script: Script::CloseBeforeOnline { code: 4400 },
            retries: false,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Failed,
        },
        Row {
            script: Script::CloseBeforeOnline { code: 4403 },
            retries: false,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Failed,
        },
        Row {
            script: Script::CloseBeforeOnline { code: 4401 },
            retries: true,
            refreshes: 1,
            reregisters: 0,
            final_state: WsState::Online,
        },
        Row {
            script: Script::CloseBeforeOnline { code: 1011 },
            retries: true,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Online,
        },
        Row {
            script: after_online(4000, "replaced"),
            retries: false,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Stopped,
        },
        Row {
            script: after_online(4401, ""),
            retries: true,
            refreshes: 1,
            reregisters: 0,
            final_state: WsState::Online,
        },
        Row {
            script: after_online(1001, ""),
            retries: true,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Online,
        },
        Row {
            script: after_online(1005, ""),
            retries: true,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Online,
        },
        Row {
            script: after_online(1006, ""),
            retries: true,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Online,
        },
        Row {
            script: after_online(1011, ""),
            retries: true,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Online,
        },
        Row {
            script: after_online(1000, "idle"),
            retries: true,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Online,
        },
        Row {
            script: after_online(1000, "done (forced)"),
            retries: true,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Online,
        },
        Row {
            script: after_online(1000, "pong not received"),
            retries: true,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Online,
        },
        Row {
            script: after_online(1000, "pong mismatch"),
            retries: true,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Online,
        },
        Row {
            script: after_online(1000, "goodbye"),
            retries: false,
            refreshes: 0,
            reregisters: 0,
            final_state: WsState::Stopped,
        },
        Row {
            script: after_online(1003, ""),
            retries: true,
            refreshes: 0,
            reregisters: 1,
            final_state: WsState::Online,
        },
        Row {
            script: after_online(1008, ""),
            retries: true,
            refreshes: 0,
            reregisters: 1,
            final_state: WsState::Online,
        },
        Row {
            script: after_online(4999, ""),
            retries: true,
            refreshes: 0,
            reregisters: 1,
            final_state: WsState::Online,
        },
    ];
    for row in rows {
        let label = format!("{:?}", row.script);
        let before_online = matches!(row.script, Script::CloseBeforeOnline { .. });
        let mut h = start(vec![row.script]);
        if row.retries {
            // Back online through a second socket.
            let connects = if before_online { 1 } else { 2 };
            wait_for(&mut h.status, |s| {
                s.state == WsState::Online && s.connects == connects
            })
            .await;
            assert_eq!(h.record.lock().unwrap().dials.len(), 2, "{label}");
        } else {
            let reached = wait_for(&mut h.status, |s| s.state == row.final_state).await;
            assert!(reached.detail.is_some(), "{label}: the reason is shown");
            // Nothing dials again, however long we wait.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            assert_eq!(h.record.lock().unwrap().dials.len(), 1, "{label}");
        }
        let (refreshes, reregisters, dials) = {
            let record = h.record.lock().unwrap();
            (record.refreshes, record.reregisters, record.dials.clone())
        };
        assert_eq!(refreshes, row.refreshes, "{label}");
        assert_eq!(reregisters, row.reregisters, "{label}");
        if row.reregisters > 0 {
            let gap = gaps(&dials)[0];
            assert!(
                gap >= 32.0,
                "{label}: a permanent close retries slowly ({gap} s)"
            );
        }
        h.tasks.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn resync_is_requested_on_connect_and_reconnect() {
    let mut h = start(vec![
        Script::OnlineThenClose {
            after: Duration::from_secs(2),
            code: 1006,
            reason: "",
        },
        Script::Online,
    ]);
    wait_for(&mut h.status, |s| s.connects == 2).await;
    let resync = h.resync.borrow_and_update().clone();
    assert_eq!(resync.generation, 2);
    assert_eq!(resync.reason, ResyncReason::Reconnected);
    h.tasks.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_new_registration_restarts_a_refused_socket() {
    let mut h = start(vec![
        Script::CloseBeforeOnline { code: 4403 },
        Script::Online,
    ]);
    wait_for(&mut h.status, |s| s.state == WsState::Failed).await;
    h._urls
        .send(Some("wss://mercury.test/new".to_string()))
        .unwrap();
    let online = wait_for(&mut h.status, |s| s.state == WsState::Online).await;
    assert_eq!(online.url.as_deref(), Some("wss://mercury.test/new"));
    assert_eq!(h.record.lock().unwrap().dials.len(), 2);
    h.tasks.shutdown(Duration::from_secs(5)).await.unwrap();
}
