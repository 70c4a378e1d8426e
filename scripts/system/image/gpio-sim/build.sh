#!/usr/bin/env bash
# Builds gpio-sim.ko for one Debian arm64 kernel (Debian's kernel does not ship gpio-sim).
#
#   build.sh ABI VERSION WORKDIR OUT_KO
#     ABI      e.g. 6.1.0-56-arm64 (linux-image-ABI is what the guest runs)
#     VERSION  its Debian package version, e.g. 6.1.192-2
#     WORKDIR  empty scratch directory (removed by the caller)
#     OUT_KO   where gpio-sim.ko is written
#
# The sources come from linux-source-X.Y of exactly VERSION (downloaded and unpacked on the
# host: only drivers/gpio/gpio-sim.c, drivers/gpio/*.h and kernel/irq/irq_sim.c are taken),
# irq_sim.sed is applied, and the module is compiled in an arm64 chroot (mmdebstrap, emulated
# through qemu-user binfmt, see ../hooks/binfmt.sh) with linux-headers-ABI of VERSION. Nothing is kept but OUT_KO.
#
# Environment: APT_CONFIG (the caller's private arm64 apt configuration, to download
#   linux-source), ROOMD_DEBIAN_MIRROR, ROOMD_DEBIAN_SECURITY_MIRROR.
set -euo pipefail
[ "$#" -eq 4 ] || { echo "usage: $0 ABI VERSION WORKDIR OUT_KO" >&2; exit 2; }
abi="$1" version="$2" work="$3" out="$4"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
mirror="${ROOMD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${ROOMD_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
log() { printf 'gpio-sim: %s\n' "$*" >&2; }

series="$(printf '%s' "$version" | cut -d. -f1-2)" # 6.1.192-2 -> 6.1
src_pkg="linux-source-$series"
mkdir -p "$work/deb" "$work/src" "$work/tmp"

log "downloading $src_pkg=$version"
(cd "$work/deb" && apt-get download -q "$src_pkg=$version") >&2
deb="$(find "$work/deb" -name "${src_pkg}_*.deb" -print -quit)"
[ -n "$deb" ] || { log "$src_pkg download produced no .deb"; exit 1; }

log "unpacking gpio-sim.c, gpiolib headers, irq_sim.c"
top="linux-source-$series"
dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/$top.tar.xz" |
    tar -xJ -C "$work/tmp" --wildcards \
        "$top/drivers/gpio/gpio-sim.c" "$top/drivers/gpio/*.h" "$top/kernel/irq/irq_sim.c"
rm -rf "$work/deb"
cp "$work/tmp/$top/drivers/gpio/gpio-sim.c" "$work/src/gpio-sim-core.c"
cp "$work/tmp/$top/drivers/gpio/"*.h "$work/src/"
sed -f "$here/irq_sim.sed" "$work/tmp/$top/kernel/irq/irq_sim.c" >"$work/src/irq_sim.c"
if grep -n 'irq_to_desc' "$work/src/irq_sim.c" >&2; then
    log "irq_sim.sed left a call to irq_to_desc (not exported): update the sed for this kernel"
    exit 1
fi
cp "$here/Kbuild" "$work/src/Kbuild"
rm -rf "$work/tmp"

log "compiling in an arm64 chroot with linux-headers-$abi=$version"
# mmdebstrap must not see the caller's private apt configuration (it writes its own).
unset APT_CONFIG
# The chroot lives in TMPDIR (format null: deleted by mmdebstrap at the end). The hook is
# expanded by mmdebstrap's sh.
# shellcheck disable=SC2016
ROOMD_GPIO_SIM_SRC="$work/src" ROOMD_GPIO_SIM_OUT="$work/gpio-sim.ko" ROOMD_GPIO_SIM_ABI="$abi" \
    ROOMD_GPIO_SIM_HOOK="$here/customize.sh" ROOMD_BINFMT_HOOK="$here/../hooks/binfmt.sh" TMPDIR="$work" \
    mmdebstrap --mode=root --arch=arm64 --variant=minbase --format=null --skip=check/qemu \
    --setup-hook='"$ROOMD_BINFMT_HOOK" "$1"' \
    --include="make,gcc,libc6-dev,binutils,kmod,linux-headers-$abi=$version" \
    --aptopt='Acquire::Retries "3"' --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='"$ROOMD_GPIO_SIM_HOOK" "$1"' \
    bookworm /dev/null \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    "deb $security bookworm-security main" </dev/null >&2
[ -s "$work/gpio-sim.ko" ] || { log "no gpio-sim.ko produced"; exit 1; }
mv -f "$work/gpio-sim.ko" "$out"
log "built $(basename "$out") ($(du -k "$out" | cut -f1) KiB)"
