"""The delivery outbox against real peers: DCMTK's storescp (C-STORE) and Orthanc (STOW-RS).

Results are made for a finished task (created, claimed and completed through the task
service, as the executor does), then delivered by :class:`radai.results.outbox.Outbox`
one pass at a time, so that every try can be looked at.
"""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from sqlalchemy import select

from radai.app import Radai
from radai.archive.models import Series, Study
from radai.config import load_settings
from radai.inference.events import TaskEvent
from radai.inference.service import FindingRecord, TaskResult, claim_tasks, complete_task, create_task
from radai.results.metrics import ResultsMetrics
from radai.results.models import Delivery, DeliveryAttempt, DeliveryState, ResultObject
from radai.results.outbox import Outbox
from radai.results.producer import ResultWorker
from radai.results.service import claim_deliveries, enqueue_result
from tests.fixtures.data import pydicom_data, to_bytes, with_new_uids
from tests.fixtures.peers import (
    LOOPBACK,
    Orthanc,
    free_port,
    make_orthanc,
    require_program,
    stop_process,
    wait_for_port,
)
from tests.results.conftest import findings


def _radai(tmp_path: Path, db_url: str, destinations: list[dict[str, Any]], **results: Any) -> Radai:
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=db_url, http_port=free_port(), dicom_port=free_port(),
        models={"builtin": False},
        results={"destinations": destinations, "retry_base_seconds": 0.2, "retry_max_seconds": 0.4,
                 **results})
    radai = Radai(settings)
    radai.prepare()
    return radai


def _finished_task(radai: Radai, salt: str) -> str:
    """Store a radiograph and record a finished task with two findings for it."""
    ds = with_new_uids(dcmread(pydicom_data("RG1_UNCI.dcm")), salt)
    radai.archive.store(to_bytes(ds), source="import")
    with radai.db.transaction() as s:
        study_pk, series_pk = s.execute(select(Study.id, Series.id).join(Series)
                                        .where(Study.study_instance_uid == ds.StudyInstanceUID)).one()
        create_task(s, study_pk=study_pk, study_instance_uid=str(ds.StudyInstanceUID), series_pk=None,
                    series_instance_uid=None, model_id="pneumonia-peds", model_version="0.3.0",
                    rule="test", change_seq=1, max_attempts=1)
    (claim,) = claim_tasks(radai.db, worker_id="test", model_id="pneumonia-peds", model_version="0.3.0",
                           limit=1, lease_seconds=60)
    with radai.db.transaction() as s:
        complete_task(s, claim=claim, result=TaskResult(
            findings=[FindingRecord(f, str(ds.SOPInstanceUID), series_pk) for f in findings()],
            input_count=1, batch_size=1, batch_tasks=1, preprocess_ms=1.0, inference_ms=1.0))
        enqueue_result(s, TaskEvent(task_id=claim.task_id, state="done", study_pk=study_pk,
                                    study_instance_uid=str(ds.StudyInstanceUID), series_pk=None,
                                    model_id="pneumonia-peds", model_version="0.3.0"))
    worker = ResultWorker(db=radai.db, archive=radai.archive, settings=radai.settings.results,
                          data_dir=radai.settings.data_dir)
    assert worker.run_once() == 1
    return str(ds.StudyInstanceUID)


def _outbox(radai: Radai) -> Outbox:
    return Outbox(db=radai.db, archive=radai.archive, settings=radai.settings.results,
                  calling_ae_title=radai.settings.ae_title,
                  metrics=ResultsMetrics.on(radai.metrics.registry))


def _deliveries(radai: Radai) -> list[tuple[str, Delivery]]:
    with radai.db.session() as s:
        return [(kind, d) for d, kind in s.execute(
            select(Delivery, ResultObject.kind).join(ResultObject, Delivery.object_pk == ResultObject.id)
            .order_by(Delivery.id))]


def _attempts(radai: Radai) -> list[DeliveryAttempt]:
    with radai.db.session() as s:
        return list(s.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)))


class StoreScp:
    """DCMTK's storescp writing what it receives into a folder (started and stopped by the test)."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([require_program("storescp"), "-aet", "STORESCP", "+xa",
                                      "-od", str(self.folder), str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def received(self) -> set[str]:
        return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in self.folder.iterdir()}


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[StoreScp]:
    scp = StoreScp(tmp_path / "storescp", free_port())
    try:
        yield scp
    finally:
        scp.stop()


def _pass_after_backoff(outbox: Outbox) -> int:
    time.sleep(0.5)  # past retry_max_seconds
    return outbox.run_once()


def test_dimse_delivery_waits_for_a_down_peer_and_then_delivers_once(
        tmp_path: Path, db_url: str, storescp: StoreScp) -> None:
    radai = _radai(tmp_path, db_url, [{"name": "pacs", "kind": "dimse", "ae_title": "STORESCP",
                                       "host": LOOPBACK, "port": storescp.port}])
    try:
        _finished_task(radai, "outbox-dimse")
        rows = _deliveries(radai)
        assert sorted(kind for kind, _ in rows) == ["sc", "sr"]
        outbox = _outbox(radai)

        assert outbox.run_once() == 2  # the peer is down
        for _, d in _deliveries(radai):
            assert d.state == DeliveryState.PENDING and d.attempts == 1
            assert "no association" in d.last_error  # radai.dimse.scu's words, no patient data
        assert outbox.run_once() == 0  # backing off

        storescp.start()
        assert _pass_after_backoff(outbox) == 2
        delivered = _deliveries(radai)
        assert all(d.state == DeliveryState.DELIVERED and d.attempts == 2 for _, d in delivered)
        with radai.db.session() as s:
            uids = set(s.scalars(select(ResultObject.sop_instance_uid)))
        assert storescp.received() == uids
        attempts = _attempts(radai)
        assert [a.ok for a in attempts] == [False, False, True, True]
        assert attempts[-1].detail == "C-STORE status 0x0000"
        assert _pass_after_backoff(outbox) == 0  # nothing is sent twice
        sample = radai.metrics.registry.get_sample_value
        assert sample("radai_result_deliveries_total", {"destination": "pacs", "outcome": "failed"}) == 2
        assert sample("radai_result_deliveries_total", {"destination": "pacs", "outcome": "delivered"}) == 2
    finally:
        radai.stop()


def test_each_destination_gets_only_the_types_it_takes(tmp_path: Path, sqlite_url: str,
                                                       storescp: StoreScp) -> None:
    radai = _radai(tmp_path, sqlite_url, [
        {"name": "reports", "kind": "dimse", "ae_title": "STORESCP", "host": LOOPBACK,
         "port": storescp.port, "types": ["sr"]},
        {"name": "images", "kind": "dimse", "ae_title": "STORESCP", "host": LOOPBACK,
         "port": storescp.port, "types": ["sc", "seg"]},
    ])
    try:
        _finished_task(radai, "outbox-types")
        rows = _deliveries(radai)
        assert sorted((d.destination, kind) for kind, d in rows) == [("images", "sc"), ("reports", "sr")]
    finally:
        radai.stop()


def test_an_object_is_abandoned_after_max_attempts(tmp_path: Path, sqlite_url: str) -> None:
    radai = _radai(tmp_path, sqlite_url, [{"name": "gone", "kind": "dimse", "ae_title": "NOBODY",
                                           "host": LOOPBACK, "port": free_port(), "types": ["sr"]}],
                   max_attempts=2)
    try:
        _finished_task(radai, "outbox-abandon")
        outbox = _outbox(radai)
        outbox.run_once()
        _pass_after_backoff(outbox)
        ((_, row),) = _deliveries(radai)
        assert row.state == DeliveryState.ABANDONED and row.attempts == 2
        assert _pass_after_backoff(outbox) == 0
    finally:
        radai.stop()


def test_a_claimed_delivery_is_not_claimed_twice(tmp_path: Path, db_url: str) -> None:
    radai = _radai(tmp_path, db_url, [{"name": "web", "kind": "dicomweb", "url": "http://127.0.0.1:9"}])
    try:
        _finished_task(radai, "outbox-lease")
        first = claim_deliveries(radai.db, destinations=["web"], limit=10, lease_seconds=60)
        second = claim_deliveries(radai.db, destinations=["web"], limit=10, lease_seconds=60)
        assert len(first) == 2 and second == []
    finally:
        radai.stop()


@pytest.fixture
def orthanc_with_password(tmp_path: Path) -> Iterator[Orthanc]:
    orthanc = make_orthanc(tmp_path / "orthanc", extra={
        "AuthenticationEnabled": True, "RegisteredUsers": {"radai": "stow-secret"}})
    try:
        yield orthanc
    finally:
        orthanc.stop()


def test_stow_delivery_to_orthanc_sends_the_configured_authorization(
        tmp_path: Path, sqlite_url: str, orthanc_with_password: Orthanc) -> None:
    orthanc = orthanc_with_password
    good = "Basic " + base64.b64encode(b"radai:stow-secret").decode()
    bad = "Basic " + base64.b64encode(b"radai:wrong").decode()
    url = f"{orthanc.url}/dicom-web"
    radai = _radai(tmp_path, sqlite_url, [
        {"name": "refused", "kind": "dicomweb", "url": url, "authorization": bad, "types": ["sr"]},
        {"name": "web", "kind": "dicomweb", "url": url, "authorization": good},
    ])
    try:
        _finished_task(radai, "outbox-stow")
        assert _outbox(radai).run_once() == 3
        rows = {(d.destination, kind): d for kind, d in _deliveries(radai)}
        assert rows[("refused", "sr")].state == DeliveryState.PENDING
        assert rows[("refused", "sr")].last_error == "HTTP 401"
        assert rows[("web", "sr")].state == rows[("web", "sc")].state == DeliveryState.DELIVERED
        with radai.db.session() as s:
            uids = set(s.scalars(select(ResultObject.sop_instance_uid)))
        auth = ("radai", "stow-secret")
        stored = {orthanc.get(f"/instances/{i}/simplified-tags", auth=auth).json()["SOPInstanceUID"]
                  for i in orthanc.get("/instances", auth=auth).json()}
        assert stored == uids
    finally:
        radai.stop()
