"""The deploy lock: one holder at a time, clear refusals, stale holders detected and broken."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pakashop_lock
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("pakashop_lock_filter", ROOT / "plugins/filter/pakashop_lock.py")
lockf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lockf)


def holder(hid: str, **extra) -> dict:
    return {"id": hid, "user": "ci", "controller": "runner-1", "pid": 4242, "started": "2026-11-21T10:00:00Z",
            "release": "deploy", **extra}


@pytest.fixture
def lock(run_module, tmp_path):
    path = tmp_path / "opt" / ".deploy.lock"

    def _lock(state: str, **args):
        return run_module(pakashop_lock, {"path": str(path), "state": state, **args})

    _lock.path = path
    return _lock


def test_a_free_lock_is_taken_and_released(lock):
    result, failed = lock("info")
    assert not failed and result["holder"] is None
    result, failed = lock("acquired", holder=holder("a1"))
    assert not failed and result["changed"]
    assert json.loads(lock.path.read_text())["id"] == "a1"
    result, failed = lock("acquired", holder=holder("a1"))  # taking it again is a no-op
    assert not failed and not result["changed"]
    result, failed = lock("released", holder=holder("a1"))
    assert not failed and result["changed"] and not lock.path.exists()


def test_a_held_lock_refuses_another_holder_and_names_the_holder(lock):
    lock("acquired", holder=holder("a1"))
    result, failed = lock("acquired", holder=holder("b2", user="ops"))
    assert failed
    assert "another deploy holds the lock" in result["msg"]
    assert "ci on runner-1 (pid 4242, id a1) since 2026-11-21T10:00:00Z" in result["msg"]
    assert json.loads(lock.path.read_text())["id"] == "a1"


def test_releasing_someone_elses_lock_does_nothing(lock):
    lock("acquired", holder=holder("a1"))
    result, failed = lock("released", holder=holder("b2"))
    assert not failed and not result["changed"]
    assert lock.path.exists()


def test_a_stale_holder_named_by_the_controller_is_replaced(lock):
    lock("acquired", holder=holder("dead"))
    result, failed = lock("acquired", holder=holder("b2"), break_id="dead")
    assert not failed and result["previous"]["id"] == "dead"
    assert json.loads(lock.path.read_text())["id"] == "b2"
    # break_id must name the current holder; any other id breaks nothing.
    result, failed = lock("acquired", holder=holder("c3"), break_id="dead")
    assert failed and "id b2" in result["msg"]


def test_check_mode_takes_nothing(lock):
    result, failed = lock("acquired", holder=holder("a1"), _ansible_check_mode=True)
    assert not failed and result["changed"] and not lock.path.exists()


def test_holder_describes_this_run():
    me = lockf.pakashop_lock_holder("deploy", "Deploy")
    assert me["pid"] == os.getppid() and me["controller"] == socket.gethostname()
    assert len(me["id"]) == 12 and me["playbook"] == "Deploy"
    assert lockf.pakashop_lock_holder("deploy")["id"] != me["id"]


def test_a_live_holder_on_this_controller_is_not_stale():
    # A live process whose command line mentions ansible, as the real holder's does.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "ansible-playbook"])
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    while b"ansible-playbook" not in cmdline.read_bytes():  # until the child has exec'd
        time.sleep(0.01)
    try:
        assert lockf.pakashop_lock_stale(holder("a", controller=socket.gethostname(), pid=proc.pid)) == ""
    finally:
        proc.kill()
        proc.wait()
    reason = lockf.pakashop_lock_stale(holder("a", controller=socket.gethostname(), pid=proc.pid))
    assert reason == f"its process {proc.pid} on {socket.gethostname()} is gone"


def test_a_pid_reused_by_another_program_is_stale():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert "is gone" in lockf.pakashop_lock_stale(holder("a", controller=socket.gethostname(), pid=proc.pid))
    finally:
        proc.kill()
        proc.wait()


def test_another_controllers_lock_goes_stale_only_by_age():
    assert lockf.pakashop_lock_stale(holder("a", controller="elsewhere", started="2099-01-01T00:00:00Z")) == ""
    reason = lockf.pakashop_lock_stale(holder("a", controller="elsewhere", started="2020-01-01T00:00:00Z"), 3600)
    assert "longer than the 3600 s a deploy may take" in reason
    assert lockf.pakashop_lock_stale(None) == ""
