#!/usr/bin/python
"""Start, stop or restart a set of systemd units together, in one systemctl call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pakashop_units
short_description: Drive a tier of systemd units in parallel
description:
  - Reads the state of all O(units) with one C(systemctl show), then acts on the units that
    need it with one C(systemctl) call. systemd runs the jobs of one call in parallel, so a
    tier of 14 services restarts in the time of its slowest member, not the sum.
  - O(state=started) starts units that are not active; O(state=stopped) stops active ones;
    O(state=restarted) restarts all of them (O(only) narrows that down).
  - O(enabled) enables or disables units that differ, in the same way.
  - Units about to be started or restarted get C(systemctl reset-failed) first, so a start
    limit used up by an earlier crash loop does not refuse a deliberate start.
author: Pakashop Ops
options:
  units:
    description: Unit names, e.g. C(pakashop-backend.service).
    type: list
    elements: str
    required: true
  state:
    description: Wanted state.
    type: str
    choices: [started, stopped, restarted]
  enabled:
    description: Whether the units start at boot.
    type: bool
  only:
    description: With O(state=restarted), restart only these of O(units) (e.g. the ones whose unit or code changed); the rest are started if not active.
    type: list
    elements: str
  daemon_reload:
    description: Run C(systemctl daemon-reload) first.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Start tier 3 in parallel
  pakashop_units:
    units: [pakashop-backend.service, pakashop-search.service, pakashop-analytics.service]
    state: started
    enabled: true

- name: Restart the services of the tier whose release changed
  pakashop_units:
    units: "{{ tier_units }}"
    state: restarted
    only: "{{ switched_units }}"
"""

RETURN = r"""
units:
  description: Per unit, its state after the call.
  returned: always
  type: dict
  sample:
    pakashop-backend.service:
      ActiveState: active
      SubState: running
      UnitFileState: enabled
      ActiveEnterTimestampMonotonic: 123456789
      MainPID: 4242
acted:
  description: Units started, stopped or restarted by this call.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pakashop_systemd import ACTIVE, loaded_or_fail, restart_and_start, show, systemctl


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "units": {"type": "list", "elements": "str", "required": True},
            "state": {"type": "str", "choices": ["started", "stopped", "restarted"]},
            "enabled": {"type": "bool"},
            "only": {"type": "list", "elements": "str"},
            "daemon_reload": {"type": "bool", "default": False},
        },
        required_one_of=[("state", "enabled", "daemon_reload")],
        supports_check_mode=True,
    )
    p = module.params
    units = p["units"]
    if p["only"] is not None and p["state"] != "restarted":
        module.fail_json(msg="only goes with state=restarted")
    unknown = sorted(set(p["only"] or []) - set(units))
    if unknown:
        module.fail_json(msg=f"only names units not in units: {unknown}")
    changed = False
    if p["daemon_reload"] and not module.check_mode:
        systemctl(module, "daemon-reload", ["--no-pager"])
        changed = True
    if not units:
        module.exit_json(changed=changed, units={}, acted=[])

    before = show(module, units)
    loaded_or_fail(module, before)

    if p["enabled"] is not None:
        # static/generated units cannot be enabled; only flip the ones that are plainly off/on.
        wrong = [u for u, s in before.items()
                 if (s.get("UnitFileState") == "enabled") != p["enabled"]
                 and s.get("UnitFileState") in ("enabled", "disabled")]
        systemctl(module, "enable" if p["enabled"] else "disable", wrong)
        changed = changed or bool(wrong)

    active = {u for u, s in before.items() if s.get("ActiveState") in ACTIVE}
    acted: list[str] = []
    if p["state"] == "started":
        acted = [u for u in units if u not in active]
        systemctl(module, "start", acted)
    elif p["state"] == "stopped":
        acted = [u for u in units if u in active or before[u].get("ActiveState") == "failed"]
        systemctl(module, "stop", acted)
    elif p["state"] == "restarted":
        acted = restart_and_start(module, units, units if p["only"] is None else p["only"], before)
    module.exit_json(changed=changed or bool(acted), acted=acted,
                     units=before if module.check_mode else show(module, units))


if __name__ == "__main__":
    main()
