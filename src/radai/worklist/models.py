"""Worklist tables: reading state, verdicts on AI findings, missed findings, reports.

Verdict semantics (what model monitoring reads as ground truth)
---------------------------------------------------------------

- A **verdict** is one reader's opinion of one AI finding (a :class:`radai.inference.
  models.Finding` row): ``agree`` (the AI's decision at its operating point is right:
  a positive finding is present, a negative one absent), ``disagree`` (the decision is
  wrong: a false positive, or, on a negative finding, a false negative) or
  ``uncertain`` (the reader cannot tell). There is at most one verdict per finding per
  reader: recording again replaces the earlier one (a change of mind), recording the
  same value again changes nothing.
- A **missed finding** is a finding the reader sees that the AI did not report as
  positive: a code and label, either one of a model's finding codes (then
  ``model_id`` names that model) or free text (scheme ``99RADAI-FT``, the code value a
  digest of the text). At most one per study, reader and code.
- A **report** is the reader's free text with a version number per study. A draft is
  editable; signing freezes it, copies the signer's verdicts and missed findings into
  :class:`ReportVerdict` rows (a snapshot that later changes of the working verdicts
  never touch), stores a DICOM Comprehensive SR of it in the archive (TID 2000 shape
  with the verdicts coded, :mod:`radai.worklist.report_sr`) and takes the study off
  the worklist. An addendum is a new version, signed the same way.
- The **ground truth label** of a finding is the verdict in the latest signed report
  version of its study (:func:`radai.worklist.service.ground_truth`): truth is
  ``ai_positive`` for ``agree``, ``not ai_positive`` for ``disagree``, unknown for
  ``uncertain``; a missed finding is a true finding the AI did not flag.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from radai.db import Base, UTCDateTime, utcnow


class ReadingStatus(enum.StrEnum):
    """Where a study is in its reading: unread → in review → signed (off the worklist)."""

    UNREAD = "unread"
    #: Opened by a radiologist (its study page was viewed by someone who may review).
    IN_REVIEW = "in_review"
    #: A report was signed.
    SIGNED = "signed"


class VerdictValue(enum.StrEnum):
    """A reader's opinion of an AI finding's decision (see the module docstring)."""

    AGREE = "agree"
    DISAGREE = "disagree"
    UNCERTAIN = "uncertain"


#: The verdict of a :class:`ReportVerdict` row that records a missed finding.
MISSED = "missed"
#: Coding scheme of free-text missed findings (a private scheme, PS3.16 §8.2 ``99`` prefix).
FREE_TEXT_SCHEME = "99RADAI-FT"


class ReportStatus(enum.StrEnum):
    """A report version is a draft until it is signed; signed versions are read-only."""

    DRAFT = "draft"
    SIGNED = "signed"


class StudyReading(Base):
    """The reading state of a study (no row: unread)."""

    __tablename__ = "study_readings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=ReadingStatus.UNREAD.value, index=True)
    #: The reviewer who first opened the study, and when.
    opened_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    signed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Verdict(Base):
    """One reader's verdict on one AI finding (working state, see the module docstring)."""

    __tablename__ = "verdicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    finding_pk: Mapped[int] = mapped_column(ForeignKey("findings.id"), index=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    #: Username of the reader.
    reader: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("finding_pk", "reader"),)


class MissedFinding(Base):
    """A finding a reader sees that the AI did not report as positive."""

    __tablename__ = "missed_findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    reader: Mapped[str] = mapped_column(String(64))
    #: The model whose finding code was chosen (None for free text).
    model_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code_value: Mapped[str] = mapped_column(String(64))
    code_scheme: Mapped[str] = mapped_column(String(16))
    code_meaning: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("study_pk", "reader", "code_scheme", "code_value"),)


class Report(Base):
    """One version of a study's report: a draft, or signed and read-only."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    #: 1 for the report, 2… for addenda.
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=ReportStatus.DRAFT.value)
    text: Mapped[str] = mapped_column(Text, default="")
    #: The reader who last edited the draft.
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    signed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The DICOM SR of the signed version, stored in the archive.
    sop_class_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    series_instance_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)

    verdicts: Mapped[list[ReportVerdict]] = relationship(back_populates="report",
                                                         order_by="ReportVerdict.id")

    __table_args__ = (UniqueConstraint("study_pk", "version"),)


class ReportVerdict(Base):
    """A verdict or missed finding as it stood when a report version was signed."""

    __tablename__ = "report_verdicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_pk: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    #: The AI finding judged; None for a missed finding.
    finding_pk: Mapped[int | None] = mapped_column(ForeignKey("findings.id"), nullable=True,
                                                   index=True)
    #: agree, disagree, uncertain, or ``missed``.
    verdict: Mapped[str] = mapped_column(String(16))
    model_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    code_value: Mapped[str] = mapped_column(String(64))
    code_scheme: Mapped[str] = mapped_column(String(16))
    code_meaning: Mapped[str] = mapped_column(String(64))
    #: The AI's score and decision at the time (None for a missed finding).
    probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    ai_positive: Mapped[bool | None] = mapped_column(Boolean, nullable=True)

    report: Mapped[Report] = relationship(back_populates="verdicts")
