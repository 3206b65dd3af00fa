"""Inference tables: durable tasks and the findings they produce.

A task is one (study or series, model id, model version) to run, created by routing in
the stability transaction. Its life (ARCHITECTURE.md §4)::

    pending ──claim──> running ──> done
                          │  └───> defect          (input not suited, or out of retries)
                          └──> failed ──(next_attempt_at)──claim──> running …

``failed`` means an attempt failed and another one is due at ``next_attempt_at``
(exponential backoff); ``defect`` is final and carries a category (radai.models.api.
DefectCategory) and a reason for people without patient data. A claim holds a lease
(``lease_token``, ``lease_owner``, ``lease_expires_at``); a lease that expires (the worker
died) is claimed again. Findings are written in the transaction that marks the task done,
conditional on the lease token, so a task's findings exist once or not at all.

A task's ``purpose`` is ``clinical`` (made by routing, for LIVE models) or ``validation``
(made by a validation run of radai.quality, for a model version in any state but retired,
on the studies of a frozen dataset version). Validation tasks run through the same
claims, leases, batching and defects, but their end is announced only to listeners
that ask for them (radai.inference.events), so they make no result objects, deliveries
or worklist entries, and their findings stay out of a study's clinical findings.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from radai.db import Base, UTCDateTime, utcnow


class TaskPurpose(enum.StrEnum):
    """Why a task exists (see the module docstring)."""

    CLINICAL = "clinical"
    VALIDATION = "validation"


class TaskState(enum.StrEnum):
    """States of an inference task (see the module docstring)."""

    PENDING = "pending"
    RUNNING = "running"
    FAILED = "failed"
    DONE = "done"
    DEFECT = "defect"


#: States a worker may claim from (when ``next_attempt_at`` has come).
CLAIMABLE = (TaskState.PENDING.value, TaskState.FAILED.value)
#: States that end a task.
FINAL = (TaskState.DONE.value, TaskState.DEFECT.value)


class InferenceTask(Base):
    """One model run over a study (or one series of it)."""

    __tablename__ = "inference_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: SHA-256 of target, model and study change: the same routing never makes two tasks.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    #: Set for per-series tasks; None when the task covers the whole study.
    series_pk: Mapped[int | None] = mapped_column(ForeignKey("series.id"), nullable=True, index=True)
    #: ``study`` or ``series``.
    scope: Mapped[str] = mapped_column(String(8))
    model_id: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    #: Name of the routing rule that made the task.
    rule: Mapped[str] = mapped_column(String(64), default="")
    #: The study's change sequence number the task was routed for.
    change_seq: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default=TaskState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: First claim (queue wait ends here).
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: For defects: input_not_suited, service_unavailable or model_error.
    defect_category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Why the last attempt failed / why the task is a defect (no patient data).
    reason: Mapped[str] = mapped_column(Text, default="")
    input_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Inputs in the largest batch that carried this task's inputs.
    batch_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Tasks whose inputs shared that batch.
    batch_tasks: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queue_wait_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    preprocess_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    inference_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: ``clinical`` or ``validation`` (:class:`TaskPurpose`).
    purpose: Mapped[str] = mapped_column(String(16), default=TaskPurpose.CLINICAL.value,
                                         server_default=TaskPurpose.CLINICAL.value)
    #: The validation run a validation task belongs to (radai.quality); None for clinical tasks.
    validation_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)

    findings: Mapped[list[Finding]] = relationship(back_populates="task", order_by="Finding.id")

    __table_args__ = (
        Index("ix_inference_tasks_claim", "model_id", "model_version", "state", "next_attempt_at"),
        Index("ix_inference_tasks_state_lease", "state", "lease_expires_at"),
    )


class Finding(Base):
    """One finding of one task: a coded concept with its probability and decision."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_pk: Mapped[int] = mapped_column(ForeignKey("inference_tasks.id"), index=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_pk: Mapped[int | None] = mapped_column(ForeignKey("series.id"), nullable=True)
    #: The image carrying the finding (the one the heatmap is drawn over).
    sop_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    model_id: Mapped[str] = mapped_column(String(64), index=True)
    model_version: Mapped[str] = mapped_column(String(32))
    #: Coded concept (PS3.3 §8.8): Code Value, Coding Scheme Designator, Code Meaning.
    code_value: Mapped[str] = mapped_column(String(64))
    code_scheme: Mapped[str] = mapped_column(String(16))
    code_meaning: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Float)
    #: The operating point the decision was made at.
    threshold: Mapped[float] = mapped_column(Float)
    positive: Mapped[bool] = mapped_column(Boolean)
    urgency: Mapped[str] = mapped_column(String(16), default="routine")
    #: Heatmap file (``.npy``, with a ``.png`` beside it) relative to the data folder.
    heatmap_path: Mapped[str | None] = mapped_column(String(160), nullable=True)
    queue_wait_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    preprocess_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    inference_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    task: Mapped[InferenceTask] = relationship(back_populates="findings")

    __table_args__ = (UniqueConstraint("task_pk", "code_scheme", "code_value"),)
