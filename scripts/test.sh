#!/usr/bin/env bash
# The checks behind `make test` (and so CI). Runs every requested step even
# after one fails, prints one summary line, and exits non-zero if any failed.
#
#   scripts/test.sh [STEP...]    STEP: fmt clippy native security cross system (default: all, in that order)
#
#   fmt      cargo fmt --all -- --check
#   clippy   cargo clippy --workspace --all-targets -- -D warnings
#   native   cargo test --workspace --no-fail-fast      (x86_64 host); with `security` in the
#            same run, every log of the pass is collected under ROOMD_TEST_LOG_DIR (below)
#   security the secret scan: every secret the native pass used or issued (recorded under
#            ROOMD_TEST_LOG_DIR/secrets) looked for in every log it wrote (ROOMD_TEST_LOG_DIR/logs),
#            findings named by file and line, never printed (the ignored test
#            security_log_scan::no_secret_in_any_log_of_the_test_run of tests/it); then
#            scripts/deny.sh (cargo deny check: advisories, licenses, bans, sources). docs/security.md
#   cross    cargo test --workspace --no-fail-fast --target aarch64-unknown-linux-gnu
#            (built against the arm64 sysroot, run under qemu-aarch64 by
#            scripts/qemu-runner.sh)
#   system   the booted aarch64 system test: scripts/system/image.sh (Debian arm64 kernel +
#            rootfs + gpio-sim, cached under ~/.cache/roomd/system), the release aarch64
#            roomd and roomd-sim, then tests/system_qemu under qemu-system-aarch64 (TCG)
#
# Expects scripts/deps.sh to have run (make does that). Honours CARGO, JOBS
# (default 2) and whatever CARGO_* variables the caller exports. ROOMD_TEST_LOG_DIR: the
# security step scans that directory instead of a fresh one (kept afterwards); without it, a
# fresh directory under TMPDIR is used and removed when the scan passed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
# shellcheck source-path=SCRIPTDIR source=cross-env.sh
. scripts/cross-env.sh

CARGO="${CARGO:-cargo}"
JOBS="${JOBS:-2}"
CROSS_TARGET=aarch64-unknown-linux-gnu

steps=("$@")
[ "${#steps[@]}" -eq 0 ] && steps=(fmt clippy native security cross system)

# The native pass's logs and secrets, for the security step's scan (docs/security.md).
log_dir="${ROOMD_TEST_LOG_DIR:-}"
log_dir_is_ours=0
native_ran=0
scan_passed=0
if [[ " ${steps[*]} " == *" security "* ]] && [ -z "$log_dir" ]; then
    log_dir="$(mktemp -d "${TMPDIR:-/tmp}/roomd-test-logs.XXXXXX")" || exit 2
    log_dir_is_ours=1
fi

# shellcheck disable=SC2317  # called through run_step
native_tests() {
    native_ran=1
    if [ -n "$log_dir" ]; then
        ROOMD_TEST_LOG_DIR="$log_dir" "$CARGO" test --workspace --no-fail-fast -j "$JOBS"
    else
        "$CARGO" test --workspace --no-fail-fast -j "$JOBS"
    fi
}

# shellcheck disable=SC2317  # called through run_step
secret_scan() {
    if [ "$native_ran" -eq 0 ] && [ "$log_dir_is_ours" -eq 1 ]; then
        echo "security: nothing to scan: the secret scan reads the native pass's logs; run \`scripts/test.sh native security\`" \
            "(or set ROOMD_TEST_LOG_DIR to the directory of an earlier native pass)" >&2
        return 1
    fi
    echo "security: scanning $log_dir"
    # The scan is an ignored test of tests/it (module security_log_scan). An --exact name that
    # matches nothing would pass with 0 tests run, so the run must show the one test passing.
    local out rc
    out="$(mktemp "${TMPDIR:-/tmp}/roomd-secret-scan.XXXXXX")" || return
    ROOMD_TEST_LOG_DIR="$log_dir" "$CARGO" test --test it -j "$JOBS" -- \
        --ignored --exact security_log_scan::no_secret_in_any_log_of_the_test_run --nocapture |
        tee "$out"
    rc=$?
    if [ "$rc" -eq 0 ] && ! grep -q '^test result: ok\. 1 passed' "$out"; then
        echo "security: the secret scan test did not run (renamed or moved?)" >&2
        rc=1
    fi
    rm -f "$out"
    [ "$rc" -eq 0 ] || return "$rc"
    scan_passed=1
}

# shellcheck disable=SC2317  # called through run_step
system_test() {
    local image binaries
    image="$(scripts/system/image.sh)" || return
    "$CARGO" build --release --target "$CROSS_TARGET" -p roomd -p roomd-sim --bins -j "$JOBS" || return
    binaries="${CARGO_TARGET_DIR:-target}/$CROSS_TARGET/release"
    ROOMD_SYSTEM_IMAGE="$image" ROOMD_SYSTEM_BINARIES="$(cd "$binaries" && pwd)" \
        "$CARGO" test --test system_qemu -j "$JOBS" -- --nocapture
}

summary=()
failed=0
t_start=$SECONDS

run_step() {
    local label="$1"
    shift
    printf '\n==> %s: %s\n' "$label" "$*"
    local t0=$SECONDS rc=0
    "$@" || rc=$?
    local dt=$((SECONDS - t0))
    if [ "$rc" -eq 0 ]; then
        summary+=("$label ok (${dt}s)")
    else
        summary+=("$label FAILED (exit $rc, ${dt}s)")
        failed=1
    fi
}

for step in "${steps[@]}"; do
    case "$step" in
        fmt) run_step "fmt" "$CARGO" fmt --all -- --check ;;
        clippy) run_step "clippy" "$CARGO" clippy --workspace --all-targets -j "$JOBS" -- -D warnings ;;
        native) run_step "test x86_64" native_tests ;;
        security)
            run_step "security: secret scan" secret_scan
            run_step "security: cargo deny" scripts/deny.sh
            ;;
        cross) run_step "test aarch64 (qemu)" "$CARGO" test --workspace --no-fail-fast --target "$CROSS_TARGET" -j "$JOBS" ;;
        system) run_step "system test (qemu-system-aarch64)" system_test ;;
        *)
            echo "test.sh: unknown step '$step' (fmt clippy native security cross system)" >&2
            exit 2
            ;;
    esac
done

if [ "$log_dir_is_ours" -eq 1 ]; then
    if [ "$scan_passed" -eq 1 ]; then
        rm -rf "$log_dir"
    else
        printf '\nlogs and secrets of this run kept in %s (they hold the test run'"'"'s own secrets)\n' "$log_dir"
    fi
fi

summary_line="$(IFS=';'; printf '%s' "${summary[*]}" | sed 's/;/, /g')"
printf '\nmake test summary: %s; total %ss\n' "$summary_line" "$((SECONDS - t_start))"
exit "$failed"
