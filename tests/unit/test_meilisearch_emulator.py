"""The Meilisearch emulator, started for real on a free loopback port."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

EMULATOR = (
    Path(__file__).resolve().parents[1] / "fixtures" / "meilisearch" / "meilisearch"
)
KEY = "sandbox-master-key-0123456789"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
DURATION = re.compile(r"^PT\d+(\.\d+)?S$")
TASK_KEYS = [
    "uid",
    "indexUid",
    "status",
    "type",
    "canceledBy",
    "details",
    "error",
    "duration",
    "enqueuedAt",
    "startedAt",
    "finishedAt",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Meili:
    def __init__(self, db: Path, *extra: str, key: str | None = KEY) -> None:
        self.port = free_port()
        self.key = key
        args = ["--http-addr", f"127.0.0.1:{self.port}", "--db-path", str(db)]
        args += ["--emulator-task-delay-ms", "20", "--no-analytics", *extra]
        if key:
            args += ["--master-key", key]
        self.proc = subprocess.Popen(
            [sys.executable, str(EMULATOR), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()[1]
            try:
                if self.call("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.02)
        pytest.fail("emulator did not start")

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        key: str | None = "default",
        content_type: str | None = "application/json",
    ) -> tuple[int, Any]:
        headers = {}
        token = self.key if key == "default" else key
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            if content_type:
                headers["Content-Type"] = content_type
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, body
        return body

    def wait_task(self, uid: int) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            task = self.get(f"/tasks/{uid}")
            if task["status"] in ("succeeded", "failed", "canceled"):
                return task
            time.sleep(0.02)
        pytest.fail(f"task {uid} did not finish")

    def inject(self, *tasks: dict[str, Any]) -> list[int]:
        status, body = self.call("POST", "/_emulator/tasks", list(tasks))
        assert status == 201, body
        return body["taskUids"]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0, err
        return err


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Meili]]:
    started: list[Meili] = []

    def _start(*extra: str, key: str | None = KEY, db: str = "db") -> Meili:
        server = Meili(tmp_path / db, *extra, key=key)
        started.append(server)
        return server

    yield _start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate()


def test_version_flag() -> None:
    out = subprocess.run(
        [sys.executable, str(EMULATOR), "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    assert out.stdout.strip() == "meilisearch 1.7.6 (emulator)"


def test_production_requires_a_master_key(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(EMULATOR),
            "--env",
            "production",
            "--db-path",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 1
    assert "master key" in done.stderr


def test_auth(start: Callable[..., Meili]) -> None:
    meili = start()
    assert meili.call("GET", "/health", key=None) == (200, {"status": "available"})
    assert meili.call("GET", "/version", key=None) == (
        401,
        {
            "message": "The Authorization header is missing. It must use the bearer "
            "authorization method.",
            "code": "missing_authorization_header",
            "type": "auth",
            "link": "https://docs.meilisearch.com/errors#missing_authorization_header",
        },
    )
    status, body = meili.call("GET", "/tasks", key="wrong-key")
    assert status == 403
    assert (body["code"], body["type"]) == ("invalid_api_key", "auth")
    assert body["link"] == "https://docs.meilisearch.com/errors#invalid_api_key"
    assert meili.call("POST", "/_emulator/pause", key=None)[0] == 401
    version = meili.get("/version")
    assert version["pkgVersion"] == "1.7.6"
    assert set(version) == {"pkgVersion", "commitSha", "commitDate"}
    assert "received SIGTERM" in meili.stop()


def test_no_master_key_means_open_access(start: Callable[..., Meili]) -> None:
    meili = start(key=None)
    assert meili.call("GET", "/stats", key=None)[0] == 200


def test_document_addition_task_lifecycle(start: Callable[..., Meili]) -> None:
    meili = start()
    assert meili.call("POST", "/_emulator/pause") == (200, {"paused": True})
    docs = [
        {"id": 1, "title": "tea"},
        {"id": 2, "title": "rice"},
        {"id": "x-3", "price": 4},
    ]
    status, summary = meili.call("POST", "/indexes/products/documents", docs)
    assert status == 202
    assert list(summary) == ["taskUid", "indexUid", "status", "type", "enqueuedAt"]
    assert (summary["indexUid"], summary["status"], summary["type"]) == (
        "products",
        "enqueued",
        "documentAdditionOrUpdate",
    )
    assert RFC3339.match(summary["enqueuedAt"])
    uid = summary["taskUid"]
    time.sleep(0.1)
    task = meili.get(f"/tasks/{uid}")
    assert list(task) == TASK_KEYS
    assert task["status"] == "enqueued"
    assert (task["startedAt"], task["finishedAt"], task["duration"]) == (
        None,
        None,
        None,
    )
    assert task["details"] == {"receivedDocuments": 3, "indexedDocuments": None}
    assert meili.call("GET", "/indexes/products")[1]["code"] == "index_not_found"

    meili.call("POST", "/_emulator/resume")
    task = meili.wait_task(uid)
    assert task["status"] == "succeeded"
    assert task["details"] == {"receivedDocuments": 3, "indexedDocuments": 3}
    assert task["error"] is None and task["canceledBy"] is None
    assert RFC3339.match(task["startedAt"]) and RFC3339.match(task["finishedAt"])
    assert DURATION.match(task["duration"])
    assert task["enqueuedAt"] <= task["startedAt"] <= task["finishedAt"]

    index = meili.get("/indexes/products")
    assert (index["uid"], index["primaryKey"]) == ("products", "id")
    assert RFC3339.match(index["createdAt"]) and RFC3339.match(index["updatedAt"])
    assert meili.get("/indexes") == {
        "results": [index],
        "offset": 0,
        "limit": 20,
        "total": 1,
    }
    assert meili.get("/indexes/products/stats") == {
        "numberOfDocuments": 3,
        "isIndexing": False,
        "fieldDistribution": {"id": 3, "price": 1, "title": 2},
    }

    # PUT merges fields of existing documents; the same ids are not counted twice.
    status, summary = meili.call(
        "PUT", "/indexes/products/documents", [{"id": 1, "price": 2}]
    )
    assert status == 202
    assert meili.wait_task(summary["taskUid"])["status"] == "succeeded"
    assert meili.get("/indexes/products/documents/1") == {
        "id": 1,
        "title": "tea",
        "price": 2,
    }
    stats = meili.get("/stats")
    assert stats["indexes"] == {
        "products": {
            "numberOfDocuments": 3,
            "isIndexing": False,
            "fieldDistribution": {"id": 3, "price": 2, "title": 2},
        }
    }
    assert stats["databaseSize"] > 0
    assert (
        stats["lastUpdate"] == meili.get(f"/tasks/{summary['taskUid']}")["finishedAt"]
    )


def test_errors_have_meilisearch_shape(start: Callable[..., Meili]) -> None:
    meili = start()
    status, body = meili.call("GET", "/indexes/missing")
    assert status == 404
    assert body == {
        "message": "Index `missing` not found.",
        "code": "index_not_found",
        "type": "invalid_request",
        "link": "https://docs.meilisearch.com/errors#index_not_found",
    }
    assert meili.call("GET", "/tasks/999")[1]["code"] == "task_not_found"
    assert meili.call("GET", "/tasks/999")[0] == 404
    for query, code in [
        ("statuses=done", "invalid_task_statuses"),
        ("types=reindex", "invalid_task_types"),
        ("uids=abc", "invalid_task_uids"),
        ("limit=-1", "invalid_task_limit"),
        ("from=x", "invalid_task_from"),
        ("beforeEnqueuedAt=yesterday", "invalid_task_before_enqueued_at"),
        ("afterEnqueuedAt=2026-13-45", "invalid_task_after_enqueued_at"),
        ("colour=blue", "bad_request"),
    ]:
        status, body = meili.call("GET", f"/tasks?{query}")
        assert (status, body["code"]) == (400, code), query
        assert body["type"] == "invalid_request"
    status, body = meili.call("POST", "/indexes", {"uid": "shop"}, content_type=None)
    assert (status, body["code"]) == (415, "missing_content_type")
    assert (
        meili.call("POST", "/indexes", {"uid": "bad uid!"})[1]["code"]
        == "invalid_index_uid"
    )
    assert meili.call("POST", "/tasks/cancel")[1]["code"] == "missing_task_filters"
    assert meili.call("GET", "/no/such/route") == (404, None)

    # Creating an existing index is accepted, then the task fails.
    first = meili.call("POST", "/indexes", {"uid": "shop", "primaryKey": "sku"})[1]
    assert first["type"] == "indexCreation"
    second = meili.call("POST", "/indexes", {"uid": "shop"})[1]
    assert meili.wait_task(first["taskUid"])["details"] == {"primaryKey": "sku"}
    failed = meili.wait_task(second["taskUid"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "index_already_exists"
    missing_id = meili.call("POST", "/indexes/shop/documents", [{"name": "no sku"}])[1]
    task = meili.wait_task(missing_id["taskUid"])
    assert (task["status"], task["error"]["code"]) == ("failed", "missing_document_id")
    assert task["details"] == {"receivedDocuments": 1, "indexedDocuments": 0}


def test_task_filters_and_pagination(start: Callable[..., Meili]) -> None:
    meili = start()
    uids = meili.inject(
        {"indexUid": "a", "type": "indexCreation", "status": "succeeded",
         "enqueuedAt": "2026-11-21T09:00:00Z", "startedAt": "2026-11-21T09:00:01Z",
         "finishedAt": "2026-11-21T09:00:01.5Z"},
        {"indexUid": "a", "type": "documentAdditionOrUpdate", "status": "failed",
         "enqueuedAt": "2026-11-21T09:30:00Z"},
        {"indexUid": "b", "type": "documentAdditionOrUpdate", "status": "processing",
         "enqueuedAt": "2026-11-21T10:00:00Z", "startedAt": "2026-11-21T10:00:02Z"},
        {"indexUid": "a", "type": "documentAdditionOrUpdate", "status": "enqueued",
         "enqueuedAt": "2026-11-21T10:30:00+00:00"},
        {"indexUid": "b", "type": "documentDeletion", "status": "enqueued",
         "enqueuedAt": "2026-11-21T11:00:00.250Z"},
    )  # fmt: skip
    assert uids == [0, 1, 2, 3, 4]
    first = meili.get("/tasks/0")
    assert first["duration"] == "PT0.5S"
    assert first["finishedAt"] == "2026-11-21T09:00:01.5Z"
    assert meili.get("/tasks/3")["enqueuedAt"] == "2026-11-21T10:30:00Z"
    assert meili.get("/tasks/1")["error"]["code"] == "internal"

    def uids_of(query: str) -> list[int]:
        return [t["uid"] for t in meili.get(f"/tasks?{query}")["results"]]

    assert uids_of("") == [4, 3, 2, 1, 0]
    assert uids_of("statuses=enqueued,processing") == [4, 3, 2]
    assert uids_of("indexUids=a") == [3, 1, 0]
    assert uids_of("types=documentAdditionOrUpdate&indexUids=b") == [2]
    assert uids_of("uids=0,4,7") == [4, 0]
    assert uids_of("statuses=*") == [4, 3, 2, 1, 0]
    assert uids_of("beforeEnqueuedAt=2026-11-21T10:00:00Z") == [1, 0]
    assert uids_of("afterEnqueuedAt=2026-11-21T10:00:00Z") == [4, 3]
    assert uids_of(
        "afterEnqueuedAt=2026-11-21T09:59:59Z&beforeEnqueuedAt=2026-11-21T10:30:01Z"
    ) == [3, 2]
    assert uids_of("afterStartedAt=2026-11-21T09:00:00Z") == [2, 0]
    assert uids_of("beforeFinishedAt=2026-11-22") == [0]

    page = meili.get("/tasks?limit=2")
    assert ([t["uid"] for t in page["results"]], page["total"], page["limit"]) == (
        [4, 3],
        5,
        2,
    )
    assert (page["from"], page["next"]) == (4, 2)
    page = meili.get("/tasks?limit=2&from=2")
    assert [t["uid"] for t in page["results"]] == [2, 1]
    assert (page["from"], page["next"], page["total"]) == (2, 0, 5)
    page = meili.get("/tasks?limit=2&from=0")
    assert ([t["uid"] for t in page["results"]], page["from"], page["next"]) == (
        [0],
        0,
        None,
    )
    page = meili.get("/tasks?statuses=enqueued&limit=1")
    assert (page["total"], page["from"], page["next"]) == (2, 4, 3)
    page = meili.get("/tasks?statuses=canceled")
    assert page == {"results": [], "total": 0, "limit": 20, "from": None, "next": None}


def test_held_tasks_stay_enqueued_and_can_be_canceled(
    start: Callable[..., Meili],
) -> None:
    meili = start()
    (held,) = meili.inject(
        {"indexUid": "products", "type": "documentAdditionOrUpdate", "status": "enqueued",
         "enqueuedAt": "2026-11-21T10:00:00Z"},
    )  # fmt: skip
    status, summary = meili.call("POST", "/indexes/products/documents", [{"id": 1}])
    assert status == 202
    assert meili.wait_task(summary["taskUid"])["status"] == "succeeded"
    time.sleep(0.1)
    backlog = meili.get("/tasks?statuses=enqueued,processing")
    assert [t["uid"] for t in backlog["results"]] == [held]
    assert backlog["results"][0]["enqueuedAt"] == "2026-11-21T10:00:00Z"
    assert meili.get("/indexes/products/stats")["numberOfDocuments"] == 1

    status, cancel = meili.call("POST", f"/tasks/cancel?uids={held}")
    assert (status, cancel["type"], cancel["indexUid"]) == (
        202,
        "taskCancelation",
        None,
    )
    done = meili.wait_task(cancel["taskUid"])
    assert done["details"] == {
        "matchedTasks": 1,
        "canceledTasks": 1,
        "originalFilter": f"?uids={held}",
    }
    task = meili.get(f"/tasks/{held}")
    assert (task["status"], task["canceledBy"]) == ("canceled", cancel["taskUid"])
    assert RFC3339.match(task["finishedAt"])
    assert meili.get("/tasks?statuses=enqueued,processing")["total"] == 0


def test_state_survives_restart(start: Callable[..., Meili]) -> None:
    meili = start()
    summary = meili.call(
        "POST", "/indexes/orders/documents", [{"order_id": 7}, {"order_id": 8}]
    )[1]
    assert meili.wait_task(summary["taskUid"])["status"] == "succeeded"
    meili.call("POST", "/_emulator/pause")
    pending = meili.call("POST", "/indexes/orders/documents", [{"order_id": 9}])[1]
    (held,) = meili.inject(
        {
            "indexUid": "orders",
            "type": "indexUpdate",
            "enqueuedAt": "2026-11-21T10:00:00Z",
        }
    )
    before = meili.get("/tasks")
    meili.stop()

    again = start()
    assert again.get("/indexes/orders")["primaryKey"] == "order_id"
    assert again.get("/tasks/0") == before["results"][-1]
    # The payload queued before the restart is still processed afterwards.
    assert again.wait_task(pending["taskUid"])["status"] == "succeeded"
    assert again.get("/indexes/orders/stats")["numberOfDocuments"] == 3
    assert again.get(f"/tasks/{held}")["status"] == "enqueued"
    new = again.call("POST", "/indexes", {"uid": "later"})[1]
    assert new["taskUid"] == held + 1
    started_at = datetime.fromisoformat(again.wait_task(new["taskUid"])["startedAt"])
    assert abs((datetime.now(UTC) - started_at).total_seconds()) < 60
