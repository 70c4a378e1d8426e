#!/usr/bin/env bash
# Installs everything roomd needs to build, cross-build and test, on a fresh
# Debian 12 (bookworm) machine. Idempotent and quiet when everything is
# present (then it takes well under a second).
#
#   scripts/deps.sh [STEP...]     STEP: host rust binfmt sysroot qemu-system npm fuzz soak deny all (default: all)
#
#   host     apt packages: host GStreamer dev + plugins + tools, C toolchains,
#            aarch64 cross gcc, qemu-user (+ binfmt), mmdebstrap
#   rust     rustup target aarch64-unknown-linux-gnu, components clippy rustfmt
#   binfmt   registers qemu-aarch64 with binfmt_misc, so aarch64 binaries that a
#            test spawns (CARGO_BIN_EXE_*) run under qemu too; best effort
#   sysroot  arm64 sysroot under ~/.cache/roomd/sysroot-arm64-<hash> (see
#            scripts/lib/sysroot.sh), built atomically; warms the arm64
#            GStreamer registry
#   qemu-system  qemu-system-aarch64 from bookworm-backports (bookworm's 7.2
#            cannot be installed beside the image's backported qemu-utils 10),
#            e2fsprogs (mke2fs -d); for the booted system test
#   npm      apt packages nodejs (>= 20), npm, chromium; `npm ci` in tests/node
#            (jsxapi + playwright-core for the xAPI and touch-panel tests) when
#            its package-lock.json changed since the last run (stamp under
#            ~/.cache/roomd/npm-stamps) or node_modules is missing; npm cache
#            ~/.cache/roomd/npm
#   fuzz     cargo-fuzz (pinned version) for `make fuzz`; not part of `all`
#   soak     apt package faketime (libfaketime: the soak's clock jumps); not part of `all`
#   deny     cargo-deny (pinned version, scripts/lib/cargo-deny.sh) under
#            ~/.cache/roomd/tools/cargo-deny-<version>, shared by every clone; for
#            `scripts/test.sh security` (which runs this step itself); not part of `all`
#
# Environment: ROOMD_CACHE_DIR (default ~/.cache/roomd),
#   ROOMD_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#   ROOMD_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/sysroot.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/sysroot.sh"
# shellcheck source-path=SCRIPTDIR source=lib/cargo-deny.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/cargo-deny.sh"

log() { printf 'deps: %s\n' "$*" >&2; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

HOST_APT_PACKAGES=(
    # native build
    gcc libc6-dev pkg-config ca-certificates
    # host GStreamer (native build + native tests)
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-tools
    # aarch64 cross build + emulated tests
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross
    qemu-user qemu-user-binfmt
    # arm64 sysroot
    mmdebstrap debian-archive-keyring
)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# ---------------------------------------------------------------- host (apt)
missing_apt_packages() {
    # Installed = status "ii" for the native architecture or arch:all, so a
    # foreign-arch (:arm64) copy never counts as the host package.
    local native
    native="$(dpkg --print-architecture)"
    dpkg-query -W -f='${Package} ${Architecture} ${db:Status-Abbrev}\n' "$@" 2>/dev/null |
        awk -v native="$native" -v want="$*" '
            ($2 == native || $2 == "all") && $3 == "ii" { ok[$1] = 1 }
            END { n = split(want, w, " "); for (i = 1; i <= n; i++) if (!(w[i] in ok)) print w[i] }'
}

# Installs whichever of the given apt packages are missing; nothing to do: silent, no apt-get.
install_apt_packages() {
    local missing
    mapfile -t missing < <(missing_apt_packages "$@")
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A failing third-party source must not stop the Debian ones from updating.
    as_root apt-get update -q -o DPkg::Lock::Timeout=300 >&2 || log "warning: apt-get update reported errors; trying the install anyway"
    as_root apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >&2
    mapfile -t missing < <(missing_apt_packages "$@")
    [ "${#missing[@]}" -eq 0 ] || die "still missing after apt-get install: ${missing[*]}"
}

deps_host() {
    install_apt_packages "${HOST_APT_PACKAGES[@]}"
}

# ---------------------------------------------------------------- rust
deps_rust() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs) and put ~/.cargo/bin on PATH"
    command -v rustup >/dev/null 2>&1 || die "rustup not found: the aarch64 target and clippy/rustfmt are installed with rustup"
    local sr
    sr="$(rustc --print sysroot)"
    if [ ! -d "$sr/lib/rustlib/aarch64-unknown-linux-gnu/lib" ]; then
        log "rustup target add aarch64-unknown-linux-gnu"
        rustup target add aarch64-unknown-linux-gnu >&2
    fi
    local comps=()
    [ -x "$sr/bin/cargo-clippy" ] || comps+=(clippy)
    [ -x "$sr/bin/rustfmt" ] || comps+=(rustfmt)
    if [ "${#comps[@]}" -gt 0 ]; then
        log "rustup component add ${comps[*]}"
        rustup component add "${comps[@]}" >&2
    fi
}

# ---------------------------------------------------------------- binfmt
# Without binfmt_misc, qemu-user only emulates the process the cargo runner
# starts: an aarch64 test that spawns another aarch64 binary gets
# "Exec format error (os error 8)". Registration is global to the machine
# (root only; fine inside containers that allow it). QEMU_LD_PREFIX, which the
# runner exports, is inherited by the spawned children, so they find the
# sysroot too.
deps_binfmt() {
    local dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [ -e "$dir/qemu-aarch64" ] && return 0
    if [ ! -f "$conf" ]; then
        log "warning: $conf missing (package qemu-user-binfmt); tests that spawn aarch64 binaries will fail"
        return 0
    fi
    if [ ! -e "$dir/register" ]; then
        as_root mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null || true
    fi
    if [ -w "$dir/register" ] || [ "$(id -u)" -ne 0 ]; then
        if grep -v '^#' "$conf" | as_root tee "$dir/register" >/dev/null 2>&1; then
            log "registered qemu-aarch64 with binfmt_misc"
            return 0
        fi
    fi
    [ -e "$dir/qemu-aarch64" ] ||
        log "warning: could not register qemu-aarch64 with binfmt_misc; tests that spawn aarch64 binaries will fail under qemu"
}

# ---------------------------------------------------------------- sysroot
fix_absolute_symlinks() {
    # Absolute links (e.g. usr/lib/aarch64-linux-gnu/libz.so -> /lib/...) would
    # resolve on the host; rewrite them relative so they stay in the sysroot.
    local root="$1" link target dir
    while IFS= read -r -d '' link; do
        target="$(readlink "$link")"
        case "$target" in /dev/* | /proc/* | /sys/* | /run/*) continue ;; esac
        dir="$(cd "$(dirname "$link")" && pwd -P)"
        ln -sfn "$(realpath -m -s --relative-to="$dir" "$root$target")" "$link"
    done < <(find "$root" -type l -lname '/*' -print0)
}

verify_sysroot() {
    local root="$1" f bad=0
    local lib="usr/lib/$ROOMD_SYSROOT_TRIPLE" plug="usr/lib/$ROOMD_SYSROOT_TRIPLE/gstreamer-1.0"
    for f in lib/ld-linux-aarch64.so.1 "$lib/libc.so" "lib/$ROOMD_SYSROOT_TRIPLE/libgcc_s.so.1" \
        "$lib/pkgconfig/gstreamer-1.0.pc" "$lib/pkgconfig/gstreamer-app-1.0.pc" \
        "$lib/pkgconfig/gstreamer-video-1.0.pc" "$lib/pkgconfig/gstreamer-rtp-1.0.pc" \
        "$lib/libgstreamer-1.0.so" "$lib/libz.so" \
        "$plug/libgstcoreelements.so" "$plug/libgstapp.so" "$plug/libgstvideotestsrc.so" \
        "$plug/libgstaudiotestsrc.so" "$plug/libgstx264.so" "$plug/libgstopus.so" "$plug/libgstrtp.so"; do
        [ -e "$root/$f" ] || { log "sysroot check: missing $f"; bad=1; }
    done
    return "$bad"
}

build_sysroot() {
    local tmp="$1" log_file="$1.log"
    local mirror="${ROOMD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    local security="${ROOMD_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
    local s="$ROOMD_SYSROOT_SUITE" include
    include="$(IFS=,; printf '%s' "${ROOMD_SYSROOT_PACKAGES[*]}")"
    log "building arm64 sysroot $(basename "$ROOMD_SYSROOT") (about 30 s)"
    # Mirrors are passed explicitly: without them mmdebstrap reads them from
    # stdin whenever stdin is not a terminal (CI). The extract variant only
    # unpacks (no maintainer scripts), so no emulation is needed; apt still
    # resolves the dependency closure of --include.
    if ! mmdebstrap --variant=extract --architectures="$ROOMD_SYSROOT_ARCH" --format=directory \
        --include="$include" --aptopt='Acquire::Retries "3"' \
        "$s" "$tmp" \
        "deb $mirror $s main" "deb $mirror $s-updates main" "deb $security $s-security main" \
        </dev/null >"$log_file" 2>&1; then
        tail -n 25 "$log_file" >&2
        die "mmdebstrap failed (full log: $log_file)"
    fi
    local p
    for p in "${ROOMD_SYSROOT_PRUNE[@]}"; do rm -rf "${tmp:?}/$p"; done
    fix_absolute_symlinks "$tmp"
    verify_sysroot "$tmp" || die "arm64 sysroot incomplete (log: $log_file)"
    {
        echo "recipe=$ROOMD_SYSROOT_RECIPE suite=$ROOMD_SYSROOT_SUITE arch=$ROOMD_SYSROOT_ARCH"
        printf '%s\n' "${ROOMD_SYSROOT_PACKAGES[@]}"
    } >"$tmp/$ROOMD_SYSROOT_STAMP"
    rm -f "$log_file"
}

# Keep the two newest sysroots (another checkout may still use the previous
# recipe); older ones and their registries go.
prune_old_sysroots() {
    local old d
    # shellcheck disable=SC2012  # names are ours: sysroot-arm64-<hex>
    mapfile -t old < <(ls -1dt "$ROOMD_CACHE_DIR"/sysroot-"$ROOMD_SYSROOT_ARCH"-* 2>/dev/null | tail -n +3)
    for d in "${old[@]}"; do
        [ "$d" = "$ROOMD_SYSROOT" ] && continue
        log "removing old sysroot $(basename "$d")"
        rm -rf "$d" "$ROOMD_CACHE_DIR/gst-registry-$ROOMD_SYSROOT_ARCH-${d##*-}.bin"
    done
}

deps_sysroot() {
    if ! roomd_sysroot_ready; then
        command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap missing: run scripts/deps.sh host first"
        mkdir -p "$ROOMD_CACHE_DIR"
        local lock="$ROOMD_CACHE_DIR/.sysroot.lock"
        exec 9>"$lock"
        if ! flock -n 9; then
            log "waiting for another deps.sh building the sysroot"
            flock 9
        fi
        if ! roomd_sysroot_ready; then
            # Leftovers of interrupted builds (we hold the lock: nobody else is building).
            rm -rf "$ROOMD_CACHE_DIR"/.sysroot-*.tmp* "$ROOMD_SYSROOT"
            local t0=$SECONDS tmp
            tmp="$ROOMD_CACHE_DIR/.sysroot-$ROOMD_SYSROOT_ARCH-$ROOMD_SYSROOT_HASH.tmp$$"
            build_sysroot "$tmp"
            mv -T "$tmp" "$ROOMD_SYSROOT"
            rm -f "$ROOMD_GST_REGISTRY_ARM64"
            log "arm64 sysroot ready in $((SECONDS - t0)) s: $ROOMD_SYSROOT ($(du -sh "$ROOMD_SYSROOT" | cut -f1))"
            prune_old_sysroots
        fi
        flock -u 9
        exec 9>&-
    fi
    warm_gst_registry
}

# First GStreamer init under qemu scans every plugin in-process
# (GST_REGISTRY_FORK=no), which takes a while; do it once here, and check that
# the emulated GStreamer really finds the encoders the tests use.
warm_gst_registry() {
    [ -s "$ROOMD_GST_REGISTRY_ARM64" ] && return 0
    command -v qemu-aarch64 >/dev/null 2>&1 || die "qemu-aarch64 missing: run scripts/deps.sh host first"
    log "scanning arm64 GStreamer plugins under qemu (once per sysroot)"
    local t0=$SECONDS out
    if ! out="$("$ROOMD_REPO/scripts/qemu-runner.sh" "$ROOMD_SYSROOT/usr/bin/gst-inspect-1.0" x264enc 2>&1)"; then
        printf '%s\n' "$out" | tail -n 20 >&2
        rm -f "$ROOMD_GST_REGISTRY_ARM64"
        die "gst-inspect-1.0 x264enc failed under qemu-aarch64"
    fi
    log "arm64 GStreamer registry ready in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- qemu-system
BACKPORTS_LIST=/etc/apt/sources.list.d/roomd-bookworm-backports.list

deps_qemu_system() {
    install_apt_packages e2fsprogs
    [ -z "$(missing_apt_packages qemu-system-arm)" ] && command -v qemu-system-aarch64 >/dev/null 2>&1 && return 0
    local mirror="${ROOMD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    if ! grep -qrs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        log "adding bookworm-backports ($BACKPORTS_LIST)"
        printf 'deb %s bookworm-backports main\n' "$mirror" | as_root tee "$BACKPORTS_LIST" >/dev/null
    fi
    log "installing qemu-system-arm from bookworm-backports"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q -o DPkg::Lock::Timeout=300 >&2 || log "warning: apt-get update reported errors; trying the install anyway"
    as_root apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
        -t bookworm-backports qemu-system-arm >&2
    command -v qemu-system-aarch64 >/dev/null 2>&1 || die "qemu-system-aarch64 still missing after installing qemu-system-arm"
}

# ---------------------------------------------------------------- npm
# tests/node: the jsxapi client and the touch panel in headless Chromium, run by
# the Rust test harness against a real roomd + roomd-sim.
NPM_APT_PACKAGES=(nodejs npm chromium)
NPM_DIRS=(tests/node)
NODE_MIN_MAJOR=18 # Debian 12 ships nodejs 18; playwright-core 1.60 is the newest that supports it

deps_npm() {
    local want=() p
    for p in "${NPM_APT_PACKAGES[@]}"; do
        # NodeSource's nodejs carries npm itself and conflicts with Debian's npm package:
        # a working npm command is enough.
        [ "$p" = npm ] && command -v npm >/dev/null 2>&1 && continue
        want+=("$p")
    done
    install_apt_packages "${want[@]}"

    local major
    major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null)" || die "node does not run"
    [ "$major" -ge "$NODE_MIN_MAJOR" ] ||
        die "node $(node --version) is too old: the npm tests need Node >= $NODE_MIN_MAJOR"

    local dir lock sum stamp
    for dir in "${NPM_DIRS[@]}"; do
        lock="$ROOMD_REPO/$dir/package-lock.json"
        [ -f "$lock" ] || die "$dir/package-lock.json missing"
        sum="$(sha256sum "$lock" | cut -d' ' -f1)"
        # One stamp per checkout and folder: worktrees share the cache but not node_modules.
        stamp="$ROOMD_CACHE_DIR/npm-stamps/$(printf '%s' "$ROOMD_REPO/$dir" | sha256sum | cut -c1-16)"
        if [ -d "$ROOMD_REPO/$dir/node_modules" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
            continue
        fi
        log "npm ci in $dir"
        # --ignore-scripts: nothing here needs one (playwright-core never downloads browsers;
        # ssh2's optional native cpu-features would only want node-gyp).
        mkdir -p "$ROOMD_CACHE_DIR/npm" "$(dirname "$stamp")"
        (cd "$ROOMD_REPO/$dir" &&
            npm ci --no-audit --no-fund --ignore-scripts --loglevel=error --cache "$ROOMD_CACHE_DIR/npm") >&2 ||
            die "npm ci failed in $dir"
        printf '%s\n' "$sum" >"$stamp.tmp.$$"
        mv -f "$stamp.tmp.$$" "$stamp"
    done
}

# ---------------------------------------------------------------- fuzz
CARGO_FUZZ_VERSION=0.13.2

deps_fuzz() {
    if cargo fuzz --version 2>/dev/null | grep -qF "cargo-fuzz $CARGO_FUZZ_VERSION"; then
        return
    fi
    log "cargo install cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz >&2 ||
        die "cargo install cargo-fuzz failed"
}

# ---------------------------------------------------------------- soak
deps_soak() {
    install_apt_packages faketime
}

# ---------------------------------------------------------------- deny
cargo_deny_installed() {
    [ -x "$CARGO_DENY" ] && "$CARGO_DENY" --version 2>/dev/null | grep -qxF "cargo-deny $CARGO_DENY_VERSION"
}

deps_deny() {
    cargo_deny_installed && return
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"
    mkdir -p "$ROOMD_CACHE_DIR/tools"
    # One install at a time: clones (CI) share the root.
    exec 8>"$ROOMD_CACHE_DIR/tools/.cargo-deny.lock"
    if ! flock -n 8; then
        log "waiting for another deps.sh installing cargo-deny"
        flock 8
    fi
    if ! cargo_deny_installed; then
        local tmp="$CARGO_DENY_ROOT.tmp$$" t0=$SECONDS
        rm -rf "$CARGO_DENY_ROOT" "$ROOMD_CACHE_DIR"/tools/cargo-deny-*.tmp*
        log "cargo install cargo-deny $CARGO_DENY_VERSION into $CARGO_DENY_ROOT (once per machine; a few minutes)"
        # A throw-away target dir of its own, not the shared one: its features differ and
        # nothing else reuses them.
        env -u CARGO_TARGET_DIR cargo install --quiet --locked --version "$CARGO_DENY_VERSION" \
            --root "$tmp" -j "${JOBS:-2}" cargo-deny >&2 ||
            { rm -rf "$tmp"; die "cargo install cargo-deny $CARGO_DENY_VERSION failed"; }
        mv -T "$tmp" "$CARGO_DENY_ROOT"
        cargo_deny_installed || die "$CARGO_DENY does not report version $CARGO_DENY_VERSION"
        log "cargo-deny $CARGO_DENY_VERSION ready in $((SECONDS - t0)) s"
    fi
    flock -u 8
    exec 8>&-
}

# ---------------------------------------------------------------- main
steps=("$@")
[ "${#steps[@]}" -eq 0 ] && steps=(all)
for step in "${steps[@]}"; do
    case "$step" in
        all) deps_host; deps_rust; deps_binfmt; deps_sysroot; deps_qemu_system; deps_npm ;;
        host) deps_host ;;
        rust) deps_rust ;;
        binfmt) deps_binfmt ;;
        sysroot) deps_sysroot ;;
        qemu-system) deps_qemu_system ;;
        npm) deps_npm ;;
        fuzz) deps_fuzz ;;
        soak) deps_soak ;;
        deny) deps_deny ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown step '$step' (host rust binfmt sysroot qemu-system npm fuzz soak deny all)" ;;
    esac
done
