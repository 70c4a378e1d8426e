//! Processes around a test: built binaries started through the cross runner, a fake systemd
//! notify socket, a child that does not outlive a failed test.

use std::path::{Path, PathBuf};

use tokio::net::UnixDatagram;

use crate::{TIMEOUT, test_run};

/// A `Command` for a binary built for the target, through the cargo runner when cross-built
/// (tests run under qemu-user then, and so must the binaries they start). In a scanned native
/// test run (`test_run`) the stderr of the product's binaries (`roomd*`) is also copied to the
/// run's logs.
pub fn target_command(bin: &Path) -> std::process::Command {
    let runner = if cfg!(target_arch = "aarch64") {
        std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER").ok()
    } else {
        None
    };
    match runner {
        Some(runner) if !runner.trim().is_empty() => {
            let mut command = std::process::Command::new(runner.trim());
            command.arg(bin);
            command
        }
        _ => test_run::product_command(bin, &[]),
    }
}

/// A `Command` for the `roomd` binary at `bin` (an integration test of roomd names it:
/// `env!("CARGO_BIN_EXE_roomd")`), through [`target_command`].
pub fn roomd_command_for(bin: &Path) -> std::process::Command {
    let mut command = target_command(bin);
    // The test's own environment must not steer the daemon under test.
    command
        .env_remove("ROOMD_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("JOURNAL_STREAM")
        .env_remove("RUST_LOG");
    command
}

/// Starts `roomd run --config config` (`roomd`: a [`roomd_command_for`]) as a process reporting
/// to `systemd`; stderr is piped.
pub fn spawn_roomd_run_with(
    mut roomd: std::process::Command,
    config: &Path,
    systemd: &FakeSystemd,
) -> RunningRoomd {
    roomd
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("NOTIFY_SOCKET", &systemd.path)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(|child| RunningRoomd(Some(child)))
        .expect("roomd starts")
}

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`.
#[derive(Debug)]
pub struct FakeSystemd {
    pub path: PathBuf,
    socket: UnixDatagram,
    pub seen: Vec<String>,
}

impl FakeSystemd {
    pub fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        Self {
            path,
            socket,
            seen: Vec::new(),
        }
    }

    /// Waits for a datagram containing `needle`; returns that datagram.
    pub async fn wait_for(&mut self, needle: &str) -> String {
        let wait = async {
            let mut buf = vec![0u8; 4096];
            loop {
                let n = self.socket.recv(&mut buf).await.expect("recv notify");
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(text.clone());
                if text.contains(needle) {
                    return text;
                }
            }
        };
        tokio::time::timeout(TIMEOUT, wait)
            .await
            .unwrap_or_else(|_| panic!("no notification with {needle:?}; saw {:?}", self.seen))
    }
}

/// A `roomd run` child that is killed if a test fails before stopping it, so a failed test
/// never leaves a daemon behind.
#[derive(Debug)]
pub struct RunningRoomd(Option<std::process::Child>);

impl RunningRoomd {
    /// The child, for a test that stops it itself.
    pub fn take(mut self) -> std::process::Child {
        self.0.take().expect("not taken yet")
    }
}

impl Drop for RunningRoomd {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
