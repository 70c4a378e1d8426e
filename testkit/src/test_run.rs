//! Log collection for the test run's secret scan (`scripts/test.sh security`, `docs/security.md`).
//!
//! With `ROOMD_TEST_LOG_DIR` set (by `scripts/test.sh` for the native pass):
//! - every event and span the in-process capture ([`crate::capture::LogCapture`]) sees goes to
//!   `<dir>/logs/in-process-<test binary>-<pid>.log`;
//! - every binary a test starts through [`crate::process::target_command`] (`roomd`, mostly) has its
//!   stderr copied to `<dir>/logs/spawned-…` by `tee`, while the test still reads it;
//! - secrets the tests bring themselves (xAPI passwords) are recorded in
//!   `<dir>/secrets/tests-….tsv`; the simulator records what it issues (`roomd_sim::test_run`).
//!
//! Without the variable nothing is written and commands run unwrapped.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use roomd_sim::test_run::log_dir;

/// Passwords shorter than this are not recorded (roomd refuses them anyway, and they would match
/// ordinary words such as "wrong").
const MIN_PASSWORD_CHARS: usize = 8;

/// `<test binary>-<pid>`.
fn process_tag() -> String {
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".into());
    format!("{program}-{}", std::process::id())
}

/// Opens `path` for appending, creating it and its directory (0600: it may hold secrets).
fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// A log file that many threads append whole lines to.
#[derive(Clone, Debug)]
pub struct LineSink(Arc<Mutex<File>>);

impl LineSink {
    pub fn create(path: &Path) -> Self {
        let file = open_append(path)
            .unwrap_or_else(|e| panic!("cannot open the test log {}: {e}", path.display()));
        Self(Arc::new(Mutex::new(file)))
    }

    /// Appends `text` as one line (inner newlines escaped, so one event is one line).
    pub fn line(&self, text: &str) {
        let mut line = text.replace('\n', "\\n");
        line.push('\n');
        let mut file = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // A full disk must not fail an unrelated test; the scan reports missing lines instead.
        let _ = file.write_all(line.as_bytes());
    }
}

/// Where this process's in-process log goes in a scanned run.
pub(crate) fn in_process_log() -> Option<LineSink> {
    static SINK: OnceLock<Option<LineSink>> = OnceLock::new();
    SINK.get_or_init(|| {
        log_dir().map(|dir| {
            LineSink::create(
                &dir.join("logs")
                    .join(format!("in-process-{}.log", process_tag())),
            )
        })
    })
    .clone()
}

/// Records a secret a test uses in `dir` (the run's directory, or a scan test's own).
pub fn record_secret_in(dir: &Path, kind: &str, value: &str) {
    assert!(
        !value.contains(['\t', '\n']),
        "a recorded secret is one field"
    );
    let path = dir
        .join("secrets")
        .join(format!("tests-{}.tsv", process_tag()));
    let mut file = open_append(&path)
        .unwrap_or_else(|e| panic!("cannot record a secret in {}: {e}", path.display()));
    file.write_all(format!("{kind}\t{value}\n").as_bytes())
        .unwrap_or_else(|e| panic!("cannot record a secret in {}: {e}", path.display()));
}

/// Records an xAPI password a test logs in with, in a scanned run. Passwords shorter than 8
/// characters and passwords equal to a user name are skipped: neither can be told apart from
/// ordinary log text.
pub fn record_xapi_password(password: &str) {
    let Some(dir) = log_dir() else { return };
    if password.chars().count() < MIN_PASSWORD_CHARS || ["admin", "touchpanel"].contains(&password)
    {
        return;
    }
    static SEEN: OnceLock<Mutex<std::collections::HashSet<String>>> = OnceLock::new();
    let fresh = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .insert(password.to_owned());
    if fresh {
        record_secret_in(&dir, "xapi-password", password);
    }
}

/// Copies the stderr (the log) of the command it starts to a file through `tee`, then `exec`s
/// it, so the pid, signals, stdin, stdout and what the test reads stay those of the program.
/// stdout is command output (help text shows the example activation code), not a log.
/// `tee` and `bash` are named by absolute path: some tests run `roomd` with an empty `PATH`.
const TEE_SCRIPT: &str = r#"log=$1; shift
exec 2> >(exec /usr/bin/tee -a -- "$log" >&2)
exec "$@""#;

/// `program args…` (one of the product's binaries, `roomd*`) with its stderr also copied
/// under `<dir>/logs/` in a scanned run; other programs (a test binary re-run as a child
/// writes its own in-process log) and runs without the variable are left as they are.
pub(crate) fn product_command(program: &Path, args: &[OsString]) -> Command {
    let is_product = program
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("roomd"));
    match log_dir() {
        Some(dir) if is_product => tee_command(&dir, program, args),
        _ => {
            let mut command = Command::new(program);
            command.args(args);
            command
        }
    }
}

/// `program args…` with its stderr also copied under `<dir>/logs/`.
pub fn tee_command(dir: &Path, program: &Path, args: &[OsString]) -> Command {
    static SPAWNED: AtomicUsize = AtomicUsize::new(0);
    let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("create the test log directory");
    let base = format!("spawned-{name}-{}-{n}", process_tag());
    let mut command = Command::new("/bin/bash");
    command
        .arg("-c")
        .arg(TEE_SCRIPT)
        .arg("roomd-test-tee")
        .arg(logs.join(format!("{base}.stderr.log")))
        .arg(program)
        .args(args);
    command
}
