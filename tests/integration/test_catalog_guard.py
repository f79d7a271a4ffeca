"""A bad catalog stops every playbook on the controller, before any host is contacted."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# An inventory whose hosts do not exist: reaching any of them would fail as unreachable.
INVENTORY = """
all:
  children:
    pakashop_app: {hosts: {ghost-app: {ansible_host: 192.0.2.1, ansible_connection: ssh}}}
    pakashop_data: {hosts: {ghost-data: {ansible_host: 192.0.2.2, ansible_connection: ssh}}}
"""


def run(playbook: str, extra: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(inventory), str(ROOT / playbook),
         "-e", json.dumps(extra)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(("extra", "message"), [
    ({"pakashop_catalog_extra_services": [{"name": "wallet", "port": 3017, "runtime": "go",
                                           "depends_on": ["ledger"]}]},
     "service 'wallet' depends on unknown service 'ledger'"),
    ({"pakashop_catalog_extra_services": [{"name": "wallet", "port": 3080, "runtime": "go"}]},
     "service 'wallet' uses port 3080, already taken by service 'backend'"),
    ({"pakashop_catalog_extra_services": [{"name": "Wallet", "port": 3017, "runtime": "go"}]},
     "service name 'Wallet' is invalid"),
])
@pytest.mark.parametrize("playbook", ["deploy.yml", "playbooks/start.yml", "playbooks/stop.yml"])
def test_bad_catalog_fails_before_any_host_is_contacted(playbook, extra, message, tmp_path):
    proc = run(playbook, extra, tmp_path)
    assert proc.returncode != 0
    assert message in proc.stdout
    assert "UNREACHABLE" not in proc.stdout  # no connection was ever attempted
    assert "unreachable=0" in proc.stdout


def test_a_cycle_is_named(tmp_path):
    extra = {"pakashop_catalog_extra_services": [
        {"name": "ledger", "port": 3017, "runtime": "go", "depends_on": ["wallet"]},
        {"name": "wallet", "port": 3018, "runtime": "go", "depends_on": ["ledger"]}]}
    proc = run("deploy.yml", extra, tmp_path)
    assert proc.returncode != 0
    assert "dependency cycle: ledger -> wallet -> ledger" in proc.stdout
