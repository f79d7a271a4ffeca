#!/usr/bin/python
"""Take, inspect and release the deploy lock of a host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pakashop_lock
short_description: The deploy lock of a Pakashop host
description:
  - One deploy at a time per host. The lock is a JSON file naming its holder (id, user,
    controller host, controller process id, start time, release), created atomically
    (C(O_EXCL)), so two deploys racing for it cannot both win.
  - O(state=info) reports the holder, if any. O(state=acquired) takes the lock for
    O(holder); it fails, naming the current holder, when somebody else holds it, unless
    O(break_id) names that holder (the controller decided it is stale). Taking a lock one
    already holds is a no-op. O(state=released) removes the lock if O(holder) holds it.
author: Pakashop Ops
options:
  path:
    description: The lock file.
    type: path
    default: /opt/pakashop/.deploy.lock
  state:
    description: What to do.
    type: str
    choices: [info, acquired, released]
    default: info
  holder:
    description: Who takes or releases the lock; C(id) is required, the rest is shown to others.
    type: dict
  break_id:
    description: Id of a stale holder whose lock may be replaced.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Take the deploy lock
  pakashop_lock:
    state: acquired
    holder: "{{ pakashop_lock_holder }}"

- name: Release it
  pakashop_lock:
    state: released
    holder: "{{ pakashop_lock_holder }}"
"""

RETURN = r"""
holder:
  description: The holder of the lock after the call (null when free).
  returned: always
  type: dict
  sample: {id: 6f1c, user: ci, controller: runner-3, pid: 4242, started: "2026-11-21T10:15:00Z"}
previous:
  description: The holder that was replaced with O(break_id).
  returned: when a stale lock was broken
  type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule


def read(path: str) -> dict | None:
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"id": "unreadable", "user": "?", "controller": "?", "pid": 0, "started": "?"}


def describe(holder: dict) -> str:
    return "{user} on {controller} (pid {pid}, id {id}) since {started}{release}".format(
        user=holder.get("user", "?"), controller=holder.get("controller", "?"), pid=holder.get("pid", "?"),
        id=holder.get("id", "?"), started=holder.get("started", "?"),
        release=f", deploying {holder['release']}" if holder.get("release") else "")


def create(path: str, holder: dict) -> bool:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(holder, handle, sort_keys=True)
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/opt/pakashop/.deploy.lock"},
            "state": {"type": "str", "default": "info", "choices": ["info", "acquired", "released"]},
            "holder": {"type": "dict"},
            "break_id": {"type": "str"},
        },
        required_if=[("state", "acquired", ("holder",)), ("state", "released", ("holder",))],
        supports_check_mode=True,
    )
    p = module.params
    path, holder = p["path"], p["holder"]
    if holder is not None and not holder.get("id"):
        module.fail_json(msg="holder needs an id")
    current = read(path)

    if p["state"] == "info":
        module.exit_json(changed=False, holder=current)

    if p["state"] == "released":
        if current is None or current.get("id") != holder["id"]:
            module.exit_json(changed=False, holder=current)
        if not module.check_mode:
            os.unlink(path)
        module.exit_json(changed=True, holder=None)

    # acquired
    if current is not None and current.get("id") == holder["id"]:
        module.exit_json(changed=False, holder=current)
    previous = None
    if current is not None:
        if p["break_id"] is None or current.get("id") != p["break_id"]:
            module.fail_json(msg=f"deploy refused: another deploy holds the lock {path}: {describe(current)}",
                             holder=current)
        previous = current
        if not module.check_mode:
            os.unlink(path)  # the stale holder the controller named; O_EXCL below still guards the race
    if module.check_mode:
        module.exit_json(changed=True, holder=holder, previous=previous)
    if not create(path, holder):
        module.fail_json(msg=f"deploy refused: another deploy took the lock {path} at the same time: "
                             f"{describe(read(path) or {})}", holder=read(path))
    module.exit_json(changed=True, holder=holder, previous=previous)


if __name__ == "__main__":
    main()
