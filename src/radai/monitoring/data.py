"""What monitoring reads from the database: ended tasks with their scores, input
profiles, result times and the verdicts of signed reports.

Only ended tasks count (``done`` or ``defect``); clinical tasks make the monitored
windows, the validation tasks of a model version's latest finished validation run
(radai.quality.models.ValidationRun, the same task pipeline) make its reference.
Every function takes a session and reads; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from radai.archive.models import Study
from radai.inference.models import FINAL, Finding, InferenceTask, TaskPurpose, TaskState
from radai.monitoring.agreement import ReviewedCase
from radai.monitoring.models import TaskInputProfile
from radai.quality.models import RunState, ValidationRun
from radai.results.models import ResultSet

#: Rows per ``IN (...)`` list.
_CHUNK = 500


@dataclass(frozen=True)
class Score:
    """One finding of a task: its code, probability and decision at the operating point."""

    finding_pk: int
    code: str
    meaning: str
    probability: float
    positive: bool


@dataclass(frozen=True)
class Inputs:
    """The input profile of a task (radai.monitoring.profiles); empty when not profiled yet."""

    institution: str = ""
    calling_ae: str = ""
    manufacturer: str = ""
    body_part: str = ""
    patient_sex: str = ""
    rows: int | None = None
    columns: int | None = None
    pixel_spacing_mm: float | None = None
    patient_age_years: float | None = None
    last_input_received_at: datetime | None = None
    profiled: bool = False


@dataclass(frozen=True)
class TaskRow:
    """An ended task as monitoring sees it."""

    task_pk: int
    study_pk: int
    study_uid: str
    #: ``done`` or ``defect``.
    state: str
    defect_category: str | None
    created_at: datetime
    finished_at: datetime
    queue_wait_ms: float | None
    preprocess_ms: float | None
    inference_ms: float | None
    #: When the result's DICOM objects were stored (None: not (yet) produced).
    result_stored_at: datetime | None
    inputs: Inputs
    scores: tuple[Score, ...] = field(default=())

    @property
    def is_defect(self) -> bool:
        """Whether the task ended as a technical defect."""
        return self.state == TaskState.DEFECT.value

    def site(self, site_by: str) -> str:
        """The task's site under the ``site_by`` setting ("" when none or unknown)."""
        if site_by == "institution":
            return self.inputs.institution
        if site_by == "calling_ae":
            return self.inputs.calling_ae
        return ""


def code_key(scheme: str, value: str) -> str:
    """``SCHEME:VALUE``, how monitoring names a finding code."""
    return f"{scheme}:{value}"


_Found = tuple[InferenceTask, str, TaskInputProfile | None, datetime | None]


def _base(model_id: str, version: str) -> Select[InferenceTask, str, TaskInputProfile, datetime | None]:
    return (select(InferenceTask, Study.study_instance_uid, TaskInputProfile, ResultSet.produced_at)
            .join(Study, Study.id == InferenceTask.study_pk)
            .outerjoin(TaskInputProfile, TaskInputProfile.task_pk == InferenceTask.id)
            .outerjoin(ResultSet, ResultSet.task_pk == InferenceTask.id)
            .where(InferenceTask.model_id == model_id, InferenceTask.model_version == version,
                   InferenceTask.state.in_(FINAL), InferenceTask.finished_at.is_not(None)))


def clinical_tasks(s: Session, *, model_id: str, version: str, since: datetime | None = None,
                   newest: int | None = None, oldest: int | None = None,
                   before: datetime | None = None, site_by: str = "none", site: str = "") -> list[TaskRow]:
    """Ended clinical tasks of a model version, oldest first.

    ``since``/``before`` bound ``finished_at`` (``[since, before)``); ``newest`` keeps
    the last n, ``oldest`` the first n by ``finished_at``. With ``site`` (not "") only
    the tasks of that site under ``site_by`` (their input profiles say).
    """
    q = _base(model_id, version).where(InferenceTask.purpose == TaskPurpose.CLINICAL.value)
    if site and site_by == "institution":
        q = q.where(TaskInputProfile.institution == site)
    elif site and site_by == "calling_ae":
        q = q.where(TaskInputProfile.calling_ae == site)
    if since is not None:
        q = q.where(InferenceTask.finished_at >= since)
    if before is not None:
        q = q.where(InferenceTask.finished_at < before)
    if newest is not None:
        q = q.order_by(InferenceTask.finished_at.desc(), InferenceTask.id.desc()).limit(newest)
    elif oldest is not None:
        q = q.order_by(InferenceTask.finished_at, InferenceTask.id).limit(oldest)
    rows = _rows(s, s.execute(q).all())
    return sorted(rows, key=lambda r: (r.finished_at, r.task_pk))


def latest_validation_run(s: Session, *, model_id: str, version: str) -> int | None:
    """The newest finished validation run (radai.quality, state ``done``) of this model version."""
    return s.scalar(select(func.max(ValidationRun.id)).where(
        ValidationRun.model_id == model_id, ValidationRun.model_version == version,
        ValidationRun.state == RunState.DONE.value))


def validation_tasks(s: Session, *, model_id: str, version: str, run_id: int) -> list[TaskRow]:
    """The ended tasks of one validation run of a model version."""
    q = _base(model_id, version).where(InferenceTask.purpose == TaskPurpose.VALIDATION.value,
                                       InferenceTask.validation_run_id == run_id)
    rows = _rows(s, s.execute(q).all())
    return sorted(rows, key=lambda r: (r.finished_at, r.task_pk))


def _rows(s: Session, found: Sequence[_Found]) -> list[TaskRow]:
    scores = _scores(s, [t.id for t, _, _, _ in found])
    out = []
    for task, study_uid, prof, produced in found:
        assert task.finished_at is not None
        out.append(TaskRow(
            task_pk=task.id, study_pk=task.study_pk, study_uid=study_uid, state=task.state,
            defect_category=task.defect_category, created_at=task.created_at,
            finished_at=task.finished_at, queue_wait_ms=task.queue_wait_ms,
            preprocess_ms=task.preprocess_ms, inference_ms=task.inference_ms,
            result_stored_at=produced, inputs=_inputs(prof), scores=tuple(scores.get(task.id, ()))))
    return out


def _inputs(p: TaskInputProfile | None) -> Inputs:
    if p is None:
        return Inputs()
    return Inputs(institution=p.institution, calling_ae=p.calling_ae, manufacturer=p.manufacturer,
                  body_part=p.body_part, patient_sex=p.patient_sex, rows=p.rows, columns=p.columns,
                  pixel_spacing_mm=p.pixel_spacing_mm, patient_age_years=p.patient_age_years,
                  last_input_received_at=p.last_input_received_at, profiled=True)


def _scores(s: Session, task_pks: Sequence[int]) -> dict[int, list[Score]]:
    out: dict[int, list[Score]] = {}
    for chunk in _chunks(task_pks):
        for f in s.scalars(select(Finding).where(Finding.task_pk.in_(chunk)).order_by(Finding.id)):
            out.setdefault(f.task_pk, []).append(Score(
                f.id, code_key(f.code_scheme, f.code_value), f.code_meaning, float(f.probability),
                bool(f.positive)))
    return out


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i:i + _CHUNK]


#: Labels of one study from its latest signed report: (finding key or None, verdict, code).
Label = tuple[int | None, str, str]


def signed_labels(s: Session, *, model_id: str) -> dict[str, list[Label]]:
    """Study Instance UID → the labels of the model's findings in the study's latest signed
    report (radai.worklist.service.ground_truth): verdicts on its findings, and missed
    findings recorded with one of its codes."""
    from radai.worklist.service import ground_truth

    labels: dict[str, list[Label]] = {}
    for g in ground_truth(s, model_id=model_id):
        labels.setdefault(g.study_instance_uid, []).append(
            (g.finding_id, g.verdict, code_key(g.code_scheme, g.code_value)))
    return labels


def reviews(labels: dict[str, list[Label]], tasks: Sequence[TaskRow]) -> dict[tuple[int, str], ReviewedCase]:
    """(study key, finding code) → the AI decision and what the signed report says of it.

    For each study of ``tasks`` with labels, the latest task of the study among ``tasks``
    gives the AI decisions; the labels give the verdict on each of those findings and
    the missed findings of its codes (radai.monitoring.agreement says how they count).
    Studies without a signed report are left out.
    """
    from radai.worklist.models import MISSED

    latest: dict[str, TaskRow] = {}
    for t in tasks:
        if t.scores and t.study_uid in labels and (
                t.study_uid not in latest or t.task_pk > latest[t.study_uid].task_pk):
            latest[t.study_uid] = t
    out: dict[tuple[int, str], ReviewedCase] = {}
    for uid, task in latest.items():
        entries = labels[uid]
        verdicts = {finding: verdict for finding, verdict, _ in entries if finding is not None}
        missed = {code for finding, verdict, code in entries if finding is None and verdict == MISSED}
        for score in task.scores:
            out[(task.study_pk, score.code)] = ReviewedCase(
                ai_positive=score.positive, verdict=verdicts.get(score.finding_pk),
                missed=score.code in missed)
    return out
