#!/usr/bin/env bash
# Mount the cgroup v1 net_cls and net_prio controllers where the kernel has them, nothing
# mounted them, and the host keeps its resource controllers in v1 (pure v1 or hybrid): as
# systemd does, one hierarchy at /sys/fs/cgroup/net_cls,net_prio with net_cls and net_prio
# links to it. `run --net-cls-classid` and `--net-prio` need it. Pure cgroup v2 hosts are left
# alone: v2 has neither controller, and tsmigrate uses the v2 backend there.
# Idempotent; prints one line saying what it found or did. Run as root.
set -euo pipefail
ROOT=${TSMIGRATE_CGROUP_MOUNT_ROOT:-/sys/fs/cgroup}

# "NAME HIERARCHY ENABLED" for one controller from /proc/cgroups; empty if the kernel lacks it
ctl() { awk -v n="$1" '$1 == n { print $2, $4 }' /proc/cgroups; }

read -r mem_h _ <<<"$(ctl memory)" || true
if [ -z "${mem_h:-}" ] || [ "$mem_h" = 0 ]; then
  echo "net_cls/net_prio: not mounted (cgroup v2 host: v2 has no such controllers)"
  exit 0
fi
want=()
for c in net_cls net_prio; do
  read -r h en <<<"$(ctl "$c")" || true
  if [ -z "${h:-}" ]; then continue; fi           # not in this kernel
  if [ "$en" = 1 ] && [ "$h" = 0 ]; then want+=("$c"); fi
done
if [ "${#want[@]}" -eq 0 ]; then
  have=$(awk '$1 == "net_cls" || $1 == "net_prio" { if ($2 != 0) printf "%s ", $1 }' /proc/cgroups)
  echo "net_cls/net_prio: ${have:-none in this kernel}${have:+already mounted}"
  exit 0
fi
opts=$(IFS=,; echo "${want[*]}")
dir="$ROOT/$opts"
if ! { mkdir -p "$dir" && mount -t cgroup -o "$opts" cgroup "$dir"; } 2>/dev/null; then
  echo "net_cls/net_prio: could not mount $opts at $dir (is $ROOT read-only?): run --net-cls-classid/--net-prio are refused on this host"
  exit 0
fi
if [ "${#want[@]}" -gt 1 ]; then
  for c in "${want[@]}"; do [ -e "$ROOT/$c" ] || ln -s "$opts" "$ROOT/$c"; done
fi
echo "net_cls/net_prio: mounted $opts at $dir"
