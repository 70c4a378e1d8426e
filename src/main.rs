//! The `roomd` binary: parses the command line, loads configuration and maps every error
//! to an exit status (sysexits(3)); `systemd/roomd.service` keeps configuration errors
//! (78) from restart loops with `RestartPreventExitStatus=`.

use std::process::ExitCode;

use clap::Parser;

use roomd::api::control::{self, ControlRequest, ControlResponse};
use roomd::cli::{Cli, Command};
use roomd::config::{self, Loaded};
use roomd::daemon::{self, DaemonError, DaemonOptions};
use roomd::hw::board::Board;
use roomd::platform::{logging, systemd};

/// sysexits(3) codes.
mod exit {
    use roomd::session::FailureKind;

    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 64;
    pub const DATAERR: u8 = 65;
    pub const UNAVAILABLE: u8 = 69;
    pub const SOFTWARE: u8 = 70;
    pub const IOERR: u8 = 74;
    pub const PROTOCOL: u8 = 76;
    pub const CONFIG: u8 = 78;

    /// The exit status of a session command the daemon refused (docs/operations.md).
    pub fn for_failure(kind: FailureKind) -> u8 {
        match kind {
            FailureKind::Refused => FAILURE,
            FailureKind::CodeRejected => DATAERR,
            FailureKind::Unavailable => UNAVAILABLE,
            FailureKind::Protocol => PROTOCOL,
            FailureKind::Config => CONFIG,
            FailureKind::Io => IOERR,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (path, required) = cli.config_path();
    let loaded = config::load(&path, required);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("roomd")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("roomd: cannot start the async runtime: {e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    match cli.command {
        Command::Run => runtime.block_on(run(&cli, loaded)),
        Command::Status { json } => runtime.block_on(status(loaded, json)),
        Command::Activate { code } => runtime.block_on(activate(loaded, &code)),
        Command::Bookings => runtime.block_on(bookings(loaded)),
        Command::Passwd { user } => runtime.block_on(passwd(loaded, user)),
        Command::FactoryReset { yes } => runtime.block_on(factory_reset(loaded, yes)),
        Command::Logs {
            unit,
            event,
            journalctl_args,
        } => logs(&unit, event.as_deref(), &journalctl_args),
        Command::SetLogLevel { level, reset } => {
            runtime.block_on(set_log_level(&path, required, level.as_deref(), reset))
        }
        Command::Check => {
            init_quiet_logging(&cli);
            let report = runtime.block_on(roomd::check::run(loaded));
            println!("{report}");
            if report.failures() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit::FAILURE)
            }
        }
    }
}

fn init_quiet_logging(cli: &Cli) {
    let overrides = logging::FilterOverrides::new(cli.log_level.as_deref(), None);
    logging::init(roomd::config::LogTarget::Stderr, overrides, "error");
}

async fn run(cli: &Cli, loaded: Result<Loaded, config::ConfigError>) -> ExitCode {
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("roomd: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let config = loaded.config;
    let overrides = logging::FilterOverrides::new(
        cli.log_level.as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let backend = logging::init(config.log.target, overrides, &config.log.level);
    let _config_span = logging::Subsystem::Config.span().entered();
    tracing::info!(
        files = ?loaded.files,
        log_backend = ?backend,
        "configuration loaded from {} file(s)",
        loaded.files.len()
    );
    let board = match Board::load(&config.device.board_dir, &config.device.board) {
        Ok(board) => board,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("roomd: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    drop(_config_span);
    let options = DaemonOptions {
        config,
        board,
        notifier: systemd::Notifier::from_env(),
        watchdog: systemd::watchdog_interval(),
    };
    match daemon::run(options, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roomd: {e}");
            ExitCode::from(match e {
                DaemonError::Config(_) | DaemonError::Tls(_) | DaemonError::Media(_) => {
                    exit::CONFIG
                }
                DaemonError::Control(_) | DaemonError::Http(_) | DaemonError::Store(_) => {
                    exit::IOERR
                }
                DaemonError::Shutdown(_) => exit::SOFTWARE,
            })
        }
    }
}

/// Completes on SIGTERM (systemd) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stopping only on Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn status(loaded: Result<Loaded, config::ConfigError>, json: bool) -> ExitCode {
    let config = match loaded {
        Ok(loaded) => loaded.config,
        Err(e) => {
            eprintln!("roomd: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let answer = control::request(&config.control_socket(), &ControlRequest::Status).await;
    report(answer, |response| match response {
        ControlResponse::Status { status } if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
            );
            Ok(())
        }
        ControlResponse::Status { status } => {
            print!("{}", roomd::api::xstatus::render(&status));
            Ok(())
        }
        other => Err(other),
    })
}

async fn bookings(loaded: Result<Loaded, config::ConfigError>) -> ExitCode {
    let config = match loaded {
        Ok(loaded) => loaded.config,
        Err(e) => {
            eprintln!("roomd: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let answer = control::request(&config.control_socket(), &ControlRequest::Bookings).await;
    report(answer, |response| match response {
        ControlResponse::Text { text } => {
            print!("{text}");
            Ok(())
        }
        other => Err(other),
    })
}

async fn passwd(loaded: Result<Loaded, config::ConfigError>, user: String) -> ExitCode {
    let config = match loaded {
        Ok(loaded) => loaded.config,
        Err(e) => {
            eprintln!("roomd: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("roomd: cannot read the password from stdin: {e}");
        return ExitCode::from(exit::IOERR);
    }
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    let request = ControlRequest::Passwd {
        user,
        password: roomd::secret::Secret::new(password),
    };
    let answer = control::request(&config.control_socket(), &request).await;
    report(answer, |response| match response {
        ControlResponse::Done { message } => {
            println!("{message}");
            Ok(())
        }
        other => Err(other),
    })
}

/// Turns the daemon's answer into output and an exit status; `on_answer` handles the
/// answers this command expects and hands back any other.
fn report(
    answer: Result<ControlResponse, control::ControlError>,
    on_answer: impl FnOnce(ControlResponse) -> Result<(), ControlResponse>,
) -> ExitCode {
    match answer {
        Ok(ControlResponse::Error { message, kind }) => {
            eprintln!("roomd: {message}");
            ExitCode::from(kind.map_or(exit::FAILURE, exit::for_failure))
        }
        Ok(response) => match on_answer(response) {
            Ok(()) => ExitCode::SUCCESS,
            Err(other) => {
                eprintln!("roomd: unexpected answer from the daemon: {other:?}");
                ExitCode::from(exit::SOFTWARE)
            }
        },
        Err(e) => {
            eprintln!("roomd: {e}");
            ExitCode::from(exit::UNAVAILABLE)
        }
    }
}

fn config_or_exit(loaded: Result<Loaded, config::ConfigError>) -> Result<config::Config, ExitCode> {
    loaded.map(|l| l.config).map_err(|e| {
        eprintln!("roomd: {e}");
        ExitCode::from(exit::CONFIG)
    })
}

/// Sends a command to the daemon and prints its answer.
async fn command(config: &config::Config, request: ControlRequest) -> ExitCode {
    let answer = control::request(&config.control_socket(), &request).await;
    report(answer, |response| match response {
        ControlResponse::Done { message } => {
            println!("{message}");
            Ok(())
        }
        other => Err(other),
    })
}

async fn activate(loaded: Result<Loaded, config::ConfigError>, code: &str) -> ExitCode {
    let config = match config_or_exit(loaded) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // Checked here first so a typo never leaves the machine.
    if let Err(e) = roomd::activation::code::ActivationCode::parse(code) {
        eprintln!("roomd: {e}");
        return ExitCode::from(exit::USAGE);
    }
    let request = ControlRequest::Activate {
        code: roomd::secret::Secret::new(code.to_string()),
    };
    command(&config, request).await
}

async fn factory_reset(loaded: Result<Loaded, config::ConfigError>, yes: bool) -> ExitCode {
    let config = match config_or_exit(loaded) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if !yes {
        eprintln!(
            "roomd: factory-reset wipes credentials and state; run `roomd factory-reset --yes` to confirm"
        );
        return ExitCode::from(exit::USAGE);
    }
    match control::request(&config.control_socket(), &ControlRequest::Ping).await {
        Ok(_) => command(&config, ControlRequest::FactoryReset).await,
        // Daemon not running: wipe the state directory directly (no unregistration possible).
        Err(control::ControlError::NotRunning(_)) => {
            let wiped = roomd::store::StateDir::open(config.state_dir()).and_then(|s| s.wipe());
            match wiped {
                Ok(n) => {
                    println!(
                        "factory reset done: {n} file(s) removed (roomd was not running, so the device was not unregistered)"
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("roomd: {e}");
                    ExitCode::from(exit::IOERR)
                }
            }
        }
        Err(e) => {
            eprintln!("roomd: {e}");
            ExitCode::from(exit::UNAVAILABLE)
        }
    }
}

/// `roomd logs`: replaces this process with journalctl, so paging, `-f` and Ctrl-C behave
/// exactly as journalctl's own.
fn logs(unit: &str, event: Option<&str>, extra: &[std::ffi::OsString]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let args = roomd::cli::journalctl_args(unit, event, extra);
    let error = std::process::Command::new("journalctl").args(&args).exec();
    if error.kind() == std::io::ErrorKind::NotFound {
        eprintln!(
            "roomd: journalctl is not installed: `roomd logs` reads the systemd journal; \
             without systemd, read roomd's stderr where its service manager puts it"
        );
    } else {
        eprintln!("roomd: cannot run journalctl: {error}");
    }
    ExitCode::from(exit::UNAVAILABLE)
}

/// `roomd set-log-level`: writes (or with `reset` removes) the log-level drop-in, then asks
/// the running daemon to apply the merged `log.level` at once.
async fn set_log_level(
    config_path: &std::path::Path,
    required: bool,
    level: Option<&str>,
    reset: bool,
) -> ExitCode {
    let drop_in = logging::log_level_drop_in(config_path);
    match (level, reset) {
        (_, true) => match logging::remove_log_level_drop_in(&drop_in) {
            Ok(true) => println!("removed {}", drop_in.display()),
            Ok(false) => println!("no {} to remove", drop_in.display()),
            Err(e) => {
                eprintln!("roomd: cannot remove {}: {e}", drop_in.display());
                return ExitCode::from(exit::IOERR);
            }
        },
        (Some(level), false) => {
            if let Err(e) = logging::parse_level(level) {
                eprintln!("roomd: {e}");
                return ExitCode::from(exit::USAGE);
            }
            if let Err(e) = logging::write_log_level_drop_in(&drop_in, level) {
                eprintln!("roomd: cannot write {}: {e}", drop_in.display());
                return ExitCode::from(exit::IOERR);
            }
            println!("wrote {}: [log] level = {level:?}", drop_in.display());
        }
        (None, false) => {
            eprintln!("roomd: set-log-level needs a LEVEL or --reset");
            return ExitCode::from(exit::USAGE);
        }
    }
    // What the next start would use: every file merged, so a later drop-in still wins.
    let loaded = match config::load(config_path, required) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("roomd: the configuration does not load, so roomd would not start: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let merged = loaded.config.log.level.clone();
    if reset {
        println!("log.level is now {merged:?}");
    } else if level.is_some_and(|level| level.trim() != merged.trim()) {
        println!(
            "note: a drop-in after {} sets log.level = {merged:?}, and that one wins",
            drop_in.display()
        );
    }
    let request = ControlRequest::SetLogLevel { level: merged };
    match control::request(&loaded.config.control_socket(), &request).await {
        Ok(ControlResponse::Done { message }) => {
            println!("running roomd: {message}");
            ExitCode::SUCCESS
        }
        Ok(ControlResponse::Error { message, .. }) => {
            eprintln!("roomd: the running daemon did not apply it: {message}");
            ExitCode::from(exit::FAILURE)
        }
        Ok(other) => {
            eprintln!("roomd: unexpected answer from the daemon: {other:?}");
            ExitCode::from(exit::SOFTWARE)
        }
        Err(control::ControlError::NotRunning(_)) => {
            println!("roomd is not running; the level applies when it next starts");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("roomd: the drop-in is written, but the running daemon was not told: {e}");
            ExitCode::from(exit::UNAVAILABLE)
        }
    }
}
