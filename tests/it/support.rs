//! The test kit (`testkit/`, crate `roomd-testkit`, feature `roomd`) for every module of this
//! binary, and what only an integration test of the roomd package can name: its `roomd`
//! executable (`CARGO_BIN_EXE_roomd`).

use std::path::Path;

pub use roomd_testkit::capture::*;
pub use roomd_testkit::daemon::*;
pub use roomd_testkit::process::*;
pub use roomd_testkit::xapi::*;
pub use roomd_testkit::{TIMEOUT, log_scan, repo_dir, stun_responder, test_run, untrusted_tls};

/// A `Command` for the `roomd` binary, through the cargo runner when cross-built.
pub fn roomd_command() -> std::process::Command {
    roomd_command_for(Path::new(env!("CARGO_BIN_EXE_roomd")))
}

/// Starts `roomd run --config path` as a process reporting to `systemd`; stderr is piped.
pub fn spawn_roomd_run(path: &Path, systemd: &FakeSystemd) -> RunningRoomd {
    spawn_roomd_run_with(roomd_command(), path, systemd)
}
