//! Logging: journald (structured fields) under systemd, readable stderr otherwise.
//!
//! Every event is emitted inside a subsystem span whose `roomd_event` field becomes the
//! journal field `ROOMD_EVENT=<subsystem>` (tracing-journald copies span fields into each
//! entry; the field prefix is disabled so names stay as written). Events with a fixed
//! meaning also carry `message_id`, which becomes `MESSAGE_ID=`, so a technician can ask
//! `journalctl ROOMD_EVENT=cloud -o json` or `journalctl MESSAGE_ID=<id>` directly.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::LogTarget;

/// The part of the daemon an event comes from: the value of `ROOMD_EVENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsystem {
    Daemon,
    Config,
    Cloud,
    Control,
    Systemd,
    Media,
    Activation,
    Registration,
    Websocket,
    MeetingServer,
    Device,
    Calendar,
    Xapi,
    Hardware,
    Calls,
}

impl Subsystem {
    pub const ALL: [Subsystem; 15] = [
        Subsystem::Daemon,
        Subsystem::Config,
        Subsystem::Cloud,
        Subsystem::Control,
        Subsystem::Systemd,
        Subsystem::Media,
        Subsystem::Activation,
        Subsystem::Registration,
        Subsystem::Websocket,
        Subsystem::MeetingServer,
        Subsystem::Device,
        Subsystem::Calendar,
        Subsystem::Xapi,
        Subsystem::Hardware,
        Subsystem::Calls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Subsystem::Daemon => "daemon",
            Subsystem::Config => "config",
            Subsystem::Cloud => "cloud",
            Subsystem::Control => "control",
            Subsystem::Systemd => "systemd",
            Subsystem::Media => "media",
            Subsystem::Activation => "activation",
            Subsystem::Registration => "registration",
            Subsystem::Websocket => "websocket",
            Subsystem::MeetingServer => "meeting-server",
            Subsystem::Device => "device",
            Subsystem::Calendar => "calendar",
            Subsystem::Xapi => "xapi",
            Subsystem::Hardware => "hardware",
            Subsystem::Calls => "calls",
        }
    }

    /// A root span (no parent) so subsystem fields never nest and each journal entry has
    /// exactly one `ROOMD_EVENT`.
    pub fn span(self) -> tracing::Span {
        match self {
            Subsystem::Daemon => {
                tracing::info_span!(parent: None, "daemon", roomd_event = "daemon")
            }
            Subsystem::Config => {
                tracing::info_span!(parent: None, "config", roomd_event = "config")
            }
            Subsystem::Cloud => tracing::info_span!(parent: None, "cloud", roomd_event = "cloud"),
            Subsystem::Control => {
                tracing::info_span!(parent: None, "control", roomd_event = "control")
            }
            Subsystem::Systemd => {
                tracing::info_span!(parent: None, "systemd", roomd_event = "systemd")
            }
            Subsystem::Media => tracing::info_span!(parent: None, "media", roomd_event = "media"),
            Subsystem::Activation => {
                tracing::info_span!(parent: None, "activation", roomd_event = "activation")
            }
            Subsystem::Registration => {
                tracing::info_span!(parent: None, "registration", roomd_event = "registration")
            }
            Subsystem::Websocket => {
                tracing::info_span!(parent: None, "websocket", roomd_event = "websocket")
            }
            Subsystem::MeetingServer => {
                tracing::info_span!(parent: None, "meeting-server", roomd_event = "meeting-server")
            }
            Subsystem::Device => {
                tracing::info_span!(parent: None, "device", roomd_event = "device")
            }
            Subsystem::Calendar => {
                tracing::info_span!(parent: None, "calendar", roomd_event = "calendar")
            }
            Subsystem::Xapi => tracing::info_span!(parent: None, "xapi", roomd_event = "xapi"),
            Subsystem::Hardware => {
                tracing::info_span!(parent: None, "hardware", roomd_event = "hardware")
            }
            Subsystem::Calls => tracing::info_span!(parent: None, "calls", roomd_event = "calls"),
        }
    }
}

/// Fixed `MESSAGE_ID`s (journal catalog style: 128-bit, hex) for events with one meaning.
pub mod message_id {
    pub const STARTED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e801";
    pub const READY: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e802";
    pub const STOPPING: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e803";
    pub const STOPPED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e804";
    pub const GDS_ONLINE: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e810";
    pub const GDS_UNHEALTHY: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e811";
    pub const GDS_UNREACHABLE: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e812";
    pub const GSTREAMER: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e820";
    pub const ACTIVATED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e830";
    pub const ACTIVATION_FAILED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e831";
    pub const NEEDS_ACTIVATION: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e832";
    pub const FACTORY_RESET: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e833";
    pub const TOKEN_REFRESHED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e834";
    pub const REGISTERED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e840";
    pub const REGISTRATION_FAILED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e841";
    pub const WEBSOCKET_ONLINE: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e850";
    pub const WEBSOCKET_CLOSED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e851";
    pub const WEBSOCKET_STOPPED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e852";
    pub const WEBSOCKET_SEQUENCE_GAP: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e853";
    pub const MEETING_SERVER_CONNECTED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e860";
    pub const MEETING_SERVER_LOST: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e861";
    pub const DEVICE_CONTROL: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e870";
    pub const XAPI_LISTENING: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e880";
    pub const XAPI_LOGIN_REFUSED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e881";
    pub const DIAL_REQUESTED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e882";
    pub const BUTTON_PRESSED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e890";
    pub const PRIVACY_SWITCH: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e891";
    pub const CALL_STARTED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e8a0";
    pub const CALL_INCOMING: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e8a1";
    pub const CALL_CONNECTED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e8a2";
    pub const CALL_ENDED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e8a3";
    pub const DIAGNOSTIC_EVENT: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e8a4";
    pub const PARTICIPANT_MOVED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e8a5";
    pub const LOCUS_SYNC: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e8a6";
    pub const BOOKINGS_UPDATED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e8b0";
    pub const CALENDAR_CATCH_UP: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e8b1";
    pub const CALENDAR_CATCH_UP_FAILED: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e8b2";
    pub const OBTP_EVENT: &str = "7d3c4c1e2a8b4f0e9a61f5b2c0d4e8b3";
}

/// Where the logs ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Journald,
    Stderr,
}

/// The filter: `--log-level` beats `RUST_LOG` beats the config file. A bare level
/// (`debug`) applies to roomd's own crates; dependencies stay at `warn` so a device's
/// journal is not flooded by HTTP internals. Anything else is taken as a full directive.
pub fn filter_directives(cli: Option<&str>, env: Option<&str>, config: &str) -> String {
    let chosen = cli
        .or(env.filter(|s| !s.trim().is_empty()))
        .unwrap_or(config)
        .trim();
    if is_bare_level(chosen) {
        format!("warn,roomd={chosen},roomd_sim={chosen}")
    } else {
        chosen.to_string()
    }
}

/// Added to every filter roomd installs, and more specific than a bare `trace`: at trace level
/// tungstenite prints every frame whole, the event socket's `"token":"Bearer …"`
/// authorization frame and the xAPI's auth header included. Debug shows no frame contents.
pub const SECRET_SAFE_CAPS: &str = "tungstenite=debug,tokio_tungstenite=debug";

/// `directives` plus [`SECRET_SAFE_CAPS`], as an `EnvFilter`.
fn secret_safe_filter(
    directives: &str,
) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    EnvFilter::builder().parse(format!("{directives},{SECRET_SAFE_CAPS}"))
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

fn is_bare_level(word: &str) -> bool {
    LEVELS.contains(&word.to_ascii_lowercase().as_str())
}

/// The sources that beat `log.level`, kept by the running daemon so a live change of
/// `log.level` still yields to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterOverrides {
    /// `--log-level`.
    pub cli: Option<String>,
    /// `RUST_LOG` (blank counts as unset).
    pub env: Option<String>,
}

impl FilterOverrides {
    pub fn new(cli: Option<&str>, env: Option<&str>) -> Self {
        Self {
            cli: cli.map(str::to_string),
            env: env.filter(|s| !s.trim().is_empty()).map(str::to_string),
        }
    }

    /// The filter with `config_level` (the merged `log.level`) as the fallback.
    pub fn directives(&self, config_level: &str) -> String {
        filter_directives(self.cli.as_deref(), self.env.as_deref(), config_level)
    }

    /// Which override wins over `log.level`, as a technician would name it.
    pub fn winner(&self) -> Option<(&'static str, &str)> {
        match (&self.cli, &self.env) {
            (Some(cli), _) => Some(("--log-level", cli)),
            (None, Some(env)) => Some(("RUST_LOG", env)),
            (None, None) => None,
        }
    }
}

/// Why a log level or filter cannot be used.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum LogFilterError {
    /// the log level is empty: give trace, debug, info, warn, error or off, or directives such as `roomd::cloud=debug`
    Empty,
    /// `{0}` is not a log level: use trace, debug, info, warn, error or off, or directives such as `roomd::cloud=debug`
    UnknownLevel(String),
    /// invalid log filter `{directives}`: {reason}
    Invalid { directives: String, reason: String },
    /// this process has no reloadable log filter (only `roomd run` installs one)
    NotReloadable,
    /// reloading the log filter failed: {0}
    Reload(String),
}

/// Checks a `log.level` value (a bare level or `RUST_LOG` directives) and returns the
/// filter it stands for. EnvFilter takes a lone word as a target name, so `verbose`
/// would silently mean "trace for target verbose"; a lone word must be a level here.
pub fn parse_level(level: &str) -> Result<EnvFilter, LogFilterError> {
    let level = level.trim();
    if level.is_empty() {
        return Err(LogFilterError::Empty);
    }
    for directive in level.split(',').map(str::trim) {
        let lone_word = !directive.is_empty()
            && directive
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if lone_word && !is_bare_level(directive) {
            return Err(LogFilterError::UnknownLevel(directive.to_string()));
        }
    }
    let directives = filter_directives(None, None, level);
    secret_safe_filter(&directives).map_err(|e| LogFilterError::Invalid {
        directives,
        reason: e.to_string(),
    })
}

/// The installed filter's reload handle and what beats `log.level`; set once by [`init`].
#[derive(Debug)]
struct LiveFilter {
    handle: reload::Handle<EnvFilter, Registry>,
    overrides: FilterOverrides,
}

static LIVE_FILTER: OnceLock<LiveFilter> = OnceLock::new();

/// What a live change of `log.level` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterChange {
    /// The filter now is these directives.
    Applied { directives: String },
    /// `--log-level` or `RUST_LOG` wins, so the filter stayed `directives`.
    Overridden {
        by: &'static str,
        value: String,
        directives: String,
    },
}

impl std::fmt::Display for FilterChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterChange::Applied { directives } => write!(f, "log filter now `{directives}`"),
            FilterChange::Overridden {
                by,
                value,
                directives,
            } => write!(
                f,
                "log filter stays `{directives}`: roomd was started with {by} `{value}`, which wins over log.level"
            ),
        }
    }
}

/// Makes the running daemon's filter follow a new `log.level` (the merged value), with
/// the precedence of [`filter_directives`]; no restart needed.
pub fn apply_config_level(config_level: &str) -> Result<FilterChange, LogFilterError> {
    let live = LIVE_FILTER.get().ok_or(LogFilterError::NotReloadable)?;
    let filter = parse_level(config_level)?;
    if let Some((by, value)) = live.overrides.winner() {
        return Ok(FilterChange::Overridden {
            by,
            value: value.to_string(),
            directives: live.overrides.directives(config_level),
        });
    }
    live.handle
        .reload(filter)
        .map_err(|e| LogFilterError::Reload(e.to_string()))?;
    Ok(FilterChange::Applied {
        directives: filter_directives(None, None, config_level),
    })
}

/// The drop-in `roomd set-log-level` writes: late in the order (`90-`) so it beats the
/// vendor's and integrator's files, while a technician can still outrank it with `95-`.
pub const LOG_LEVEL_DROP_IN: &str = "90-log-level.toml";

/// The log-level drop-in that belongs to main config file `config_path` (the directory
/// [`crate::config::load`] reads drop-ins from).
pub fn log_level_drop_in(config_path: &Path) -> PathBuf {
    config_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(crate::config::DROP_IN_DIR)
        .join(LOG_LEVEL_DROP_IN)
}

/// Writes `[log] level = "<level>"` to `path` (mode 0644) through a temporary file and a
/// rename, so the daemon never reads a half-written drop-in. Creates the directory.
pub fn write_log_level_drop_in(path: &Path, level: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // Not `*.toml`, so a crash between write and rename leaves nothing the loader reads.
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let text = format!(
        "# Written by `roomd set-log-level`; `roomd set-log-level --reset` removes this file.\n\
         [log]\nlevel = {}\n",
        toml::Value::String(level.trim().to_string())
    );
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    // The rename is durable once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

/// Removes the drop-in; `Ok(false)` if there was none.
pub fn remove_log_level_drop_in(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// True when stderr is the journal stream systemd handed us (`JOURNAL_STREAM` names the
/// device and inode of fd 2), the documented way to decide on native journal logging.
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// Installs the global subscriber with a reloadable filter. Call once, from `main`.
/// `config_level` is `log.level`; `overrides` beat it now and after a live change.
pub fn init(target: LogTarget, overrides: FilterOverrides, config_level: &str) -> Backend {
    let directives = overrides.directives(config_level);
    let filter = secret_safe_filter(&directives).unwrap_or_else(|e| {
        eprintln!("roomd: invalid log filter {directives:?} ({e}); using info");
        EnvFilter::new(format!("warn,roomd=info,{SECRET_SAFE_CAPS}"))
    });
    let (filter, handle) = reload::Layer::new(filter);
    let _ = LIVE_FILTER.set(LiveFilter { handle, overrides });
    let want_journald = match target {
        LogTarget::Journald => true,
        LogTarget::Stderr => false,
        LogTarget::Auto => stderr_is_journal(),
    };
    if want_journald {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_field_prefix(None)
                    .with_syslog_identifier("roomd".into());
                tracing_subscriber::registry()
                    .with(filter)
                    .with(layer)
                    .init();
                return Backend::Journald;
            }
            Err(e) => eprintln!("roomd: journald not available ({e}); logging to stderr"),
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        .init();
    Backend::Stderr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tungstenite_stays_at_debug_even_when_everything_is_at_trace() {
        // At trace tungstenite logs whole frames: the mercury authorization frame's bearer token.
        for directives in ["trace", "roomd=trace,trace", "tungstenite=trace"] {
            let filter = secret_safe_filter(directives).expect("parses");
            let subscriber = tracing_subscriber::registry().with(filter);
            tracing::subscriber::with_default(subscriber, || {
                assert!(
                    !tracing::enabled!(target: "tungstenite::protocol", tracing::Level::TRACE),
                    "{directives}"
                );
                assert!(tracing::enabled!(target: "tungstenite::protocol", tracing::Level::DEBUG));
            });
        }
        let everything = tracing_subscriber::registry().with(secret_safe_filter("trace").unwrap());
        tracing::subscriber::with_default(everything, || {
            assert!(tracing::enabled!(target: "roomd::cloud", tracing::Level::TRACE));
        });
    }

    #[test]
    fn cli_beats_env_beats_config() {
        assert_eq!(
            filter_directives(Some("debug"), Some("trace"), "info"),
            "warn,roomd=debug,roomd_sim=debug"
        );
        assert_eq!(
            filter_directives(None, Some("roomd::cloud=trace"), "info"),
            "roomd::cloud=trace"
        );
        assert_eq!(
            filter_directives(None, Some(" "), "error"),
            "warn,roomd=error,roomd_sim=error"
        );
    }

    #[test]
    fn an_override_wins_over_log_level_and_is_named() {
        let none = FilterOverrides::new(None, Some("  "));
        assert_eq!(none.winner(), None);
        assert_eq!(none.directives("debug"), "warn,roomd=debug,roomd_sim=debug");
        let env = FilterOverrides::new(None, Some("roomd=trace"));
        assert_eq!(env.winner(), Some(("RUST_LOG", "roomd=trace")));
        assert_eq!(env.directives("debug"), "roomd=trace");
        let cli = FilterOverrides::new(Some("error"), Some("roomd=trace"));
        assert_eq!(cli.winner(), Some(("--log-level", "error")));
    }

    #[test]
    fn levels_and_directives_are_checked_before_use() {
        for good in [
            "debug",
            " INFO ",
            "roomd::cloud=trace",
            "warn,roomd=debug",
            "off",
        ] {
            parse_level(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        assert_eq!(
            parse_level("verbose").unwrap_err().to_string(),
            "`verbose` is not a log level: use trace, debug, info, warn, error or off, \
             or directives such as `roomd::cloud=debug`"
        );
        assert!(matches!(parse_level(" "), Err(LogFilterError::Empty)));
        let err = parse_level("roomd=loud").unwrap_err().to_string();
        assert!(
            err.starts_with("invalid log filter `roomd=loud`: "),
            "{err}"
        );
    }

    #[test]
    fn the_drop_in_is_written_whole_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("roomd.toml");
        let drop_in = log_level_drop_in(&main);
        assert_eq!(drop_in, dir.path().join("config.d/90-log-level.toml"));
        write_log_level_drop_in(&drop_in, "roomd::cloud=debug,\"quoted\"").unwrap();
        let mode = std::fs::metadata(&drop_in).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = std::fs::read_dir(drop_in.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["90-log-level.toml"], "no temporary file left");
        let loaded = crate::config::load(&main, false).unwrap();
        assert_eq!(loaded.config.log.level, "roomd::cloud=debug,\"quoted\"");

        write_log_level_drop_in(&drop_in, "trace").unwrap();
        assert_eq!(
            crate::config::load(&main, false).unwrap().config.log.level,
            "trace"
        );
        assert!(remove_log_level_drop_in(&drop_in).unwrap());
        assert!(!remove_log_level_drop_in(&drop_in).unwrap());
        assert_eq!(
            crate::config::load(&main, false).unwrap().config.log.level,
            "info"
        );
    }

    #[test]
    fn a_live_change_needs_the_daemon_filter() {
        // Unit tests never call `init`, so there is nothing to reload.
        assert!(matches!(
            apply_config_level("debug"),
            Err(LogFilterError::NotReloadable)
        ));
    }

    #[test]
    fn journal_stream_must_match_stderr() {
        // In a test run stderr is not the journal, whatever JOURNAL_STREAM says.
        assert!(!stderr_is_journal() || std::env::var("JOURNAL_STREAM").is_ok());
    }
}
