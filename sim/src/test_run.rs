//! Hooks for the test run's secret scan (`scripts/test.sh security`, `docs/security.md`).
//!
//! When `ROOMD_TEST_LOG_DIR` is set, every secret the simulator issues or is configured with
//! (activation codes in each written form, the bearer tokens it mints, Meeting Server auth
//! tokens and API passwords) is appended to `<dir>/secrets/roomd-sim-<program>-<pid>.tsv` as
//! `kind<TAB>value`, and the simulator's own log goes to `<dir>/logs/` when nothing else
//! collects it. The scan then looks for every recorded secret in every log of the run. Without
//! the variable nothing is written.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use crate::scenario::Scenario;
use crate::state::lock;

/// The directory of the test run's logs and secrets.
pub const LOG_DIR_ENV: &str = "ROOMD_TEST_LOG_DIR";

/// Secrets shorter than this are not recorded: they would match ordinary words and numbers.
const MIN_SECRET_CHARS: usize = 8;

/// `ROOMD_TEST_LOG_DIR`, when set and not empty.
pub fn log_dir() -> Option<PathBuf> {
    std::env::var_os(LOG_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `<program>-<pid>`: one file per process, so concurrent test binaries never share one.
fn process_tag() -> String {
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".into());
    format!("{program}-{}", std::process::id())
}

/// Creates `<dir>/<sub>/<prefix>-<program>-<pid>.<extension>` for appending (0600: it may hold
/// secrets).
fn open_run_file(sub: &str, prefix: &str, extension: &str) -> Option<File> {
    let dir = log_dir()?.join(sub);
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{prefix}-{}.{extension}", process_tag()));
    match OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(file) => Some(file),
        Err(e) => {
            // The scan fails later for want of files; say why here.
            eprintln!("roomd-sim: cannot open {}: {e}", path.display());
            None
        }
    }
}

/// A log file for this process under `<dir>/logs/` (the binary writes its stderr log there too).
pub fn log_file(prefix: &str) -> Option<File> {
    open_run_file("logs", prefix, "log")
}

struct SecretSink {
    file: File,
    seen: HashSet<String>,
}

fn sink() -> Option<&'static Mutex<SecretSink>> {
    static SINK: OnceLock<Option<Mutex<SecretSink>>> = OnceLock::new();
    SINK.get_or_init(|| {
        open_run_file("secrets", "roomd-sim", "tsv").map(|file| {
            Mutex::new(SecretSink {
                file,
                seen: HashSet::new(),
            })
        })
    })
    .as_ref()
}

/// Records one secret for the scan (no-op outside a scanned test run).
pub(crate) fn record_secret(kind: &str, value: &str) {
    if value.chars().count() < MIN_SECRET_CHARS || value.contains(['\t', '\n']) {
        return;
    }
    let Some(sink) = sink() else { return };
    let mut sink = lock(sink);
    if !sink.seen.insert(value.to_owned()) {
        return;
    }
    // One write per line: concurrent simulators in one process never interleave.
    let line = format!("{kind}\t{value}\n");
    if let Err(e) = sink.file.write_all(line.as_bytes()) {
        eprintln!("roomd-sim: cannot record a secret for the log scan: {e}");
    }
}

/// The forms an activation code is written in (`4353450012345678`, `4353-4500-1234-5678`,
/// `4353 4500 1234 5678`) and its SRP password half grouped (`1234-5678`, `1234 5678`). The
/// activation id (first half) is not secret: it travels in the clear in `srp/init` and is
/// logged. The password half as bare digits (`12345678`) is left out for the same reason: any
/// 8 digits are some device's activation id (the tests' codes share such halves).
pub fn activation_code_forms(code: &str) -> Vec<String> {
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 16 {
        return vec![code.to_owned()];
    }
    let groups: Vec<&str> = (0..4).map(|i| &digits[i * 4..i * 4 + 4]).collect();
    vec![
        digits.clone(),
        groups.join("-"),
        groups.join(" "),
        groups[2..].join("-"),
        groups[2..].join(" "),
    ]
}

/// Records the secrets a scenario configures: every device's activation code and the Meeting
/// Server's API password.
pub(crate) fn record_scenario(scenario: &Scenario) {
    if log_dir().is_none() {
        return;
    }
    for device in &scenario.devices {
        for form in activation_code_forms(&device.activation_code) {
            record_secret("activation-code", &form);
        }
    }
    record_secret("meeting-server-password", &scenario.meeting_server.password);
}

/// In a scanned test run where nobody collects the simulator's log (its own integration
/// tests install no subscriber), sends it to `<dir>/logs/` so the scan sees it too.
pub(crate) fn capture_log_if_unobserved() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if tracing::dispatcher::has_been_set() {
            return;
        }
        let Some(file) = log_file("in-process-sim") else {
            return;
        };
        let subscriber = tracing_subscriber::fmt()
            // As roomd's test capture: tungstenite's trace dumps every frame whole.
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "trace,tungstenite=debug,tokio_tungstenite=debug",
            ))
            .with_writer(Mutex::new(file))
            .with_ansi(false)
            .finish();
        // `log` records of the dependencies too, as the binary's `init` does. Another thread
        // may have won the race; then that subscriber collects the log.
        let _ = tracing_subscriber::util::SubscriberInitExt::try_init(subscriber);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_forms_cover_grouped_plain_and_the_password_half() {
        assert_eq!(
            activation_code_forms("4353-4500-1234-5678"),
            [
                "4353450012345678",
                "4353-4500-1234-5678",
                "4353 4500 1234 5678",
                "1234-5678",
                "1234 5678",
            ]
        );
        assert_eq!(activation_code_forms("123"), ["123"]);
    }
}
