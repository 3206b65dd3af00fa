"""Running a batch of tasks of one model: select → prepare → infer (batched) → score → explain.

The steps follow the LoadedModel contract (radai.models.api). Inputs of several tasks
are stacked and run through :meth:`LoadedModel.infer` in batches of at most
``max_batch_size`` rows, so one forward pass serves several studies; each task then
scores its own rows. A failure of one task's selection or preparation affects that
task only; a failure of a forward pass affects the tasks whose rows were in it.
Nothing here writes to the database: the executor records the outcomes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import select
from sqlalchemy.orm import Session

from radai.archive.models import Instance, Series
from radai.archive.storage import FileStorage
from radai.inference.heatmaps import heatmap_relative_path, save_heatmap
from radai.inference.service import Claim, FindingRecord, TaskResult
from radai.models.api import DefectCategory, FindingScore, InstanceRef, LoadedModel, ModelDefect

log = logging.getLogger(__name__)

#: Instances radai made itself are never model inputs.
RESULT_SOURCE = "result"


@dataclass(frozen=True)
class StoredInput:
    """A candidate input image: what selection sees, and where its file is."""

    ref: InstanceRef
    relative_path: str
    series_pk: int


def task_candidates(session: Session, *, study_pk: int, series_pk: int | None) -> list[StoredInput]:
    """The images a task may take: its study's (or series') stored instances, results excluded."""
    q = (select(Instance.sop_instance_uid, Instance.sop_class_uid, Series.series_instance_uid,
                Series.modality, Series.body_part_examined, Series.view_position,
                Series.series_description, Instance.rows, Instance.columns,
                Instance.number_of_frames, Instance.path, Series.id)
         .join(Series, Instance.series_pk == Series.id)
         .where(Series.study_pk == study_pk, Instance.source != RESULT_SOURCE)
         .order_by(Series.series_number, Series.id, Instance.instance_number, Instance.id))
    if series_pk is not None:
        q = q.where(Series.id == series_pk)
    return [StoredInput(InstanceRef(*row[:10]), row[10], row[11]) for row in session.execute(q)]


@dataclass
class TaskWork:
    """One claimed task going through the pipeline."""

    claim: Claim
    selected: list[StoredInput] = field(default_factory=list)
    inputs: np.ndarray | None = None
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    batch_size: int = 0
    batch_tasks: int = 0
    rows: np.ndarray | None = None
    failure: ModelDefect | None = None
    result: TaskResult | None = None


def select_inputs(model: LoadedModel, work: TaskWork, candidates: list[StoredInput]) -> None:
    """Let the model choose its inputs among ``candidates`` (no file is read)."""
    by_uid = {c.ref.sop_instance_uid: c for c in candidates}
    try:
        chosen = model.select([c.ref for c in candidates])
    except ModelDefect as defect:
        work.failure = defect
        return
    except Exception as exc:  # noqa: BLE001 - a model's own code may raise anything
        work.failure = _model_error("selection", exc)
        return
    work.selected = [by_uid[r.sop_instance_uid] for r in chosen if r.sop_instance_uid in by_uid]
    if not work.selected:
        work.failure = ModelDefect(DefectCategory.INPUT_NOT_SUITED, "the model selected no image")


def _model_error(step: str, exc: BaseException) -> ModelDefect:
    # The exception's text may quote dataset values; only its type is kept.
    return ModelDefect(DefectCategory.MODEL_ERROR, f"the model failed in {step} ({type(exc).__name__})")


def prepare_inputs(model: LoadedModel, work: TaskWork, storage: FileStorage) -> None:
    """Read the selected images and turn them into input arrays (the pixel pipeline)."""
    started = time.perf_counter()
    arrays = []
    try:
        for item in work.selected:
            try:
                ds = dcmread(storage.path(item.relative_path))
            except InvalidDicomError:
                raise ModelDefect(DefectCategory.INPUT_NOT_SUITED,
                                  "an input image is not a readable DICOM file") from None
            except OSError as exc:
                raise ModelDefect(DefectCategory.SERVICE_UNAVAILABLE,
                                  f"an input file cannot be read ({type(exc).__name__})",
                                  retryable=True) from None
            arrays.append(np.asarray(model.prepare(ds), dtype=np.float32))
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ModelDefect(DefectCategory.MODEL_ERROR, "prepared inputs differ in shape")
        work.inputs = np.stack(arrays)
    except ModelDefect as defect:
        work.failure = defect
    except Exception as exc:  # noqa: BLE001 - a model's own code may raise anything
        work.failure = _model_error("preparation", exc)
    work.preprocess_ms = (time.perf_counter() - started) * 1000.0


def infer_batched(model: LoadedModel, works: list[TaskWork], max_batch_size: int) -> list[int]:
    """Run the inputs of ``works`` (already prepared) in shared batches; returns batch sizes.

    Rows of several tasks go into one call of ``infer`` (at most ``max_batch_size``
    rows); each task gets its output rows back, the size of the largest batch it was
    in, the number of tasks in that batch and the time of the batches it was in.
    """
    ready = [w for w in works if w.failure is None and w.inputs is not None]
    if not ready:
        return []
    arrays = [w.inputs for w in ready if w.inputs is not None]
    owners = np.concatenate([np.full(len(a), i) for i, a in enumerate(arrays)])
    stacked = np.concatenate(arrays)
    outputs: list[np.ndarray | None] = [None] * len(stacked)
    sizes = []
    for start in range(0, len(stacked), max_batch_size):
        chunk = slice(start, min(start + max_batch_size, len(stacked)))
        members = sorted(set(owners[chunk].tolist()))
        began = time.perf_counter()
        try:
            out = np.asarray(model.infer(stacked[chunk]))
            expected = chunk.stop - chunk.start
            if out.shape[0] != expected:
                raise ModelDefect(DefectCategory.MODEL_ERROR,
                                  f"the model returned {out.shape[0]} rows for {expected} inputs")
        except ModelDefect as defect:
            for m in members:
                ready[m].failure = ready[m].failure or defect
            continue
        except Exception as exc:  # noqa: BLE001 - a model's own code may raise anything
            for m in members:
                ready[m].failure = ready[m].failure or _model_error("inference", exc)
            continue
        elapsed = (time.perf_counter() - began) * 1000.0
        sizes.append(chunk.stop - chunk.start)
        for m in members:
            w = ready[m]
            w.inference_ms += elapsed
            if chunk.stop - chunk.start > w.batch_size:
                w.batch_size, w.batch_tasks = chunk.stop - chunk.start, len(members)
        for k in range(chunk.start, chunk.stop):
            outputs[k] = out[k - chunk.start]
    offset = 0
    for w, a in zip(ready, arrays, strict=True):
        mine = outputs[offset:offset + len(a)]
        offset += len(a)
        if w.failure is None:
            w.rows = np.stack([r for r in mine if r is not None])
    return sizes


def score_and_explain(model: LoadedModel, work: TaskWork, *, data_dir: Path, heatmaps: bool) -> None:
    """Turn a task's output rows into findings, with a heatmap per positive finding."""
    if work.failure is not None or work.rows is None or work.inputs is None:
        return
    try:
        scores = model.score(work.rows)
    except ModelDefect as defect:
        work.failure = defect
        return
    except Exception as exc:  # noqa: BLE001 - a model's own code may raise anything
        work.failure = _model_error("scoring", exc)
        return
    records = []
    for score in scores:
        index = min(max(score.input_index, 0), len(work.selected) - 1)
        carrier = work.selected[index]
        path = None
        if heatmaps and score.positive:
            path = _heatmap(model, work, score, data_dir)
        records.append(FindingRecord(score, carrier.ref.sop_instance_uid, carrier.series_pk, path))
    work.result = TaskResult(
        findings=records, input_count=len(work.selected), batch_size=work.batch_size,
        batch_tasks=work.batch_tasks, preprocess_ms=work.preprocess_ms,
        inference_ms=work.inference_ms)


def _heatmap(model: LoadedModel, work: TaskWork, score: FindingScore, data_dir: Path) -> str | None:
    assert work.inputs is not None
    try:
        heatmap = np.asarray(model.explain(work.inputs, score), dtype=np.float32)
        rel = heatmap_relative_path(task_key=work.claim.key, code_scheme=score.code.scheme,
                                    code_value=score.code.value)
        save_heatmap(data_dir, rel, heatmap)
    except Exception as exc:  # noqa: BLE001 - a missing heatmap does not void the finding
        log.warning("no heatmap for finding %s of task %d (%s)", score.code.value,
                    work.claim.task_id, type(exc).__name__)
        return None
    return rel

