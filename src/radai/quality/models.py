"""Validation run tables: a run, the outcome of each dataset study, and each study's scores.

A validation run is one model version tested on one frozen dataset version (its
manifest hash recorded). Each study of the version gets a row: ``done`` with one score
per finding (the model's probability and the reference label), or ``defect`` with the
technical-defect category and reason (the model could not process it, or the archive
no longer holds the study as frozen). The scores stay for later drift monitoring; the
run keeps its thresholds, summary metrics, gate verdict and the HTML report itself.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from radai.db import Base, UTCDateTime, utcnow


class RunState(enum.StrEnum):
    """Where a validation run stands."""

    RUNNING = "running"
    #: Metrics, gate and report are stored.
    DONE = "done"
    #: The run stopped on an error (``error`` says which kind); no verdict.
    FAILED = "failed"


class StudyState(enum.StrEnum):
    """The outcome of one study in a run."""

    PENDING = "pending"
    DONE = "done"
    DEFECT = "defect"


class ValidationRun(Base):
    """One model version × one frozen dataset version."""

    __tablename__ = "validation_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[str] = mapped_column(String(64), index=True)
    model_version: Mapped[str] = mapped_column(String(32))
    #: The model's lifecycle state when the run started.
    model_state: Mapped[str] = mapped_column(String(16))
    dataset_version_pk: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    dataset_name: Mapped[str] = mapped_column(String(64))
    dataset_version: Mapped[int] = mapped_column(Integer)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=RunState.RUNNING.value)
    #: The gate thresholds applied (JSON of radai.quality.settings.GateThresholds).
    thresholds: Mapped[str] = mapped_column(Text)
    #: Confidence level of every interval.
    level: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_by: Mapped[str] = mapped_column(String(64))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    n_studies: Mapped[int] = mapped_column(Integer, default=0)
    n_processed: Mapped[int] = mapped_column(Integer, default=0)
    n_defects: Mapped[int] = mapped_column(Integer, default=0)
    gate_passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    #: JSON list of the gate's failure reasons.
    gate_reasons: Mapped[str] = mapped_column(Text, default="[]")
    #: JSON: per finding the AUC with its interval and the rates at the operating point.
    summary: Mapped[str] = mapped_column(Text, default="{}")
    #: The stand-alone HTML report (radai.quality.report).
    report_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Where the command line also wrote it, if it did.
    report_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    #: Whether this run moved the model from draft to validated.
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Why a failed run stopped (kind of error, no patient data).
    error: Mapped[str] = mapped_column(Text, default="")

    studies: Mapped[list[ValidationStudy]] = relationship(back_populates="run",
                                                          order_by="ValidationStudy.key")


class ValidationStudy(Base):
    """The outcome of one dataset study in a run, under the dataset's study key."""

    __tablename__ = "validation_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("validation_runs.id"), index=True)
    key: Mapped[str] = mapped_column(String(16))
    study_pk: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), nullable=True, index=True)
    #: The validation task that ran the model on the study (none when it never started).
    task_pk: Mapped[int | None] = mapped_column(ForeignKey("inference_tasks.id"), nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(16), default=StudyState.PENDING.value)
    defect_category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    #: JSON of the study's subgroup values from the manifest (sex, age band, …).
    subgroups: Mapped[str] = mapped_column(Text, default="{}")

    run: Mapped[ValidationRun] = relationship(back_populates="studies")
    scores: Mapped[list[ValidationScore]] = relationship(back_populates="study",
                                                         order_by="ValidationScore.id")

    __table_args__ = (UniqueConstraint("run_pk", "key"),)


class ValidationScore(Base):
    """The model's probability for one finding in one study, beside the reference label."""

    __tablename__ = "validation_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_result_pk: Mapped[int] = mapped_column(ForeignKey("validation_studies.id"), index=True)
    code_scheme: Mapped[str] = mapped_column(String(16))
    code_value: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Float)
    #: present, absent or uncertain (radai.quality.inputs.Truth).
    truth: Mapped[str] = mapped_column(String(16))

    study: Mapped[ValidationStudy] = relationship(back_populates="scores")

    __table_args__ = (UniqueConstraint("study_result_pk", "code_scheme", "code_value"),)
