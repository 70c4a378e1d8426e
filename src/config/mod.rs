//! Daemon configuration: `/etc/roomd/roomd.toml` plus `config.d/*.toml` drop-ins.
//!
//! Every file is checked on its own first (so an unknown key is reported with the file,
//! line and key that carry it), then the files are deep-merged in order: the main file,
//! then drop-ins sorted by file name. Tables merge key by key; any other value (string,
//! number, array) is replaced whole by the later file.

mod merge;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use merge::merge_tables;

/// Where configuration lives on a device when nothing says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/roomd/roomd.toml";
/// The directory of drop-ins, relative to the main file's directory.
pub const DROP_IN_DIR: &str = "config.d";
pub const DEFAULT_BOARD_DIR: &str = "/usr/share/roomd/board";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/roomd";
pub const DEFAULT_RUNTIME_DIR: &str = "/run/roomd";

/// The merged configuration. Every field has a documented default, so a drop-in only
/// names what it changes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub device: DeviceConfig,
    pub cloud: CloudConfig,
    pub websocket: WebsocketConfig,
    pub calendar: CalendarConfig,
    pub reachability: ReachabilityConfig,
    pub xapi: XapiConfig,
    pub calls: CallsConfig,
    pub media: MediaConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_server: Option<MeetingServerConfig>,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// Board file name without `.toml`, looked up in `board_dir`. Default `sim`.
    pub board: String,
    /// Directory of board files. Default `/usr/share/roomd/board`.
    pub board_dir: PathBuf,
    /// Persistent state (credentials, caches). Default `$STATE_DIRECTORY` (set by
    /// systemd's `StateDirectory=`), else `/var/lib/roomd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Runtime files (the control socket). Default `$RUNTIME_DIRECTORY`, else `/run/roomd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_dir: Option<PathBuf>,
    /// Model name reported at activation and registration. Default `roomd`.
    pub model: String,
    /// Serial number reported at activation. Default: `/etc/machine-id`, else `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Minutes without a call or a touch (xAPI command, button press) before the room goes
    /// to standby; 0: never. Default 10 (RoomOS's `Standby Delay`); fractions are allowed
    /// (tests use seconds).
    pub standby_delay_mins: f64,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            board: "sim".into(),
            board_dir: DEFAULT_BOARD_DIR.into(),
            state_dir: None,
            runtime_dir: None,
            model: "roomd".into(),
            serial: None,
            standby_delay_mins: 10.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudConfig {
    /// Base URL of the global discovery service; `GET {gds_url}/health` gates start-up.
    /// No default: a device image ships it in its vendor file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gds_url: Option<String>,
    /// Base URL of the activation service (`POST {activation_url}/idb/token/v1/actions/srp/init`).
    /// Locked, with `gds_url`, once the device is activated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation_url: Option<String>,
    /// PEM files of CAs trusted in addition to the platform roots (for the simulator's
    /// test CA, or an integrator's TLS-inspecting proxy).
    pub extra_ca_files: Vec<PathBuf>,
    /// Per-request timeout in seconds. Default 10.
    pub request_timeout_secs: u64,
    /// Seconds between health checks while the cloud is healthy. Default 300.
    pub health_interval_secs: u64,
    /// First retry delay in milliseconds after a failed check; doubles per failure. Default 1000.
    pub retry_initial_ms: u64,
    /// Cap on the retry delay (and on a server's `Retry-After`), in seconds. Default 60.
    pub retry_max_secs: u64,
    /// Seconds between WDM registration refreshes. Default 600.
    pub registration_refresh_secs: u64,
    /// Seconds between rebuilds of the TLS trust store (seed 000: 81465). Default 81465.
    pub trust_refresh_secs: u64,
}

impl Default for CloudConfig {
    fn default() -> Self {
        Self {
            gds_url: None,
            activation_url: None,
            extra_ca_files: Vec::new(),
            request_timeout_secs: 10,
            health_interval_secs: 300,
            retry_initial_ms: 1000,
            retry_max_secs: 60,
            registration_refresh_secs: 600,
            trust_refresh_secs: 81_465,
        }
    }
}

/// The local xAPI (`docs/xapi.md`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct XapiConfig {
    /// Addresses to listen on. Loopback addresses serve plain `ws://`; any other address
    /// serves TLS only. Empty: no xAPI. Default `["127.0.0.1:8080"]`.
    pub listen: Vec<std::net::SocketAddr>,
    /// Certificate chain (PEM) for the TLS listeners. Default: a self-signed device
    /// certificate generated into the state directory on first start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) for `tls_cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// Most WebSocket sessions at once; more get HTTP 503. Default 32.
    pub max_sessions: usize,
}

impl Default for XapiConfig {
    fn default() -> Self {
        Self {
            listen: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 8080))],
            tls_cert_file: None,
            tls_key_file: None,
            max_sessions: 32,
        }
    }
}

/// Call control (wire profile §5, `docs/calls.md`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// Dial strings matching this regular expression join as cloud meetings; anything else
    /// is dialled as a call. Matched against the lower-cased dial string. Default the
    /// profile's `^[^@]+@([a-z0-9-]+\.)*webex\.com$`.
    pub meeting_uri_regex: MeetingUriRegex,
    /// How long the connectivity check to the media node may take, in milliseconds. Default 1000.
    pub ice_timeout_ms: u64,
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            meeting_uri_regex: MeetingUriRegex::default(),
            ice_timeout_ms: 1000,
        }
    }
}

/// A regular expression checked when the configuration is read, so a typo is reported with
/// its file and line instead of at the first dial.
#[derive(Debug, Clone)]
pub struct MeetingUriRegex(regex::Regex);

impl MeetingUriRegex {
    pub const DEFAULT: &'static str = r"^[^@]+@([a-z0-9-]+\.)*webex\.com$";

    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(pattern).map(Self)
    }

    pub fn is_match(&self, dial_string: &str) -> bool {
        self.0.is_match(&dial_string.trim().to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Default for MeetingUriRegex {
    fn default() -> Self {
        Self::new(Self::DEFAULT).expect("the default meeting regex compiles")
    }
}

impl PartialEq for MeetingUriRegex {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for MeetingUriRegex {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MeetingUriRegex {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(deserializer)?;
        Self::new(&pattern).map_err(|e| {
            serde::de::Error::custom(format!(
                "meeting_uri_regex is not a valid regular expression: {e}"
            ))
        })
    }
}

/// The cloud event websocket (wire profile §3). Defaults are the profile's.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebsocketConfig {
    /// Seconds after the last pong before the next ping. Default 15.
    pub ping_interval_secs: u64,
    /// Seconds to wait for a pong before closing ("Pong not received"). Default 14.
    pub pong_timeout_secs: u64,
    /// First reconnect delay in milliseconds; doubles per failure, ±20 % jitter. Default 1000.
    pub backoff_initial_ms: u64,
    /// Cap on the reconnect delay, and the delay after a permanent close. Default 32.
    pub backoff_max_secs: u64,
    /// Seconds online after which a socket counts as stable (the backoff starts over). Default 60.
    pub stable_secs: u64,
    /// Seconds a retiring socket may stay open after its replacement is online. Default 10.
    pub switchover_drain_secs: u64,
}

impl Default for WebsocketConfig {
    fn default() -> Self {
        Self {
            ping_interval_secs: 15,
            pong_timeout_secs: 14,
            backoff_initial_ms: 1000,
            backoff_max_secs: 32,
            stable_secs: 60,
            switchover_drain_secs: 10,
        }
    }
}

/// Calendar bookings and OBTP (wire profile §4).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    /// Seconds before a booking's start that its Join button shows (RoomOS StartTimeBuffer). Default 300.
    pub start_time_buffer_secs: u64,
    /// Seconds between periodic catch-ups (paged list over now−1 d … now+7 d). Default 900.
    pub catch_up_interval_secs: u64,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        Self {
            start_time_buffer_secs: 300,
            catch_up_interval_secs: 900,
        }
    }
}

/// Media reachability: calliope cluster discovery and STUN probes (wire profile §6).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReachabilityConfig {
    /// Probe the media clusters the cloud lists. Default true.
    pub enabled: bool,
    /// Milliseconds a probe waits for its answer, connect and TLS handshake included. Default 1000.
    pub probe_timeout_ms: u64,
    /// Most probe sockets open at once. Default 256.
    pub max_in_flight: usize,
    /// Seconds between runs, instead of the document's `Cache-Control: max-age` × rand(0.75..1.0).
    /// Default: unset (max-age, 7200 s when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u64>,
}

impl Default for ReachabilityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            probe_timeout_ms: 1000,
            max_in_flight: 256,
            interval_secs: None,
        }
    }
}

/// The media engine (wire profile §7, `docs/media.md`). The elements come from the board file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Send and receive media in calls. Off: calls connect without media (signalling only).
    /// Default true.
    pub enabled: bool,
    /// The camera is captured at this size and rate, once, for every layer. Default 1280×720 at 30.
    pub capture_width: u32,
    pub capture_height: u32,
    pub capture_fps: u32,
    /// Simulcast layers the device can encode at once (SSRCs in the offer). Default 3.
    pub max_layers: usize,
    /// First resend of an unacknowledged SCR, in milliseconds; each next waits twice as long.
    /// Default 250 (wire profile §7).
    pub scr_resend_initial_ms: u64,
    /// Resends before giving up. Default 8.
    pub scr_resend_max: u32,
    /// Milliseconds between RTCP sender reports. Default 1000.
    pub rtcp_interval_ms: u64,
    /// Seconds between `client.mediaquality.event`s during a call. Default 60.
    pub quality_interval_secs: u64,
    /// Decode, compose and play the streams the media node sends on the board's display and
    /// speaker. Off: only count their packets. Default true.
    pub receive: bool,
    /// The composed picture sent to the display, in pixels and frames per second (the
    /// board's display caps may convert it further). Default 1280×720 at 30.
    pub display_width: u32,
    pub display_height: u32,
    pub display_fps: u32,
    /// Receive jitter buffer, in milliseconds. Default 80.
    pub jitter_buffer_ms: u32,
    /// Acoustic echo cancellation of the speaker's output in the microphone (webrtcdsp).
    /// Default true.
    pub echo_cancellation: bool,
    /// Noise suppression on the microphone (with echo cancellation). Default true.
    pub noise_suppression: bool,
    /// Automatic gain control on the microphone (with echo cancellation). Default true.
    pub gain_control: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            capture_width: 1280,
            capture_height: 720,
            capture_fps: 30,
            max_layers: 3,
            scr_resend_initial_ms: 250,
            scr_resend_max: 8,
            rtcp_interval_ms: 1000,
            quality_interval_secs: 60,
            receive: true,
            display_width: 1280,
            display_height: 720,
            display_fps: 30,
            jitter_buffer_ms: 80,
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
        }
    }
}

/// An on-premises Meeting Server whose events roomd follows (wire profile §9, seed 001).
/// Absent: no Meeting Server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingServerConfig {
    /// `https://host:port` of the Meeting Server's web admin / events port.
    pub base_url: String,
    /// A file holding `user:password` for the API user, owner-only (0600 or stricter).
    pub credentials_file: PathBuf,
    /// PEM bundle of CAs that sign the Meeting Server's certificate (added to the
    /// platform roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM) for mutual TLS, when the server demands one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
    /// Seconds without any message before the socket counts as dead (the server sends no
    /// pings); at half of it the subscription is re-sent as a probe. Default 60.
    #[serde(default = "default_inactivity_secs")]
    pub inactivity_timeout_secs: u64,
}

fn default_inactivity_secs() -> u64 {
    60
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Default filter, in `RUST_LOG` syntax; `--log-level` and `RUST_LOG` win over it.
    pub level: String,
    /// Where logs go: `auto` (journald when started by systemd with its stream on
    /// journald, else stderr), `journald`, or `stderr`.
    pub target: LogTarget,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            target: LogTarget::Auto,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    Auto,
    Journald,
    Stderr,
}

impl Config {
    pub fn state_dir(&self) -> PathBuf {
        dir_or_env(&self.device.state_dir, "STATE_DIRECTORY", DEFAULT_STATE_DIR)
    }

    pub fn runtime_dir(&self) -> PathBuf {
        dir_or_env(
            &self.device.runtime_dir,
            "RUNTIME_DIRECTORY",
            DEFAULT_RUNTIME_DIR,
        )
    }

    /// The control socket `roomd status` talks to.
    pub fn control_socket(&self) -> PathBuf {
        self.runtime_dir().join("control.sock")
    }

    /// Settings the daemon cannot run without.
    pub fn require_cloud(&self) -> Result<&str, ConfigError> {
        self.cloud
            .gds_url
            .as_deref()
            .ok_or(ConfigError::MissingKey("cloud.gds_url"))
    }
}

fn dir_or_env(configured: &Option<PathBuf>, env: &str, default: &str) -> PathBuf {
    if let Some(dir) = configured {
        return dir.clone();
    }
    // systemd may pass several colon-separated directories; the first is ours.
    match std::env::var_os(env) {
        Some(value) if !value.is_empty() => {
            let value = value.to_string_lossy().into_owned();
            PathBuf::from(value.split(':').next().unwrap_or(default))
        }
        _ => PathBuf::from(default),
    }
}

/// Configuration problems, each naming the file (and key) at fault.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum ConfigError {
    /// config file {0} does not exist
    Missing(PathBuf),
    /// cannot read {path}: {source}
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// {path}:{line}:{column}: {message}
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// merged configuration ({files}): {message}
    Merged { files: String, message: String },
    /// `{0}` is not set in any configuration file
    MissingKey(&'static str),
}

/// The files that made a configuration, in the order they were merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub files: Vec<PathBuf>,
}

/// Loads `main` and its drop-ins. A missing main file is an error only when
/// `main_required` (the path was given explicitly); otherwise defaults apply.
pub fn load(main: &Path, main_required: bool) -> Result<Loaded, ConfigError> {
    let mut files = Vec::new();
    if main.exists() {
        files.push(main.to_path_buf());
    } else if main_required {
        return Err(ConfigError::Missing(main.to_path_buf()));
    }
    let drop_in_dir = main
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(DROP_IN_DIR);
    files.extend(drop_ins(&drop_in_dir)?);

    let mut merged = toml::Table::new();
    for path in &files {
        let table = read_checked(path)?;
        merge_tables(&mut merged, table);
    }
    let config =
        Config::deserialize(toml::Value::Table(merged)).map_err(|e| ConfigError::Merged {
            files: files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            message: e.message().to_string(),
        })?;
    Ok(Loaded { config, files })
}

/// `*.toml` files of the drop-in directory, sorted by name. A missing directory is fine.
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
            found.push(path);
        }
    }
    found.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(found)
}

/// Reads one file and checks it against the schema on its own, so errors carry its name.
fn read_checked(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_checked::<Config>(path, &text)?;
    text.parse::<toml::Table>()
        .map_err(|e| invalid(path, &text, &e))
}

/// Parses `text` (the content of `path`) as `T`, turning errors into file:line:column form.
pub(crate) fn parse_checked<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    toml::from_str::<T>(text).map_err(|e| invalid(path, text, &e))
}

fn invalid(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let (line, column) = match error.span() {
        Some(span) => line_column(text, span.start),
        None => (1, 1),
    };
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        message: readable_message(error.message().trim(), text, line),
    }
}

/// serde says "unknown field `x`, expected ..."; a technician edits keys in tables, so say
/// "unknown key `x` in [table]; expected ...".
fn readable_message(message: &str, text: &str, line: usize) -> String {
    let Some(rest) = message.strip_prefix("unknown field ") else {
        return message.to_string();
    };
    let (key, expected) = rest.split_once(", ").unwrap_or((rest, ""));
    let table = text
        .lines()
        .take(line.saturating_sub(1))
        .filter(|l| l.trim_start().starts_with('['))
        .last()
        .map(|header| format!(" in {}", header.trim()));
    let mut out = format!("unknown key {key}{}", table.unwrap_or_default());
    if !expected.is_empty() {
        out.push_str("; ");
        out.push_str(expected);
    }
    out
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let config = Config::default();
        assert_eq!(config.device.board, "sim");
        assert_eq!(config.cloud.request_timeout_secs, 10);
        assert_eq!(config.cloud.retry_max_secs, 60);
        assert_eq!(config.log.target, LogTarget::Auto);
    }

    #[test]
    fn a_bad_meeting_regex_is_reported_with_its_line() {
        let text = "[calls]\nmeeting_uri_regex = '(unclosed'\n";
        let error = parse_checked::<Config>(Path::new("roomd.toml"), text).unwrap_err();
        let shown = error.to_string();
        assert!(shown.starts_with("roomd.toml:2:"), "{shown}");
        assert!(
            shown.contains("meeting_uri_regex is not a valid regular expression"),
            "{shown}"
        );
        let good = "[calls]\nmeeting_uri_regex = '^[^@]+@sim$'\n";
        let config = parse_checked::<Config>(Path::new("roomd.toml"), good).unwrap();
        assert!(config.calls.meeting_uri_regex.is_match(" Room@SIM "));
        assert!(!config.calls.meeting_uri_regex.is_match("room@sim.example"));
        assert!(MeetingUriRegex::default().is_match("standup@acme.webex.com"));
        assert!(!MeetingUriRegex::default().is_match("bob@example.com"));
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("a\nbc\n", 0), (1, 1));
        assert_eq!(line_column("a\nbc\n", 3), (2, 2));
    }

    #[test]
    fn explicit_dirs_win_over_environment() {
        let mut config = Config::default();
        config.device.state_dir = Some("/tmp/state".into());
        assert_eq!(config.state_dir(), PathBuf::from("/tmp/state"));
        assert_eq!(config.control_socket().file_name().unwrap(), "control.sock");
    }
}
