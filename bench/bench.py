#!/usr/bin/env python3
"""Measure deploys, rollback and health checks on the sandbox; print a Markdown table.

Run with scripts/bench.sh (it brings the sandbox up). Each figure is the wall time of the
real command, measured the way an operator would see it. Results also go to bench/results/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "molecule/shared"))
from pakashop_testlib import docker_exec, make_release, recap, served

ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")


def timed(*cmd: str) -> tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def playbook(*args: str) -> tuple[float, str]:
    return timed(str(ROOT / ".venv/bin/ansible-playbook"), *args)


def main() -> None:
    results: dict[str, float | str] = {}
    if "--fresh" in sys.argv:
        subprocess.run([str(ROOT / "scripts/sandbox.sh"), "down"], check=True)
        subprocess.run(["rm", "-rf", str(ROOT / ".sandbox")], check=True)
        subprocess.run([str(ROOT / "scripts/sandbox.sh"), "up"], check=True, stdout=subprocess.DEVNULL)
        results["first_deploy_s"], _ = playbook("playbooks/provision.yml", "deploy.yml")

    tag = time.strftime("bench-%Y%m%d%H%M%S")
    make_release(tag, tag)
    results["new_release_deploy_s"], _ = playbook("deploy.yml", "-e", f"pakashop_release_version={tag}")
    assert set(served("pakashop-app1").values()) == {(tag, served("pakashop-app1")["config"][1])}

    results["noop_redeploy_s"], out = playbook("deploy.yml", "-e", f"pakashop_release_version={tag}")
    changed = {h: c["changed"] for h, c in recap(out).items()}
    assert not any(changed.values()), f"no-op redeploy changed something: {changed}"

    results["rollback_s"], _ = playbook("playbooks/rollback.yml")
    results["rollback_target"] = served("pakashop-app1")["config"][0]
    results["forward_again_s"], _ = playbook("deploy.yml", "-e", f"pakashop_release_version={tag}")

    _, out = playbook("-l", "app1", "bench/health.yml")
    # The callback folds long lines; JSON does not mind the whitespace that folding adds.
    health = json.loads(re.search(r"BENCH (\{.*?\})", out.replace("\n", " ")).group(1))
    results["health_module_task_s"] = round(health["module_task_s"], 3)
    results["health_module_inner_ms"] = health["module_inner_ms"]
    results["health_uri_loop_s"] = round(health["uri_loop_s"], 3)

    # The old sequential approach on one host, on the same code.
    sha = subprocess.run(["git", "-C", str(ROOT / ".sandbox/git/pakashop-app.git"), "rev-parse", tag],
                         capture_output=True, text=True, check=True).stdout.strip()
    docker_exec("pakashop-app1", "mkdir", "-p", "/var/tmp/bench")
    subprocess.run(["docker", "cp", str(ROOT / "bench/legacy_deploy.sh"), "pakashop-app1:/var/tmp/bench/"], check=True)
    results["legacy_deploy_one_host_s"], _ = timed(
        "docker", "exec", "pakashop-app1", "/var/tmp/bench/legacy_deploy.sh", "/opt/pakashop/.source.git", sha)
    tag2 = tag + "-b"
    make_release(tag2, tag2)
    results["new_release_deploy_one_host_s"], _ = playbook("deploy.yml", "-l", "app1",
                                                           "-e", f"pakashop_release_version={tag2}")
    playbook("deploy.yml", "-e", f"pakashop_release_version={tag2}")  # both hosts on one release again

    results = {k: round(v, 1) if isinstance(v, float) else v for k, v in results.items()}
    out_dir = ROOT / "bench/results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{tag}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
