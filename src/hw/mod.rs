//! Hardware: the board description (GPIO roles → line names, media sources) and the
//! GPIO layer (LEDs, buttons, privacy switch) written against embedded-hal traits.

pub mod board;
pub mod gpio;
