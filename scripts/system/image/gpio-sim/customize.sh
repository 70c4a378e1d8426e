#!/usr/bin/env bash
# mmdebstrap --customize-hook of the gpio-sim build chroot (see build.sh): compiles the module
# inside the arm64 chroot against linux-headers-<abi> and copies gpio-sim.ko out. $1 = chroot.
set -euo pipefail
root="$1"
: "${ROOMD_GPIO_SIM_SRC:?}" "${ROOMD_GPIO_SIM_OUT:?}" "${ROOMD_GPIO_SIM_ABI:?}"
rm -rf "$root/build"
cp -r "$ROOMD_GPIO_SIM_SRC" "$root/build"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
    make -C "/usr/src/linux-headers-$ROOMD_GPIO_SIM_ABI" M=/build modules
chroot "$root" strip --strip-debug /build/gpio-sim.ko
chroot "$root" /sbin/modinfo /build/gpio-sim.ko >&2
cp "$root/build/gpio-sim.ko" "$ROOMD_GPIO_SIM_OUT"
