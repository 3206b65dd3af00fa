"""Validation runs in the database: create a run with its tasks, gather outcomes, record results.

A run is created in one transaction together with one *validation task* per dataset
study (radai.inference: purpose ``validation``, keyed by the run, so it never collides
with clinical tasks). Studies the archive no longer holds as frozen get no task and
are recorded as technical defects at once. Functions are keyword-only and take a
session; the caller owns the transaction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from radai.archive.models import Study
from radai.datasets.models import DatasetVersion
from radai.db import utcnow
from radai.inference.models import FINAL, Finding, InferenceTask, TaskState
from radai.inference.service import create_task
from radai.models.api import DefectCategory
from radai.models.manifest import Manifest
from radai.models.registry import ModelRecord
from radai.quality.gate import GateResult
from radai.quality.inputs import FindingSpec, StudyOutcome, TechnicalDefect, Truth
from radai.quality.metrics import Proportion
from radai.quality.models import RunState, StudyState, ValidationRun, ValidationScore, ValidationStudy
from radai.quality.settings import GateThresholds
from radai.quality.validation import ValidationResult

#: Reason prefix of studies that changed in the archive after the version was frozen.
INTEGRITY = "the archive no longer holds the study as frozen"


class ValidationError(ValueError):
    """A validation run that cannot be made or finished; the message says why."""


class RunNotFound(LookupError):
    """No validation run with this id."""


def finding_code(scheme: str, value: str) -> str:
    """How a finding is named in metrics and reports: ``SCHEME:VALUE``."""
    return f"{scheme}:{value}"


def finding_specs(manifest: Manifest) -> list[FindingSpec]:
    """The model's findings with their operating points (thresholds from its manifest)."""
    return [FindingSpec(code=finding_code(f.code.scheme, f.code.value), meaning=f.code.meaning,
                        threshold=f.threshold) for f in manifest.outputs.findings]


def manifest_thresholds(manifest: Manifest) -> dict[str, Any] | None:
    """Acceptance thresholds a model package states, as ``claimed_metrics.acceptance`` in model.yaml.

    A mapping with the keys of :class:`radai.quality.settings.GateThresholds`, e.g.
    ``{min_auc_lower_bound: 0.85, min_sensitivity: 0.9}``; None when the package states none.
    """
    extra = manifest.claimed_metrics.model_extra or {}
    acceptance = extra.get("acceptance")
    if acceptance is None:
        return None
    if not isinstance(acceptance, Mapping):
        raise ValidationError("model.yaml: claimed_metrics.acceptance must be a mapping of gate thresholds")
    return dict(acceptance)


@dataclass(frozen=True)
class PlannedStudy:
    """A study of the frozen version, and why it cannot be run (None when it can)."""

    key: str
    study_instance_uid: str
    subgroups: Mapping[str, str]
    problem: str | None


def create_run(session: Session, *, record: ModelRecord, version: DatasetVersion,
               studies: Sequence[PlannedStudy], thresholds: GateThresholds, level: float,
               actor: str) -> ValidationRun:
    """Record a new run and make a validation task for every study that can be run."""
    run = ValidationRun(
        model_id=record.model_id, model_version=record.version, model_state=record.state.value,
        dataset_version_pk=version.id, dataset_name=version.dataset.name, dataset_version=version.number,
        manifest_sha256=version.manifest_sha256 or "", state=RunState.RUNNING.value,
        thresholds=thresholds.model_dump_json(), level=level, started_at=utcnow(), started_by=actor,
        n_studies=len(studies))
    session.add(run)
    session.flush()
    pks = dict(session.execute(select(Study.study_instance_uid, Study.id).where(
        Study.study_instance_uid.in_([s.study_instance_uid for s in studies]))).all())
    changes = dict(session.execute(select(Study.id, Study.change_seq).where(Study.id.in_(pks.values())))
                   .all())
    max_attempts = record.manifest.resources.max_retries + 1
    for planned in studies:
        pk = pks.get(planned.study_instance_uid)
        row = ValidationStudy(run_pk=run.id, key=planned.key, study_pk=pk,
                              subgroups=json.dumps(dict(planned.subgroups), sort_keys=True))
        if planned.problem is not None or pk is None:
            row.state = StudyState.DEFECT.value
            row.defect_category = DefectCategory.INPUT_NOT_SUITED.value
            row.reason = f"{INTEGRITY}: {planned.problem or 'the study is no longer in the archive'}"
        else:
            row.task_pk = create_task(
                session, study_pk=pk, study_instance_uid=planned.study_instance_uid, series_pk=None,
                series_instance_uid=None, model_id=record.model_id, model_version=record.version,
                rule=f"validation run {run.id}", change_seq=changes[pk], max_attempts=max_attempts,
                validation_run_id=run.id)
        session.add(row)
    session.flush()
    return run


def run_progress(session: Session, *, run_id: int) -> tuple[int, int]:
    """(tasks of the run that ended, all tasks of the run)."""
    counts = session.execute(select(InferenceTask.state, func.count())
                             .where(InferenceTask.validation_run_id == run_id).group_by(InferenceTask.state))
    ended = total = 0
    for state, n in counts:
        total += int(n)
        ended += int(n) if state in FINAL else 0
    return ended, total


@dataclass(frozen=True)
class Gathered:
    """What a run's studies gave: outcomes for the metrics, defects, and each study's row updates."""

    outcomes: list[StudyOutcome]
    defects: list[TechnicalDefect]


def gather(session: Session, *, run: ValidationRun, specs: Sequence[FindingSpec],
           labels: Mapping[str, Mapping[str, Truth]], unfinished_reason: str) -> Gathered:
    """Turn the run's tasks into outcomes and defects, and record them on the study rows.

    ``labels`` maps study key → finding code → reference label; a finding without a
    label counts as uncertain. Tasks that did not end are defects with ``unfinished_reason``.
    """
    codes = {s.code for s in specs}
    outcomes: list[StudyOutcome] = []
    defects: list[TechnicalDefect] = []
    for row in run.studies:
        subgroups = json.loads(row.subgroups)
        task = session.get(InferenceTask, row.task_pk) if row.task_pk is not None else None
        if task is not None and task.state == TaskState.DONE.value:
            probabilities = {finding_code(f.code_scheme, f.code_value): float(f.probability)
                             for f in session.scalars(select(Finding).where(Finding.task_pk == task.id))
                             if finding_code(f.code_scheme, f.code_value) in codes}
            missing = codes - set(probabilities)
            if missing:
                _defect(row, DefectCategory.MODEL_ERROR, f"the model gave no score for {min(missing)}")
            else:
                truth = {c: labels.get(row.key, {}).get(c, Truth.UNCERTAIN) for c in codes}
                outcomes.append(StudyOutcome(row.key, truth, probabilities, subgroups))
                row.state = StudyState.DONE.value
                for code, p in sorted(probabilities.items()):
                    scheme, _, value = code.partition(":")
                    session.add(ValidationScore(study_result_pk=row.id, code_scheme=scheme, code_value=value,
                                                probability=p, truth=truth[code].value))
                continue
        elif task is not None and task.state == TaskState.DEFECT.value:
            category = DefectCategory(task.defect_category or DefectCategory.MODEL_ERROR.value)
            _defect(row, category, task.reason)
        elif task is not None:
            _defect(row, DefectCategory.SERVICE_UNAVAILABLE, unfinished_reason)
        defects.append(TechnicalDefect(row.key, DefectCategory(row.defect_category or "model_error"),
                                       row.reason, subgroups))
    session.flush()
    return Gathered(outcomes, defects)


def _defect(row: ValidationStudy, category: DefectCategory, reason: str) -> None:
    row.state = StudyState.DEFECT.value
    row.defect_category = category.value
    row.reason = reason


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def _prop(p: Proportion) -> dict[str, Any]:
    return {"estimate": _num(p.estimate), "lower": _num(p.lower), "upper": _num(p.upper),
            "successes": p.successes, "total": p.total}


def summarize(result: ValidationResult, gate: GateResult) -> dict[str, Any]:
    """The run's summary metrics as JSON-ready data (NaN as null)."""
    findings = []
    for f in result.findings:
        entry: dict[str, Any] = {"code": f.spec.code, "meaning": f.spec.meaning,
                                 "threshold": f.spec.threshold, "n_positive": f.labels.n_positive,
                                 "n_negative": f.labels.n_negative, "n_uncertain": f.labels.n_uncertain,
                                 "not_computable": f.not_computable}
        if f.metrics is not None:
            m, op = f.metrics, f.metrics.at_operating_point
            entry.update({
                "auc": _num(m.auc.auc), "auc_lower": _num(m.auc.lower), "auc_upper": _num(m.auc.upper),
                "average_precision": _num(m.average_precision), "brier": _num(m.brier),
                "sensitivity": _prop(op.sensitivity), "specificity": _prop(op.specificity),
                "ppv": _prop(op.ppv), "npv": _prop(op.npv),
                "youden_threshold": _num(m.at_youden.threshold),
            })
        findings.append(entry)
    return {
        "n_studies": result.n_studies, "n_processed": result.n_processed,
        "n_defects": len(result.defects.defects), "defect_rate": _prop(result.defects.rate),
        "level": result.level, "findings": findings,
        "gate": {"passed": gate.passed, "reasons": list(gate.reasons),
                 "checks": [{"scope": c.scope, "criterion": c.criterion, "observed": _num(c.observed),
                             "comparison": c.comparison, "required": c.required, "passed": c.passed}
                            for c in gate.checks]},
    }


def finish_run(session: Session, *, run: ValidationRun, result: ValidationResult, gate: GateResult,
               report_html: str, report_path: str | None) -> ValidationRun:
    """Record the verdict, summary and report of a run."""
    run.state = RunState.DONE.value
    run.finished_at = utcnow()
    run.n_processed = result.n_processed
    run.n_defects = len(result.defects.defects)
    run.gate_passed = gate.passed
    run.gate_reasons = json.dumps(list(gate.reasons))
    run.summary = json.dumps(summarize(result, gate), sort_keys=True)
    run.report_html = report_html
    run.report_path = report_path
    session.flush()
    return run


def fail_run(session: Session, *, run_id: int, error: str) -> None:
    """Mark a run failed (it has no verdict)."""
    run = session.get(ValidationRun, run_id)
    if run is not None:
        run.state = RunState.FAILED.value
        run.finished_at = utcnow()
        run.error = error[:2000]


def list_runs(session: Session, *, model_id: str | None = None, dataset: str | None = None,
              limit: int = 100, offset: int = 0) -> tuple[list[ValidationRun], int]:
    """Runs, newest first, and how many match."""
    q = select(ValidationRun)
    if model_id is not None:
        q = q.where(ValidationRun.model_id == model_id)
    if dataset is not None:
        q = q.where(ValidationRun.dataset_name == dataset)
    total = int(session.scalar(select(func.count()).select_from(q.subquery())) or 0)
    return list(session.scalars(q.order_by(ValidationRun.id.desc()).limit(limit).offset(offset))), total


def get_run(session: Session, *, run_id: int) -> ValidationRun:
    """One run; RunNotFound otherwise."""
    run = session.get(ValidationRun, run_id)
    if run is None:
        raise RunNotFound(f"no validation run {run_id}")
    return run
