#!/usr/bin/env bash
# Set up the controller: .venv with the pinned toolchain (requirements.txt) and the
# collections of requirements.yml. Reruns are no-ops unless a requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=".venv/.installed-$(sha256sum requirements.txt | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  rm -f .venv/.installed-*
  touch "$stamp"
fi
scripts/collections.sh
