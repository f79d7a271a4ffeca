"""systemctl helpers shared by the Pakashop modules: read many units at once, act on many at once.

systemd runs the jobs of one `systemctl start a b c` in parallel, so acting on a whole tier
in one call costs the time of its slowest unit, not the sum.
"""

from __future__ import annotations

PROPS = ["Id", "LoadState", "ActiveState", "SubState", "UnitFileState",
         "ActiveEnterTimestampMonotonic", "InactiveEnterTimestampMonotonic", "MainPID", "NRestarts"]
ACTIVE = ("active", "activating", "reloading")


def show(module, units: list[str]) -> dict[str, dict[str, str]]:
    """The PROPS of every unit, in one `systemctl show`."""
    if not units:
        return {}
    rc, out, err = module.run_command(["systemctl", "show", "--property=" + ",".join(PROPS), "--", *units])
    if rc != 0:
        module.fail_json(msg=f"systemctl show failed: {err.strip()}")
    result: dict[str, dict[str, str]] = {}
    # One block of KEY=VALUE lines per unit, separated by blank lines, in argument order.
    for unit, block in zip(units, out.strip().split("\n\n")):
        result[unit] = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
    return result


def systemctl(module, verb: str, units: list[str]) -> None:
    """Run one systemctl verb on all units; fail the module with their state if it fails."""
    if not units or module.check_mode:
        return
    if verb in ("start", "restart"):
        # A deliberate (re)start must not be refused because an earlier crash loop used up
        # the unit's start limit (a rollback right after a crashing release needs exactly that).
        module.run_command(["systemctl", "reset-failed", "--", *units])
    rc, _, err = module.run_command(["systemctl", verb, "--", *units])
    if rc != 0:
        module.fail_json(msg=f"systemctl {verb} {' '.join(units)} failed: {err.strip()}", units=show(module, units))


def loaded_or_fail(module, states: dict[str, dict[str, str]]) -> None:
    missing = [u for u, s in states.items() if s.get("LoadState") != "loaded"]
    if missing:
        module.fail_json(msg=f"units not loaded (not installed or invalid): {', '.join(missing)}", units=states)


def restart_and_start(module, units: list[str], restart: list[str],
                      states: dict[str, dict[str, str]] | None = None) -> list[str]:
    """Restart the units in `restart`, start the other units that are not running; return both."""
    states = show(module, units) if states is None else states
    loaded_or_fail(module, states)
    restarted = [u for u in units if u in restart]
    systemctl(module, "restart", restarted)
    started = [u for u in units if u not in restarted and states[u].get("ActiveState") not in ACTIVE]
    systemctl(module, "start", started)
    return restarted + started
