"""API types of validation runs (``/api/v1/validations``; snake_case JSON)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from radai.quality.models import RunState, StudyState, ValidationRun, ValidationStudy


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunOut(_Out):
    """A validation run: what was tested on what, and the verdict."""

    id: int
    model_id: str
    model_version: str
    #: The model's lifecycle state when the run started.
    model_state: str
    dataset: str
    dataset_version: int
    manifest_sha256: str
    state: RunState
    started_at: datetime
    started_by: str
    finished_at: datetime | None
    n_studies: int
    n_processed: int
    n_defects: int
    #: None until the run is done (and for a failed run).
    gate_passed: bool | None
    gate_reasons: list[str]
    thresholds: dict[str, Any]
    #: Per finding: AUC with its interval, sensitivity and specificity at the operating point…
    findings: list[dict[str, Any]]
    promoted: bool
    error: str
    #: ``/api/v1/validations/{id}/report`` once the report exists.
    report_url: str | None

    @classmethod
    def of(cls, run: ValidationRun) -> RunOut:
        """The API view of a run row."""
        summary = json.loads(run.summary or "{}")
        return cls(id=run.id, model_id=run.model_id, model_version=run.model_version,
                   model_state=run.model_state, dataset=run.dataset_name, dataset_version=run.dataset_version,
                   manifest_sha256=run.manifest_sha256, state=RunState(run.state), started_at=run.started_at,
                   started_by=run.started_by, finished_at=run.finished_at, n_studies=run.n_studies,
                   n_processed=run.n_processed, n_defects=run.n_defects, gate_passed=run.gate_passed,
                   gate_reasons=json.loads(run.gate_reasons or "[]"), thresholds=json.loads(run.thresholds),
                   findings=summary.get("findings", []), promoted=run.promoted, error=run.error,
                   report_url=f"/api/v1/validations/{run.id}/report" if run.report_html else None)


class ScoreOut(_Out):
    """The model's probability for one finding of a study, and the reference label."""

    code: str
    probability: float
    truth: str


class StudyOut(_Out):
    """One dataset study in a run, under its dataset key (no patient data)."""

    key: str
    state: StudyState
    defect_category: str | None
    reason: str
    subgroups: dict[str, str]
    scores: list[ScoreOut]

    @classmethod
    def of(cls, row: ValidationStudy) -> StudyOut:
        """The API view of a run's study row."""
        return cls(key=row.key, state=StudyState(row.state), defect_category=row.defect_category,
                   reason=row.reason, subgroups=json.loads(row.subgroups or "{}"),
                   scores=[ScoreOut(code=f"{s.code_scheme}:{s.code_value}", probability=s.probability,
                                    truth=s.truth) for s in row.scores])


class RunDetailOut(RunOut):
    """A run with its full summary (gate checks included) and every study's outcome and scores."""

    summary: dict[str, Any]
    studies: list[StudyOut]


class RunPage(_Out):
    """One page of runs, newest first."""

    items: list[RunOut]
    total: int
    limit: int
    offset: int
