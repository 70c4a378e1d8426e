//! The systemd files agree with what the daemon does (notify type, exit codes, directories).

use std::collections::HashMap;

fn unit() -> HashMap<String, Vec<String>> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/roomd.service"
    ))
    .unwrap();
    let mut keys: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') || line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').expect("key=value");
        keys.entry(key.into()).or_default().push(value.into());
    }
    keys
}

fn one(unit: &HashMap<String, Vec<String>>, key: &str) -> String {
    let values = unit.get(key).unwrap_or_else(|| panic!("{key} missing"));
    values.last().unwrap().clone()
}

#[test]
fn unit_matches_the_daemon() {
    let unit = unit();
    assert_eq!(one(&unit, "Type"), "notify");
    assert_eq!(one(&unit, "ExecStart"), "/usr/bin/roomd run");
    assert!(one(&unit, "WatchdogSec").ends_with('s'));
    // main.rs exits 78 (EX_CONFIG) on configuration errors.
    assert_eq!(one(&unit, "RestartPreventExitStatus"), "78");
    // The daemon's default directories are the ones systemd creates.
    assert_eq!(
        format!("/run/{}", one(&unit, "RuntimeDirectory")),
        roomd::config::DEFAULT_RUNTIME_DIR
    );
    assert_eq!(
        format!("/var/lib/{}", one(&unit, "StateDirectory")),
        roomd::config::DEFAULT_STATE_DIR
    );
    assert_eq!(one(&unit, "StateDirectoryMode"), "0700");
    // Every task stops within 5 s; systemd must wait longer than that.
    let stop: u64 = one(&unit, "TimeoutStopSec")
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(stop > roomd::daemon::SHUTDOWN_DEADLINE.as_secs());
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("DevicePolicy", "closed"),
        ("NoNewPrivileges", "yes"),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert!(
            unit.get(key).is_some_and(|v| v.iter().any(|x| x == value)),
            "{key}={value} missing"
        );
    }
    assert!(
        unit["DeviceAllow"]
            .iter()
            .any(|v| v.starts_with("char-gpiochip"))
    );
    // GStreamer 1.22.0's V4L2 elements leak the camera's descriptor at every call's end
    // unless they drain (media::elements::V4L2_LEAKING_VERSIONS).
    assert!(
        unit["Environment"]
            .iter()
            .any(|v| *v == format!("{}=1", roomd::media::elements::V4L2_FORCE_DRAIN)),
        "{:?}",
        unit.get("Environment")
    );
}

#[test]
fn sysusers_and_tmpfiles_create_the_roomd_user_and_dirs() {
    let sysusers = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/roomd.sysusers"
    ))
    .unwrap();
    assert!(sysusers.lines().any(|l| l.starts_with("u roomd ")));
    let tmpfiles = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/roomd.tmpfiles"
    ))
    .unwrap();
    assert!(tmpfiles.contains("d /var/lib/roomd        0700 roomd roomd"));
    assert!(tmpfiles.contains("d /etc/roomd/config.d"));
}
