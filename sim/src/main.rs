//! `roomd-sim`: runs the simulated cloud until SIGINT/SIGTERM.
//!
//! stdout carries exactly one line, the JSON of `GET /admin/info`, so scripts can read where
//! everything listens; human logs go to stderr.

use std::io::{IsTerminal as _, Write as _};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use roomd_sim::{Scenario, SimOptions};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt as _};

/// Cloud simulator for roomd: the server side of its protocols, on loopback.
#[derive(Debug, Parser)]
#[command(name = "roomd-sim", version, about)]
struct Args {
    /// Scenario file (.toml or .json); the default scenario when absent (GDS online, no devices).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Directory for ca.pem and sim.json.
    #[arg(long, value_name = "DIR", default_value = "./.roomd-sim")]
    state_dir: PathBuf,
    /// Loopback address for every listener.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// HTTPS port of the main listener: GDS and activation (0: any free port).
    #[arg(long, default_value_t = 8443)]
    https_port: u16,
    /// HTTPS port of the proxy listener, certificate from proxy-ca.pem: every service (0: any free port).
    #[arg(long, default_value_t = 8445)]
    proxy_port: u16,
    /// HTTPS port of the alt listener, the hostmap's primary host (0: any free port).
    #[arg(long, default_value_t = 8446)]
    alt_port: u16,
    /// Port of the admin API, plain HTTP (0: any free port).
    #[arg(long, default_value_t = 8444)]
    admin_port: u16,
    /// HTTPS port of the Meeting Server events listener, certificate from cms-ca.pem (0: any free port).
    #[arg(long, default_value_t = 8447)]
    meeting_server_port: u16,
    /// UDP port for media probes; repeat for several sockets (0: any free port).
    #[arg(long = "udp-port", value_name = "PORT", default_values_t = [3478])]
    udp_ports: Vec<u16>,
    /// Log filter for stderr: a level (info, debug) or tracing directives (roomd_sim=debug).
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match EnvFilter::try_new(&args.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("roomd-sim: invalid --log-level {:?}: {e}", args.log_level);
            return ExitCode::from(2);
        }
    };
    // In a scanned test run the log also goes to ROOMD_TEST_LOG_DIR (roomd_sim::test_run).
    let writer = match roomd_sim::test_run::log_file("binary") {
        Some(file) => BoxMakeWriter::new(std::io::stderr.and(std::sync::Mutex::new(file))),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colour only for a person at a terminal, not in captured logs.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roomd-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let scenario = match &args.scenario {
        Some(path) => Scenario::from_path(path)?,
        None => Scenario::default(),
    };
    let mut opts = SimOptions::new(args.state_dir);
    opts.bind = args.bind;
    opts.https_port = args.https_port;
    opts.proxy_port = args.proxy_port;
    opts.alt_port = args.alt_port;
    opts.admin_port = args.admin_port;
    opts.udp_ports = args.udp_ports;
    opts.meeting_server_port = args.meeting_server_port;
    opts.scenario = scenario;

    // Handlers go in before the start-up line: whoever reads it may signal at once.
    let mut signals = Signals::install()?;
    let sim = roomd_sim::start(opts).await?;
    let line = serde_json::to_string(sim.info()).context("serialising the start-up line")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .context("writing the start-up line to stdout")?;
    drop(stdout);
    notify_ready();

    let name = signals.recv().await;
    tracing::info!("{name} received, shutting down");
    sim.shutdown().await;
    Ok(())
}

/// Under systemd (`Type=notify`), `READY=1` once every listener is bound, so `systemctl start
/// roomd-sim` returns when the simulator can be used. Best effort: a failure is logged only.
fn notify_ready() {
    use std::ffi::OsStr;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let target = target.into_encoded_bytes();
    let address = match target.split_first() {
        Some((b'@', name)) => SocketAddr::from_abstract_name(name),
        _ => SocketAddr::from_pathname(std::path::Path::new(OsStr::from_bytes(&target))),
    };
    let sent =
        address.and_then(|address| UnixDatagram::unbound()?.send_to_addr(b"READY=1", &address));
    if let Err(e) = sent {
        tracing::warn!("sd_notify READY=1 failed: {e}");
    }
}

/// SIGINT and SIGTERM, registered as soon as this is created.
#[derive(Debug)]
struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Waits for either signal; returns its name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
