//! Logging: journald (structured fields) under systemd, readable stderr otherwise.
//!
//! Every event is emitted inside a subsystem span whose `roomd_event` field becomes the
//! journal field `ROOMD_EVENT=<subsystem>` (tracing-journald copies span fields into each
//! entry; the field prefix is disabled so names stay as written). Events with a fixed
//! meaning also carry `message_id`, which becomes `MESSAGE_ID=`, so a technician can ask
//! `journalctl ROOMD_EVENT=cloud -o json` or `journalctl MESSAGE_ID=<id>` directly.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    let is_bare_level = matches!(
        chosen.to_ascii_lowercase().as_str(),
        "trace" | "debug" | "info" | "warn" | "error" | "off"
    );
    if is_bare_level {
        format!("warn,roomd={chosen},roomd_sim={chosen}")
    } else {
        chosen.to_string()
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

/// Installs the global subscriber. Call once, from `main`.
pub fn init(target: LogTarget, directives: &str) -> Backend {
    let filter = EnvFilter::try_new(directives).unwrap_or_else(|e| {
        eprintln!("roomd: invalid log filter {directives:?} ({e}); using info");
        EnvFilter::new("warn,roomd=info")
    });
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
    fn journal_stream_must_match_stderr() {
        // In a test run stderr is not the journal, whatever JOURNAL_STREAM says.
        assert!(!stderr_is_journal() || std::env::var("JOURNAL_STREAM").is_ok());
    }
}
