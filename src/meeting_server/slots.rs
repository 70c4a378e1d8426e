//! The Meeting Server accepts at most five concurrent event sockets (seed 001 §6). Every
//! socket roomd opens holds a slot for its server; a sixth is refused before connecting.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use super::MeetingServerError;
use crate::proto::meeting_server::MAX_CONNECTIONS;

static OPEN: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);

/// One open (or opening) socket to `server`; released when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    server: String,
}

impl ConnectionSlot {
    /// `server` is the host:port the socket goes to.
    pub fn acquire(server: &str) -> Result<Self, MeetingServerError> {
        let mut open = lock();
        let count = open.entry(server.to_string()).or_insert(0);
        if *count >= MAX_CONNECTIONS {
            return Err(MeetingServerError::TooManyConnections {
                server: server.to_string(),
                limit: MAX_CONNECTIONS,
            });
        }
        *count += 1;
        Ok(Self {
            server: server.to_string(),
        })
    }

    pub fn open_to(server: &str) -> usize {
        lock().get(server).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = lock();
        if let Some(count) = open.get_mut(&self.server) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.server);
            }
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<String, usize>> {
    OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_per_server_and_released_on_drop() {
        let server = "slots-test.invalid:443";
        let held: Vec<_> = (0..5)
            .map(|_| ConnectionSlot::acquire(server).unwrap())
            .collect();
        let err = ConnectionSlot::acquire(server).unwrap_err();
        assert_eq!(
            err.to_string(),
            "already 5 event sockets open to slots-test.invalid:443: the Meeting Server allows no more"
        );
        // Another server is counted apart.
        let other = ConnectionSlot::acquire("other.invalid:443").unwrap();
        drop(held);
        assert_eq!(ConnectionSlot::open_to(server), 0);
        ConnectionSlot::acquire(server).unwrap();
        drop(other);
    }
}
