#!/usr/bin/env bash
# Makes the arm64 chroot runnable through the host's qemu-aarch64 binfmt_misc entry.
#
#   binfmt.sh ROOT           mmdebstrap --setup-hook (ROOT = the new chroot)
#   binfmt.sh --remove ROOT  after mmdebstrap: take the interpreter out again
#
# Without the F flag ("fix binary"), the kernel looks the interpreter up inside the chroot at
# each exec. qemu-user-binfmt registers /usr/libexec/qemu-binfmt/aarch64-binfmt-P; the
# registration on this machine has no F flag, and mmdebstrap would then insist on
# /usr/bin/qemu-aarch64-static. So image.sh runs mmdebstrap with --skip=check/qemu and this
# hook copies the (static) interpreter into the chroot at the registered path.
# Nothing to do on an arm64 host or with the F flag.
set -euo pipefail
remove=0
if [ "${1:-}" = --remove ]; then remove=1; shift; fi
root="$1"
status=/proc/sys/fs/binfmt_misc/qemu-aarch64
[ "$(uname -m)" = aarch64 ] && exit 0
[ -r "$status" ] || { echo "binfmt: qemu-aarch64 is not registered with binfmt_misc" >&2; exit 1; }
interp="$(sed -n 's/^interpreter //p' "$status")"
grep -q '^flags: [A-Z]*F' "$status" && exit 0
if [ "$remove" -eq 1 ]; then
    # Only if it is ours: the same file as the host's interpreter.
    if [ -f "$root$interp" ] && cmp -s "$root$interp" "$(readlink -f "$interp")"; then
        rm -f "$root$interp"
        rmdir "$(dirname "$root$interp")" 2>/dev/null || true
    fi
    exit 0
fi
real="$(readlink -f "$interp")"
if command -v file >/dev/null 2>&1 && ! file -b "$real" | grep -q 'static'; then
    echo "binfmt: $real is not statically linked; it cannot run inside the chroot" >&2
    exit 1
fi
install -D -m 0755 "$real" "$root$interp"
