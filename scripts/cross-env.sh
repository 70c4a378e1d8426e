# shellcheck shell=bash
# Source me:  . scripts/cross-env.sh
#
# Exports what cargo needs to build (and run, via qemu) for
# aarch64-unknown-linux-gnu against the arm64 sysroot made by scripts/deps.sh.
# Every variable is specific to the aarch64 target, so native builds in the
# same cargo invocation (build scripts, proc macros, `cargo build` without
# --target) see exactly the environment they would see without this file and
# their fingerprints do not change (no rebuilds when switching between a
# shell that sourced this and one that did not).
#
# .cargo/config.toml sets the same linker, runner and pkg-config wrapper
# statically, so plain `cargo build --target aarch64-unknown-linux-gnu` works
# without this file too; sourcing it makes the setup explicit and also sets
# the C/C++ compiler variables for cc-rs and bindgen.

_roomd_cross_env() {
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
    # shellcheck source-path=SCRIPTDIR source=lib/sysroot.sh
    . "$here/lib/sysroot.sh"

    export ROOMD_SYSROOT
    local pcdirs="$ROOMD_SYSROOT/usr/lib/$ROOMD_SYSROOT_TRIPLE/pkgconfig:$ROOMD_SYSROOT/usr/share/pkgconfig"

    # Linker: cross gcc with --sysroot (wrapper, so rustdoc doctests get it too).
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="$here/aarch64-linker.sh"
    # Runner: qemu-aarch64 -L sysroot, GStreamer plugin/registry settings.
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$here/qemu-runner.sh"

    # pkg-config crate / system-deps: target-suffixed variables only.
    export PKG_CONFIG_ALLOW_CROSS_aarch64_unknown_linux_gnu=1
    export PKG_CONFIG_SYSROOT_DIR_aarch64_unknown_linux_gnu="$ROOMD_SYSROOT"
    export PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu="$pcdirs"
    # Empty on purpose: stops a host PKG_CONFIG_PATH from leaking x86_64 .pc
    # files into the cross build (the crate falls back to the plain variable).
    export PKG_CONFIG_PATH_aarch64_unknown_linux_gnu=

    # cc-rs (ring, aws-lc-sys, ...) and bindgen.
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=$ROOMD_SYSROOT"

    if ! roomd_sysroot_ready; then
        echo "cross-env: note: arm64 sysroot not built yet; run scripts/deps.sh" >&2
    fi
}
_roomd_cross_env
unset -f _roomd_cross_env
