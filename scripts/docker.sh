#!/usr/bin/env bash
# Makes a Docker daemon available and prints the DOCKER_HOST to use (stdout is only that, so
# the script composes with $(…); progress and errors go to stderr).
#
#   export DOCKER_HOST=$(bash scripts/docker.sh)   # up: reuse a daemon, or start esox's own
#   bash scripts/docker.sh status                  # exit 0 when esox's daemon answers
#   bash scripts/docker.sh down                    # stop esox's daemon (its images are kept)
#
# A daemon that already answers (at $DOCKER_HOST, or the default socket) is used as it is.
# Otherwise esox starts its own dockerd, installing Debian's docker.io with apt-get when dockerd
# is missing. It is built for a sandboxed CI machine: no systemd, no network to registries,
# so the daemon has no bridge and touches no iptables (`--bridge=none --iptables=false`);
# containers run with `--network host`, and images come from `docker import`, not pulls.
# Everything it writes is under ${ESOX_DOCKER_DIR:-${ESOX_CACHE:-$HOME/.cache/esox}/docker}:
# data-root (images; the storage driver is overlay2 where the kernel and filesystem allow it,
# else vfs), exec-root, pidfile, socket and log.
set -euo pipefail

cache=${ESOX_CACHE:-$HOME/.cache/esox}
dir=${ESOX_DOCKER_DIR:-$cache/docker}
sock=$dir/docker.sock
# A unix socket path is limited to 107 bytes (sun_path); exec-root holds containerd's and the
# shims' sockets a few levels deeper, so a long $HOME moves the runtime state under /run.
if [ ${#dir} -gt 60 ]; then
  sock=/run/esox-docker/docker.sock
  exec_root=/run/esox-docker/exec
else
  exec_root=$dir/exec
fi
pidfile=$dir/dockerd.pid
logfile=$dir/dockerd.log

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh" # log, die

# `docker version` with the server part: fails unless a daemon answers at $1.
answers() {
  DOCKER_HOST=$1 timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

ours_running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && answers "unix://$sock"
}

install_docker() {
  command -v apt-get >/dev/null 2>&1 \
    || die "dockerd is missing and there is no apt-get to install it: install Docker Engine (dockerd, containerd, runc)"
  [ "$(id -u)" = 0 ] || die "dockerd is missing; installing it needs root: sudo apt-get install docker.io"
  log "dockerd is missing: installing Debian's docker.io (apt-get; first run only, about a minute)"
  # policy-rc.d (where present) keeps the package from starting a system daemon; this script
  # starts its own below.
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io >&2; then
    log "apt-get install failed; refreshing the package lists once and retrying"
    apt-get update -q >&2 || die "apt-get update failed (no route to the Debian mirror?)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io >&2 \
      || die "apt-get install docker.io failed (see above)"
  fi
  command -v dockerd >/dev/null 2>&1 || die "docker.io installed, yet dockerd is not on PATH ($PATH)"
}

# overlay2 needs an overlay mount on the data-root's filesystem (not on overlayfs itself, nor
# on filesystems without d_type); try one rather than guess from the kernel config.
storage_driver() {
  if [ -n "${ESOX_DOCKER_STORAGE_DRIVER:-}" ]; then
    echo "$ESOX_DOCKER_STORAGE_DRIVER"
    return
  fi
  local t
  t=$(mktemp -d "$dir/overlay-probe.XXXXXX")
  mkdir -p "$t/lower" "$t/upper" "$t/work" "$t/merged"
  if mount -t overlay overlay -o "lowerdir=$t/lower,upperdir=$t/upper,workdir=$t/work" "$t/merged" 2>/dev/null; then
    umount "$t/merged"
    rm -rf "$t"
    echo overlay2
  else
    rm -rf "$t"
    echo vfs
  fi
}

up() {
  command -v docker >/dev/null 2>&1 \
    || die "the docker CLI is missing (Debian: apt-get install docker.io, which also brings dockerd)"
  # A daemon the user already has wins: nothing to start.
  local existing=${DOCKER_HOST:-unix:///var/run/docker.sock}
  if answers "$existing"; then
    echo "$existing"
    return
  fi
  if ours_running; then
    echo "unix://$sock"
    return
  fi
  [ "$(id -u)" = 0 ] \
    || die "no Docker daemon answers at $existing, and starting one needs root (dockerd is not run rootless here)"
  command -v dockerd >/dev/null 2>&1 || install_docker
  for b in containerd runc; do
    command -v "$b" >/dev/null 2>&1 || die "$b is missing (it comes with Debian's docker.io: apt-get install docker.io)"
  done
  [ -d /sys/fs/cgroup ] && [ -n "$(ls -A /sys/fs/cgroup 2>/dev/null)" ] \
    || die "no cgroup filesystem at /sys/fs/cgroup: dockerd cannot limit or track containers"

  # A previous daemon that died leaves its pidfile (dockerd refuses to start over a live one)
  # and containerd children; stop only what that pidfile names.
  stop_ours quiet
  mkdir -p "$dir/data" "$exec_root" "$(dirname "$sock")"
  local driver
  driver=$(storage_driver)
  # An empty config file so a host /etc/docker/daemon.json cannot change these settings.
  echo '{}' >"$dir/daemon.json"
  log "starting dockerd ($(dockerd --version 2>/dev/null | head -n1); storage driver $driver; state in $dir)"
  # setsid: the daemon outlives this script and the caller's job control, as scripts/stack.sh
  # does for its services.
  setsid dockerd \
    --config-file "$dir/daemon.json" \
    --data-root "$dir/data" \
    --exec-root "$exec_root" \
    --pidfile "$pidfile" \
    --host "unix://$sock" \
    --storage-driver "$driver" \
    --iptables=false --ip6tables=false --ip-masq=false --bridge=none \
    >"$logfile" 2>&1 </dev/null &
  local pid=$! deadline=$((SECONDS + 60))
  until answers "unix://$sock"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "dockerd exited; last lines of $logfile:"
      tail -n 30 "$logfile" >&2 || true
      die "dockerd could not start (see above)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "dockerd did not answer within 60s; last lines of $logfile:"
      tail -n 30 "$logfile" >&2 || true
      kill "$pid" 2>/dev/null || true
      die "dockerd did not start in time"
    fi
    sleep 0.3
  done
  log "up: export DOCKER_HOST=unix://$sock"
  echo "unix://$sock"
}

stop_ours() {
  local quiet=${1:-}
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    [ -n "$quiet" ] || log "stopping dockerd (pid $pid)"
    kill "$pid" 2>/dev/null || true
    # dockerd stops its containerd and containers on SIGTERM; give it time to.
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "dockerd (pid $pid) ignored SIGTERM for 30s; killing it"
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

case "${1:-up}" in
  up) up ;;
  down) stop_ours; log "down" ;;
  status)
    if ours_running; then
      echo "dockerd: running (pid $(cat "$pidfile")), DOCKER_HOST=unix://$sock"
    else
      echo "dockerd: not running"
      exit 1
    fi
    ;;
  *) echo "usage: $0 [up|status|down]" >&2; exit 2 ;;
esac
