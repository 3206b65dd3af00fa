"""Executors: what runs the tasks. The local executor is a worker pool inside ``radai serve``.

:class:`LocalExecutor` (``inference.executor = "local"``):

- A dispatcher thread looks every ``poll_seconds`` for due tasks (one read query) and
  hands each model version with due work to its pool.
- Each model version has a pool of ``resources.concurrency`` worker threads (from its
  manifest). A worker claims due tasks (atomically, with a lease), loads the model
  (cached by the registry), lets the model select each task's inputs, and keeps
  claiming until it holds ``resources.max_batch_size`` inputs or
  ``resources.batch_timeout_ms`` have passed. The inputs of all those tasks then run
  through the model together (radai.inference.pipeline), in a separate thread that the
  worker waits for at most ``resources.timeout_seconds``; past that, the tasks fail with
  ``service_unavailable`` (the late thread's work is discarded by the lease check).
- A heartbeat thread renews the leases of every task it holds every third of
  ``lease_seconds``, so long runs keep their tasks, and a killed process's tasks are
  claimed again once their leases expire.
- Outcomes are written one task per transaction: done with its findings, or a failed
  attempt (retried with exponential backoff), or a defect; task listeners
  (radai.inference.events) run in that transaction and after its commit.
- ``stop`` gives running batches ``shutdown_grace_seconds`` to finish, then hands
  their tasks back (pending again, the attempt not counted).

An executor built with ``validation_run_id`` (``radai validate``) claims only the tasks of
that validation run and leaves every other task to the server's executor. Validation
tasks get no heatmaps: nobody looks at them, and they cost forward passes.

Workers never run in DIMSE or HTTP threads, and nothing is loaded before a task needs it.
Another executor kind (a Ray cluster) would claim and record tasks through the same
service functions; :func:`build_executor` is where it would be chosen.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from radai.archive.storage import FileStorage
from radai.config import ConfigError
from radai.db import Database
from radai.inference.events import TaskEvent, TaskEventHub
from radai.inference.metrics import InferenceMetrics
from radai.inference.models import InferenceTask, TaskPurpose, TaskState
from radai.inference.pipeline import (
    TaskWork,
    infer_batched,
    prepare_inputs,
    score_and_explain,
    select_inputs,
    task_candidates,
)
from radai.inference.service import (
    Claim,
    TaskResult,
    claim_tasks,
    complete_task,
    due_models,
    fail_task,
    release_task,
    renew_leases,
)
from radai.inference.settings import ExecutorKind, InferenceSettings
from radai.logs import uid_ref
from radai.models.api import DefectCategory, LoadedModel, ModelDefect
from radai.models.manifest import Resources
from radai.models.registry import ModelNotFound, ModelRegistry

if TYPE_CHECKING:
    from radai.app import Radai

log = logging.getLogger(__name__)


class Executor(Protocol):
    """Runs tasks while radai serves (a :class:`radai.app.Component`)."""

    name: str
    kind: ExecutorKind

    def start(self) -> None:
        """Start taking tasks."""

    def stop(self) -> None:
        """Stop taking tasks; hand back the ones it cannot finish."""

    def wake(self) -> None:
        """Look for due tasks now rather than at the next poll."""


def build_executor(radai: Radai) -> Executor:
    """The executor the settings choose (``inference.executor``)."""
    settings = radai.settings.inference
    kind = ExecutorKind(settings.executor)
    if kind is not ExecutorKind.LOCAL:
        raise ConfigError(f"invalid setting inference.executor: {kind.value!r} is not "
                          "available in this version; use 'local'")
    return LocalExecutor(db=radai.db, storage=radai.storage, registry=radai.models,
                         settings=settings, data_dir=radai.settings.data_dir,
                         events=radai.task_events,
                         metrics=InferenceMetrics.on(radai.metrics.registry))


def default_worker_id() -> str:
    """``host:pid:random``, naming the lease holder in task rows."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class _Outcome:
    claim: Claim
    result: TaskResult | None
    failure: ModelDefect | None


class LocalExecutor:
    """The in-process worker pool; see the module docstring."""

    name = "inference"
    kind = ExecutorKind.LOCAL

    def __init__(self, *, db: Database, storage: FileStorage, registry: ModelRegistry,
                 settings: InferenceSettings, data_dir: Path, events: TaskEventHub,
                 metrics: InferenceMetrics | None = None, worker_id: str | None = None,
                 validation_run_id: int | None = None) -> None:
        self.db = db
        self.storage = storage
        self.registry = registry
        self.settings = settings
        self.data_dir = data_dir
        self.events = events
        self.metrics = metrics
        self.worker_id = (worker_id or default_worker_id())[:64]
        #: Only this validation run's tasks are taken (None: every task).
        self.validation_run_id = validation_run_id
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._stop_deadline: float | None = None
        self._pools: dict[tuple[str, str], _ModelPool] = {}
        self._held: dict[str, Claim] = {}
        self._held_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher and heartbeat threads (nothing when inference is disabled)."""
        if not self.settings.enabled or self._threads:
            return
        self._stop.clear()
        self._stop_deadline = None
        for target, name in ((self._dispatch_loop, "radai-inference-dispatch"),
                             (self._heartbeat_loop, "radai-inference-leases")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("inference executor %s started (worker %s)", self.kind.value, self.worker_id)

    def stop(self) -> None:
        """Let running batches finish within the grace time, then hand back what is left."""
        self._stop_deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        self._stop.set()
        self._wake.set()
        for pool in list(self._pools.values()):
            pool.wake_all()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        for pool in list(self._pools.values()):
            pool.join(self.settings.shutdown_grace_seconds + 5.0)
        self._pools.clear()
        with self._held_lock:
            left = list(self._held.values())
            self._held.clear()
        for claim in left:
            try:
                release_task(self.db, claim=claim)
            except Exception:
                log.exception("could not hand back task %d; its lease will expire", claim.task_id)

    def wake(self) -> None:
        """Look for due tasks now."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    # --- dispatching ----------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.dispatch_once()
            except Exception:
                log.exception("looking for due tasks failed")
            self._wake.wait(self.settings.poll_seconds)
            self._wake.clear()

    def dispatch_once(self) -> None:
        """Tell every model version's pool how many of its tasks are due."""
        with self.db.session() as s:
            due = due_models(s, validation_run_id=self.validation_run_id)
        for key, count in due.items():
            if self._stop.is_set():
                return
            self._pool(key).offer(count)

    def _pool(self, key: tuple[str, str]) -> _ModelPool:
        pool = self._pools.get(key)
        if pool is None:
            try:
                resources = self.registry.get(*key).manifest.resources
            except ModelNotFound:
                # Its tasks are claimed and fail as "service unavailable" (not registered).
                resources = Resources()
            pool = _ModelPool(self, key[0], key[1], resources)
            self._pools[key] = pool
            pool.start()
        return pool

    # --- leases ---------------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        interval = self.settings.lease_seconds / 3.0
        while not self._stop.wait(interval):
            with self._held_lock:
                tokens = list(self._held)
            if not tokens:
                continue
            try:
                held = renew_leases(self.db, tokens=tokens, lease_seconds=self.settings.lease_seconds)
            except Exception:
                log.exception("renewing task leases failed")
                continue
            if held < len(tokens):
                log.warning("%d task lease(s) were lost; their results will be discarded",
                            len(tokens) - held)

    def claim(self, model_id: str, model_version: str, limit: int) -> list[Claim]:
        """Claim due tasks and keep their leases alive until they are recorded."""
        claims = claim_tasks(self.db, worker_id=self.worker_id, model_id=model_id,
                             model_version=model_version, limit=limit,
                             lease_seconds=self.settings.lease_seconds,
                             validation_run_id=self.validation_run_id)
        with self._held_lock:
            for c in claims:
                self._held[c.token] = c
        return claims

    def forget(self, claim: Claim) -> None:
        """Stop renewing a claim's lease (the task was recorded or handed back)."""
        with self._held_lock:
            self._held.pop(claim.token, None)

    def release(self, claim: Claim) -> None:
        """Hand a claimed task back unfinished."""
        try:
            release_task(self.db, claim=claim)
        finally:
            self.forget(claim)

    # --- recording outcomes ------------------------------------------------------------------

    def record(self, outcome: _Outcome) -> None:
        """Write one task's outcome and notify the task listeners."""
        claim = outcome.claim
        try:
            if outcome.result is not None:
                failure = self._record_done(claim, outcome.result)
                if failure is None:
                    return
            else:
                assert outcome.failure is not None
                failure = outcome.failure
            self._record_failure(claim, failure)
        finally:
            self.forget(claim)

    def _record_done(self, claim: Claim, result: TaskResult) -> ModelDefect | None:
        try:
            with self.db.transaction() as s:
                ids = complete_task(s, claim=claim, result=result)
                if ids is None:
                    log.info("task %d: lease lost; this run's result is discarded", claim.task_id)
                    self._count(claim, "lost")
                    return None
                event = TaskEvent(claim.task_id, TaskState.DONE.value, claim.study_pk,
                                  claim.study_instance_uid, claim.series_pk, claim.model_id,
                                  claim.model_version, tuple(ids), purpose=claim.purpose)
                self.events.in_transaction(s, event)
        except Exception as exc:
            log.exception("recording task %d failed", claim.task_id)
            return ModelDefect(DefectCategory.SERVICE_UNAVAILABLE,
                               f"the result could not be recorded ({type(exc).__name__})",
                               retryable=True)
        self._count(claim, "done")
        if self.metrics is not None:
            self.metrics.task_seconds.labels(model=claim.model_id).observe(
                (result.preprocess_ms + result.inference_ms) / 1000.0)
        log.info("task %d done: model %s@%s, study %s, %d finding(s)", claim.task_id,
                 claim.model_id, claim.model_version, uid_ref(claim.study_instance_uid), len(ids))
        self.events.after_commit(event)
        return None

    def _record_failure(self, claim: Claim, failure: ModelDefect) -> None:
        event: TaskEvent | None = None
        with self.db.transaction() as s:
            state = fail_task(s, claim=claim, category=failure.category, reason=failure.reason,
                              retry_base_seconds=self.settings.retry_base_seconds,
                              retry_max_seconds=self.settings.retry_max_seconds)
            if state is None:
                log.info("task %d: lease lost; this run's failure is discarded", claim.task_id)
                self._count(claim, "lost")
                return
            if state is TaskState.DEFECT:
                s.flush()
                task = s.get(InferenceTask, claim.task_id)
                reason = task.reason if task is not None else failure.reason
                event = TaskEvent(claim.task_id, state.value, claim.study_pk,
                                  claim.study_instance_uid, claim.series_pk, claim.model_id,
                                  claim.model_version, (), failure.category.value, reason,
                                  purpose=claim.purpose)
                try:
                    with s.begin_nested():
                        self.events.in_transaction(s, event)
                except Exception:
                    # A defect is recorded even when a listener fails on it, so that the
                    # task ends; the listener's own writes are rolled back.
                    log.exception("task listener failed on defect of task %d", claim.task_id)
        self._count(claim, "defect" if event is not None else "retry")
        log.info("task %d %s (%s): %s", claim.task_id,
                 "is a defect" if event is not None else "will be retried",
                 failure.category.value, failure.reason)
        if event is not None:
            self.events.after_commit(event)

    def _count(self, claim: Claim, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.tasks.labels(model=claim.model_id, outcome=outcome).inc()


class _ModelPool:
    """The workers of one model version."""

    def __init__(self, executor: LocalExecutor, model_id: str, version: str,
                 resources: Resources) -> None:
        self.ex = executor
        self.model_id = model_id
        self.version = version
        self.resources = resources
        self._cond = threading.Condition()
        self._due = 0
        self._threads = [
            threading.Thread(target=self._worker, name=f"radai-infer-{model_id}-{i}", daemon=True)
            for i in range(resources.concurrency)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def offer(self, due: int) -> None:
        """``due`` tasks of this model can be claimed now."""
        with self._cond:
            self._due = due
            if due > 0:
                self._cond.notify_all()

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _worker(self) -> None:
        ex = self.ex
        while not ex.stopping:
            with self._cond:
                if self._due <= 0:
                    self._cond.wait(ex.settings.poll_seconds * 4)
                if ex.stopping:
                    return
                if self._due <= 0:
                    continue
            try:
                model, works = self._gather()
                if not works:
                    with self._cond:
                        self._due = 0
                    continue
                self._run(model, works)
            except Exception:
                log.exception("a worker of model %s@%s failed", self.model_id, self.version)
                time.sleep(ex.settings.poll_seconds)

    # --- collecting a batch -----------------------------------------------------------------

    def _load(self) -> tuple[LoadedModel | None, ModelDefect | None]:
        try:
            return self.ex.registry.load(self.model_id, self.version), None
        except ModelDefect as defect:
            return None, ModelDefect(defect.category, defect.reason, retryable=True)
        except Exception as exc:  # noqa: BLE001 - any failure to load is "service unavailable"
            return None, ModelDefect(DefectCategory.SERVICE_UNAVAILABLE,
                                     f"model {self.model_id}@{self.version} cannot be loaded "
                                     f"({type(exc).__name__})", retryable=True)

    def _gather(self) -> tuple[LoadedModel | None, list[TaskWork]]:
        """Claim tasks until ``max_batch_size`` inputs or ``batch_timeout_ms`` (see the module)."""
        ex, limit = self.ex, self.resources.max_batch_size
        claims = ex.claim(self.model_id, self.version, limit)
        if not claims:
            return None, []
        model, load_failure = self._load()
        works: list[TaskWork] = []
        inputs = 0
        deadline = time.monotonic() + self.resources.batch_timeout_ms / 1000.0
        while True:
            for claim in claims:
                work = TaskWork(claim)
                if claim.exhausted:
                    work.failure = ModelDefect(
                        DefectCategory.SERVICE_UNAVAILABLE,
                        f"the worker running the task stopped before finishing, {claim.attempt} times")
                elif model is None:
                    work.failure = load_failure
                else:
                    with ex.db.session() as s:
                        candidates = task_candidates(s, study_pk=claim.study_pk, series_pk=claim.series_pk)
                    select_inputs(model, work, candidates)
                    inputs += len(work.selected) if work.failure is None else 0
                works.append(work)
            remaining = deadline - time.monotonic()
            if model is None or inputs >= limit or remaining <= 0 or ex.stopping:
                return model, works
            time.sleep(min(remaining, 0.02))
            claims = ex.claim(self.model_id, self.version, max(1, limit - inputs))

    # --- running it ---------------------------------------------------------------------------

    def _run(self, model: LoadedModel | None, works: list[TaskWork]) -> None:
        ex = self.ex
        outcomes = [_Outcome(w.claim, None, w.failure) for w in works if w.failure is not None]
        runnable = [w for w in works if w.failure is None]
        if runnable and model is not None:
            result = self._run_with_timeout(model, runnable)
            if result is None:  # shutting down: hand the tasks back
                for w in runnable:
                    ex.release(w.claim)
            else:
                outcomes.extend(result)
        for outcome in outcomes:
            ex.record(outcome)

    def _run_with_timeout(self, model: LoadedModel, works: list[TaskWork]) -> list[_Outcome] | None:
        ex = self.ex
        box: dict[str, object] = {}
        max_batch = self.resources.max_batch_size

        def body() -> None:
            try:
                for w in works:
                    prepare_inputs(model, w, ex.storage)
                box["sizes"] = infer_batched(model, works, max_batch)
                for w in works:
                    heatmaps = ex.settings.heatmaps and w.claim.purpose == TaskPurpose.CLINICAL.value
                    score_and_explain(model, w, data_dir=ex.data_dir, heatmaps=heatmaps)
            except BaseException as exc:  # noqa: BLE001 - reported below
                box["error"] = exc
            box["done"] = True

        thread = threading.Thread(target=body, name=f"radai-batch-{self.model_id}", daemon=True)
        thread.start()
        timeout = self.resources.timeout_seconds
        deadline = time.monotonic() + timeout
        while thread.is_alive():
            thread.join(0.05)
            now = time.monotonic()
            if not thread.is_alive():
                break
            if ex._stop_deadline is not None and now >= ex._stop_deadline:
                return None
            if now >= deadline:
                log.warning("model %s@%s gave no result within %g s for %d task(s)",
                            self.model_id, self.version, timeout, len(works))
                defect = ModelDefect(DefectCategory.SERVICE_UNAVAILABLE,
                                     f"the model gave no result within its timeout of {timeout:g} s",
                                     retryable=True)
                return [_Outcome(w.claim, None, defect) for w in works]
        error = box.get("error")
        if isinstance(error, BaseException):
            log.error("batch of model %s@%s failed (%s)", self.model_id, self.version,
                      type(error).__name__)
            defect = ModelDefect(DefectCategory.MODEL_ERROR,
                                 f"the model failed ({type(error).__name__})")
            return [_Outcome(w.claim, None, defect) for w in works]
        sizes = box.get("sizes")
        if ex.metrics is not None and isinstance(sizes, list):
            for size in sizes:
                ex.metrics.batch_size.labels(model=self.model_id).observe(size)
        return [_Outcome(w.claim, w.result if w.failure is None else None,
                         w.failure if w.failure is not None or w.result is not None
                         else ModelDefect(DefectCategory.MODEL_ERROR, "the model produced no result"))
                for w in works]
