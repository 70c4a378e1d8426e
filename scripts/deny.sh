#!/usr/bin/env bash
# cargo deny check for the workspace (deny.toml): advisories, licenses, bans, sources. Part of
# `scripts/test.sh security`; docs/security.md.
#
#   scripts/deny.sh
#
# Installs the pinned cargo-deny first (scripts/deps.sh deny). The RustSec advisory database
# is fetched (git, from github.com) into ~/.cache/roomd/advisory-dbs (deny.toml's db-path) with
# a short timeout:
#   - fetched: every check runs;
#   - not fetched but a copy is cached: every check runs against the copy (its age is printed);
#   - neither: licenses, bans and sources run, and the advisories check is reported as
#     SKIPPED with the reason. It is never skipped silently.
# Environment: CARGO, ROOMD_CACHE_DIR, ROOMD_ADVISORY_FETCH_TIMEOUT (seconds, default 60).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
# shellcheck source-path=SCRIPTDIR source=lib/cargo-deny.sh
. scripts/lib/cargo-deny.sh

say() { printf 'deny: %s\n' "$*"; }

scripts/deps.sh deny || exit 2
# Every crate of Cargo.lock (Windows-only ones too: cargo metadata reads them all), so the checks
# below can run with --offline.
"${CARGO:-cargo}" fetch --locked --quiet || exit 2

fetch_timeout="${ROOMD_ADVISORY_FETCH_TIMEOUT:-60}"
mkdir -p "$ROOMD_ADVISORY_DB"
fetch_log="$(mktemp)"
trap 'rm -f "$fetch_log"' EXIT

# The workspace's two crates are both roots of the graph; Cargo.lock must stay as it is.
deny() { "$CARGO_DENY" deny --color never --config deny.toml --workspace --locked "$@"; }

# The cached copy (cargo-deny keeps one git checkout per database URL).
cached_db() {
    find "$ROOMD_ADVISORY_DB" -mindepth 2 -maxdepth 2 -name crates -type d -printf '%h\n' 2>/dev/null | head -n 1
}

advisories=1
if timeout "$fetch_timeout" "$CARGO_DENY" deny --color never --config deny.toml fetch db >"$fetch_log" 2>&1; then
    say "advisories: database fetched into $ROOMD_ADVISORY_DB"
else
    rc=$?
    # git's own "fatal: …" line says most (e.g. "Could not resolve host: github.com").
    reason="$(grep -m 1 -E '^fatal: ' "$fetch_log" || grep -m 1 -E '\[ERROR\]' "$fetch_log" ||
        grep -v '^[[:space:]]*$' "$fetch_log" | tail -n 1)"
    reason="$(printf '%s' "$reason" | sed -E 's/^[0-9-]+ [0-9:]+ \[ERROR\] //' | cut -c1-200)"
    [ "$rc" -eq 124 ] && reason="no answer within ${fetch_timeout} s"
    [ -n "$reason" ] || reason="cargo deny fetch exited with status $rc"
    db="$(cached_db)"
    if [ -n "$db" ]; then
        newest="$(git -C "$db" show -s --format=%cs HEAD 2>/dev/null || echo 'date unknown')"
        say "advisories: fetch failed ($reason); checking against the cached copy $db" \
            "(newest advisory commit $newest; older than deny.toml's maximum-db-staleness fails)"
    else
        advisories=0
        printf '\n'
        say "============================================================================"
        say "advisories: SKIPPED (advisory database unreachable: $reason)"
        say "            licenses, bans and sources are still checked; run where github.com"
        say "            is reachable (or copy a database into $ROOMD_ADVISORY_DB) to check advisories"
        say "============================================================================"
        printf '\n'
    fi
fi

# --offline: the database is what was just fetched or cached; nothing else is fetched.
if [ "$advisories" -eq 1 ]; then
    deny --offline check
else
    deny --offline check licenses bans sources
fi
rc=$?
if [ "$rc" -eq 0 ]; then
    if [ "$advisories" -eq 1 ]; then
        say "cargo deny: advisories, licenses, bans, sources ok"
    else
        say "cargo deny: licenses, bans, sources ok; advisories SKIPPED (database unreachable)"
    fi
else
    say "cargo deny check failed (exit $rc): see its report above; deny.toml says what is allowed and why"
fi
exit "$rc"
