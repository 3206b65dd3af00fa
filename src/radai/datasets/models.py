"""Dataset tables: datasets, their versions, the studies of each version and their labels.

A version is ``draft`` or ``frozen``. Once frozen, the database refuses every insert,
update or delete of the version's studies and labels, and every change to the version
row itself (triggers installed by migration 0008), so a frozen version is exactly what
its manifest says. The manifest (canonical JSON) and its SHA-256 are written when the
version is frozen.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from radai.db import Base, UTCDateTime, utcnow


class VersionState(enum.StrEnum):
    """Whether a dataset version may still change."""

    DRAFT = "draft"
    FROZEN = "frozen"


class LabelValue(enum.StrEnum):
    """A study-level reference label of one finding (same values as radai.quality.inputs.Truth)."""

    PRESENT = "present"
    ABSENT = "absent"
    UNCERTAIN = "uncertain"


class Dataset(Base):
    """A named reference dataset."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))

    versions: Mapped[list[DatasetVersion]] = relationship(
        back_populates="dataset", order_by="DatasetVersion.number")


class DatasetVersion(Base):
    """One numbered version of a dataset, with the text parts of its dataset card."""

    __tablename__ = "dataset_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_pk: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=VersionState.DRAFT.value)
    #: Dataset card: what the dataset is for.
    purpose: Mapped[str] = mapped_column(Text, default="")
    #: Dataset card: where the studies come from.
    source: Mapped[str] = mapped_column(Text, default="")
    #: Dataset card: which studies were taken and which left out.
    inclusion_criteria: Mapped[str] = mapped_column(Text, default="")
    #: Dataset card: how the labels were established (each label also names its own method).
    label_method: Mapped[str] = mapped_column(Text, default="")
    #: Dataset card: how the labels were checked.
    label_verification: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    frozen_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The manifest as canonical JSON (sorted keys, no spaces, UTF-8); set when frozen.
    manifest: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: SHA-256 of ``manifest`` (hex).
    manifest_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)

    dataset: Mapped[Dataset] = relationship(back_populates="versions")
    studies: Mapped[list[DatasetStudy]] = relationship(back_populates="version", order_by="DatasetStudy.key")

    __table_args__ = (UniqueConstraint("dataset_pk", "number"),)

    @property
    def frozen(self) -> bool:
        """Whether the version can no longer change."""
        return self.state == VersionState.FROZEN.value


class DatasetStudy(Base):
    """A study in a dataset version, under the dataset's own key (e.g. ``S0001``).

    Keys hold no patient data and stay the same for a study in every version of the
    dataset; reports and exports name studies by them.
    """

    __tablename__ = "dataset_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_pk: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    key: Mapped[str] = mapped_column(String(16))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    version: Mapped[DatasetVersion] = relationship(back_populates="studies")
    labels: Mapped[list[DatasetLabel]] = relationship(back_populates="entry", order_by="DatasetLabel.id")

    __table_args__ = (UniqueConstraint("version_pk", "study_pk"), UniqueConstraint("version_pk", "key"))


class DatasetLabel(Base):
    """The reference label of one finding (a coded concept, PS3.3 §8.8) in one study."""

    __tablename__ = "dataset_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The version (also reachable through the entry): lets the database guard frozen versions.
    version_pk: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    entry_pk: Mapped[int] = mapped_column(ForeignKey("dataset_studies.id"), index=True)
    code_value: Mapped[str] = mapped_column(String(64))
    code_scheme: Mapped[str] = mapped_column(String(16))
    code_meaning: Mapped[str] = mapped_column(String(64))
    #: present, absent or uncertain (:class:`LabelValue`).
    value: Mapped[str] = mapped_column(String(16))
    #: How the label was established, e.g. "radiologist consensus", "report".
    method: Mapped[str] = mapped_column(String(128))
    #: Who established it (a reader, a panel, a source collection).
    established_by: Mapped[str] = mapped_column(String(128), default="")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The radai user (or ``cli:<OS user>``) who entered the label.
    recorded_by: Mapped[str] = mapped_column(String(64))

    entry: Mapped[DatasetStudy] = relationship(back_populates="labels")

    __table_args__ = (UniqueConstraint("entry_pk", "code_scheme", "code_value"),)
