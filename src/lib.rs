//! roomd: the device agent of a meeting-room video device.
//!
//! The crate is layered; each layer only uses the ones above it in this map.
//!
//! | layer | modules | what lives there |
//! |---|---|---|
//! | foundations | [`secret`], [`clock`], [`shutdown`] | redacted secrets, wire time format, task shutdown |
//! | configuration | [`config`], [`hw::board`] | `/etc/roomd` files and drop-ins, board files |
//! | protocol types | [`proto`] | cloud wire types and their parsers (sans I/O) |
//! | protocol state | [`locus`] | Locus sequence comparison (its `Sequence` used by `proto::locus`) and a locus's working copy (sans I/O) |
//! | I/O clients | [`net`], [`cloud`] | TLS trust, HTTP with tracking ids, backoff; one client per cloud service; [`meeting_server`] for an on-prem Meeting Server |
//! | event bus | [`events`] | cloud events fanned out to consumers by namespace, bounded |
//! | state machines | [`daemon`], [`bookings`], [`calls`], [`reachability`] | the daemon's tasks and the status they publish; call control; media reachability |
//! | hardware | [`hw`] | board roles (GPIO, later drivers) |
//! | media | [`media`] | GStreamer |
//! | API | [`api`] | control socket (`roomd status`), xStatus rendering |
//! | process | [`platform`], [`cli`], [`check`] | systemd notify and watchdog, logging, command line, `roomd check` |
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
pub mod secret;
pub mod shutdown;
pub mod store;
