"""pakashop_release: real builds from a generated git repository, and release bookkeeping.

The build tests export and build a small fixture application (one node, one python and,
when `go` is installed, one go service) from a git repository made by
tests/fixtures/app/make_repo.py. The switch/info/bad/prune tests lay out release
directories with marker files directly, which keeps them fast and exact.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pakashop_release
import pytest

MAKE_REPO = Path(__file__).resolve().parents[1] / "fixtures" / "app" / "make_repo.py"
MARKER = ".pakashop-release.json"
HAVE_GO = shutil.which("go") is not None
needs_go = pytest.mark.skipif(not HAVE_GO, reason="go is not installed")

SERVICES = [{"name": "web", "runtime": "node"}, {"name": "api", "runtime": "python"}]
if HAVE_GO:
    SERVICES.append({"name": "search", "runtime": "go"})
NAMES = sorted(s["name"] for s in SERVICES)
BROKEN = "api"

# Ids for fabricated releases; their timestamps give the deploy order R1 < R2 < ... < R5.
R1 = "20261101T080000Z-aaaa001"
R2 = "20261102T080000Z-aaaa002"
R3 = "20261103T080000Z-aaaa003"
R4 = "20261104T080000Z-aaaa004"
R5 = "20261105T080000Z-aaaa005"
RBAD = "20261103T120000Z-bbbb666"  # between R3 and R4

INVALID_IDS = ["../x", "20261121T101500Z-a/b", "latest", "20261121T101500Z-a..b", "20261121T1015Z-abc1234"]


# --------------------------------------------------------------------------- helpers


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def add_node_dependencies(service_dir: Path) -> None:
    """Give a node service one local runtime and one local dev dependency.

    The template has no dependencies, so `npm ci` would create no node_modules at all;
    with these, node_modules proves that `npm ci --omit=dev` ran (dep in, dev dep out).
    """
    for name in ("dep", "devdep"):
        (service_dir / "vendor" / name).mkdir(parents=True)
        (service_dir / "vendor" / name / "package.json").write_text(
            json.dumps({"name": f"pakashop-{name}", "version": "1.0.0"}) + "\n")
    manifest = json.loads((service_dir / "package.json").read_text())
    manifest["dependencies"] = {"pakashop-dep": "file:vendor/dep"}
    manifest["devDependencies"] = {"pakashop-devdep": "file:vendor/devdep"}
    (service_dir / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    lock = json.loads((service_dir / "package-lock.json").read_text())
    lock["packages"][""]["dependencies"] = manifest["dependencies"]
    lock["packages"][""]["devDependencies"] = manifest["devDependencies"]
    lock["packages"]["node_modules/pakashop-dep"] = {"resolved": "vendor/dep", "link": True}
    lock["packages"]["node_modules/pakashop-devdep"] = {"resolved": "vendor/devdep", "link": True}
    lock["packages"]["vendor/dep"] = {"name": "pakashop-dep", "version": "1.0.0"}
    lock["packages"]["vendor/devdep"] = {"name": "pakashop-devdep", "version": "1.0.0", "dev": True}
    (service_dir / "package-lock.json").write_text(json.dumps(lock, indent=2) + "\n")


def make_version(repo: Path, services_json: Path, version: str, *extra: str) -> str:
    """Commit one version of the fixture app (plus node dependencies); return its sha."""
    subprocess.run([sys.executable, str(MAKE_REPO), "--repo", str(repo), "--services-json", str(services_json),
                    "--version", version, "--tag", version, *extra],
                   capture_output=True, text=True, check=True)
    add_node_dependencies(repo / "services" / "web")
    git(repo, "add", "-A")
    git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "-m", f"{version}: node dependencies")
    git(repo, "tag", "-f", version, "HEAD")
    return git(repo, "rev-parse", "HEAD")


def rel_id(stamp: str, sha: str) -> str:
    return f"{stamp}-{sha[:7]}"


def releases_dir(root: Path, svc: str) -> Path:
    return root / svc / "releases"


def marker(root: Path, svc: str, release: str) -> dict[str, Any]:
    return json.loads((releases_dir(root, svc) / release / MARKER).read_text())


def link_of(root: Path, svc: str) -> str | None:
    link = root / svc / "current"
    return os.readlink(link) if link.is_symlink() else None


def fake_release(root: Path, svc: str, release: str, status: str | None = "complete") -> Path:
    """A release directory as a finished build leaves it (status None: no marker, unfinished)."""
    path = releases_dir(root, svc) / release
    path.mkdir(parents=True)
    (path / "VERSION").write_text(release + "\n")
    if status is not None:
        data = {"release": release, "revision": f"rev-{release[-7:]}", "service": svc, "status": status}
        (path / MARKER).write_text(json.dumps(data))
    return path


def point_current(root: Path, svc: str, release: str) -> None:
    link = root / svc / "current"
    if link.is_symlink():
        link.unlink()
    os.symlink(f"releases/{release}", link)


def tree(root: Path) -> dict[str, str]:
    """Every path under root: link targets, file contents, or 'dir'."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[key] = "dir"
        else:
            out[key] = path.read_text(errors="replace")
    return out


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def app_repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """v1, v2 and a v3 whose python service does not build; git_dir is the repo's .git."""
    base = tmp_path_factory.mktemp("app")
    services_json = base / "services.json"
    services_json.write_text(json.dumps(SERVICES))
    repo = base / "app"
    shas = {
        "v1": make_version(repo, services_json, "v1"),
        "v2": make_version(repo, services_json, "v2"),
        "v3": make_version(repo, services_json, "v3", "--break-build", BROKEN),
    }
    return {"git_dir": str(repo / ".git"), "shas": shas}


@pytest.fixture(scope="module")
def _scenario_cache() -> dict[str, Any]:
    return {}


@pytest.fixture
def scenario(run_module, app_repo, tmp_path_factory, _scenario_cache) -> dict[str, Any]:
    """One root taken through a real deploy history, run once for the whole file.

    build v1 -> build v1 again -> switch v1 -> build v2 -> switch v2 -> build v3 (fails).
    Tests only read what it recorded or make calls that change nothing.
    """
    cache = _scenario_cache
    if cache:
        return cache
    root = tmp_path_factory.mktemp("scenario") / "pakashop"
    shas = app_repo["shas"]
    ids = {
        "v1": rel_id("20261120T090000Z", shas["v1"]),
        "v2": rel_id("20261121T101500Z", shas["v2"]),
        "v3": rel_id("20261122T070000Z", shas["v3"]),
    }
    common = {"root": str(root), "services": SERVICES, "git_dir": app_repo["git_dir"]}

    def build(version: str) -> tuple[dict, bool]:
        return run_module(pakashop_release, dict(common, state="built", release=ids[version],
                                                 revision=shas[version]))

    def switch(version: str) -> tuple[dict, bool]:
        return run_module(pakashop_release, {"root": str(root), "services": SERVICES, "state": "switched",
                                             "release": ids[version]})

    cache.update(root=root, ids=ids, shas=shas)
    cache["build_v1"] = build("v1")
    cache["markers_v1"] = {s: marker(root, s, ids["v1"]) for s in NAMES}
    cache["build_v1_again"] = build("v1")
    cache["markers_v1_again"] = {s: marker(root, s, ids["v1"]) for s in NAMES}
    cache["switch_v1"] = switch("v1")
    cache["links_v1"] = {s: link_of(root, s) for s in NAMES}
    cache["build_v2"] = build("v2")
    cache["switch_v2"] = switch("v2")
    cache["switch_v2_again"] = switch("v2")
    cache["links_v2"] = {s: link_of(root, s) for s in NAMES}
    cache["build_v3"] = build("v3")
    cache["links_after_v3"] = {s: link_of(root, s) for s in NAMES}
    return cache


# --------------------------------------------------------------------------- built


def test_built_creates_a_complete_release_per_service(scenario):
    result, failed = scenario["build_v1"]
    root, release = scenario["root"], scenario["ids"]["v1"]

    assert not failed, result
    assert result["changed"] is True
    assert sorted(result["changed_services"]) == NAMES
    assert sorted(result["built_seconds"]) == NAMES
    assert all(isinstance(v, (int, float)) and v >= 0 for v in result["built_seconds"].values())
    for svc in NAMES:
        path = releases_dir(root, svc) / release
        assert path.is_dir()
        data = scenario["markers_v1"][svc]
        assert data["status"] == "complete"
        assert data["release"] == release
        assert data["revision"] == scenario["shas"]["v1"]
        assert data["service"] == svc
        assert (path / "VERSION").read_text() == "v1\n"
        assert os.readlink(path / ".env") == "../../shared/.env"
        assert (root / svc / "shared").is_dir()
        assert result["services"][svc]["releases"] == {release: "complete"}
        assert result["services"][svc]["current"] is None


def test_built_node_service_ran_npm_ci_without_dev_dependencies(scenario):
    path = releases_dir(scenario["root"], "web") / scenario["ids"]["v1"]

    assert (path / "node_modules").is_dir()
    assert (path / "node_modules" / "pakashop-dep" / "package.json").is_file()
    assert not (path / "node_modules" / "pakashop-devdep").exists()


def test_built_python_service_has_a_venv(scenario):
    path = releases_dir(scenario["root"], "api") / scenario["ids"]["v1"]
    python = path / "venv" / "bin" / "python"

    assert python.exists()
    prefix = subprocess.run([str(python), "-c", "import sys; print(sys.prefix)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert Path(prefix) == path / "venv"


@needs_go
def test_built_go_service_has_its_binary(scenario):
    binary = releases_dir(scenario["root"], "search") / scenario["ids"]["v1"] / "bin" / "search"

    assert binary.is_file()
    assert binary.stat().st_mode & stat.S_IXUSR
    assert binary.read_bytes()[:4] == b"\x7fELF"


def test_built_again_is_unchanged(scenario):
    result, failed = scenario["build_v1_again"]

    assert not failed, result
    assert result["changed"] is False
    assert result["changed_services"] == []
    assert result["built_seconds"] == {}
    assert scenario["markers_v1_again"] == scenario["markers_v1"]  # not rebuilt


def test_switched_after_real_builds(scenario):
    ids = scenario["ids"]
    first, failed = scenario["switch_v1"]
    assert not failed, first
    assert first["changed"] is True
    assert sorted(first["changed_services"]) == NAMES
    assert scenario["links_v1"] == {s: f"releases/{ids['v1']}" for s in NAMES}

    second, failed = scenario["switch_v2"]
    assert not failed, second
    assert sorted(second["changed_services"]) == NAMES
    again, failed = scenario["switch_v2_again"]
    assert not failed, again
    assert again["changed"] is False
    assert again["changed_services"] == []
    assert scenario["links_v2"] == {s: f"releases/{ids['v2']}" for s in NAMES}
    for svc in NAMES:
        assert (scenario["root"] / svc / "current" / "VERSION").read_text() == "v2\n"


def test_info_after_real_builds(run_module, scenario):
    ids = scenario["ids"]

    result, failed = run_module(pakashop_release, {"root": str(scenario["root"]), "services": SERVICES})

    assert not failed, result
    assert result["changed"] is False
    assert result["changed_services"] == []
    assert "built_seconds" not in result
    for svc in NAMES:
        assert result["services"][svc] == {
            "current": ids["v2"],
            "current_revision": scenario["shas"]["v2"],
            "previous_good": ids["v1"],
            "releases": {ids["v1"]: "complete", ids["v2"]: "complete"},
        }


def test_failed_build_names_the_service_and_leaves_nothing_behind(scenario):
    result, failed = scenario["build_v3"]
    root, release = scenario["root"], scenario["ids"]["v3"]

    assert failed
    assert result["msg"].startswith(f"build of release {release} failed for {BROKEN}: ")
    assert result["failed_services"] == [BROKEN]
    for svc in NAMES:
        # Not for the broken service, and not for the ones that did build either.
        assert not (releases_dir(root, svc) / release).exists(), svc
        assert sorted(os.listdir(releases_dir(root, svc))) == sorted([scenario["ids"]["v1"], scenario["ids"]["v2"]])
    assert scenario["links_after_v3"] == scenario["links_v2"]


def test_build_from_an_extracted_artifact(run_module, app_repo, tmp_path):
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    archive = subprocess.run(["git", "--git-dir", app_repo["git_dir"], "archive", "--format=tar", "v2"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(artifact)], input=archive, check=True)
    root = tmp_path / "root"
    release = rel_id("20261121T101500Z", app_repo["shas"]["v2"])

    result, failed = run_module(pakashop_release, {
        "state": "built", "root": str(root), "release": release, "source_dir": str(artifact),
        "services": [{"name": "web", "runtime": "node"}],
    })

    assert not failed, result
    assert result["changed_services"] == ["web"]
    path = releases_dir(root, "web") / release
    assert (path / "VERSION").read_text() == "v2\n"
    assert (path / "node_modules" / "pakashop-dep").exists()
    assert marker(root, "web", release)["status"] == "complete"
    assert marker(root, "web", release)["revision"] == ""


def test_build_refuses_a_service_missing_from_the_artifact(run_module, tmp_path):
    root = tmp_path / "root"
    (tmp_path / "artifact" / "services").mkdir(parents=True)

    result, failed = run_module(pakashop_release, {
        "state": "built", "root": str(root), "release": R1, "source_dir": str(tmp_path / "artifact"),
        "services": [{"name": "web", "runtime": "node"}],
    })

    assert failed
    assert "failed for web" in result["msg"]
    assert "artifact has no services/web" in result["msg"]
    assert not (releases_dir(root, "web") / R1).exists()


def test_built_check_mode_builds_nothing(run_module, app_repo, tmp_path):
    root = tmp_path / "root"

    result, failed = run_module(pakashop_release, {
        "state": "built", "root": str(root), "services": SERVICES, "git_dir": app_repo["git_dir"],
        "release": rel_id("20261120T090000Z", app_repo["shas"]["v1"]), "revision": app_repo["shas"]["v1"],
        "_ansible_check_mode": True,
    })

    assert not failed, result
    assert result["changed"] is True
    assert sorted(result["changed_services"]) == NAMES
    assert result["built_seconds"] == {}
    assert not root.exists()


def test_built_needs_a_source(run_module, tmp_path):
    result, failed = run_module(pakashop_release, {
        "state": "built", "root": str(tmp_path / "root"), "release": R1, "services": SERVICES,
    })

    assert failed
    assert result["msg"] == "state=built needs git_dir (with revision) or source_dir"
    assert not (tmp_path / "root").exists()


def test_built_refuses_unknown_runtime(run_module, tmp_path):
    result, failed = run_module(pakashop_release, {
        "state": "built", "root": str(tmp_path / "root"), "release": R1, "source_dir": str(tmp_path),
        "services": [{"name": "web", "runtime": "ruby"}],
    })

    assert failed
    assert result["msg"] == "service web has unknown runtime 'ruby'"
    assert not (tmp_path / "root").exists()


# --------------------------------------------------------------------------- switched


@pytest.fixture
def two_services(tmp_path: Path) -> tuple[Path, list[dict]]:
    """Services a and b, each with complete R1 and R2, current -> R1."""
    root = tmp_path / "root"
    services = [{"name": "a", "runtime": "node"}, {"name": "b", "runtime": "go"}]
    for svc in ("a", "b"):
        fake_release(root, svc, R1)
        fake_release(root, svc, R2)
        point_current(root, svc, R1)
    return root, services


def switch_args(root: Path, services: list[dict], release: str | None = None, **extra: Any) -> dict:
    args = {"state": "switched", "root": str(root), "services": services, **extra}
    if release is not None:
        args["release"] = release
    return args


def test_switch_moves_current_with_a_relative_link(run_module, two_services):
    root, services = two_services

    result, failed = run_module(pakashop_release, switch_args(root, services, R2))

    assert not failed, result
    assert result["changed"] is True
    assert result["changed_services"] == ["a", "b"]
    for svc in ("a", "b"):
        assert os.readlink(root / svc / "current") == f"releases/{R2}"
        assert (root / svc / "current").resolve() == (releases_dir(root, svc) / R2).resolve()
        assert not (root / svc / ".current.tmp").exists()
        assert result["services"][svc]["current"] == R2
        assert result["services"][svc]["current_revision"] == f"rev-{R2[-7:]}"


def test_switch_to_the_current_release_is_unchanged(run_module, two_services):
    root, services = two_services
    inode = os.lstat(root / "a" / "current").st_ino

    result, failed = run_module(pakashop_release, switch_args(root, services, R1))

    assert not failed, result
    assert result["changed"] is False
    assert result["changed_services"] == []
    assert os.lstat(root / "a" / "current").st_ino == inode  # the link was not replaced


def test_switch_only_reports_services_that_moved(run_module, two_services):
    root, services = two_services
    point_current(root, "a", R2)

    result, failed = run_module(pakashop_release, switch_args(root, services, R2))

    assert not failed, result
    assert result["changed_services"] == ["b"]
    assert link_of(root, "a") == link_of(root, "b") == f"releases/{R2}"


def test_switch_creates_current_when_missing(run_module, tmp_path):
    root = tmp_path / "root"
    fake_release(root, "a", R1)

    result, failed = run_module(pakashop_release, switch_args(root, [{"name": "a"}], R1))

    assert not failed, result
    assert result["changed_services"] == ["a"]
    assert link_of(root, "a") == f"releases/{R1}"


def test_switch_per_service_release_overrides_module_release(run_module, two_services):
    root, services = two_services
    fake_release(root, "a", R3)
    services = [{"name": "a", "runtime": "node"}, {"name": "b", "runtime": "go", "release": R2}]

    result, failed = run_module(pakashop_release, switch_args(root, services, R3))

    assert not failed, result
    assert result["changed_services"] == ["a", "b"]
    assert link_of(root, "a") == f"releases/{R3}"
    assert link_of(root, "b") == f"releases/{R2}"


def test_switch_per_service_release_without_module_release(run_module, two_services):
    root, _ = two_services
    services = [{"name": "a", "release": R2}, {"name": "b", "release": R1}]

    result, failed = run_module(pakashop_release, switch_args(root, services))

    assert not failed, result
    assert result["changed_services"] == ["a"]
    assert link_of(root, "a") == f"releases/{R2}"
    assert link_of(root, "b") == f"releases/{R1}"


def test_switch_without_any_release_is_refused(run_module, two_services):
    root, services = two_services

    result, failed = run_module(pakashop_release, switch_args(root, services))

    assert failed
    assert result["msg"] == "state=switched needs release, or a release per service (a)"
    assert link_of(root, "a") == f"releases/{R1}"


def test_switch_to_a_missing_release_moves_no_service(run_module, two_services):
    root, services = two_services
    fake_release(root, "a", R3)  # only a has it; a is listed first
    before = tree(root)

    result, failed = run_module(pakashop_release, switch_args(root, services, R3))

    assert failed
    assert result["msg"] == f"cannot switch b to release {R3}: no such release"
    assert link_of(root, "a") == f"releases/{R1}"
    assert link_of(root, "b") == f"releases/{R1}"
    assert tree(root) == before


@pytest.mark.parametrize("status", ["bad", None], ids=["bad", "unfinished"])
def test_switch_to_a_release_that_is_not_complete_moves_no_service(run_module, two_services, status):
    root, services = two_services
    fake_release(root, "a", R3)
    fake_release(root, "b", R3, status=status)
    before = tree(root)

    result, failed = run_module(pakashop_release, switch_args(root, services, R3))

    assert failed
    expected = "bad" if status == "bad" else "incomplete"
    assert result["msg"] == f"cannot switch b to release {R3}: it is marked {expected}"
    assert link_of(root, "a") == f"releases/{R1}"
    assert link_of(root, "b") == f"releases/{R1}"
    assert tree(root) == before


def test_switch_check_mode_moves_nothing(run_module, two_services):
    root, services = two_services

    result, failed = run_module(pakashop_release, switch_args(root, services, R2, _ansible_check_mode=True))

    assert not failed, result
    assert result["changed"] is True
    assert result["changed_services"] == ["a", "b"]
    assert link_of(root, "a") == link_of(root, "b") == f"releases/{R1}"
    assert result["services"]["a"]["current"] == R1


# --------------------------------------------------------------------------- info


def test_info_reports_current_previous_good_and_statuses(run_module, tmp_path):
    root = tmp_path / "root"
    fake_release(root, "a", R1)
    fake_release(root, "a", R2)
    fake_release(root, "a", R3, status=None)  # unfinished
    fake_release(root, "a", RBAD, status="bad")
    fake_release(root, "a", R4)
    fake_release(root, "a", R5)  # newer than current: rolled back from it
    (releases_dir(root, "a") / "not-a-release").mkdir()
    point_current(root, "a", R4)

    result, failed = run_module(pakashop_release, {"root": str(root), "services": [{"name": "a"}]})

    assert not failed, result
    assert result["changed"] is False
    assert result["services"]["a"] == {
        "current": R4,
        "current_revision": f"rev-{R4[-7:]}",
        "previous_good": R2,
        "releases": {R1: "complete", R2: "complete", R3: "incomplete", RBAD: "bad", R4: "complete",
                     R5: "complete"},
    }


def test_info_without_current(run_module, tmp_path):
    root = tmp_path / "root"
    fake_release(root, "a", R1)
    fake_release(root, "a", R2)

    result, failed = run_module(pakashop_release, {"state": "info", "root": str(root),
                                                   "services": [{"name": "a"}, {"name": "b"}]})

    assert not failed, result
    assert result["services"]["a"] == {"current": None, "current_revision": None, "previous_good": R2,
                                       "releases": {R1: "complete", R2: "complete"}}
    assert result["services"]["b"] == {"current": None, "current_revision": None, "previous_good": None,
                                       "releases": {}}
    assert not (root / "b").exists()


def test_info_refuses_invalid_service_names(run_module, tmp_path):
    result, failed = run_module(pakashop_release, {"root": str(tmp_path), "services": [{"name": "../etc"}]})

    assert failed
    assert result["msg"].startswith("invalid service entry")


# --------------------------------------------------------------------------- bad


def test_mark_bad(run_module, tmp_path):
    root = tmp_path / "root"
    fake_release(root, "a", R1)
    fake_release(root, "a", R2)
    point_current(root, "a", R2)

    result, failed = run_module(pakashop_release, {"state": "bad", "root": str(root), "release": R2,
                                                   "services": [{"name": "a"}, {"name": "b"}]})

    assert not failed, result
    assert result["changed"] is True
    assert result["changed_services"] == ["a"]  # b has no such release
    data = marker(root, "a", R2)
    assert data["status"] == "bad"
    assert data["revision"] == f"rev-{R2[-7:]}"  # the rest of the marker is kept
    assert data["marked_bad_at"].endswith("Z")
    assert result["services"]["a"]["releases"] == {R1: "complete", R2: "bad"}
    assert not (root / "b").exists()

    again, failed = run_module(pakashop_release, {"state": "bad", "root": str(root), "release": R2,
                                                  "services": [{"name": "a"}]})
    assert not failed, again
    assert again["changed"] is False
    assert marker(root, "a", R2) == data


def test_mark_bad_check_mode_changes_nothing(run_module, tmp_path):
    root = tmp_path / "root"
    fake_release(root, "a", R1)
    before = tree(root)

    result, failed = run_module(pakashop_release, {"state": "bad", "root": str(root), "release": R1,
                                                   "services": [{"name": "a"}], "_ansible_check_mode": True})

    assert not failed, result
    assert result["changed"] is True
    assert tree(root) == before
    assert marker(root, "a", R1)["status"] == "complete"


def test_bad_release_is_never_previous_good(run_module, tmp_path):
    root = tmp_path / "root"
    for release in (R1, R2, R3):
        fake_release(root, "a", release)
    point_current(root, "a", R3)
    args = {"root": str(root), "services": [{"name": "a"}]}

    assert run_module(pakashop_release, args)[0]["services"]["a"]["previous_good"] == R2

    run_module(pakashop_release, dict(args, state="bad", release=R2))
    assert run_module(pakashop_release, args)[0]["services"]["a"]["previous_good"] == R1

    run_module(pakashop_release, dict(args, state="bad", release=R1))
    assert run_module(pakashop_release, args)[0]["services"]["a"]["previous_good"] is None


def test_building_a_bad_release_again_is_refused(run_module, app_repo, tmp_path):
    root = tmp_path / "root"
    release = rel_id("20261120T090000Z", app_repo["shas"]["v1"])
    fake_release(root, "web", release, status="bad")
    before = tree(root)

    result, failed = run_module(pakashop_release, {
        "state": "built", "root": str(root), "release": release, "git_dir": app_repo["git_dir"],
        "revision": app_repo["shas"]["v1"], "services": [{"name": "web", "runtime": "node"}],
    })

    assert failed
    assert result["msg"] == f"release {release} is marked bad for web; deploy a new release"
    assert tree(root) == before


# --------------------------------------------------------------------------- pruned


def prune(run_module, root: Path, keep: int, **extra: Any) -> tuple[dict, bool]:
    return run_module(pakashop_release, {"state": "pruned", "root": str(root), "keep": keep,
                                         "services": [{"name": "a"}], **extra})


def remaining(root: Path) -> list[str]:
    return sorted(os.listdir(releases_dir(root, "a")))


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """Four good releases R1..R4 and a bad one between R3 and R4; current -> R4."""
    root = tmp_path / "root"
    for release in (R1, R2, R3, R4):
        fake_release(root, "a", release)
    fake_release(root, "a", RBAD, status="bad")
    point_current(root, "a", R4)
    return root


def test_prune_keeps_the_newest_good_releases(run_module, history):
    result, failed = prune(run_module, history, keep=2)

    assert not failed, result
    assert result["changed"] is True
    assert result["changed_services"] == ["a"]
    assert remaining(history) == [R3, R4]
    assert result["services"]["a"]["releases"] == {R3: "complete", R4: "complete"}
    assert link_of(history, "a") == f"releases/{R4}"

    again, failed = prune(run_module, history, keep=2)
    assert not failed, again
    assert again["changed"] is False
    assert remaining(history) == [R3, R4]


def test_prune_removes_bad_releases_first(run_module, history):
    result, failed = prune(run_module, history, keep=4)

    assert not failed, result
    assert result["changed_services"] == ["a"]
    assert remaining(history) == [R1, R2, R3, R4]


def test_prune_removes_unfinished_releases(run_module, history):
    fake_release(history, "a", R5, status=None)

    prune(run_module, history, keep=5)

    assert remaining(history) == [R1, R2, R3, R4]


def test_prune_keep_one_still_keeps_previous_good(run_module, history):
    result, failed = prune(run_module, history, keep=1)

    assert not failed, result
    assert remaining(history) == [R3, R4]


@pytest.mark.parametrize(("good", "current", "kept"), [
    # Rolled back to R2: R1 is its previous good; R3 and R4 are the newest two.
    ([R1, R2, R3, R4], R2, [R1, R2, R3, R4]),
    # Five good ones, rolled back to R2: R3 is neither newest two, current nor previous good.
    ([R1, R2, R3, R4, R5], R2, [R1, R2, R4, R5]),
    # Rolled back to the oldest one: it has no previous good; R2 goes.
    ([R1, R2, R3, R4], R1, [R1, R3, R4]),
], ids=["4-good-current-R2", "5-good-current-R2", "4-good-current-R1"])
def test_prune_after_a_rollback_keeps_current_and_previous_good(run_module, tmp_path, good, current, kept):
    root = tmp_path / "root"
    for release in good:
        fake_release(root, "a", release)
    fake_release(root, "a", RBAD, status="bad")
    point_current(root, "a", current)

    result, failed = prune(run_module, root, keep=2)

    assert not failed, result
    assert remaining(root) == kept
    assert link_of(root, "a") == f"releases/{current}"
    assert result["services"]["a"]["current"] == current


def test_prune_never_removes_current_even_if_marked_bad(run_module, history):
    run_module(pakashop_release, {"state": "bad", "root": str(history), "release": R4,
                                  "services": [{"name": "a"}]})

    result, failed = prune(run_module, history, keep=1)

    assert not failed, result
    # R3 is the newest good one and the previous good of R4; R4 is current.
    assert remaining(history) == [R3, R4]


def test_prune_check_mode_removes_nothing(run_module, history):
    before = tree(history)

    result, failed = prune(run_module, history, keep=2, _ansible_check_mode=True)

    assert not failed, result
    assert result["changed"] is True
    assert result["changed_services"] == ["a"]
    assert tree(history) == before


def test_prune_keep_must_be_positive(run_module, history):
    before = tree(history)

    result, failed = prune(run_module, history, keep=0)

    assert failed
    assert result["msg"] == "keep must be at least 1"
    assert tree(history) == before


# --------------------------------------------------------------------------- invalid ids


@pytest.mark.parametrize("state", ["built", "switched", "bad"])
@pytest.mark.parametrize("bad_id", INVALID_IDS)
def test_invalid_release_id_is_refused_before_anything_is_written(run_module, app_repo, tmp_path, state, bad_id):
    root = tmp_path / "root"
    args = {"state": state, "root": str(root), "release": bad_id, "services": SERVICES}
    if state == "built":
        args.update(git_dir=app_repo["git_dir"], revision=app_repo["shas"]["v1"])

    result, failed = run_module(pakashop_release, args)

    assert failed
    assert result["msg"] == f"invalid release id {bad_id!r}: expected YYYYmmddTHHMMSSZ-<revision>"
    assert not root.exists()
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad_id", INVALID_IDS)
def test_invalid_per_service_release_is_refused(run_module, two_services, bad_id):
    root, _ = two_services
    before = tree(root)
    services = [{"name": "a", "release": R2}, {"name": "b", "release": bad_id}]

    result, failed = run_module(pakashop_release, switch_args(root, services))

    assert failed
    assert result["msg"] == f"invalid release id {bad_id!r} for service b"
    assert tree(root) == before


def test_valid_release_id_shapes_are_accepted(run_module, tmp_path):
    root = tmp_path / "root"
    release = "20261121T101500Z-v2.1_rc-1"
    fake_release(root, "a", release)

    result, failed = run_module(pakashop_release, switch_args(root, [{"name": "a"}], release))

    assert not failed, result
    assert link_of(root, "a") == f"releases/{release}"
