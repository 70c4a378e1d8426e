#!/usr/bin/env bash
# pkg-config for aarch64-unknown-linux-gnu: answers from the arm64 sysroot's
# .pc files and prefixes the paths with the sysroot. .cargo/config.toml names
# it as PKG_CONFIG_aarch64_unknown_linux_gnu, which the pkg-config crate (and
# system-deps, used by gstreamer-sys) reads only when building for that
# target, so native builds in the same cargo invocation keep the host's
# pkg-config. scripts/cross-env.sh exports the same settings as
# target-suffixed PKG_CONFIG_* variables.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/sysroot.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/sysroot.sh"
if [ ! -d "$ROOMD_SYSROOT" ]; then
    echo "roomd: arm64 sysroot missing ($ROOMD_SYSROOT); run scripts/deps.sh first" >&2
    exit 1
fi
export PKG_CONFIG_SYSROOT_DIR="$ROOMD_SYSROOT"
export PKG_CONFIG_LIBDIR="$ROOMD_SYSROOT/usr/lib/$ROOMD_SYSROOT_TRIPLE/pkgconfig:$ROOMD_SYSROOT/usr/share/pkgconfig"
unset PKG_CONFIG_PATH
exec pkg-config "$@"
