"""The local executor: batching across tasks, concurrency, timeouts, retries, defects, listeners."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from radai.app import Radai
from radai.config import ConfigError
from radai.inference.events import Phase, TaskEvent
from radai.inference.executor import LocalExecutor, build_executor
from radai.inference.heatmaps import load_heatmap, png_path
from radai.inference.models import Finding, InferenceTask
from radai.models.manifest import load_manifest
from radai.models.preprocess import prepare_input
from radai.uids import derived_uid
from tests.fixtures.data import pydicom_test_file
from tests.fixtures.waiting import wait_for
from tests.inference.conftest import all_tasks, make_radai, route, tasks_in
from tests.inference.packages import (
    calls,
    install_live,
    live_package,
    set_behaviour,
    store_image,
    write_onnx_package,
    write_python_package,
)

Start = Callable[[Radai], LocalExecutor]


def _studies(radai: Radai, model_id: str, count: int, name: str = "MR_small.dcm") -> list[str]:
    uids = []
    for i in range(count):
        study_uid, _ = store_image(radai, name, f"{model_id}-{i}")
        decision = route(radai, study_uid, model_id)
        assert decision.task_count == 1
        uids.append(study_uid)
    return uids


def _overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one moment."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = now = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    return most


def test_tasks_of_one_model_share_a_batch(local_radai: Radai, start_executor: Start,
                                          tmp_path: Path) -> None:
    pkg = write_python_package(tmp_path / "pkg", "batcher", max_batch_size=8, batch_timeout_ms=1500)
    pkg = live_package(local_radai.models, pkg)
    _studies(local_radai, "batcher", 6)
    start_executor(local_radai)
    wait_for(tasks_in(local_radai, "done"), what="all tasks done")
    assert [c["rows"] for c in calls(pkg)] == [6]  # one forward pass for six studies
    for task in all_tasks(local_radai):
        assert (task.batch_size, task.batch_tasks, task.input_count) == (6, 6, 1)
        assert task.inference_ms is not None and task.preprocess_ms is not None


def test_a_batch_never_exceeds_max_batch_size(local_radai: Radai, start_executor: Start,
                                              tmp_path: Path) -> None:
    pkg = write_python_package(tmp_path / "pkg", "small-batches", max_batch_size=4, batch_timeout_ms=500)
    pkg = live_package(local_radai.models, pkg)
    _studies(local_radai, "small-batches", 10)
    start_executor(local_radai)
    wait_for(tasks_in(local_radai, "done"), what="all tasks done")
    rows = [c["rows"] for c in calls(pkg)]
    assert sum(rows) == 10 and max(rows) == 4
    assert all(t.batch_size is not None and t.batch_size <= 4 for t in all_tasks(local_radai))
    assert any(t.batch_tasks == 4 for t in all_tasks(local_radai))


def test_onnx_model_findings_match_the_pixel_pipeline(local_radai: Radai, start_executor: Start,
                                                      tmp_path: Path) -> None:
    pkg = write_onnx_package(tmp_path / "pkg", "onnx-bright", threshold=0.01, batch_timeout_ms=800)
    pkg = live_package(local_radai.models, pkg)
    studies = _studies(local_radai, "onnx-bright", 3, name="CT_small.dcm")
    start_executor(local_radai)
    wait_for(tasks_in(local_radai, "done"), what="all tasks done")
    # What the model should say: the mean of the prepared input (ONNX graph = mean).
    spec = load_manifest(pkg).input
    expected = float(prepare_input(dcmread(pydicom_test_file("CT_small.dcm")), spec).mean())
    with local_radai.db.session() as s:
        findings = list(s.scalars(select(Finding).order_by(Finding.id)))
    assert len(findings) == 3 and {f.study_pk for f in findings} == set(range(1, 4))
    for f in findings:
        assert abs(f.probability - expected) < 1e-5
        assert f.positive and f.threshold == 0.01 and f.urgency == "urgent"
        assert (f.code_value, f.code_scheme, f.label) == ("BRIGHT", "99RADAITEST", "bright")
        assert f.heatmap_path is not None and "/" in f.heatmap_path
        for uid in studies:  # paths come from hashes, never from UIDs or tag text
            assert uid not in f.heatmap_path
        heatmap = load_heatmap(local_radai.settings.data_dir, f.heatmap_path)
        assert heatmap.shape == (32, 32) and heatmap.min() >= 0.0 and heatmap.max() <= 1.0
        assert png_path(local_radai.settings.data_dir / f.heatmap_path).is_file()
    assert all(t.batch_tasks == 3 for t in all_tasks(local_radai))


def test_per_model_concurrency_is_respected(local_radai: Radai, start_executor: Start,
                                            tmp_path: Path) -> None:
    two = write_python_package(tmp_path / "two", "two-at-once", behaviour={"sleep_seconds": 0.6},
                               max_batch_size=1, batch_timeout_ms=0, concurrency=2)
    one = write_python_package(tmp_path / "one", "one-at-once", behaviour={"sleep_seconds": 0.3},
                               max_batch_size=1, batch_timeout_ms=0, concurrency=1)
    two = live_package(local_radai.models, two)
    one = live_package(local_radai.models, one)
    _studies(local_radai, "two-at-once", 4)
    _studies(local_radai, "one-at-once", 3)
    start_executor(local_radai)
    wait_for(tasks_in(local_radai, "done"), what="all tasks done")
    assert _overlap([(c["start"], c["end"]) for c in calls(two)]) == 2
    assert _overlap([(c["start"], c["end"]) for c in calls(one)]) == 1


def test_a_model_past_its_timeout_becomes_a_service_unavailable_defect(
        local_radai: Radai, start_executor: Start, tmp_path: Path) -> None:
    pkg = write_python_package(tmp_path / "pkg", "too-slow", behaviour={"sleep_seconds": 4},
                               timeout_seconds=0.5, max_retries=1, batch_timeout_ms=0)
    pkg = live_package(local_radai.models, pkg)
    _studies(local_radai, "too-slow", 1)
    start_executor(local_radai)
    wait_for(tasks_in(local_radai, "defect"), timeout=30, what="defect")
    [task] = all_tasks(local_radai)
    assert task.defect_category == "service_unavailable" and task.attempts == 2
    assert task.reason == "the model gave no result within its timeout of 0.5 s (after 2 attempts)"
    with local_radai.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Finding)) == 0


def test_model_errors_are_retried_then_recorded_as_defects(local_radai: Radai, start_executor: Start,
                                                           tmp_path: Path) -> None:
    pkg = write_python_package(tmp_path / "pkg", "broken", behaviour={"fail": "exception"},
                               max_retries=2, batch_timeout_ms=0)
    pkg = live_package(local_radai.models, pkg)
    _studies(local_radai, "broken", 1)
    start_executor(local_radai)
    wait_for(tasks_in(local_radai, "defect"), timeout=30, what="defect")
    [task] = all_tasks(local_radai)
    assert (task.defect_category, task.attempts) == ("model_error", 3)
    # The exception's own text never reaches the reason; its type does.
    assert task.reason == "the model failed in inference (RuntimeError) (after 3 attempts)"
    assert len(calls(pkg)) == 3


def test_a_model_that_recovers_completes_the_task(local_radai: Radai, start_executor: Start,
                                                  tmp_path: Path) -> None:
    pkg = write_python_package(tmp_path / "pkg", "flaky", behaviour={"fail": "service_unavailable"},
                               max_retries=5, batch_timeout_ms=0)
    pkg = live_package(local_radai.models, pkg)
    _studies(local_radai, "flaky", 1)
    start_executor(local_radai)
    wait_for(lambda: all_tasks(local_radai)[0].state == "failed", what="first failure")
    failed = all_tasks(local_radai)[0]
    assert failed.reason == "the test model is unavailable" and failed.next_attempt_at > failed.created_at
    set_behaviour(pkg, {})
    wait_for(tasks_in(local_radai, "done"), what="done after recovery")
    assert all_tasks(local_radai)[0].attempts >= 2


def test_input_not_suited_is_not_retried(local_radai: Radai, start_executor: Start, tmp_path: Path) -> None:
    pkg = write_python_package(tmp_path / "pkg", "picky", behaviour={"unsuited": True}, max_retries=5)
    pkg = live_package(local_radai.models, pkg)
    _studies(local_radai, "picky", 1)
    start_executor(local_radai)
    wait_for(tasks_in(local_radai, "defect"), what="defect")
    [task] = all_tasks(local_radai)
    assert (task.defect_category, task.attempts) == ("input_not_suited", 1)
    assert task.reason == "the test model refuses every study"
    assert calls(pkg) == []


def test_a_model_that_cannot_load_is_service_unavailable(local_radai: Radai, start_executor: Start,
                                                         tmp_path: Path) -> None:
    pkg = write_onnx_package(tmp_path / "pkg", "vanishing", max_retries=1, batch_timeout_ms=0)
    record = install_live(local_radai.models, pkg)
    (Path(record.source) / "model.onnx").unlink()  # the registered package lost its file
    _studies(local_radai, "vanishing", 1)
    start_executor(local_radai)
    wait_for(tasks_in(local_radai, "defect"), what="defect")
    [task] = all_tasks(local_radai)
    assert (task.defect_category, task.attempts) == ("service_unavailable", 2)
    assert "cannot be loaded" in task.reason


def test_listeners_run_in_the_completing_transaction_and_after_commit(
        local_radai: Radai, start_executor: Start, tmp_path: Path) -> None:
    pkg = write_python_package(tmp_path / "pkg", "heard", max_retries=3, batch_timeout_ms=0)
    pkg = live_package(local_radai.models, pkg)
    seen_inside: list[tuple[str, int]] = []
    seen_after: list[TaskEvent] = []
    lock = threading.Lock()

    def inside(session: Session, event: TaskEvent) -> None:
        with lock:
            # The task row and its findings are already written in this transaction.
            state = session.get(InferenceTask, event.task_id).state  # type: ignore[union-attr]
            count = session.scalar(select(func.count()).select_from(Finding)
                                   .where(Finding.task_pk == event.task_id)) or 0
            seen_inside.append((state, count))
            if len(seen_inside) == 1:
                raise RuntimeError("the first delivery fails")

    local_radai.task_events.add_task_listener(inside, phase=Phase.IN_TRANSACTION)
    local_radai.task_events.add_task_listener(seen_after.append, phase=Phase.AFTER_COMMIT)
    [study_uid] = _studies(local_radai, "heard", 1)
    start_executor(local_radai)
    wait_for(lambda: bool(seen_after), what="after-commit event")
    # The failing listener rolled the first completion back; the task ran again.
    assert seen_inside == [("done", 1), ("done", 1)]
    [event] = seen_after
    assert event.state == "done" and event.study_instance_uid == study_uid
    assert len(event.finding_ids) == 1 and event.model_id == "heard"
    [task] = all_tasks(local_radai)
    assert task.state == "done" and task.attempts == 2
    with local_radai.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Finding)) == 1


def test_defects_reach_the_listeners(local_radai: Radai, start_executor: Start, tmp_path: Path) -> None:
    pkg = write_python_package(tmp_path / "pkg", "refuses", behaviour={"unsuited": True})
    pkg = live_package(local_radai.models, pkg)
    events: list[TaskEvent] = []
    local_radai.task_events.add_task_listener(events.append)
    _studies(local_radai, "refuses", 1)
    start_executor(local_radai)
    wait_for(lambda: bool(events), what="defect event")
    assert (events[0].state, events[0].defect_category) == ("defect", "input_not_suited")
    assert events[0].finding_ids == ()


def test_stopping_hands_running_tasks_back(local_radai: Radai, start_executor: Start, tmp_path: Path) -> None:
    pkg = write_python_package(tmp_path / "pkg", "long", behaviour={"sleep_seconds": 5}, batch_timeout_ms=0)
    pkg = live_package(local_radai.models, pkg)
    _studies(local_radai, "long", 1)
    executor = start_executor(local_radai)
    wait_for(tasks_in(local_radai, "running"), what="running")
    executor.stop()  # grace 1 s < 5 s of work
    [task] = all_tasks(local_radai)
    assert (task.state, task.attempts, task.lease_token) == ("pending", 0, None)


def test_inputs_of_a_multi_image_task_stay_together(local_radai: Radai, start_executor: Start,
                                                    tmp_path: Path) -> None:
    pkg = write_python_package(tmp_path / "pkg", "series", max_batch_size=8, batch_timeout_ms=300)
    pkg = live_package(local_radai.models, pkg)
    series_uid = derived_uid("inference-test", "multi", "one-series")
    for i in range(3):  # one study, three images in one series
        uid, _ = store_image(local_radai, "MR_small.dcm", f"multi-{i}", study_salt="multi",
                             changes={"SeriesInstanceUID": series_uid, "InstanceNumber": i + 1})
    route(local_radai, uid, "series")
    start_executor(local_radai)
    wait_for(tasks_in(local_radai, "done"), what="done")
    [task] = all_tasks(local_radai)
    assert task.input_count == 3 and task.batch_size == 3
    with local_radai.db.session() as s:
        [finding] = list(s.scalars(select(Finding)))
    expected = float(np.mean(prepare_input(dcmread(pydicom_test_file("MR_small.dcm")),
                                           load_manifest(pkg).input)))
    assert abs(finding.probability - expected) < 1e-5


def test_an_executor_kind_that_is_not_available_stops_radai(tmp_path: Path, sqlite_url: str) -> None:
    radai = make_radai(tmp_path, sqlite_url, inference={"executor": "ray"})
    try:
        with pytest.raises(ConfigError, match="'ray' is not available in this version"):
            build_executor(radai)
        local = radai.settings.model_copy(update={"inference": radai.settings.inference.model_copy(
            update={"executor": "local"})})
        radai.settings = local
        assert build_executor(radai).kind == "local"
    finally:
        radai.stop()
