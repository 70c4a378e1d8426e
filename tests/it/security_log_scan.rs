//! The test run's secret scan (`docs/security.md`): the scanner itself, fed secrets planted
//! through the same paths the run's logs take, and (ignored in the normal pass, run by
//! `scripts/test.sh security`) the scan of the whole native test run.

use crate::support;

use std::ffi::OsString;
use std::path::Path;

use roomd_sim::test_run::{LOG_DIR_ENV, activation_code_forms, log_dir};
use support::log_scan::{ScanReport, scan};
use support::test_run::{self, LineSink};
use support::{CapturedEvent, LogCapture};
use tracing_subscriber::layer::SubscriberExt as _;

/// A token shaped like the simulator's (43 base64url characters).
const PLANTED_TOKEN: &str = "pLaNtEd_tOkEn-0123456789abcdefghijklmnopqrs";
const PLANTED_CODE: &str = "9876-5432-1098-7654";

fn scan_ok(dir: &Path) -> ScanReport {
    scan(dir).expect("the scan reads its directory")
}

#[test]
fn a_secret_planted_in_an_in_process_log_is_found_by_file_and_line_and_never_printed() {
    let run = tempfile::tempdir().unwrap();
    test_run::record_secret_in(run.path(), "bearer-token", PLANTED_TOKEN);
    for form in activation_code_forms(PLANTED_CODE) {
        test_run::record_secret_in(run.path(), "activation-code", &form);
    }
    // The in-process capture as the run installs it, writing to this test's own directory.
    let log = run.path().join("logs").join("in-process-planted.log");
    let capture = LogCapture {
        sink: Some(LineSink::create(&log)),
        ..LogCapture::default()
    };
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("an innocent line");
        let span = tracing::info_span!("request", url = "https://localhost/x");
        let _entered = span.enter();
        tracing::warn!(token = PLANTED_TOKEN, "a careless line");
        // Inside a longer number a code is a coincidence, not a leak.
        tracing::info!("ssrc=19876543210987654 bytes=98765432109876543");
        tracing::info!("code 5432 1098 7654 typed with spaces");
    });
    let events: Vec<CapturedEvent> = capture.events();
    assert_eq!(events.len(), 4, "{events:?}");

    let report = scan_ok(run.path());
    assert_eq!(report.log_files, vec![log.clone()]);
    assert_eq!(report.lines, 5, "four events and one span");
    assert_eq!(report.secrets("bearer-token"), 1);
    assert_eq!(report.secrets("activation-code"), 5);
    let found: Vec<(u64, Vec<String>)> = report
        .findings
        .iter()
        .map(|f| (f.line, f.kinds.clone()))
        .collect();
    assert_eq!(
        found,
        vec![
            (3, vec!["bearer-token".to_owned()]),
            (5, vec!["activation-code".to_owned()]),
        ],
        "{report}"
    );
    assert!(
        report.findings[0].redacted.contains("token=<bearer-token>"),
        "{report}"
    );
    let shown = report.to_string();
    assert!(shown.contains(&format!("LEAK {}:3: bearer-token", log.display())));
    assert!(shown.ends_with("2 lines with secrets"), "{shown}");
    for secret in [PLANTED_TOKEN, "1098 7654", "9876543210987654"] {
        assert!(!shown.contains(secret), "the report repeats a secret");
    }
}

#[test]
fn a_secret_printed_by_a_spawned_program_is_found_in_its_copied_output() {
    let run = tempfile::tempdir().unwrap();
    test_run::record_secret_in(run.path(), "xapi-password", "spawned-secret-pw");
    let script: [OsString; 2] = [
        "-c".into(),
        "echo starting; echo \"password is $0\" >&2".into(),
    ];
    let mut args = script.to_vec();
    args.push("spawned-secret-pw".into());
    let output = test_run::tee_command(run.path(), Path::new("/bin/sh"), &args)
        .output()
        .expect("the wrapped program runs");
    assert!(output.status.success());
    // The test still reads what the program wrote.
    assert_eq!(String::from_utf8_lossy(&output.stdout), "starting\n");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "password is spawned-secret-pw\n"
    );

    let report = scan_ok(run.path());
    assert_eq!(report.log_files.len(), 1, "the stderr copy");
    assert_eq!(report.findings.len(), 1, "{report}");
    let finding = &report.findings[0];
    assert!(
        finding.file.to_string_lossy().ends_with(".stderr.log"),
        "{report}"
    );
    assert_eq!(
        (finding.line, finding.redacted.as_str()),
        (1, "password is <xapi-password>")
    );
}

#[test]
fn a_clean_directory_scans_clean_and_counts_what_it_read() {
    let run = tempfile::tempdir().unwrap();
    test_run::record_secret_in(run.path(), "bearer-token", PLANTED_TOKEN);
    let sink = LineSink::create(&run.path().join("logs").join("clean.log"));
    sink.line("one\ntwo (one event, one line)");
    sink.line("three");
    let report = scan_ok(run.path());
    assert_eq!((report.log_files.len(), report.lines), (1, 2));
    assert!(report.findings.is_empty(), "{report}");
}

/// What the whole native pass must have left for the scan to mean something: logs of the
/// in-process daemons and simulators, of spawned `roomd` and `roomd-sim` binaries, and every
/// kind of secret the simulator and the tests use.
fn assert_the_run_was_seen(report: &ScanReport) {
    let expectations = [
        (
            "in-process log of roomd's test binary tests/it",
            report.files_starting_with("in-process-it-"),
            1,
        ),
        (
            "in-process log of roomd's test binary tests/media_teardown.rs",
            report.files_starting_with("in-process-media_teardown-"),
            1,
        ),
        (
            "the simulator's own tests' logs",
            report.files_starting_with("in-process-sim-"),
            1,
        ),
        (
            "stderr of spawned roomd binaries (tests/it/cli.rs and others)",
            report.files_starting_with("spawned-roomd-it-"),
            10,
        ),
        (
            "the roomd-sim binary's log",
            report.files_starting_with("binary-roomd-sim-"),
            1,
        ),
        (
            "access/refresh tokens the simulator issued",
            report.secrets("bearer-token"),
            50,
        ),
        ("activation codes", report.secrets("activation-code"), 5),
        (
            "Meeting Server tokens",
            report.secrets("meeting-server-token"),
            1,
        ),
        (
            "Meeting Server API passwords",
            report.secrets("meeting-server-password"),
            1,
        ),
        ("xAPI passwords", report.secrets("xapi-password"), 2),
    ];
    let missing: Vec<String> = expectations
        .iter()
        .filter(|(_, seen, at_least)| seen < at_least)
        .map(|(what, seen, at_least)| format!("{what}: {seen}, expected at least {at_least}"))
        .collect();
    assert!(
        missing.is_empty(),
        "the scan did not see the native test run (did `scripts/test.sh native` run with the same {}?):\n{}",
        LOG_DIR_ENV,
        missing.join("\n")
    );
    assert!(report.lines >= 20_000, "only {} log lines", report.lines);
}

#[test]
#[ignore = "scans the whole native run; `scripts/test.sh security` runs it"]
fn no_secret_in_any_log_of_the_test_run() {
    let Some(dir) = log_dir() else {
        panic!(
            "{} is not set: run `scripts/test.sh native security`, which collects the native pass's logs and scans them",
            LOG_DIR_ENV
        );
    };
    let report = scan_ok(&dir);
    println!("{report}");
    assert!(report.findings.is_empty(), "secrets in the logs:\n{report}");
    assert_the_run_was_seen(&report);
}
