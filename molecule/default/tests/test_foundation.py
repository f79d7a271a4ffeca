"""The platform after `deploy.yml` on the sandbox: units, health, nginx, order, status, secrets."""

from __future__ import annotations

import re
from itertools import pairwise

from pakashop_testlib import (
    APP_HOSTS,
    SECRETS,
    SERVICES,
    docker_exec,
    playbook,
    probe_health,
    tiers,
    unit_props,
)

testinfra_hosts = ["pakashop_app"]

UNITS = [f"pakashop-{s['name']}.service" for s in SERVICES]


def test_all_19_units_are_enabled_and_active(host):
    assert len(UNITS) == 19
    for unit in UNITS:
        service = host.service(unit)
        assert service.is_enabled, unit
        assert service.is_running, unit


def test_every_port_answers_health_and_readiness_as_the_spec_says(host):
    results = probe_health(host.ansible.get_variables()["ansible_host"])
    for svc in SERVICES:
        status, body = results[f"{svc['name']}/health"]
        assert status == 200, (svc["name"], body)
        assert body["status"] == "ok"
        assert body["service"] == f"pakashop-{svc['name']}"
        status, body = results[f"{svc['name']}/health/ready"]
        assert status == 200, (svc["name"], body)
        assert body["status"] == "ready"
        expected = set(svc.get("requires", [])) | set(svc.get("depends_on", []))
        assert set(body["dependencies"]) == expected
        assert set(body["dependencies"].values()) == {"ok"}


def test_public_routes_through_nginx(host):
    live = host.check_output("curl -fsS http://127.0.0.1/api/v1/health")
    assert '"service":"pakashop-gateway"' in live
    ready = host.check_output("curl -fsS http://127.0.0.1/api/v1/health/ready")
    assert '"status":"ready"' in ready
    assert host.run("curl -fsS http://127.0.0.1/nothing-here").rc != 0


def test_every_unit_passes_systemd_analyze_verify(host):
    paths = " ".join(f"/etc/systemd/system/{u}" for u in UNITS)
    result = host.run(f"systemd-analyze verify {paths}")
    assert result.rc == 0, result.stderr


def test_every_unit_is_hardened(host):
    for unit in UNITS:
        out = host.check_output(f"systemd-analyze security --no-pager {unit} | tail -n 1")
        exposure = float(re.search(r"level for \S+: ([0-9.]+)", out).group(1))
        assert exposure <= 2.0, (unit, out)
    text = host.file("/etc/systemd/system/pakashop-backend.service").content_string
    assert "SyslogIdentifier=pakashop-backend" in text
    assert "After=network-online.target pakashop-gateway.service" in text
    assert "Restart=on-failure" in text


def test_env_files_are_0600_and_owned_by_the_service_user(host):
    for svc in SERVICES:
        env = host.file(f"/opt/pakashop/{svc['name']}/shared/.env")
        assert env.mode == 0o600, svc["name"]
        assert env.user == "pakashop"
    backend = host.file("/opt/pakashop/backend/shared/.env").content_string
    assert SECRETS["postgres_password"] in backend  # the secret is really delivered...
    assert "PORT=3080" in backend


def test_service_user_has_no_shell(host):
    user = host.user("pakashop")
    assert user.shell == "/usr/sbin/nologin"


def test_infrastructure_hosts():
    for unit in ("postgresql@15-main.service", "redis-server.service"):
        assert docker_exec("pakashop-data", "systemctl", "is-active", unit).stdout.strip() == "active"
    assert docker_exec("pakashop-search", "systemctl", "is-active", "meilisearch.service").stdout.strip() == "active"
    key = SECRETS["meilisearch_master_key"]
    out = docker_exec("pakashop-search", "curl", "-fsS", "-H", f"Authorization: Bearer {key}",
                      "http://127.0.0.1:7700/stats").stdout
    assert '"indexes"' in out
    # Redis insists on its password.
    pong = docker_exec("pakashop-data", "redis-cli", "-a", SECRETS["redis_password"], "--no-auth-warning", "ping")
    assert pong.stdout.strip() == "PONG"
    denied = docker_exec("pakashop-data", "redis-cli", "ping", check=False)
    assert "NOAUTH" in denied.stdout + denied.stderr


def _tier_times(container: str, prop: str) -> list[list[int]]:
    props = unit_props(container, UNITS, prop)
    return [[int(props[f"pakashop-{name}.service"][prop]) for name in tier] for tier in tiers()]


def test_stop_runs_in_reverse_order_and_start_in_tiers():
    playbook("playbooks/stop.yml")
    for container in APP_HOSTS:
        assert docker_exec(container, "systemctl", "is-active", *UNITS, check=False).stdout.split() == ["inactive"] * 19
        stopped = _tier_times(container, "InactiveEnterTimestampMonotonic")
        for lower, higher in pairwise(stopped):
            # every service of a higher tier was down before any of the tier below stopped
            assert max(higher) <= min(lower), (container, stopped)

    playbook("playbooks/start.yml")
    for container in APP_HOSTS:
        started = _tier_times(container, "ActiveEnterTimestampMonotonic")
        for lower, higher in pairwise(started):
            assert max(lower) <= min(higher), (container, started)
        results = probe_health(container)
        assert all(v[0] == 200 for v in results.values()), results


def test_status_dashboard_shows_a_stopped_service_as_fail():
    ok = docker_exec("pakashop-app2", "pakashop-status", "--color", "never")
    assert "[OK]   pakashop-coupon.service" in ok.stdout
    docker_exec("pakashop-app2", "systemctl", "stop", "pakashop-coupon.service")
    try:
        bad = docker_exec("pakashop-app2", "pakashop-status", "--color", "never", check=False)
        assert bad.returncode == 1
        assert "[FAIL] pakashop-coupon.service (inactive)" in bad.stdout
        as_json = docker_exec("pakashop-app2", "pakashop-status", "--json", check=False).stdout
        assert '"healthy": false' in as_json
        report = playbook("playbooks/status.yml", check=False)
        assert report.returncode != 0
        assert "[FAIL] pakashop-coupon.service (inactive)" in report.stdout
        assert "[OK] nginx.service" in report.stdout
    finally:
        playbook("playbooks/restart.yml", "-e", "service=coupon", "--limit", "app2")
    assert docker_exec("pakashop-app2", "systemctl", "is-active", "pakashop-coupon.service").stdout.strip() == "active"
    playbook("playbooks/status.yml")


def test_restart_refuses_an_unknown_service():
    proc = playbook("playbooks/restart.yml", "-e", "service=nosuch", check=False)
    assert proc.returncode != 0
    assert "Unknown service 'nosuch'" in proc.stdout


def test_no_secret_appears_in_the_play_output():
    # Break an env file so the secret-bearing task really rewrites it during the run.
    docker_exec("pakashop-app1", "sh", "-c", "echo PORT=1 > /opt/pakashop/backend/shared/.env")
    proc = playbook("playbooks/provision.yml", "-v")
    assert "changed=1" in proc.stdout or "changed=2" in proc.stdout
    for name, secret in SECRETS.items():
        assert secret not in proc.stdout, name
        assert secret not in proc.stderr, name
    restored = docker_exec("pakashop-app1", "cat", "/opt/pakashop/backend/shared/.env").stdout
    assert SECRETS["postgres_password"] in restored
    playbook("playbooks/restart.yml", "-e", "service=backend")
