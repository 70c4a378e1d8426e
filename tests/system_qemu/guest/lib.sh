# Helpers for the harness's guest scripts (sourced by agent.sh before each script).

# The journal's newest cursor: events after it are what a step causes.
journal_cursor() {
    journalctl -n 1 -o export --no-pager | sed -n 's/^__CURSOR=//p'
}

# wait_journal SECONDS CURSOR MATCH...: prints the first journal entry after CURSOR that
# matches (journalctl matches such as MESSAGE_ID=... _SYSTEMD_UNIT=roomd.service) as JSON
# and returns 0, or returns 1 when none arrives within SECONDS. journalctl --follow wakes
# on every new entry, so this awaits the event itself.
wait_journal() {
    local seconds="$1" cursor="$2" line
    shift 2
    coproc JOURNAL { exec journalctl --no-pager --follow -o json --after-cursor="$cursor" "$@"; }
    local pid="$JOURNAL_PID" status=1
    if IFS= read -r -t "$seconds" line <&"${JOURNAL[0]}"; then
        printf '%s\n' "$line"
        status=0
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
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

# A gpio-sim line's sysfs directory: gpio_line ROLE_INDEX (lines are created in board order).
gpio_line() {
    local config=/sys/kernel/config/gpio-sim/roomd
    printf '/sys/devices/platform/%s/%s/sim_gpio%s' \
        "$(cat "$config/dev_name")" "$(cat "$config/bank0/chip_name")" "$1"
}
