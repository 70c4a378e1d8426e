#!/usr/bin/env bash
# Linker for aarch64-unknown-linux-gnu: Debian's cross gcc, linking against
# the arm64 sysroot from scripts/deps.sh. A wrapper (rather than
# `-C link-arg=--sysroot=...` in RUSTFLAGS) so that the same flags also reach
# rustdoc when cargo cross-compiles doctests, and so the content-keyed
# sysroot path never has to be written into .cargo/config.toml.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/sysroot.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/sysroot.sh"
if [ ! -d "$ROOMD_SYSROOT" ]; then
    echo "roomd: arm64 sysroot missing ($ROOMD_SYSROOT); run scripts/deps.sh first" >&2
    exit 1
fi
exec "${ROOMD_AARCH64_CC:-aarch64-linux-gnu-gcc}" --sysroot="$ROOMD_SYSROOT" "$@"
