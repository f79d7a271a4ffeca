"""Helpers the molecule verify suites share: run playbooks, read catalog and unit state."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[2]))
INVENTORY = PROJECT / "inventories" / "sandbox"
CATALOG = yaml.safe_load((PROJECT / "roles/pakashop_catalog/defaults/main.yml").read_text())
SERVICES = CATALOG["pakashop_catalog_services"]
SECRETS = yaml.safe_load((INVENTORY / "group_vars/all/secrets.yml").read_text())["pakashop_secrets"]
APP_HOSTS = ["pakashop-app1", "pakashop-app2"]


def tiers() -> list[list[str]]:
    """The start tiers, derived by the project's own filter from the catalog."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pakashop_catalog", PROJECT / "plugins/filter/pakashop_catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_catalog(SERVICES, CATALOG["pakashop_catalog_infrastructure"])["tiers"]


def playbook(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a project playbook against the sandbox; return the completed process."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(
        [str(PROJECT / ".venv/bin/ansible-playbook"), "-i", str(INVENTORY), str(PROJECT / name), *args],
        cwd=PROJECT, env=env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")
    return proc


def docker_exec(container: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", "exec", container, *cmd], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} on {container} failed: {proc.stdout}{proc.stderr}")
    return proc


def unit_props(container: str, units: list[str], *props: str) -> dict[str, dict[str, str]]:
    out = docker_exec(container, "systemctl", "show", "--property=" + ",".join(("Id", *props)), "--", *units).stdout
    result = {}
    for unit, block in zip(units, out.strip().split("\n\n")):
        result[unit] = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
    return result


PROBE = r"""
import json, sys, urllib.request, urllib.error
out = {}
for name, port in json.loads(sys.argv[1]):
    for path in ("/health", "/health/ready"):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
                out[f"{name}{path}"] = [r.status, json.loads(r.read())]
        except urllib.error.HTTPError as e:
            out[f"{name}{path}"] = [e.code, json.loads(e.read() or b"null")]
        except Exception as e:
            out[f"{name}{path}"] = [0, str(e)]
print(json.dumps(out))
"""


def probe_health(container: str, services: list[dict] | None = None) -> dict[str, list]:
    """GET /health and /health/ready of the services from inside an app host."""
    pairs = [[s["name"], s["port"]] for s in (services or SERVICES)]
    return json.loads(docker_exec(container, "python3", "-c", PROBE, json.dumps(pairs)).stdout)


def make_release(version: str, tag: str, *extra: str) -> str:
    """Commit the fixture application at `version` (with faults etc.) to the forge; return the sha."""
    proc = subprocess.run(
        [str(PROJECT / ".venv/bin/python"), str(PROJECT / "tests/fixtures/app/make_repo.py"),
         "--repo", str(PROJECT / ".sandbox/app"), "--catalog", str(PROJECT / "roles/pakashop_catalog/defaults/main.yml"),
         "--version", version, "--tag", tag, "--bare-mirror", str(PROJECT / ".sandbox/git/pakashop-app.git"), *extra],
        capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def served(container: str) -> dict[str, tuple[str, str]]:
    """(version, release) that each service's /health reports; fails on any unhealthy one."""
    results = probe_health(container)
    bad = {k: v for k, v in results.items() if v[0] != 200}
    assert not bad, f"unhealthy on {container}: {bad}"
    return {s["name"]: (results[f"{s['name']}/health"][1]["version"], results[f"{s['name']}/health"][1]["release"])
            for s in SERVICES}


def marker(container: str, service: str, release: str) -> dict:
    out = docker_exec(container, "cat", f"/opt/pakashop/{service}/releases/{release}/.pakashop-release.json",
                      check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    import re

    result = {}
    for host, counters in re.findall(r"^(\S+)\s+: (ok=.*)$", output, re.MULTILINE):
        result[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counters)}
    return result
