#!/usr/bin/env bash
# The whole test suite: linters, pytest, then every molecule scenario on one fresh
# sandbox (create -> converge -> idempotence -> verify). Each stage is recorded as a
# result; the last line is "N passed, N failed" over every test and stage.
# PAKASHOP_REUSE_SANDBOX=1 keeps an existing sandbox instead of starting fresh.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
results=.cache/junit
rm -rf "$results" && mkdir -p "$results"

stage() {  # stage NAME COMMAND...: run it, record pass/fail as a one-case junit file
  local name=$1; shift
  local start=$SECONDS rc
  echo "=== $name"
  "$@"
  rc=$?
  .venv/bin/python scripts/junit_stage.py "$results/stage-$name.xml" "$name" "$rc" $((SECONDS - start))
  [ "$rc" = 0 ] || echo "!!! $name failed (exit $rc)"
  return "$rc"
}

scripts/bootstrap.sh || { echo "0 passed, 1 failed"; exit 1; }
export PATH="$root/.venv/bin:$PATH" VIRTUAL_ENV="$root/.venv"
export ANSIBLE_CONFIG="$root/ansible.cfg" ANSIBLE_NOCOLOR=1 PY_COLORS=0 ANSIBLE_FORCE_COLOR=0

stage yamllint yamllint --strict .
stage ansible-lint ansible-lint --profile production --offline
stage ruff ruff check .
stage pytest pytest -q -p no:cacheprovider --junitxml="$results/pytest.xml" tests

scenarios=$(ls molecule | grep -v '^shared$')
if [ "${PAKASHOP_REUSE_SANDBOX:-0}" != 1 ]; then
  scripts/sandbox.sh down >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
  rm -rf .sandbox
  # Molecule keeps its own idea of what exists; forget it along with the sandbox.
  for scenario in $scenarios; do molecule reset -s "$scenario" >/dev/null 2>&1 || true; done
fi
for scenario in $scenarios; do
  stage "molecule-$scenario" molecule test -s "$scenario"
done

.venv/bin/python scripts/junit_stage.py --summary "$results"
