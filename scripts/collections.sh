#!/usr/bin/env bash
# Install the collections of requirements.yml into .collections/. Galaxy first when
# PAKASHOP_GALAXY=1; otherwise (Galaxy unreachable) extract exactly those collections
# from PyPI's `ansible` community wheel, which bundles them. Quick when already there.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=.collections
ansible_wheel_version=${PAKASHOP_ANSIBLE_WHEEL:-12.3.0}
stamp="$dest/.installed-$(sha256sum requirements.yml | cut -c1-12)-$ansible_wheel_version"
[ -f "$stamp" ] && exit 0

if [ "${PAKASHOP_GALAXY:-0}" = 1 ]; then
  .venv/bin/ansible-galaxy collection install -r requirements.yml -p "$dest"
else
  mkdir -p .cache/wheels "$dest"
  wheel=$(ls .cache/wheels/ansible-"$ansible_wheel_version"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    .venv/bin/pip download -q --no-deps -d .cache/wheels "ansible==$ansible_wheel_version"
    wheel=$(ls .cache/wheels/ansible-"$ansible_wheel_version"-*.whl | head -n1)
  fi
  .venv/bin/python - "$wheel" "$dest" <<'PY'
import sys, zipfile, pathlib, yaml
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
wanted = [c["name"].split(".") for c in yaml.safe_load(open("requirements.yml"))["collections"]]
prefixes = tuple(f"ansible_collections/{ns}/{name}/" for ns, name in wanted)
with zipfile.ZipFile(wheel) as zf:
    members = [m for m in zf.namelist() if m.startswith(prefixes)]
    for ns, name in wanted:
        if not any(m.startswith(f"ansible_collections/{ns}/{name}/") for m in members):
            sys.exit(f"{ns}.{name} is not in {wheel}")
    zf.extractall(dest, members)
PY
fi
rm -f "$dest"/.installed-*
touch "$stamp"
