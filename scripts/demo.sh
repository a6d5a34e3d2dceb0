#!/usr/bin/env bash
# The main job, end to end, on this machine: two local hosts (host-a is this
# machine's state root /tmp/tsmigrate-demo/host-a; host-b is an sshd on
# 127.0.0.2 with its own state root), a stateful container on host-a, and
# `tsmigrate move` to host-b over SSH. Shows it kept counting from where it was.
# Everything it made is removed at the end.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=node-flags.sh
. "$REPO/scripts/node-flags.sh"
DEMO=${TSMIGRATE_DEMO_DIR:-/tmp/tsmigrate-demo}
IMAGES=${TSMIGRATE_IMAGES_DIR:-/var/cache/tsmigrate/images}
export TSMIGRATE_HOSTS_DIR=$DEMO/hosts TSMIGRATE_HOSTS_STATE=$DEMO/state SSH_AUTH_SOCK=
A=$DEMO/host-a
CFG=$DEMO/config.yaml
T() { node $TSM_NODE_FLAGS "$REPO/dist/src/cli/main.js" --root "$A" --config "$CFG" "$@"; }
TB() { node $TSM_NODE_FLAGS "$REPO/dist/src/cli/main.js" --root "$DEMO/state/host-b" "$@"; }
say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (sudo bash $0)" >&2; exit 1; }
[ -f "$REPO/dist/src/cli/main.js" ] || { echo "demo: not built: run scripts/setup.sh first" >&2; exit 1; }
cleanup() {
  T rm -f demo >/dev/null 2>&1 || true
  TB rm -f demo >/dev/null 2>&1 || true
  bash "$REPO/scripts/local-hosts.sh" stop host-b --purge >/dev/null 2>&1 || true
  rm -rf "$DEMO"
}
trap cleanup EXIT
cleanup
mkdir -p "$A"

say "start a local peer host: host-b, an sshd on 127.0.0.2 with its own host key and state root"
bash "$REPO/scripts/local-hosts.sh" start host-b 127.0.0.2 2222 >/dev/null
cmd=$(bash "$REPO/scripts/local-hosts.sh" add-command host-b | tail -1)
eval "set -- ${cmd#tsmigrate }"
T "$@"
T host ls

say "host-b trusts host-a's signing key: it restores only checkpoints and moves signed by keys it trusts"
bash "$REPO/scripts/local-hosts.sh" trust host-b "$A"

say "on host-a: a container that keeps its count in memory (a shell variable)"
T image import busybox "$IMAGES/busybox/rootfs" >/dev/null
T run -d demo --image busybox --net bridge --memory 64m -- \
  sh -c 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo "count $i on $(hostname)"; sleep 0.1; done'
sleep 2
T ps
before=$(T exec demo -- cat /tmp/count); echo "count on host-a: $before"

say "tsmigrate move demo host-b"
T move demo host-b

say "on host-b: the same container, same IP, still counting from where it was"
TB ps
T ps
after=$(TB exec demo -- cat /tmp/count); echo "count on host-b: $after"
[ "$after" -gt "$before" ] || { echo "demo: FAILED: the count did not go on" >&2; exit 1; }
TB logs demo | tail -3
T history
echo
echo "demo: OK"
