#!/usr/bin/env bash
# Runs roomd against the cloud simulator on this machine (what `make run` ends in).
#
#   roomd-sim  serves HTTPS on 127.0.0.1:${ROOMD_SIM_HTTPS_PORT:-8443} (GDS, activation), its
#              admin API on :${ROOMD_SIM_ADMIN_PORT:-8444}, the post-activation services behind a
#              "TLS proxy" on :${ROOMD_SIM_PROXY_PORT:-8445} and :${ROOMD_SIM_ALT_PORT:-8446}
#              (their CA only arrives in the activation's trustList)
#              and a simulated Meeting Server on :${ROOMD_SIM_CMS_PORT:-8447} (its own CA)
#   roomd      runs in the foreground with board/sim.toml, trusting that CA
#
# Everything lives under .run/ (config, state, control socket, sim files). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

target_dir=${CARGO_TARGET_DIR:-target}
roomd="$target_dir/debug/roomd"
sim="$target_dir/debug/roomd-sim"
for bin in "$roomd" "$sim"; do
    [ -x "$bin" ] || { echo "run-local: $bin is not built (run: make run)" >&2; exit 1; }
done

run_dir="$PWD/.run"
https_port=${ROOMD_SIM_HTTPS_PORT:-8443}
admin_port=${ROOMD_SIM_ADMIN_PORT:-8444}
proxy_port=${ROOMD_SIM_PROXY_PORT:-8445}
alt_port=${ROOMD_SIM_ALT_PORT:-8446}
cms_port=${ROOMD_SIM_CMS_PORT:-8447}
# The simulator makes new CAs, tokens and device records every start, so a device state
# from an earlier run can never talk to it: start the device fresh too.
rm -rf "$run_dir/state"
mkdir -p "$run_dir/etc/config.d" "$run_dir/sim" "$run_dir/state" "$run_dir/run"
chmod 0700 "$run_dir/state"
rm -f "$run_dir/sim/sim.json"

"$sim" --scenario sim/scenarios/default.toml --state-dir "$run_dir/sim" \
    --https-port "$https_port" --admin-port "$admin_port" \
    --proxy-port "$proxy_port" --alt-port "$alt_port" --meeting-server-port "$cms_port" \
    >"$run_dir/sim/stdout.log" 2>"$run_dir/sim/sim.log" &
sim_pid=$!
roomd_pid=
stop() {
    trap - INT TERM EXIT
    [ -n "$roomd_pid" ] && kill -TERM "$roomd_pid" 2>/dev/null && wait "$roomd_pid" 2>/dev/null
    kill -TERM "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
    echo "run-local: stopped roomd and roomd-sim"
}
trap stop INT TERM EXIT

# The sim writes sim.json once every listener is bound.
for _ in $(seq 1 100); do
    [ -s "$run_dir/sim/sim.json" ] && break
    kill -0 "$sim_pid" 2>/dev/null || { echo "run-local: roomd-sim exited; see $run_dir/sim/sim.log" >&2; cat "$run_dir/sim/sim.log" >&2; exit 1; }
    sleep 0.1
done
[ -s "$run_dir/sim/sim.json" ] || { echo "run-local: roomd-sim did not start within 10 s" >&2; exit 1; }

# The scenario's Meeting Server API user; owner-only, as roomd demands.
(umask 077 && printf 'roomd:roomd-secret\n' >"$run_dir/etc/meeting-server.credentials")

cat >"$run_dir/etc/roomd.toml" <<TOML
# Written by scripts/run-local.sh: roomd against the local simulator.
[device]
board = "sim"
board_dir = "$PWD/board"
state_dir = "$run_dir/state"
runtime_dir = "$run_dir/run"

[cloud]
gds_url = "https://localhost:$https_port/gds"
activation_url = "https://localhost:$https_port/activation"
extra_ca_files = ["$run_dir/sim/ca.pem"]

[calls]
# The sim's bookings use *@webex.sim.invalid meeting URIs: join them as cloud meetings too.
meeting_uri_regex = '^[^@]+@([a-z0-9-]+\\.)*(webex\\.com|webex\\.sim\\.invalid)\$'

[meeting_server]
base_url = "https://localhost:$cms_port"
credentials_file = "$run_dir/etc/meeting-server.credentials"
ca_file = "$run_dir/sim/cms-ca.pem"
TOML

cat <<INFO
run-local: roomd-sim is up (log: $run_dir/sim/sim.log, admin: http://127.0.0.1:$admin_port/admin/info)
run-local: starting roomd; in another terminal try:
    $roomd activate 4353-4500-1234-5678 --config $run_dir/etc/roomd.toml   (the sim's scenario code)
    $roomd status --config $run_dir/etc/roomd.toml
    $roomd check  --config $run_dir/etc/roomd.toml
    $roomd factory-reset --yes --config $run_dir/etc/roomd.toml
    curl -s -X POST http://127.0.0.1:$admin_port/admin/gds -d '{"serviceState":"offline"}' -H 'content-type: application/json'
    curl -s -X POST http://127.0.0.1:$admin_port/admin/mercury/events -H 'content-type: application/json' \
         -d '{"data":{"eventType":"device.control","action":"volume.set","level":70}}'
    curl -s -X POST http://127.0.0.1:$admin_port/admin/meeting-server/script -H 'content-type: application/json' -d '{}'
run-local: Ctrl-C stops both.
INFO

"$roomd" run --config "$run_dir/etc/roomd.toml" &
roomd_pid=$!
# Local xAPI users for the touch panel and jsxapi (the state directory is fresh each run).
(
    for _ in $(seq 50); do
        printf 'touchpanel\n' | "$roomd" passwd --user touchpanel --config "$run_dir/etc/roomd.toml" >/dev/null 2>&1 && break
        sleep 0.2
    done
    printf 'roomd-admin\n' | "$roomd" passwd --user admin --config "$run_dir/etc/roomd.toml" >/dev/null 2>&1 &&
        echo "run-local: touch panel: http://127.0.0.1:8080/touch#user=touchpanel&password=touchpanel (xAPI ws://127.0.0.1:8080/ws, admin / roomd-admin)"
) &
wait "$roomd_pid" || true
roomd_pid=
