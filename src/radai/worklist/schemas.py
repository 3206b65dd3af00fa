"""API types of the worklist and the reading of a study (``/api/v1``; snake_case JSON)."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from radai.inference.schemas import CodeOut
from radai.worklist.models import ReadingStatus, ReportStatus, VerdictValue


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class AiResult(enum.StrEnum):
    """What the AI says about a study, for the worklist filter and badge.

    ``positive``: at least one positive finding. Otherwise ``pending`` while a model has
    still to run (or routing has not decided yet), ``defect`` when a model could not
    analyse the study (technical defect), ``negative`` when every model that ran found
    nothing, and ``not_routed`` when no model was chosen for the study (no rule matched,
    or it holds only result objects).
    """

    POSITIVE = "positive"
    NEGATIVE = "negative"
    DEFECT = "defect"
    NOT_ROUTED = "not_routed"
    PENDING = "pending"


class FindingBadge(_Out):
    """An AI finding as the worklist shows it."""

    id: int
    model_id: str
    model_version: str
    code: CodeOut
    label: str
    probability: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(ge=0.0, le=1.0)
    positive: bool
    urgency: str


class DefectBadge(_Out):
    """A model that could not analyse the study, and why (no patient data)."""

    model_id: str
    model_version: str
    category: str
    reason: str


class PriorityPartOut(_Out):
    """One term of the priority (radai.worklist.priority)."""

    kind: str
    points: float
    why: str


class WorklistItem(_Out):
    """One study on the worklist."""

    study_instance_uid: str
    patient_name: str
    patient_id: str
    issuer_of_patient_id: str
    patient_sex: str
    patient_birth_date: str
    accession_number: str
    study_date: str
    study_time: str
    study_description: str
    #: Modalities of the study's images (result objects radai made are left out).
    modalities: list[str]
    institution: str
    number_of_instances: int
    received_at: datetime
    status: ReadingStatus
    opened_by: str | None
    signed_by: str | None
    signed_at: datetime | None
    ai_result: AiResult
    #: Findings of the latest run of each model, positive first.
    findings: list[FindingBadge]
    defects: list[DefectBadge]
    #: Models that have still to run.
    pending_models: list[str]
    #: The emergency rule the study matched.
    emergency: str | None
    priority: float
    priority_parts: list[PriorityPartOut]
    #: The priority in one line: why the study is where it is.
    priority_explanation: str
    waited_minutes: float
    sla_minutes: float
    overdue: bool


class WorklistPage(_Out):
    """A page of the worklist, most urgent first."""

    items: list[WorklistItem]
    total: int
    limit: int
    offset: int
    #: The time waiting and priorities were computed at.
    computed_at: datetime


class VerdictIn(BaseModel):
    """A reader's verdict on an AI finding."""

    model_config = ConfigDict(extra="forbid")

    verdict: VerdictValue


class MissedFindingIn(BaseModel):
    """A finding the AI did not report: one of a model's finding codes, or free text."""

    model_config = ConfigDict(extra="forbid")

    #: ``model_id`` and ``code_value``/``code_scheme`` name a finding of a model's manifest.
    model_id: str | None = Field(default=None, max_length=64)
    code_value: str | None = Field(default=None, max_length=64)
    code_scheme: str | None = Field(default=None, max_length=16)
    #: Free text, when no model code fits.
    text: str | None = Field(default=None, max_length=64)


class ReportIn(BaseModel):
    """The text of a report draft (or of the version being signed)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=20_000)


class VerdictOut(_Out):
    """A verdict as recorded in a signed report version."""

    finding_id: int | None
    verdict: str
    model_id: str | None
    model_version: str | None
    code: CodeOut
    probability: float | None
    threshold: float | None
    ai_positive: bool | None


class ReportOut(_Out):
    """One version of a study's report."""

    id: int
    version: int
    status: ReportStatus
    text: str
    author: str
    created_at: datetime
    updated_at: datetime
    signed_by: str | None
    signed_at: datetime | None
    sop_instance_uid: str | None
    series_instance_uid: str | None
    verdicts: list[VerdictOut]


class MissedFindingOut(_Out):
    """A missed finding recorded by the current reader."""

    id: int
    model_id: str | None
    code: CodeOut


class PriorStudy(_Out):
    """An earlier study of the same patient (Patient ID and Issuer of Patient ID)."""

    study_instance_uid: str
    study_date: str
    study_description: str
    modalities: list[str]
    ai_result: AiResult
    positive_findings: list[FindingBadge]
    status: ReadingStatus
    #: The latest signed report version's text, if any.
    report_text: str | None
    report_signed_at: datetime | None


class ReadingOut(_Out):
    """The reading of one study for the current reader."""

    study_instance_uid: str
    status: ReadingStatus
    editable: bool
    #: Finding id → the current reader's verdict.
    my_verdicts: dict[int, VerdictValue]
    my_missed_findings: list[MissedFindingOut]
    reports: list[ReportOut]
    priors: list[PriorStudy]
