//! Golden-file tests for configuration merging and board files.
//!
//! Each directory under `tests/golden/config/` holds an `etc/` tree (a `roomd.toml` and/or
//! `config.d/` drop-ins) and `expected.txt`: the merged configuration or the error, with
//! the case's path written as `$CASE`. Board cases under `tests/golden/board/` hold a
//! `board/custom.toml`. Run with `UPDATE_GOLDEN=1` to rewrite the expectations after a
//! deliberate change, then review the diff.

use std::path::{Path, PathBuf};

use roomd::config;
use roomd::hw::board::{Board, GpioRole};

fn golden_root(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(kind)
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_root(kind))
        .expect("golden directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no golden cases for {kind}");
    cases
}

/// Compares (or, with UPDATE_GOLDEN=1, rewrites) `case/expected.txt`; returns a mismatch.
fn compare(case: &Path, actual: String) -> Option<String> {
    let actual = actual.replace(&case.display().to_string(), "$CASE");
    let expected_path = case.join("expected.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
        return None;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
        panic!(
            "{} missing; run with UPDATE_GOLDEN=1",
            expected_path.display()
        )
    });
    (expected != actual).then(|| {
        format!(
            "case {}:\n--- expected\n{expected}\n--- actual\n{actual}",
            case.display()
        )
    })
}

#[test]
fn config_cases_match_golden_files() {
    let mut mismatches = Vec::new();
    for case in cases("config") {
        let main = case.join("etc/roomd.toml");
        let actual = match config::load(&main, false) {
            Ok(loaded) => {
                let files: Vec<String> = loaded
                    .files
                    .iter()
                    .map(|f| format!("  {}\n", f.display()))
                    .collect();
                format!(
                    "files:\n{}---\n{}",
                    files.concat(),
                    toml::to_string_pretty(&loaded.config).unwrap()
                )
            }
            Err(e) => format!("error: {e}\n"),
        };
        mismatches.extend(compare(&case, actual));
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn board_cases_match_golden_files() {
    let mut mismatches = Vec::new();
    for case in cases("board") {
        let actual = match Board::load(&case.join("board"), "custom") {
            Ok(board) => serde_json::to_string_pretty(&board).unwrap() + "\n",
            Err(e) => format!("error: {e}\n"),
        };
        mismatches.extend(compare(&case, actual));
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn an_explicit_config_path_must_exist() {
    let err = config::load(Path::new("/nonexistent/roomd.toml"), true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config file /nonexistent/roomd.toml does not exist"
    );
    // Without --config the defaults apply.
    let loaded = config::load(Path::new("/nonexistent/roomd.toml"), false).unwrap();
    assert!(loaded.files.is_empty());
    assert_eq!(loaded.config, config::Config::default());
}

#[test]
fn shipped_boards_are_complete() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
    for name in ["sim", "qemu-virt", "qemu-virt-media"] {
        let board = Board::load(&dir, name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(board.name, name);
        for role in GpioRole::ALL {
            assert!(board.line(role).is_some(), "{name}: {role} unmapped");
        }
    }
}

#[test]
fn board_names_cannot_leave_the_board_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
    let err = Board::load(&dir, "../etc/passwd").unwrap_err();
    assert_eq!(
        err.to_string(),
        "board name \"../etc/passwd\" is not valid (letters, digits, `-` and `_` only)"
    );
}
