#!/usr/bin/env bash
# Measure deploy, no-op redeploy, rollback and health checks on the sandbox.
#   scripts/bench.sh           on the running sandbox (deploys it first if needed)
#   scripts/bench.sh --fresh   from a new sandbox, including the first deploy
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/sandbox.sh up >/dev/null
exec .venv/bin/python bench/bench.py "$@"
