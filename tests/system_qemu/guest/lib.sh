# Helpers for the harness's guest scripts (sourced by agent.sh before each script).

# The journal's newest cursor: events after it are what a step causes.
journal_cursor() {
    journalctl -n 1 -o export --no-pager | sed -n 's/^__CURSOR=//p'
}

# journal_entry_matches JSON_LINE FIELD=VALUE...: the entry (journalctl -o json) carries
# every FIELD=VALUE.
journal_entry_matches() {
    local line="$1" match
    shift
    for match in "$@"; do
        [[ $line == *"\"${match%%=*}\":\"${match#*=}\""* ]] || return 1
    done
}

# journal_filter FIELD=VALUE...: passes the JSON entries on stdin that carry every FIELD=VALUE.
journal_filter() {
    local line
    while IFS= read -r line; do
        if journal_entry_matches "$line" "$@"; then printf '%s\n' "$line"; fi
    done
    return 0
}

# journal_after CURSOR FIELD=VALUE...: the entries after CURSOR that match, as JSON lines.
# Matching is done here, not by journalctl: with --after-cursor and a match, systemd 252's
# journalctl skips the first matching entry (it assumes the cursor's entry matched).
journal_after() {
    local cursor="$1"
    shift
    journalctl --no-pager -o json --after-cursor="$cursor" | journal_filter "$@"
}

# wait_journal SECONDS CURSOR FIELD=VALUE...: prints the first entry after CURSOR that
# matches (JSON) and returns 0, or returns 1 when none arrives within SECONDS.
# journalctl --follow wakes on every new entry, so this awaits the event itself.
wait_journal() {
    local seconds="$1" cursor="$2" line status=1
    shift 2
    local deadline=$((SECONDS + seconds))
    # --lines=all: --follow alone means the last 10 entries, even after a cursor.
    coproc JOURNAL { exec journalctl --no-pager --follow --lines=all -o json --after-cursor="$cursor"; }
    local pid="$JOURNAL_PID"
    while [ "$SECONDS" -lt "$deadline" ] &&
        IFS= read -r -t "$((deadline - SECONDS))" line <&"${JOURNAL[0]}"; do
        if journal_entry_matches "$line" "$@"; then
            printf '%s\n' "$line"
            status=0
            break
        fi
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true # journalctl ends by our SIGTERM (143)
    return "$status"
}

# wait_until SECONDS COMMAND...: re-runs COMMAND until it succeeds. Only for state that has no
# change notification (sysfs attributes, `roomd status` fields that follow a logged event).
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

main_pid() {
    systemctl show -p MainPID --value roomd.service
}

# A gpio-sim line's sysfs directory (pull, value): gpio_line LINE_NAME.
gpio_line() {
    local chip offset
    read -r chip offset < <(gpiofind "$1")
    printf '/sys/devices/platform/%s/%s/sim_gpio%s' \
        "$(cat /sys/kernel/config/gpio-sim/roomd/dev_name)" "$chip" "$offset"
}

# sim_admin METHOD PATH [JSON]: roomd-sim's admin API (plain HTTP, 127.0.0.1:8444, the unit's
# default) through bash's /dev/tcp (the guest has no HTTP client); prints the response body,
# fails unless the status is 2xx.
sim_admin() {
    local method="$1" path="$2" body="${3:-}" response head status
    exec 5<>/dev/tcp/127.0.0.1/8444 || return 1
    printf '%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
        "$method" "$path" "${#body}" "$body" >&5
    response="$(cat <&5)"
    exec 5<&-
    head="${response%%$'\r'*}"
    status="${head#* }"
    status="${status%% *}"
    printf '%s\n' "${response#*$'\r\n\r\n'}"
    [[ $status == 2* ]] || { echo "sim_admin $method $path: $head" >&2; return 1; }
}

# The files roomd's main process has open under /dev, one a line (one process: roomd has
# hundreds of descriptors, a readlink each would take seconds under TCG).
roomd_devices() {
    find /proc/"$(main_pid)"/fd -lname '/dev/*' -printf '%l\n' 2>/dev/null | sort -u
}
