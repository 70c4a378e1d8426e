#!/usr/bin/env bash
# mmdebstrap --essential-hook: runs on the host after the Essential:yes packages are
# installed, before --include (so before linux-image and initramfs-tools). $1 = rootfs.
#
# MODULES=list: the initramfs holds only what mounting /dev/vda (virtio-blk, ext4) needs.
# With the default MODULES=most, update-initramfs under qemu-user takes over 10 minutes.
set -euo pipefail
root="$1"
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/usr/share/initramfs-tools/modules.d"
cat >"$root/etc/initramfs-tools/conf.d/roomd.conf" <<'CONF'
# roomd QEMU guest: only the listed modules (modules.d/roomd) and their dependencies.
MODULES=list
CONF
# Dependencies (crc16, mbcache, jbd2, crc32c, virtio_ring, ...) are added by mkinitramfs.
printf '%s\n' virtio virtio_ring virtio_pci virtio_mmio virtio_blk virtio_console ext4 \
    >"$root/usr/share/initramfs-tools/modules.d/roomd"
