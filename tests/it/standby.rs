//! Standby: the idle timer, the xAPI's `Standby Activate/Deactivate` (a touch on the panel is
//! an xAPI command), and a call waking the room.

use std::time::Duration;

use futures_util::SinkExt as _;
use roomd::api::xapi::auth::set_password;
use roomd::calls::CallState;
use roomd::store::StateDir;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{self, LogCapture, next_json, wait_status, xapi_connect};

const PANEL_PASSWORD: &str = "panel-password";

async fn command<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, id: &str, path: &str) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request =
        json!({"jsonrpc": "2.0", "id": id, "method": format!("xCommand/{path}"), "params": {}});
    ws.send(Message::text(request.to_string())).await.unwrap();
    loop {
        let message = next_json(ws).await;
        if message.get("id") == Some(&json!(id)) {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sends_the_room_to_standby_and_a_touch_or_a_call_wakes_it() {
    let _logs = LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path().join("state")).unwrap();
    set_password(&state, "touchpanel", PANEL_PASSWORD).unwrap();
    drop(state);
    // 1.2 s of idling.
    let (sim, daemon, mut status) = support::registered_daemon(dir.path(), "", |c| {
        c.device.standby_delay_mins = 0.02;
    })
    .await;
    wait_status(&mut status, "standby after the idle time", |s| {
        s.controls.standby
    })
    .await;

    // A touch on the panel: any xAPI command wakes the room; Standby Deactivate says so.
    let url = daemon.xapi_urls()[0].clone();
    let mut panel = xapi_connect(&url, "touchpanel", PANEL_PASSWORD)
        .await
        .unwrap();
    let reply = command(&mut panel, "w1", "Standby/Deactivate").await;
    assert_eq!(reply["result"], json!({}), "{reply}");
    wait_status(&mut status, "awake after the touch", |s| {
        !s.controls.standby
    })
    .await;
    let request = json!({"jsonrpc": "2.0", "id": "g1", "method": "xGet", "params": {"Path": ["Status", "Standby", "State"]}});
    panel
        .send(Message::text(request.to_string()))
        .await
        .unwrap();
    let got = loop {
        let m = next_json(&mut panel).await;
        if m.get("id") == Some(&json!("g1")) {
            break m;
        }
    };
    assert!(
        got["result"] == "Off" || got["result"] == "Standby",
        "{got}"
    );

    let reply = command(&mut panel, "a1", "Standby/Activate").await;
    assert_eq!(reply["result"], json!({}), "{reply}");
    wait_status(&mut status, "standby on request", |s| s.controls.standby).await;

    // An incoming call wakes the room, and standby is refused while it lasts.
    support::wait_call_control(&mut status).await;
    sim.locus_incoming("alice@example.com", "Alice").unwrap();
    wait_status(&mut status, "awake for the ringing call", |s| {
        !s.controls.standby
            && s.calls
                .active
                .iter()
                .any(|c| c.status == CallState::Ringing)
    })
    .await;
    let reply = command(&mut panel, "a2", "Standby/Activate").await;
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not possible during a call")),
        "{reply}"
    );
    // Still awake well past the idle time while the call rings (the timer does not run).
    let awake = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            status.changed().await.unwrap();
            if status.borrow().controls.standby {
                return;
            }
        }
    })
    .await;
    assert!(awake.is_err(), "no standby during a call");
    let _ = daemon.run_until(async {}).await;
}
