//! `roomd check`: configuration, hardware, media, certificate and connectivity checks,
//! grouped, one line each with SUCCESS or FAIL and the reason (in the style of a Meeting
//! Server's `SUCCESS: HTTPS Key and certificate pair match`), so a technician can fix a
//! device from the output alone. Nothing is changed: no GPIO line is requested and no
//! device node opened, so the check is safe beside a running daemon.

pub mod certs;
mod hardware;

use std::fmt;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::api::control::{self, ControlRequest};
use crate::cloud::gds::GdsClient;
use crate::config::{Config, ConfigError, Loaded};
use crate::hw::board::Board;
use crate::media::gst as media;
use crate::net::http::HttpClient;
use crate::net::tls::TrustStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Fail,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Success => "SUCCESS",
            Outcome::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub outcome: Outcome,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckGroup {
    pub name: &'static str,
    pub lines: Vec<CheckLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckReport {
    pub groups: Vec<CheckGroup>,
}

impl CheckReport {
    fn group(&mut self, name: &'static str) -> &mut Vec<CheckLine> {
        self.groups.push(CheckGroup {
            name,
            lines: Vec::new(),
        });
        &mut self.groups.last_mut().expect("just pushed").lines
    }

    pub fn failures(&self) -> usize {
        self.count(Outcome::Fail)
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.groups
            .iter()
            .flat_map(|g| &g.lines)
            .filter(|l| l.outcome == outcome)
            .count()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for group in &self.groups {
            writeln!(f, "{}", group.name)?;
            for line in &group.lines {
                writeln!(f, "  {}: {}", line.outcome.word(), line.text)?;
            }
        }
        write!(
            f,
            "Summary: {} SUCCESS, {} FAIL",
            self.count(Outcome::Success),
            self.failures()
        )
    }
}

fn line(outcome: Outcome, text: impl Into<String>) -> CheckLine {
    CheckLine {
        outcome,
        text: text.into(),
    }
}

fn ok(text: impl Into<String>) -> CheckLine {
    line(Outcome::Success, text)
}

fn fail(text: impl Into<String>) -> CheckLine {
    line(Outcome::Fail, text)
}

/// Runs every check that the loaded configuration allows.
pub async fn run(loaded: Result<Loaded, ConfigError>) -> CheckReport {
    let mut report = CheckReport::default();
    let config_lines = report.group("Configuration");
    let loaded = match loaded {
        Ok(loaded) => {
            let files = if loaded.files.is_empty() {
                "none found, built-in defaults".to_string()
            } else {
                loaded
                    .files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            config_lines.push(ok(format!("config files: {files}")));
            loaded
        }
        Err(e) => {
            config_lines.push(fail(format!("configuration: {e}")));
            return report;
        }
    };
    let config = &loaded.config;
    let board = match Board::load(&config.device.board_dir, &config.device.board) {
        Ok(board) => {
            config_lines.push(ok(format!(
                "board {:?} ({}): {} GPIO roles mapped, {:?} GPIO backend",
                board.name,
                board.path.display(),
                board.gpio.lines.len(),
                board.gpio.backend
            )));
            Some(board)
        }
        Err(e) => {
            config_lines.push(fail(e.to_string()));
            None
        }
    };
    config_lines.push(check_state_dir(&config.state_dir()));
    let gds_url = match config.require_cloud() {
        Ok(url) => {
            config_lines.push(ok(format!("cloud.gds_url: {url}")));
            Some(url.to_string())
        }
        Err(e) => {
            config_lines.push(fail(e.to_string()));
            None
        }
    };

    if let Some(board) = &board {
        let daemon_running = matches!(
            control::request(&config.control_socket(), &ControlRequest::Ping).await,
            Ok(control::ControlResponse::Pong { .. })
        );
        let hardware_lines = report.group("Hardware");
        hardware_lines.extend(hardware::gpio_lines(board, daemon_running));
        hardware_lines.extend(hardware::device_node_lines(board));
        check_media(board, report.group("Media"));
    }

    let certificate_lines = check_certificates(config);
    if !certificate_lines.is_empty() {
        report.group("Certificates").extend(certificate_lines);
    }

    let connectivity = report.group("Connectivity");
    let trust = match TrustStore::with_files(&config.cloud.extra_ca_files) {
        Ok(trust) => {
            connectivity.push(ok(format!(
                "trust store: platform roots + {} additional CA(s)",
                trust.extra_count()
            )));
            trust
        }
        Err(e) => {
            connectivity.push(fail(format!("trust store: {e}")));
            return report;
        }
    };
    if let Some(gds_url) = gds_url {
        let timeout = Duration::from_secs(config.cloud.request_timeout_secs.max(1));
        connectivity.push(match HttpClient::new(&trust, timeout) {
            Ok(http) => check_gds(GdsClient::new(http, &gds_url)).await,
            Err(e) => fail(format!("HTTP client: {e}")),
        });
    }
    if let Some(meeting_server) = &config.meeting_server {
        connectivity.push(check_meeting_server(config, meeting_server, &trust).await);
    }
    report
}

/// The GStreamer version, then each board element created with its properties.
fn check_media(board: &Board, lines: &mut Vec<CheckLine>) {
    match media::init() {
        Ok(version) => {
            lines.push(ok(version));
            for (role, spec) in board.media.roles() {
                lines.push(match crate::media::elements::check_role(role, spec) {
                    Ok(()) => ok(format!("{role}: {}", spec.element)),
                    Err(e) => fail(e.to_string()),
                });
            }
            if board.media.video_decoder.is_none() {
                lines.push(match crate::media::elements::check_board(&board.media) {
                    Ok(resolved) => ok(format!(
                        "video_decoder: {} (fallback; the board names none)",
                        resolved.video_decoder.element
                    )),
                    Err(e) => fail(e.to_string()),
                });
            }
        }
        Err(e) => lines.push(fail(e.to_string())),
    }
}

/// Every configured trust bundle (count, earliest expiry), then every configured
/// certificate and key: the pair matches, and the chain reaches the trust it is used with.
fn check_certificates(config: &Config) -> Vec<CheckLine> {
    let now = SystemTime::now();
    let mut lines: Vec<CheckLine> = config
        .cloud
        .extra_ca_files
        .iter()
        .map(|file| certs::bundle_line(file, "cloud.extra_ca_files", now))
        .collect();
    let cloud_cas: Vec<&Path> = config
        .cloud
        .extra_ca_files
        .iter()
        .map(|p| p.as_path())
        .collect();
    let cloud_keys: &[&str] = if cloud_cas.is_empty() {
        &[]
    } else {
        &["cloud.extra_ca_files"]
    };

    if let Some(meeting_server) = &config.meeting_server {
        // The daemon's Meeting Server trust: platform, cloud CAs and its own CA file.
        let mut files = cloud_cas.clone();
        let mut keys = cloud_keys.to_vec();
        if let Some(ca_file) = &meeting_server.ca_file {
            lines.push(certs::bundle_line(ca_file, "meeting_server.ca_file", now));
            files.push(ca_file);
            keys.push("meeting_server.ca_file");
        }
        match (
            &meeting_server.client_cert_file,
            &meeting_server.client_key_file,
        ) {
            (Some(cert_file), Some(key_file)) => {
                let pair = certs::KeyPair {
                    name: "Meeting Server client",
                    cert_file,
                    key_file,
                    usage: certs::Usage::Client,
                    trust_label: trust_label(&keys),
                };
                lines.extend(certs::key_pair_lines(&pair, &certs::roots_with(&files)));
            }
            (None, None) => {}
            _ => lines.push(fail(
                "Meeting Server client: meeting_server.client_cert_file and client_key_file \
                 must be set together",
            )),
        }
    }

    match (&config.xapi.tls_cert_file, &config.xapi.tls_key_file) {
        (Some(cert_file), Some(key_file)) => {
            let pair = certs::KeyPair {
                name: "xAPI HTTPS",
                cert_file,
                key_file,
                usage: certs::Usage::Server,
                trust_label: trust_label(cloud_keys),
            };
            lines.extend(certs::key_pair_lines(&pair, &certs::roots_with(&cloud_cas)));
        }
        (None, None) => {}
        _ => lines.push(fail(
            "xAPI HTTPS: xapi.tls_cert_file and xapi.tls_key_file must be set together",
        )),
    }
    lines
}

/// The trust a chain must reach, as config keys: `cloud.extra_ca_files, platform roots`.
fn trust_label(keys: &[&str]) -> String {
    let mut parts = keys.to_vec();
    parts.push("platform roots");
    parts.join(", ")
}

/// The Meeting Server section: credentials file (and its mode), TLS files, then the API
/// user against `POST /api/v1/authTokens`.
async fn check_meeting_server(
    config: &Config,
    meeting_server: &crate::config::MeetingServerConfig,
    trust: &TrustStore,
) -> CheckLine {
    use crate::meeting_server::client::MeetingServerClient;
    let timeout = Duration::from_secs(config.cloud.request_timeout_secs.max(1));
    let backoff = crate::net::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
    let url = &meeting_server.base_url;
    match MeetingServerClient::new(meeting_server, trust, timeout, backoff) {
        Ok(client) => match client.probe_auth().await {
            Ok(()) => ok(format!(
                "Meeting Server {url}: API user accepted (auth token issued)"
            )),
            Err(e) => fail(format!("Meeting Server {url}: {e}")),
        },
        Err(e) => fail(format!("Meeting Server {url}: {e}")),
    }
}

fn check_state_dir(dir: &Path) -> CheckLine {
    if !dir.exists() {
        return ok(format!(
            "state directory {} does not exist yet (created on first start)",
            dir.display()
        ));
    }
    let probe = dir.join(format!(".roomd-check-{}", std::process::id()));
    // 0600 like every file in the state directory, even for the moment it exists.
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe);
    match created {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            ok(format!("state directory {} is writable", dir.display()))
        }
        Err(e) => fail(format!(
            "state directory {} is not writable: {e}",
            dir.display()
        )),
    }
}

async fn check_gds(client: GdsClient) -> CheckLine {
    let started = Instant::now();
    let url = client.health_url();
    match client.health().await {
        Ok(report) if report.document.is_online() => ok(format!(
            "GDS {url}: online ({}) in {} ms [trackingid {}]",
            report.document.message.as_deref().unwrap_or("no message"),
            started.elapsed().as_millis(),
            report.tracking_id
        )),
        Ok(report) => fail(format!(
            "GDS {url}: serviceState={} ({}) [trackingid {}]",
            report.document.service_state,
            report.document.message.as_deref().unwrap_or("no message"),
            report.tracking_id
        )),
        Err(e) => fail(format!("GDS: {e}")),
    }
}
