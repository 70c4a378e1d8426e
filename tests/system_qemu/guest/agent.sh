#!/bin/bash
# roomd system-test agent: runs inside the QEMU guest (started by roomd-harness-agent.service,
# which the image bakes in) and executes the host harness's commands, one at a time, over a
# virtio-serial port.
#
#   host -> guest   "<id> <timeout-seconds> <base64 bash script>\n"
#   guest -> host   "<id> <exit status> <base64 of stdout+stderr>\n"
#                   "hello <boot id>\n" once when the agent starts (after every boot)
#
# Each script runs in a fresh bash with lib.sh sourced, under `timeout` (exit 124 when it
# expires), so one stuck command never wedges the agent.
set -u
port="$1"
here="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
exec 3<>"$port"
printf 'hello %s\n' "$(cat /proc/sys/kernel/random/boot_id)" >&3
while IFS=' ' read -r id seconds script <&3; do
    output="$(printf '%s' "$script" | base64 -d |
        timeout --kill-after=5 "$seconds" bash -c ". '$here/lib.sh' && . /dev/stdin" 2>&1)"
    status=$?
    printf '%s %s %s\n' "$id" "$status" "$(printf '%s' "$output" | base64 -w0)" >&3
done
