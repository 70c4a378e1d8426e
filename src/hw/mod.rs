//! Hardware: the board description (GPIO roles → line names, media sources). GPIO drivers
//! built on embedded-hal arrive with the xAPI/GPIO work.

pub mod board;
