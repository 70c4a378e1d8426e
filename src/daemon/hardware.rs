//! The room's GPIO, wired to the daemon: LEDs follow the device state (status, mute, "meeting
//! available"), buttons and the privacy switch act through [`Room`]. The drivers are the
//! embedded-hal ones in `hw::gpio`; this module only decides what they show and what a press
//! does, for either backend (in-process `sim` pins or Linux GPIO character devices).

use std::collections::BTreeMap;

use embedded_hal::digital::{InputPin, OutputPin};
use embedded_hal_async::digital::Wait;
use tokio::sync::{mpsc, watch};

use crate::calls::CallState;
use crate::cloud::mercury::WsState;
use crate::hw::GpioState;
use crate::hw::board::Board;
use crate::hw::board::{GpioBackend, GpioRole};
use crate::hw::gpio::{self, ButtonPress, DEFAULT_SETTLE, LedPattern, SimGpio};
use crate::platform::logging::{Subsystem, message_id};
use crate::room::Room;
use crate::shutdown::{Shutdown, Tasks};
use crate::status::{ActivationState, DeviceStatus, RegistrationState, SystemState};

/// The status LED's pattern for a device state.
pub fn status_pattern(status: &DeviceStatus) -> LedPattern {
    if status.system == SystemState::Stopping {
        return LedPattern::Off;
    }
    if status
        .calls
        .active
        .iter()
        .any(|c| c.status == CallState::Ringing)
    {
        return LedPattern::Ringing;
    }
    match &status.activation {
        ActivationState::NotActivated => LedPattern::Off,
        ActivationState::NeedsActivation { .. } => LedPattern::Error,
        ActivationState::Activating => LedPattern::Activating,
        ActivationState::Activated { .. } => match status.registration.state {
            RegistrationState::Registered if status.websocket.state == WsState::Failed => {
                LedPattern::Error
            }
            RegistrationState::Registered => LedPattern::On,
            _ => LedPattern::Activating,
        },
    }
}

/// Opens the board's GPIO and starts its tasks. Returns the simulated pins' handles for the
/// `sim` backend (tests and the control socket press its buttons). A board whose lines cannot
/// be opened runs without GPIO: logged, shown in status, everything else works.
pub fn start(
    tasks: &Tasks,
    board: &Board,
    status: &watch::Sender<DeviceStatus>,
    room: &Room,
) -> Option<SimGpio> {
    let span = Subsystem::Hardware.span();
    let _entered = span.enter();
    match board.gpio.backend {
        GpioBackend::Sim => {
            let mut sim = SimGpio::new(&board.gpio);
            wire(tasks, sim.take_outputs(), sim.take_inputs(), status, room);
            status.send_modify(|s| s.hardware.gpio = GpioState::Sim);
            Some(sim)
        }
        GpioBackend::Cdev => {
            match gpio::open_cdev(&board.gpio) {
                Ok(lines) => {
                    wire(tasks, lines.outputs, lines.inputs, status, room);
                    status.send_modify(|s| s.hardware.gpio = GpioState::Cdev);
                }
                Err(e) => {
                    tracing::error!("GPIO unavailable: {e}; buttons and LEDs are off");
                    status.send_modify(|s| {
                        s.hardware.gpio = GpioState::Unavailable;
                        s.hardware.detail = Some(e.to_string());
                    });
                }
            }
            None
        }
    }
}

/// Spawns a button or switch driver for a concrete pin type. The drivers are generic, but
/// the futures of `Wait`'s async methods are only known to be `Send` for concrete types.
trait SpawnInput: Sized {
    fn spawn_button(self, tasks: &Tasks, role: GpioRole, presses: mpsc::Sender<ButtonPress>);
    fn spawn_switch(self, tasks: &Tasks, role: GpioRole, state: watch::Sender<bool>);
}

macro_rules! spawn_input_for {
    ($pin:ty) => {
        impl SpawnInput for $pin {
            fn spawn_button(
                self,
                tasks: &Tasks,
                role: GpioRole,
                presses: mpsc::Sender<ButtonPress>,
            ) {
                tasks.spawn(Subsystem::Hardware.span(), move |shutdown| {
                    gpio::run_button(role, self, DEFAULT_SETTLE, presses, shutdown)
                });
            }
            fn spawn_switch(self, tasks: &Tasks, role: GpioRole, state: watch::Sender<bool>) {
                tasks.spawn(Subsystem::Hardware.span(), move |shutdown| {
                    gpio::run_switch(role, self, DEFAULT_SETTLE, state, shutdown)
                });
            }
        }
    };
}

spawn_input_for!(gpio::FakeInput);
spawn_input_for!(gpio::CdevInput);

fn wire<O, I>(
    tasks: &Tasks,
    outputs: Vec<(GpioRole, O)>,
    inputs: Vec<(GpioRole, I)>,
    status: &watch::Sender<DeviceStatus>,
    room: &Room,
) where
    O: OutputPin + Send + 'static,
    I: InputPin + Wait + SpawnInput,
{
    let mut leds = BTreeMap::new();
    for (role, pin) in outputs {
        let (tx, rx) = watch::channel(LedPattern::Off);
        leds.insert(role, tx);
        tasks.spawn(Subsystem::Hardware.span(), move |shutdown| {
            gpio::run_led(role, pin, rx, shutdown)
        });
    }
    {
        let status = status.clone();
        tasks.spawn(Subsystem::Hardware.span(), move |shutdown| {
            drive_leds(leds, status, shutdown)
        });
    }
    let (presses_tx, presses_rx) = mpsc::channel(16);
    for (role, pin) in inputs {
        match role {
            GpioRole::PrivacySwitch => {
                let (tx, rx) = watch::channel(false);
                pin.spawn_switch(tasks, role, tx);
                let room = room.clone();
                tasks.spawn(Subsystem::Hardware.span(), move |shutdown| {
                    follow_privacy_switch(rx, room, shutdown)
                });
            }
            _ => {
                pin.spawn_button(tasks, role, presses_tx.clone());
            }
        }
    }
    drop(presses_tx);
    let (room, status) = (room.clone(), status.clone());
    tasks.spawn(Subsystem::Hardware.span(), move |shutdown| {
        handle_presses(presses_rx, room, status, shutdown)
    });
}

/// Keeps every LED's pattern (and `roomd status`) in step with the device state.
async fn drive_leds(
    leds: BTreeMap<GpioRole, watch::Sender<LedPattern>>,
    status: watch::Sender<DeviceStatus>,
    mut shutdown: Shutdown,
) {
    let mut updates = status.subscribe();
    loop {
        let (state_pattern, muted, meeting) = {
            let now = updates.borrow_and_update();
            (
                status_pattern(&now),
                now.controls.microphones_muted,
                // Lit while a booking can be joined or a call is up.
                !now.bookings.joinable.is_empty()
                    || now
                        .calls
                        .active
                        .iter()
                        .any(|c| c.status != CallState::Ringing),
            )
        };
        let wanted = [
            (GpioRole::StatusLed, state_pattern),
            (GpioRole::MuteLed, on(muted)),
            (GpioRole::MeetingLed, on(meeting)),
        ];
        for (role, pattern) in wanted {
            if let Some(led) = leds.get(&role) {
                led.send_if_modified(|current| {
                    let changed = *current != pattern;
                    *current = pattern;
                    changed
                });
            }
        }
        // Only when something differs, so this update does not wake the loop forever.
        status.send_if_modified(|s| {
            let hw = &mut s.hardware;
            let before = (hw.status_led, hw.mute_led, hw.meeting_led);
            hw.status_led = state_pattern;
            hw.mute_led = muted && leds.contains_key(&GpioRole::MuteLed);
            hw.meeting_led = meeting && leds.contains_key(&GpioRole::MeetingLed);
            before != (hw.status_led, hw.mute_led, hw.meeting_led)
        });
        tokio::select! {
            changed = updates.changed() => if changed.is_err() { return },
            _ = shutdown.recv() => return,
        }
    }
}

fn on(lit: bool) -> LedPattern {
    if lit { LedPattern::On } else { LedPattern::Off }
}

async fn handle_presses(
    mut presses: mpsc::Receiver<ButtonPress>,
    room: Room,
    status: watch::Sender<DeviceStatus>,
    mut shutdown: Shutdown,
) {
    loop {
        let press = tokio::select! {
            press = presses.recv() => match press { Some(p) => p, None => return },
            _ = shutdown.recv() => return,
        };
        tracing::info!(
            message_id = message_id::BUTTON_PRESSED,
            role = %press.role,
            "{} pressed",
            press.role
        );
        room.wake(&format!("gpio:{}", press.role));
        match press.role {
            GpioRole::JoinButton => {
                status.send_modify(|s| s.hardware.join_presses += 1);
                if let Err(e) = room.join_current("gpio:join_button").await {
                    tracing::info!("join button: {e}");
                }
            }
            GpioRole::MuteButton => {
                status.send_modify(|s| s.hardware.mute_presses += 1);
                room.toggle_microphones();
            }
            other => tracing::warn!("{other} is not a button; press ignored"),
        }
    }
}

async fn follow_privacy_switch(
    mut closed: watch::Receiver<bool>,
    room: Room,
    mut shutdown: Shutdown,
) {
    loop {
        let now = *closed.borrow_and_update();
        room.set_camera_off(now);
        tokio::select! {
            changed = closed.changed() => if changed.is_err() { return },
            _ = shutdown.recv() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_led_patterns_follow_the_device_state() {
        let mut s = DeviceStatus::new("sim", "https://gds.invalid");
        assert_eq!(status_pattern(&s), LedPattern::Off);
        s.activation = ActivationState::Activating;
        assert_eq!(status_pattern(&s), LedPattern::Activating);
        s.activation = ActivationState::Activated {
            device_identifier: "d".into(),
            org_id: "o".into(),
        };
        s.registration.state = RegistrationState::Registering;
        assert_eq!(status_pattern(&s), LedPattern::Activating);
        s.registration.state = RegistrationState::Registered;
        assert_eq!(status_pattern(&s), LedPattern::On);
        s.websocket.state = WsState::Failed;
        assert_eq!(status_pattern(&s), LedPattern::Error);
        s.activation = ActivationState::NeedsActivation { reason: "x".into() };
        assert_eq!(status_pattern(&s), LedPattern::Error);
        s.system = SystemState::Stopping;
        assert_eq!(status_pattern(&s), LedPattern::Off);
    }
}
