#!/usr/bin/env bash
# Build the local systemd image the sandbox hosts boot from. No registry is needed:
# debootstrap makes a Debian bookworm root, `docker import` turns it into a base image,
# and a short `docker build` layers the packages the roles will declare (preinstalled
# only for speed; the roles still ensure them) plus the stop signal systemd expects.
# The tag carries a hash of this script, so an edit rebuilds and a rerun is a no-op.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
hash=$(sha256sum "$0" | cut -c1-12)
tag=${PAKASHOP_IMAGE:-pakashop-systemd:bookworm-$hash}
base="pakashop-systemd-base:bookworm-$hash"

"$here/docker-engine.sh"

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d /var/tmp/pakashop-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

if ! docker image inspect "$base" >/dev/null 2>&1; then
  echo "debootstrap bookworm from $mirror" >&2
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,python3,dbus,sudo,iproute2,ca-certificates \
    bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  : >"$root/etc/machine-id"
  # Units that make no sense in a container, or that would fight the tests.
  for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
              fstrim.timer getty@.service getty.target console-getty.service \
              systemd-logind.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
  tar -C "$root" -c . | docker import \
    --change 'ENV container=docker' \
    --change 'CMD ["/lib/systemd/systemd"]' - "$base" >/dev/null
  rm -rf "$root"
fi

cat >"$work/Dockerfile" <<DOCKERFILE
FROM $base
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      git curl procps nodejs npm golang-go python3-venv python3-pip python3-psycopg2 \\
      postgresql redis-server nginx \\
 && systemctl disable postgresql redis-server nginx \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
DOCKERFILE
echo "building $tag" >&2
docker build -q -t "$tag" "$work" >/dev/null
echo "$tag"
