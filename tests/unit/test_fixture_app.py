"""The fixture services (node, python, go) and the make_repo.py generator.

The services are started for real as subprocesses on free loopback ports, from
a release directory reached through a ``current`` symlink, the way the sandbox
hosts run them.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

APP_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "app"
TEMPLATES = APP_DIR / "templates"
MAKE_REPO = APP_DIR / "make_repo.py"
RELEASE = "20261121T120000Z-abc1234"
RUNTIMES = ("node", "python", "go")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def go_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The go template compiled once for the whole module."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    build = tmp_path_factory.mktemp("gobuild")
    shutil.copytree(TEMPLATES / "go", build, dirs_exist_ok=True)
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod"}
    subprocess.run(
        ["go", "build", "-o", "bin/svc", "./src"],
        cwd=build,
        env=env,
        check=True,
        timeout=120,
    )
    return build / "bin" / "svc"


@dataclass
class Service:
    proc: subprocess.Popen[str]
    port: int
    output: list[str] = field(default_factory=list)

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return (
                resp.status,
                resp.getheader("Content-Type") or "",
                resp.read().decode(),
            )
        finally:
            conn.close()

    def get_json(self, path: str) -> tuple[int, Any]:
        status, ctype, body = self.get(path)
        assert ctype.startswith("application/json"), ctype
        return status, json.loads(body)

    def stop(self) -> list[dict[str, Any]]:
        """SIGTERM the service, check it exits 0, return its log lines."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0, out
        return [json.loads(line) for line in out.splitlines() if line.strip()]


class Launcher:
    def __init__(self, runtime: str, root: Path, go_binary: Path | None) -> None:
        self.runtime, self.root, self.go_binary = runtime, root, go_binary
        self.started: list[subprocess.Popen[str]] = []

    def release(
        self, name: str, version: str | None = "v7", fault: str | None = None
    ) -> Path:
        """Create <root>/<name>/releases/RELEASE and a `current` symlink to it."""
        app = self.root / name
        release = app / "releases" / RELEASE
        shutil.copytree(TEMPLATES / self.runtime, release)
        if self.go_binary is not None:
            (release / "bin").mkdir()
            shutil.copy2(self.go_binary, release / "bin" / "svc")
        if version is not None:
            (release / "VERSION").write_text(version + "\n")
        if fault is not None:
            (release / "FAULT").write_text(fault + "\n")
        (app / "current").symlink_to(Path("releases") / RELEASE)
        return app / "current"

    def command(self) -> list[str]:
        return {
            "node": ["node", "index.js"],
            "python": [sys.executable, "app.py"],
            "go": ["./bin/svc"],
        }[self.runtime]

    def spawn(self, cwd: Path, port: int, **env: str) -> subprocess.Popen[str]:
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith("PAKASHOP_")
        }
        full_env.update({"PORT": str(port), "SERVICE_NAME": "backend", **env})
        proc = subprocess.Popen(
            self.command(),
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.started.append(proc)
        return proc

    def start(self, cwd: Path, **env: str) -> Service:
        port = free_port()
        proc = self.spawn(cwd, port, **env)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"service exited with {proc.returncode}: {out}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return Service(proc, port)
            except OSError:
                time.sleep(0.02)
        pytest.fail("service did not start listening")


@pytest.fixture(params=RUNTIMES)
def launcher(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Launcher]:
    runtime = request.param
    if runtime == "node" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    binary = request.getfixturevalue("go_binary") if runtime == "go" else None
    result = Launcher(runtime, tmp_path, binary)
    yield result
    for proc in result.started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_health_metrics_and_logs(launcher: Launcher) -> None:
    svc = launcher.start(launcher.release("app"))
    expected = {
        "status": "ok",
        "service": "pakashop-backend",
        "version": "v7",
        "release": RELEASE,
    }
    assert svc.get_json("/health") == (200, expected)
    assert svc.get_json("/api/v1/health") == (200, expected)
    assert svc.get_json("/health/ready") == (
        200,
        {"status": "ready", "dependencies": {}},
    )
    assert svc.get_json("/nope") == (404, {"error": "not found"})
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    status, _, _ = svc.get(
        "/health", {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    )
    assert status == 200

    status, ctype, text = svc.get("/health/metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    lines = text.splitlines()
    assert 'pakashop_up{service="pakashop-backend"} 1' in lines
    assert (
        f'pakashop_build_info{{service="pakashop-backend",version="v7",release="{RELEASE}"}} 1'
    ) in lines
    assert 'pakashop_http_requests_total{path="/health"} 2' in lines
    assert 'pakashop_http_requests_total{path="/api/v1/health"} 1' in lines
    assert 'pakashop_http_requests_total{path="/health/metrics"} 1' in lines
    assert "# TYPE pakashop_http_requests_total counter" in lines
    assert "# HELP pakashop_up Whether the service process is up." in lines
    start = [line for line in lines if line.startswith("process_start_time_seconds ")]
    assert len(start) == 1
    assert abs(float(start[0].split()[1]) - time.time()) < 60

    logs = svc.stop()
    first = logs[0]
    assert first["msg"] == "listening"
    assert first["level"] == 30
    assert (first["port"], first["version"], first["release"]) == (
        svc.port,
        "v7",
        RELEASE,
    )
    assert first["service"] == "pakashop-backend"
    assert first["pid"] == svc.proc.pid
    assert HEX32.match(str(first["traceId"])) and HEX16.match(str(first["spanId"]))
    assert abs(int(first["time"]) / 1000 - time.time()) < 60
    requests = [entry for entry in logs if entry.get("msg") == "request completed"]
    assert [(r["method"], r["path"], r["status"]) for r in requests[:5]] == [
        ("GET", "/health", 200),
        ("GET", "/api/v1/health", 200),
        ("GET", "/health/ready", 200),
        ("GET", "/nope", 404),
        ("GET", "/health", 200),
    ]
    assert all(isinstance(r["durationMs"], int | float) for r in requests)
    assert requests[4]["traceId"] == trace
    assert logs[-1]["msg"] == "shutting down"


def test_ready_checks_use_real_tcp_connections(launcher: Launcher) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        up = listener.getsockname()[1]
        down = free_port()  # nothing listens there any more
        cwd = launcher.release("app")
        healthy = launcher.start(cwd, PAKASHOP_READY_CHECKS=f"postgres=127.0.0.1:{up}")
        assert healthy.get_json("/health/ready") == (
            200,
            {"status": "ready", "dependencies": {"postgres": "ok"}},
        )
        checks = f"redis=127.0.0.1:{down}, postgres=127.0.0.1:{up}"
        broken = launcher.start(cwd, PAKASHOP_READY_CHECKS=checks)
        expected = {
            "status": "not_ready",
            "dependencies": {"postgres": "ok", "redis": "error"},
        }
        began = time.monotonic()
        assert broken.get_json("/health/ready") == (503, expected)
        assert broken.get_json("/api/v1/health/ready") == (503, expected)
        assert time.monotonic() - began < 3
        healthy.stop()
        broken.stop()


def test_fault_ready_from_file_and_env_precedence(launcher: Launcher) -> None:
    svc = launcher.start(launcher.release("ready", version=None, fault="ready"))
    assert svc.get_json("/health/ready") == (
        503,
        {"status": "not_ready", "dependencies": {}, "fault": "ready"},
    )
    status, body = svc.get_json("/health")
    assert status == 200
    assert body["version"] == "dev"
    svc.stop()
    # PAKASHOP_FAULT wins over the FAULT file: the crash fault is not applied.
    svc = launcher.start(launcher.release("env", fault="crash"), PAKASHOP_FAULT="ready")
    assert svc.get_json("/health/ready")[0] == 503
    svc.stop()


def test_fault_crash_exits_before_listening(launcher: Launcher) -> None:
    port = free_port()
    proc = launcher.spawn(launcher.release("crash", fault="crash"), port)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 1
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [e["level"] for e in entries] == [50]
    assert entries[0]["service"] == "pakashop-backend"
    assert not any(e.get("msg") == "listening" for e in entries)


def test_migrate_appends_one_line_per_run(tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    launcher = Launcher("node", tmp_path, None)
    cwd = launcher.release("app")
    log = tmp_path / "migrations.log"
    env = {**os.environ, "PAKASHOP_MIGRATIONS_LOG": str(log), "SERVICE_NAME": "backend"}
    for _ in range(2):
        subprocess.run(["node", "migrate.js"], cwd=cwd, env=env, check=True, timeout=10)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["service"], e["release"]) for e in entries] == [
        ("pakashop-backend", RELEASE)
    ] * 2
    assert all(isinstance(e["time"], int) for e in entries)


# --- make_repo.py ---------------------------------------------------------------

CATALOG = [
    {"name": "web", "runtime": "node", "port": 3080},
    {"name": "search", "runtime": "go", "port": 3005},
    {"name": "worker", "runtime": "python", "port": 3110},
]


def make_repo(
    tmp_path: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"  # no global git identity there
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    env.pop("GIT_CONFIG_GLOBAL", None)
    result = subprocess.run(
        [sys.executable, str(MAKE_REPO), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def write_catalog(tmp_path: Path, services: list[dict[str, object]]) -> Path:
    path = tmp_path / "services.json"
    path.write_text(json.dumps(services))
    return path


def test_make_repo_builds_tree_commits_and_tags(tmp_path: Path) -> None:
    repo, mirror = tmp_path / "app", tmp_path / "mirror.git"
    catalog = str(write_catalog(tmp_path, CATALOG))
    args = ["--repo", str(repo), "--services-json", catalog, "--version", "v2"]
    sha = make_repo(tmp_path, *args, "--bare-mirror", str(mirror)).stdout.strip()

    assert re.fullmatch(r"[0-9a-f]{40}", sha)
    assert git(repo, "rev-parse", "HEAD") == sha
    assert git(repo, "rev-parse", "v2^{commit}") == sha
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert git(repo, "log", "--format=%s") == "release v2"
    assert git(repo, "status", "--porcelain") == ""
    assert sorted(p.name for p in (repo / "services").iterdir()) == [
        "search",
        "web",
        "worker",
    ]
    web = repo / "services" / "web"
    assert json.loads((web / "package.json").read_text())["name"] == "pakashop-web"
    lock = json.loads((web / "package-lock.json").read_text())
    assert (lock["name"], lock["lockfileVersion"]) == ("pakashop-web", 3)
    assert json.loads((web / "package.json").read_text())["scripts"] == {
        "start": "node index.js",
        "migrate": "node migrate.js",
    }
    assert (repo / "services/search/src/main.go").is_file()
    assert "go 1.19" in (repo / "services/search/go.mod").read_text()
    assert (repo / "services/worker/app.py").is_file()
    for name in ("web", "search", "worker"):
        assert (repo / "services" / name / "VERSION").read_text() == "v2\n"
        assert not (repo / "services" / name / "FAULT").exists()

    assert git(mirror, "rev-parse", "refs/heads/main") == sha
    assert git(mirror, "rev-parse", "v2^{commit}") == sha
    assert f"{sha}\trefs/heads/main" in (mirror / "info" / "refs").read_text()

    # Same arguments again: no new commit, same sha.
    again = make_repo(tmp_path, *args, "--bare-mirror", str(mirror)).stdout.strip()
    assert again == sha
    assert git(repo, "rev-list", "--count", "HEAD") == "1"

    # A new version with a fault and a smaller catalog: new commit, stale dir removed.
    small = str(write_catalog(tmp_path, CATALOG[:2]))
    v3 = make_repo(
        tmp_path,
        *["--repo", str(repo), "--services-json", small, "--version", "v3"],
        *["--fault", "web=crash", "--tag", "release-3", "--bare-mirror", str(mirror)],
    ).stdout.strip()
    assert v3 != sha
    assert git(repo, "rev-list", "--count", "HEAD") == "2"
    assert git(repo, "rev-parse", "release-3^{commit}") == v3
    assert git(repo, "rev-parse", "v2^{commit}") == sha
    assert (repo / "services/web/FAULT").read_text().strip() == "crash"
    assert (repo / "services/web/VERSION").read_text().strip() == "v3"
    assert not (repo / "services/worker").exists()
    assert git(mirror, "rev-parse", "release-3^{commit}") == v3
    assert git(mirror, "rev-parse", "refs/heads/main") == v3


def test_make_repo_reads_yaml_catalog_and_rejects_bad_input(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    catalog = tmp_path / "main.yml"
    catalog.write_text(yaml.safe_dump({"pakashop_catalog_services": CATALOG[:1]}))
    repo = tmp_path / "app"
    base = ["--repo", str(repo), "--catalog", str(catalog), "--version", "v1"]
    make_repo(tmp_path, *base, "--fault", "web=ready")
    assert [p.name for p in (repo / "services").iterdir()] == ["web"]
    assert (repo / "services/web/FAULT").read_text().strip() == "ready"

    for extra in (
        ["--fault", "nope=crash"],
        ["--fault", "web=explode"],
        ["--break-build", "x"],
    ):
        result = make_repo(tmp_path, *base, *extra, check=False)
        assert result.returncode == 2, extra
        assert result.stdout == ""
    bad = write_catalog(tmp_path, [{"name": "web", "runtime": "rust"}])
    result = make_repo(
        tmp_path,
        "--repo",
        str(repo),
        "--services-json",
        str(bad),
        "--version",
        "v1",
        check=False,
    )
    assert result.returncode == 2
    assert "runtime" in result.stderr


def test_break_build_makes_builds_fail(tmp_path: Path) -> None:
    catalog = str(write_catalog(tmp_path, CATALOG))
    good, bad = tmp_path / "good", tmp_path / "bad"
    make_repo(
        tmp_path, "--repo", str(good), "--services-json", catalog, "--version", "v1"
    )
    make_repo(
        tmp_path,
        *["--repo", str(bad), "--services-json", catalog, "--version", "v1"],
        *["--break-build", "web", "--break-build", "search", "--break-build", "worker"],
    )
    # Build in copies, so the repositories stay clean.
    builds = tmp_path / "builds"

    def build(repo: Path, name: str, command: list[str]) -> int:
        workdir = builds / repo.name / name
        shutil.copytree(repo / "services" / name, workdir)
        env = {
            **os.environ,
            "GOPROXY": "off",
            "GOFLAGS": "-mod=mod",
            "PIP_NO_INPUT": "1",
        }
        done = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, timeout=120, check=False
        )
        return done.returncode

    npm = ["npm", "ci", "--omit=dev", "--offline", "--no-audit", "--no-fund"]
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "-q",
        "-r",
        "requirements.txt",
    ]
    if shutil.which("npm"):
        assert build(good, "web", npm) == 0
        assert build(bad, "web", npm) != 0
    if shutil.which("go"):
        assert build(good, "search", ["go", "build", "-o", "bin/search", "./src"]) == 0
        assert build(bad, "search", ["go", "build", "-o", "bin/search", "./src"]) != 0
    assert build(good, "worker", pip) == 0
    began = time.monotonic()
    assert build(bad, "worker", pip) != 0
    assert time.monotonic() - began < 20
    assert (
        "pakashop-no-such-package==0.0.0"
        in (bad / "services/worker/requirements.txt").read_text()
    )
    assert git(bad, "status", "--porcelain") == ""
