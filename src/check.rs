//! `roomd check`: configuration, media and connectivity checks, grouped, one line each
//! with OK or FAIL and the reason, so a technician can fix a device from the output alone.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cloud::gds::GdsClient;
use crate::config::{ConfigError, Loaded};
use crate::hw::board::Board;
use crate::media::gst as media;
use crate::net::http::HttpClient;
use crate::net::tls::TrustStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
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
                let word = match line.outcome {
                    Outcome::Ok => "OK  ",
                    Outcome::Fail => "FAIL",
                };
                writeln!(f, "  {word} {}", line.text)?;
            }
        }
        write!(
            f,
            "Summary: {} OK, {} FAIL",
            self.count(Outcome::Ok),
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
    line(Outcome::Ok, text)
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
        let media_lines = report.group("Media");
        match media::init() {
            Ok(version) => {
                media_lines.push(ok(version));
                for (role, spec) in [
                    ("camera", &board.media.camera),
                    ("microphone", &board.media.microphone),
                    ("video encoder", &board.media.video_encoder),
                ] {
                    media_lines.push(match media::check_element(spec) {
                        Ok(()) => ok(format!("{role}: {}", spec.element)),
                        Err(e) => fail(format!("{role}: {e}")),
                    });
                }
            }
            Err(e) => media_lines.push(fail(e.to_string())),
        }
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

/// The Meeting Server section: credentials file (and its mode), TLS files, then the API
/// user against `POST /api/v1/authTokens`.
async fn check_meeting_server(
    config: &crate::config::Config,
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
    match std::fs::write(&probe, b"") {
        Ok(()) => {
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
