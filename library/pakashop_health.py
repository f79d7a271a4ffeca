#!/usr/bin/python
# Copyright: Pakashop Ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pakashop_health
short_description: Check the health endpoints of many Pakashop services concurrently
description:
  - Probes the C(/health), C(/health/ready) and C(/health/metrics) endpoints that every Pakashop service exposes.
  - All services are checked in parallel from a thread pool, so a whole tier can be gated in a single task instead of
    a O(ansible.builtin.uri) loop.
  - With O(deadline), failed checks are retried per service, independently, until they pass or the deadline expires.
  - The module only reads; it never reports a change and runs normally in check mode.
  - Uses only the Python standard library on the target host. Proxy environment variables are ignored.
author:
  - Pakashop Ops team
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing) in diff mode.
    support: none
options:
  services:
    description:
      - The services to check. Each name must be unique, it keys the RV(services) result.
      - Must contain at least one entry.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Service name, used in results and failure messages.
        type: str
        required: true
      port:
        description: TCP port of the service's HTTP listener.
        type: int
        required: true
      host:
        description: Address to connect to. Defaults to the module option O(host).
        type: str
      scheme:
        description: URL scheme.
        type: str
        choices: [http, https]
        default: http
      release:
        description: Release this service must report; overrides O(expect_release) for it (e.g. after a rollback of one service).
        type: str
  host:
    description: Default address for services that do not set their own C(host).
    type: str
    default: 127.0.0.1
  checks:
    description:
      - Which endpoints to probe for every service.
      - V(liveness) passes when the status code equals O(expect_status) and the JSON body has C(status=ok)
        (and matches O(expect_release) / O(expect_version) when given).
      - V(readiness) passes when the status code equals O(expect_status), the JSON body has C(status=ready)
        and every entry of C(dependencies) is C(ok).
      - V(metrics) passes when the status code is 200 and the body contains at least one Prometheus sample line.
    type: list
    elements: str
    choices: [liveness, readiness, metrics]
    default: [liveness, readiness]
  liveness_path:
    description: URL path of the liveness endpoint.
    type: str
    default: /health
  readiness_path:
    description: URL path of the readiness endpoint.
    type: str
    default: /health/ready
  metrics_path:
    description: URL path of the Prometheus metrics endpoint.
    type: str
    default: /health/metrics
  timeout:
    description: Timeout in seconds for each single HTTP request.
    type: float
    default: 2
  deadline:
    description:
      - Overall time budget in seconds, measured from the start of the task, for retrying failed checks.
      - V(0) means every check is attempted exactly once.
    type: float
    default: 0
  interval:
    description: Seconds to wait between two attempts on the same service.
    type: float
    default: 0.5
  expect_status:
    description: HTTP status code that liveness and readiness must return. Metrics always expects 200.
    type: int
    default: 200
  expect_release:
    description: When set, the C(release) field of the liveness body must equal this value.
    type: str
  expect_version:
    description: When set, the C(version) field of the liveness body must equal this value.
    type: str
  fail_on_unhealthy:
    description:
      - Fail the task, naming every failed service with its failed checks and reasons, when any service is unhealthy.
      - When V(false), return normally with RV(healthy=false) so the caller can decide.
    type: bool
    default: true
  max_workers:
    description: Maximum number of services checked at the same time.
    type: int
    default: 32
  validate_certs:
    description: Verify TLS certificates of V(https) services.
    type: bool
    default: true
notes:
  - Response bodies are read up to 1 MiB; the metrics body is not returned, only its sample count.
"""

EXAMPLES = r"""
- name: Gate the backend tier on liveness and readiness
  pakashop_health:
    services:
      - {name: pakashop-backend, port: 8080}
      - {name: pakashop-orders, port: 8081}
      - {name: pakashop-payments, port: 8082}

- name: Wait up to 60 s for the freshly deployed release, metrics included
  pakashop_health:
    services: "{{ pakashop_tier_services }}"
    checks: [liveness, readiness, metrics]
    expect_release: "{{ pakashop_release }}"
    deadline: 60
    interval: 2
    timeout: 3

- name: Probe TLS services on another address without failing the play
  pakashop_health:
    host: 10.0.4.12
    validate_certs: false
    fail_on_unhealthy: false
    services:
      - {name: pakashop-gateway, port: 8443, scheme: https}
  register: gateway_health

- name: Report the outcome
  ansible.builtin.debug:
    msg: "unhealthy: {{ gateway_health.failed_services | join(', ') }}"
  when: not gateway_health.healthy
"""

RETURN = r"""
healthy:
  description: Whether every service passed every requested check.
  returned: always
  type: bool
  sample: false
failed_services:
  description:
    - Names of the unhealthy services, in input order.
    - Not named C(failed) because Ansible reads that key as the task status.
  returned: always
  type: list
  elements: str
  sample: [pakashop-orders]
elapsed_ms:
  description: Wall-clock duration of the whole task in milliseconds.
  returned: always
  type: float
  sample: 412.7
services:
  description: Per-service results, keyed by service name.
  returned: always
  type: dict
  sample:
    pakashop-backend:
      healthy: true
      host: 127.0.0.1
      port: 8080
      scheme: http
      release: 20261121T120000Z-abc1234
      version: v2
      attempts: 1
      latency_ms: 8.4
      checks:
        liveness:
          ok: true
          url: http://127.0.0.1:8080/health
          status_code: 200
          latency_ms: 4.1
          reason: null
          body: {status: ok, service: pakashop-backend, version: v2, release: 20261121T120000Z-abc1234}
        readiness:
          ok: false
          url: http://127.0.0.1:8080/health/ready
          status_code: 503
          latency_ms: 4.3
          reason: "HTTP 503 (expected 200); status is 'not_ready' (expected 'ready'); dependency redis: error"
          body: {status: not_ready, dependencies: {postgres: ok, redis: error}}
          dependencies: {postgres: ok, redis: error}
  contains:
    healthy:
      description: Whether all requested checks of this service passed on its last attempt.
      type: bool
    host:
      description: Address that was probed.
      type: str
    port:
      description: Port that was probed.
      type: int
    scheme:
      description: URL scheme used.
      type: str
    release:
      description: C(release) reported by the liveness endpoint, null if unknown.
      type: str
    version:
      description: C(version) reported by the liveness endpoint, null if unknown.
      type: str
    attempts:
      description: Number of attempts made for this service.
      type: int
    latency_ms:
      description: Time spent on this service across all attempts, in milliseconds.
      type: float
    checks:
      description:
        - One entry per requested check with C(ok), C(url), C(status_code), C(latency_ms), C(reason) and C(body)
          (parsed JSON, or null).
        - Readiness adds C(dependencies); metrics adds C(samples), the number of sample lines found.
      type: dict
"""

import http.client
import json
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from ansible.module_utils.basic import AnsibleModule

MAX_BODY = 1024 * 1024
# A Prometheus sample: metric name, optional {labels}, whitespace, value.
_SAMPLE_RE = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*(\{.*\})?\s+\S+")
# Transport failures become check failures; anything else is a bug and should surface.
_TRANSPORT_ERRORS = (OSError, http.client.HTTPException, ValueError)

Opener = urllib.request.OpenerDirector


@dataclass(frozen=True)
class Settings:
    checks: tuple[str, ...]
    paths: dict[str, str]
    timeout: float
    interval: float
    expect_status: int
    expect_release: str | None
    expect_version: str | None


@dataclass
class Response:
    status: int | None
    body: bytes
    error: str | None
    latency_ms: float


def build_opener(validate_certs: bool) -> Opener:
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    # Empty ProxyHandler: a host-wide http_proxy must not intercept probes of local services.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))


def base_url(scheme: str, host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # bare IPv6 literal
    return f"{scheme}://{host}:{port}"


def describe_error(exc: BaseException, timeout: float) -> str:
    # urllib wraps connect-time errors in URLError; read-time errors arrive unwrapped.
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, (socket.timeout, TimeoutError)):  # distinct classes before Python 3.10
        return f"timed out after {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc}"
    return f"{type(exc).__name__}: {exc}"


def fetch(opener: Opener, url: str, timeout: float) -> Response:
    started = time.monotonic()
    status: int | None = None
    body = b""
    error: str | None = None
    request = urllib.request.Request(url, headers={"Accept": "application/json, text/plain"})
    try:
        try:
            with opener.open(request, timeout=timeout) as resp:
                status = resp.status
                body = resp.read(MAX_BODY)
        except urllib.error.HTTPError as exc:
            # Non-2xx answers still carry a body worth parsing (e.g. 503 readiness details).
            status = exc.code
            body = exc.read(MAX_BODY)
    except _TRANSPORT_ERRORS as exc:
        error = describe_error(exc, timeout)
    return Response(status, body, error, round((time.monotonic() - started) * 1000, 1))


def parse_json(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(body.decode("utf-8"))
    except ValueError as exc:  # covers UnicodeDecodeError and JSONDecodeError
        return None, f"invalid JSON body: {exc}"
    if not isinstance(data, dict):
        return None, f"invalid JSON body: expected an object, got {type(data).__name__}"
    return data, None


def new_result(url: str, resp: Response) -> dict[str, Any]:
    return {
        "ok": False,
        "url": url,
        "status_code": resp.status,
        "latency_ms": resp.latency_ms,
        "reason": resp.error,
        "body": None,
    }


def finish(result: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    result["ok"] = not problems
    result["reason"] = "; ".join(problems) or None
    return result


def judge_json(result: dict[str, Any], resp: Response, expect_status: int) -> tuple[dict[str, Any] | None, list[str]]:
    """Parse a JSON endpoint answer, collecting the status-code problem if any."""
    problems: list[str] = []
    if resp.status != expect_status:
        problems.append(f"HTTP {resp.status} (expected {expect_status})")
    data, json_error = parse_json(resp.body)
    result["body"] = data
    # An error page with a non-JSON body is already explained by the status code.
    if json_error and not problems:
        problems.append(json_error)
    return data, problems


def field_problem(data: dict[str, Any], field: str, expected: str | None) -> str | None:
    if expected is None:
        return None
    got = data.get(field)
    if got is None or str(got) != expected:
        return f"{field} mismatch (expected {expected} got {got})"
    return None


def check_liveness(opener: Opener, url: str, cfg: Settings) -> dict[str, Any]:
    resp = fetch(opener, url, cfg.timeout)
    result = new_result(url, resp)
    if resp.error:
        return result
    data, problems = judge_json(result, resp, cfg.expect_status)
    if data is not None:
        if data.get("status") != "ok":
            problems.append(f"status is {data.get('status')!r} (expected 'ok')")
        for field, expected in (("release", cfg.expect_release), ("version", cfg.expect_version)):
            problem = field_problem(data, field, expected)
            if problem:
                problems.append(problem)
    return finish(result, problems)


def check_readiness(opener: Opener, url: str, cfg: Settings) -> dict[str, Any]:
    resp = fetch(opener, url, cfg.timeout)
    result = new_result(url, resp)
    result["dependencies"] = {}
    if resp.error:
        return result
    data, problems = judge_json(result, resp, cfg.expect_status)
    if data is not None:
        if data.get("status") != "ready":
            problems.append(f"status is {data.get('status')!r} (expected 'ready')")
        deps = data.get("dependencies") or {}
        if isinstance(deps, dict):
            result["dependencies"] = deps
            problems.extend(f"dependency {dep}: {state}" for dep, state in sorted(deps.items()) if state != "ok")
        else:
            problems.append("dependencies is not an object")
    return finish(result, problems)


def count_samples(text: str) -> int:
    return sum(1 for line in text.splitlines() if not line.lstrip().startswith("#") and _SAMPLE_RE.match(line.strip()))


def check_metrics(opener: Opener, url: str, cfg: Settings) -> dict[str, Any]:
    resp = fetch(opener, url, cfg.timeout)
    result = new_result(url, resp)
    result["samples"] = 0
    if resp.error:
        return result
    if resp.status != 200:
        return finish(result, [f"HTTP {resp.status} (expected 200)"])
    result["samples"] = count_samples(resp.body.decode("utf-8", errors="replace"))
    return finish(result, [] if result["samples"] else ["body has no Prometheus sample lines"])


CHECKERS: dict[str, Callable[[Opener, str, Settings], dict[str, Any]]] = {
    "liveness": check_liveness,
    "readiness": check_readiness,
    "metrics": check_metrics,
}


def check_service(service: dict[str, Any], cfg: Settings, opener: Opener, give_up_at: float) -> dict[str, Any]:
    started = time.monotonic()
    if service.get("release"):
        cfg = replace(cfg, expect_release=service["release"])
    root = base_url(service["scheme"], service["host"], service["port"])
    results: dict[str, dict[str, Any]] = {}
    pending = list(cfg.checks)
    attempts = 0
    while True:
        attempts += 1
        # Only re-run what failed: passed checks keep their result, which spares a struggling service.
        for name in pending:
            results[name] = CHECKERS[name](opener, root + cfg.paths[name], cfg)
        pending = [name for name in cfg.checks if not results[name]["ok"]]
        if not pending or time.monotonic() + cfg.interval >= give_up_at:
            break
        time.sleep(cfg.interval)

    live_body = results.get("liveness", {}).get("body") or {}
    return {
        "healthy": not pending,
        "host": service["host"],
        "port": service["port"],
        "scheme": service["scheme"],
        "release": live_body.get("release"),
        "version": live_body.get("version"),
        "attempts": attempts,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
        "checks": {name: results[name] for name in cfg.checks},
    }


def failure_summary(failed: list[str], services: dict[str, dict[str, Any]]) -> str:
    parts = []
    for name in failed:
        reasons = "; ".join(
            f"{check}: {result['reason'] or 'failed'}"
            for check, result in services[name]["checks"].items()
            if not result["ok"]
        )
        parts.append(f"{name} ({reasons})")
    return f"{len(failed)} of {len(services)} services unhealthy: {', '.join(parts)}"


def validate(module: AnsibleModule) -> None:
    p = module.params
    if not p["services"]:
        module.fail_json(msg="services must list at least one service")
    if not p["checks"]:
        module.fail_json(msg="checks must name at least one check")
    names = [svc["name"] for svc in p["services"]]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        module.fail_json(msg=f"service names must be unique, duplicated: {', '.join(duplicates)}")
    for svc in p["services"]:
        if not 0 < svc["port"] < 65536:
            module.fail_json(msg=f"service {svc['name']}: port {svc['port']} is out of range 1-65535")
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be greater than 0")
    if p["deadline"] < 0 or p["interval"] < 0:
        module.fail_json(msg="deadline and interval must not be negative")
    if p["max_workers"] < 1:
        module.fail_json(msg="max_workers must be at least 1")


ARGUMENT_SPEC: dict[str, Any] = {
    "services": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": {
            "name": {"type": "str", "required": True},
            "port": {"type": "int", "required": True},
            "host": {"type": "str"},
            "scheme": {"type": "str", "choices": ["http", "https"], "default": "http"},
            "release": {"type": "str"},
        },
    },
    "host": {"type": "str", "default": "127.0.0.1"},
    "checks": {
        "type": "list",
        "elements": "str",
        "choices": ["liveness", "readiness", "metrics"],
        "default": ["liveness", "readiness"],
    },
    "liveness_path": {"type": "str", "default": "/health"},
    "readiness_path": {"type": "str", "default": "/health/ready"},
    "metrics_path": {"type": "str", "default": "/health/metrics"},
    "timeout": {"type": "float", "default": 2},
    "deadline": {"type": "float", "default": 0},
    "interval": {"type": "float", "default": 0.5},
    "expect_status": {"type": "int", "default": 200},
    "expect_release": {"type": "str"},
    "expect_version": {"type": "str"},
    "fail_on_unhealthy": {"type": "bool", "default": True},
    "max_workers": {"type": "int", "default": 32},
    "validate_certs": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    validate(module)
    p = module.params

    started = time.monotonic()
    cfg = Settings(
        checks=tuple(dict.fromkeys(p["checks"])),  # de-duplicate, keep order
        paths={"liveness": p["liveness_path"], "readiness": p["readiness_path"], "metrics": p["metrics_path"]},
        timeout=p["timeout"],
        interval=p["interval"],
        expect_status=p["expect_status"],
        expect_release=p["expect_release"],
        expect_version=p["expect_version"],
    )
    services = [{**svc, "host": svc["host"] or p["host"]} for svc in p["services"]]
    opener = build_opener(p["validate_certs"])
    give_up_at = started + p["deadline"]

    with ThreadPoolExecutor(max_workers=min(p["max_workers"], len(services))) as pool:
        futures = [pool.submit(check_service, svc, cfg, opener, give_up_at) for svc in services]
        results = {svc["name"]: future.result() for svc, future in zip(services, futures)}

    failed = [name for name, res in results.items() if not res["healthy"]]
    outcome = {
        "changed": False,
        "healthy": not failed,
        # Not "failed": Ansible treats any truthy "failed" key as a failed task.
        "failed_services": failed,
        "services": results,
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }
    if failed and p["fail_on_unhealthy"]:
        module.fail_json(msg=failure_summary(failed, results), **outcome)
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
