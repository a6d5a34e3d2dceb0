#!/usr/bin/env bash
# Install CRIU >= 4.2 for tsmigrate. Idempotent; run as root.
#
# Debian bookworm ships CRIU 3.17, which fails on current kernels, and trixie's
# 4.1.1 cannot dump TCP sockets here. So:
#   1. if a private CRIU already exists in $PREFIX and works -> do nothing;
#   2. else if the system `criu` is >= 4.2 and `criu check` passes -> use it;
#   3. else download Debian sid's criu and its library closure with a PRIVATE
#      apt configuration (the system's apt sources and dpkg database are never
#      touched), unpack it with `dpkg -x` into $PREFIX/root and write a wrapper
#      $PREFIX/bin/criu that runs it through the private dynamic loader.
#
# The loader's --library-path applies only to criu itself, not to programs
# criu executes (iptables-restore, ip, ...), which keep using the system libc.
#
# Environment:
#   TSMIGRATE_CRIU_PREFIX  install prefix (default /opt/tsmigrate/criu)
#   TSMIGRATE_CRIU_SUITE   Debian suite to take criu from (default sid)
#   TSMIGRATE_CRIU_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   TSMIGRATE_CRIU_FORCE=1 reinstall the private copy even if one works
set -euo pipefail

MIN_MAJOR=4
MIN_MINOR=2
PREFIX=${TSMIGRATE_CRIU_PREFIX:-/opt/tsmigrate/criu}
SUITE=${TSMIGRATE_CRIU_SUITE:-sid}
MIRROR=${TSMIGRATE_CRIU_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
ROOT=$PREFIX/root
FETCH=$PREFIX/fetch
WRAPPER=$PREFIX/bin/criu

log() { printf 'install-criu: %s\n' "$*" >&2; }
die() { printf 'install-criu: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (try: sudo $0)"

case "$(dpkg --print-architecture)" in
  amd64) TRIPLET=x86_64-linux-gnu; LDSO=ld-linux-x86-64.so.2 ;;
  arm64) TRIPLET=aarch64-linux-gnu; LDSO=ld-linux-aarch64.so.1 ;;
  *) die "unsupported architecture $(dpkg --print-architecture) (supported: amd64, arm64)" ;;
esac
ARCH=$(dpkg --print-architecture)

# version_ok CMD... : true when `CMD --version` reports >= MIN_MAJOR.MIN_MINOR.
version_of() { "$@" --version 2>/dev/null | sed -n 's/^Version: *\([0-9][0-9.]*\).*/\1/p' | head -n1; }
version_ok() {
  local v major minor
  v=$(version_of "$@") || return 1
  [ -n "$v" ] || return 1
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  [ "$minor" = "$v" ] && minor=0
  [ "$major" -gt "$MIN_MAJOR" ] || { [ "$major" -eq "$MIN_MAJOR" ] && [ "$minor" -ge "$MIN_MINOR" ]; }
}
# check_ok CMD... : `CMD check` passes ("Looks good."). Output goes to $CHECK_OUT.
CHECK_OUT=
check_ok() { CHECK_OUT=$("$@" check 2>&1) && printf '%s\n' "$CHECK_OUT" | grep -q 'Looks good'; }
warn_tools() {
  local t
  for t in iptables-restore ip; do
    command -v "$t" >/dev/null 2>&1 || log "warning: '$t' not found; CRIU needs it (apt-get install iptables iproute2, or run scripts/setup.sh)"
  done
}

# ---- 1. private copy already working: nothing to do -------------------------
if [ "${TSMIGRATE_CRIU_FORCE:-0}" != 1 ] && [ -x "$WRAPPER" ] && version_ok "$WRAPPER" && check_ok "$WRAPPER"; then
  log "CRIU $(version_of "$WRAPPER") already installed at $WRAPPER (criu check: ok)"
  warn_tools
  exit 0
fi

# ---- 2. system criu good enough ---------------------------------------------
if [ "${TSMIGRATE_CRIU_FORCE:-0}" != 1 ] && SYS=$(command -v criu 2>/dev/null) && [ "$SYS" != "$WRAPPER" ]; then
  if version_ok "$SYS" && check_ok "$SYS"; then
    log "using system CRIU $(version_of "$SYS") at $SYS (criu check: ok)"
    warn_tools
    exit 0
  fi
  log "system criu at $SYS (version '$(version_of "$SYS" || true)') is older than $MIN_MAJOR.$MIN_MINOR or fails 'criu check'; installing a private CRIU"
fi

# ---- 3. private install from Debian $SUITE ----------------------------------
[ -r "$KEYRING" ] || die "$KEYRING missing (apt-get install debian-archive-keyring)"
command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "apt-get and dpkg are required"

mkdir -p "$PREFIX"
exec 9>"$PREFIX/.install.lock"
flock 9

retry() { # retry N LABEL CMD...: run CMD up to N times, backing off between tries
  local n=$1 label=$2 i=1; shift 2
  until "$@"; do
    [ "$i" -ge "$n" ] && return 1
    log "$label: attempt $i/$n failed; retrying in $((i * 5))s" 2>&3
    sleep $((i * 5)); i=$((i + 1))
  done
}

exec 3>&2 # retry() reports on the terminal even while apt's output goes to a log
mkdir -p "$FETCH/lists/partial" "$FETCH/cache/archives/partial"
echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main" >"$FETCH/sources.list"
APT_OPTS=(
  -o "Dir::Etc::SourceList=$FETCH/sources.list"
  -o "Dir::Etc::SourceParts=/nonexistent"
  -o "Dir::State::Lists=$FETCH/lists"
  -o "Dir::Cache=$FETCH/cache"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
  -o "Debug::NoLocking=1"
  -o "APT::Architecture=$ARCH"
  -o "APT::Architectures=$ARCH"
  -o "Acquire::Languages=none"
  -o "Acquire::Retries=3"
)

log "fetching the $SUITE package index into $FETCH"
retry 3 "apt-get update ($SUITE)" apt-get -q --error-on=any "${APT_OPTS[@]}" update >"$FETCH/update.log" 2>&1 \
  || { cat "$FETCH/update.log" >&2; die "apt-get update for $SUITE failed (see above)"; }

# criu and everything it depends on, recursively; virtual packages (<name>) dropped.
mapfile -t PKGS < <(apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances criu | grep -v '^ ' | grep -v '^<' | sort -u)
[ "${#PKGS[@]}" -gt 0 ] && printf '%s\n' "${PKGS[@]}" | grep -qx criu \
  || die "could not resolve criu's dependencies from $SUITE"
log "downloading ${#PKGS[@]} packages: ${PKGS[*]}"

rm -rf "$FETCH/debs.new"
mkdir -p "$FETCH/debs.new"
(cd "$FETCH/debs.new" && retry 3 "apt-get download" apt-get -q "${APT_OPTS[@]}" download "${PKGS[@]}") >"$FETCH/download.log" 2>&1 \
  || { cat "$FETCH/download.log" >&2; die "downloading criu packages failed (see above)"; }

# Unpack into a fresh tree, verify it, then swap it in (an interrupted run never
# leaves a half-populated root behind).
rm -rf "$ROOT.new"
mkdir -p "$ROOT.new"
for d in "$FETCH"/debs.new/*.deb; do dpkg -x "$d" "$ROOT.new"; done
L=$ROOT.new/usr/lib/$TRIPLET
[ -x "$L/$LDSO" ] || die "unpacked tree has no $L/$LDSO"
NEWVER=$("$L/$LDSO" --library-path "$L" "$ROOT.new/usr/sbin/criu" --version 2>&1 | sed -n 's/^Version: *//p' | head -n1)
[ -n "$NEWVER" ] || die "unpacked criu does not run: $("$L/$LDSO" --library-path "$L" "$ROOT.new/usr/sbin/criu" --version 2>&1 | head -n3)"
log "unpacked CRIU $NEWVER"

rm -rf "$ROOT.old" "$FETCH/debs.old"
[ -e "$ROOT" ] && mv "$ROOT" "$ROOT.old"
mv "$ROOT.new" "$ROOT"
[ -e "$FETCH/debs" ] && mv "$FETCH/debs" "$FETCH/debs.old"
mv "$FETCH/debs.new" "$FETCH/debs"
rm -rf "$ROOT.old" "$FETCH/debs.old"

mkdir -p "$PREFIX/bin"
L=$ROOT/usr/lib/$TRIPLET
cat >"$WRAPPER.tmp" <<EOF
#!/bin/sh
# Generated by tsmigrate scripts/install-criu.sh: CRIU $NEWVER from Debian $SUITE,
# run with its own C library. --library-path is not inherited by programs
# criu executes (iptables-restore, ip, ...), which use the system libraries.
exec '$L/$LDSO' --library-path '$L' '$ROOT/usr/sbin/criu' "\$@"
EOF
chmod 755 "$WRAPPER.tmp"
mv "$WRAPPER.tmp" "$WRAPPER"

version_ok "$WRAPPER" || die "$WRAPPER reports version '$(version_of "$WRAPPER")', need >= $MIN_MAJOR.$MIN_MINOR"
if ! check_ok "$WRAPPER"; then
  printf '%s\n' "$CHECK_OUT" >&2
  die "'$WRAPPER check' failed (see above)"
fi
printf '%s\n' "$CHECK_OUT" | grep -v '^Looks good' | sed 's/^/install-criu: criu check: /' >&2 || true
warn_tools
log "installed CRIU $NEWVER at $WRAPPER (criu check: Looks good.)"
