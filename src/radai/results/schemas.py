"""API types of results: the JSON summary of a task's result (Moscow experiment style).

Field names are camelCase on the wire (``pathologyFlag``, ``confidenceLevel``…), as the
Moscow experiment's result format has them; Python code uses snake_case.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from radai.models.api import DefectCategory


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class CodeOut(_Camel):
    """A coded concept (PS3.3 §8.8)."""

    value: str
    scheme: str
    meaning: str


class FindingOut(_Camel):
    """One finding as the model reported it."""

    code: CodeOut
    label: str
    #: The model's score, 0..1.
    probability: float = Field(ge=0.0, le=1.0)
    #: The operating point the decision was made at.
    threshold: float = Field(ge=0.0, le=1.0)
    #: Whether the probability reached the operating point.
    positive: bool
    urgency: str


class DefectOut(_Camel):
    """Why a study got no findings (technical defect, ARCHITECTURE.md taxonomy)."""

    category: DefectCategory
    reason: str


class Timestamps(_Camel):
    """When the study arrived, and when the model started and finished it (UTC)."""

    received: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None


class ResultObjectOut(_Camel):
    """A DICOM object radai made for the result."""

    kind: Literal["sr", "sc", "seg"]
    sop_class_uid: str = Field(serialization_alias="sopClassUID", validation_alias="sopClassUID")
    sop_instance_uid: str = Field(serialization_alias="sopInstanceUID", validation_alias="sopInstanceUID")
    series_instance_uid: str = Field(serialization_alias="seriesInstanceUID",
                                     validation_alias="seriesInstanceUID")


class ResultSummary(_Camel):
    """The JSON summary of one model's result for one study."""

    #: ``findings`` or ``defect``.
    status: Literal["findings", "defect"]
    #: True when a finding is positive at the model's operating point; None for a defect.
    pathology_flag: bool | None
    #: The model's highest probability as a percentage (0-100); None for a defect.
    confidence_level: int | None = Field(default=None, ge=0, le=100)
    conclusion: str
    model_id: str
    model_version: str
    model_name: str
    findings: list[FindingOut] = Field(default_factory=list)
    defect: DefectOut | None = None
    timestamps: Timestamps = Field(default_factory=Timestamps)


class StudyResultOut(ResultSummary):
    """A result as the API serves it: the summary plus where its DICOM objects are."""

    task_id: int | None = None
    #: ``pending`` while the objects are being made, ``ready`` when they are stored.
    state: Literal["pending", "ready", "failed"]
    objects: list[ResultObjectOut] = Field(default_factory=list)


class StudyResultsOut(_Camel):
    """``GET /api/v1/studies/{uid}/results``."""

    study_instance_uid: str = Field(serialization_alias="studyInstanceUID",
                                    validation_alias="studyInstanceUID")
    results: list[StudyResultOut]
