"""Results tables: one result per finished task, its DICOM objects, and the delivery outbox.

A :class:`ResultSet` row is written in the transaction that ends the task (so a task
that is done always has one, exactly one) with the JSON summary; the result worker
then makes the DICOM objects, stores them in the archive and records them as
:class:`ResultObject` rows together with one :class:`Delivery` row per object and
configured destination that takes its type. The outbox sends due deliveries and
records every try as a :class:`DeliveryAttempt`; a failed try waits with exponential
backoff. Production jobs and deliveries are claimed with a lease (token and expiry),
so several radai processes share the work and a crashed holder's work is taken over.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from radai.db import Base, UTCDateTime, utcnow


class ResultState(enum.StrEnum):
    """Production of a result's DICOM objects."""

    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


class DeliveryState(enum.StrEnum):
    """One object on its way to one destination."""

    PENDING = "pending"
    DELIVERED = "delivered"
    #: ``max_attempts`` used up; kept for people to look at (and to re-queue).
    ABANDONED = "abandoned"


class ResultSet(Base):
    """The result of one finished task (findings or a technical defect)."""

    __tablename__ = "result_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_pk: Mapped[int] = mapped_column(ForeignKey("inference_tasks.id"), unique=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    model_id: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    #: ``findings`` or ``defect``.
    status: Mapped[str] = mapped_column(String(16))
    pathology_flag: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    confidence_level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The JSON summary (radai.results.schemas.ResultSummary, camelCase keys).
    summary: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=ResultState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Why the last production attempt failed, or what could not be made (no patient data).
    last_error: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    produced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    objects: Mapped[list[ResultObject]] = relationship(back_populates="result_set",
                                                      order_by="ResultObject.id")

    __table_args__ = (Index("ix_result_sets_due", "state", "next_attempt_at"),)


class ResultObject(Base):
    """A DICOM object made for a result and stored in the archive."""

    __tablename__ = "result_objects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_set_pk: Mapped[int] = mapped_column(ForeignKey("result_sets.id"), index=True)
    #: ``sr``, ``sc`` or ``seg``.
    kind: Mapped[str] = mapped_column(String(8))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64))

    result_set: Mapped[ResultSet] = relationship(back_populates="objects")


class Delivery(Base):
    """One object × one destination in the outbox."""

    __tablename__ = "result_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_pk: Mapped[int] = mapped_column(ForeignKey("result_objects.id"), index=True)
    #: The destination's configured name.
    destination: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Why the last attempt failed (a status or error type, never patient data).
    last_error: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("object_pk", "destination"),
        Index("ix_result_deliveries_due", "state", "next_attempt_at"),
    )


class DeliveryAttempt(Base):
    """One try to deliver one object to one destination."""

    __tablename__ = "result_delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_pk: Mapped[int] = mapped_column(ForeignKey("result_deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    #: The peer's answer (DIMSE status, HTTP status) or the error type.
    detail: Mapped[str] = mapped_column(String(256), default="")
    duration_ms: Mapped[float] = mapped_column(Float)
