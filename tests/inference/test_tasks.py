"""Durable tasks on SQLite and PostgreSQL: idempotency, atomic claiming, leases, retries, defects."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import func, select

from radai.app import Radai
from radai.archive.models import Study
from radai.db import utcnow
from radai.inference.models import Finding, InferenceTask, TaskState
from radai.inference.service import (
    Claim,
    FindingRecord,
    TaskResult,
    backoff_seconds,
    claim_tasks,
    complete_task,
    create_task,
    fail_task,
    release_task,
)
from radai.models.api import Code, DefectCategory, FindingScore
from tests.inference.packages import store_image

MODEL = ("test-model", "1.0")


def _tasks(radai: Radai, count: int, *, max_attempts: int = 3, change_seq: int = 1) -> list[int]:
    study_uid, _ = store_image(radai, "MR_small.dcm", "tasks")
    with radai.db.transaction() as s:
        study_pk = s.scalar(select(Study.id).where(Study.study_instance_uid == study_uid))
        assert study_pk is not None
        ids = []
        for i in range(count):
            # Distinct changes of one study give distinct tasks of the same model.
            task_id = create_task(s, study_pk=study_pk, study_instance_uid=study_uid, series_pk=None,
                                  series_instance_uid=None, model_id=MODEL[0], model_version=MODEL[1],
                                  rule="r", change_seq=change_seq + i, max_attempts=max_attempts)
            assert task_id is not None
            ids.append(task_id)
    return ids


def _claim(radai: Radai, worker: str = "w1", limit: int = 10, lease: float = 30) -> list[Claim]:
    return claim_tasks(radai.db, worker_id=worker, model_id=MODEL[0], model_version=MODEL[1],
                       limit=limit, lease_seconds=lease)


def _task(radai: Radai, task_id: int) -> InferenceTask:
    with radai.db.session() as s:
        task = s.get(InferenceTask, task_id)
        assert task is not None
        return task


def _result(probability: float = 0.8) -> TaskResult:
    score = FindingScore(code=Code("BRIGHT", "99RADAITEST", "Bright image"), label="bright",
                         probability=probability, threshold=0.5, positive=probability >= 0.5)
    return TaskResult(findings=[FindingRecord(score, "1.2.3", None)], input_count=1, batch_size=1,
                      batch_tasks=1, preprocess_ms=1.0, inference_ms=2.0)


def test_the_idempotency_key_makes_one_task_per_target_model_and_change(radai: Radai) -> None:
    study_uid, _ = store_image(radai, "MR_small.dcm", "idem")
    with radai.db.transaction() as s:
        study_pk = s.scalar(select(Study.id).where(Study.study_instance_uid == study_uid))
        assert study_pk is not None
        args = {"study_pk": study_pk, "study_instance_uid": study_uid, "series_pk": None,
                "series_instance_uid": None, "model_id": "m", "model_version": "1", "rule": "r",
                "max_attempts": 3}
        first = create_task(s, change_seq=1, **args)
        again = create_task(s, change_seq=1, **args)
        later = create_task(s, change_seq=2, **args)
        other_version = create_task(s, change_seq=1, **{**args, "model_version": "2"})
    assert first is not None and again is None
    assert later is not None and later != first
    assert other_version is not None
    with radai.db.session() as s:
        assert s.scalar(select(func.count()).select_from(InferenceTask)) == 3


def test_racing_workers_claim_every_task_exactly_once(radai: Radai) -> None:
    ids = _tasks(radai, 40)
    claimed: list[list[int]] = [[] for _ in range(6)]
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def worker(n: int) -> None:
        try:
            start.wait()
            while True:
                got = _claim(radai, worker=f"w{n}", limit=3)
                if not got:
                    return
                claimed[n].extend(c.task_id for c in got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    everything = [t for c in claimed for t in c]
    assert sorted(everything) == sorted(ids)  # each claimed once, none lost
    assert sum(1 for c in claimed if c) >= 2  # the work was really shared
    with radai.db.session() as s:
        owners = {k: v for k, v in s.execute(select(InferenceTask.id, InferenceTask.lease_owner))}
    for n, mine in enumerate(claimed):
        assert all(owners[t] == f"w{n}" for t in mine)


def test_an_expired_lease_is_claimed_again_and_the_old_holder_can_change_nothing(radai: Radai) -> None:
    [task_id] = _tasks(radai, 1)
    [first] = _claim(radai, worker="dead", lease=0.5)
    assert _claim(radai, worker="other") == []  # still leased
    time.sleep(0.7)
    [second] = _claim(radai, worker="alive")
    assert second.task_id == task_id and second.attempt == 2
    with radai.db.transaction() as s:
        assert complete_task(s, claim=first, result=_result()) is None
    with radai.db.transaction() as s:
        ids = complete_task(s, claim=second, result=_result())
    assert ids is not None and len(ids) == 1
    with radai.db.transaction() as s:
        assert complete_task(s, claim=second, result=_result()) is None  # done once
    task = _task(radai, task_id)
    assert task.state == TaskState.DONE and task.lease_token is None
    with radai.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Finding)) == 1


def test_done_writes_findings_and_timings_in_the_same_transaction(radai: Radai) -> None:
    [task_id] = _tasks(radai, 1)
    [claim] = _claim(radai)
    with radai.db.transaction() as s:
        ids = complete_task(s, claim=claim, result=_result(0.8))
    task = _task(radai, task_id)
    assert task.state == TaskState.DONE
    assert task.queue_wait_ms is not None and task.queue_wait_ms >= 0
    assert (task.preprocess_ms, task.inference_ms, task.input_count) == (1.0, 2.0, 1)
    with radai.db.session() as s:
        f = s.get(Finding, ids[0])  # type: ignore[index]
        assert f is not None
        assert (f.task_pk, f.code_value, f.code_scheme) == (task_id, "BRIGHT", "99RADAITEST")
        assert f.positive
        assert f.probability == 0.8 and f.threshold == 0.5 and f.model_id == MODEL[0]


def test_failed_attempts_back_off_exponentially_then_become_a_defect(radai: Radai) -> None:
    [task_id] = _tasks(radai, 1, max_attempts=3)
    for attempt in (1, 2, 3):
        [claim] = _claim(radai)
        assert claim.attempt == attempt
        before = utcnow()
        with radai.db.transaction() as s:
            state = fail_task(s, claim=claim, category=DefectCategory.SERVICE_UNAVAILABLE,
                              reason="the model is not reachable", retry_base_seconds=0.2,
                              retry_max_seconds=10)
        task = _task(radai, task_id)
        if attempt < 3:
            assert state is TaskState.FAILED and task.state == TaskState.FAILED
            wait = (task.next_attempt_at - before).total_seconds()
            assert abs(wait - 0.2 * 2 ** (attempt - 1)) < 0.15
            assert _claim(radai) == []  # not due yet
            time.sleep(wait + 0.05)
        else:
            assert state is TaskState.DEFECT
    task = _task(radai, task_id)
    assert task.state == TaskState.DEFECT and task.defect_category == "service_unavailable"
    assert task.reason == "the model is not reachable (after 3 attempts)"
    assert task.finished_at is not None
    assert _claim(radai) == []


def test_backoff_is_capped() -> None:
    assert [backoff_seconds(n, base=5, maximum=30) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 30, 30]


def test_input_not_suited_is_a_defect_at_once(radai: Radai) -> None:
    [task_id] = _tasks(radai, 1, max_attempts=5)
    [claim] = _claim(radai)
    with radai.db.transaction() as s:
        state = fail_task(s, claim=claim, category=DefectCategory.INPUT_NOT_SUITED,
                          reason="no image of the study has modality CR/DX",
                          retry_base_seconds=0, retry_max_seconds=0)
    assert state is TaskState.DEFECT
    task = _task(radai, task_id)
    assert (task.state, task.defect_category, task.attempts) == ("defect", "input_not_suited", 1)
    assert task.reason == "no image of the study has modality CR/DX"


def test_a_worker_that_died_on_its_last_attempt_leaves_an_exhausted_task(radai: Radai) -> None:
    [task_id] = _tasks(radai, 1, max_attempts=1)
    _claim(radai, worker="dies", lease=0.3)
    time.sleep(0.5)
    [claim] = _claim(radai, worker="next")
    assert claim.exhausted and claim.attempt == 1
    with radai.db.transaction() as s:
        fail_task(s, claim=claim, category=DefectCategory.SERVICE_UNAVAILABLE, reason="worker died",
                  retry_base_seconds=0, retry_max_seconds=0)
    assert _task(radai, task_id).state == TaskState.DEFECT


def test_a_released_task_is_pending_again_without_counting_the_attempt(radai: Radai) -> None:
    [task_id] = _tasks(radai, 1)
    [claim] = _claim(radai)
    assert release_task(radai.db, claim=claim)
    task = _task(radai, task_id)
    assert (task.state, task.attempts, task.lease_token) == ("pending", 0, None)
    assert not release_task(radai.db, claim=claim)  # the lease is gone
    [again] = _claim(radai)
    assert again.attempt == 1


def test_queue_wait_counts_from_creation_to_first_claim(radai: Radai) -> None:
    [task_id] = _tasks(radai, 1)
    with radai.db.transaction() as s:
        task = s.get(InferenceTask, task_id)
        assert task is not None
        task.created_at = utcnow() - timedelta(seconds=2)
    _claim(radai)
    assert 1900 <= (_task(radai, task_id).queue_wait_ms or 0) < 10000
