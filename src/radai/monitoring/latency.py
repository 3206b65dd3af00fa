"""Latency percentiles of the stages a clinical study goes through.

Stages, per task (times come from the task, result and archive tables):

- ``queue_wait``: task created (routing, when the study became stable) → first claim
  by a worker (``inference_tasks.queue_wait_ms``);
- ``preprocess``: the pixel pipeline of the task's inputs (``preprocess_ms``);
- ``inference``: the model's forward passes for the task (``inference_ms``);
- ``to_findings``: the last input instance received → the task's findings written
  (``finished_at``);
- ``end_to_end``: the last input instance received → the result's DICOM objects stored
  in the archive (``result_sets.produced_at``).

"The last input instance" is the newest instance of the study, other than radai's own
result objects, received before the task was created. Percentiles are numpy's
(``numpy.percentile``, linear interpolation between order statistics, Hyndman & Fan
1996 definition 7, the same as Excel's PERCENTILE.INC).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: Percentiles reported for every stage.
PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)
STAGES: tuple[str, ...] = ("queue_wait", "preprocess", "inference", "to_findings", "end_to_end")


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds of one stage over a window: count, mean and percentiles (NaN if empty)."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float

    def percentile(self, p: int) -> float:
        """The ``p``-th percentile in milliseconds (one of :data:`PERCENTILES`)."""
        value: float = getattr(self, f"p{p}_ms")
        return value


def summarise(values_ms: Iterable[float | None]) -> LatencySummary:
    """Count, mean and :data:`PERCENTILES` of the known (not None, finite) durations."""
    values = np.array([v for v in values_ms if v is not None and math.isfinite(v)], dtype=np.float64)
    if values.size == 0:
        nan = math.nan
        return LatencySummary(0, nan, nan, nan, nan, nan)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
    return LatencySummary(int(values.size), float(values.mean()), p50, p90, p95, p99)
