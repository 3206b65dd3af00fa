"""Registry tables: one row per model version, and the history of its lifecycle states."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from radai.db import Base, UTCDateTime, utcnow


class ModelVersion(Base):
    """A registered model version; ``manifest`` is its validated ``model.yaml`` as JSON."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[str] = mapped_column(String(32))
    #: A :class:`radai.models.manifest.LifecycleState` value.
    state: Mapped[str] = mapped_column(String(16), index=True)
    #: ``builtin`` (ships with radai), ``installed`` (entry point ``radai.models``) or
    #: ``imported`` (``radai models import``, copied into the data directory).
    origin: Mapped[str] = mapped_column(String(16))
    #: Folder of the package (absolute path).
    source: Mapped[str] = mapped_column(String(1024))
    name: Mapped[str] = mapped_column(String(128))
    vendor: Mapped[str] = mapped_column(String(128))
    licence: Mapped[str] = mapped_column(String(256))
    manifest: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    changes: Mapped[list[ModelStateChange]] = relationship(
        back_populates="model", order_by="ModelStateChange.id")


class ModelStateChange(Base):
    """One lifecycle transition (or the registration, with ``from_state`` empty)."""

    __tablename__ = "model_state_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_pk: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    model: Mapped[ModelVersion] = relationship(back_populates="changes")
