//! Hardware: the board description (GPIO roles → line names, media sources), the GPIO layer
//! (LEDs, buttons, privacy switch) written against embedded-hal traits, and the hardware's
//! slice of the device status.

pub mod board;
pub mod gpio;
pub mod status;

pub use status::{GpioState, HardwareStatus};
