#!/usr/bin/env bash
# mmdebstrap --customize-hook: runs on the host once every package is installed; $1 = rootfs.
# Commands inside the guest run with chroot (arm64 under qemu-user binfmt).
#
# Environment (set by scripts/system/image.sh):
#   ROOMD_IMAGE_OVERLAY   scripts/system/image/rootfs: files copied over the rootfs
#   ROOMD_IMAGE_ABI       kernel ABI, e.g. 6.1.0-56-arm64
#   ROOMD_IMAGE_GPIO_SIM  gpio-sim.ko to install under /lib/modules/<abi>/updates/ (empty: none)
#   ROOMD_IMAGE_GST_ELEMENTS  elements gst-inspect-1.0 must find (space separated)
#   ROOMD_IMAGE_MODULES   kernel modules the kernel package must ship (space separated)
set -euo pipefail
root="$1"
: "${ROOMD_IMAGE_OVERLAY:?}" "${ROOMD_IMAGE_ABI:?}" "${ROOMD_IMAGE_GST_ELEMENTS:?}" "${ROOMD_IMAGE_MODULES:?}"
log() { printf 'customize: %s\n' "$*" >&2; }
in_guest() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }

log "overlay $ROOMD_IMAGE_OVERLAY"
# Plain copy: files owned by root, modes as in the checkout (umask 022).
(umask 022 && cp -r --no-preserve=ownership,timestamps "$ROOMD_IMAGE_OVERLAY/." "$root/")

# Root logs in without a password (serial console autologin, see serial-getty@ttyAMA0 drop-in).
in_guest passwd -d root >/dev/null
# video and audio come with base-passwd; roomd.service also wants gpio (udev rule 60-roomd-gpio).
for g in gpio video audio; do
    in_guest getent group "$g" >/dev/null || in_guest groupadd --system "$g"
done

# Fixed machine-id: every boot of the snapshot would otherwise be a "first boot".
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$root/etc/machine-id"
printf '\n' >>"$root/etc/machine-id"

# Units that only cost time under TCG (or would prompt on the console).
in_guest systemctl mask --quiet \
    apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
    dpkg-db-backup.timer dpkg-db-backup.service e2scrub_all.timer e2scrub_all.service \
    e2scrub_reap.service fstrim.timer fstrim.service systemd-firstboot.service \
    systemd-tmpfiles-clean.timer man-db.timer logrotate.timer getty@tty1.service
in_guest systemctl enable --quiet mnt-roomd.mount roomd-harness-agent.service
# No display: boot to multi-user.target, not graphical.target.
in_guest systemctl set-default --quiet multi-user.target

# The media devices' drivers (and, through modules.dep, what they need: videobuf2 and the V4L2
# core, snd-pcm and snd-timer, the DRM helpers) load from /lib/modules at boot
# (modules-load.d/roomd-media.conf). Debian's arm64 config builds them as modules.
for m in $ROOMD_IMAGE_MODULES; do
    if ! in_guest modinfo -k "$ROOMD_IMAGE_ABI" -F filename "$m" >/dev/null; then
        log "kernel $ROOMD_IMAGE_ABI has no module $m"
        exit 1
    fi
    log "module $m: $(in_guest modinfo -k "$ROOMD_IMAGE_ABI" -F depends "$m")"
done

if [ -n "${ROOMD_IMAGE_GPIO_SIM:-}" ]; then
    log "installing gpio-sim.ko for $ROOMD_IMAGE_ABI"
    install -D -m 0644 "$ROOMD_IMAGE_GPIO_SIM" "$root/lib/modules/$ROOMD_IMAGE_ABI/updates/gpio-sim.ko"
    in_guest depmod -a "$ROOMD_IMAGE_ABI"
    in_guest modinfo -k "$ROOMD_IMAGE_ABI" -F vermagic gpio-sim >/dev/null
fi

# GStreamer registry, shared by every user (GST_REGISTRY: system.conf.d + profile.d). This is
# also the check that the elements the tests use are present.
log "scanning GStreamer plugins under qemu-user"
reg=/var/cache/gstreamer-1.0/registry.aarch64.bin
mkdir -p "$root/var/cache/gstreamer-1.0"
for e in $ROOMD_IMAGE_GST_ELEMENTS; do
    if ! in_guest GST_REGISTRY="$reg" GST_REGISTRY_FORK=no gst-inspect-1.0 "$e" >/dev/null; then
        log "gst-inspect-1.0 $e failed"
        exit 1
    fi
done
chmod 0644 "$root$reg"
