#!/usr/bin/python
"""Write many small files and directories in one task, touching only what differs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pakashop_files
short_description: Ensure many directories and small files in one call
description:
  - Ensures a list of directories and a list of files with given content, owner, group and
    mode, in one module call. A template loop over 19 services costs two round trips per
    item; this costs one for all of them.
  - Files are replaced atomically (written beside the target, then renamed) and only when
    their content, owner, group or mode differ, so reruns report no change.
  - Content of files marked C(secret) is never returned, not even in diff mode.
author: Pakashop Ops
options:
  directories:
    description: Directories to create (parents included) with the given ownership and mode.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      owner: {description: Owner name., type: str, default: root}
      group: {description: Group name., type: str, default: root}
      mode: {description: Octal mode as a string., type: str, default: "0755"}
  files:
    description: Files to write.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path; its directory must exist., type: path, required: true}
      content: {description: The whole content of the file., type: str, required: true}
      owner: {description: Owner name., type: str, default: root}
      group: {description: Group name., type: str, default: root}
      mode: {description: Octal mode as a string., type: str, default: "0644"}
      secret: {description: Never return or diff this file's content., type: bool, default: false}
  prune:
    description:
      - Remove files in these directories matching the glob that are not listed in O(files)
        (a service dropped from the catalog loses its unit).
    type: list
    elements: dict
    default: []
    suboptions:
      directory: {description: Directory to look in., type: path, required: true}
      glob: {description: File name pattern., type: str, required: true}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: partial
    details: Lists changed paths; never shows secret content.
"""

EXAMPLES = r"""
- name: Write the units of the catalog in one call
  pakashop_files:
    files:
      - path: /etc/systemd/system/pakashop-backend.service
        content: "{{ lookup('ansible.builtin.template', 'unit.service.j2') }}"
    prune:
      - directory: /etc/systemd/system
        glob: pakashop-*.service
  notify: Reload systemd

- name: Write env files without ever showing them
  pakashop_files:
    files:
      - path: /opt/pakashop/backend/shared/.env
        content: "PORT=3080\n"
        owner: pakashop
        mode: "0600"
        secret: true
  no_log: true
"""

RETURN = r"""
changed_paths:
  description: Paths created, rewritten, re-permissioned or removed.
  returned: always
  type: list
  elements: str
  sample: [/etc/systemd/system/pakashop-backend.service]
removed_paths:
  description: Paths removed by O(prune).
  returned: always
  type: list
  elements: str
"""

import fnmatch
import grp
import os
import pwd
import tempfile

from ansible.module_utils.basic import AnsibleModule


def _ids(module: AnsibleModule, owner: str, group: str) -> tuple[int, int]:
    try:
        return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError as exc:
        module.fail_json(msg=f"unknown user or group: {exc}")
        raise  # unreachable, keeps type checkers content


def _needs_meta(path: str, uid: int, gid: int, mode: int) -> bool:
    st = os.stat(path)
    return (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (uid, gid, mode)


def ensure_directory(module: AnsibleModule, spec: dict) -> bool:
    path, mode = spec["path"], int(spec["mode"], 8)
    uid, gid = _ids(module, spec["owner"], spec["group"])
    exists = os.path.isdir(path)
    if exists and not _needs_meta(path, uid, gid, mode):
        return False
    if not module.check_mode:
        os.makedirs(path, exist_ok=True)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return True


def ensure_file(module: AnsibleModule, spec: dict) -> bool:
    path, mode = spec["path"], int(spec["mode"], 8)
    data = spec["content"].encode()
    uid, gid = _ids(module, spec["owner"], spec["group"])
    try:
        with open(path, "rb") as handle:
            same_content = handle.read() == data
    except FileNotFoundError:
        same_content = False
    if same_content and not _needs_meta(path, uid, gid, mode):
        return False
    if module.check_mode:
        return True
    if same_content:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        return True
    directory = os.path.dirname(path)
    # Write beside the target with final ownership/mode first, so no reader ever sees a
    # half-written file or a secret with loose permissions.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pakashop-")
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def main() -> None:
    dir_spec = {
        "path": {"type": "path", "required": True},
        "owner": {"type": "str", "default": "root"},
        "group": {"type": "str", "default": "root"},
        "mode": {"type": "str", "default": "0755"},
    }
    file_spec = dict(dir_spec, mode={"type": "str", "default": "0644"},
                     content={"type": "str", "required": True, "no_log": False},
                     secret={"type": "bool", "default": False})
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": [], "options": dir_spec},
            "files": {"type": "list", "elements": "dict", "default": [], "options": file_spec},
            "prune": {"type": "list", "elements": "dict", "default": [], "options": {
                "directory": {"type": "path", "required": True},
                "glob": {"type": "str", "required": True},
            }},
        },
        supports_check_mode=True,
    )
    p = module.params
    # Secret content must not come back even in the echoed module arguments.
    module.no_log_values.update(f["content"] for f in p["files"] if f["secret"] and f["content"])
    for spec in p["directories"] + p["files"]:
        if not os.path.isabs(spec["path"]):
            module.fail_json(msg=f"path must be absolute: {spec['path']}")
        try:
            int(spec["mode"], 8)
        except ValueError:
            module.fail_json(msg=f"mode of {spec['path']} is not octal: {spec['mode']!r}")

    changed = [d["path"] for d in p["directories"] if ensure_directory(module, d)]
    changed += [f["path"] for f in p["files"] if ensure_file(module, f)]

    wanted = {os.path.normpath(f["path"]) for f in p["files"]}
    removed = []
    for rule in p["prune"]:
        directory = os.path.normpath(rule["directory"])
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if fnmatch.fnmatch(name, rule["glob"]) and path not in wanted and os.path.isfile(path):
                if not module.check_mode:
                    os.unlink(path)
                removed.append(path)

    result = {"changed": bool(changed or removed), "changed_paths": changed + removed,
              "removed_paths": removed}
    if module._diff:
        result["diff"] = {"before": "", "after": "".join(f"changed: {x}\n" for x in changed + removed)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
