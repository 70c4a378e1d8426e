# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this file
# Where the pinned cargo-deny lives. Sourced by scripts/deps.sh (step deny installs it) and
# scripts/deny.sh (runs it); both agree on the version and the paths.
#
#   CARGO_DENY_VERSION  the pinned release (cargo install --locked)
#   CARGO_DENY_ROOT     its install root, keyed by version, shared by every clone on the machine
#   CARGO_DENY          the binary
#   ROOMD_ADVISORY_DB   where the RustSec advisory database is kept: deny.toml's db-path, fixed
#                       (not under ROOMD_CACHE_DIR) so a `cargo deny check` by hand finds it too

ROOMD_CACHE_DIR="${ROOMD_CACHE_DIR:-${HOME:-/root}/.cache/roomd}"
CARGO_DENY_VERSION=0.20.2
CARGO_DENY_ROOT="$ROOMD_CACHE_DIR/tools/cargo-deny-$CARGO_DENY_VERSION"
CARGO_DENY="$CARGO_DENY_ROOT/bin/cargo-deny"
ROOMD_ADVISORY_DB="${HOME:-/root}/.cache/roomd/advisory-dbs"
