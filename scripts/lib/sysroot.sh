# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this file
# Shared definitions for the arm64 sysroot. Sourced (never executed) by
# scripts/deps.sh, scripts/cross-env.sh, scripts/qemu-runner.sh and the
# aarch64 linker / pkg-config wrappers, so that all of them agree on where
# the content-keyed sysroot lives.
#
# Defines (does not export unless the caller does):
#   ROOMD_REPO              absolute path of the repository root
#   ROOMD_CACHE_DIR         cache root (default ~/.cache/roomd, overridable)
#   ROOMD_SYSROOT_PACKAGES  arm64 packages installed into the sysroot
#   ROOMD_SYSROOT_HASH      short hash of package list + recipe version
#   ROOMD_SYSROOT           $ROOMD_CACHE_DIR/sysroot-arm64-$ROOMD_SYSROOT_HASH
#   ROOMD_GST_REGISTRY_ARM64  GStreamer registry cache used under qemu
#
# Changing anything in the recipe (package list, suite, pruning, symlink
# fix-ups in deps.sh) must bump ROOMD_SYSROOT_RECIPE so a new sysroot is built.

ROOMD_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
ROOMD_CACHE_DIR="${ROOMD_CACHE_DIR:-${HOME:-/root}/.cache/roomd}"

ROOMD_SYSROOT_RECIPE=2
ROOMD_SYSROOT_SUITE=bookworm
ROOMD_SYSROOT_ARCH=arm64
ROOMD_SYSROOT_TRIPLE=aarch64-linux-gnu

# Everything the cross build links against and everything the emulated tests
# load at run time. mmdebstrap resolves the dependency closure.
ROOMD_SYSROOT_PACKAGES=(
    libc6-dev
    libgcc-s1
    libstdc++6
    libgstreamer1.0-dev
    libgstreamer-plugins-base1.0-dev
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly
    gstreamer1.0-tools
)

# Paths removed from the sysroot after extraction: docs, translations, icons
# (never needed to link or run), and the build host's resolv.conf/hostname
# that mmdebstrap copies in (qemu -L serves a sysroot file in preference to
# the host's, so these would shadow the live host files). Part of the hash.
ROOMD_SYSROOT_PRUNE=(
    usr/share/doc usr/share/man usr/share/info usr/share/locale
    usr/share/icons usr/share/sounds usr/share/lintian usr/share/bug
    etc/resolv.conf etc/hostname
)

ROOMD_SYSROOT_HASH="$(
    printf '%s\n' "recipe=$ROOMD_SYSROOT_RECIPE" "suite=$ROOMD_SYSROOT_SUITE" \
        "arch=$ROOMD_SYSROOT_ARCH" "${ROOMD_SYSROOT_PACKAGES[@]}" -- "${ROOMD_SYSROOT_PRUNE[@]}" |
        sha256sum | cut -c1-12
)"
ROOMD_SYSROOT="$ROOMD_CACHE_DIR/sysroot-$ROOMD_SYSROOT_ARCH-$ROOMD_SYSROOT_HASH"
ROOMD_GST_REGISTRY_ARM64="$ROOMD_CACHE_DIR/gst-registry-$ROOMD_SYSROOT_ARCH-$ROOMD_SYSROOT_HASH.bin"

# Marker written last, just before the atomic rename: a sysroot directory
# without it is never used.
ROOMD_SYSROOT_STAMP=.roomd-sysroot-complete

roomd_sysroot_ready() {
    [ -f "$ROOMD_SYSROOT/$ROOMD_SYSROOT_STAMP" ]
}

roomd_require_sysroot() {
    if ! roomd_sysroot_ready; then
        echo "roomd: arm64 sysroot missing ($ROOMD_SYSROOT); run scripts/deps.sh (or any make target) first" >&2
        return 1
    fi
}
