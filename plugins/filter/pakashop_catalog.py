"""Validate the Pakashop service catalog and derive the start tiers from its dependencies.

The catalog is data (roles/pakashop_catalog/defaults/main.yml); every ordering the
playbooks use comes from here, never from a hard-coded list. Errors name the offending
entry so an operator can fix the catalog before any host is touched.
"""

from __future__ import annotations

import re
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # the pure functions are usable without Ansible (tests, scripts)
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment]

NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
RELEASE_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RUNTIMES = ("node", "go", "python")
PORT_MIN = 1024
PORT_MAX = 65535
SERVICE_KEYS = {
    "name", "port", "runtime", "depends_on", "requires", "env",
    "health_path", "ready_path", "metrics_path", "migrate",
}
DEFAULT_PATHS = {"health_path": "/health", "ready_path": "/health/ready",
                 "metrics_path": "/health/metrics"}


class CatalogError(ValueError):
    """The catalog is invalid; the message says which entry and why."""


def _fail(msg: str) -> None:
    raise CatalogError(f"invalid service catalog: {msg}")


def _check_port(what: str, port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not PORT_MIN <= port <= PORT_MAX:
        _fail(f"{what} has port {port!r}, outside {PORT_MIN}-{PORT_MAX}")
    return port


def _normalise_infrastructure(infrastructure: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    infra: dict[str, dict[str, Any]] = {}
    for item in infrastructure or []:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not NAME_RE.match(name):
            _fail(f"infrastructure entry {item!r} needs a name matching [a-z][a-z0-9-]*")
        if name in infra:
            _fail(f"infrastructure '{name}' is listed twice")
        port = item.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            _fail(f"infrastructure '{name}' has port {port!r}, outside 1-65535")
        infra[name] = {"group": "", "unit": f"{name}.service", **item}
    return infra


def _normalise_service(item: Any, infra: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if not isinstance(item, dict):
        _fail(f"each service must be a mapping, got {item!r}")
    name = item.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        _fail(f"service name {name!r} is invalid: use [a-z][a-z0-9-]* (lowercase, digits, '-')")
    unknown = sorted(set(item) - SERVICE_KEYS)
    if unknown:
        _fail(f"service '{name}' has unknown keys {unknown}; allowed: {sorted(SERVICE_KEYS)}")
    if "port" not in item:
        _fail(f"service '{name}' has no port")
    _check_port(f"service '{name}'", item["port"])
    if item.get("runtime") not in RUNTIMES:
        _fail(f"service '{name}' has unknown runtime {item.get('runtime')!r}; use one of {list(RUNTIMES)}")
    for key in ("depends_on", "requires"):
        value = item.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            _fail(f"service '{name}': {key} must be a list of names, got {value!r}")
    for req in item.get("requires", []):
        if req not in infra:
            _fail(f"service '{name}' requires unknown infrastructure '{req}'; known: {sorted(infra)}")
    env = item.get("env", {})
    if not isinstance(env, dict) or not all(re.match(r"^[A-Z_][A-Z0-9_]*$", str(k)) for k in env):
        _fail(f"service '{name}': env must map UPPER_CASE names to values, got {env!r}")
    for key, default in DEFAULT_PATHS.items():
        path = item.get(key, default)
        if not isinstance(path, str) or not path.startswith("/"):
            _fail(f"service '{name}': {key} must be an absolute URL path, got {path!r}")
    return {
        **DEFAULT_PATHS,
        "depends_on": [], "requires": [], "env": {}, "migrate": "",
        **item,
        "unit": f"pakashop-{name}.service",
    }


def _find_cycle(deps: dict[str, list[str]]) -> list[str]:
    """Return one dependency cycle as a path a -> b -> ... -> a (empty if none)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in deps[node]:
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for node in deps:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def build_catalog(services: list[Any], infrastructure: list[Any],
                  extra_services: list[Any] | None = None) -> dict[str, Any]:
    """Validate the catalog; return services in start order with their tier, and the tiers.

    Tier 1 holds services with no service dependency; every other service sits one tier
    above its deepest dependency, so a tier only ever needs lower tiers to be running.
    """
    if not isinstance(services, list) or not services:
        _fail("pakashop_catalog_services must be a non-empty list")
    infra = _normalise_infrastructure(infrastructure)
    normalised: dict[str, dict[str, Any]] = {}
    ports: dict[int, str] = {v["port"]: f"infrastructure '{k}'" for k, v in infra.items()}
    for item in list(services) + list(extra_services or []):
        svc = _normalise_service(item, infra)
        name = svc["name"]
        if name in normalised:
            _fail(f"service '{name}' is defined twice")
        if svc["port"] in ports:
            _fail(f"service '{name}' uses port {svc['port']}, already taken by {ports[svc['port']]}")
        ports[svc["port"]] = f"service '{name}'"
        normalised[name] = svc

    deps = {name: svc["depends_on"] for name, svc in normalised.items()}
    for name, svc_deps in deps.items():
        for dep in svc_deps:
            if dep not in normalised:
                _fail(f"service '{name}' depends on unknown service '{dep}'")
    cycle = _find_cycle(deps)
    if cycle:
        _fail("dependency cycle: " + " -> ".join(cycle))

    tier: dict[str, int] = {}

    def depth(name: str) -> int:
        if name not in tier:
            tier[name] = 1 + max((depth(d) for d in deps[name]), default=0)
        return tier[name]

    for name in normalised:
        depth(name)
    tiers: list[list[str]] = [[] for _ in range(max(tier.values()))]
    for name in normalised:  # catalog order is kept inside a tier
        tiers[tier[name] - 1].append(name)
    ordered = [dict(normalised[name], tier=tier[name]) for level in tiers for name in level]
    return {
        "services": ordered,
        "tiers": tiers,
        "infrastructure": list(infra.values()),
        "runtimes": sorted({svc["runtime"] for svc in ordered}),
    }


def pakashop_catalog(services: list[Any], infrastructure: list[Any],
                     extra_services: list[Any] | None = None) -> dict[str, Any]:
    try:
        return build_catalog(services, infrastructure, extra_services)
    except CatalogError as exc:
        raise AnsibleFilterError(str(exc)) from None


def check_release_id(value: Any) -> str:
    """Return a release id unchanged if it is well formed, raise ValueError otherwise.

    Release ids become directory names under releases/, so anything but
    <UTC timestamp>-<revision> (no '/', no '..', no spaces) is refused.
    """
    if not isinstance(value, str) or not RELEASE_RE.match(value) or ".." in value:
        raise ValueError(
            f"invalid release id {value!r}: expected YYYYmmddTHHMMSSZ-<revision> "
            "(letters, digits, '.', '_', '-'; no '/' or '..')")
    return value


def pakashop_release_id(value: Any) -> str:
    try:
        return check_release_id(value)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def pakashop_health_targets(services: list[dict[str, Any]], names: list[str] | None = None,
                            releases: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Name and port of the catalog services (all, or those in `names`) for pakashop_health,
    with the release each must report where `releases` names one."""
    releases = releases or {}
    return [{"name": s["name"], "port": s["port"], **({"release": releases[s["name"]]} if releases.get(s["name"]) else {})}
            for s in services if names is None or s["name"] in names]


def pakashop_unit_names(names: list[str], template: str = "pakashop-{}.service") -> list[str]:
    """Service names to unit names (or another per-service string, e.g. a journal identifier)."""
    return [template.format(name) for name in names]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"pakashop_catalog": pakashop_catalog, "pakashop_release_id": pakashop_release_id,
                "pakashop_health_targets": pakashop_health_targets, "pakashop_unit_names": pakashop_unit_names}
