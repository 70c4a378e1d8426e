//! The simulator's integration tests, one module per service, all in this one test binary
//! (one link of the simulator and GStreamer instead of one per file). They drive the simulator
//! over the wire only, with the kit's `sim` helpers (`roomd_testkit::sim`, no roomd types).
//!
//! `cargo test -p roomd-sim --test it MODULE::` runs one module, e.g. `… --test it mercury::`.

mod calendar;
mod calliope;
mod cloud;
mod fuzz_seeds;
mod locus;
mod media;
mod meeting_server;
mod mercury;
mod sim;
