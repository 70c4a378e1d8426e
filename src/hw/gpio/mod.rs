//! The GPIO layer: status LEDs, the join and mute buttons and the privacy switch.
//!
//! The drivers ([`run_led`], [`run_button`], [`run_switch`]) are written against the
//! embedded-hal 1.0 traits (`OutputPin`, `InputPin`, async `Wait`), so the same code
//! drives the Linux character-device lines ([`open_cdev`]) and the in-process fakes of
//! the `sim` board ([`SimGpio`]) that tests and development use. The daemon decides
//! what the LEDs show and what a press means; this layer only moves lines.

pub mod button;
pub mod cdev;
pub mod fake;
pub mod led;
pub mod sim;

use std::fmt;

pub use button::{
    ButtonPress, DEFAULT_SETTLE, Debouncer, ERROR_BACKOFF, LevelChange, run_button, run_switch,
};
pub use cdev::{
    CdevInput, CdevInputError, CdevLines, LineAddress, LineListing, locate_lines, open_cdev,
};
pub use fake::{FakeError, FakeInput, FakeInputHandle, FakeOutput, FakeOutputHandle};
pub use led::{LedPattern, level_at, next_change, run_led};
pub use sim::SimGpio;

use crate::hw::board::GpioRole;

/// Why the board's GPIO lines could not be opened; each names the role and line at fault.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum GpioError {
    /// {0}
    LinesNotFound(MissingLines),
    /// {role}: line {line:?} is both {first} and {second}; set `gpio.chip` in the board file
    AmbiguousLine {
        role: GpioRole,
        line: String,
        first: LineAddress,
        second: LineAddress,
    },
    /// cannot list the GPIO chips in /dev: {0}
    ListChips(#[source] gpio_cdev::Error),
    /// GPIO chip {chip}: {source}
    Chip {
        chip: String,
        source: gpio_cdev::Error,
    },
    /// {role}: cannot request line {line:?} ({address}): {source}
    Request {
        role: GpioRole,
        line: String,
        address: LineAddress,
        source: gpio_cdev::Error,
    },
}

/// A role whose line no chip has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingLine {
    pub role: GpioRole,
    pub line: String,
}

/// Every role whose line was not found, and where it was looked for (`None`: every chip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingLines {
    pub missing: Vec<MissingLine>,
    pub chip: Option<String>,
}

impl fmt::Display for MissingLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = self.chip.as_deref().unwrap_or("any GPIO chip");
        for (i, MissingLine { role, line }) in self.missing.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{role}: line {line:?} not found on {place}")?;
        }
        Ok(())
    }
}

/// Logs a pin's errors once per distinct error: a dead LED blinking at 8 Hz must not
/// write 8 log lines a second, but a different failure is news.
#[derive(Debug)]
pub(crate) struct PinErrorLog {
    role: GpioRole,
    last: Option<String>,
}

impl PinErrorLog {
    pub(crate) fn new(role: GpioRole) -> Self {
        Self { role, last: None }
    }

    /// Logs `result`'s error unless it is the one logged last; returns the value if Ok.
    pub(crate) fn check<T, E: fmt::Debug>(&mut self, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => {
                if self.last.take().is_some() {
                    tracing::info!(role = %self.role, "GPIO line works again");
                }
                Some(value)
            }
            Err(e) => {
                // embedded-hal errors only promise Debug.
                let text = format!("{e:?}");
                if self.last.as_ref() != Some(&text) {
                    tracing::error!(role = %self.role, error = %text, "GPIO line failed");
                    self.last = Some(text);
                }
                None
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::io;
    use std::sync::{Arc, Mutex};

    use crate::shutdown::{Shutdown, Tasks};

    /// A shutdown signal for one driver: dropping the `Tasks` fires it.
    pub(crate) fn signal() -> (Tasks, Shutdown) {
        let tasks = Tasks::new();
        let shutdown = tasks.shutdown_signal();
        (tasks, shutdown)
    }

    /// Captures this thread's log output (tokio tests run their tasks on the test thread).
    pub(crate) struct CapturedLogs {
        text: Arc<Mutex<Vec<u8>>>,
        _guard: tracing::subscriber::DefaultGuard,
    }

    struct LogWriter(Arc<Mutex<Vec<u8>>>);

    impl io::Write for LogWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl CapturedLogs {
        pub(crate) fn start() -> Self {
            let text = Arc::new(Mutex::new(Vec::new()));
            let writer = text.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(move || LogWriter(writer.clone()))
                .finish();
            let _guard = tracing::subscriber::set_default(subscriber);
            Self { text, _guard }
        }

        pub(crate) fn text(&self) -> String {
            String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
        }

        pub(crate) fn count(&self, needle: &str) -> usize {
            self.text().matches(needle).count()
        }

        pub(crate) fn contains(&self, needle: &str) -> bool {
            self.text().contains(needle)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_errors_are_logged_once_per_distinct_error() {
        let logs = test_support::CapturedLogs::start();
        let mut log = PinErrorLog::new(GpioRole::MuteLed);
        assert_eq!(log.check(Err::<(), _>("EBUSY")), None);
        assert_eq!(log.check(Err::<(), _>("EBUSY")), None);
        assert_eq!(log.check(Err::<(), _>("ENODEV")), None);
        assert_eq!(log.check(Ok::<_, &str>(7)), Some(7));
        assert_eq!(log.check(Err::<(), _>("EBUSY")), None);
        assert_eq!(logs.count("EBUSY"), 2);
        assert_eq!(logs.count("ENODEV"), 1);
        assert_eq!(logs.count("works again"), 1);
        assert_eq!(logs.count("role=mute_led"), 4);
    }
}
