"""Shared fixtures for unit tests of the custom modules in library/."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.module_utils import basic

LIBRARY_DIR = Path(__file__).resolve().parents[2] / "library"
if str(LIBRARY_DIR) not in sys.path:
    sys.path.insert(0, str(LIBRARY_DIR))


ModuleRunner = Callable[[ModuleType | str, dict[str, Any]], tuple[dict[str, Any], bool]]


@pytest.fixture
def run_module(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> ModuleRunner:
    """Run a module's main() in-process; return (result, failed).

    ansible-core 2.19 reads the serialized args from basic._ANSIBLE_ARGS and
    refuses to decode them unless a serialization profile is set as well;
    "legacy" is what the controller uses for Python modules.
    """

    def _run(module: ModuleType | str, args: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        if isinstance(module, str):
            module = importlib.import_module(module)
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", payload)
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
        capsys.readouterr()  # drop anything printed before the run
        with pytest.raises(SystemExit):
            module.main()
        out = capsys.readouterr().out.strip()
        result = json.loads(out.splitlines()[-1])
        return result, bool(result.get("failed", False))

    return _run


# The project's module_utils, importable as ansible.module_utils.<name> as on the hosts.
import ansible.module_utils

_MODULE_UTILS = str(Path(__file__).resolve().parents[2] / "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)
