#!/usr/bin/env bash
# The checks behind `make test` (and so CI). Runs every requested step even
# after one fails, prints one summary line, and exits non-zero if any failed.
#
#   scripts/test.sh [STEP...]    STEP: fmt clippy native cross system (default: all, in that order)
#
#   fmt      cargo fmt --all -- --check
#   clippy   cargo clippy --workspace --all-targets -- -D warnings
#   native   cargo test --workspace --no-fail-fast      (x86_64 host)
#   cross    cargo test --workspace --no-fail-fast --target aarch64-unknown-linux-gnu
#            (built against the arm64 sysroot, run under qemu-aarch64 by
#            scripts/qemu-runner.sh)
#   system   the booted aarch64 system test: scripts/system/image.sh (Debian arm64 kernel +
#            rootfs + gpio-sim, cached under ~/.cache/roomd/system), the release aarch64
#            roomd and roomd-sim, then tests/system_qemu under qemu-system-aarch64 (TCG)
#
# Expects scripts/deps.sh to have run (make does that). Honours CARGO, JOBS
# (default 2) and whatever CARGO_* variables the caller exports.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
# shellcheck source-path=SCRIPTDIR source=cross-env.sh
. scripts/cross-env.sh

CARGO="${CARGO:-cargo}"
JOBS="${JOBS:-2}"
CROSS_TARGET=aarch64-unknown-linux-gnu

steps=("$@")
[ "${#steps[@]}" -eq 0 ] && steps=(fmt clippy native cross system)

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
        native) run_step "test x86_64" "$CARGO" test --workspace --no-fail-fast -j "$JOBS" ;;
        cross) run_step "test aarch64 (qemu)" "$CARGO" test --workspace --no-fail-fast --target "$CROSS_TARGET" -j "$JOBS" ;;
        system) run_step "system test (qemu-system-aarch64)" system_test ;;
        *)
            echo "test.sh: unknown step '$step' (fmt clippy native cross system)" >&2
            exit 2
            ;;
    esac
done

summary_line="$(IFS=';'; printf '%s' "${summary[*]}" | sed 's/;/, /g')"
printf '\nmake test summary: %s; total %ss\n' "$summary_line" "$((SECONDS - t_start))"
exit "$failed"
