"""Making a finished task's DICOM objects and storing them: the result worker.

When a task ends, :func:`on_task_ended` (a task listener in the task's own transaction,
radai.inference.events) records a pending :class:`~radai.results.models.ResultSet` with
its JSON summary, so that every ended task gets exactly one result, also across crashes.
The :class:`ResultWorker` thread then claims pending results and, for each:

1. reads what it needs: the images carrying the findings (the task's inputs the
   findings point to), their heatmaps, the model's identity and package folder;
2. writes the SR (findings or technical defect), one Secondary Capture per source image
   and, for a model with ``segmentation.yaml``, a DICOM SEG (pure writers);
3. stores each in the archive with source "result" (idempotent by SOP Instance UID; such
   instances are never model inputs and a study change made only of them routes nothing,
   radai.routing.service), and
4. records the objects and queues them for every destination that takes their type.

A failure to make a marked-up image or a segmentation is noted and does not hold the SR
back; any other failure is retried with backoff.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from radai.archive.models import Instance, Series
from radai.archive.parse import Rejection
from radai.archive.service import Archive
from radai.background import PollingThread
from radai.db import Database
from radai.imaging import PixelError, model_frame
from radai.inference.events import Phase, TaskEvent, TaskEventHub
from radai.inference.heatmaps import load_heatmap
from radai.inference.models import Finding, InferenceTask, TaskState
from radai.logs import uid_ref
from radai.models.api import DefectCategory
from radai.models.models import ModelVersion
from radai.results.common import Algorithm, to_part10
from radai.results.inputs import Heatmap, SegmentMask, SourceImage
from radai.results.metrics import ResultsMetrics
from radai.results.models import ResultSet
from radai.results.sc import CaptureTooLargeError, heatmap_captures
from radai.results.seg import segmentations
from radai.results.segmentation import SegmentationError, load_segmentation_spec
from radai.results.service import (
    RESULT_SOURCE,
    ResultClaim,
    StoredObject,
    algorithm_of,
    claim_results,
    enqueue_result,
    fail_result,
    finding_score,
    record_objects,
    release_result,
)
from radai.results.settings import ResultsSettings
from radai.results.sr import defect_report, measurement_report
from radai.results.summary import conclusion_text

log = logging.getLogger(__name__)

#: A defect SR lists at most this many instances of the study as evidence.
DEFECT_EVIDENCE_LIMIT = 64
#: Production is retried this many times before the result is marked failed.
MAX_PRODUCTION_ATTEMPTS = 5
#: Errors whose messages radai wrote itself (no patient data): kept in ``last_error``.
_OWN_ERRORS = (PixelError, CaptureTooLargeError, SegmentationError, Rejection)


def on_task_ended(session: Session, event: TaskEvent) -> None:
    """Task listener (in-transaction phase): queue the result of an ended task."""
    if event.state in (TaskState.DONE.value, TaskState.DEFECT.value):
        enqueue_result(session, event)


def describe_error(exc: BaseException) -> str:
    """A log- and table-safe description of an exception (its text only when radai wrote it)."""
    if isinstance(exc, Rejection):
        return f"Rejection: {exc.message}"
    if isinstance(exc, _OWN_ERRORS):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


@dataclass
class ProductionInputs:
    """Everything the writers need for one result, read from the archive and the index."""

    algorithm: Algorithm
    status: str
    sources: list[SourceImage] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    heatmaps: list[Heatmap] = field(default_factory=list)
    masks: list[SegmentMask] = field(default_factory=list)
    defect_category: DefectCategory | None = None
    defect_reason: str = ""


@dataclass(frozen=True)
class Produced:
    """The objects made for one result, and what could not be made."""

    objects: list[tuple[str, Dataset]]
    notes: list[str]


class ResultWorker(PollingThread):
    """Makes and stores result objects in a background thread (component ``results``)."""

    name = "results"
    thread_name = "radai-results"

    def __init__(self, *, db: Database, archive: Archive, settings: ResultsSettings, data_dir: Path,
                 events: TaskEventHub | None = None,
                 on_ready: Callable[[], None] | None = None,
                 metrics: ResultsMetrics | None = None) -> None:
        self.db = db
        self.metrics = metrics
        self.archive = archive
        self.settings = settings
        self.data_dir = data_dir
        self._on_ready = on_ready
        super().__init__(settings.poll_seconds)
        if events is not None:
            # Registered at construction: before the executor starts, no task ends unheard.
            events.add_task_listener(on_task_ended, phase=Phase.IN_TRANSACTION)
            events.add_task_listener(lambda _event: self.wake(), phase=Phase.AFTER_COMMIT)

    def run_once(self, limit: int = 4) -> int:
        """Make the objects of up to ``limit`` due results; returns how many were claimed."""
        claims = claim_results(self.db, limit=limit, lease_seconds=self.settings.lease_seconds)
        for i, claim in enumerate(claims):
            if self._stop.is_set():
                for rest in claims[i:]:
                    release_result(self.db, claim=rest)
                break
            self._produce(claim)
        if claims and self._on_ready is not None:
            self._on_ready()
        return len(claims)

    def _produce(self, claim: ResultClaim) -> None:
        try:
            with self.db.session() as s:
                inputs = self.gather(s, claim.result_id)
            produced = produce_objects(inputs, self.settings)
            stored = [self._store(kind, ds) for kind, ds in produced.objects]
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
            why = describe_error(exc)
            log.warning("result %d (task %d) could not be made: %s", claim.result_id, claim.task_id, why)
            if self.metrics is not None:
                self.metrics.production_failures.inc()
            with self.db.transaction() as s:
                fail_result(s, claim=claim, error=why, max_attempts=MAX_PRODUCTION_ATTEMPTS,
                            retry_base_seconds=self.settings.retry_base_seconds,
                            retry_max_seconds=self.settings.retry_max_seconds)
            return
        with self.db.transaction() as s:
            recorded = record_objects(s, claim=claim, objects=stored,
                                      destinations=self.settings.destinations,
                                      note="; ".join(produced.notes))
        if recorded and self.metrics is not None:
            for obj in stored:
                self.metrics.objects.labels(kind=obj.kind).inc()
        if recorded:
            log.info("result %d (task %d): %d object(s) stored", claim.result_id, claim.task_id, len(stored))

    def _store(self, kind: str, ds: Dataset) -> StoredObject:
        outcome = self.archive.store(to_part10(ds), source=RESULT_SOURCE)
        return StoredObject(kind=kind, sop_class_uid=outcome.sop_class_uid,
                            sop_instance_uid=outcome.sop_instance_uid,
                            series_instance_uid=outcome.series_instance_uid)

    def gather(self, session: Session, result_id: int) -> ProductionInputs:
        """Read what the writers need for one result set."""
        row = session.get(ResultSet, result_id)
        if row is None:
            raise LookupError(f"no result {result_id}")
        task = session.get(InferenceTask, row.task_pk)
        if task is None:
            raise LookupError(f"no task {row.task_pk}")
        algorithm = algorithm_of(session, model_id=task.model_id, model_version=task.model_version)
        inputs = ProductionInputs(algorithm=algorithm, status=row.status)
        if row.status == "defect":
            return self._defect_inputs(session, task, inputs)
        inputs.findings = list(session.scalars(select(Finding).where(Finding.task_pk == task.id)
                                               .order_by(Finding.id)))
        carriers = list(dict.fromkeys(f.sop_instance_uid for f in inputs.findings if f.sop_instance_uid))
        package = session.execute(select(ModelVersion.source, ModelVersion.manifest).where(
            ModelVersion.model_id == task.model_id, ModelVersion.version == task.model_version)).first()
        frames_rule = _frames_rule(package[1]) if package is not None else "first"
        inputs.sources = [self._source(session, uid, pixels=True, frames_rule=frames_rule)
                          for uid in carriers]
        spec = load_segmentation_spec(Path(package[0])) if package is not None else None
        for f in inputs.findings:
            if not f.heatmap_path or f.sop_instance_uid not in carriers:
                continue
            values = load_heatmap(self.data_dir, f.heatmap_path)
            score = finding_score(f)
            index = carriers.index(f.sop_instance_uid)
            segment = spec.for_finding(score.code) if spec is not None else None
            if segment is not None:
                inputs.masks.append(SegmentMask(
                    input_index=index, code=score.code, label=f.label,
                    mask=(values >= segment.threshold).astype(np.float32),
                    category=segment.category.to_code()))
            else:
                inputs.heatmaps.append(Heatmap(index, values, score.code))
        return inputs

    def _defect_inputs(self, session: Session, task: InferenceTask,
                       inputs: ProductionInputs) -> ProductionInputs:
        inputs.defect_category = DefectCategory(task.defect_category or DefectCategory.MODEL_ERROR.value)
        inputs.defect_reason = task.reason
        q = (select(Instance.sop_instance_uid).join(Series, Instance.series_pk == Series.id)
             .where(Series.study_pk == task.study_pk, Instance.source != RESULT_SOURCE)
             .order_by(Series.series_number, Series.id, Instance.instance_number, Instance.id)
             .limit(DEFECT_EVIDENCE_LIMIT))
        if task.series_pk is not None:
            q = q.where(Series.id == task.series_pk)
        inputs.sources = [self._source(session, uid, pixels=False) for uid in session.scalars(q)]
        return inputs

    def _source(self, session: Session, sop_instance_uid: str, *, pixels: bool,
                frames_rule: str = "first") -> SourceImage:
        row = session.execute(select(Instance.path, Instance.size_bytes).where(
            Instance.sop_instance_uid == sop_instance_uid)).first()
        if row is None:
            raise LookupError(f"source instance {uid_ref(sop_instance_uid)} is not in the archive")
        ds = dcmread(self.archive.storage.path(row[0]), stop_before_pixels=not pixels)
        # The frame the model read, chosen as radai.models.preprocess chooses it.
        return SourceImage(ds, int(row[1]), model_frame(ds, frames_rule))


def _frames_rule(manifest_json: str) -> str:
    """The manifest's ``input.frames`` (first, middle or all)."""
    try:
        return str(json.loads(manifest_json)["input"]["frames"])
    except (ValueError, KeyError, TypeError):
        return "first"


def produce_objects(inputs: ProductionInputs, settings: ResultsSettings) -> Produced:
    """Write the result objects (pure: no database, no archive); see the module docstring."""
    notes: list[str] = []
    headers = [s.dataset for s in inputs.sources]
    if inputs.status == "defect" or not inputs.findings:
        category = inputs.defect_category or DefectCategory.MODEL_ERROR
        reason = inputs.defect_reason or "the model reported no finding"
        return Produced([("sr", defect_report(sources=headers, algorithm=inputs.algorithm,
                                              category=category, reason=reason))], notes)
    scores = [finding_score(f) for f in inputs.findings]
    objects: list[tuple[str, Dataset]] = []
    if "sr" in settings.make:
        objects.append(("sr", measurement_report(sources=headers, algorithm=inputs.algorithm,
                                                 findings=scores, conclusion=conclusion_text(scores))))
    if "sc" in settings.make:
        try:
            objects += [("sc", ds) for ds in heatmap_captures(
                sources=inputs.sources, algorithm=inputs.algorithm, findings=scores,
                heatmaps=inputs.heatmaps, opacity=settings.heatmap_opacity)]
        except (PixelError, CaptureTooLargeError, ValueError) as exc:
            notes.append(f"no marked-up image: {describe_error(exc)}")
    if "seg" in settings.make and inputs.masks:
        try:
            objects += [("seg", ds) for ds in segmentations(
                sources=inputs.sources, algorithm=inputs.algorithm, masks=inputs.masks)]
        except ValueError as exc:
            notes.append(f"no segmentation: {describe_error(exc)}")
    return Produced(objects, notes)

