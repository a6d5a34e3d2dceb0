#!/usr/bin/env bash
# Local test hosts: several "hosts" on this machine, each an sshd of its own on
# its own loopback address (127.0.0.0/8 only), with its own host key and its own
# tsmigrate state root. Used by the README demo and the integration tests.
#
#   local-hosts.sh start NAME ADDR [PORT]   start (no-op when already running);
#                                           prints the known_hosts line on stdout
#   local-hosts.sh stop NAME [--purge]      stop it and remove its directory
#                                           (--purge: its state root as well)
#   local-hosts.sh rekey NAME               new host key, restart (same ADDR:PORT)
#   local-hosts.sh status [NAME]            NAME ADDR:PORT PID running|stopped
#   local-hosts.sh line NAME                print its known_hosts line
#   local-hosts.sh add-command NAME         print the `tsmigrate host add` for it
#   local-hosts.sh trust NAME ROOT          make NAME trust the signing key of state root ROOT
#                                           (made there if missing): moves from it are accepted
#
# Layout (TSMIGRATE_HOSTS_DIR, default /run/tsmigrate-hosts):
#   client_ed25519{,.pub}      client key shared by all hosts (created once)
#   bin/tsmigrate              wrapper running this repository's build
#   NAME/sshd_config ssh_host_ed25519_key{,.pub} authorized_keys sshd.pid sshd.log
#   NAME/addr                  "ADDR PORT"
#   NAME/known_hosts.line      "[ADDR]:PORT ssh-ed25519 AAAA..." (ADDR alone for port 22)
#   NAME/known_hosts           the same line, as a file usable as a known_hosts file
# State roots: TSMIGRATE_HOSTS_STATE (default /var/lib/tsmigrate-hosts)/NAME;
# sessions on the host get TSMIGRATE_ROOT set to it, TSMIGRATE_CONFIG to NAME/config.yaml
# in it (the keys it trusts: `trust`), and bin/ first on PATH.
# shellcheck disable=SC2015 # `test && test || die` is meant as written
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=node-flags.sh
. "$REPO/scripts/node-flags.sh"
HOSTS_DIR=${TSMIGRATE_HOSTS_DIR:-/run/tsmigrate-hosts}
STATE_DIR=${TSMIGRATE_HOSTS_STATE:-/var/lib/tsmigrate-hosts}
SSHD=/usr/sbin/sshd

die() { echo "local-hosts: $*" >&2; exit 1; }
usage() { sed -n '6,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

check_name() {
  [[ "$1" =~ ^[a-z0-9][a-z0-9_.-]{0,62}$ ]] || die "invalid host name \"$1\": use 1-63 characters [a-z0-9_.-], starting with a letter or digit"
}
check_addr() {
  # Loopback only: a test rig must never listen on a real interface.
  if [[ "$1" =~ ^127\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$ ]] &&
    ((10#${BASH_REMATCH[1]} <= 255 && 10#${BASH_REMATCH[2]} <= 255 && 10#${BASH_REMATCH[3]} <= 255)); then
    return 0
  fi
  die "address \"$1\" is not a loopback address: use 127.0.0.2 ... 127.255.255.254"
}
check_port() {
  [[ "$1" =~ ^[1-9][0-9]{0,4}$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535)) || die "invalid port \"$1\": use 1-65535"
}

pid_of() { # prints the pid of NAME's running sshd, or fails
  local pf="$HOSTS_DIR/$1/sshd.pid" pid
  [ -f "$pf" ] || return 1
  pid=$(tr -dc 0-9 <"$pf")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # the pid must still be our sshd (pids get reused)
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$HOSTS_DIR/$1/sshd_config" || return 1
  echo "$pid"
}

hostport() { if [ "$2" = 22 ]; then echo "$1"; else echo "[$1]:$2"; fi; }

# shellcheck disable=SC2016 # $0 and $1 expand in the inner bash
can_connect() { timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

lock() {
  mkdir -p "$HOSTS_DIR"
  chmod 755 "$HOSTS_DIR"
  exec 9>"$HOSTS_DIR/.lock"
  flock 9
}

ensure_client_key() {
  local k="$HOSTS_DIR/client_ed25519"
  if [ ! -f "$k" ]; then
    ssh-keygen -q -t ed25519 -N '' -C "tsmigrate-local-hosts-client" -f "$k" >/dev/null
  fi
  chmod 600 "$k"
  mkdir -p "$HOSTS_DIR/bin"
  cat >"$HOSTS_DIR/bin/tsmigrate.tmp" <<EOF
#!/bin/sh
# tsmigrate on the local test hosts: this repository's build
exec $(command -v node) $TSM_NODE_FLAGS "$REPO/dist/src/cli/main.js" "\$@"
EOF
  chmod 755 "$HOSTS_DIR/bin/tsmigrate.tmp"
  mv -f "$HOSTS_DIR/bin/tsmigrate.tmp" "$HOSTS_DIR/bin/tsmigrate"
}

write_config() { # NAME ADDR PORT
  local d="$HOSTS_DIR/$1" nodedir
  nodedir=$(dirname "$(command -v node)")
  cat >"$d/sshd_config" <<EOF
# local test host "$1" (scripts/local-hosts.sh); loopback only
ListenAddress $2:$3
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
StrictModes no
# no AcceptEnv line: clients may not pass any variables
PermitUserEnvironment no
UseDNS no
LogLevel VERBOSE
PrintMotd no
PrintLastLog no
X11Forwarding no
MaxSessions 32
MaxStartups 30:30:100
SetEnv TSMIGRATE_ROOT=$STATE_DIR/$1 TSMIGRATE_CONFIG=$STATE_DIR/$1/config.yaml PATH=$HOSTS_DIR/bin:$nodedir:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
}

print_line() {
  local d="$HOSTS_DIR/$1"
  [ -f "$d/known_hosts.line" ] || die "host \"$1\" is not set up: run $0 start $1 ADDR [PORT]"
  cat "$d/known_hosts.line"
}

add_command() {
  local d="$HOSTS_DIR/$1" addr port
  read -r addr port <"$d/addr"
  echo "tsmigrate host add $1 ssh://root@$addr:$port --identity $HOSTS_DIR/client_ed25519 --known-hosts $d/known_hosts --command \"$HOSTS_DIR/bin/tsmigrate --root $STATE_DIR/$1\""
}

launch() { # NAME ADDR PORT: start sshd and wait for it
  local d="$HOSTS_DIR/$1" i pid
  mkdir -p /run/sshd # privilege separation directory
  chmod 755 /run/sshd
  "$SSHD" -t -f "$d/sshd_config" || die "sshd refused $d/sshd_config (see above)"
  rm -f "$d/sshd.pid"
  "$SSHD" -f "$d/sshd_config" -E "$d/sshd.log" || die "sshd failed to start: $(tail -n 3 "$d/sshd.log" 2>/dev/null | tr '\n' ' ')"
  for ((i = 0; i < 100; i++)); do
    if pid=$(pid_of "$1") && can_connect "$2" "$3"; then
      return 0
    fi
    sleep 0.1
  done
  die "sshd for \"$1\" did not start listening on $2:$3 in 10 s: $(tail -n 3 "$d/sshd.log" 2>/dev/null | tr '\n' ' ')"
}

kill_sshd() { # NAME: stop its listener and its sessions
  local pid kids i
  pid=$(pid_of "$1") || return 0
  kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
  kill -TERM "$pid" 2>/dev/null || true
  for k in $kids; do kill -TERM "$k" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cmd_start() {
  [ $# -ge 2 ] && [ $# -le 3 ] || usage
  local name=$1 addr=$2 port=${3:-2222} d
  check_name "$name"; check_addr "$addr"; check_port "$port"
  [ "$(id -u)" -eq 0 ] || die "run as root (sshd needs it to switch users)"
  [ -x "$SSHD" ] || die "$SSHD not found: apt-get install openssh-server"
  d="$HOSTS_DIR/$name"
  lock
  if pid_of "$name" >/dev/null; then
    local raddr rport
    read -r raddr rport <"$d/addr"
    [ "$raddr" = "$addr" ] && [ "$rport" = "$port" ] ||
      die "host \"$name\" is already running on $raddr:$rport: stop it first ($0 stop $name)"
    print_line "$name"
    return 0
  fi
  if can_connect "$addr" "$port"; then
    die "something already listens on $addr:$port: choose another address or port"
  fi
  ensure_client_key
  mkdir -p "$d" "$STATE_DIR/$name"
  chmod 700 "$d"
  [ -f "$d/ssh_host_ed25519_key" ] ||
    ssh-keygen -q -t ed25519 -N '' -C "tsmigrate-local-host-$name" -f "$d/ssh_host_ed25519_key" >/dev/null
  touch "$d/authorized_keys"
  chmod 600 "$d/authorized_keys"
  grep -qxF -- "$(cat "$HOSTS_DIR/client_ed25519.pub")" "$d/authorized_keys" ||
    cat "$HOSTS_DIR/client_ed25519.pub" >>"$d/authorized_keys"
  echo "$addr $port" >"$d/addr"
  write_config "$name" "$addr" "$port"
  echo "$(hostport "$addr" "$port") $(cut -d' ' -f1,2 "$d/ssh_host_ed25519_key.pub")" >"$d/known_hosts.line"
  cp "$d/known_hosts.line" "$d/known_hosts"
  chmod 644 "$d/known_hosts"
  launch "$name" "$addr" "$port"
  echo "local-hosts: $name is up on $addr:$port; to use it:" >&2
  echo "  $(add_command "$name")" >&2
  print_line "$name"
}

cmd_stop() {
  [ $# -ge 1 ] && [ $# -le 2 ] || usage
  local name=$1 purge=${2:-}
  check_name "$name"
  [ -z "$purge" ] || [ "$purge" = --purge ] || usage
  lock
  kill_sshd "$name"
  rm -rf "${HOSTS_DIR:?}/$name"
  if [ "$purge" = --purge ] && [ -d "$STATE_DIR/$name" ]; then
    # never recurse into mounts (container root filesystems) left under the state root
    if awk -v p="$STATE_DIR/$name/" '{ if (index($5 "/", p) == 1) found = 1 } END { exit !found }' /proc/self/mountinfo; then
      die "not purging $STATE_DIR/$name: filesystems are still mounted under it (remove its containers first)"
    fi
    rm -rf "${STATE_DIR:?}/$name"
  fi
}

cmd_rekey() {
  [ $# -eq 1 ] || usage
  local name=$1 d addr port
  check_name "$name"
  d="$HOSTS_DIR/$name"
  [ -f "$d/addr" ] || die "host \"$name\" is not set up: run $0 start $name ADDR [PORT]"
  lock
  read -r addr port <"$d/addr"
  kill_sshd "$name"
  rm -f "$d/ssh_host_ed25519_key" "$d/ssh_host_ed25519_key.pub"
  ssh-keygen -q -t ed25519 -N '' -C "tsmigrate-local-host-$name" -f "$d/ssh_host_ed25519_key" >/dev/null
  echo "$(hostport "$addr" "$port") $(cut -d' ' -f1,2 "$d/ssh_host_ed25519_key.pub")" >"$d/known_hosts.line"
  cp "$d/known_hosts.line" "$d/known_hosts"
  launch "$name" "$addr" "$port"
  print_line "$name"
}

cmd_trust() { # NAME ROOT
  [ $# -eq 2 ] || usage
  local name=$1 root=$2 line
  check_name "$name"
  [ -f "$HOSTS_DIR/$name/addr" ] || die "host \"$name\" is not set up: run $0 start $name ADDR [PORT]"
  ensure_client_key
  local tsm=("$HOSTS_DIR/bin/tsmigrate")
  "${tsm[@]}" --root "$root" key show >/dev/null 2>&1 || "${tsm[@]}" --root "$root" key init >/dev/null
  line=$("${tsm[@]}" --root "$root" key show | head -1)
  "${tsm[@]}" --root "$STATE_DIR/$name" --config "$STATE_DIR/$name/config.yaml" key trust "$line"
}

cmd_status() {
  local names=() n addr port pid
  if [ $# -ge 1 ]; then
    check_name "$1"
    names=("$1")
  elif [ -d "$HOSTS_DIR" ]; then
    for n in "$HOSTS_DIR"/*/addr; do
      [ -f "$n" ] && names+=("$(basename "$(dirname "$n")")")
    done
  fi
  for n in "${names[@]}"; do
    if [ ! -f "$HOSTS_DIR/$n/addr" ]; then
      echo "$n - - absent"
      [ $# -ge 1 ] && return 1
      continue
    fi
    read -r addr port <"$HOSTS_DIR/$n/addr"
    if pid=$(pid_of "$n"); then
      echo "$n $addr:$port $pid running"
    else
      echo "$n $addr:$port - stopped"
      [ $# -ge 1 ] && return 1
    fi
  done
  return 0
}

[ $# -ge 1 ] || usage
sub=$1
shift
case "$sub" in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  rekey) cmd_rekey "$@" ;;
  status) cmd_status "$@" ;;
  line) [ $# -eq 1 ] || usage; check_name "$1"; print_line "$1" ;;
  trust) cmd_trust "$@" ;;
  add-command) [ $# -eq 1 ] || usage; check_name "$1"; [ -f "$HOSTS_DIR/$1/addr" ] || die "host \"$1\" is not set up"; add_command "$1" ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
