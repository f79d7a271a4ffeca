#!/usr/bin/env bash
# The sandbox: real systemd hosts in local containers, laid out like staging/production.
#   app1, app2  the 19 services and nginx      data    PostgreSQL and Redis
#   search      Meilisearch (emulated)         forge   git daemon serving the application
# The controller needs .venv (scripts/bootstrap.sh) to write the fixture application.
# Usage: scripts/sandbox.sh up | down | status
# `up` installs and starts the engine, builds the image, creates what is missing and
# waits until every host's systemd is running. Reruns are quick no-ops.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
network=pakashop-sandbox
hosts=(app1 app2 data search forge)
state="$root/.sandbox"

boot_host() {
  local name=$1 image=$2 container="pakashop-$1"
  local status
  if docker container inspect "$container" >/dev/null 2>&1; then
    status=$(docker container inspect -f '{{.State.Status}}' "$container")
    # A host from another image (an older build) or another checkout (whose forge serves
    # that checkout's repository) is replaced, not reused.
    if [ "$(docker container inspect -f '{{.Config.Image}} {{index .Config.Labels "pakashop.sandbox"}}' \
          "$container")" != "$image $root" ]; then
      docker rm -f "$container" >/dev/null
      status=missing
    fi
  else
    status=missing
  fi
  if [ "$status" = missing ]; then
    local extra=()
    [ "$name" = forge ] && extra=(-v "$state/git:/srv/git:ro")
    docker run -d --name "$container" --hostname "$container" --network "$network" \
      --cap-add SYS_ADMIN --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
      --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
      -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
      --label "pakashop.sandbox=$root" "${extra[@]}" "$image" >/dev/null
  elif [ "$status" != running ]; then
    docker start "$container" >/dev/null
  fi
}

wait_running() {
  local container="pakashop-$1" out
  for _ in $(seq 1 120); do
    # Right after start the bus may not answer yet; retry until systemd says running.
    out=$(docker exec "$container" systemctl is-system-running --wait 2>/dev/null || true)
    case "$out" in
      running) return 0 ;;
      degraded)
        echo "$container: systemd degraded:" >&2
        docker exec "$container" systemctl --failed --no-legend >&2 || true
        return 1 ;;
    esac
    sleep 0.5
  done
  echo "$container: systemd did not reach running" >&2
  return 1
}

start_forge() {
  # git daemon as a transient unit: serves .sandbox/git read-only as git://pakashop-forge/
  docker exec pakashop-forge systemctl is-active --quiet pakashop-git-daemon && return 0
  docker exec pakashop-forge systemd-run --unit pakashop-git-daemon --property Restart=always \
    git daemon --reuseaddr --export-all --base-path=/srv/git /srv/git >/dev/null 2>&1
}

seed_app_repo() {
  # The fixture application as a real git repository (tag v1), served by the forge.
  [ -d "$state/git/pakashop-app.git" ] && return 0
  "$root/.venv/bin/python" "$root/tests/fixtures/app/make_repo.py" --repo "$state/app" \
    --catalog "$root/roles/pakashop_catalog/defaults/main.yml" --version v1 --tag v1 \
    --bare-mirror "$state/git/pakashop-app.git" >/dev/null
}

up() {
  "$root/scripts/docker-engine.sh"
  local image
  image=$("$root/scripts/build-image.sh")
  mkdir -p "$state/git"
  docker network inspect "$network" >/dev/null 2>&1 || docker network create "$network" >/dev/null
  for h in "${hosts[@]}"; do boot_host "$h" "$image"; done
  for h in "${hosts[@]}"; do wait_running "$h"; done
  start_forge
  seed_app_repo
  echo "sandbox up: ${hosts[*]} (image $image)"
}

down() {
  # Containers outlive a stopped daemon (a machine restored from a snapshot, a killed
  # run): start the engine when it is installed so that "down" really removes them.
  if ! docker info >/dev/null 2>&1; then
    [ -x /usr/sbin/dockerd ] || return 0
    "$root/scripts/docker-engine.sh"
  fi
  for h in "${hosts[@]}"; do
    docker container inspect "pakashop-$h" >/dev/null 2>&1 || continue
    docker rm -f "pakashop-$h" >/dev/null || { echo "could not remove pakashop-$h" >&2; return 1; }
  done
  docker network rm "$network" >/dev/null 2>&1 || true
  echo "sandbox down"
}

status() {
  for h in "${hosts[@]}"; do
    printf '%-16s %s\n' "pakashop-$h" "$(docker inspect -f '{{.State.Status}}' "pakashop-$h" 2>/dev/null || echo missing)"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
