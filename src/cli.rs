//! Command line: `roomd run | status | check | activate | bookings | passwd | factory-reset`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::DEFAULT_CONFIG_PATH;

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
    /// Check configuration, board, media elements and cloud connectivity; one OK/FAIL
    /// line per check, exit status 1 if any fails.
    Check,
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

impl Cli {
    /// The main config file and whether it must exist (it must when named explicitly).
    pub fn config_path(&self) -> (PathBuf, bool) {
        match &self.config {
            Some(path) => (path.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        }
    }
}
