#!/usr/bin/env bash
# Runs every benchmark (SRP and the media engine also for aarch64 under qemu-user) and writes
# docs/benchmarks.md: each bench's figures as ratios against the baselines it measured in the
# same run, the machine and its load, and how to reproduce. `make bench` runs it.
#
#   scripts/bench.sh [--no-cross] [--output FILE] [--settle SECS] [BENCH...]
#
#   BENCH          srp events calendar xapi locus reachability media (default: all)
#   --no-cross     skip the aarch64 runs under qemu (srp, media)
#   --output FILE  where the report goes (default docs/benchmarks.md); a partial run still
#                  writes it, listing what was skipped
#   --settle SECS  before each bench, wait up to SECS (default $ROOMD_BENCH_SETTLE or 60;
#                  0: never) for other work at nice 0 (a compile) to drop below a quarter of
#                  the machine: it preempts the timed operations, which niced work (nice 19
#                  fuzzing) hardly does
#
# Each bench binary prints tab-separated `BENCH` records when ROOMD_BENCH_RECORDS=1
# (testkit/src/figures.rs); the report is built from those, not from the free text.
# Full output of every build and run: $ROOMD_CACHE_DIR/bench-logs/<bench>[-aarch64].log.
# Exits non-zero if a build or a bench failed (the report is written either way).
#
# Expects scripts/deps.sh to have run (make does that). Honours CARGO, JOBS (default 2)
# and CARGO_TARGET_DIR (default: the Makefile's choice).

# shellcheck disable=SC2016 # the report's backticks are markdown, not command substitutions
set -euo pipefail

invoked_from="$(pwd)"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

CARGO="${CARGO:-cargo}"
JOBS="${JOBS:-2}"
CROSS_TARGET=aarch64-unknown-linux-gnu
cache="${ROOMD_CACHE_DIR:-$HOME/.cache/roomd}"
logs="$cache/bench-logs"
# The same default as the Makefile: a real ./target is used as is, else the shared dir.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
    if [ -d target ] && [ ! -L target ]; then
        CARGO_TARGET_DIR="$repo/target"
    else
        CARGO_TARGET_DIR="$cache/target"
    fi
fi
export CARGO_TARGET_DIR

all_benches=(srp events calendar xapi locus reachability media)
cross_benches=(srp media) # also run for aarch64 under qemu-user

die() { printf 'bench: error: %s\n' "$*" >&2; exit 2; }
log() { printf 'bench: %s\n' "$*" >&2; }

output="docs/benchmarks.md"
cross=1
settle_secs="${ROOMD_BENCH_SETTLE:-60}"
selected=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-cross) cross=0; shift ;;
        --output) output="${2:?--output needs a file}"; shift 2 ;;
        --output=*) output="${1#--output=}"; shift ;;
        --settle) settle_secs="${2:?--settle needs seconds}"; shift 2 ;;
        --settle=*) settle_secs="${1#--settle=}"; shift ;;
        -h | --help) sed -n '2,/^$/p' "$0" | sed '/^$/d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1" ;;
        *)
            printf '%s\n' "${all_benches[@]}" | grep -qxF "$1" ||
                die "no bench '$1' (have: ${all_benches[*]})"
            selected+=("$1")
            shift
            ;;
    esac
done
[ "${#selected[@]}" -eq 0 ] && selected=("${all_benches[@]}")
[[ "$settle_secs" =~ ^[0-9]+$ ]] || die "--settle must be a number of seconds, not '$settle_secs'"
case "$output" in
    /*) ;;
    *) output="$invoked_from/$output" ;;
esac

# shellcheck source-path=SCRIPTDIR source=cross-env.sh
. scripts/cross-env.sh

is_selected() { printf '%s\n' "${selected[@]}" | grep -qxF "$1"; }
is_cross() { printf '%s\n' "${cross_benches[@]}" | grep -qxF "$1"; }

# Runs as "<bench> <native|aarch64>", in the order they execute; the rest of the full set
# is skipped.
runs=()
skipped=()
for arch in native aarch64; do
    for b in "${all_benches[@]}"; do
        [ "$arch" = native ] || is_cross "$b" || continue
        if is_selected "$b" && { [ "$arch" = native ] || [ "$cross" -eq 1 ]; }; then
            runs+=("$b $arch")
        else
            skipped+=("$b $arch")
        fi
    done
done

arch_title() {
    if [ "$1" = native ]; then printf '%s, native' "$(uname -m)"; else printf 'aarch64 under qemu-user'; fi
}
log_file() { if [ "$2" = native ]; then echo "$logs/$1.log"; else echo "$logs/$1-aarch64.log"; fi; }
target_args() { [ "$1" = native ] || printf -- '--target\n%s\n' "$CROSS_TARGET"; }
bench_command() {
    local cmd="cargo bench --bench $1"
    [ "$2" = native ] || cmd+=" --target $CROSS_TARGET"
    printf '%s' "$cmd"
}
tilde() { printf '%s' "${1/#"$HOME"/\~}"; }

# /proc/stat's cpu line: user nice system idle iowait irq softirq steal (jiffies).
cpu_sample() { awk '/^cpu /{print $2, $3, $4, $5, $6, $7, $8, $9; exit}' /proc/stat; }
hz="$(getconf CLK_TCK 2>/dev/null || echo 100)"
# How the machine's CPU time went between two samples, in shares of all cores: the bench
# (CPU seconds $3, from `times`), other work at nice 0 (a compile), niced work (processes at
# nice > 0: the fuzzing), idle. Without $3, only busy and niced.
cpu_share() {
    awk -v a="$1" -v b="$2" -v own="${3:-}" -v hz="$hz" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        for (i = 1; i <= 8; i++) { d[i] = y[i] - x[i]; total += d[i] }
        if (total <= 0) { print "?"; exit }
        idle = d[4] + d[5]; niced = d[2]; busy = total - idle
        if (own == "") {
            printf "busy %.0f%%, niced %.0f%%", 100 * busy / total, 100 * niced / total
            exit
        }
        mine = own * hz; other = busy - niced - mine; if (other < 0) other = 0
        printf "bench %.0f%%, other work at nice 0 %.0f%%, niced %.0f%%, idle %.0f%%",
            100 * mine / total, 100 * other / total, 100 * niced / total, 100 * idle / total
    }'
}
# Share (%) of the machine that work at nice 0 other than ours took over the next 3 s
# (this script is idle meanwhile).
other_nice0_share() {
    local a b
    a="$(cpu_sample)"
    sleep 3
    b="$(cpu_sample)"
    awk -v a="$a" -v b="$b" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        for (i = 1; i <= 8; i++) { d[i] = y[i] - x[i]; total += d[i] }
        printf "%.0f", (total > 0 ? 100 * (total - d[4] - d[5] - d[2]) / total : 0)
    }'
}

# Waits up to settle_secs for other nice-0 work under 25% of the machine; sets settled to
# what happened, for the report, and adds the wait to settle_total[$1].
settle() {
    local arch="$1" waited=0 share
    settled=""
    [ "$settle_secs" -gt 0 ] || return 0
    while share="$(other_nice0_share)" && [ "$share" -ge 25 ]; do
        if [ "$waited" -ge "$settle_secs" ]; then
            settled="other work at nice 0 still took ${share}% of the machine after ${waited} s of waiting"
            log "$settled; running anyway"
            settle_total[$arch]=$((settle_total[$arch] + waited))
            return 0
        fi
        [ "$waited" -gt 0 ] ||
            log "other work at nice 0 takes ${share}% of the machine; waiting up to ${settle_secs} s"
        sleep 2
        waited=$((waited + 5))
    done
    settle_total[$arch]=$((settle_total[$arch] + waited))
    [ "$waited" -eq 0 ] || settled="waited ${waited} s for other work at nice 0 to drop to ${share}% of the machine"
}

# Sets children_cpu_seconds: user + system CPU of this shell's finished children (and
# theirs). `times` must run in this shell: a subshell has its own, empty, account.
children_cpu() {
    times >"$logs/.times"
    children_cpu_seconds="$(awk 'function s(t, p) { split(t, p, "m"); return p[1] * 60 + p[2] }
        NR == 2 { printf "%.2f", s($1) + s($2) }' "$logs/.times")"
}
load1() { cut -d' ' -f1 /proc/loadavg; }
# Seconds since an $EPOCHREALTIME reading: one decimal below 100 s.
seconds_since() {
    awk -v t0="$1" -v t1="$EPOCHREALTIME" 'BEGIN { d = t1 - t0; printf (d < 100 ? "%.1f" : "%.0f"), d }'
}
# Processes using at least 20% of a core over their lifetime, with their nice value.
busy_processes() {
    ps -eo pid=,ni=,pcpu=,comm= --sort=-pcpu |
        awk -v self=$$ '$1 != self && $3 >= 20 {
            printf "%s%s (nice %s, %s%% of a core)", sep, $4, $2, $3; sep = ", "
        } END { if (!sep) printf "none" }'
}

mkdir -p "$logs"
started_at="$(date -u '+%Y-%m-%d %H:%M UTC')"
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
busy_start="$(busy_processes)"
cpu_start="$(cpu_sample)"
t_start=$SECONDS

declare -A run_secs=() run_rc=() run_load=() run_cpu=() run_settled=() build_secs=() build_rc=()
failed=0

# Builds every selected bench of one architecture in one cargo call (so its time is apart
# from the runs' and both cores compile).
build() {
    local arch="$1" b build_log
    local -a args=()
    for run in "${runs[@]}"; do
        [ "${run#* }" = "$arch" ] && args+=(--bench "${run% *}")
    done
    [ "${#args[@]}" -gt 0 ] || return 0
    build_log="$logs/build-$arch.log"
    log "building $(arch_title "$arch"): ${args[*]} (log: $(tilde "$build_log"))"
    mapfile -t target < <(target_args "$arch")
    local t0=$SECONDS rc=0
    "$CARGO" bench --no-run -j "$JOBS" "${target[@]}" "${args[@]}" >"$build_log" 2>&1 || rc=$?
    build_secs[$arch]=$((SECONDS - t0))
    build_rc[$arch]=$rc
    if [ "$rc" -ne 0 ]; then
        tail -30 "$build_log" >&2
        log "build for $(arch_title "$arch") failed (exit $rc)"
        failed=1
    fi
}

# The bench's own text goes to the terminal; records and cargo's lines go to the log only.
show() { grep --line-buffered -v $'^BENCH\t' || true; }

run_one() {
    local b="$1" arch="$2" bench_log rc=0 t0 before cpu0
    bench_log="$(log_file "$b" "$arch")"
    if [ "${build_rc[$arch]:-0}" -ne 0 ]; then
        run_rc["$b $arch"]=build
        return
    fi
    mapfile -t target < <(target_args "$arch")
    settle "$arch"
    run_settled["$b $arch"]="$settled"
    log "$b, $(arch_title "$arch"): $(bench_command "$b" "$arch")"
    run_load["$b $arch"]="$(load1)"
    before="$(cpu_sample)"
    children_cpu
    cpu0=$children_cpu_seconds
    t0=$EPOCHREALTIME
    ROOMD_BENCH_RECORDS=1 "$CARGO" bench -j "$JOBS" "${target[@]}" --bench "$b" 2>&1 |
        tee "$bench_log" | show || rc=$?
    run_secs["$b $arch"]="$(seconds_since "$t0")"
    children_cpu
    run_cpu["$b $arch"]="$(cpu_share "$before" "$(cpu_sample)" \
        "$(awk -v a="$cpu0" -v b="$children_cpu_seconds" 'BEGIN { printf "%.2f", b - a }')")"
    run_rc["$b $arch"]=$rc
    if [ "$rc" -ne 0 ]; then
        log "$b, $(arch_title "$arch"): FAILED (exit $rc; log: $(tilde "$bench_log"))"
        failed=1
    fi
}

declare -A part_secs=([native]=0 [aarch64]=0) settle_total=([native]=0 [aarch64]=0)
for arch in native aarch64; do
    t_part=$SECONDS
    build "$arch"
    for run in "${runs[@]}"; do
        [ "${run#* }" = "$arch" ] && run_one "${run% *}" "$arch"
    done
    part_secs[$arch]=$((SECONDS - t_part))
done
total_secs=$((SECONDS - t_start))
finished_at="$(date -u '+%Y-%m-%d %H:%M UTC')"
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
cpu_whole="$(cpu_share "$cpu_start" "$(cpu_sample)")"

# ---- the report ----

mins() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }
cell() { sed 's/|/\\|/g'; }

records() { grep -a $'^BENCH\t'"$2" "$1" 2>/dev/null | cut -f3- || true; }

# One markdown row per figure record.
figure_rows() {
    records "$1" figure | cell | awk -F'\t' '{
        value = $2 " " $3
        if ($4 == "") { base = "—"; ratio = "—" }
        else { base = $4 ": " $5 " " $3; ratio = ($6 == "") ? "—" : "**" $6 "×**" }
        target = ($7 == "") ? "—" : $7
        met = ($8 == "met") ? "yes" : ($8 == "missed") ? "**no**" : "—"
        printf "| %s | %s | %s | %s | %s | %s |\n", $1, value, base, ratio, target, met
    }'
}

# "label: ratio×" for the summary: the first figure with a target, else the first with a
# ratio, else the first.
headline() {
    records "$1" figure | cell | awk -F'\t' '
        function show() { return ($6 != "") ? sprintf("%s: %s×", $1, $6) : sprintf("%s: %s %s", $1, $2, $3) }
        NR == 1 { first = show() }
        $7 != "" && !targeted { targeted = show() }
        $6 != "" && !ratio { ratio = show() }
        END { printf "%s", targeted ? targeted : ratio ? ratio : first }'
}

targets_met() {
    records "$1" figure | awk -F'\t' '$8 != "" { n++; if ($8 == "met") m++ }
        END { if (n) printf "%d of %d", m, n; else printf "none set" }'
}

run_status() {
    case "${run_rc[$1]}" in
        0) printf 'ok' ;;
        build) printf '**not run: build failed**' ;;
        *) printf '**FAILED (exit %s)**' "${run_rc[$1]}" ;;
    esac
}

machine() {
    local cpu mem kernel gst_host gst_arm64 x264 qemu commit dirty
    cpu="$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
    mem="$(awk '/^MemTotal/{printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    kernel="$(uname -sr) $(uname -m)"
    [ -r /etc/debian_version ] && kernel+=", Debian $(cat /etc/debian_version)"
    qemu="$(qemu-aarch64 --version 2>/dev/null | head -1 || true)"
    gst_host="$(pkg-config --modversion gstreamer-1.0 2>/dev/null || echo '?')"
    gst_arm64="$(awk -F': ' '/^Version:/{print $2}' \
        "$ROOMD_SYSROOT/usr/lib/aarch64-linux-gnu/pkgconfig/gstreamer-1.0.pc" 2>/dev/null || true)"
    x264="$(dpkg-query -W -f='${Package} ${Version}\n' 'libx264-[0-9]*' 2>/dev/null | head -1 || true)"
    commit="$(git log -1 --format='%h %s' 2>/dev/null || echo '?')"
    [ "${#commit}" -le 90 ] || commit="${commit:0:89}…"
    dirty="$(git status --porcelain 2>/dev/null | grep -v " ${output#"$repo"/}\$" | awk '{print $2}' |
        paste -sd' ' || true)"
    cat <<EOF
| | |
|---|---|
| CPU | ${cpu:-?}, $(nproc) cores$(grep -qw hypervisor /proc/cpuinfo && echo ' (virtual machine)') |
| memory | $mem |
| kernel | $kernel |
| Rust | $(rustc -V), $(cargo -V | cut -d' ' -f1-2) |
| qemu-user | ${qemu:-not found} (aarch64 runs; default CPU model \`max\`) |
| GStreamer | $gst_host (host), ${gst_arm64:-?} (arm64 sysroot); ${x264:-x264 ?} |
| commit | \`$commit\`$([ -n "$dirty" ] && printf ' plus uncommitted changes: %s' "$dirty") |
| date | $started_at to $finished_at |
| load | load average $load_start at the start, $load_end at the end; over the whole run (builds included) the machine was $cpu_whole |
| other processes at the start | $busy_start |
EOF
}

write_report() {
    local run b arch bench_log first about notes line
    printf '# Benchmarks\n\n'
    printf 'Generated by `scripts/bench.sh` (`make bench`) on %s. Every figure is set against a\n' "$started_at"
    printf 'baseline measured by the same bench in the same run, on the same machine under the same\n'
    printf 'load, so the **ratios** carry over between machines; the absolute figures are for context.\n'
    printf 'Where an earlier issue set a target, the table says whether it was met.\n\n'

    printf '## Summary\n\n'
    printf '| bench | run | result | time | headline figure | targets met |\n|---|---|---|---:|---|---|\n'
    for run in "${runs[@]}"; do
        b="${run% *}" arch="${run#* }"
        bench_log="$(log_file "$b" "$arch")"
        printf '| [%s](#%s) | %s | %s | %s s | %s | %s |\n' "$b" "$b" "$(arch_title "$arch")" \
            "$(run_status "$run")" "${run_secs[$run]:-—}" "$(headline "$bench_log")" "$(targets_met "$bench_log")"
    done
    printf '\nWall time of the whole run %s: native part %s (build %s s, waiting for other work to settle %s s), aarch64 part under qemu %s (build %s s, waiting %s s).\n' \
        "$(mins "$total_secs")" "$(mins "${part_secs[native]}")" "${build_secs[native]:-0}" "${settle_total[native]}" \
        "$(mins "${part_secs[aarch64]}")" "${build_secs[aarch64]:-0}" "${settle_total[aarch64]}"
    if [ "${#skipped[@]}" -gt 0 ]; then
        printf '\n**Skipped in this run** (not in the figures below):'
        local sep=' '
        for run in "${skipped[@]}"; do
            printf '%s%s (%s)' "$sep" "${run% *}" "$(arch_title "${run#* }")"
            sep=', '
        done
        printf '.\n'
    fi

    printf '\n## Machine\n\n'
    machine
    printf '\nThe machine has other work on it (see *load*): a nice 19 process yields to the benches\n'
    printf '(CFS weight 15 against 1024), but shares caches and memory bandwidth, and a nice 0\n'
    printf 'compile competes on equal terms and can preempt a timed operation. Each run below says\n'
    printf 'how the machine'"'"'s CPU time went while it ran: the bench itself, other work at nice 0,\n'
    printf '*niced* work (processes at nice > 0) and idle, as shares of all cores.\n'

    for b in "${all_benches[@]}"; do
        first=1
        for run in "${runs[@]}"; do
            [ "${run% *}" = "$b" ] || continue
            arch="${run#* }"
            bench_log="$(log_file "$b" "$arch")"
            if [ "$first" -eq 1 ]; then
                first=0
                printf '\n## %s\n\n' "$b"
                about="$(records "$bench_log" about | head -1)"
                if [ -n "$about" ]; then
                    printf '`benches/%s.rs`. **Measures:** %s. **Baseline (same run):** %s.\n' \
                        "$b" "$(cut -f1 <<<"$about")" "$(cut -f2 <<<"$about")"
                else
                    printf '`benches/%s.rs`.\n' "$b"
                fi
                printf '**Targets from the issues:** %s.\n' "$(records "$bench_log" figure | awk -F'\t' '
                    $7 != "" { printf "%s%s %s", sep, $1, $7; sep = "; " }
                    END { if (!sep) printf "none set; the figures are tracked against their baselines" }')"
            fi
            printf '\n### %s\n\n' "$(arch_title "$arch")"
            printf '`%s`: %s, %s s; load average %s at its start%s; CPU while it ran: %s. Log: `%s`.\n\n' \
                "$(bench_command "$b" "$arch")" "$(run_status "$run")" "${run_secs[$run]:-—}" \
                "${run_load[$run]:-?}" "${run_settled[$run]:+ (${run_settled[$run]})}" \
                "${run_cpu[$run]:-?}" "$(tilde "$bench_log")"
            if [ -n "$(records "$bench_log" figure)" ]; then
                printf '| figure | roomd | baseline | ratio | target | met |\n|---|---:|---|---:|---|---|\n'
                figure_rows "$bench_log"
            fi
            notes="$(records "$bench_log" note | cell)"
            if [ -n "$notes" ]; then
                printf '\n'
                while IFS= read -r line; do printf -- '- %s\n' "$line"; done <<<"$notes"
            fi
            if [ "${run_rc[$run]}" != 0 ] && [ -f "$bench_log" ]; then
                printf '\nLast lines of the log:\n\n```\n'
                grep -av $'^BENCH\t' "$bench_log" | tail -15
                printf '```\n'
            fi
        done
    done

    cat <<'EOF'

## How to reproduce

```sh
make bench                                   # every bench, this file rewritten
scripts/bench.sh --no-cross                  # native runs only (no qemu)
scripts/bench.sh srp media                   # a subset; the file lists what was skipped
scripts/bench.sh --output /tmp/bench.md      # the report elsewhere
ROOMD_BENCH_SETTLE=600 make bench            # wait up to 10 min for a compile to end before each bench
```

One bench by hand (prints its own text; `ROOMD_BENCH_RECORDS=1` adds the `BENCH` records this
file is made from, see `testkit/src/figures.rs`):

```sh
. scripts/cross-env.sh
cargo bench --bench srp                                      # likewise events calendar xapi locus reachability media
cargo bench --bench srp --target aarch64-unknown-linux-gnu   # under qemu-user; likewise media
```

Knobs: `ROOMD_BENCH_RUNS` (srp, timed runs per figure, default 21), `ROOMD_BENCH_EVENTS`
(events, throughput run size, default 200,000), `ROOMD_BENCH_ROUNDS` (xapi changes, default
1,000; locus deltas, default 20,000), `ROOMD_BENCH_FRAMES` (media, default 600, 150 under qemu), `ROOMD_BENCH_SEND_RUNS` (media send figures, default 5, 3 under qemu), `ROOMD_BENCH_RECEIVE_RUNS` (media receive, default 5).
`scripts/bench.sh` keeps the full output of every build and run under
`~/.cache/roomd/bench-logs/` (`ROOMD_CACHE_DIR`).

The benches interleave or alternate roomd and its baseline where they can and report medians or
the best of several runs, so both sides of a ratio see the same machine. Niced background work
hardly moves the ratios (the bench preempts it); work at nice 0, such as a compile, does, most
for short timed operations (the SRP medians, the event and xAPI latency percentiles) and for
fsync latencies when it also writes to the disk. Compare a run's figures with the CPU line above
its table.
EOF
}

mkdir -p "$(dirname "$output")"
write_report >"$logs/report.md"
cp "$logs/report.md" "$output"

printf '\nbench: %s in %s (native %s, aarch64 under qemu %s); report: %s\n' \
    "$([ "$failed" -eq 0 ] && echo ok || echo FAILED)" "$(mins "$total_secs")" \
    "$(mins "${part_secs[native]}")" "$(mins "${part_secs[aarch64]}")" "$(tilde "$output")" >&2
exit "$failed"
