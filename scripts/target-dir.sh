#!/usr/bin/env bash
# Prepares the cargo target dir for this checkout; make runs it before cargo.
#
# The Makefile points CARGO_TARGET_DIR at ~/.cache/roomd/target, shared by
# every clone on the machine, so a fresh clone (CI) reuses the compiled
# dependencies. This script:
#   1. wipes the shared dir when it has grown past ROOMD_TARGET_MAX_MB
#      (cargo never prunes it; the next build is then a cold one);
#   2. makes ./target a symlink to it, so target/<triple>/release/roomd
#      resolves in the repository (and lists /target in .git/info/exclude,
#      since a `target/` pattern in .gitignore does not match a symlink);
#   3. when the checkout using the shared dir changed since the last build,
#      forces cargo to rebuild the workspace's own crates. Cargo gives a
#      workspace crate the same artefact names in every checkout and judges
#      freshness by mtimes: a checkout whose files are older than the
#      artefacts another checkout built would get that checkout's binaries,
#      with its paths baked in (env!("CARGO_MANIFEST_DIR") pointing at the
#      other clone). Deleting those crates' fingerprints avoids that.
# A real ./target directory, or a CARGO_TARGET_DIR inside the repository, is
# used as is and none of this applies.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$(pwd -P)"
cache="${ROOMD_CACHE_DIR:-$HOME/.cache/roomd}"
tdir="$(realpath -m "${CARGO_TARGET_DIR:-$cache/target}")"
max_mb="${ROOMD_TARGET_MAX_MB:-40000}"

log() { printf 'target: %s\n' "$*" >&2; }

case "$tdir" in
    "$repo"/*) exit 0 ;; # per-checkout target dir: nothing shared
esac

# 1. size cap (only for the default shared dir under the cache)
if [ "$tdir" = "$(realpath -m "$cache")/target" ] && [ -d "$tdir" ]; then
    mb="$(du -sm "$tdir" | cut -f1)"
    if [ "$mb" -gt "$max_mb" ]; then
        log "shared target dir $tdir is $mb MB (> ROOMD_TARGET_MAX_MB=$max_mb); wiping it"
        rm -rf "$tdir"
    fi
fi
mkdir -p "$tdir"

# 2. ./target symlink
if [ -L target ]; then
    [ "$(readlink target)" = "$tdir" ] || ln -sfn "$tdir" target
elif [ -e target ]; then
    log "note: ./target is a real directory; cargo output goes to $tdir"
else
    ln -s "$tdir" target
fi
if [ -L target ] && excl="$(git rev-parse --git-path info/exclude 2>/dev/null)"; then
    if ! grep -qxF /target "$excl" 2>/dev/null; then
        mkdir -p "$(dirname "$excl")"
        echo /target >>"$excl"
    fi
fi

# 3. checkout switch
marker="$tdir/.roomd-checkout"
last="$(cat "$marker" 2>/dev/null || true)"
[ "$last" = "$repo" ] && exit 0
if [ -n "$last" ]; then
    mapfile -t pkgs < <(cargo metadata --no-deps --format-version 1 2>/dev/null |
        perl -MJSON::PP -0777 -ne 'print "$_->{name}\n" for @{decode_json($_)->{packages}}' 2>/dev/null || true)
    if [ "${#pkgs[@]}" -eq 0 ]; then
        log "warning: cannot list the workspace packages (cargo metadata failed); not invalidating"
        exit 0
    fi
    names=(-false)
    for p in "${pkgs[@]}"; do names+=(-o -name "$p-*"); done
    for fp in "$tdir"/*/.fingerprint "$tdir"/*/*/.fingerprint; do
        [ -d "$fp" ] || continue
        # Cargo holds this lock (flock) while it builds in that profile dir.
        flock "$(dirname "$fp")/.cargo-lock" \
            find "$fp" -mindepth 1 -maxdepth 1 \( "${names[@]}" \) -exec rm -rf {} +
    done
    log "shared target dir last used by $last; workspace crates (${pkgs[*]}) will be rebuilt"
fi
echo "$repo" >"$marker"
