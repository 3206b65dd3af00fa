"""API types of datasets (``/api/v1/datasets``; snake_case JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from radai.datasets.models import Dataset, DatasetStudy, DatasetVersion, VersionState


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class VersionSummaryOut(_Out):
    """One version of a dataset, without its contents."""

    number: int
    state: VersionState
    n_studies: int
    created_at: datetime
    created_by: str
    frozen_at: datetime | None
    frozen_by: str | None
    #: SHA-256 of the manifest (frozen versions).
    manifest_sha256: str | None
    url: str

    @classmethod
    def of(cls, v: DatasetVersion, *, n_studies: int) -> VersionSummaryOut:
        """The summary of a version row."""
        return cls(number=v.number, state=VersionState(v.state), n_studies=n_studies, created_at=v.created_at,
                   created_by=v.created_by, frozen_at=v.frozen_at, frozen_by=v.frozen_by,
                   manifest_sha256=v.manifest_sha256,
                   url=f"/api/v1/datasets/{v.dataset.name}/versions/{v.number}")


class DatasetOut(_Out):
    """A dataset and its versions, oldest first."""

    name: str
    description: str
    created_at: datetime
    created_by: str
    versions: list[VersionSummaryOut]

    @classmethod
    def of(cls, d: Dataset, *, counts: dict[int, int]) -> DatasetOut:
        """The API view of a dataset row."""
        return cls(name=d.name, description=d.description, created_at=d.created_at, created_by=d.created_by,
                   versions=[VersionSummaryOut.of(v, n_studies=counts.get(v.id, 0)) for v in d.versions])


class LabelOut(_Out):
    """A study-level label of one finding."""

    scheme: str
    value: str
    meaning: str
    label: str
    method: str
    established_by: str


class DraftStudyOut(_Out):
    """A study of a draft version and its labels so far."""

    key: str
    study_instance_uid: str
    labels: list[LabelOut]

    @classmethod
    def of(cls, entry: DatasetStudy, *, study_uid: str) -> DraftStudyOut:
        """The API view of a draft's study."""
        return cls(key=entry.key, study_instance_uid=study_uid, labels=[
            LabelOut(scheme=lab.code_scheme, value=lab.code_value, meaning=lab.code_meaning, label=lab.value,
                     method=lab.method, established_by=lab.established_by) for lab in entry.labels])


class VersionOut(VersionSummaryOut):
    """A version with its dataset card and, once frozen, its manifest (which names its studies)."""

    dataset: str
    #: The dataset card: the computed card of a frozen version, the text parts of a draft.
    card: dict[str, Any]
    #: The manifest (format ``radai.dataset-manifest/1``); None for a draft.
    manifest: dict[str, Any] | None
    #: A draft's studies and labels so far (a frozen version lists them in its manifest).
    studies: list[DraftStudyOut] | None = None


class CardIn(BaseModel):
    """The text parts of a dataset card."""

    model_config = ConfigDict(extra="forbid")

    purpose: str | None = Field(default=None, max_length=10000)
    source: str | None = Field(default=None, max_length=10000)
    inclusion_criteria: str | None = Field(default=None, max_length=10000)
    label_method: str | None = Field(default=None, max_length=10000)
    label_verification: str | None = Field(default=None, max_length=10000)


class DatasetIn(CardIn):
    """A new dataset (its version 1 starts as a draft with this card text)."""

    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=10000)
