//! The hardware's slice of the device status: which GPIO backend runs, what the LEDs show,
//! the privacy switch and button presses (`roomd status` → `SystemUnit Hardware Gpio`).

use super::gpio::LedPattern;

/// Which GPIO backend drives the board's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpioState {
    /// In-process simulated lines (`board/sim.toml`).
    Sim,
    /// Linux GPIO character devices.
    Cdev,
    /// The lines could not be opened (or GPIO is not started yet): no buttons, no LEDs.
    #[default]
    Unavailable,
}

impl GpioState {
    pub fn as_str(self) -> &'static str {
        match self {
            GpioState::Sim => "sim",
            GpioState::Cdev => "cdev",
            GpioState::Unavailable => "unavailable",
        }
    }
}

/// GPIO as the hardware task drives and reads it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HardwareStatus {
    pub gpio: GpioState,
    pub detail: Option<String>,
    /// The status LED's pattern.
    pub status_led: LedPattern,
    pub mute_led: bool,
    pub meeting_led: bool,
    pub join_presses: u32,
    pub mute_presses: u32,
}

/// How `roomd status` names a status LED pattern (`On` is the registered state).
pub fn status_led_name(pattern: LedPattern) -> &'static str {
    match pattern {
        LedPattern::Off => "Off",
        LedPattern::On => "Registered",
        LedPattern::Activating => "Activating",
        LedPattern::Error => "Error",
        LedPattern::Ringing => "Ringing",
    }
}
