//! The `roomd` binary as a technician uses it: help, `check`, `status`, `run` under a fake
//! systemd, SIGTERM, and exit codes for configuration errors.

mod support;

use std::io::Read;
use std::process::{Command, Output};
use std::time::Duration;

use support::*;

fn output(command: &mut Command) -> Output {
    command.output().expect("roomd runs")
}

/// Sends SIGTERM and waits (bounded) for the exit; returns the status and all of stderr.
async fn sigterm_and_wait(child: RunningRoomd) -> (std::process::ExitStatus, String) {
    let mut child = child.take();
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
    for word in ["run", "status", "check", "--config", "--log-level"] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    for (sub, word) in [
        ("run", "SIGTERM"),
        ("status", "xStatus"),
        ("check", "OK/FAIL"),
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
async fn check_prints_grouped_ok_and_fail_lines() {
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
        "  OK   board \"sim\"",
        "Media\n",
        "  OK   camera: videotestsrc\n",
        "  OK   video encoder: x264enc\n",
        "Connectivity\n",
        "  OK   trust store: platform roots + 1 additional CA(s)\n",
        &format!("  OK   GDS {}/health: online (Healthy)", sim.gds_url()),
    ] {
        assert!(report.contains(line), "missing {line:?} in:\n{report}");
    }
    assert!(report.ends_with("FAIL\n"), "{report}");

    sim.set_gds_state("offline");
    let out = run_check(path.clone()).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!(
            "  FAIL GDS {}/health: serviceState=offline",
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
