#!/usr/bin/env bash
# The main job, end to end, on this machine: start a stateful demo container,
# freeze it, show it stopped counting, thaw it, show it kept its state.
# Uses its own state root (/tmp/tsmigrate-demo) and removes everything after.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${TSMIGRATE_DEMO_ROOT:-/tmp/tsmigrate-demo}
IMAGES=${TSMIGRATE_IMAGES_DIR:-/var/cache/tsmigrate/images}
T() { node "$REPO/dist/src/cli/main.js" --root "$ROOT" "$@"; }
say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (sudo bash $0)" >&2; exit 1; }
[ -f "$REPO/dist/src/cli/main.js" ] || { echo "demo: not built: run scripts/setup.sh first" >&2; exit 1; }
cleanup() { T rm -f demo >/dev/null 2>&1 || true; rm -rf "$ROOT"; }
trap cleanup EXIT
cleanup

say "import the busybox test image"
T image import busybox "$IMAGES/busybox/rootfs"

say "start a container that counts in memory (its shell variable) and writes the count"
T run -d demo --image busybox --memory 64m --pids-limit 64 -- \
  sh -c 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'
sleep 1
T ps
c1=$(T exec demo -- cat /tmp/count); echo "count: $c1"

say "freeze it (freezer cgroup): the count stops"
T freeze demo
a=$(cat "$ROOT/containers/demo/rootfs/upper/tmp/count"); sleep 1; b=$(cat "$ROOT/containers/demo/rootfs/upper/tmp/count")
echo "count while frozen: $a, one second later: $b"
[ "$a" = "$b" ] || { echo "demo: FAILED: the count moved while frozen" >&2; exit 1; }
T ps

say "thaw it: it goes on from where it was"
T thaw demo
sleep 1
c2=$(T exec demo -- cat /tmp/count); echo "count: $c2"
[ "$c2" -gt "$b" ] || { echo "demo: FAILED: the count did not resume" >&2; exit 1; }

say "remove it: nothing is left behind"
T rm -f demo
T ps
echo
echo "demo: OK"
