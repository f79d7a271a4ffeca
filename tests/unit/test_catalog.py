"""The start order follows from the catalog's dependencies; bad catalogs fail clearly."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "pakashop_catalog_filter", ROOT / "plugins/filter/pakashop_catalog.py")
catalog = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(catalog)

DEFAULTS = yaml.safe_load((ROOT / "roles/pakashop_catalog/defaults/main.yml").read_text())
SERVICES = DEFAULTS["pakashop_catalog_services"]
INFRA = DEFAULTS["pakashop_catalog_infrastructure"]

SPEC_TIERS = [
    ["config"],
    ["gateway"],
    ["backend", "search", "analytics"],
    ["notifications", "tracking", "moderation", "recommendations", "scheduler", "fraud",
     "coupon", "loyalty", "whatsapp", "reports", "reconciliation", "invoicing", "pricing",
     "settlement"],
]


def build(services=None, infra=None, extra=None):
    return catalog.build_catalog(
        copy.deepcopy(SERVICES if services is None else services),
        copy.deepcopy(INFRA if infra is None else infra), extra)


def test_the_nineteen_services_start_in_the_spec_tiers():
    result = build()
    assert result["tiers"] == SPEC_TIERS
    assert len(result["services"]) == 19
    assert [s["tier"] for s in result["services"]] == sorted(s["tier"] for s in result["services"])
    assert result["runtimes"] == ["go", "node", "python"]


def test_every_service_starts_after_all_of_its_dependencies():
    result = build()
    tier = {s["name"]: s["tier"] for s in result["services"]}
    for svc in result["services"]:
        for dep in svc["depends_on"]:
            assert tier[dep] < tier[svc["name"]], (svc["name"], dep)


def test_defaults_are_filled_in():
    backend = next(s for s in build()["services"] if s["name"] == "backend")
    assert backend["unit"] == "pakashop-backend.service"
    assert backend["health_path"] == "/health"
    assert backend["ready_path"] == "/health/ready"
    assert backend["migrate"] == "npm run migrate"
    gateway = next(s for s in build()["services"] if s["name"] == "gateway")
    assert gateway["migrate"] == "" and gateway["env"] == {}


def test_order_comes_from_the_data_not_from_a_list():
    # Reverse the catalog and make coupon depend on pricing: coupon moves up a tier.
    services = list(reversed(copy.deepcopy(SERVICES)))
    for svc in services:
        if svc["name"] == "coupon":
            svc["depends_on"] = ["pricing"]
    result = build(services)
    assert result["tiers"][0] == ["config"]
    assert result["tiers"][1] == ["gateway"]
    assert sorted(result["tiers"][2]) == ["analytics", "backend", "search"]
    assert result["tiers"][4] == ["coupon"]
    assert "coupon" not in result["tiers"][3]


def test_a_twentieth_service_needs_only_its_catalog_entry():
    extra = [{"name": "wallet", "port": 3017, "runtime": "go",
              "depends_on": ["fraud", "loyalty"], "requires": ["postgres"]}]
    result = build(extra=extra)
    assert len(result["services"]) == 20
    assert result["tiers"][:4] == SPEC_TIERS
    assert result["tiers"][4] == ["wallet"]
    assert result["services"][-1]["unit"] == "pakashop-wallet.service"


def test_a_twentieth_service_in_tier_one_joins_config():
    extra = [{"name": "audit-log", "port": 3018, "runtime": "python"}]
    result = build(extra=extra)
    assert result["tiers"][0] == ["config", "audit-log"]


def _with(target, **changes):
    services = copy.deepcopy(SERVICES)
    for svc in services:
        if svc["name"] == target:
            svc.update(changes)
    return services


@pytest.mark.parametrize(("services", "message"), [
    (_with("coupon", depends_on=["backend", "wallet"]),
     "service 'coupon' depends on unknown service 'wallet'"),
    (_with("config", depends_on=["settlement"]),
     "dependency cycle: config -> settlement -> backend -> gateway -> config"),
    (_with("loyalty", depends_on=["loyalty"]), "dependency cycle: loyalty -> loyalty"),
    (SERVICES + [{"name": "coupon", "port": 3999, "runtime": "node"}],
     "service 'coupon' is defined twice"),
    (_with("coupon", port=3080),
     "service 'coupon' uses port 3080, already taken by service 'backend'"),
    (_with("coupon", port=6379),
     "service 'coupon' uses port 6379, already taken by infrastructure 'redis'"),
    (_with("coupon", name="Coupon"), "service name 'Coupon' is invalid"),
    (_with("coupon", name="coupon/../x"), "service name 'coupon/../x' is invalid"),
    (_with("coupon", name="9coupon"), "service name '9coupon' is invalid"),
    (_with("coupon", port=70000), "service 'coupon' has port 70000, outside 1024-65535"),
    (_with("coupon", port=80), "service 'coupon' has port 80, outside 1024-65535"),
    (_with("coupon", port="3008"), "service 'coupon' has port '3008'"),
    (_with("coupon", runtime="ruby"), "service 'coupon' has unknown runtime 'ruby'"),
    (_with("coupon", requires=["mongodb"]), "service 'coupon' requires unknown infrastructure 'mongodb'"),
    (_with("coupon", depend_on=["backend"]), "service 'coupon' has unknown keys ['depend_on']"),
    (_with("coupon", env={"lower": "x"}), "service 'coupon': env must map UPPER_CASE names"),
    ([], "pakashop_catalog_services must be a non-empty list"),
])
def test_invalid_catalogs_fail_with_a_clear_message(services, message):
    with pytest.raises(catalog.CatalogError) as err:
        build(services)
    assert message in str(err.value)
    assert str(err.value).startswith("invalid service catalog: ")


def test_the_filter_raises_an_ansible_error():
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="depends on unknown service"):
        catalog.pakashop_catalog(_with("coupon", depends_on=["nope"]), INFRA)


@pytest.mark.parametrize("good", ["20261121T101500Z-abc1234", "20261121T101500Z-v2.1_rc-1"])
def test_release_ids_that_are_accepted(good):
    assert catalog.check_release_id(good) == good


@pytest.mark.parametrize("bad", [
    "", "latest", "../20261121T101500Z-abc", "20261121T101500Z-abc/../../etc",
    "20261121T101500Z-..", "20261121-abc", "20261121T101500Z-", "20261121T101500Z-a b", None,
])
def test_release_ids_that_are_refused(bad):
    with pytest.raises(ValueError, match="invalid release id"):
        catalog.check_release_id(bad)


def test_unit_names():
    assert catalog.pakashop_unit_names(["a", "b-c"]) == ["pakashop-a.service", "pakashop-b-c.service"]
    assert catalog.pakashop_unit_names(["a"], "--identifier=pakashop-{}") == ["--identifier=pakashop-a"]


def test_health_targets_carry_name_and_port_only():
    services = build()["services"]
    assert catalog.pakashop_health_targets(services, ["gateway", "search"]) == [
        {"name": "gateway", "port": 8000}, {"name": "search", "port": 3005}]
    assert len(catalog.pakashop_health_targets(services)) == 19
    assert catalog.pakashop_health_targets(services, ["gateway", "search"], {"search": "R1", "config": "R0"}) == [
        {"name": "gateway", "port": 8000}, {"name": "search", "port": 3005, "release": "R1"}]
