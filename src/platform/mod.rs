//! The process's surroundings: systemd notification and watchdog, logging, signals.

pub mod logging;
pub mod systemd;
