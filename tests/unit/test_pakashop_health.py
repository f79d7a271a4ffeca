"""pakashop_health against real HTTP servers listening on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pakashop_health
import pytest

RELEASE = "20261121T120000Z-abc1234"
LIVE = {"status": "ok", "service": "pakashop-backend", "version": "v2", "release": RELEASE}
READY = {"status": "ready", "dependencies": {"postgres": "ok", "redis": "ok"}}
NOT_READY = {"status": "not_ready", "dependencies": {"postgres": "ok", "redis": "error"}}
METRICS = (
    "# HELP http_requests_total Requests served.\n"
    "# TYPE http_requests_total counter\n"
    'http_requests_total{code="200"} 1027\n'
    "process_uptime_seconds 42.5\n"
)

# A route answers (status, body, delay_seconds); bodies that are dicts are sent as JSON.
Reply = tuple[int, object, float]
Routes = dict[str, Callable[[], Reply]]


def healthy_routes(delay: float = 0.0) -> Routes:
    return {
        "/health": lambda: (200, LIVE, delay),
        "/health/ready": lambda: (200, READY, delay),
        "/health/metrics": lambda: (200, METRICS, delay),
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a deliberately slow handler must not hold up teardown

    def handle_error(self, request, client_address) -> None:
        pass  # clients that time out leave broken pipes behind; that is expected


def _handler(routes: Routes) -> type:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path)
            status, body, delay = route() if route else (404, {"error": "not found"}, 0.0)
            time.sleep(delay)
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            ctype = "text/plain" if isinstance(body, str) else "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def serve() -> Iterator[Callable[[Routes], int]]:
    """Start an HTTP server for the given routes; return its port."""
    servers: list[_Server] = []

    def _start(routes: Routes) -> int:
        server = _Server(("127.0.0.1", 0), _handler(routes))
        # A short poll interval keeps shutdown() quick at teardown.
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield _start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def check(run_module):
    """Run the module on services; default to a short timeout so failures stay fast."""

    def _check(services: list, **args) -> tuple[dict, bool]:
        args.setdefault("timeout", 1)
        return run_module(pakashop_health, {"services": services, **args})

    return _check


def test_healthy_service_passes(serve, check):
    port = serve(healthy_routes())
    result, failed = check([{"name": "backend", "port": port}])

    assert not failed
    assert result["healthy"] is True
    assert result["changed"] is False
    assert result["failed_services"] == []
    svc = result["services"]["backend"]
    assert svc["healthy"] and svc["attempts"] == 1
    assert (svc["host"], svc["port"]) == ("127.0.0.1", port)
    assert (svc["release"], svc["version"]) == (RELEASE, "v2")
    assert set(svc["checks"]) == {"liveness", "readiness"}
    assert svc["checks"]["liveness"]["body"] == LIVE
    assert svc["checks"]["liveness"]["status_code"] == 200
    assert svc["checks"]["liveness"]["reason"] is None
    assert svc["checks"]["readiness"]["dependencies"] == READY["dependencies"]
    assert svc["checks"]["readiness"]["latency_ms"] >= 0
    assert result["elapsed_ms"] >= 0


def test_slow_service_times_out(serve, check):
    port = serve(healthy_routes(delay=2.0))
    result, failed = check([{"name": "slow", "port": port}], checks=["liveness"], timeout=0.3)

    assert failed and result["healthy"] is False
    live = result["services"]["slow"]["checks"]["liveness"]
    assert not live["ok"] and live["status_code"] is None
    assert "timed out" in live["reason"]
    assert "slow (liveness: timed out after 0.3s)" in result["msg"]


def test_http_500_is_reported(serve, check):
    port = serve({"/health": lambda: (500, "<h1>Internal Server Error</h1>", 0.0)})
    result, failed = check([{"name": "broken", "port": port}], checks=["liveness"])

    assert failed
    live = result["services"]["broken"]["checks"]["liveness"]
    assert live["status_code"] == 500
    assert live["reason"] == "HTTP 500 (expected 200)"


def test_invalid_json_is_reported(serve, check):
    port = serve({"/health": lambda: (200, "ok, probably{", 0.0)})
    result, failed = check([{"name": "garbled", "port": port}], checks=["liveness"])

    assert failed
    live = result["services"]["garbled"]["checks"]["liveness"]
    assert live["reason"].startswith("invalid JSON body")
    assert live["body"] is None


def test_wrong_status_field_is_reported(serve, check):
    port = serve({"/health": lambda: (200, {"status": "degraded"}, 0.0)})
    result, failed = check([{"name": "degraded", "port": port}], checks=["liveness"])

    assert failed
    assert result["services"]["degraded"]["checks"]["liveness"]["reason"] == "status is 'degraded' (expected 'ok')"


def test_connection_refused(check, closed_port):
    result, failed = check([{"name": "down", "port": closed_port}])

    assert failed
    checks = result["services"]["down"]["checks"]
    assert checks["liveness"]["reason"] == "connection refused"
    assert checks["readiness"]["reason"] == "connection refused"
    assert "down (liveness: connection refused; readiness: connection refused)" in result["msg"]


def test_not_ready_dependency(serve, check):
    routes = healthy_routes()
    routes["/health/ready"] = lambda: (503, NOT_READY, 0.0)
    port = serve(routes)
    result, failed = check([{"name": "backend", "port": port}])

    assert failed
    svc = result["services"]["backend"]
    assert svc["checks"]["liveness"]["ok"] is True
    ready = svc["checks"]["readiness"]
    assert ready["ok"] is False and ready["status_code"] == 503
    assert ready["dependencies"] == {"postgres": "ok", "redis": "error"}
    assert "dependency redis: error" in ready["reason"]
    assert "postgres" not in ready["reason"]
    assert result["failed_services"] == ["backend"]


def _recovers_after(seconds: float) -> Routes:
    born = time.monotonic()

    def ready() -> Reply:
        return (200, READY, 0.0) if time.monotonic() - born >= seconds else (503, NOT_READY, 0.0)

    return {"/health": lambda: (200, LIVE, 0.0), "/health/ready": ready}


def test_recovering_service_passes_within_deadline(serve, check):
    port = serve(_recovers_after(1.0))
    result, failed = check([{"name": "warming", "port": port}], deadline=5, interval=0.2)

    assert not failed and result["healthy"]
    svc = result["services"]["warming"]
    assert svc["attempts"] > 1
    assert svc["latency_ms"] >= 900


def test_recovering_service_fails_without_deadline(serve, check):
    port = serve(_recovers_after(1.0))
    result, failed = check([{"name": "warming", "port": port}])

    assert failed
    assert result["services"]["warming"]["attempts"] == 1


def test_deadline_expires_for_a_service_that_never_recovers(serve, check, closed_port):
    good = serve(healthy_routes())
    started = time.monotonic()
    result, failed = check(
        [{"name": "good", "port": good}, {"name": "down", "port": closed_port}],
        deadline=0.6,
        interval=0.1,
    )

    assert failed
    assert time.monotonic() - started < 3
    assert result["failed_services"] == ["down"]
    assert result["services"]["good"]["attempts"] == 1
    assert result["services"]["down"]["attempts"] > 1


def test_release_mismatch(serve, check):
    port = serve(healthy_routes())
    result, failed = check([{"name": "backend", "port": port}], expect_release="20261122T000000Z-def5678")

    assert failed
    reason = result["services"]["backend"]["checks"]["liveness"]["reason"]
    assert reason == f"release mismatch (expected 20261122T000000Z-def5678 got {RELEASE})"


def test_release_and_version_match(serve, check):
    port = serve(healthy_routes())
    result, failed = check([{"name": "backend", "port": port}], expect_release=RELEASE, expect_version="v2")

    assert not failed and result["healthy"]


def test_metrics_check(serve, check):
    good = serve(healthy_routes())
    bad = serve({"/health/metrics": lambda: (200, "# HELP nothing here\n# TYPE x counter\n", 0.0)})
    result, failed = check(
        [{"name": "good", "port": good}, {"name": "bad", "port": bad}],
        checks=["metrics"],
        fail_on_unhealthy=False,
    )

    assert not failed
    assert result["healthy"] is False
    assert result["failed_services"] == ["bad"]
    assert result["services"]["good"]["checks"]["metrics"]["ok"] is True
    assert result["services"]["good"]["checks"]["metrics"]["samples"] == 2
    assert result["services"]["bad"]["checks"]["metrics"]["reason"] == "body has no Prometheus sample lines"


def test_custom_paths_and_host(serve, check):
    port = serve({"/livez": lambda: (200, LIVE, 0.0)})
    result, failed = check(
        [{"name": "custom", "port": port, "scheme": "http"}],
        host="127.0.0.1",
        checks=["liveness"],
        liveness_path="/livez",
    )

    assert not failed
    assert result["services"]["custom"]["checks"]["liveness"]["url"] == f"http://127.0.0.1:{port}/livez"


def test_fail_on_unhealthy_false_returns_normally(check, closed_port):
    result, failed = check([{"name": "down", "port": closed_port}], fail_on_unhealthy=False)

    assert not failed
    assert result["healthy"] is False
    assert result["failed_services"] == ["down"]


def test_runs_in_check_mode(serve, check):
    port = serve(healthy_routes())
    result, failed = check([{"name": "backend", "port": port}], _ansible_check_mode=True)

    assert not failed and result["healthy"] and result["changed"] is False


def test_checks_services_concurrently(serve, check):
    # 19 services x 2 checks x 0.2 s is 7.6 s back to back; in parallel it is about 0.4 s.
    services = [{"name": f"svc-{i:02d}", "port": serve(healthy_routes(delay=0.2))} for i in range(19)]
    started = time.monotonic()
    result, failed = check(services)
    elapsed = time.monotonic() - started

    assert not failed and result["healthy"]
    assert len(result["services"]) == 19
    assert elapsed < 1.5, f"took {elapsed:.2f}s, checks are not running concurrently"


def test_missing_port_fails_clearly(run_module):
    result, failed = run_module(pakashop_health, {"services": [{"name": "backend"}]})

    assert failed
    assert "port" in result["msg"]
    assert "missing" in result["msg"]


def test_unknown_check_is_rejected(run_module):
    result, failed = run_module(
        pakashop_health, {"services": [{"name": "backend", "port": 8080}], "checks": ["liveness", "vibes"]}
    )

    assert failed
    assert "vibes" in result["msg"]


@pytest.mark.parametrize(
    "args, message",
    [
        ({"services": []}, "at least one service"),
        ({"services": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]}, "duplicated: a"),
        ({"services": [{"name": "a", "port": 70000}]}, "out of range"),
        ({"services": [{"name": "a", "port": 1}], "timeout": 0}, "timeout must be greater than 0"),
    ],
)
def test_semantic_validation(run_module, args, message):
    result, failed = run_module(pakashop_health, args)

    assert failed
    assert message in result["msg"]



def test_a_service_can_expect_its_own_release(serve, check):
    port = serve(healthy_routes())
    other = "20261122T000000Z-def5678"
    result, failed = check([{"name": "backend", "port": port, "release": other},
                            {"name": "gateway", "port": port}],
                           expect_release=RELEASE, fail_on_unhealthy=False)
    assert not failed and not result["healthy"]
    assert result["failed_services"] == ["backend"]
    reason = result["services"]["backend"]["checks"]["liveness"]["reason"]
    assert reason == f"release mismatch (expected {other} got {RELEASE})"
