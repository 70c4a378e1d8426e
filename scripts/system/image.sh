#!/usr/bin/env bash
# Builds (once) the bootable Debian bookworm arm64 guest of the booted QEMU system test and
# prints the absolute path of its directory on stdout, one line:
#
#   $ROOMD_CACHE_DIR/system/image-<kernel package version>-<hash>
#     vmlinuz       kernel, from the rootfs /boot
#     initrd.img    initramfs (MODULES=list: virtio + ext4 only), from the rootfs /boot
#     rootfs.ext4   raw ext4 (mke2fs -d), / on /dev/vda; boot it with snapshot=on
#     cmdline       the kernel command line to pass with -append
#     manifest.txt  key=value: kernel_abi, kernel_package_version, gpio_sim (module or
#                   "unavailable: <reason>"), key, packages, ...
#     build.log     the build's log
#
# The key is the version of Debian's current linux-image-arm64 kernel (asked from the mirror
# each run through a private arm64 apt directory: one metadata query, about a second when
# nothing changed) plus a hash of this script and everything under scripts/system/image/.
# A new kernel upload or a recipe change builds a new image (7-15 minutes on 2 busy cores,
# mostly dpkg under qemu-user); otherwise the run is quiet (about a second). If the mirror
# cannot be reached, the newest cached image is used with a warning. Progress goes to stderr.
#
# gpio-sim.ko (Debian's arm64 kernel has no gpio-sim) is built from linux-source of the
# same version by image/gpio-sim/build.sh and cached apart from the image, in
# system/gpio-sim-<version>-<hash>/, so a rootfs-only change does not rebuild it. If it
# cannot be built, the image is still made, with gpio_sim=unavailable: <reason>.
#
# Builds are atomic (temp dir + rename) and serialised by a lock; the two newest images
# (and gpio-sim builds) are kept.
#
# Environment: ROOMD_CACHE_DIR (default ~/.cache/roomd),
#   ROOMD_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#   ROOMD_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security).
#
# The guest (what the harness can rely on):
#   - Debian 12 arm64, hostname roomd-qemu, default target multi-user.target, no network.
#   - Root has no password and is logged in automatically on ttyAMA0 (the serial console
#     prints "roomd-qemu login: root (automatic login)").
#   - /mnt/roomd: the 9p share with mount_tag roomd, read-only (mnt-roomd.mount).
#   - roomd-harness-agent.service runs /bin/bash /mnt/roomd/harness/agent.sh
#     /dev/virtio-ports/org.roomd.harness as root when both exist (Restart=always, 1 s).
#     When the host side of the port is not connected, reads return EOF: the agent exits
#     and is restarted.
#   - GST_REGISTRY=/var/cache/gstreamer-1.0/registry.aarch64.bin for every service
#     (system.conf.d DefaultEnvironment) and login shell (profile.d): the registry is made at
#     build time, so gst-inspect-1.0 takes < 1 s instead of ~10 s on first use.
#   - Groups gpio (system), video, audio; /dev/gpiochip* are root:gpio 0660 (udev rule).
#   - /dev/gpiochip0 is QEMU virt's PL061 (8 lines; line 3 is held by gpio-keys, "GPIO Key
#     Poweroff"). With gpio_sim=module: `modprobe gpio-sim`, then configfs
#     /sys/kernel/config/gpio-sim/<chip>/bank0/{num_lines,lineK/name}, <chip>/live=1; the
#     chip is /dev/gpiochip1 and its lines are driven through
#     /sys/devices/platform/gpio-sim.0/gpiochip1/sim_gpioK/{pull,value} (pull-up|pull-down).
#   - journald: Debian defaults (persistent /var/log/journal, on the snapshot).
#   - Media devices through real kernel drivers, loaded at boot (modules-load.d/roomd-media.conf,
#     options in modprobe.d/roomd-media.conf; manifest media_modules=):
#       /dev/video0     vivid, a V4L2 capture node whose one input is a webcam (320x180 ...
#                       3840x2160; I420, YUYV, ...), root:video 0660
#       ALSA "Loopback" snd-aloop, 2 substreams: played on hw:Loopback,0,N = captured on
#                       hw:Loopback,1,N and the other way round; /dev/snd/* root:audio 0660
#       /dev/dri/card0  virtio-gpu, when QEMU has -device virtio-gpu-pci (with edid=off, its
#                       xres x yres is the connector's preferred mode, which fbcon sets; no
#                       vblank: kmssink needs force-modesetting); root:video 0660
#     GStreamer's alsa plugin (alsasrc, alsasink), v4l2src, kmssink; aplay and arecord
#     (alsa-utils).
#
# Boot (qemu-system-aarch64 10.0; cortex-a72 is the fastest -cpu under TCG here):
#   qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic -nic none -no-reboot \
#     -kernel $D/vmlinuz -initrd $D/initrd.img -append "$(cat $D/cmdline)" \
#     -drive file=$D/rootfs.ext4,format=raw,if=virtio,snapshot=on \
#     -virtfs local,path=$SHARE,mount_tag=roomd,security_model=none,readonly=on \
#     -device virtio-serial-pci -chardev socket,id=harness,path=$SOCK,server=on,wait=off \
#     -device virtserialport,chardev=harness,name=org.roomd.harness \
#     -device virtio-gpu-pci,edid=off,xres=320,yres=180 \
#     -qmp unix:$QMP,server=on,wait=off
set -euo pipefail

log() { printf 'image: %s\n' "$*" >&2; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 1; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
IMAGE_FILES="$HERE/image"
ROOMD_CACHE_DIR="${ROOMD_CACHE_DIR:-${HOME:-/root}/.cache/roomd}"
SYSTEM_DIR="$ROOMD_CACHE_DIR/system"
MIRROR="${ROOMD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${ROOMD_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
SUITE=bookworm
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# Guest packages (mmdebstrap --variant=minbase adds Essential:yes + apt; no recommends).
# The kernel (linux-image-<abi>=<version>) is added at build time.
PACKAGES=(
    systemd systemd-sysv udev kmod dbus procps passwd initramfs-tools
    gpiod
    libgstreamer1.0-0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-tools
    # openh264dec: libgstopenh264.so is in gstreamer1.0-plugins-bad, which depends on it.
    libopenh264-7
    # The guest's real media devices (vivid, snd-aloop, virtio-gpu): alsasrc/alsasink, and
    # aplay/arecord for the harness to play and record the loopback's other side. kmssink
    # and v4l2src come with plugins-bad and plugins-good.
    gstreamer1.0-alsa alsa-utils
)
# Checked with gst-inspect-1.0 at build time (this also writes the shared registry).
GST_ELEMENTS=(x264enc openh264dec opusenc opusdec rtph264pay rtph264depay h264parse
    videotestsrc audiotestsrc appsink appsrc compositor audiomixer webrtcdsp webrtcechoprobe
    v4l2src alsasrc alsasink kmssink)
# Kernel modules the guest loads at boot (rootfs /etc/modules-load.d/roomd-media.conf, options
# in /etc/modprobe.d/roomd-media.conf); the customize hook fails the build if one is missing
# from the kernel package. They load from the rootfs, after / is mounted: the initramfs
# (MODULES=list) carries only what mounting / needs.
MEDIA_MODULES=(vivid snd-aloop virtio-gpu)
# Kernel command line. fsck.mode=skip: the root is a throwaway snapshot.
CMDLINE="root=/dev/vda rw rootfstype=ext4 console=ttyAMA0 fsck.mode=skip panic=-1 net.ifnames=0"
# Free space left in rootfs.ext4 (sparse: costs nothing until written).
FREE_MB=512

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap --mode=root, chroot, mke2fs -d of root-owned files)"
mkdir -p "$SYSTEM_DIR"

# ---------------------------------------------------------------- kernel version (apt)
# A private arm64 apt directory: the host's apt configuration, sources and state are never
# read or written (APT_CONFIG is read before /etc/apt/apt.conf.d, and moves Dir::Etc).
APT_DIR="$SYSTEM_DIR/apt-arm64"
APT_CONF="$APT_DIR/apt.conf"

setup_private_apt() {
    mkdir -p "$APT_DIR/etc/apt.conf.d" "$APT_DIR/etc/preferences.d" "$APT_DIR/etc/sources.list.d" \
        "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/state"
    [ -e "$APT_DIR/status" ] || : >"$APT_DIR/status"
    local conf
    conf="$(cat <<EOF
Dir::Etc "$APT_DIR/etc";
Dir::Etc::Parts "$APT_DIR/etc/apt.conf.d";
Dir::Etc::SourceList "$APT_DIR/etc/sources.list";
Dir::Etc::SourceParts "$APT_DIR/etc/sources.list.d";
Dir::State "$APT_DIR/state";
Dir::State::Lists "$APT_DIR/lists";
Dir::State::status "$APT_DIR/status";
Dir::Cache "$APT_DIR/cache";
Dir::Log "$APT_DIR/state";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
Acquire::Languages "none";
Acquire::Retries "2";
Acquire::http::Timeout "20";
Debug::NoLocking "true";
APT::Sandbox::User "root";
EOF
)"
    [ "$(cat "$APT_CONF" 2>/dev/null)" = "$conf" ] || printf '%s\n' "$conf" >"$APT_CONF"
    local sources
    sources="$(printf 'deb [signed-by=%s] %s\n' \
        "$KEYRING" "$MIRROR $SUITE main" "$KEYRING" "$MIRROR $SUITE-updates main" \
        "$KEYRING" "$SECURITY $SUITE-security main")"
    [ "$(cat "$APT_DIR/etc/sources.list" 2>/dev/null)" = "$sources" ] ||
        printf '%s\n' "$sources" >"$APT_DIR/etc/sources.list"
}

papt_get() { APT_CONFIG="$APT_CONF" apt-get "$@"; }
papt_cache() { APT_CONFIG="$APT_CONF" apt-cache "$@"; }

# Sets KERNEL_ABI (6.1.0-NN-arm64) and KERNEL_VERSION (package version); returns 1 if the
# mirror could not be asked.
resolve_kernel() {
    setup_private_apt
    local out dep
    exec 8>"$SYSTEM_DIR/.apt.lock"
    flock 8
    # apt-get update exits 0 when a fetch fails ("W: Failed to fetch"; old lists kept).
    local failed='^(E: |W: (Failed to fetch|Some index files failed))'
    if ! out="$(papt_get update -q 2>&1)" || printf '%s\n' "$out" | grep -Eq "$failed"; then
        flock -u 8
        printf '%s\n' "$out" | grep -E '^[WE]: ' | tail -n 5 >&2 || true
        return 1
    fi
    dep="$(papt_cache show --no-all-versions linux-image-arm64 2>/dev/null |
        sed -n 's/^Depends: .*\(linux-image-[0-9][^ ,]*-arm64\).*/\1/p' | head -n 1)"
    [ -n "$dep" ] || { flock -u 8; log "linux-image-arm64 has no linux-image-<abi>-arm64 dependency"; return 1; }
    KERNEL_ABI="${dep#linux-image-}"
    KERNEL_VERSION="$(papt_cache show --no-all-versions "$dep" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)"
    flock -u 8
    [ -n "$KERNEL_VERSION" ] || { log "no version for $dep"; return 1; }
}

# ---------------------------------------------------------------- cache keys
# Hash of files (paths relative to scripts/system, content, executable bit).
hash_files() {
    (cd "$HERE" && find "$@" -type f -print0 | LC_ALL=C sort -z |
        while IFS= read -r -d '' f; do
            printf '%s %s %s\n' "$f" "$([ -x "$f" ] && echo x || echo -)" "$(sha256sum <"$f" | cut -d' ' -f1)"
        done) | sha256sum | cut -c1-12
}

image_ready() { [ -f "$1/manifest.txt" ] && [ -f "$1/rootfs.ext4" ]; }

newest_image() {
    local d all
    # shellcheck disable=SC2012  # names are ours: image-<version>-<hex>
    mapfile -t all < <(ls -1dt "$SYSTEM_DIR"/image-* 2>/dev/null)
    for d in "${all[@]}"; do
        image_ready "$d" && { printf '%s\n' "$d"; return 0; }
    done
    return 1
}

# Keeps the two newest entries matching the glob (never $2, the one just made).
prune() {
    local pattern="$1" keep="$2" old d
    # shellcheck disable=SC2012,SC2086  # names are ours; $pattern is a glob
    mapfile -t old < <(ls -1dt "$SYSTEM_DIR"/$pattern 2>/dev/null | tail -n +3)
    for d in "${old[@]}"; do
        [ "$d" = "$keep" ] && continue
        log "removing old $(basename "$d")"
        remove_dirs "$d"
    done
}

# ---------------------------------------------------------------- gpio-sim
# Sets GPIO_SIM_KO (path of the cached module) or GPIO_SIM_STATUS ("unavailable: ...").
gpio_sim_module() {
    local dir
    dir="$SYSTEM_DIR/gpio-sim-${KERNEL_VERSION//[:~]/_}-$(hash_files image/gpio-sim image/hooks/binfmt.sh)"
    GPIO_SIM_KO="" GPIO_SIM_STATUS=""
    if [ -s "$dir/gpio-sim.ko" ]; then
        GPIO_SIM_KO="$dir/gpio-sim.ko"
        return 0
    fi
    log "building gpio-sim.ko for $KERNEL_ABI $KERNEL_VERSION (3-8 minutes)"
    local t0=$SECONDS tmp="$SYSTEM_DIR/.gpio-sim.tmp$$" glog="$SYSTEM_DIR/.gpio-sim.tmp$$.log"
    mkdir -p "$tmp/work"
    TMP_DIRS+=("$tmp" "$glog")
    if APT_CONFIG="$APT_CONF" "$IMAGE_FILES/gpio-sim/build.sh" \
        "$KERNEL_ABI" "$KERNEL_VERSION" "$tmp/work" "$tmp/gpio-sim.ko" >"$glog" 2>&1; then
        rm -rf --one-file-system "$tmp/work"
        mv "$glog" "$tmp/build.log"
        mv -T "$tmp" "$dir"
        GPIO_SIM_KO="$dir/gpio-sim.ko"
        log "gpio-sim.ko built in $((SECONDS - t0)) s"
        prune 'gpio-sim-*' "$dir"
    else
        tail -n 20 "$glog" | sed 's/^/  | /' >&2
        # Reason: the last error-looking line of the log.
        local reason
        reason="$(grep -E 'error|Error|E: |failed' "$glog" | tail -n 1 | cut -c1-200)"
        GPIO_SIM_STATUS="unavailable: build failed: ${reason:-see build.log}"
        log "warning: gpio-sim.ko could not be built; the image is made without it"
        cp "$glog" "$IMAGE_TMP/gpio-sim-build.log" 2>/dev/null || true
    fi
}

# ---------------------------------------------------------------- rootfs + image
build_image() {
    local image="$1" tmp="$IMAGE_TMP" blog="$IMAGE_TMP/build.log" root="$IMAGE_TMP/rootfs"
    local kpkg="linux-image-$KERNEL_ABI" include t0=$SECONDS t1
    gpio_sim_module
    t1=$SECONDS
    include="$(IFS=,; printf '%s' "${PACKAGES[*]},$kpkg=$KERNEL_VERSION")"
    log "building rootfs for $KERNEL_ABI $KERNEL_VERSION (mmdebstrap under qemu-user; 5-10 minutes)"
    # Mirrors are explicit and stdin is /dev/null: otherwise mmdebstrap reads sources from
    # stdin when it is not a terminal. The hooks are expanded by mmdebstrap's sh.
    # shellcheck disable=SC2016
    if ! ROOMD_IMAGE_OVERLAY="$IMAGE_FILES/rootfs" ROOMD_IMAGE_ABI="$KERNEL_ABI" \
        ROOMD_IMAGE_GPIO_SIM="$GPIO_SIM_KO" ROOMD_IMAGE_GST_ELEMENTS="${GST_ELEMENTS[*]}" \
        ROOMD_IMAGE_MODULES="${MEDIA_MODULES[*]}" \
        ROOMD_IMAGE_HOOKS="$IMAGE_FILES/hooks" \
        mmdebstrap --mode=root --arch=arm64 --variant=minbase --format=directory --skip=check/qemu \
        --include="$include" \
        --aptopt='Acquire::Retries "3"' --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --setup-hook='"$ROOMD_IMAGE_HOOKS/binfmt.sh" "$1"' \
        --essential-hook='"$ROOMD_IMAGE_HOOKS/essential.sh" "$1"' \
        --customize-hook='"$ROOMD_IMAGE_HOOKS/customize.sh" "$1"' \
        "$SUITE" "$root" \
        "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY $SUITE-security main" \
        </dev/null >>"$blog" 2>&1; then
        tail -n 30 "$blog" | sed 's/^/  | /' >&2
        die "mmdebstrap failed (log: $FAILED_LOG)"
    fi
    "$IMAGE_FILES/hooks/binfmt.sh" --remove "$root"
    log "rootfs ready in $((SECONDS - t1)) s"

    local got
    got="$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Version}' "$kpkg" 2>/dev/null)" ||
        die "$kpkg is not installed in the rootfs (log: $FAILED_LOG)"
    [ "$got" = "$KERNEL_VERSION" ] || die "rootfs has $kpkg $got, wanted $KERNEL_VERSION"
    { [ -f "$root/boot/vmlinuz-$KERNEL_ABI" ] && [ -f "$root/boot/initrd.img-$KERNEL_ABI" ]; } ||
        die "kernel or initramfs missing from the rootfs /boot (log: $FAILED_LOG)"
    # mmdebstrap may leave the build host's name behind.
    cp "$IMAGE_FILES/rootfs/etc/hostname" "$root/etc/hostname"
    rm -f "$root/etc/resolv.conf"
    cp "$root/boot/vmlinuz-$KERNEL_ABI" "$tmp/vmlinuz"
    cp "$root/boot/initrd.img-$KERNEL_ABI" "$tmp/initrd.img"

    local used_mb size_mb
    used_mb="$(du -sm --one-file-system "$root" | cut -f1)"
    size_mb=$(((used_mb * 115 / 100 + FREE_MB + 63) / 64 * 64))
    log "rootfs.ext4: ${used_mb} MB used, ${size_mb} MB file"
    mke2fs -q -F -t ext4 -L roomd-root -m 0 -E root_owner=0:0 -d "$root" "$tmp/rootfs.ext4" "${size_mb}M" >>"$blog" 2>&1 ||
        { tail -n 20 "$blog" | sed 's/^/  | /' >&2; die "mke2fs failed (log: $FAILED_LOG)"; }
    rm -rf --one-file-system "$root"

    printf '%s\n' "$CMDLINE" >"$tmp/cmdline"
    local manifest
    manifest="$(
        printf 'kernel_abi=%s\n' "$KERNEL_ABI"
        printf 'kernel_package_version=%s\n' "$KERNEL_VERSION"
        if [ -n "$GPIO_SIM_KO" ]; then echo "gpio_sim=module"; else printf 'gpio_sim=%s\n' "$GPIO_SIM_STATUS"; fi
        printf 'key=%s\n' "$KEY"
        printf 'packages=%s\n' "$(IFS=,; printf '%s' "${PACKAGES[*]},$kpkg")"
        printf 'gst_registry=/var/cache/gstreamer-1.0/registry.aarch64.bin\n'
        printf 'media_modules=%s\n' "$(IFS=,; printf '%s' "${MEDIA_MODULES[*]}")"
        printf 'debian_mirror=%s\n' "$MIRROR"
        printf 'built=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    )"
    # Written last: an image dir with manifest.txt is complete.
    printf '%s\n' "$manifest" >"$tmp/manifest.txt"
    mv -T "$tmp" "$image"
    IMAGE_TMP=""
    log "image ready in $((SECONDS - t0)) s: $image ($(du -sh "$image" | cut -f1) on disk)"
}

# Removes build directories. A build killed inside mmdebstrap leaves its rootfs's /proc, /sys
# and /dev mounts behind, which rm cannot remove: those are detached first (lazily: a
# stale /dev/shm may still be busy).
remove_dirs() {
    local d m mounts
    for d in "$@"; do
        [ -e "$d" ] || continue
        mapfile -t mounts < <(findmnt -rn -o TARGET | awk -v p="$d/" 'index($0, p) == 1' | sort -r)
        for m in "${mounts[@]}"; do
            umount -l "$m" || log "warning: cannot unmount $m"
        done
        rm -rf --one-file-system "$d"
    done
}

# Temp dirs removed on exit (the lock holder is the only writer of .image-*/.gpio-sim-*).
TMP_DIRS=()
IMAGE_TMP=""
FAILED_LOG="$SYSTEM_DIR/image-failed.log"
cleanup() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ -n "$IMAGE_TMP" ] && [ -f "$IMAGE_TMP/build.log" ]; then
        cp "$IMAGE_TMP/build.log" "$FAILED_LOG" 2>/dev/null || true
    fi
    remove_dirs "${TMP_DIRS[@]}"
    return "$rc"
}
trap cleanup EXIT

main() {
    local files_hash image
    if ! resolve_kernel; then
        image="$(newest_image)" ||
            die "cannot ask $MIRROR / $SECURITY for the current arm64 kernel and no image is cached"
        log "warning: cannot ask the Debian mirror for the current kernel; using the newest cached image $(basename "$image")"
        printf '%s\n' "$image"
        return 0
    fi
    files_hash="$(hash_files image.sh image)"
    KEY="${KERNEL_VERSION//[:~]/_}-$files_hash"
    image="$SYSTEM_DIR/image-$KEY"
    if ! image_ready "$image"; then
        command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap missing: run scripts/deps.sh host"
        command -v mke2fs >/dev/null 2>&1 || die "mke2fs missing: run scripts/deps.sh qemu-system"
        [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
            die "qemu-aarch64 is not registered with binfmt_misc: run scripts/deps.sh binfmt"
        exec 9>"$SYSTEM_DIR/.image.lock"
        if ! flock -n 9; then
            log "waiting for another image.sh run"
            flock 9
        fi
        if ! image_ready "$image"; then
            # Leftovers of interrupted builds (we hold the lock: nobody else is building).
            remove_dirs "$SYSTEM_DIR"/.image-*.tmp* "$SYSTEM_DIR"/.gpio-sim.tmp* "$image"
            IMAGE_TMP="$SYSTEM_DIR/.image-$KEY.tmp$$"
            TMP_DIRS+=("$IMAGE_TMP")
            mkdir -p "$IMAGE_TMP"
            build_image "$image"
            rm -f "$FAILED_LOG"
            prune 'image-*' "$image"
        fi
        flock -u 9
        exec 9>&-
    fi
    printf '%s\n' "$image"
}

main "$@"
