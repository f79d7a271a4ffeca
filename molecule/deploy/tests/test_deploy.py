"""Release deploys on the sandbox, in order: each test starts from what the previous left.

v2 deploys and is idempotent; faulty releases (readiness, crash, a failing host, a
failing build, a failing hook) leave every service on the previous release, healthy;
rollbacks of the stack, of one service and to a named release; the deploy lock; artifacts.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time

from pakashop_testlib import (
    APP_HOSTS,
    PROJECT,
    SERVICES,
    docker_exec,
    make_release,
    marker,
    playbook,
    recap,
    served,
    unit_props,
)

# Fault tests need not wait the default 45 s for a service that will never be healthy.
FAST_FAIL = ("-e", "pakashop_release_health_deadline=8")
STATE: dict[str, str] = {}


def deploy(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return playbook("deploy.yml", *args, check=check)


def all_serve(release: str, version: str) -> None:
    for container in APP_HOSTS:
        got = served(container)
        assert set(got.values()) == {(version, release)}, (container, got)


def failed_release(output: str) -> str:
    return re.search(r"Deploy of release (\S+) failed", output).group(1)


def test_v2_deploys_everywhere_and_migrates_once():
    make_release("v2", "v2")
    before = docker_exec("pakashop-app1", "sh", "-c",
                         "cat /opt/pakashop/backend/shared/migrations.log 2>/dev/null | wc -l").stdout.strip()
    proc = deploy("-e", "pakashop_release_version=v2")
    release = served("pakashop-app1")["config"][1]
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{12}", release)
    all_serve(release, "v2")
    STATE["v2"] = release
    # Migrations ran once per environment: one more line on the first host, none on the other.
    after = docker_exec("pakashop-app1", "wc", "-l", "/opt/pakashop/backend/shared/migrations.log").stdout.split()[0]
    assert int(after) == int(before) + 1
    assert docker_exec("pakashop-app2", "test", "-e", "/opt/pakashop/backend/shared/migrations.log",
                       check=False).returncode != 0
    # The deploy is on record, with its per-tier timings.
    history = docker_exec("pakashop-app1", "tail", "-n", "1", "/opt/pakashop/.deploy-history.jsonl").stdout
    record = json.loads(history)
    assert (record["release"], record["result"]) == (release, "succeeded")
    assert [t["tier"] for t in record["tiers"]] == [1, 2, 3, 4]
    assert "changed=0" not in proc.stdout.split("PLAY RECAP")[-1].split("\n")[1]


def test_redeploying_v2_changes_nothing():
    proc = deploy("-e", "pakashop_release_version=v2")
    counters = recap(proc.stdout)
    assert all(c["changed"] == 0 for c in counters.values()), counters
    all_serve(STATE["v2"], "v2")


def test_a_supporting_service_failing_readiness_rolls_back():
    make_release("v3", "v3-ready-fault", "--fault", "coupon=ready")
    pids = unit_props("pakashop-app2", ["pakashop-coupon.service"], "MainPID")
    proc = deploy("-e", "pakashop_release_version=v3-ready-fault", *FAST_FAIL, check=False)
    assert proc.returncode != 0
    assert "coupon (readiness: HTTP 503" in proc.stdout
    assert "rolled back" in proc.stdout
    bad = failed_release(proc.stdout)
    all_serve(STATE["v2"], "v2")
    for container in APP_HOSTS:
        assert marker(container, "coupon", bad)["status"] == "bad"
    # The canary failed, so the second host was never touched.
    assert unit_props("pakashop-app2", ["pakashop-coupon.service"], "MainPID") == pids
    STATE["bad"] = bad


def test_rollback_refuses_a_bad_or_missing_release():
    bad = playbook("playbooks/rollback.yml", "-e", f"release={STATE['bad']}", check=False)
    assert bad.returncode != 0
    assert f"release {STATE['bad']} of coupon is marked bad" in bad.stdout
    missing = playbook("playbooks/rollback.yml", "-e", "release=20200101T000000Z-nothere", check=False)
    assert missing.returncode != 0
    assert "release 20200101T000000Z-nothere of config does not exist" in missing.stdout
    malformed = playbook("playbooks/rollback.yml", "-e", "release=../../etc", check=False)
    assert malformed.returncode != 0
    assert "invalid release id '../../etc'" in malformed.stdout
    all_serve(STATE["v2"], "v2")


def test_a_gateway_crashing_at_start_rolls_back():
    make_release("v4", "v4-crash", "--fault", "gateway=crash")
    proc = deploy("-e", "pakashop_release_version=v4-crash", *FAST_FAIL, check=False)
    assert proc.returncode != 0
    assert "gateway (liveness" in proc.stdout
    assert "crash" in proc.stdout  # the journal lines of the crashing service are in the summary
    all_serve(STATE["v2"], "v2")
    assert marker("pakashop-app1", "gateway", failed_release(proc.stdout))["status"] == "bad"


def test_a_failure_on_the_second_host_rolls_back_the_canary_too():
    make_release("v5", "v5")
    release = "20991231T235959Z-v5hostfault"
    # app2 alone gets a coupon release that fails readiness: as if that host were broken.
    docker_exec("pakashop-app2", "sh", "-c", f"""
        set -e; d=/opt/pakashop/coupon/releases
        cp -a $d/{STATE['v2']} $d/{release}
        echo ready > $d/{release}/FAULT
        sed -i 's/"release": "[^"]*"/"release": "{release}"/' $d/{release}/.pakashop-release.json""")
    proc = deploy("-e", "pakashop_release_version=v5", "-e", f"pakashop_release_id={release}", *FAST_FAIL, check=False)
    assert proc.returncode != 0
    assert "failed on app2" in proc.stdout
    all_serve(STATE["v2"], "v2")  # app1 had switched to v5; it is back on v2
    assert marker("pakashop-app1", "config", release)["status"] == "bad"


def test_a_build_failure_leaves_the_running_stack_untouched():
    sha = make_release("v6", "v6-broken-build", "--break-build", "search")
    units = [f"pakashop-{s['name']}.service" for s in SERVICES]
    before = {c: unit_props(c, units, "MainPID") for c in APP_HOSTS}
    proc = deploy("-e", "pakashop_release_version=v6-broken-build", check=False)
    assert proc.returncode != 0
    assert "Deploy aborted before any switch" in proc.stdout
    assert "failed for search" in proc.stdout
    assert {c: unit_props(c, units, "MainPID") for c in APP_HOSTS} == before
    all_serve(STATE["v2"], "v2")
    listing = docker_exec("pakashop-app1", "ls", "/opt/pakashop/config/releases").stdout.split()
    assert listing and not any(r.endswith(sha[:12]) for r in listing)  # nothing half-built is left


def test_a_second_deploy_is_refused_while_one_runs():
    make_release("v7", "v7")
    env = {"ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg")}
    first = subprocess.Popen(
        [str(PROJECT / ".venv/bin/ansible-playbook"), "-i", str(PROJECT / "inventories/sandbox"),
         str(PROJECT / "deploy.yml"), "-e", "pakashop_release_version=v7"],
        cwd=PROJECT, env={**__import__("os").environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        for _ in range(120):
            if docker_exec("pakashop-app2", "test", "-f", "/opt/pakashop/.deploy.lock", check=False).returncode == 0:
                break
            time.sleep(0.25)
        else:
            raise AssertionError("the first deploy never took the lock")
        second = deploy("-e", "pakashop_release_version=v7", check=False)
        assert second.returncode != 0
        assert re.search(r"Refused: app\d is locked by \S+ on \S+ \(pid \d+, lock \w+", second.stdout), second.stdout
        assert "Wait until it has finished" in second.stdout
    finally:
        out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-4000:]
    STATE["v7"] = served("pakashop-app1")["config"][1]
    all_serve(STATE["v7"], "v7")
    assert docker_exec("pakashop-app1", "test", "-f", "/opt/pakashop/.deploy.lock", check=False).returncode != 0


def test_a_stale_lock_is_named_and_can_be_broken():
    dead = json.dumps({"id": "deadbeef0001", "user": "ci", "controller": __import__("socket").gethostname(),
                       "pid": 999999, "started": "2026-01-01T00:00:00Z", "release": "deploy"})
    docker_exec("pakashop-app1", "sh", "-c", f"echo '{dead}' > /opt/pakashop/.deploy.lock")
    refused = deploy("-e", "pakashop_release_version=v7", check=False)
    assert refused.returncode != 0
    assert "That holder is gone (its process 999999" in refused.stdout
    assert "pakashop_lock_break=true" in refused.stdout
    deploy("-e", "pakashop_release_version=v7", "-e", "pakashop_lock_break=true")
    all_serve(STATE["v7"], "v7")


def test_rollback_of_one_service():
    playbook("playbooks/rollback.yml", "-e", "service=backend")
    for container in APP_HOSTS:
        got = served(container)
        assert got["backend"] == ("v2", STATE["v2"])
        assert {v for k, v in got.items() if k != "backend"} == {("v7", STATE["v7"])}
    # The rollback is on record, with its target and what moved.
    record = json.loads(docker_exec("pakashop-app1", "tail", "-n", "1", "/opt/pakashop/.deploy-history.jsonl").stdout)
    assert (record["action"], record["targets"], record["switched"]) == ("rollback", {"backend": STATE["v2"]}, ["backend"])


def test_rollback_to_a_named_release():
    playbook("playbooks/rollback.yml", "-e", f"release={STATE['v7']}")
    all_serve(STATE["v7"], "v7")


def test_rollback_of_the_whole_stack():
    # v7 is current; the releases between v2 and v7 failed, so v2 is the previous good one.
    playbook("playbooks/rollback.yml")
    all_serve(STATE["v2"], "v2")


def test_a_ci_built_artifact_deploys_and_a_wrong_checksum_is_refused(tmp_path):
    make_release("v8", "v8")
    artifact = tmp_path / "pakashop-v8.tar.gz"
    subprocess.run(["git", "-C", str(PROJECT / ".sandbox/git/pakashop-app.git"), "archive", "--format=tar.gz",
                    "-o", str(artifact), "v8"], check=True)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    source = ("-e", "pakashop_release_repo=", "-e", f"pakashop_release_artifact={artifact}",
              "-e", "pakashop_release_artifact_revision=v8-ci-42")
    wrong = deploy(*source, "-e", f"pakashop_release_artifact_sha256={'0' * 64}", check=False)
    assert wrong.returncode != 0
    assert "refusing to deploy it" in wrong.stdout
    all_serve(STATE["v2"], "v2")
    deploy(*source, "-e", f"pakashop_release_artifact_sha256={digest}")
    release = served("pakashop-app1")["config"][1]
    assert release.endswith("-v8-ci-42")
    all_serve(release, "v8")


def test_the_pre_switch_backup_hook_runs_and_a_failing_hook_aborts():
    make_release("v9", "v9")
    hook = ("-e", '{"pakashop_release_pre_switch_hooks": ["database_backup"]}')
    failing = deploy("-e", "pakashop_release_version=v9", *hook,
                     "-e", "pakashop_release_backup_dir=/proc/pakashop-cannot-write-here", check=False)
    assert failing.returncode != 0
    assert "Deploy aborted before any switch" in failing.stdout
    assert served("pakashop-app1")["config"][0] == "v8"
    deploy("-e", "pakashop_release_version=v9", *hook)
    all_serve(served("pakashop-app1")["config"][1], "v9")
    dumps = docker_exec("pakashop-app1", "sh", "-c",
                        "ls /var/backups/pakashop/pre-deploy/*.sql.gz && gzip -t /var/backups/pakashop/pre-deploy/*.sql.gz")
    assert "pakashop-sandbox-" in dumps.stdout
