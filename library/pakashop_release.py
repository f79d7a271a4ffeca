#!/usr/bin/python
"""Build, switch, inspect, mark and prune per-service releases on one host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pakashop_release
short_description: Manage per-service release directories of the Pakashop platform
description:
  - Every service lives in C(<root>/<service>/) with C(releases/<release_id>/), a C(current)
    symlink to the release that runs, and C(shared/) for its env file, which each release
    links in as C(.env).
  - O(state=built) exports every listed service from a git repository (or an extracted
    artifact) into a new release directory and builds it for its runtime (node
    C(npm ci --omit=dev), go C(go build -o bin/<name> ./src), python a venv plus
    C(pip install -r requirements.txt)), several services at once. A release directory only
    counts once its marker file says complete; a failed build removes every directory
    this call created, so nothing half-built is ever switched to.
  - O(state=switched) points C(current) at the release with a symlink swap (C(rename)),
    which is atomic; a service sees the old or the new release, never neither.
  - O(state=bad) marks a release as failed; it never becomes a rollback target and is pruned first.
  - O(state=pruned) keeps the newest O(keep) good releases and never removes the current
    one or the newest good one before it.
  - O(state=info) only reports.
author: Pakashop Ops
options:
  state:
    description: What to do.
    type: str
    choices: [built, switched, bad, pruned, info]
    default: info
  root:
    description: Base directory of the services.
    type: path
    default: /opt/pakashop
  release:
    description: Release id (C(YYYYmmddTHHMMSSZ-<revision>)). Required for built, switched and bad.
    type: str
  services:
    description:
      - Services to act on (from the catalog); C(name), C(runtime) and, with O(state=switched),
        an optional C(release) that overrides O(release) for that service are read.
    type: list
    elements: dict
    required: true
  git_dir:
    description: Repository (bare or not) on the host to export from, with O(state=built).
    type: path
  revision:
    description: Commit to export from O(git_dir).
    type: str
  source_dir:
    description: An extracted artifact on the host holding C(services/<name>/), instead of O(git_dir).
    type: path
  source_subdir:
    description: Where a service's code sits in the source, C({name}) is replaced.
    type: str
    default: services/{name}
  workers:
    description: How many services build at once.
    type: int
    default: 4
  keep:
    description: Good releases to keep per service with O(state=pruned).
    type: int
    default: 5
  build_timeout:
    description: Seconds one service's build may take.
    type: int
    default: 600
  restart:
    description:
      - With O(state=switched), restart the units (C(pakashop-<name>.service)) of the services
        whose link moved, and start the listed services that are not running, in the same
        call; systemd runs the jobs in parallel.
    type: bool
    default: false
  restart_also:
    description: With O(restart), services to restart even if their link did not move (e.g. a changed env file).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Build release on every app host
  pakashop_release:
    state: built
    release: 20261121T101500Z-3f2a9c1
    git_dir: /opt/pakashop/.source.git
    revision: 3f2a9c1e0b7d4c55aa10c2b6f7a8e9d0c1b2a3f4
    services: "{{ pakashop_catalog_resolved.services }}"

- name: Switch one tier and restart what moved
  pakashop_release:
    state: switched
    release: 20261121T101500Z-3f2a9c1
    services: "{{ tier_services }}"
    restart: true

- name: Where is every service
  pakashop_release:
    services: "{{ pakashop_catalog_resolved.services }}"
  register: releases
"""

RETURN = r"""
services:
  description: Per service, its current release, the previous good one and every release with its status.
  returned: always
  type: dict
  sample:
    backend:
      current: 20261121T101500Z-3f2a9c1
      previous_good: 20261120T090000Z-1b2c3d4
      releases: {20261120T090000Z-1b2c3d4: complete, 20261121T101500Z-3f2a9c1: complete}
changed_services:
  description: Services this call built, switched, marked or pruned.
  returned: always
  type: list
  elements: str
restarted_units:
  description: Units restarted or started by O(restart).
  returned: with state=switched
  type: list
  elements: str
built_seconds:
  description: Build time per service built by this call.
  returned: with state=built
  type: dict
"""

import json
import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pakashop_systemd import restart_and_start

MARKER = ".pakashop-release.json"
RELEASE_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def valid_release_id(value: object) -> bool:
    """A release id is a timestamp and a revision, and never a path trick."""
    return isinstance(value, str) and bool(RELEASE_RE.match(value)) and ".." not in value


class BuildError(Exception):
    pass


def release_status(path: str) -> str:
    try:
        with open(os.path.join(path, MARKER)) as handle:
            return json.load(handle).get("status", "incomplete")
    except (OSError, ValueError):
        return "incomplete"


def write_marker(path: str, data: dict) -> None:
    tmp = os.path.join(path, MARKER + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, sort_keys=True)
    os.rename(tmp, os.path.join(path, MARKER))


def read_marker(path: str) -> dict:
    try:
        with open(os.path.join(path, MARKER)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def service_info(root: str, name: str) -> dict:
    base = os.path.join(root, name)
    rel_dir = os.path.join(base, "releases")
    releases = {}
    if os.path.isdir(rel_dir):
        for entry in sorted(os.listdir(rel_dir)):
            if RELEASE_RE.match(entry):
                releases[entry] = release_status(os.path.join(rel_dir, entry))
    current = None
    link = os.path.join(base, "current")
    if os.path.islink(link):
        current = os.path.basename(os.readlink(link).rstrip("/"))
    # Release ids start with a UTC timestamp, so their order is the deploy order.
    good = [r for r, s in releases.items() if s == "complete"]
    previous = [r for r in good if current is None or r < current]
    return {
        "current": current,
        "current_revision": read_marker(os.path.join(rel_dir, current)).get("revision") if current else None,
        "previous_good": previous[-1] if previous else None,
        "releases": releases,
    }


def run(cmd: list[str], cwd: str, env: dict, timeout: int) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = proc.stdout.decode(errors="replace").strip().splitlines()[-15:]
        raise BuildError(f"`{' '.join(cmd)}` exited {proc.returncode}: " + " | ".join(tail))


def export_git(git_dir: str, revision: str, subdir: str, dest: str) -> None:
    archive = subprocess.Popen(["git", "--git-dir", git_dir, "archive", "--format=tar", revision, subdir],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    strip = str(len(subdir.strip("/").split("/")))
    untar = subprocess.run(["tar", "-x", "-C", dest, "--strip-components", strip],
                           stdin=archive.stdout, stderr=subprocess.PIPE, check=False)
    archive.stdout.close()
    err = archive.stderr.read().decode(errors="replace").strip()
    if archive.wait() != 0 or untar.returncode != 0:
        raise BuildError(f"cannot export {subdir} at {revision}: {err or untar.stderr.decode().strip()}")


def build_env(root: str) -> dict:
    cache = os.path.join(root, ".cache")
    env = dict(os.environ)
    env.update({
        "HOME": os.path.join(cache, "home"),
        "npm_config_cache": os.path.join(cache, "npm"),
        "GOCACHE": os.path.join(cache, "go-build"),
        "GOPATH": os.path.join(cache, "go"),
        "GOFLAGS": "-buildvcs=false",
        "CGO_ENABLED": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    })
    return env


def build_one(p: dict, svc: dict) -> float:
    """Export and build one service into its release dir; return the seconds it took."""
    started = time.monotonic()
    name, runtime = svc["name"], svc["runtime"]
    base = os.path.join(p["root"], name)
    dest = os.path.join(base, "releases", p["release"])
    os.makedirs(os.path.join(base, "shared"), exist_ok=True)
    if os.path.lexists(dest):
        shutil.rmtree(dest)  # an earlier attempt that never completed
    os.makedirs(dest)
    subdir = p["source_subdir"].format(name=name)
    if p["git_dir"]:
        export_git(p["git_dir"], p["revision"], subdir, dest)
    else:
        src = os.path.join(p["source_dir"], subdir)
        if not os.path.isdir(src):
            raise BuildError(f"artifact has no {subdir}")
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    env, timeout = build_env(p["root"]), p["build_timeout"]
    if runtime == "node":
        run(["npm", "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"], dest, env, timeout)
    elif runtime == "go":
        run(["go", "build", "-o", f"bin/{name}", "./src"], dest, env, timeout)
    elif runtime == "python":
        run(["python3", "-m", "venv", "venv"], dest, env, timeout)
        run(["venv/bin/pip", "install", "-q", "-r", "requirements.txt"], dest, env, timeout)
    env_link = os.path.join(dest, ".env")
    if not os.path.lexists(env_link):
        os.symlink("../../shared/.env", env_link)
    write_marker(dest, {"release": p["release"], "revision": p["revision"] or "", "status": "complete",
                        "service": name, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return round(time.monotonic() - started, 2)


def do_build(module: AnsibleModule, services: list[dict]) -> tuple[list[str], dict]:
    p = module.params
    todo = [s for s in services
            if release_status(os.path.join(p["root"], s["name"], "releases", p["release"])) != "complete"]
    bad = [s["name"] for s in services
           if release_status(os.path.join(p["root"], s["name"], "releases", p["release"])) == "bad"]
    if bad:
        module.fail_json(msg=f"release {p['release']} is marked bad for {', '.join(bad)}; deploy a new release")
    if not todo or module.check_mode:
        return [s["name"] for s in todo], {}
    os.makedirs(os.path.join(p["root"], ".cache", "home"), exist_ok=True)
    timings, errors = {}, {}
    with ThreadPoolExecutor(max_workers=max(1, p["workers"])) as pool:
        futures = {s["name"]: pool.submit(build_one, p, s) for s in todo}
        for name, future in futures.items():
            try:
                timings[name] = future.result()
            except (BuildError, OSError, subprocess.TimeoutExpired) as exc:
                errors[name] = str(exc)
    if errors:
        # Nothing half-built stays behind: every dir of this release made here goes.
        for svc in todo:
            shutil.rmtree(os.path.join(p["root"], svc["name"], "releases", p["release"]), ignore_errors=True)
        module.fail_json(msg="build of release {} failed for {}: {}".format(
            p["release"], ", ".join(sorted(errors)), "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))),
            failed_services=sorted(errors))
    return sorted(timings), timings


def do_switch(module: AnsibleModule, services: list[dict]) -> list[str]:
    p = module.params
    changed = []
    # Check every target first, so a refusal leaves all links as they were.
    plan = []
    for svc in services:
        release = svc.get("release") or p["release"]
        base = os.path.join(p["root"], svc["name"])
        target = os.path.join("releases", release)
        status = release_status(os.path.join(base, target))
        if status != "complete":
            module.fail_json(msg=f"cannot switch {svc['name']} to release {release}: it is marked {status}"
                             if os.path.isdir(os.path.join(base, target))
                             else f"cannot switch {svc['name']} to release {release}: no such release")
        plan.append((svc, base, target))
    for svc, base, target in plan:
        link = os.path.join(base, "current")
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        changed.append(svc["name"])
        if not module.check_mode:
            tmp = os.path.join(base, ".current.tmp")
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(target, tmp)
            os.rename(tmp, link)
    return changed


def do_mark_bad(module: AnsibleModule, services: list[dict]) -> list[str]:
    p = module.params
    changed = []
    for svc in services:
        path = os.path.join(p["root"], svc["name"], "releases", p["release"])
        if not os.path.isdir(path) or release_status(path) == "bad":
            continue
        changed.append(svc["name"])
        if not module.check_mode:
            data = read_marker(path) or {"release": p["release"], "service": svc["name"]}
            data.update(status="bad", marked_bad_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            write_marker(path, data)
    return changed


def do_prune(module: AnsibleModule, services: list[dict]) -> list[str]:
    p = module.params
    changed = []
    for svc in services:
        info = service_info(p["root"], svc["name"])
        protected = {info["current"], info["previous_good"]}
        good = [r for r, s in info["releases"].items() if s == "complete"]
        keep = set(good[-p["keep"]:]) | protected
        # Bad and unfinished releases go first; then the oldest good ones beyond `keep`.
        doomed = [r for r, s in info["releases"].items() if s != "complete" and r not in protected]
        doomed += [r for r in good if r not in keep]
        if doomed:
            changed.append(svc["name"])
        if not module.check_mode:
            for rel in doomed:
                shutil.rmtree(os.path.join(p["root"], svc["name"], "releases", rel), ignore_errors=True)
    return changed


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "default": "info", "choices": ["built", "switched", "bad", "pruned", "info"]},
            "root": {"type": "path", "default": "/opt/pakashop"},
            "release": {"type": "str"},
            "services": {"type": "list", "elements": "dict", "required": True},
            "git_dir": {"type": "path"},
            "revision": {"type": "str"},
            "source_dir": {"type": "path"},
            "source_subdir": {"type": "str", "default": "services/{name}"},
            "workers": {"type": "int", "default": 4},
            "keep": {"type": "int", "default": 5},
            "build_timeout": {"type": "int", "default": 600},
            "restart": {"type": "bool", "default": False},
            "restart_also": {"type": "list", "elements": "str", "default": []},
        },
        required_if=[("state", "built", ("release",)), ("state", "bad", ("release",))],
        mutually_exclusive=[("git_dir", "source_dir")],
        required_by={"git_dir": ("revision",)},
        supports_check_mode=True,
    )
    p = module.params
    if p["release"] is not None and not valid_release_id(p["release"]):
        module.fail_json(msg=f"invalid release id {p['release']!r}: expected YYYYmmddTHHMMSSZ-<revision>")
    if p["state"] == "built" and not (p["git_dir"] or p["source_dir"]):
        module.fail_json(msg="state=built needs git_dir (with revision) or source_dir")
    if p["keep"] < 1:
        module.fail_json(msg="keep must be at least 1")
    services = p["services"]
    for svc in services:
        rel = svc.get("release")
        if rel is not None and not valid_release_id(rel):
            module.fail_json(msg=f"invalid release id {rel!r} for service {svc.get('name')}")
        if p["state"] == "switched" and not (rel or p["release"]):
            module.fail_json(msg=f"state=switched needs release, or a release per service ({svc.get('name')})")
        if not isinstance(svc.get("name"), str) or not re.match(r"^[a-z][a-z0-9-]*$", svc["name"]):
            module.fail_json(msg=f"invalid service entry {svc!r}")
        if p["state"] == "built" and svc.get("runtime") not in ("node", "go", "python"):
            module.fail_json(msg=f"service {svc['name']} has unknown runtime {svc.get('runtime')!r}")

    result: dict = {}
    if p["state"] == "built":
        changed, result["built_seconds"] = do_build(module, services)
    elif p["state"] == "switched":
        changed = do_switch(module, services)
        if p["restart"]:
            again = set(changed) | set(p["restart_also"])
            result["restarted_units"] = restart_and_start(
                module, [f"pakashop-{s['name']}.service" for s in services],
                [f"pakashop-{s['name']}.service" for s in services if s["name"] in again])
    elif p["state"] == "bad":
        changed = do_mark_bad(module, services)
    elif p["state"] == "pruned":
        changed = do_prune(module, services)
    else:
        changed = []
    result["services"] = {s["name"]: service_info(p["root"], s["name"]) for s in services}
    module.exit_json(changed=bool(changed or result.get("restarted_units")), changed_services=changed, **result)


if __name__ == "__main__":
    main()
