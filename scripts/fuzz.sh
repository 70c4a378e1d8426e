#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for a fixed time each and
# prints one summary line per target. Exits non-zero if any target crashed,
# leaked, timed out or failed to build.
#
#   scripts/fuzz.sh [--time SECS] [--jobs N] [--seed] [--minimise] [TARGET...]
#
#   --time SECS   libFuzzer -max_total_time per target (default $ROOMD_FUZZ_TIME or 60)
#   --jobs N      targets fuzzed at once, one process each (default 1); the time per
#                 target is wall time, so N=2 halves a campaign on two cores
#   --seed        first record fresh seeds from the simulator's real wire output
#                 (sim/tests/it/fuzz_seeds.rs: HTTP bodies, event frames, STUN answers, CA
#                 files) into $ROOMD_CACHE_DIR/fuzz-seeds/<target>; every run reads them
#   --minimise    afterwards, merge the committed corpus and this run's finds into a
#                 minimal set (libFuzzer -set_cover_merge=1: the fewest inputs that keep
#                 every feature) and
#                 replace fuzz/corpus/<target> with it; review and commit the result
#
# With --minimise the recorded seeds are merged in too. libFuzzer writes what it finds to a scratch corpus under
# $ROOMD_CACHE_DIR/fuzz-corpus/<target> (kept between runs, so a campaign builds on
# the last one); the committed seeds in fuzz/corpus/<target> are read only.
# Crash inputs go to fuzz/artifacts/<target>/ (git-ignored); the full libFuzzer
# output of each target to $ROOMD_CACHE_DIR/fuzz-logs/<target>.log; the summary
# table to $ROOMD_CACHE_DIR/fuzz-logs/summary.md.
#
# The machine's one toolchain is stable, and cargo-fuzz needs -Zsanitizer: hence
# RUSTC_BOOTSTRAP=1 (the same compiler, its nightly flags unlocked).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${ROOMD_CACHE_DIR:-$HOME/.cache/roomd}"
time_per_target="${ROOMD_FUZZ_TIME:-60}"
minimise=0
seed=0
jobs=1
targets=()

die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 2; }
log() { printf 'fuzz: %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --time) time_per_target="${2:?--time needs seconds}"; shift 2 ;;
        --time=*) time_per_target="${1#--time=}"; shift ;;
        --minimise) minimise=1; shift ;;
        --seed) seed=1; shift ;;
        --jobs) jobs="${2:?--jobs needs a number}"; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) targets+=("$1"); shift ;;
    esac
done
[[ "$time_per_target" =~ ^[0-9]+$ ]] && [ "$time_per_target" -gt 0 ] ||
    die "--time must be a positive number of seconds, not '$time_per_target'"
[[ "$jobs" =~ ^[0-9]+$ ]] && [ "$jobs" -gt 0 ] || die "--jobs must be a positive number, not '$jobs'"

"$repo/scripts/deps.sh" fuzz

seeds="$cache/fuzz-seeds"
if [ "$seed" -eq 1 ]; then
    log "recording seeds from the simulator into $seeds"
    rm -rf "$seeds"
    mkdir -p "$seeds"
    # The recorder is a test of the simulator's test binary (sim/tests/it, module fuzz_seeds).
    (cd "$repo" && ROOMD_FUZZ_SEEDS_DIR="$seeds" cargo test -q -p roomd-sim --test it -- \
        --exact fuzz_seeds::write_fuzz_seeds) >&2 ||
        die "recording seeds failed"
    [ -n "$(ls -A "$seeds")" ] || die "recording seeds wrote nothing (did fuzz_seeds::write_fuzz_seeds run?)"
fi

cd "$repo/fuzz"
mapfile -t all_targets < <(cargo fuzz list)
[ "${#targets[@]}" -eq 0 ] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
    printf '%s\n' "${all_targets[@]}" | grep -qxF "$t" ||
        die "no fuzz target '$t' (have: ${all_targets[*]})"
done

export RUSTC_BOOTSTRAP=1
fuzz_target_dir="$cache/fuzz-target"
logs="$cache/fuzz-logs"
mkdir -p "$logs"

log "building (release, address sanitizer; log: $logs/build.log)"
# `cargo fuzz build` takes one target or none (all).
build_args=()
[ "${#targets[@]}" -eq 1 ] && build_args=("${targets[0]}")
cargo fuzz build -O --target-dir "$fuzz_target_dir" "${build_args[@]}" >"$logs/build.log" 2>&1 ||
    { tail -30 "$logs/build.log" >&2; die "build failed (log: $logs/build.log)"; }

summary="$logs/summary.md"
{
    printf '| target | seconds | runs | runs/s | coverage (edges) | features | corpus | result |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|---|\n'
} >"$summary"

# One target: fuzz it, append its summary row, exit non-zero on a finding.
fuzz_one() {
    local t="$1" scratch="$cache/fuzz-corpus/$1" artifacts="$repo/fuzz/artifacts/$1"
    local status=0 last runs secs cov ft corp rate kind result
    mkdir -p "$scratch" "$artifacts" "corpus/$t"
    local inputs=("$scratch" "corpus/$t")
    [ -d "$seeds/$t" ] && inputs+=("$seeds/$t")
    log "$t: ${time_per_target}s"
    cargo fuzz run -O --target-dir "$fuzz_target_dir" "$t" "${inputs[@]}" -- \
        -max_total_time="$time_per_target" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$logs/$t.log" 2>&1 || status=$?
    # The last status line: `#12345	DONE   cov: 812 ft: 2301 corp: 210/9Kb lim: ... exec/s: 4100 rss: 60Mb`
    last="$(grep -E '^#[0-9]+' "$logs/$t.log" | tail -1 || true)"
    runs="$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$logs/$t.log" | grep -oE '[0-9]+$' || echo '?')"
    secs="$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$logs/$t.log" | grep -oE 'in [0-9]+' | grep -oE '[0-9]+' || echo '?')"
    cov="$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo '?')"
    ft="$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo '?')"
    corp="$(grep -oE 'corp: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo '?')"
    rate='?'
    if [[ "$runs" =~ ^[0-9]+$ && "$secs" =~ ^[0-9]+$ && "$secs" -gt 0 ]]; then rate=$((runs / secs)); fi
    if [ "$status" -eq 0 ]; then
        result='ok, 0 crashes'
    else
        kind="$(grep -oE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer): [a-z-]+' "$logs/$t.log" | head -1 || true)"
        result="FAILED (exit $status${kind:+: $kind}); inputs in fuzz/artifacts/$t/"
    fi
    # One short append per target: atomic enough for concurrent jobs.
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$t" "$secs" "$runs" "$rate" "$cov" "$ft" "$corp" "$result" >>"$summary"
    log "$t: $result (runs $runs, cov $cov)"
    [ "$status" -eq 0 ]
}

failed=()
declare -A running=()
reap() {
    local pid t status=0
    wait -n -p pid || status=$?
    for t in "${!running[@]}"; do
        if [ "${running[$t]}" = "$pid" ]; then
            [ "$status" -eq 0 ] || failed+=("$t")
            unset 'running[$t]'
        fi
    done
}
for t in "${targets[@]}"; do
    while [ "${#running[@]}" -ge "$jobs" ]; do reap; done
    fuzz_one "$t" &
    running[$t]=$!
done
while [ "${#running[@]}" -gt 0 ]; do reap; done

if [ "$minimise" -eq 1 ]; then
    for t in "${targets[@]}"; do
        merged="$(mktemp -d)"
        log "$t: minimising corpus/$t + scratch finds + recorded seeds"
        from=("corpus/$t" "$cache/fuzz-corpus/$t")
        [ -d "$seeds/$t" ] && from+=("$seeds/$t")
        cargo fuzz run -O --target-dir "$fuzz_target_dir" "$t" "$merged" "${from[@]}" -- \
            -set_cover_merge=1 >"$logs/$t.merge.log" 2>&1 ||
            { rm -rf "$merged"; tail -20 "$logs/$t.merge.log" >&2; die "$t: merge failed"; }
        rm -rf "corpus/$t"
        mv "$merged" "corpus/$t"
        chmod 755 "corpus/$t"
        log "$t: corpus/$t now holds $(find "corpus/$t" -type f | wc -l) input(s)"
    done
fi

printf '\nfuzz: %s per target, %s\n\n' "${time_per_target}s" "$(date -u +%Y-%m-%dT%H:%MZ)"
cat "$summary"
if [ "${#failed[@]}" -gt 0 ]; then
    printf '\nfuzz: FAILED: %s\n' "${failed[*]}" >&2
    exit 1
fi
