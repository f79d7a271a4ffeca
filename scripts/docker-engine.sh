#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install Debian's docker.io when the
# daemon binary is missing, and start dockerd in the background when nothing runs it
# (these machines have no init system). Idempotent and quick when the engine is up.
set -euo pipefail

log=${PAKASHOP_DOCKERD_LOG:-/var/log/pakashop-dockerd.log}

if docker info >/dev/null 2>&1; then
  exit 0
fi

if [ ! -x /usr/sbin/dockerd ] || ! command -v debootstrap >/dev/null 2>&1; then
  echo "installing docker.io and debootstrap" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io debootstrap >/dev/null
fi

if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  rm -f /var/run/docker.pid   # left over from a dead daemon
fi

if ! pgrep -x dockerd >/dev/null; then
  echo "starting dockerd (log: $log)" >&2
  nohup /usr/sbin/dockerd >"$log" 2>&1 &
fi

for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see $log" >&2
tail -n 20 "$log" >&2 || true
exit 1
