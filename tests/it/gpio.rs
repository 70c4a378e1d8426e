//! The room's buttons and LEDs on a registered in-process roomd with the `sim` board's fake
//! pins: the join button dials the OBTP booking, the mute button toggles microphone mute and
//! the xAPI reports it as feedback, the privacy switch turns the camera off, and the LEDs
//! follow (status, mute, meeting available).

use crate::support;

use futures_util::SinkExt;
use roomd::api::xapi::auth::set_password;
use roomd::hw::board::GpioRole;
use roomd::store::StateDir;
use serde_json::json;
use support::{LogCapture, next_json, wait_status, xapi_connect};
use tokio_tungstenite::tungstenite::Message;

/// One booking whose join window is open now.
const SCENARIO: &str = r#"bookings = [{ title = "Joinable now", start_in_mins = 2, webex_uri = "now@webex.sim.invalid" }]"#;

/// A bouncy press, released once roomd counted it (the press counts on the settled edge).
async fn press(
    sim: &roomd::hw::gpio::SimGpio,
    role: GpioRole,
    status: &mut tokio::sync::watch::Receiver<roomd::status::DeviceStatus>,
) {
    let count = |s: &roomd::status::DeviceStatus| match role {
        GpioRole::JoinButton => s.hardware.join_presses,
        _ => s.hardware.mute_presses,
    };
    let before = count(&status.borrow());
    let button = sim
        .handle_input(role)
        .expect("the sim board has the button");
    button.bounce(&[true, false, true]);
    button.set(true);
    wait_status(status, "the press counted", |s| count(s) == before + 1).await;
    button.set(false);
}

#[tokio::test]
async fn buttons_switch_and_leds_drive_and_follow_the_room() {
    LogCapture::global();
    let dir = tempfile::tempdir().unwrap();
    let (_sim, daemon, mut status) = support::registered_daemon(dir.path(), SCENARIO, |_| {}).await;
    let state = StateDir::open(dir.path().join("state")).unwrap();
    set_password(&state, "touchpanel", "panel-password").unwrap();
    let gpio = daemon.sim_gpio().expect("board sim has in-process GPIO");

    let s = wait_status(
        &mut status,
        "the booking is joinable and the LEDs show it",
        |s| {
            !s.bookings.joinable.is_empty()
                && s.hardware.meeting_led
                && s.hardware.status_led == roomd::hw::gpio::led::LedPattern::On
        },
    )
    .await;
    assert_eq!(s.hardware.gpio, roomd::hw::GpioState::Sim);
    assert!(gpio.handle_output(GpioRole::MeetingLed).unwrap().level());
    assert!(
        gpio.handle_output(GpioRole::StatusLed).unwrap().level(),
        "registered: steady on"
    );
    assert!(!gpio.handle_output(GpioRole::MuteLed).unwrap().level());

    // An xAPI client subscribed to microphone mute and camera state sees the hardware act.
    let url = daemon.xapi_urls()[0].clone();
    let mut ws = xapi_connect(&url, "touchpanel", "panel-password")
        .await
        .unwrap();
    for (id, query) in [
        ("1", json!(["Status", "Audio", "Microphones", "Mute"])),
        ("2", json!(["Status", "Video", "Input", "MainVideoMute"])),
    ] {
        let subscribe = json!({"jsonrpc": "2.0", "id": id, "method": "xFeedback/Subscribe", "params": {"Query": query}});
        ws.send(Message::text(subscribe.to_string())).await.unwrap();
        assert_eq!(next_json(&mut ws).await["id"], id);
    }

    press(gpio, GpioRole::MuteButton, &mut status).await;
    let feedback = next_json(&mut ws).await;
    assert_eq!(
        feedback["params"],
        json!({"Id": 1, "Status": {"Audio": {"Microphones": {"Mute": "On"}}}})
    );
    wait_status(&mut status, "mute LED lit", |s| s.hardware.mute_led).await;
    assert!(gpio.handle_output(GpioRole::MuteLed).unwrap().level());

    let switch = gpio.handle_input(GpioRole::PrivacySwitch).unwrap();
    switch.bounce(&[true, false]);
    switch.set(true);
    let feedback = next_json(&mut ws).await;
    assert_eq!(
        feedback["params"],
        json!({"Id": 2, "Status": {"Video": {"Input": {"MainVideoMute": "On"}}}})
    );
    let s = wait_status(&mut status, "camera off", |s| s.controls.camera_off).await;
    assert_eq!(
        roomd::api::xstatus::tree(&s, std::time::Duration::ZERO)["SystemUnit"]["Hardware"]["Gpio"]
            ["PrivacySwitch"],
        "Closed"
    );

    press(gpio, GpioRole::JoinButton, &mut status).await;
    let s = wait_status(&mut status, "the join button dialled", |s| {
        s.calls.last_dial.is_some()
    })
    .await;
    let dial = s.calls.last_dial.unwrap();
    assert_eq!(dial.source, "gpio:join_button");
    assert_eq!(dial.booking_id, s.bookings.current_id);
    assert!(
        dial.number.contains("now@webex.sim.invalid"),
        "{}",
        dial.number
    );
    assert_eq!(
        (s.hardware.join_presses, s.hardware.mute_presses),
        (1, 1),
        "bounces made one press each"
    );
    assert!(LogCapture::global().contains("join_button pressed"));
}
