//! The `roomd` binary as a technician uses it: help, `check` (with its certificate checks),
//! `status`, `logs`, `set-log-level` against a running daemon, `run` under a fake systemd,
//! SIGTERM, and exit codes for configuration errors.

use crate::support;

use std::io::Read;
use std::process::{Command, Output};
use std::time::Duration;

use support::*;

fn output(command: &mut Command) -> Output {
    command.output().expect("roomd runs")
}

/// Sends SIGTERM and waits (bounded) for the exit; returns the status and all of stderr.
async fn sigterm_and_wait(child: RunningRoomd) -> (std::process::ExitStatus, String) {
    sigterm_child_and_wait(child.take()).await
}

async fn sigterm_child_and_wait(
    mut child: std::process::Child,
) -> (std::process::ExitStatus, String) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let waited = tokio::task::spawn_blocking(move || {
        // Read stderr to its end first: a full pipe would otherwise block the child's exit.
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (child.wait().unwrap(), stderr)
    });
    tokio::time::timeout(Duration::from_secs(10), waited)
        .await
        .expect("roomd exits within 10 s of SIGTERM")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_subcommand_has_help() {
    let out = output(roomd_command().arg("--help"));
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "run",
        "status",
        "check",
        "logs",
        "set-log-level",
        "--config",
        "--log-level",
    ] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    for (sub, word) in [
        ("run", "SIGTERM"),
        ("status", "xStatus"),
        ("check", "SUCCESS/FAIL"),
        ("logs", "journalctl -u roomd.service"),
        ("set-log-level", "90-log-level.toml"),
    ] {
        let out = output(roomd_command().args([sub, "--help"]));
        assert!(out.status.success(), "{sub} --help failed");
        assert!(
            text(&out.stdout).contains(word),
            "{sub} --help lacks {word}"
        );
    }
}

#[test]
fn configuration_errors_exit_78_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = output(roomd_command().args(["run", "--config", "/nonexistent/roomd.toml"]));
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("config file /nonexistent/roomd.toml does not exist"));

    let path = dir.path().join("roomd.toml");
    std::fs::write(
        &path,
        "[cloud]\ngds_url = \"https://x.invalid\"\ntimeout = 3\n",
    )
    .unwrap();
    let out = output(roomd_command().arg("run").arg("--config").arg(&path));
    assert_eq!(out.status.code(), Some(78));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3:1: unknown key `timeout` in [cloud]",
            path.display()
        )),
        "{stderr}"
    );

    // ROOMD_CONFIG works as well as --config.
    let out = output(roomd_command().arg("status").env("ROOMD_CONFIG", &path));
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn status_without_a_daemon_says_it_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = roomd::config::Config::default();
    config.device.runtime_dir = Some(dir.path().join("run"));
    let path = write_config(dir.path(), &config);
    let out = output(roomd_command().arg("status").arg("--config").arg(&path));
    assert_eq!(out.status.code(), Some(69));
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "roomd: roomd is not running (no control socket at {})",
            dir.path().join("run/control.sock").display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_grouped_success_and_fail_lines() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let config = config_for(&sim, dir.path());
    let path = write_config(dir.path(), &config);

    let run_check = |path: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            output(roomd_command().arg("check").arg("--config").arg(path))
        })
        .await
        .unwrap()
    };
    let out = run_check(path.clone()).await;
    let report = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        text(&out.stderr)
    );
    for line in [
        "Configuration\n",
        "  SUCCESS: board \"sim\"",
        "Hardware\n",
        "  SUCCESS: GPIO join_button: line \"JOIN_BUTTON\" is simulated in process (gpio.backend = \"sim\")\n",
        "Media\n",
        "  SUCCESS: camera: videotestsrc\n",
        "  SUCCESS: speaker: fakesink\n",
        "  SUCCESS: display: fakesink\n",
        "  SUCCESS: video_encoder: x264enc\n",
        "  SUCCESS: video_decoder: openh264dec\n",
        "Certificates\n",
        &format!(
            "  SUCCESS: trust bundle {} (cloud.extra_ca_files): 1 certificate, earliest expiry ",
            sim.ca_path().display()
        ),
        "Connectivity\n",
        "  SUCCESS: trust store: platform roots + 1 additional CA(s)\n",
        &format!("  SUCCESS: GDS {}/health: online (Healthy)", sim.gds_url()),
    ] {
        assert!(report.contains(line), "missing {line:?} in:\n{report}");
    }
    let groups: Vec<&str> = report
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with("Summary"))
        .collect();
    assert_eq!(
        groups,
        [
            "Configuration",
            "Hardware",
            "Media",
            "Certificates",
            "Connectivity"
        ]
    );
    assert!(
        report
            .lines()
            .filter(|l| l.starts_with(' '))
            .all(|l| l.starts_with("  SUCCESS: ") || l.starts_with("  FAIL: ")),
        "{report}"
    );
    assert!(report.ends_with(" SUCCESS, 0 FAIL\n"), "{report}");

    sim.set_gds_state("offline");
    let out = run_check(path.clone()).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!(
            "  FAIL: GDS {}/health: serviceState=offline",
            sim.gds_url()
        )),
        "{report}"
    );
    assert!(report.contains("Summary: "), "{report}");
    assert!(report.contains(", 1 FAIL"), "{report}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_under_fake_systemd_serves_status_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let config = config_for(&sim, dir.path());
    let path = write_config(dir.path(), &config);
    let mut systemd = FakeSystemd::bind(dir.path());

    let child = spawn_roomd_run(&path, &systemd);
    systemd.wait_for("READY=1").await;
    systemd
        .wait_for("STATUS=cloud reachable (GDS online)")
        .await;

    let status_path = path.clone();
    let out = tokio::task::spawn_blocking(move || {
        output(
            roomd_command()
                .arg("status")
                .arg("--config")
                .arg(status_path),
        )
    })
    .await
    .unwrap();
    let tree = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        tree.starts_with("*s SystemUnit State: \"Running\"\n"),
        "{tree}"
    );
    assert!(
        tree.contains("*s Webex Discovery Status: \"Online\"\n"),
        "{tree}"
    );
    assert!(tree.ends_with("** end\n"), "{tree}");

    let exit = sigterm_and_wait(child).await;
    systemd.wait_for("STOPPING=1").await;
    assert!(exit.0.success(), "exit {:?}\n{}", exit.0, exit.1);
    assert!(exit.1.contains("stopped cleanly"), "{}", exit.1);
    assert!(exit.1.contains("roomd_event=\"cloud\""), "{}", exit.1);
    assert!(!config.control_socket().exists());
    sim.shutdown().await;
}

#[test]
fn a_malformed_code_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = roomd::config::Config::default();
    config.device.runtime_dir = Some(dir.path().join("run"));
    let path = write_config(dir.path(), &config);
    // No daemon runs: reaching the socket would be exit 69; 64 proves the code was checked first.
    let out = output(
        roomd_command()
            .args(["activate", "4353-4500-12"])
            .arg("--config")
            .arg(&path),
    );
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        text(&out.stderr).trim(),
        "roomd: activation code has 10 digits; it needs exactly 16 (separators `-` and spaces allowed)"
    );
    let out = output(
        roomd_command()
            .arg("factory-reset")
            .arg("--config")
            .arg(&path),
    );
    assert_eq!(out.status.code(), Some(64), "factory-reset needs --yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_status_and_factory_reset_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_activation_sim(dir.path(), "").await;
    let config = activation_config(&sim, dir.path());
    let path = write_config(dir.path(), &config);
    let mut systemd = FakeSystemd::bind(dir.path());
    let child = spawn_roomd_run(&path, &systemd);
    systemd.wait_for("READY=1").await;

    let run = |args: Vec<String>| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            output(roomd_command().args(args).arg("--config").arg(path))
        })
    };
    // A code the activation service does not know: sysexits' DATAERR, the reason on stderr.
    let out = run(vec!["activate".into(), "8888-8888-8888-8888".into()])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("does not know this activation code"),
        "{}",
        text(&out.stderr)
    );
    let out = run(vec!["activate".into(), GOOD_CODE.into()])
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("activated as device "));
    systemd.wait_for("STATUS=registered").await;
    let out = run(vec!["status".into()]).await.unwrap();
    let tree = text(&out.stdout);
    assert!(
        tree.contains("*s Webex Activation Status: \"Activated\"\n"),
        "{tree}"
    );
    assert!(
        tree.contains("*s Webex Activation LockDown: \"Locked\"\n"),
        "{tree}"
    );
    assert!(tree.contains("*s Webex Status: \"Registered\"\n"), "{tree}");
    assert!(
        tree.contains("*s Webex Registration Feature 1 Key: \"roomd-obtp\"\n"),
        "{tree}"
    );

    let out = run(vec!["activate".into(), GOOD_CODE.into()])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already activated and locked down"));

    let out = run(vec!["factory-reset".into(), "--yes".into()])
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("factory reset done"));
    assert!(sim.wdm_devices().is_empty());

    let status = sigterm_and_wait(child).await;
    assert!(status.0.success());
    // The daemon's own log never shows the code.
    assert!(!status.1.contains("12345678"), "{}", status.1);
    assert!(
        status
            .1
            .contains("process_additional_CAs: Parsed 1 additional CA certificate(s)")
    );
    sim.shutdown().await;
}

fn run_blocking(command: Command) -> impl std::future::Future<Output = Output> + Send + 'static {
    let mut command = command;
    async move {
        tokio::task::spawn_blocking(move || output(&mut command))
            .await
            .unwrap()
    }
}

fn roomd_with_config(args: &[&str], config: &std::path::Path) -> Command {
    let mut command = roomd_command();
    command.args(args).arg("--config").arg(config);
    command
}

/// The Meeting Server part of a configuration, with the simulator's CA, client certificate
/// and key (mutual TLS): everything `check` verifies is the simulator's real material.
fn meeting_server_with_client_cert(
    sim: &roomd_sim::SimHandle,
    dir: &std::path::Path,
) -> roomd::config::MeetingServerConfig {
    use std::os::unix::fs::PermissionsExt;
    let credentials = dir.join("cms.credentials");
    std::fs::write(&credentials, "roomd:roomd-secret\n").unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    roomd::config::MeetingServerConfig {
        base_url: sim.meeting_server_url(),
        credentials_file: credentials,
        ca_file: Some(sim.cms_ca_path().to_path_buf()),
        client_cert_file: Some(sim.cms_client_cert_path().to_path_buf()),
        client_key_file: Some(sim.cms_client_key_path().to_path_buf()),
        inactivity_timeout_secs: 60,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_verifies_key_pairs_chains_and_trust_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let mut config = config_for(&sim, dir.path());
    config.meeting_server = Some(meeting_server_with_client_cert(&sim, dir.path()));
    let path = write_config(dir.path(), &config);

    let out = run_blocking(roomd_with_config(&["check"], &path)).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", text(&out.stderr));
    for line in [
        format!(
            "  SUCCESS: trust bundle {} (meeting_server.ca_file): 1 certificate, earliest expiry ",
            sim.cms_ca_path().display()
        ),
        "  SUCCESS: Meeting Server client Key and certificate pair match\n".into(),
        "  SUCCESS: Meeting Server client full chain of certificates verifies correctly\n".into(),
    ] {
        assert!(report.contains(&line), "missing {line:?} in:\n{report}");
    }

    // Another key for the certificate, a CA bundle that did not sign it, and an expired CA.
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let expired_ca = dir.path().join("expired-ca.pem");
    std::fs::write(&expired_ca, expired_ca_pem()).unwrap();
    let meeting_server = config.meeting_server.as_mut().unwrap();
    meeting_server.client_key_file = Some(other_key.clone());
    meeting_server.ca_file = Some(sim.ca_path().to_path_buf());
    config.cloud.extra_ca_files.push(expired_ca.clone());
    let path = write_config(dir.path(), &config);

    let out = run_blocking(roomd_with_config(&["check"], &path)).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for line in [
        format!(
            "  FAIL: trust bundle {} (cloud.extra_ca_files): certificate 1 (\"Retired CA\") expired on 2020-01-01\n",
            expired_ca.display()
        ),
        format!(
            "  FAIL: Meeting Server client Key and certificate pair do not match: the first \
             certificate of {} is not for the key in {}\n",
            sim.cms_client_cert_path().display(),
            other_key.display()
        ),
        "  FAIL: Meeting Server client full chain of certificates does not verify: \
         \"roomd-sim meeting server client\" is not signed by a CA in the trust store \
         (cloud.extra_ca_files, meeting_server.ca_file, platform roots)\n"
            .into(),
    ] {
        assert!(report.contains(&line), "missing {line:?} in:\n{report}");
    }
    assert!(
        !report.contains("PRIVATE KEY") && !report.contains("roomd-secret"),
        "{report}"
    );
    sim.shutdown().await;
}

fn expired_ca_pem() -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, date_time_ymd};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Retired CA");
    params.not_before = date_time_ymd(2010, 1, 1);
    params.not_after = date_time_ymd(2020, 1, 1);
    params.self_signed(&key).unwrap().pem()
}

/// A `roomd run` child killed on drop (a failed test leaves no daemon behind).
struct Daemon(Option<std::process::Child>);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `roomd run` with neither RUST_LOG nor `--log-level` (unlike `spawn_roomd_run`), so
/// `log.level` decides its filter.
fn spawn_roomd_run_at_config_level(path: &std::path::Path, systemd: &FakeSystemd) -> Daemon {
    let child = roomd_command()
        .arg("run")
        .arg("--config")
        .arg(path)
        .env("NOTIFY_SOCKET", &systemd.path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("roomd starts");
    Daemon(Some(child))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_log_level_writes_the_drop_in_and_the_running_daemon_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path()).await;
    let config = config_for(&sim, dir.path());
    let path = write_config(dir.path(), &config);
    let drop_in = dir.path().join("etc/config.d/90-log-level.toml");
    let mut systemd = FakeSystemd::bind(dir.path());
    let mut daemon = spawn_roomd_run_at_config_level(&path, &systemd);
    systemd.wait_for("READY=1").await;

    // At the default level a control request is not logged.
    let out = run_blocking(roomd_with_config(&["status"], &path)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A directive, so only the control socket turns chatty.
    let filter = "info,roomd::api::control=debug";
    let out = run_blocking(roomd_with_config(&["set-log-level", filter], &path)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "wrote {}: [log] level = \"{filter}\"\nrunning roomd: log filter now `{filter}`\n",
            drop_in.display()
        )
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&drop_in).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o644);
    assert_eq!(
        roomd::config::load(&path, true).unwrap().config.log.level,
        filter
    );
    let out = run_blocking(roomd_with_config(&["status"], &path)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = run_blocking(roomd_with_config(&["set-log-level", "--reset"], &path)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "removed {}\nlog.level is now \"info\"\n\
             running roomd: log filter now `warn,roomd=info,roomd_sim=info`\n",
            drop_in.display()
        )
    );
    assert!(!drop_in.exists());
    let out = run_blocking(roomd_with_config(&["status"], &path)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let (exit, log) = sigterm_child_and_wait(daemon.0.take().unwrap()).await;
    assert!(exit.success(), "{log}");
    // Each command above returned after the daemon had answered (and logged), so the
    // order in the log is the order of the commands.
    let applied = log
        .find(&format!("log filter now `{filter}` (roomd set-log-level)"))
        .unwrap_or_else(|| panic!("no reload in:\n{log}"));
    let reset = log
        .find("log filter now `warn,roomd=info,roomd_sim=info` (roomd set-log-level)")
        .unwrap_or_else(|| panic!("no reset in:\n{log}"));
    let request_logged = |part: &str| part.matches("control request request=\"status\"").count();
    assert_eq!(request_logged(&log[..applied]), 0, "{log}");
    assert_eq!(request_logged(&log[applied..reset]), 1, "{log}");
    assert_eq!(request_logged(&log[reset..]), 0, "{log}");
    assert!(log.contains("roomd_event=\"control\""), "{log}");

    // With no daemon the drop-in still counts, for the next start.
    let out = run_blocking(roomd_with_config(&["set-log-level", "debug"], &path)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .ends_with("roomd is not running; the level applies when it next starts\n"),
        "{}",
        text(&out.stdout)
    );

    // RUST_LOG (set by spawn_roomd_run) keeps winning over log.level, live as at start.
    let child = spawn_roomd_run(&path, &systemd);
    systemd.wait_for("READY=1").await;
    let out = run_blocking(roomd_with_config(&["set-log-level", "trace"], &path)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with(
            "running roomd: log filter stays `warn,roomd=info,roomd_sim=info`: roomd was started \
             with RUST_LOG `info`, \
             which wins over log.level\n"
        ),
        "{}",
        text(&out.stdout)
    );
    let (exit, log) = sigterm_and_wait(child).await;
    assert!(exit.success(), "{log}");
    let out = run_blocking(roomd_with_config(&["set-log-level", "loud"], &path)).await;
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        text(&out.stderr).trim(),
        "roomd: `loud` is not a log level: use trace, debug, info, warn, error or off, \
         or directives such as `roomd::cloud=debug`"
    );
    sim.shutdown().await;
}

#[test]
fn logs_hands_the_unit_the_match_and_the_arguments_to_journalctl() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A stand-in journalctl that prints its arguments, one a line.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("journalctl");
    std::fs::write(&fake, "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = output(
        roomd_command()
            .args(["logs", "--event", "cloud", "-o", "json", "--since", "-1h"])
            .env("PATH", &path)
            .env("ROOMD_UNIT", "roomd-test.service"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "-u\nroomd-test.service\nROOMD_EVENT=cloud\n-o\njson\n--since\n-1h\n"
    );

    // A runner (qemu-user) is itself found through PATH, so only a native run can hide
    // journalctl this way.
    if std::env::var_os("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER").is_none() {
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let out = output(roomd_command().args(["logs", "-f"]).env("PATH", &empty));
        assert_eq!(out.status.code(), Some(69));
        assert!(
            text(&out.stderr).starts_with("roomd: journalctl is not installed: "),
            "{}",
            text(&out.stderr)
        );
    }
}
