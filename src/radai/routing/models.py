"""Routing decisions: one row per stability event of a study, routed or not."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from radai.db import Base, UTCDateTime, utcnow


class RoutingOutcome(enum.StrEnum):
    """What routing did with a study change."""

    #: At least one task was created.
    ROUTED = "routed"
    #: No rule matched, or the matched models are not live (``reason`` says which).
    NOT_ROUTED = "not_routed"
    #: The change added no input image (e.g. only results radai itself produced).
    NO_NEW_INPUT = "no_new_input"


class RoutingDecision(Base):
    """What routing decided for one change of a study, and why (no patient data)."""

    __tablename__ = "routing_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    #: The study's change sequence number the decision covers.
    change_seq: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))
    #: Input images of the study at the time (results radai produced not counted).
    input_instances: Mapped[int] = mapped_column(Integer)
    task_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Comma-separated rule names that matched.
    rules: Mapped[str] = mapped_column(Text, default="")
    #: Comma-separated ``id@version`` of the models the study went to.
    models: Mapped[str] = mapped_column(Text, default="")
    #: Rule by rule, why (not) routed; holds rule names, attribute keywords and the
    #: rules' own values, never values from the study.
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("study_pk", "change_seq"),)
