//! roomd's integration tests, one module per area, all in this one test binary: linking a
//! binary with roomd, the simulator and GStreamer costs far more than its tests take to
//! compile, natively and again for aarch64. What must run in a process of its own has its own
//! binary; docs/development.md ("Tests") lists them and why.
//!
//! `cargo test --test it MODULE::` runs one module, e.g. `cargo test --test it config_golden::`.

mod support;

mod activation;
mod calendar;
mod calls;
mod cli;
mod config_golden;
mod crash_safety;
mod daemon;
mod gpio;
mod locus_conformance;
mod media;
mod media_echo;
mod media_output;
mod meeting_server;
mod mercury;
mod packaging;
mod reachability;
mod security_log_scan;
mod security_state_files;
mod security_tls;
mod security_xapi;
mod session;
mod srtp_interop;
mod standby;
mod tls;
mod xapi;
mod xapi_clients;
mod yocto_layer;
