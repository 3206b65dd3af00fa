"""Settings of task execution (``[inference]`` in radai.toml).

Per-model batching, concurrency, timeout and retries come from each model's manifest
(``resources``); these settings say how the executor as a whole behaves.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ExecutorKind(enum.StrEnum):
    """Where tasks run.

    ``local``: a worker pool inside ``radai serve`` (threads; models loaded in-process).
    ``ray`` is reserved for running model actors on a Ray cluster; it is not available
    in this version, and choosing it stops radai at start-up.
    """

    LOCAL = "local"
    RAY = "ray"


class InferenceSettings(BaseModel):
    """``[inference]``."""

    model_config = ConfigDict(extra="forbid")

    #: Run tasks in this process; false leaves them to other radai processes.
    enabled: bool = True
    executor: ExecutorKind = ExecutorKind.LOCAL
    #: How often idle workers look for due tasks.
    poll_seconds: float = Field(default=0.5, gt=0, le=60)
    #: A claim's lease; the holder renews it every third of this while it works, and a
    #: lease that runs out (the worker died) lets another worker claim the task again.
    lease_seconds: float = Field(default=60.0, ge=1, le=86400)
    #: Wait before retry n is ``retry_base_seconds * 2**(n-1)``, at most ``retry_max_seconds``.
    retry_base_seconds: float = Field(default=5.0, ge=0, le=3600)
    retry_max_seconds: float = Field(default=600.0, ge=0, le=86400)
    #: On shutdown, running batches get this long to finish; then their tasks are
    #: handed back (pending again, the attempt not counted).
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=600)
    #: Compute and store a heatmap for every positive finding.
    heatmaps: bool = True

    @model_validator(mode="after")
    def _backoff(self) -> InferenceSettings:
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("retry_max_seconds is smaller than retry_base_seconds")
        return self
