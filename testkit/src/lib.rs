//! What the integration tests of `roomd` and `roomd-sim`, and roomd's benches, share
//! (`docs/development.md`, "Tests").
//!
//! Without features nothing here depends on roomd, so the simulator's own tests (which must not
//! use roomd's types: the simulator is written from the wire profile) can use the kit too:
//!
//! - [`sim`]: a simulator in a temporary directory, TLS clients that trust one of its CAs, an
//!   honest SRP activation and a WDM registration (the simulator's tests);
//! - [`capture`]: the in-process log capture every roomd test installs; [`test_run`] and
//!   [`log_scan`]: the test run's log collection and its secret scan (`docs/security.md`);
//! - [`process`]: commands for built binaries (through the cross runner), a fake systemd
//!   notify socket, a child killed on drop;
//! - [`xapi`]: a jsxapi-style xAPI WebSocket client; [`untrusted_tls`]: a TLS server nothing
//!   trusts;
//! - [`figures`]: the machine-readable figures of the benches (`scripts/bench.sh`).
//!
//! The `roomd` feature (enabled by roomd's tests and benches) adds what names roomd's types:
//! [`daemon`] (simulators set up for a daemon, its configuration, start and status waits) and
//! [`stun_responder`] (loopback STUN nodes for the reachability tests and bench).

use std::path::PathBuf;
use std::time::Duration;

pub mod audio;
pub mod capture;
pub mod far_end;
pub mod figures;
pub mod log_scan;
pub mod process;
pub mod sim;
pub mod test_run;
pub mod untrusted_tls;
pub mod xapi;

#[cfg(feature = "roomd")]
pub mod daemon;
#[cfg(feature = "roomd")]
pub mod stun_responder;

/// The bound of every wait of roomd's tests.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The repository's root (board files, `tests/golden`, `tests/node`, the layer).
pub fn repo_dir() -> PathBuf {
    let kit = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    kit.parent()
        .expect("the kit lives in the repository")
        .to_path_buf()
}
