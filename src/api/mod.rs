//! What local clients talk to: the control socket (`roomd status`), and later the xAPI.

pub mod control;
pub mod xapi;
pub mod xstatus;
