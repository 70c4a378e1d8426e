//! The `roomd run` process under soak: its configuration, start, `kill -9`, log and memory.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use roomd_sim::SimHandle;
use tokio::net::UnixDatagram;
use tokio::sync::{mpsc, watch};

use crate::support;

/// Debian's libfaketime (package `faketime`).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// roomd's wall clock, moved by writing an offset (`+3600`, `-900`: seconds) to a file that
/// libfaketime re-reads on every clock call; the monotonic clock is left alone.
#[derive(Debug)]
pub struct Faketime {
    offset_file: PathBuf,
}

impl Faketime {
    pub fn set_offset_secs(&self, secs: i64) {
        std::fs::write(&self.offset_file, format!("{secs:+}\n")).expect("write faketime offset");
    }
}

/// Everything the roomd processes of one soak share: files, the notify socket, the schedule.
pub struct RoomdFiles {
    pub config_path: PathBuf,
    state_dir: PathBuf,
    log_path: PathBuf,
    log: Arc<Mutex<std::fs::File>>,
    notify_path: PathBuf,
    /// Every notification line so far. A task reads the socket all the time, as systemd
    /// does: roomd's notify send blocks while the socket's queue (10 datagrams) is full.
    notified: watch::Receiver<Vec<String>>,
    pub faketime: Option<Faketime>,
    pub config: roomd::config::Config,
}

impl RoomdFiles {
    /// A configuration with short timers, so 1,000 faults fit in minutes: reconnects from 100 ms
    /// up to 1 s, pings every second, catch-up every 5 s, registration refresh every second.
    pub fn prepare(sim: &SimHandle, dir: &Path) -> Self {
        let mut config = support::activation_config(sim, dir);
        config.websocket.ping_interval_secs = 1;
        config.websocket.pong_timeout_secs = 1;
        config.websocket.backoff_initial_ms = 100;
        config.websocket.backoff_max_secs = 1;
        config.websocket.stable_secs = 2;
        config.websocket.switchover_drain_secs = 1;
        config.calendar.catch_up_interval_secs = 5;
        config.cloud.registration_refresh_secs = 1;
        config.cloud.retry_initial_ms = 100;
        config.cloud.retry_max_secs = 2;
        config.cloud.request_timeout_secs = 5;
        let config_path = support::write_config(dir, &config);
        let notify_path = dir.join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
        let (notified_tx, notified) = watch::channel(Vec::new());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = notify.recv(&mut buf).await {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                notified_tx.send_modify(|all| all.extend(text.lines().map(str::to_owned)));
            }
        });
        let log_path = dir.join("roomd.log");
        let log = std::fs::File::create(&log_path).expect("create roomd.log");
        let faketime = Path::new(LIBFAKETIME).exists().then(|| {
            let f = Faketime {
                offset_file: dir.join("faketime-offset"),
            };
            f.set_offset_secs(0);
            f
        });
        Self {
            config_path,
            state_dir: dir.join("state"),
            log_path,
            log: Arc::new(Mutex::new(log)),
            notify_path,
            notified,
            faketime,
            config,
        }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Waits for a notification with the line `line` (bounded).
    async fn wait_notify(&self, line: &str) {
        let mut notified = self.notified.clone();
        let wait = notified.wait_for(|all| all.iter().any(|l| l == line));
        match tokio::time::timeout(crate::RECOVERY, wait).await {
            Ok(Ok(_)) => {}
            _ => panic!("roomd never notified {line:?}"),
        }
    }
}

/// One `roomd run` process.
pub struct Roomd {
    child: Option<Child>,
    pid: u32,
    lines: mpsc::UnboundedReceiver<String>,
    peak_rss_kib: u64,
}

impl Roomd {
    /// Starts `roomd run`; returns at once (a kill may come at any point of its start-up).
    pub async fn spawn(files: &RoomdFiles) -> Self {
        let mut command = support::roomd_command();
        command
            .arg("run")
            .arg("--config")
            .arg(&files.config_path)
            .env("NOTIFY_SOCKET", &files.notify_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(f) = &files.faketime {
            command
                .env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", &f.offset_file)
                .env("FAKETIME_NO_CACHE", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let mut child = command.spawn().expect("roomd starts");
        let pid = child.id();
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::unbounded_channel();
        let log = Arc::clone(&files.log);
        writeln!(log.lock().expect("log"), "==== roomd pid {pid} started").expect("log");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log.lock().expect("log"), "{line}");
                let _ = tx.send(line);
            }
        });
        Self {
            child: Some(child),
            pid,
            lines,
            peak_rss_kib: 0,
        }
    }

    /// Waits for READY=1, then activates with `code` through the command line.
    pub async fn activate(&mut self, files: &RoomdFiles, code: &str) {
        files.wait_notify("READY=1").await;
        let path = files.config_path.clone();
        let code = code.to_owned();
        let out = tokio::task::spawn_blocking(move || {
            support::roomd_command()
                .args(["activate", &code, "--config"])
                .arg(path)
                .output()
                .expect("roomd activate runs")
        })
        .await
        .expect("join");
        assert!(
            out.status.success(),
            "roomd activate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        files.wait_notify("STATUS=registered").await;
    }

    /// Resolves at roomd's next log line; false once `deadline` passes or the process is gone.
    pub async fn next_log_line(&mut self, deadline: tokio::time::Instant) -> bool {
        matches!(
            tokio::time::timeout_at(deadline, self.lines.recv()).await,
            Ok(Some(_))
        )
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory now (KiB).
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The process's peak resident memory so far (KiB), kept across the kill.
    pub fn peak_rss_kib(&mut self) -> u64 {
        self.peak_rss_kib = self.peak_rss_kib.max(self.status_kib("VmHWM:"));
        self.peak_rss_kib
    }

    /// SIGKILL and reap.
    pub async fn kill9(&mut self) {
        self.peak_rss_kib();
        if let Some(mut child) = self.child.take() {
            tokio::task::spawn_blocking(move || {
                let _ = child.kill();
                child.wait().expect("reap roomd")
            })
            .await
            .expect("join");
        }
    }

    /// SIGTERM and wait (bounded), as systemd stops it.
    pub async fn stop(mut self) {
        self.peak_rss_kib();
        if let Some(mut child) = self.child.take() {
            let pid = self.pid.to_string();
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status();
            let waited = tokio::task::spawn_blocking(move || child.wait());
            if tokio::time::timeout(crate::RECOVERY, waited).await.is_err() {
                panic!("roomd did not exit within {:?} of SIGTERM", crate::RECOVERY);
            }
        }
    }
}

impl Drop for Roomd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Lines of roomd's log that report a panic.
pub fn panics_in_logs(files: &RoomdFiles) -> Vec<String> {
    std::fs::read_to_string(&files.log_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("panicked at") || l.contains("panic:"))
        .map(str::to_owned)
        .collect()
}

pub fn log_lines(files: &RoomdFiles) -> usize {
    std::fs::read_to_string(&files.log_path)
        .unwrap_or_default()
        .lines()
        .count()
}
