"""Prometheus metrics of task execution, registered on radai's own registry.

Labels are model ids and fixed vocabularies (outcome, defect category), never
dataset content.
"""

from __future__ import annotations

import threading
import weakref

from prometheus_client import CollectorRegistry, Counter, Histogram

_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, InferenceMetrics] = weakref.WeakKeyDictionary()


class InferenceMetrics:
    """Task outcomes, batch sizes and durations per model."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tasks = Counter(
            "radai_inference_tasks_total", "Tasks ended or retried, by model and outcome",
            ["model", "outcome"], registry=registry)
        self.batch_size = Histogram(
            "radai_inference_batch_size", "Inputs per forward pass, by model", ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=registry)
        self.task_seconds = Histogram(
            "radai_inference_task_seconds", "Preparation plus inference time per task, by model",
            ["model"], registry=registry)

    @classmethod
    def on(cls, registry: CollectorRegistry) -> InferenceMetrics:
        """The metrics registered on ``registry`` (created once per registry)."""
        with _lock:
            found = _by_registry.get(registry)
            if found is None:
                found = _by_registry[registry] = cls(registry)
            return found
