"""Monitoring tables: task input profiles, alerts and their notifications, samples.

- :class:`TaskInputProfile`: the input metadata of one ended task (manufacturer, body
  part, pixel spacing, image size, patient age and sex, site), read once from the
  archive index and, for what the index does not hold (pixel spacing), from the file
  header, so that input drift is computed without reading files again.
- :class:`Alert`: one breach of a threshold by one model version, site, window, metric
  and subject, open until an evaluation finds the metric back within its threshold.
  ``open_key`` (a digest of those six) is unique and set only while the alert is open,
  so that several radai processes evaluating at once open one alert, not several.
- :class:`AlertNotification`: a webhook delivery of an alert's opening or closing,
  tried with backoff until it succeeds or its tries are used up.
- :class:`MonitoringSample` / :class:`SampleStudy`: a random sample of the studies a
  model processed in a period, each assigned to one reader for review.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from radai.db import Base, UTCDateTime, utcnow


class AlertState(enum.StrEnum):
    """An alert is open while its metric breaches the threshold."""

    OPEN = "open"
    CLOSED = "closed"


class NotificationState(enum.StrEnum):
    """A webhook notification: pending (due at ``next_attempt_at``), sent, or failed for good."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class TaskInputProfile(Base):
    """What went into one ended task, for input drift and per-site grouping."""

    __tablename__ = "monitoring_task_inputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_pk: Mapped[int] = mapped_column(ForeignKey("inference_tasks.id", ondelete="CASCADE"),
                                         unique=True)
    model_id: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    #: InstitutionName (0008,0080) of the input's series.
    institution: Mapped[str] = mapped_column(String(64), default="")
    #: Calling AE title of the association that sent the input's series.
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    manufacturer: Mapped[str] = mapped_column(String(64), default="")
    body_part: Mapped[str] = mapped_column(String(64), default="")
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    columns: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Row spacing in mm: Pixel Spacing (0028,0030), else Imager Pixel Spacing (0018,1164).
    pixel_spacing_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    patient_age_years: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: M, F, O or empty (PS3.3 C.7.1.1 Patient's Sex).
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    #: The newest input instance of the study received before the task was created.
    last_input_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: What could not be read (no patient data), e.g. "file header unreadable".
    note: Mapped[str] = mapped_column(String(128), default="")
    profiled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_monitoring_task_inputs_model", "model_id", "model_version"),)


class Alert(Base):
    """A threshold breach (see the module docstring)."""

    __tablename__ = "monitoring_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: SHA-256 of model, version, site, window, metric and subject while open; None once closed.
    open_key: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    model_id: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    #: The site evaluated ("" for all sites together).
    site: Mapped[str] = mapped_column(String(64), default="")
    #: The window's name (radai.monitoring.settings.Window).
    window: Mapped[str] = mapped_column(String(32))
    #: A radai.monitoring.settings.Metric value.
    metric: Mapped[str] = mapped_column(String(32))
    #: What the metric is of: a finding code ``SCHEME:VALUE``, an input attribute, or "".
    subject: Mapped[str] = mapped_column(String(96), default="")
    #: ``above`` or ``below`` (radai.monitoring.settings.DIRECTION).
    direction: Mapped[str] = mapped_column(String(8))
    #: The value that opened the alert, and the threshold it crossed.
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    #: Studies (or verdicts) the value was computed from.
    sample_size: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default=AlertState.OPEN.value, index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The latest evaluated value while open (the value that closed it, once closed).
    last_value: Mapped[float] = mapped_column(Float)
    last_evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: What monitoring did about it: "" or "suspended".
    action: Mapped[str] = mapped_column(String(16), default="")

    __table_args__ = (Index("ix_monitoring_alerts_model", "model_id", "model_version"),)


class AlertNotification(Base):
    """One webhook notification of an alert's opening or closing."""

    __tablename__ = "monitoring_notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_pk: Mapped[int] = mapped_column(ForeignKey("monitoring_alerts.id", ondelete="CASCADE"))
    #: ``opened`` or ``closed``.
    event: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=NotificationState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Why the last try failed (an HTTP status or error type).
    last_error: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("alert_pk", "event"),
        Index("ix_monitoring_notifications_due", "state", "next_attempt_at"),
    )


class MonitoringSample(Base):
    """A random sample of a model version's processed studies, for review."""

    __tablename__ = "monitoring_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[str] = mapped_column(String(64), index=True)
    model_version: Mapped[str] = mapped_column(String(32))
    #: Tasks that ended in [period_start, period_end) were eligible.
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    #: ``simple`` or ``stratified`` (radai.monitoring.samples).
    method: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(BigInteger)
    size_requested: Mapped[int] = mapped_column(Integer)
    #: Eligible studies, and how many were drawn (fewer than requested when fewer exist).
    eligible: Mapped[int] = mapped_column(Integer)
    size_drawn: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    studies: Mapped[list[SampleStudy]] = relationship(back_populates="sample",
                                                      order_by="SampleStudy.position")


class SampleStudy(Base):
    """One drawn study of a sample and the reader it is assigned to."""

    __tablename__ = "monitoring_sample_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_pk: Mapped[int] = mapped_column(ForeignKey("monitoring_samples.id", ondelete="CASCADE"))
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    #: The model's latest clinical task of the study within the period.
    task_pk: Mapped[int] = mapped_column(ForeignKey("inference_tasks.id"))
    #: Order of drawing (0-based).
    position: Mapped[int] = mapped_column(Integer)
    #: ``positive``, ``negative`` or ``defect``: the AI result, the stratum when stratified.
    stratum: Mapped[str] = mapped_column(String(16))
    #: Username of the reader the study is assigned to.
    reader: Mapped[str] = mapped_column(String(64), index=True)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    sample: Mapped[MonitoringSample] = relationship(back_populates="studies")

    __table_args__ = (UniqueConstraint("sample_pk", "study_pk"),)
