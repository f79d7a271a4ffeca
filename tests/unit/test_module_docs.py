"""Every module in library/ documents itself well enough for ansible-doc to render it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "library").glob("*.py"))


def test_there_are_modules():
    assert {"pakashop_health", "pakashop_release", "pakashop_units", "pakashop_files", "pakashop_lock"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    proc = subprocess.run([str(ROOT / ".venv/bin/ansible-doc"), "-M", str(ROOT / "library"), module],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "EXAMPLES:" in proc.stdout and "RETURN VALUES:" in proc.stdout
    assert "ERROR" not in proc.stderr
