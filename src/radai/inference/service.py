"""Task life cycle: create, claim, renew, complete, fail, release; and queries.

Functions take a session (the caller owns the transaction) or a :class:`Database`
(when the function must own its transaction, as claiming does). Claiming is atomic on
both backends: PostgreSQL locks the chosen rows with ``FOR UPDATE SKIP LOCKED`` so that
concurrent workers take different tasks; SQLite runs one write transaction at a time
(``BEGIN IMMEDIATE``, radai.db). Every later step is conditional on the claim's lease
token, so a worker that lost its lease (it was too slow, or thought dead) can change
nothing: its findings are never written.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from radai.archive.models import Series, Study
from radai.db import Database, utcnow
from radai.inference.models import CLAIMABLE, Finding, InferenceTask, TaskPurpose, TaskState
from radai.inference.schemas import (
    FindingOut,
    RoutingDecisionOut,
    StudyFindingsOut,
    StudyRoutingOut,
    TaskOut,
    TaskPage,
)
from radai.models.api import DefectCategory, FindingScore


class TaskNotFound(LookupError):
    """No task with this id."""


def task_key(*, study_instance_uid: str, series_instance_uid: str | None, model_id: str,
             model_version: str, change_seq: int, validation_run_id: int | None = None) -> str:
    """The idempotency key of a task: one task per target, model version and study change.

    A validation task is keyed by its run instead of the study change, so it never
    collides with a clinical task of the same study and model version.
    """
    parts = [study_instance_uid, series_instance_uid or "", model_id, model_version, str(change_seq)]
    if validation_run_id is not None:
        parts = ["validation", str(validation_run_id), *parts[:4]]
    raw = "\\".join(parts)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_task(session: Session, *, study_pk: int, study_instance_uid: str,
                series_pk: int | None, series_instance_uid: str | None, model_id: str,
                model_version: str, rule: str, change_seq: int, max_attempts: int,
                validation_run_id: int | None = None) -> int | None:
    """Add a pending task inside the caller's transaction.

    Returns its id, or None when a task with the same idempotency key already exists
    (the same routing applied twice makes one task). With ``validation_run_id`` the task
    is a validation task of that run (purpose ``validation``).
    """
    key = task_key(study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid,
                   model_id=model_id, model_version=model_version, change_seq=change_seq,
                   validation_run_id=validation_run_id)
    purpose = TaskPurpose.CLINICAL if validation_run_id is None else TaskPurpose.VALIDATION
    if session.scalar(select(InferenceTask.id).where(InferenceTask.idempotency_key == key)) is not None:
        return None
    now = utcnow()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
    task_id: int | None = session.execute(
        upsert(InferenceTask).values(
            idempotency_key=key, study_pk=study_pk, series_pk=series_pk,
            scope="series" if series_pk is not None else "study", model_id=model_id,
            model_version=model_version, rule=rule, change_seq=change_seq,
            state=TaskState.PENDING.value, attempts=0, max_attempts=max_attempts,
            next_attempt_at=now, created_at=now, reason="", purpose=purpose.value,
            validation_run_id=validation_run_id,
        ).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(InferenceTask.id)
    ).scalar_one_or_none()
    return task_id


@dataclass(frozen=True)
class Claim:
    """A task a worker holds, and the lease token that proves it."""

    task_id: int
    token: str
    worker_id: str
    study_pk: int
    study_instance_uid: str
    series_pk: int | None
    model_id: str
    model_version: str
    #: This attempt's number (1 for the first).
    attempt: int
    max_attempts: int
    #: The task's idempotency key.
    key: str
    #: True when the task's previous holder died on its last allowed attempt: the
    #: task must become a defect instead of running again.
    exhausted: bool = False
    #: ``clinical`` or ``validation`` (radai.inference.models.TaskPurpose).
    purpose: str = TaskPurpose.CLINICAL.value


def claim_tasks(db: Database, *, worker_id: str, model_id: str, model_version: str, limit: int,
                lease_seconds: float, validation_run_id: int | None = None) -> list[Claim]:
    """Claim up to ``limit`` due tasks of one model version, oldest due first.

    Due are pending tasks, failed tasks whose ``next_attempt_at`` has come, and running
    tasks whose lease expired. Each claim counts as an attempt. With
    ``validation_run_id`` only that validation run's tasks are claimed.
    """
    if limit <= 0:
        return []
    with db.transaction() as s:
        now = utcnow()
        rows = list(s.scalars(
            select(InferenceTask)
            .where(InferenceTask.model_id == model_id, InferenceTask.model_version == model_version,
                   _due(now), *_of_run(validation_run_id))
            .order_by(InferenceTask.next_attempt_at, InferenceTask.id)
            .limit(limit)
            .with_for_update(skip_locked=True)))
        if not rows:
            return []
        uids: dict[int, str] = {pk: uid for pk, uid in s.execute(
            select(Study.id, Study.study_instance_uid).where(Study.id.in_({r.study_pk for r in rows})))}
        claims = []
        for task in rows:
            exhausted = task.state == TaskState.RUNNING.value and task.attempts >= task.max_attempts
            token = uuid.uuid4().hex
            if not exhausted:
                task.attempts += 1
            task.state = TaskState.RUNNING.value
            task.lease_owner = worker_id[:64]
            task.lease_token = token
            task.lease_expires_at = now + timedelta(seconds=lease_seconds)
            if task.started_at is None:
                task.started_at = now
                task.queue_wait_ms = _ms(now - task.created_at)
            claims.append(Claim(task.id, token, worker_id, task.study_pk, uids[task.study_pk],
                                task.series_pk, task.model_id, task.model_version, task.attempts,
                                task.max_attempts, task.idempotency_key, exhausted, task.purpose))
        return claims


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(InferenceTask.state.in_(CLAIMABLE), InferenceTask.next_attempt_at <= now),
        and_(InferenceTask.state == TaskState.RUNNING.value, InferenceTask.lease_expires_at < now),
    )


def _of_run(validation_run_id: int | None) -> list[ColumnElement[bool]]:
    """The condition "belongs to this validation run" (none: every task)."""
    return [] if validation_run_id is None else [InferenceTask.validation_run_id == validation_run_id]


def _ms(delta: timedelta) -> float:
    return round(delta.total_seconds() * 1000.0, 3)


def due_models(session: Session, *, validation_run_id: int | None = None) -> dict[tuple[str, str], int]:
    """(model id, version) → number of tasks due now (of one validation run, if given)."""
    rows = session.execute(
        select(InferenceTask.model_id, InferenceTask.model_version, func.count())
        .where(_due(utcnow()), *_of_run(validation_run_id))
        .group_by(InferenceTask.model_id, InferenceTask.model_version))
    return {(m, v): int(n) for m, v, n in rows}


def renew_leases(db: Database, *, tokens: Sequence[str], lease_seconds: float) -> int:
    """Extend the leases with these tokens; returns how many are still held."""
    if not tokens:
        return 0
    with db.transaction() as s:
        result = s.execute(
            update(InferenceTask)
            .where(InferenceTask.lease_token.in_(list(tokens)),
                   InferenceTask.state == TaskState.RUNNING.value)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds)))
        return int(result.rowcount)  # type: ignore[attr-defined]


def _held(session: Session, claim: Claim) -> InferenceTask | None:
    return session.scalar(
        select(InferenceTask)
        .where(InferenceTask.id == claim.task_id, InferenceTask.lease_token == claim.token,
               InferenceTask.state == TaskState.RUNNING.value)
        .with_for_update())


@dataclass(frozen=True)
class FindingRecord:
    """A finding to store: the model's score plus where it points."""

    score: FindingScore
    #: The image carrying the finding.
    sop_instance_uid: str
    series_pk: int | None
    #: Heatmap file relative to the data folder, if one was made.
    heatmap_path: str | None = None


@dataclass(frozen=True)
class TaskResult:
    """What one successful run of a task produced."""

    findings: list[FindingRecord]
    input_count: int
    batch_size: int
    batch_tasks: int
    preprocess_ms: float
    inference_ms: float
    extra: dict[str, object] = field(default_factory=dict)


def complete_task(session: Session, *, claim: Claim, result: TaskResult) -> list[int] | None:
    """Mark the task done and write its findings, in the caller's transaction.

    Returns the new findings' ids, or None when the claim no longer holds the task
    (then nothing is written).
    """
    task = _held(session, claim)
    if task is None:
        return None
    now = utcnow()
    task.state = TaskState.DONE.value
    task.finished_at = now
    task.lease_token = task.lease_owner = None
    task.lease_expires_at = None
    task.defect_category = None
    task.reason = ""
    task.input_count = result.input_count
    task.batch_size = result.batch_size
    task.batch_tasks = result.batch_tasks
    task.preprocess_ms = round(result.preprocess_ms, 3)
    task.inference_ms = round(result.inference_ms, 3)
    ids = []
    for rec in result.findings:
        f = rec.score
        ids.append(session.execute(insert(Finding).values(
            task_pk=task.id, study_pk=task.study_pk, series_pk=rec.series_pk,
            sop_instance_uid=rec.sop_instance_uid, model_id=task.model_id,
            model_version=task.model_version, code_value=f.code.value, code_scheme=f.code.scheme,
            code_meaning=f.code.meaning, label=f.label, probability=float(f.probability),
            threshold=float(f.threshold), positive=bool(f.positive), urgency=f.urgency,
            heatmap_path=rec.heatmap_path, queue_wait_ms=task.queue_wait_ms,
            preprocess_ms=task.preprocess_ms, inference_ms=task.inference_ms, created_at=now,
        ).returning(Finding.id)).scalar_one())
    return ids


def backoff_seconds(attempt: int, *, base: float, maximum: float) -> float:
    """Wait before the attempt after ``attempt`` (1-based): ``base * 2**(attempt-1)``, capped."""
    return float(min(maximum, base * (2 ** max(0, attempt - 1))))


def fail_task(session: Session, *, claim: Claim, category: DefectCategory, reason: str,
              retry_base_seconds: float, retry_max_seconds: float) -> TaskState | None:
    """Record a failed attempt in the caller's transaction.

    ``input_not_suited`` is final at once; other categories are tried again after an
    exponential backoff until ``max_attempts`` is used up, and then become a defect of
    that category. Returns the new state, or None when the claim no longer holds the task.
    """
    task = _held(session, claim)
    if task is None:
        return None
    now = utcnow()
    task.lease_token = task.lease_owner = None
    task.lease_expires_at = None
    final = category == DefectCategory.INPUT_NOT_SUITED or task.attempts >= task.max_attempts
    if final:
        task.state = TaskState.DEFECT.value
        task.defect_category = category.value
        task.finished_at = now
        task.reason = reason if category == DefectCategory.INPUT_NOT_SUITED else (
            f"{reason} (after {task.attempts} attempt{'s' if task.attempts != 1 else ''})")
        return TaskState.DEFECT
    task.state = TaskState.FAILED.value
    task.reason = reason
    task.next_attempt_at = now + timedelta(seconds=backoff_seconds(
        task.attempts, base=retry_base_seconds, maximum=retry_max_seconds))
    return TaskState.FAILED


def release_task(db: Database, *, claim: Claim) -> bool:
    """Hand a task back unfinished (shutdown): pending again, this attempt not counted."""
    with db.transaction() as s:
        task = _held(s, claim)
        if task is None:
            return False
        task.attempts = max(0, task.attempts - (0 if claim.exhausted else 1))
        task.state = TaskState.PENDING.value if task.attempts == 0 else TaskState.FAILED.value
        task.lease_token = task.lease_owner = None
        task.lease_expires_at = None
        task.next_attempt_at = utcnow()
        return True


# --- queries ------------------------------------------------------------------------


def get_task(session: Session, *, task_id: int) -> InferenceTask:
    """One task; TaskNotFound if there is none."""
    task = session.get(InferenceTask, task_id)
    if task is None:
        raise TaskNotFound(f"no task {task_id}")
    return task


def list_tasks(session: Session, *, state: str | None = None, model_id: str | None = None,
               model_version: str | None = None, study_instance_uid: str | None = None,
               limit: int = 100, offset: int = 0) -> tuple[list[InferenceTask], int]:
    """Tasks, newest first, filtered; returns the page and the total count."""
    q = select(InferenceTask)
    if state is not None:
        q = q.where(InferenceTask.state == state)
    if model_id is not None:
        q = q.where(InferenceTask.model_id == model_id)
    if model_version is not None:
        q = q.where(InferenceTask.model_version == model_version)
    if study_instance_uid is not None:
        q = q.join(Study, Study.id == InferenceTask.study_pk).where(
            Study.study_instance_uid == study_instance_uid)
    total = int(session.scalar(select(func.count()).select_from(q.subquery())) or 0)
    rows = list(session.scalars(q.order_by(InferenceTask.id.desc()).limit(limit).offset(offset)))
    return rows, total


def study_pk_of(session: Session, *, study_instance_uid: str) -> int | None:
    """The index key of a study, or None when it is not in the archive."""
    return session.scalar(select(Study.id).where(Study.study_instance_uid == study_instance_uid))


def study_findings(session: Session, *, study_pk: int) -> list[Finding]:
    """Every clinical finding of a study, oldest task first (validation runs' are left out)."""
    return list(session.scalars(
        select(Finding).join(InferenceTask, InferenceTask.id == Finding.task_pk)
        .where(Finding.study_pk == study_pk, InferenceTask.purpose == TaskPurpose.CLINICAL.value)
        .order_by(Finding.task_pk, Finding.id)))


def series_uids(session: Session, *, series_pks: Sequence[int]) -> dict[int, str]:
    """Series Instance UIDs by index key."""
    if not series_pks:
        return {}
    return {pk: uid for pk, uid in session.execute(
        select(Series.id, Series.series_instance_uid).where(Series.id.in_(set(series_pks))))}


# --- API views ----------------------------------------------------------------------


class StudyNotFound(LookupError):
    """The study is not in the archive."""


def _views(session: Session, tasks: Sequence[InferenceTask]) -> list[TaskOut]:
    studies = {pk: uid for pk, uid in session.execute(
        select(Study.id, Study.study_instance_uid).where(Study.id.in_({t.study_pk for t in tasks})))}
    series = series_uids(session, series_pks=[t.series_pk for t in tasks if t.series_pk is not None])
    counts = {pk: int(n) for pk, n in session.execute(
        select(Finding.task_pk, func.count()).where(Finding.task_pk.in_([t.id for t in tasks]))
        .group_by(Finding.task_pk))}
    return [TaskOut.of(t, study_uid=studies[t.study_pk],
                       series_uid=series.get(t.series_pk) if t.series_pk is not None else None,
                       finding_count=counts.get(t.id, 0)) for t in tasks]


def task_page(session: Session, *, state: TaskState | None = None, model_id: str | None = None,
              model_version: str | None = None, study_instance_uid: str | None = None,
              limit: int = 50, offset: int = 0) -> TaskPage:
    """A page of tasks, newest first."""
    rows, total = list_tasks(session, state=state.value if state else None, model_id=model_id,
                             model_version=model_version, study_instance_uid=study_instance_uid,
                             limit=limit, offset=offset)
    return TaskPage(items=_views(session, rows), total=total, limit=limit, offset=offset)


def task_view(session: Session, *, task_id: int) -> TaskOut:
    """One task; TaskNotFound if there is none."""
    return _views(session, [get_task(session, task_id=task_id)])[0]


def _study_pk(session: Session, study_instance_uid: str) -> int:
    pk = study_pk_of(session, study_instance_uid=study_instance_uid)
    if pk is None:
        raise StudyNotFound("the study is not in the archive")
    return pk


def study_findings_view(session: Session, *, study_instance_uid: str) -> StudyFindingsOut:
    """Every finding of a study; StudyNotFound if it is not archived."""
    rows = study_findings(session, study_pk=_study_pk(session, study_instance_uid))
    series = series_uids(session, series_pks=[f.series_pk for f in rows if f.series_pk is not None])
    return StudyFindingsOut(study_instance_uid=study_instance_uid, findings=[
        FindingOut.of(f, study_uid=study_instance_uid,
                      series_uid=series.get(f.series_pk) if f.series_pk is not None else None)
        for f in rows])


def study_routing_view(session: Session, *, study_instance_uid: str) -> StudyRoutingOut:
    """A study's routing decisions and tasks; StudyNotFound if it is not archived."""
    from radai.routing.models import RoutingDecision

    pk = _study_pk(session, study_instance_uid)
    decisions = list(session.scalars(select(RoutingDecision).where(RoutingDecision.study_pk == pk)
                                     .order_by(RoutingDecision.change_seq)))
    tasks = list(session.scalars(select(InferenceTask).where(InferenceTask.study_pk == pk)
                                 .order_by(InferenceTask.id)))
    return StudyRoutingOut(study_instance_uid=study_instance_uid,
                           decisions=[RoutingDecisionOut.of(d) for d in decisions],
                           tasks=_views(session, tasks))


class FindingNotFound(LookupError):
    """No finding with this id, or it has no heatmap."""


@dataclass(frozen=True)
class HeatmapRef:
    """Where a finding's heatmap lies and what it is drawn over."""

    study_instance_uid: str
    #: The heatmap file (``.npy``, a ``.png`` beside it) relative to the data folder.
    heatmap_path: str
    #: The image carrying the finding ("" when the model gave none).
    sop_instance_uid: str
    model_id: str
    model_version: str


def heatmap_of(session: Session, *, finding_id: int) -> HeatmapRef:
    """The heatmap of a finding, its study and source image (FindingNotFound: none)."""
    row = session.execute(select(Study.study_instance_uid, Finding.heatmap_path, Finding.sop_instance_uid,
                                 Finding.model_id, Finding.model_version)
                          .join(Study, Study.id == Finding.study_pk)
                          .where(Finding.id == finding_id)).first()
    if row is None or not row[1]:
        raise FindingNotFound(f"finding {finding_id} has no heatmap")
    return HeatmapRef(study_instance_uid=row[0], heatmap_path=row[1], sop_instance_uid=row[2],
                      model_id=row[3], model_version=row[4])
