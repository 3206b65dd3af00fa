"""API types of tasks, findings and routing decisions (``/api/v1``; snake_case JSON)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from radai.inference.models import Finding, InferenceTask, TaskState
from radai.models.api import DefectCategory
from radai.routing.models import RoutingDecision, RoutingOutcome


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class CodeOut(_Out):
    """A coded concept (PS3.3 §8.8): Code Value, Coding Scheme Designator, Code Meaning."""

    value: str
    scheme: str
    meaning: str


class TimingsOut(_Out):
    """Where the time went (milliseconds)."""

    queue_wait_ms: float | None = None
    preprocess_ms: float | None = None
    inference_ms: float | None = None


class FindingOut(_Out):
    """One finding of one task."""

    id: int
    task_id: int
    study_instance_uid: str
    series_instance_uid: str | None
    #: The image carrying the finding (the heatmap is drawn over it).
    sop_instance_uid: str
    model_id: str
    model_version: str
    code: CodeOut
    label: str
    probability: float = Field(ge=0.0, le=1.0)
    #: The operating point the decision was made at.
    threshold: float = Field(ge=0.0, le=1.0)
    positive: bool
    urgency: str
    #: ``/api/v1/findings/{id}/heatmap.png`` when a heatmap was made.
    heatmap_url: str | None
    timings: TimingsOut
    created_at: datetime

    @classmethod
    def of(cls, f: Finding, *, study_uid: str, series_uid: str | None) -> FindingOut:
        """The API view of a finding row."""
        return cls(
            id=f.id, task_id=f.task_pk, study_instance_uid=study_uid, series_instance_uid=series_uid,
            sop_instance_uid=f.sop_instance_uid, model_id=f.model_id, model_version=f.model_version,
            code=CodeOut(value=f.code_value, scheme=f.code_scheme, meaning=f.code_meaning),
            label=f.label, probability=f.probability, threshold=f.threshold, positive=f.positive,
            urgency=f.urgency,
            heatmap_url=f"/api/v1/findings/{f.id}/heatmap.png" if f.heatmap_path else None,
            timings=TimingsOut(queue_wait_ms=f.queue_wait_ms, preprocess_ms=f.preprocess_ms,
                               inference_ms=f.inference_ms),
            created_at=f.created_at)


class StudyFindingsOut(_Out):
    """Every finding of a study."""

    study_instance_uid: str
    findings: list[FindingOut]


class DefectOut(_Out):
    """Why a task produced no findings (technical defect taxonomy, ARCHITECTURE.md)."""

    category: DefectCategory
    reason: str


class TaskOut(_Out):
    """An inference task."""

    id: int
    state: TaskState
    study_instance_uid: str
    series_instance_uid: str | None
    #: ``study`` or ``series``.
    scope: str
    model_id: str
    model_version: str
    rule: str
    change_seq: int
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    #: Set for a defect.
    defect: DefectOut | None
    #: Why the last attempt failed, for a task that will be tried again.
    last_error: str | None
    input_count: int | None
    batch_size: int | None
    batch_tasks: int | None
    timings: TimingsOut
    finding_count: int
    #: ``clinical`` (routed) or ``validation`` (a validation run's task).
    purpose: str = "clinical"
    #: The validation run of a validation task.
    validation_run_id: int | None = None

    @classmethod
    def of(cls, t: InferenceTask, *, study_uid: str, series_uid: str | None,
           finding_count: int) -> TaskOut:
        """The API view of a task row."""
        state = TaskState(t.state)
        defect = (DefectOut(category=DefectCategory(t.defect_category), reason=t.reason)
                  if state is TaskState.DEFECT and t.defect_category else None)
        return cls(
            id=t.id, state=state, study_instance_uid=study_uid, series_instance_uid=series_uid,
            scope=t.scope, model_id=t.model_id, model_version=t.model_version, rule=t.rule,
            change_seq=t.change_seq, attempts=t.attempts, max_attempts=t.max_attempts,
            next_attempt_at=t.next_attempt_at if state in (TaskState.PENDING, TaskState.FAILED) else None,
            lease_owner=t.lease_owner, lease_expires_at=t.lease_expires_at, created_at=t.created_at,
            started_at=t.started_at, finished_at=t.finished_at, defect=defect,
            last_error=t.reason if state is TaskState.FAILED else None, input_count=t.input_count,
            batch_size=t.batch_size, batch_tasks=t.batch_tasks,
            timings=TimingsOut(queue_wait_ms=t.queue_wait_ms, preprocess_ms=t.preprocess_ms,
                               inference_ms=t.inference_ms),
            finding_count=finding_count, purpose=t.purpose, validation_run_id=t.validation_run_id)


class TaskPage(_Out):
    """One page of tasks, newest first."""

    items: list[TaskOut]
    total: int
    limit: int
    offset: int


class RoutingDecisionOut(_Out):
    """What routing decided for one change of a study, and why."""

    change_seq: int
    outcome: RoutingOutcome
    input_instances: int
    task_count: int
    rules: list[str]
    models: list[str]
    reason: str
    decided_at: datetime

    @classmethod
    def of(cls, d: RoutingDecision) -> RoutingDecisionOut:
        """The API view of a decision row."""
        return cls(change_seq=d.change_seq, outcome=RoutingOutcome(d.outcome),
                   input_instances=d.input_instances, task_count=d.task_count,
                   rules=[r for r in d.rules.split(", ") if r],
                   models=[m for m in d.models.split(", ") if m], reason=d.reason,
                   decided_at=d.decided_at)


class StudyRoutingOut(_Out):
    """Every routing decision of a study, oldest first, and its tasks."""

    study_instance_uid: str
    decisions: list[RoutingDecisionOut]
    tasks: list[TaskOut]
