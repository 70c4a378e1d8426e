//! Command line: `roomd run | status | check | logs | set-log-level | activate | bookings |
//! passwd | factory-reset`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::DEFAULT_CONFIG_PATH;
use crate::platform::logging::Subsystem;

/// The systemd unit `roomd logs` reads when neither `--unit` nor `ROOMD_UNIT` names one.
pub const DEFAULT_UNIT: &str = "roomd.service";

#[derive(Debug, Parser)]
#[command(
    name = "roomd",
    version,
    about = "Device agent for cloud-registered meeting-room video devices",
    long_about = "roomd activates and registers a room device with the cloud, keeps its event \
                  channels alive, and drives its meeting buttons, LEDs and media.\n\n\
                  Configuration: /etc/roomd/roomd.toml plus /etc/roomd/config.d/*.toml drop-ins, \
                  merged in file-name order."
)]
pub struct Cli {
    /// Main configuration file; drop-ins are read from `config.d/` beside it.
    #[arg(long, global = true, env = "ROOMD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log filter (a level such as `debug`, or `RUST_LOG` directives); wins over RUST_LOG
    /// and the config file.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (what systemd starts). Stops cleanly on SIGTERM or Ctrl-C.
    Run,
    /// Print the running daemon's status as an xStatus tree (`*s SystemUnit State: ...`).
    Status {
        /// Print the status tree as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Check configuration, hardware (GPIO lines, device nodes), media elements,
    /// certificates and cloud connectivity: one SUCCESS/FAIL line per check, grouped,
    /// exit status 1 if any fails. Changes nothing, so it is safe beside a running daemon.
    Check,
    /// Show roomd's journal: runs `journalctl -u roomd.service` with any further
    /// arguments passed through (`roomd logs -f`, `roomd logs -o json --since -1h`).
    /// roomd's own options go before the journalctl ones.
    #[command(
        after_help = "Examples:\n  roomd logs -f\n  roomd logs --event cloud -o json\n  \
                            roomd logs --since -1h -p warning"
    )]
    Logs {
        /// The systemd unit to read.
        #[arg(long, env = "ROOMD_UNIT", default_value = DEFAULT_UNIT, value_name = "UNIT")]
        unit: String,
        /// Only entries of one subsystem (adds the match `ROOMD_EVENT=<SUBSYSTEM>`).
        #[arg(long, value_name = "SUBSYSTEM", value_parser = subsystem_names())]
        event: Option<String>,
        /// Passed to journalctl unchanged.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "JOURNALCTL ARGS"
        )]
        journalctl_args: Vec<OsString>,
    },
    /// Set the log level persistently and live: writes `config.d/90-log-level.toml`
    /// (`[log] level = "..."`) beside the main config file, then tells the running daemon
    /// to use it at once. `--log-level` and RUST_LOG on the daemon still win over it.
    #[command(after_help = "Examples:\n  roomd set-log-level debug\n  \
                            roomd set-log-level 'info,roomd::cloud=trace'\n  \
                            roomd set-log-level --reset")]
    SetLogLevel {
        /// A level (trace, debug, info, warn, error, off) for roomd itself, or RUST_LOG
        /// directives (`info,roomd::cloud=trace`).
        #[arg(value_name = "LEVEL|DIRECTIVES", required_unless_present = "reset")]
        level: Option<String>,
        /// Remove the drop-in instead: the level from the other config files applies again.
        #[arg(long, conflicts_with = "level")]
        reset: bool,
    },
    /// Activate the running daemon with a 16-digit activation code (`4353-4500-1234-5678`).
    /// The code is checked before anything is sent; it is never logged.
    Activate {
        /// The code, digits with optional `-` or space separators.
        code: String,
    },
    /// Print the running daemon's bookings (`*r BookingsListResult Booking 1 Id: "webex-1"`, as
    /// `bookings.txt` in the state directory).
    Bookings,
    /// Set the password of a local xAPI user (`admin` or the touch panel's `touchpanel`).
    /// Reads the new password from the first line of stdin; the running daemon stores its
    /// argon2id hash in the state directory (mode 0600).
    Passwd {
        /// `admin` or `touchpanel`.
        #[arg(long, default_value = "admin")]
        user: String,
    },
    /// Unregister from the cloud and wipe credentials and state (lifts the lock-down).
    FactoryReset {
        /// Confirm: without it nothing is changed.
        #[arg(long)]
        yes: bool,
    },
}

fn subsystem_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(Subsystem::ALL.map(Subsystem::as_str))
}

/// journalctl's arguments for `roomd logs`: the unit, the subsystem match, then whatever
/// the technician added, unchanged and last so it can refine or override.
pub fn journalctl_args(unit: &str, event: Option<&str>, extra: &[OsString]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-u".into(), unit.into()];
    if let Some(subsystem) = event {
        args.push(format!("ROOMD_EVENT={subsystem}").into());
    }
    args.extend(extra.iter().cloned());
    args
}

impl Cli {
    /// The main config file and whether it must exist (it must when named explicitly).
    pub fn config_path(&self) -> (PathBuf, bool) {
        match &self.config {
            Some(path) => (path.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn journalctl_gets_the_unit_the_match_and_the_rest() {
        assert_eq!(
            journalctl_args(DEFAULT_UNIT, None, &[]),
            args(&["-u", "roomd.service"])
        );
        assert_eq!(
            journalctl_args("roomd.service", Some("cloud"), &args(&["-o", "json"])),
            args(&["-u", "roomd.service", "ROOMD_EVENT=cloud", "-o", "json"])
        );
    }

    #[test]
    fn logs_passes_hyphenated_arguments_through() {
        let cli = Cli::try_parse_from([
            "roomd",
            "logs",
            "--unit",
            "roomd-test",
            "--event",
            "meeting-server",
            "-o",
            "json",
            "--since",
            "-1h",
            "-f",
        ])
        .unwrap();
        let Command::Logs {
            unit,
            event,
            journalctl_args: extra,
        } = cli.command
        else {
            panic!("not logs: {:?}", cli.command);
        };
        assert_eq!(
            journalctl_args(&unit, event.as_deref(), &extra),
            args(&[
                "-u",
                "roomd-test",
                "ROOMD_EVENT=meeting-server",
                "-o",
                "json",
                "--since",
                "-1h",
                "-f"
            ])
        );
    }

    #[test]
    fn an_unknown_subsystem_is_refused_with_the_list() {
        let err = Cli::try_parse_from(["roomd", "logs", "--event", "clouds"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid value 'clouds' for '--event <SUBSYSTEM>'"),
            "{err}"
        );
        assert!(err.contains("meeting-server"), "{err}");
    }

    #[test]
    fn set_log_level_takes_a_level_or_reset() {
        let cli = Cli::try_parse_from(["roomd", "set-log-level", "debug"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::SetLogLevel { level: Some(ref l), reset: false } if l == "debug"
        ));
        let cli = Cli::try_parse_from(["roomd", "set-log-level", "--reset"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::SetLogLevel {
                level: None,
                reset: true
            }
        ));
        assert!(Cli::try_parse_from(["roomd", "set-log-level"]).is_err());
        assert!(Cli::try_parse_from(["roomd", "set-log-level", "debug", "--reset"]).is_err());
    }
}
