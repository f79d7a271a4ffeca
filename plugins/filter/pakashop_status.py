"""Format pakashop-status checks as dashboard lines."""

from __future__ import annotations

from typing import Any


def pakashop_status_line(check: dict[str, Any]) -> str:
    """`[OK] pakashop-backend.service` or `[FAIL] pakashop-backend.service (inactive)`."""
    if check.get("ok"):
        return f"[OK] {check['target']}"
    return f"[FAIL] {check['target']} ({check.get('state', 'unknown')})"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"pakashop_status_line": pakashop_status_line}
