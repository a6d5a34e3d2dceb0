#!/usr/bin/env bash
# Build the root filesystems tsmigrate's tests use. Idempotent; run as root.
#
#   scripts/build-images.sh [OUTDIR]        (default /var/cache/tsmigrate/images)
#
#   OUTDIR/busybox/rootfs   Debian's static busybox + applet symlinks + minimal /etc (seconds)
#   OUTDIR/debian/rootfs    debootstrap --variant=minbase bookworm with python3, redis-server (minutes)
#
# Each image is built in a temporary directory next to its final place and renamed
# into place only when complete, so an interrupted build never leaves half an
# image behind. A finished image is marked by OUTDIR/<name>/.complete and reused.
#
# Environment:
#   TSMIGRATE_DEBIAN_SUITE   suite for the debian image (default bookworm)
#   TSMIGRATE_DEBIAN_MIRROR  mirror (default http://deb.debian.org/debian)
#   TSMIGRATE_IMAGES_ONLY    "busybox" or "debian" to build just one of them
#
# Importing into tsmigrate's image store is separate:
#   tsmigrate image import busybox OUTDIR/busybox/rootfs
set -euo pipefail

OUTDIR=${1:-/var/cache/tsmigrate/images}
SUITE=${TSMIGRATE_DEBIAN_SUITE:-bookworm}
MIRROR=${TSMIGRATE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ONLY=${TSMIGRATE_IMAGES_ONLY:-}
BUSYBOX_STAMP_VERSION=1 # bump when the busybox layout below changes

log() { printf 'build-images: %s\n' "$*" >&2; }
die() { printf 'build-images: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (try: sudo $0 $*)"
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

# Unmount everything mounted below DIR (deepest first), e.g. the proc/sys/dev
# mounts debootstrap leaves when it is killed, then delete DIR without ever
# crossing into another filesystem.
unmount_below() {
  local dir=$1 m
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$dir" '{ gsub(/\\040/, " ", $2); if (index($2, d "/") == 1 || $2 == d) print $2 }' /proc/self/mounts | sort -r)
}
remove_tree() {
  [ -e "$1" ] || return 0
  unmount_below "$1"
  rm -rf --one-file-system "$1"
}

# swap_in TMP FINAL: replace FINAL by TMP (rename; the old tree is removed after).
swap_in() {
  local tmp=$1 final=$2
  remove_tree "$final.old"
  [ -e "$final" ] && mv "$final" "$final.old"
  mv "$tmp" "$final"
  remove_tree "$final.old"
}

# ---------------------------------------------------------------- busybox ----
build_busybox() {
  local dir=$OUTDIR/busybox bb stamp tmp a
  bb=
  for a in /bin/busybox /usr/bin/busybox; do [ -x "$a" ] && { bb=$a; break; }; done
  [ -n "$bb" ] || die "busybox not found (apt-get install busybox-static)"
  if ldd "$bb" >/dev/null 2>&1; then
    die "$bb is dynamically linked; install Debian's busybox-static (apt-get install busybox-static)"
  fi
  mkdir -p "$dir"
  stamp="v$BUSYBOX_STAMP_VERSION $(sha256sum "$bb" | cut -d' ' -f1)"
  if [ -f "$dir/.complete" ] && [ -d "$dir/rootfs" ] && [ "$(cat "$dir/.complete")" = "$stamp" ]; then
    log "busybox image up to date"
    return 0
  fi
  log "building busybox image from $bb"
  tmp=$dir/.rootfs.tmp
  remove_tree "$tmp"
  rm -f "$dir/.complete"
  mkdir -p "$tmp"
  (
    umask 022
    cd "$tmp"
    mkdir -p bin etc proc sys dev root var/log var/tmp home run tmp usr
    chmod 1777 tmp var/tmp
    chmod 700 root
    ln -s bin sbin
    ln -s ../bin usr/bin
    ln -s ../bin usr/sbin
    cp "$bb" bin/busybox
    chmod 755 bin/busybox
    for a in $("$bb" --list); do
      [ "$a" = busybox ] || ln -sf busybox "bin/$a"
    done
    cat >etc/passwd <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >etc/group <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
    echo busybox >etc/hostname
    cat >etc/hosts <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF
    chmod 644 etc/passwd etc/group etc/hostname etc/hosts
  )
  chown -R 0:0 "$tmp"
  swap_in "$tmp" "$dir/rootfs"
  echo "$stamp" >"$dir/.complete"
  log "busybox image: $(ls "$dir/rootfs/bin" | wc -l) entries in /bin"
}

# ----------------------------------------------------------------- debian ----
build_debian() {
  local dir=$OUTDIR/debian tmp t0
  mkdir -p "$dir"
  if [ -f "$dir/.complete" ] && [ -d "$dir/rootfs" ]; then
    log "debian image up to date ($(cat "$dir/.complete"))"
    return 0
  fi
  command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
  exec 8>"$dir/.lock"
  flock 8
  tmp=$dir/.rootfs.tmp
  # Whatever an interrupted run left: unmount and remove it.
  remove_tree "$tmp"
  rm -f "$dir/.complete"
  trap 'remove_tree "$tmp"' EXIT
  log "building debian image ($SUITE minbase + python3, redis-server) with debootstrap; this takes minutes"
  t0=$(date +%s)
  if ! debootstrap --variant=minbase --include=python3,redis-server "$SUITE" "$tmp" "$MIRROR" \
      >"$dir/debootstrap.log" 2>&1; then
    tail -n 30 "$dir/debootstrap.log" >&2
    [ -f "$tmp/debootstrap/debootstrap.log" ] && tail -n 30 "$tmp/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (full log: $dir/debootstrap.log)"
  fi
  # Leave no mounts behind, drop caches that only make the image bigger.
  unmount_below "$tmp"
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_Packages* "$tmp"/var/cache/apt/*.bin
  echo debian >"$tmp/etc/hostname"
  swap_in "$tmp" "$dir/rootfs"
  trap - EXIT
  echo "$SUITE minbase+python3,redis-server built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(($(date +%s) - t0))s" >"$dir/.complete"
  log "debian image built in $(($(date +%s) - t0))s"
}

case "$ONLY" in
  "") build_busybox; build_debian ;;
  busybox) build_busybox ;;
  debian) build_debian ;;
  *) die "TSMIGRATE_IMAGES_ONLY must be busybox or debian, not '$ONLY'" ;;
esac

[ "$ONLY" = debian ] || echo "busybox rootfs: $OUTDIR/busybox/rootfs"
[ "$ONLY" = busybox ] || echo "debian rootfs:  $OUTDIR/debian/rootfs"
