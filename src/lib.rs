//! roomd: the device agent of a meeting-room video device.
//!
//! The crate is layered in floors. A module uses only the floors above its own in this map,
//! and modules on one floor do not import each other in a circle; `src/layering.rs` checks
//! both against this very table (`docs/development.md`, "Layering").
//!
//! | floor | modules | what lives there |
//! |---|---|---|
//! | foundations | [`secret`], [`clock`], [`shutdown`], [`status_slice`] | redacted secrets, wire time format, task shutdown, a subsystem's writer onto its slice of the status |
//! | configuration | [`config`], [`hw::board`] | `/etc/roomd` files and drop-ins, board files |
//! | platform | [`platform`] | logging set-up, journald fields and message ids, systemd notify and watchdog |
//! | protocol types | [`proto`], [`locus`] | cloud wire types, their parsers and the Locus sequence rules; a locus's working copy (sans I/O) |
//! | storage | [`store`] | the state directory (atomic, 0600 files) and the credentials |
//! | event bus | [`events`] | cloud events fanned out to consumers by namespace, bounded |
//! | I/O clients | [`net`], [`activation`], [`cloud`], [`meeting_server`] | TLS trust, HTTP with tracking ids, WebSocket, backoff; SRP activation; one client per cloud service (event socket included); an on-prem Meeting Server |
//! | hardware | [`hw`] | GPIO drivers (LEDs, buttons, privacy switch) over embedded-hal |
//! | state machines | [`media`], [`reachability`], [`bookings`], [`calls`] | GStreamer media sessions; media reachability; bookings and OBTP; call control. Each owns its slice of the status |
//! | status | [`status`] | the device status, composed of the slices; the STATUS= line |
//! | room and session | [`room`], [`session`] | what the people in the room can do (controls, dialling); the cloud session (activation, registration, event socket) |
//! | API | [`api`] | control socket (`roomd status`), local xAPI and touch panel, xStatus rendering |
//! | daemon | [`daemon`] | wiring: configuration, clients and tasks together; GPIO wiring, GDS health, device control |
//! | process | [`cli`], [`check`] | command line, `roomd check` |
//!
//! The binary (`src/main.rs`) is thin: it parses the command line, loads configuration,
//! and calls [`daemon::run`], which tests also call in-process against the simulator.

pub mod activation;
pub mod api;
pub mod bookings;
pub mod calls;
pub mod check;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod daemon;
pub mod events;
pub mod hw;
pub mod locus;
pub mod media;
pub mod meeting_server;
pub mod net;
pub mod platform;
pub mod proto;
pub mod reachability;
pub mod room;
pub mod secret;
pub mod session;
pub mod shutdown;
pub mod status;
pub mod status_slice;
pub mod store;

#[cfg(test)]
mod layering;
