#!/usr/bin/env bash
# Runs an aarch64 Linux binary on this (x86_64) host under qemu-user, with the
# arm64 sysroot from scripts/deps.sh as library prefix and GStreamer pointed
# at the sysroot's plugins.
#
#   scripts/qemu-runner.sh BINARY [ARGS...]
#
# Cargo uses it as the aarch64 target runner (.cargo/config.toml and
# scripts/cross-env.sh), so `cargo test --target aarch64-unknown-linux-gnu`
# and `cargo run --target aarch64-unknown-linux-gnu` run through it.
#
# Environment it sets for the emulated process:
#   QEMU_LD_PREFIX                      the sysroot (same as qemu -L); inherited by
#                                       aarch64 children started via binfmt_misc
#   GST_REGISTRY_FORK=no                the plugin scanner helper cannot start under qemu
#   GST_PLUGIN_SYSTEM_PATH(_1_0)        the sysroot's gstreamer-1.0 plugin dir only
#   GST_REGISTRY(_1_0)                  ~/.cache/roomd/gst-registry-arm64-<hash>.bin,
#                                       so the host registry is never clobbered
#   GST_PLUGIN_PATH(_1_0), GST_PLUGIN_SCANNER(_1_0), LD_PRELOAD, LD_LIBRARY_PATH: unset
#                                       (host values would point at x86_64 files)
# Set ROOMD_QEMU_CPU to pick a CPU model (default: qemu's default, "max").
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/sysroot.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/sysroot.sh"

if [ "$#" -lt 1 ]; then
    echo "usage: $0 BINARY [ARGS...]" >&2
    exit 2
fi
roomd_require_sysroot || exit 127

qemu="$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)"
if [ -z "$qemu" ]; then
    echo "roomd: qemu-aarch64 not found; run scripts/deps.sh" >&2
    exit 127
fi

plugins="$ROOMD_SYSROOT/usr/lib/$ROOMD_SYSROOT_TRIPLE/gstreamer-1.0"
mkdir -p "$(dirname "$ROOMD_GST_REGISTRY_ARM64")"

export QEMU_LD_PREFIX="$ROOMD_SYSROOT"
export GST_REGISTRY_FORK=no
export GST_PLUGIN_SYSTEM_PATH_1_0="$plugins" GST_PLUGIN_SYSTEM_PATH="$plugins"
export GST_REGISTRY_1_0="$ROOMD_GST_REGISTRY_ARM64" GST_REGISTRY="$ROOMD_GST_REGISTRY_ARM64"
unset GST_PLUGIN_PATH GST_PLUGIN_PATH_1_0 GST_PLUGIN_SCANNER GST_PLUGIN_SCANNER_1_0
unset LD_PRELOAD LD_LIBRARY_PATH
if [ -n "${ROOMD_QEMU_CPU:-}" ]; then
    export QEMU_CPU="$ROOMD_QEMU_CPU"
fi

exec "$qemu" -L "$ROOMD_SYSROOT" "$@"
