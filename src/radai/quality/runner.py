"""Running a validation run (calibration test) through radai's own task pipeline.

:func:`run_validation` tests one model version on one frozen dataset version:

1. It checks the model (any lifecycle state but retired may be validated; clinical
   routing still sends studies to LIVE versions only) and the dataset version (frozen),
   and resolves the gate thresholds: command line over the model package's
   ``claimed_metrics.acceptance`` over the ``[quality.gate]`` defaults.
2. It checks every study of the version against its manifest (the SHA-256 of every
   stored file); a study the archive no longer holds as frozen is not run and becomes a
   technical defect (input not suited), so it is counted and listed, never dropped.
3. It records the run and one validation task per remaining study (radai.inference,
   purpose ``validation``) and runs them in this process with a
   :class:`~radai.inference.executor.LocalExecutor` that takes only this run's tasks —
   the same claims, leases, batching, retries and defects as clinical tasks. A
   ``radai serve`` on the same database may take some of them too; with
   ``inference.enabled = false`` the command starts no executor of its own and waits
   for the server's.
4. It waits until every task is done or a defect, or until the time limit; a task
   still unfinished then is a technical defect (service unavailable).
5. It computes the metrics (radai.quality.validation) from the dataset's labels and
   the findings of the tasks, applies the gate, renders the HTML report, and stores
   the run with its per-study scores. A passing run may promote a draft model to
   ``validated`` (``promote``), with the reason "validation run N passed".

Validation tasks make no result objects, deliveries or worklist entries
(radai.inference.events), and their findings stay out of studies' clinical findings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radai.datasets.manifest import load_manifest
from radai.datasets.models import DatasetVersion
from radai.datasets.service import DatasetError, DatasetNotFound, content_problem, get_version, latest_frozen
from radai.inference.executor import LocalExecutor
from radai.models.manifest import LifecycleState
from radai.models.registry import ModelNotFound, ModelRecord, RegistryError
from radai.quality.gate import GateResult, evaluate_gate
from radai.quality.inputs import Truth
from radai.quality.report import DatasetInfo, ModelInfo, render_report
from radai.quality.service import (
    PlannedStudy,
    ValidationError,
    create_run,
    fail_run,
    finding_code,
    finding_specs,
    finish_run,
    gather,
    get_run,
    manifest_thresholds,
    run_progress,
)
from radai.quality.settings import GateThresholds, resolve_thresholds
from radai.quality.validation import ValidationResult, evaluate_validation

if TYPE_CHECKING:
    from radai.app import Radai

#: How often the run's progress is read while waiting.
_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class RunOutcome:
    """A finished validation run."""

    run_id: int
    model_ref: str
    dataset_ref: str
    manifest_sha256: str
    result: ValidationResult
    gate: GateResult
    thresholds: GateThresholds
    report_html: str
    report_path: Path | None
    promoted: bool
    #: Why a requested promotion did not happen ("" when it did or was not asked for).
    promotion_note: str

    @property
    def passed(self) -> bool:
        """Whether the gate passed."""
        return self.gate.passed


def run_validation(radai: Radai, *, model_id: str, model_version: str | None, dataset: str,
                   dataset_version: int | None, actor: str, report_path: Path | None = None,
                   thresholds: Mapping[str, Any] | None = None, promote: bool = False,
                   timeout_seconds: float = 3600.0,
                   on_progress: Callable[[int, int], None] | None = None) -> RunOutcome:
    """Run ``model_id[@model_version]`` on ``dataset[@dataset_version]`` (see the module docstring).

    The newest registered model version and the newest frozen dataset version are taken
    when no version is given. Raises :class:`ValidationError` when the run cannot be made.
    """
    record = _model(radai, model_id, model_version)
    gate_thresholds = _thresholds(radai, record, thresholds)
    with radai.db.session() as s:
        try:
            version = (get_version(s, name=dataset, number=dataset_version)
                       if dataset_version is not None else latest_frozen(s, name=dataset))
        except (DatasetNotFound, DatasetError) as exc:
            raise ValidationError(str(exc).strip("'\"")) from None
        if not version.frozen:
            raise ValidationError(f"{dataset}@{version.number} is a draft: "
                                  "only frozen versions are validated on")
        manifest = load_manifest(version)
        version_pk, manifest_sha = version.id, version.manifest_sha256 or ""
        planned = [PlannedStudy(st["key"], st["study_instance_uid"], st["subgroups"],
                                content_problem(s, storage=radai.storage, study=st))
                   for st in manifest["studies"]]
    labelled = {finding_code(f["scheme"], f["value"]) for f in manifest["findings"]}
    specs = [f for f in finding_specs(record.manifest) if f.code in labelled]
    if not specs:
        raise ValidationError(f"{dataset}@{manifest['version']} labels none of the findings of {record.ref}")
    with radai.db.transaction() as s:
        version_row = s.get(DatasetVersion, version_pk)
        assert version_row is not None
        run_id = create_run(s, record=record, version=version_row, studies=planned,
                            thresholds=gate_thresholds, level=radai.settings.quality.confidence_level,
                            actor=actor).id
    try:
        unfinished = _execute(radai, run_id, timeout_seconds, on_progress)
        labels = {st["key"]: {finding_code(lab["scheme"], lab["value"]): Truth(lab["label"])
                              for lab in st["labels"]} for st in manifest["studies"]}
        with radai.db.transaction() as s:
            gathered = gather(s, run=get_run(s, run_id=run_id), specs=specs, labels=labels,
                              unfinished_reason=unfinished)
        result = evaluate_validation(findings=specs, outcomes=gathered.outcomes, defects=gathered.defects,
                                     level=radai.settings.quality.confidence_level,
                                     calibration_bins=radai.settings.quality.calibration_bins)
        gate = evaluate_gate(result, gate_thresholds)
        html = render_report(
            model=ModelInfo(record.model_id, record.version, record.manifest.vendor, record.manifest.licence),
            dataset=DatasetInfo(dataset, str(manifest["version"]), manifest_sha),
            result=result, gate=gate, thresholds=gate_thresholds)
        if report_path is not None:
            _write_atomically(report_path, html)
        with radai.db.transaction() as s:
            finish_run(s, run=get_run(s, run_id=run_id), result=result, gate=gate, report_html=html,
                       report_path=str(report_path.resolve()) if report_path is not None else None)
    except BaseException as exc:
        with radai.db.transaction() as s:
            fail_run(s, run_id=run_id, error=type(exc).__name__)
        raise
    promoted, note = _promote(radai, record, run_id, gate.passed, actor) if promote else (False, "")
    return RunOutcome(run_id=run_id, model_ref=record.ref, dataset_ref=f"{dataset}@{manifest['version']}",
                      manifest_sha256=manifest_sha, result=result, gate=gate, thresholds=gate_thresholds,
                      report_html=html, report_path=report_path, promoted=promoted, promotion_note=note)


def _model(radai: Radai, model_id: str, version: str | None) -> ModelRecord:
    try:
        record = radai.models.get(model_id, version)
    except ModelNotFound as exc:
        raise ValidationError(str(exc).strip("'\"")) from None
    if record.state is LifecycleState.RETIRED:
        raise ValidationError(f"model {record.ref} is retired; retired versions are not validated")
    return record


def _thresholds(radai: Radai, record: ModelRecord, given: Mapping[str, Any] | None) -> GateThresholds:
    try:
        return resolve_thresholds(radai.settings.quality.gate, manifest_thresholds(record.manifest), given)
    except ValidationError:
        raise
    except ValueError as exc:
        raise ValidationError(f"invalid gate thresholds: {exc}") from None


def _execute(radai: Radai, run_id: int, timeout_seconds: float,
             on_progress: Callable[[int, int], None] | None) -> str:
    """Run the run's tasks until all ended or time is up; returns the reason for unfinished ones."""
    settings = radai.settings
    executor = LocalExecutor(db=radai.db, storage=radai.storage, registry=radai.models,
                             settings=settings.inference, data_dir=settings.data_dir,
                             events=radai.task_events, validation_run_id=run_id)
    executor.start()
    executor.wake()
    deadline = time.monotonic() + timeout_seconds
    try:
        while True:
            with radai.db.session() as s:
                ended, total = run_progress(s, run_id=run_id)
            if on_progress is not None:
                on_progress(ended, total)
            if ended >= total or time.monotonic() >= deadline:
                break
            time.sleep(_POLL_SECONDS)
    finally:
        executor.stop()
    return f"no result within the validation run's time limit of {timeout_seconds:g} s"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _promote(radai: Radai, record: ModelRecord, run_id: int, passed: bool, actor: str) -> tuple[bool, str]:
    """Move a draft model to validated after a passing run; the note says why not otherwise."""
    if not passed:
        return False, "not promoted: the run did not pass"
    current = radai.models.get(record.model_id, record.version)
    if current.state is not LifecycleState.DRAFT:
        return False, f"not promoted: the model is {current.state.value}, not draft"
    try:
        radai.models.set_state(record.model_id, record.version, LifecycleState.VALIDATED,
                               reason=f"validation run {run_id} passed", actor=actor)
    except RegistryError as exc:
        return False, f"not promoted: {exc}"
    with radai.db.transaction() as s:
        get_run(s, run_id=run_id).promoted = True
    return True, ""


def summary_findings(summary: str) -> list[dict[str, Any]]:
    """The per-finding entries of a stored run summary."""
    data: dict[str, Any] = json.loads(summary)
    findings: list[dict[str, Any]] = data.get("findings", [])
    return findings
