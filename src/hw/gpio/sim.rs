//! The `sim` backend: every role of the board as a fake pin inside the process.
//!
//! The drivers get the pins exactly as they would get Linux lines; the handles stay
//! here for whoever plays the room (a control-socket command, a test): press buttons,
//! flip the privacy switch, read the LEDs.

use std::collections::BTreeMap;

use super::fake::{FakeInput, FakeInputHandle, FakeOutput, FakeOutputHandle};
use crate::hw::board::{BoardGpio, GpioRole};

/// The fake lines of a `sim` board.
#[derive(Debug)]
pub struct SimGpio {
    outputs: BTreeMap<GpioRole, FakeOutputHandle>,
    inputs: BTreeMap<GpioRole, FakeInputHandle>,
    output_pins: Vec<(GpioRole, FakeOutput)>,
    input_pins: Vec<(GpioRole, FakeInput)>,
}

impl SimGpio {
    /// One fake pin per role the board has. LEDs start off; inputs start low (buttons
    /// released, privacy switch open).
    pub fn new(gpio: &BoardGpio) -> Self {
        let mut sim = SimGpio {
            outputs: BTreeMap::new(),
            inputs: BTreeMap::new(),
            output_pins: Vec::new(),
            input_pins: Vec::new(),
        };
        for &role in gpio.lines.keys() {
            if role.is_output() {
                let (pin, handle) = FakeOutput::new();
                sim.outputs.insert(role, handle);
                sim.output_pins.push((role, pin));
            } else {
                let (pin, handle) = FakeInput::new(false);
                sim.inputs.insert(role, handle);
                sim.input_pins.push((role, pin));
            }
        }
        sim
    }

    /// The roles this board has, in role order.
    pub fn roles(&self) -> Vec<GpioRole> {
        let mut roles: Vec<GpioRole> = self
            .outputs
            .keys()
            .chain(self.inputs.keys())
            .copied()
            .collect();
        roles.sort();
        roles
    }

    /// Reads an LED; `None` if the board has no such output.
    pub fn handle_output(&self, role: GpioRole) -> Option<FakeOutputHandle> {
        self.outputs.get(&role).cloned()
    }

    /// Moves a button or switch; `None` if the board has no such input.
    pub fn handle_input(&self, role: GpioRole) -> Option<FakeInputHandle> {
        self.inputs.get(&role).cloned()
    }

    /// The output pins for the LED drivers; empty the second time. Handles keep working.
    pub fn take_outputs(&mut self) -> Vec<(GpioRole, FakeOutput)> {
        std::mem::take(&mut self.output_pins)
    }

    /// The input pins for the button and switch drivers; empty the second time.
    pub fn take_inputs(&mut self) -> Vec<(GpioRole, FakeInput)> {
        std::mem::take(&mut self.input_pins)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::{mpsc, watch};

    use super::*;
    use crate::hw::board::GpioBackend;
    use crate::hw::gpio::test_support::signal;
    use crate::hw::gpio::{DEFAULT_SETTLE, LedPattern, run_button, run_led};

    fn board_without_meeting_led() -> BoardGpio {
        let lines = GpioRole::ALL
            .into_iter()
            .filter(|role| role.required())
            .map(|role| (role, role.key().to_uppercase()))
            .collect();
        BoardGpio {
            backend: GpioBackend::Sim,
            chip: None,
            lines,
        }
    }

    #[test]
    fn one_pin_per_role_the_board_has() {
        let mut sim = SimGpio::new(&board_without_meeting_led());
        assert_eq!(sim.roles().len(), 5);
        assert!(sim.handle_output(GpioRole::MeetingLed).is_none());
        assert!(sim.handle_output(GpioRole::JoinButton).is_none());
        assert!(sim.handle_input(GpioRole::PrivacySwitch).is_some());
        let outputs: Vec<GpioRole> = sim.take_outputs().into_iter().map(|(r, _)| r).collect();
        assert_eq!(outputs, [GpioRole::StatusLed, GpioRole::MuteLed]);
        let inputs: Vec<GpioRole> = sim.take_inputs().into_iter().map(|(r, _)| r).collect();
        assert_eq!(
            inputs,
            [
                GpioRole::JoinButton,
                GpioRole::MuteButton,
                GpioRole::PrivacySwitch
            ]
        );
        assert!(sim.take_outputs().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn handles_drive_the_pins_given_to_the_drivers() {
        let mut sim = SimGpio::new(&board_without_meeting_led());
        let (_stop, shutdown) = signal();
        let (_other_stop, other) = signal();
        let (patterns_tx, patterns) = watch::channel(LedPattern::Off);
        let (presses_tx, mut presses) = mpsc::channel(4);
        for (role, pin) in sim.take_outputs() {
            if role == GpioRole::MuteLed {
                tokio::spawn(run_led(role, pin, patterns.clone(), other));
                break;
            }
        }
        for (role, pin) in sim.take_inputs() {
            if role == GpioRole::MuteButton {
                tokio::spawn(run_button(role, pin, DEFAULT_SETTLE, presses_tx, shutdown));
                break;
            }
        }
        tokio::task::yield_now().await;

        let button = sim.handle_input(GpioRole::MuteButton).unwrap();
        button.set(true);
        tokio::time::sleep(Duration::from_millis(100)).await;
        button.set(false);
        assert_eq!(presses.recv().await.unwrap().role, GpioRole::MuteButton);

        let mut led = sim.handle_output(GpioRole::MuteLed).unwrap();
        patterns_tx.send(LedPattern::On).unwrap();
        assert!(led.changed().await);
    }
}
