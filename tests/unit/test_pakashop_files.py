"""pakashop_files against a temporary directory tree (tests run as root)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pakashop_files
import pytest

SECRET = "DB_PASSWORD=s3cr3t-Pakashop-7f1c9e\n"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def tree_snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under root with its mode and (for files) its content."""
    snap: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        data = path.read_bytes() if path.is_file() else None
        snap[str(path.relative_to(root))] = (mode_of(path), data)
    return snap


@pytest.fixture
def spec(tmp_path: Path) -> dict:
    """Two directories (one nested) and two files, one of them secret."""
    base = tmp_path / "opt"
    return {
        "directories": [
            {"path": str(base / "svc"), "owner": "root", "group": "root", "mode": "0750"},
            {"path": str(base / "svc" / "shared" / "env"), "mode": "0700"},
        ],
        "files": [
            {"path": str(base / "svc" / "unit.service"), "content": "[Unit]\nDescription=svc\n",
             "owner": "root", "group": "root", "mode": "0640"},
            {"path": str(base / "svc" / "shared" / "env" / ".env"), "content": SECRET,
             "mode": "0600", "secret": True},
        ],
    }


def test_creates_directories_and_files_with_mode_and_owner(run_module, spec, tmp_path):
    result, failed = run_module(pakashop_files, spec)

    assert not failed, result
    assert result["changed"] is True
    svc = tmp_path / "opt" / "svc"
    env_dir = svc / "shared" / "env"
    assert result["changed_paths"] == [str(svc), str(env_dir), str(svc / "unit.service"), str(env_dir / ".env")]
    assert result["removed_paths"] == []

    assert svc.is_dir() and mode_of(svc) == 0o750
    assert env_dir.is_dir() and mode_of(env_dir) == 0o700
    assert (svc / "shared").is_dir()  # parents are created too
    assert (svc / "unit.service").read_text() == "[Unit]\nDescription=svc\n"
    assert mode_of(svc / "unit.service") == 0o640
    assert (env_dir / ".env").read_text() == SECRET
    assert mode_of(env_dir / ".env") == 0o600
    for path in (svc, env_dir, svc / "unit.service", env_dir / ".env"):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (0, 0)
    # No temporary files are left beside the targets.
    assert sorted(p.name for p in svc.iterdir()) == ["shared", "unit.service"]
    assert sorted(p.name for p in env_dir.iterdir()) == [".env"]


def test_default_modes(run_module, tmp_path):
    directory = tmp_path / "d"
    result, failed = run_module(pakashop_files, {
        "directories": [{"path": str(directory)}],
        "files": [{"path": str(directory / "f"), "content": "x"}],
    })

    assert not failed, result
    assert mode_of(directory) == 0o755
    assert mode_of(directory / "f") == 0o644


def test_second_run_is_unchanged(run_module, spec, tmp_path):
    run_module(pakashop_files, spec)
    unit = tmp_path / "opt" / "svc" / "unit.service"
    inode = os.stat(unit).st_ino
    before = tree_snapshot(tmp_path)

    result, failed = run_module(pakashop_files, spec)

    assert not failed, result
    assert result["changed"] is False
    assert result["changed_paths"] == []
    assert result["removed_paths"] == []
    assert tree_snapshot(tmp_path) == before
    assert os.stat(unit).st_ino == inode  # not even rewritten with the same content


def test_content_change_rewrites_only_that_file(run_module, spec, tmp_path):
    run_module(pakashop_files, spec)
    unit = tmp_path / "opt" / "svc" / "unit.service"
    spec["files"][0]["content"] = "[Unit]\nDescription=svc v2\n"

    result, failed = run_module(pakashop_files, spec)

    assert not failed, result
    assert result["changed"] is True
    assert result["changed_paths"] == [str(unit)]
    assert unit.read_text() == "[Unit]\nDescription=svc v2\n"
    assert mode_of(unit) == 0o640
    assert (tmp_path / "opt" / "svc" / "shared" / "env" / ".env").read_text() == SECRET


def test_mode_only_change_is_detected(run_module, spec, tmp_path):
    run_module(pakashop_files, spec)
    unit = tmp_path / "opt" / "svc" / "unit.service"
    env_dir = tmp_path / "opt" / "svc" / "shared" / "env"
    spec["files"][0]["mode"] = "0600"
    spec["directories"][1]["mode"] = "0711"

    result, failed = run_module(pakashop_files, spec)

    assert not failed, result
    assert result["changed"] is True
    assert result["changed_paths"] == [str(env_dir), str(unit)]
    assert mode_of(unit) == 0o600
    assert mode_of(env_dir) == 0o711
    assert unit.read_text() == "[Unit]\nDescription=svc\n"


def test_mode_drift_on_disk_is_repaired(run_module, spec, tmp_path):
    run_module(pakashop_files, spec)
    unit = tmp_path / "opt" / "svc" / "unit.service"
    os.chmod(unit, 0o666)

    result, failed = run_module(pakashop_files, spec)

    assert not failed, result
    assert result["changed_paths"] == [str(unit)]
    assert mode_of(unit) == 0o640


def test_prune_removes_only_unlisted_matching_files(run_module, tmp_path):
    units = tmp_path / "systemd"
    units.mkdir()
    for name in ("pakashop-backend.service", "pakashop-old.service", "pakashop-gone.service",
                 "other.service", "pakashop-backend.timer"):
        (units / name).write_text("old\n")
    (units / "pakashop-dir.service").mkdir()  # not a file: left alone

    result, failed = run_module(pakashop_files, {
        "files": [{"path": str(units / "pakashop-backend.service"), "content": "new\n"}],
        "prune": [{"directory": str(units), "glob": "pakashop-*.service"},
                  {"directory": str(tmp_path / "missing"), "glob": "*"}],
    })

    assert not failed, result
    removed = [str(units / "pakashop-gone.service"), str(units / "pakashop-old.service")]
    assert result["removed_paths"] == removed
    assert result["changed_paths"] == [str(units / "pakashop-backend.service"), *removed]
    assert sorted(p.name for p in units.iterdir()) == [
        "other.service", "pakashop-backend.service", "pakashop-backend.timer", "pakashop-dir.service"]
    assert (units / "pakashop-backend.service").read_text() == "new\n"

    again, _ = run_module(pakashop_files, {
        "files": [{"path": str(units / "pakashop-backend.service"), "content": "new\n"}],
        "prune": [{"directory": str(units), "glob": "pakashop-*.service"}],
    })
    assert again["changed"] is False
    assert again["removed_paths"] == []


def test_secret_content_is_never_returned(run_module, spec, tmp_path):
    spec["_ansible_diff"] = True

    result, failed = run_module(pakashop_files, spec)

    assert not failed, result
    assert (tmp_path / "opt" / "svc" / "shared" / "env" / ".env").read_text() == SECRET
    serialized = json.dumps(result)
    assert "s3cr3t-Pakashop-7f1c9e" not in serialized


def test_secret_content_is_not_in_the_module_output_fields(run_module, spec, tmp_path):
    """Everything except the echoed invocation stays clean, diff included."""
    spec["_ansible_diff"] = True
    env_file = tmp_path / "opt" / "svc" / "shared" / "env" / ".env"

    result, failed = run_module(pakashop_files, spec)

    assert not failed, result
    assert str(env_file) in result["diff"]["after"]
    own = {k: v for k, v in result.items() if k != "invocation"}
    assert "s3cr3t-Pakashop-7f1c9e" not in json.dumps(own)


def test_check_mode_writes_nothing(run_module, spec, tmp_path):
    prune_dir = tmp_path / "units"
    prune_dir.mkdir()
    (prune_dir / "pakashop-stale.service").write_text("stale\n")
    spec["prune"] = [{"directory": str(prune_dir), "glob": "pakashop-*.service"}]
    spec["_ansible_check_mode"] = True
    before = tree_snapshot(tmp_path)

    result, failed = run_module(pakashop_files, spec)

    assert not failed, result
    assert result["changed"] is True
    assert str(tmp_path / "opt" / "svc" / "unit.service") in result["changed_paths"]
    assert result["removed_paths"] == [str(prune_dir / "pakashop-stale.service")]
    assert tree_snapshot(tmp_path) == before
    assert not (tmp_path / "opt").exists()


def test_check_mode_reports_pending_change_without_rewriting(run_module, spec, tmp_path):
    run_module(pakashop_files, spec)
    unit = tmp_path / "opt" / "svc" / "unit.service"
    spec["files"][0]["content"] = "changed\n"
    spec["files"][0]["mode"] = "0600"
    spec["_ansible_check_mode"] = True

    result, failed = run_module(pakashop_files, spec)

    assert not failed, result
    assert result["changed_paths"] == [str(unit)]
    assert unit.read_text() == "[Unit]\nDescription=svc\n"
    assert mode_of(unit) == 0o640


@pytest.mark.parametrize("key", ["directories", "files"])
def test_relative_path_is_refused(run_module, tmp_path, monkeypatch, key):
    monkeypatch.chdir(tmp_path)
    entry = {"path": "relative/thing"}
    if key == "files":
        entry["content"] = "x"

    result, failed = run_module(pakashop_files, {key: [entry]})

    assert failed
    assert result["msg"] == "path must be absolute: relative/thing"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["0789", "rw-r--r--", "0o644x"])
def test_bad_octal_mode_is_refused(run_module, tmp_path, mode):
    target = tmp_path / "f"
    good_dir = tmp_path / "d"

    result, failed = run_module(pakashop_files, {
        "directories": [{"path": str(good_dir)}],
        "files": [{"path": str(target), "content": "x", "mode": mode}],
    })

    assert failed
    assert result["msg"] == f"mode of {target} is not octal: {mode!r}"
    assert not target.exists()
    assert not good_dir.exists()  # refused before anything was written


def test_unknown_owner_is_refused(run_module, tmp_path):
    target = tmp_path / "f"

    result, failed = run_module(pakashop_files, {
        "files": [{"path": str(target), "content": "x", "owner": "pakashop-no-such-user"}],
    })

    assert failed
    assert "unknown user or group" in result["msg"]
    assert not target.exists()


def test_prune_directory_spelling_does_not_delete_listed_files(run_module, tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    unit = units / "pakashop-backend.service"
    # What "{{ root }}/units" gives when root is set with a trailing slash.
    spelled = f"{tmp_path}//units"

    result, failed = run_module(pakashop_files, {
        "files": [{"path": f"{spelled}/pakashop-backend.service", "content": "new\n"}],
        "prune": [{"directory": spelled, "glob": "pakashop-*.service"}],
    })

    assert not failed, result
    assert result["removed_paths"] == []
    assert unit.read_text() == "new\n"
