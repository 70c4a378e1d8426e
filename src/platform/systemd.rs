//! `sd_notify(3)` without libsystemd: READY=1, STATUS=, WATCHDOG=1, STOPPING=1.
//!
//! The notifier holds the socket path explicitly (instead of reading `NOTIFY_SOCKET` at
//! every call) so tests can point an in-process daemon at their own datagram socket.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

/// Where notifications go: a filesystem path or an abstract socket name (`@name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyTarget {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

#[derive(Debug, Clone, Default)]
pub struct Notifier {
    target: Option<NotifyTarget>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`; a notifier that does nothing when it is unset.
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|value| {
            let value = value.into_encoded_bytes();
            match value.split_first() {
                None => None,
                Some((b'@', name)) => Some(NotifyTarget::Abstract(name.to_vec())),
                Some(_) => Some(NotifyTarget::Path(PathBuf::from(
                    String::from_utf8_lossy(&value).into_owned(),
                ))),
            }
        });
        Self { target }
    }

    pub fn to_path(path: impl Into<PathBuf>) -> Self {
        Self {
            target: Some(NotifyTarget::Path(path.into())),
        }
    }

    pub fn disabled() -> Self {
        Self { target: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one datagram of newline-separated assignments.
    pub fn notify(&self, assignments: &str) -> io::Result<()> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let socket = UnixDatagram::unbound()?;
        match target {
            NotifyTarget::Path(path) => socket.send_to(assignments.as_bytes(), path)?,
            NotifyTarget::Abstract(name) => {
                let addr = SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(assignments.as_bytes(), &addr)?
            }
        };
        Ok(())
    }

    pub fn ready(&self, status: &str) {
        self.send_logged(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.send_logged(&format!("STATUS={}", one_line(status)));
    }

    pub fn watchdog(&self) {
        self.send_logged("WATCHDOG=1");
    }

    pub fn stopping(&self, status: &str) {
        self.send_logged(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    fn send_logged(&self, assignments: &str) {
        if let Err(e) = self.notify(assignments) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}

// STATUS= ends at a newline; keep multi-line reasons on one line.
fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

/// How often to send WATCHDOG=1: half of `WATCHDOG_USEC`, when the watchdog is meant for
/// this process (`WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_assignments_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::to_path(&path);
        notifier.ready("cloud reachable\n(GDS online)");
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            "READY=1\nSTATUS=cloud reachable (GDS online)"
        );
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("roomd-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        let notifier = Notifier {
            target: Some(NotifyTarget::Abstract(name.into_bytes())),
        };
        notifier.watchdog();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn disabled_notifier_is_silent() {
        assert!(Notifier::disabled().notify("READY=1").is_ok());
        assert!(!Notifier::disabled().is_enabled());
    }
}
