"""Who holds a deploy lock, and whether that holder is gone (controller side)."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
import uuid
from typing import Any


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"ansible" in handle.read()
    except OSError:
        return True  # no /proc to ask: the pid exists, assume it is the holder


def pakashop_lock_holder(release: str, playbook: str = "") -> dict[str, Any]:
    """Identify this run: templating happens in a worker forked from ansible-playbook,
    so the parent pid is the ansible-playbook process that holds the lock."""
    return {
        "id": uuid.uuid4().hex[:12],
        "user": os.environ.get("PAKASHOP_DEPLOY_USER") or getpass.getuser(),
        "controller": socket.gethostname(),
        "pid": os.getppid(),
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "release": release,
        "playbook": playbook,
    }


def pakashop_lock_stale(holder: dict[str, Any] | None, ttl_seconds: int = 21600) -> str:
    """Why a lock holder is gone ('' when it may still be running)."""
    if not holder:
        return ""
    if holder.get("controller") == socket.gethostname():
        pid = int(holder.get("pid") or 0)
        if pid <= 0 or not _process_alive(pid):
            return f"its process {pid} on {holder.get('controller')} is gone"
        return ""
    try:
        started = dt.datetime.strptime(str(holder.get("started")), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "its start time is unreadable"
    age = (dt.datetime.now(dt.UTC) - started).total_seconds()
    if age > ttl_seconds:
        return f"it started {int(age)} s ago, longer than the {ttl_seconds} s a deploy may take"
    return ""


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"pakashop_lock_holder": pakashop_lock_holder, "pakashop_lock_stale": pakashop_lock_stale}
