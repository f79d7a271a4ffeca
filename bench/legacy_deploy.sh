#!/usr/bin/env bash
# The old scripts/deploy.sh approach, for comparison only: services one at a time in a
# fixed order — build in place, restart, sleep 2, trust `systemctl is-active`. Runs on an
# app host against a checkout of the application at $1 (git dir) / $2 (revision).
set -euo pipefail
git_dir=$1 rev=$2 work=/var/tmp/pakashop-legacy
export HOME=/opt/pakashop/.cache/home GOCACHE=/opt/pakashop/.cache/go-build GOPATH=/opt/pakashop/.cache/go \
       GOFLAGS=-buildvcs=false CGO_ENABLED=0 npm_config_cache=/opt/pakashop/.cache/npm
rm -rf "$work" && mkdir -p "$work" && git --git-dir "$git_dir" archive "$rev" services | tar -x -C "$work"
cd "$work"
for service in gateway backend config notifications tracking scheduler fraud coupon loyalty whatsapp reports \
               reconciliation invoicing pricing settlement; do
  (cd "services/$service" && npm ci --production --no-audit --no-fund --loglevel=error >/dev/null 2>&1)
  systemctl restart "pakashop-$service"; sleep 2; systemctl is-active --quiet "pakashop-$service"
done
for service in search analytics; do
  (cd "services/$service" && go build -o "bin/$service" ./src)
  systemctl restart "pakashop-$service"; sleep 2; systemctl is-active --quiet "pakashop-$service"
done
for service in moderation recommendations; do
  # the old hosts had their venvs already; only `pip install` ran per deploy
  (cd "services/$service" && { [ -d venv ] || python3 -m venv venv; } && venv/bin/pip install -q -r requirements.txt)
  systemctl restart "pakashop-$service"; sleep 2; systemctl is-active --quiet "pakashop-$service"
done
systemctl reload nginx
