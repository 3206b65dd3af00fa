"""Results bookkeeping: result sets, their objects, the delivery outbox; and queries.

Functions take a session (the caller owns the transaction) or a :class:`Database` (when
they must own theirs, as claiming does). Claims hold a lease: ``lease_token`` plus
``next_attempt_at`` pushed into the future; every later update is conditional on the
token, so a holder that lost its lease changes nothing, and work whose holder died is
due again once the lease time has passed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from radai.archive.models import Instance, Series, Study
from radai.db import Database, utcnow
from radai.inference.events import TaskEvent
from radai.inference.models import Finding, InferenceTask, TaskState
from radai.models.api import Code, DefectCategory, FindingScore
from radai.models.models import ModelVersion
from radai.results.common import Algorithm
from radai.results.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    ResultObject,
    ResultSet,
    ResultState,
)
from radai.results.schemas import (
    ResultObjectOut,
    ResultSummary,
    StudyResultOut,
    StudyResultsOut,
)
from radai.results.settings import DicomWebDestination, DimseDestination
from radai.results.summary import defect_summary, findings_summary

#: Instances radai made itself: never model inputs, never evidence of "received".
RESULT_SOURCE = "result"


class StudyNotFound(LookupError):
    """The study is not in the archive."""


def backoff_seconds(attempt: int, *, base: float, maximum: float) -> float:
    """Wait before the try after try ``attempt`` (1-based): ``base * 2**(attempt-1)``, capped."""
    return float(min(maximum, base * (2 ** max(0, min(attempt - 1, 30)))))


# --- result sets --------------------------------------------------------------------


def algorithm_of(session: Session, *, model_id: str, model_version: str) -> Algorithm:
    """The algorithm identity of a registered model version (its name and vendor)."""
    row = session.execute(select(ModelVersion.name, ModelVersion.vendor).where(
        ModelVersion.model_id == model_id, ModelVersion.version == model_version)).first()
    name, vendor = (row[0], row[1]) if row is not None else (model_id, "unknown")
    return Algorithm(model_id=model_id, version=model_version, name=name, vendor=vendor)


def finding_score(row: Finding) -> FindingScore:
    """A stored finding as the writers take it."""
    return FindingScore(code=Code(row.code_value, row.code_scheme, row.code_meaning), label=row.label,
                        probability=float(row.probability), threshold=float(row.threshold),
                        positive=bool(row.positive), urgency=row.urgency)


def received_at(session: Session, *, task: InferenceTask) -> datetime | None:
    """When the last input image the task saw arrived (the study as the task took it)."""
    q = (select(func.max(Instance.received_at)).join(Series, Instance.series_pk == Series.id)
         .where(Series.study_pk == task.study_pk, Instance.source != RESULT_SOURCE,
                Instance.received_at <= task.created_at))
    if task.series_pk is not None:
        q = q.where(Series.id == task.series_pk)
    value: datetime | None = session.scalar(q)
    return value


def summarize_task(session: Session, *, task: InferenceTask, algorithm: Algorithm) -> ResultSummary:
    """The JSON summary of an ended task (findings, or its defect)."""
    times = {"received": received_at(session, task=task), "started": task.started_at,
             "finished": task.finished_at}
    if task.state == TaskState.DEFECT.value:
        category = DefectCategory(task.defect_category or DefectCategory.MODEL_ERROR.value)
        return defect_summary(algorithm=algorithm, category=category, reason=task.reason, **times)
    findings = [finding_score(f) for f in session.scalars(
        select(Finding).where(Finding.task_pk == task.id).order_by(Finding.id))]
    if not findings:
        return defect_summary(algorithm=algorithm, category=DefectCategory.MODEL_ERROR,
                              reason="the model reported no finding", **times)
    return findings_summary(algorithm=algorithm, findings=findings, **times)


def enqueue_result(session: Session, event: TaskEvent) -> int | None:
    """Record that a task ended and its result is to be made (in the task's transaction).

    Idempotent: returns the new result set's id, or None when the task already has one.
    """
    if session.scalar(select(ResultSet.id).where(ResultSet.task_pk == event.task_id)) is not None:
        return None
    task = session.get(InferenceTask, event.task_id)
    if task is None:
        raise LookupError(f"no task {event.task_id}")
    algorithm = algorithm_of(session, model_id=task.model_id, model_version=task.model_version)
    summary = summarize_task(session, task=task, algorithm=algorithm)
    now = utcnow()
    result_id: int = session.execute(insert(ResultSet).values(
        task_pk=task.id, study_pk=task.study_pk, model_id=task.model_id,
        model_version=task.model_version, status=summary.status,
        pathology_flag=summary.pathology_flag, confidence_level=summary.confidence_level,
        summary=summary.model_dump_json(by_alias=True), state=ResultState.PENDING.value,
        attempts=0, next_attempt_at=now, last_error="", created_at=now,
    ).returning(ResultSet.id)).scalar_one()
    return result_id


@dataclass(frozen=True)
class ResultClaim:
    """A result set a worker holds for producing its objects."""

    result_id: int
    token: str
    task_id: int
    attempt: int


def claim_results(db: Database, *, limit: int, lease_seconds: float) -> list[ResultClaim]:
    """Claim up to ``limit`` result sets whose objects are due to be made."""
    with db.transaction() as s:
        now = utcnow()
        rows = list(s.scalars(
            select(ResultSet).where(ResultSet.state == ResultState.PENDING.value,
                                    ResultSet.next_attempt_at <= now)
            .order_by(ResultSet.next_attempt_at, ResultSet.id).limit(limit)
            .with_for_update(skip_locked=True)))
        claims = []
        for row in rows:
            token = uuid.uuid4().hex
            row.attempts += 1
            row.lease_token = token
            row.next_attempt_at = now + timedelta(seconds=lease_seconds)
            claims.append(ResultClaim(row.id, token, row.task_pk, row.attempts))
        return claims


@dataclass(frozen=True)
class StoredObject:
    """A result object stored in the archive."""

    kind: str
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str


def record_objects(session: Session, *, claim: ResultClaim, objects: Sequence[StoredObject],
                   destinations: Sequence[DimseDestination | DicomWebDestination],
                   note: str = "") -> bool:
    """Mark a result ready with its objects, and queue each for its destinations.

    Conditional on the claim's lease; returns False (nothing written) when it was lost.
    """
    row = _held_result(session, claim)
    if row is None:
        return False
    now = utcnow()
    for obj in objects:
        object_pk = session.scalar(select(ResultObject.id).where(
            ResultObject.sop_instance_uid == obj.sop_instance_uid))
        if object_pk is None:
            object_pk = session.execute(insert(ResultObject).values(
                result_set_pk=row.id, kind=obj.kind, sop_class_uid=obj.sop_class_uid,
                sop_instance_uid=obj.sop_instance_uid, series_instance_uid=obj.series_instance_uid,
            ).returning(ResultObject.id)).scalar_one()
        for dest in destinations:
            if not dest.accepts(obj.kind):
                continue
            exists = session.scalar(select(Delivery.id).where(
                Delivery.object_pk == object_pk, Delivery.destination == dest.name))
            if exists is None:
                session.execute(insert(Delivery).values(
                    object_pk=object_pk, destination=dest.name, state=DeliveryState.PENDING.value,
                    attempts=0, next_attempt_at=now, last_error="", created_at=now))
    row.state = ResultState.READY.value
    row.lease_token = None
    row.produced_at = now
    row.next_attempt_at = now
    row.last_error = note[:256]
    return True


def fail_result(session: Session, *, claim: ResultClaim, error: str, max_attempts: int,
                retry_base_seconds: float, retry_max_seconds: float) -> ResultState | None:
    """Record a failed production attempt; after ``max_attempts`` the result is failed."""
    row = _held_result(session, claim)
    if row is None:
        return None
    row.lease_token = None
    row.last_error = error[:256]
    if row.attempts >= max_attempts:
        row.state = ResultState.FAILED.value
        return ResultState.FAILED
    row.next_attempt_at = utcnow() + timedelta(seconds=backoff_seconds(
        row.attempts, base=retry_base_seconds, maximum=retry_max_seconds))
    return ResultState.PENDING


def release_result(db: Database, *, claim: ResultClaim) -> None:
    """Hand a claimed result back unfinished (shutdown): due again, the attempt not counted."""
    with db.transaction() as s:
        row = _held_result(s, claim)
        if row is not None:
            row.lease_token = None
            row.attempts = max(0, row.attempts - 1)
            row.next_attempt_at = utcnow()


def _held_result(session: Session, claim: ResultClaim) -> ResultSet | None:
    return session.scalar(select(ResultSet).where(
        ResultSet.id == claim.result_id, ResultSet.lease_token == claim.token,
        ResultSet.state == ResultState.PENDING.value).with_for_update())


# --- deliveries ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryClaim:
    """One object × destination a worker holds for sending."""

    delivery_id: int
    token: str
    destination: str
    sop_instance_uid: str
    kind: str
    attempt: int


def claim_deliveries(db: Database, *, destinations: Sequence[str], limit: int,
                     lease_seconds: float) -> list[DeliveryClaim]:
    """Claim up to ``limit`` due deliveries to the named destinations, oldest first."""
    if not destinations or limit <= 0:
        return []
    with db.transaction() as s:
        now = utcnow()
        rows = list(s.scalars(
            select(Delivery).where(Delivery.state == DeliveryState.PENDING.value,
                                   Delivery.next_attempt_at <= now,
                                   Delivery.destination.in_(list(destinations)))
            .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit)
            .with_for_update(skip_locked=True)))
        if not rows:
            return []
        objects = {o.id: o for o in s.scalars(select(ResultObject).where(
            ResultObject.id.in_({r.object_pk for r in rows})))}
        claims = []
        for row in rows:
            token = uuid.uuid4().hex
            row.attempts += 1
            row.lease_token = token
            row.next_attempt_at = now + timedelta(seconds=lease_seconds)
            obj = objects[row.object_pk]
            claims.append(DeliveryClaim(row.id, token, row.destination, obj.sop_instance_uid,
                                        obj.kind, row.attempts))
        return claims


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one try did with one claimed delivery."""

    claim: DeliveryClaim
    ok: bool
    #: The peer's answer or the error (no patient data).
    detail: str
    duration_ms: float


def record_outcomes(db: Database, *, outcomes: Sequence[DeliveryOutcome], max_attempts: int,
                    retry_base_seconds: float, retry_max_seconds: float) -> None:
    """Record tries: delivered, or due again after a backoff (or abandoned at ``max_attempts``)."""
    if not outcomes:
        return
    with db.transaction() as s:
        now = utcnow()
        for out in outcomes:
            row = s.scalar(select(Delivery).where(
                Delivery.id == out.claim.delivery_id, Delivery.lease_token == out.claim.token,
                Delivery.state == DeliveryState.PENDING.value).with_for_update())
            s.add(DeliveryAttempt(delivery_pk=out.claim.delivery_id, attempted_at=now, ok=out.ok,
                                  detail=out.detail[:256], duration_ms=round(out.duration_ms, 3)))
            if row is None:
                continue
            row.lease_token = None
            if out.ok:
                row.state = DeliveryState.DELIVERED.value
                row.delivered_at = now
                row.last_error = ""
            elif max_attempts and row.attempts >= max_attempts:
                row.state = DeliveryState.ABANDONED.value
                row.last_error = out.detail[:256]
            else:
                row.last_error = out.detail[:256]
                row.next_attempt_at = now + timedelta(seconds=backoff_seconds(
                    row.attempts, base=retry_base_seconds, maximum=retry_max_seconds))


def release_deliveries(db: Database, *, claims: Sequence[DeliveryClaim]) -> None:
    """Hand claimed deliveries back untried (shutdown): due again, the attempt not counted."""
    if not claims:
        return
    with db.transaction() as s:
        for claim in claims:
            s.execute(update(Delivery).where(
                Delivery.id == claim.delivery_id, Delivery.lease_token == claim.token,
                Delivery.state == DeliveryState.PENDING.value,
            ).values(lease_token=None, attempts=Delivery.attempts - 1, next_attempt_at=utcnow()))


def next_due(session: Session) -> datetime | None:
    """When the next pending result or delivery is due (for sleeping until then)."""
    a = session.scalar(select(func.min(ResultSet.next_attempt_at)).where(
        ResultSet.state == ResultState.PENDING.value))
    b = session.scalar(select(func.min(Delivery.next_attempt_at)).where(
        Delivery.state == DeliveryState.PENDING.value))
    times = [t for t in (a, b) if t is not None]
    return min(times) if times else None


# --- queries ------------------------------------------------------------------------


def study_results(session: Session, *, study_instance_uid: str) -> StudyResultsOut:
    """Every result of a study, oldest first; StudyNotFound when it is not archived."""
    study_pk = session.scalar(select(Study.id).where(Study.study_instance_uid == study_instance_uid))
    if study_pk is None:
        raise StudyNotFound("the study is not in the archive")
    rows = list(session.scalars(select(ResultSet).where(ResultSet.study_pk == study_pk)
                                .order_by(ResultSet.id)))
    objects: dict[int, list[ResultObject]] = {}
    if rows:
        for obj in session.scalars(select(ResultObject).where(
                ResultObject.result_set_pk.in_([r.id for r in rows])).order_by(ResultObject.id)):
            objects.setdefault(obj.result_set_pk, []).append(obj)
    results = []
    for row in rows:
        data = json.loads(row.summary)
        data.update(taskId=row.task_pk, state=row.state, objects=[
            ResultObjectOut(kind=o.kind, sop_class_uid=o.sop_class_uid,
                            sop_instance_uid=o.sop_instance_uid,
                            series_instance_uid=o.series_instance_uid).model_dump(by_alias=True)
            for o in objects.get(row.id, [])])
        results.append(StudyResultOut.model_validate(data))
    return StudyResultsOut(study_instance_uid=study_instance_uid, results=results)


def deliveries_of(session: Session, *, sop_instance_uid: str) -> list[Delivery]:
    """The outbox rows of one result object."""
    return list(session.scalars(select(Delivery).join(ResultObject, Delivery.object_pk == ResultObject.id)
                                .where(ResultObject.sop_instance_uid == sop_instance_uid)
                                .order_by(Delivery.id)))
