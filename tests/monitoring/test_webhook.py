"""Webhook notifications of alerts, delivered to a real HTTP server started by the test."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from radai.app import Radai
from radai.models.api import DefectCategory
from radai.monitoring.models import AlertNotification
from radai.monitoring.monitor import Monitor
from tests.fixtures.peers import LOOPBACK, free_port
from tests.inference.packages import install_live, write_onnx_package
from tests.monitoring.conftest import make_radai, run_task, store


@dataclass
class Receiver:
    """What the test's HTTP server received, and the statuses it answers with (then 200)."""

    port: int
    answers: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/hooks/radai"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rec.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status = rec.answers.pop(0) if rec.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, rec.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def defects_then_recovery(radai: Radai, tmp_path: Path) -> tuple[Monitor, list[str]]:
    """25 studies, every other one a technical defect (an alert); returns the monitor and study UIDs."""
    model = install_live(radai.models, write_onnx_package(tmp_path / "pkg", "test-onnx", threshold=0.5))
    uids = []
    for i in range(25):
        uid = store(radai, "CT_small.dcm", f"w-{i}")
        uids.append(uid)
        if i % 2:
            run_task(radai, uid, model, probability=0.2)
        else:
            run_task(radai, uid, model, defect=DefectCategory.MODEL_ERROR)
    return Monitor(db=radai.db, storage=radai.storage, registry=radai.models,
                   settings=radai.settings.monitoring, dashboard_url="http://radai.example/monitoring"), uids


def notifications(radai: Radai) -> list[AlertNotification]:
    with radai.db.session() as s:
        return list(s.scalars(select(AlertNotification).order_by(AlertNotification.id)))


def test_alerts_are_posted_with_retries(tmp_path: Path, db_url: str, receiver: Receiver) -> None:
    radai = make_radai(tmp_path, db_url, monitoring={"webhook": {
        "url": receiver.url, "authorization": "Bearer hook-secret", "retry_base_seconds": 0,
        "max_attempts": 3}})
    try:
        monitor, uids = defects_then_recovery(radai, tmp_path)
        receiver.answers = [503]
        result = monitor.run_once()
        assert [(c.metric, c.event) for c in result.changes] == [("defect_rate", "opened")]
        # The first try was answered 503: the notification waits for its next try.
        (n,) = notifications(radai)
        assert (n.state, n.attempts, n.last_error) == ("pending", 1, "HTTP 503")
        assert monitor.deliver() == 1
        (n,) = notifications(radai)
        assert (n.state, n.attempts, n.last_error) == ("sent", 2, "") and n.sent_at is not None
        assert monitor.deliver() == 0  # nothing twice
        assert len(receiver.requests) == 2
        request = receiver.requests[-1]
        assert request["path"] == "/hooks/radai"
        assert request["headers"]["Authorization"] == "Bearer hook-secret"
        assert request["headers"]["Content-Type"] == "application/json"
        payload = json.loads(request["body"])
        assert payload["event"] == "opened" and payload["dashboard"] == "http://radai.example/monitoring"
        alert = payload["alert"]
        assert (alert["model_id"], alert["model_version"], alert["metric"], alert["window"]) == (
            "test-onnx", "1.0", "defect_rate", "last-40")
        assert alert["value"] == pytest.approx(13 / 25) and alert["threshold"] == 0.1
        assert alert["sample_size"] == 25 and alert["state"] == "open"
        # Aggregates only: no study of the window is named.
        assert not any(uid.encode() in request["body"] for uid in uids)
    finally:
        radai.stop()


def test_a_notification_that_keeps_failing_is_given_up_and_logged(
        tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    dead = f"http://{LOOPBACK}:{free_port()}/hook"  # nothing listens there
    radai = make_radai(tmp_path, db_url, monitoring={"webhook": {
        "url": dead, "retry_base_seconds": 0, "max_attempts": 2, "timeout_seconds": 2}})
    try:
        monitor, _ = defects_then_recovery(radai, tmp_path)
        with caplog.at_level(logging.WARNING, logger="radai.monitoring.alerts"):
            monitor.run_once()
            assert monitor.deliver() == 0
        (n,) = notifications(radai)
        assert (n.state, n.attempts, n.last_error) == ("failed", 2, "ConnectError")
        messages = [r.getMessage() for r in caplog.records]
        assert any("try 1 failed: ConnectError" in m for m in messages)
        assert any("failed for good after 2 tries: ConnectError" in m for m in messages)
        # A failed notification is not tried again.
        assert monitor.deliver() == 0
        assert notifications(radai)[0].attempts == 2
    finally:
        radai.stop()


def test_closing_is_posted_too(tmp_path: Path, sqlite_url: str, receiver: Receiver) -> None:
    radai = make_radai(tmp_path, sqlite_url, monitoring={"webhook": {"url": receiver.url}})
    try:
        monitor, _ = defects_then_recovery(radai, tmp_path)
        monitor.run_once()
        model = radai.models.get("test-onnx", "1.0")
        for i in range(40):  # 40 good studies push the defects out of the window
            run_task(radai, store(radai, "CT_small.dcm", f"ok-{i}"), model, probability=0.2)
        result = monitor.run_once()
        assert [(c.metric, c.event) for c in result.changes] == [("defect_rate", "closed")]
        events = [json.loads(r["body"])["event"] for r in receiver.requests]
        assert events == ["opened", "closed"]
        closed = json.loads(receiver.requests[-1]["body"])["alert"]
        assert closed["state"] == "closed" and closed["closed_at"] is not None and closed["last_value"] == 0.0
    finally:
        radai.stop()
