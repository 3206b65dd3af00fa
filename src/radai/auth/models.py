"""Tables of users, roles, tokens, login failures and the audit log.

Tokens (API bearer tokens and browser sessions alike) are opaque random strings; only
their SHA-256 is stored, so a copy of the database gives no usable token. The audit log
is append-only: the migration installs triggers that refuse UPDATE and DELETE on it
(and TRUNCATE on PostgreSQL), and the service layer offers no way to change a row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from radai.db import Base, UTCDateTime, utcnow

#: Large enough for a city's years of reads; plain INTEGER on SQLite so that it stays
#: the rowid alias (SQLite only auto-increments ``INTEGER PRIMARY KEY``).
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class User(Base):
    """A person (or service account) who signs in to radai."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    #: Argon2id hash in PHC string format (argon2-cffi).
    password_hash: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    roles: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin",
        order_by="UserRole.role")


class UserRole(Base):
    """One role held by a user."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)

    user: Mapped[User] = relationship(back_populates="roles")

    __table_args__ = (
        CheckConstraint("role IN ('admin', 'radiologist', 'annotator', 'vendor', 'auditor')",
                        name="role_known"),
    )


class AuthToken(Base):
    """An issued bearer token or browser session (only the SHA-256 of the secret)."""

    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: ``bearer`` (API) or ``session`` (browser cookie).
    kind: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (CheckConstraint("kind IN ('bearer', 'session')", name="kind_known"),)


class LoginFailure(Base):
    """A failed login, kept for the login window to throttle guessing.

    The user name is stored only as a SHA-256, so that a password typed into the
    user-name field does not end up readable in the database.
    """

    __tablename__ = "auth_login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username_key: Mapped[str] = mapped_column(String(64), index=True)
    client: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AuditEntry(Base):
    """One access to patient data (or a security event), allowed or denied. Append-only.

    Modelled on the IHE ATNA audit record: who (``actor``, a user name or a calling AE
    title), when, what (``action`` and ``study_uid``), from where (``client``), to where
    the data went when that is not the client (``destination``) and the outcome with its
    HTTP or DIMSE status.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    #: ``user``, ``ae`` (a DIMSE peer, by calling AE title) or ``anonymous``.
    actor_kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(128), index=True)
    study_uid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    client: Mapped[str] = mapped_column(String(64))
    #: Where the data was sent when not back to the client: the AE title of a C-MOVE's
    #: move destination (also when the destination was refused).
    destination: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: ``allowed`` or ``denied``.
    outcome: Mapped[str] = mapped_column(String(8))
    #: HTTP status code or DIMSE status of the answer, when there is one.
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        CheckConstraint("outcome IN ('allowed', 'denied')", name="outcome_known"),
        CheckConstraint("actor_kind IN ('user', 'ae', 'anonymous')", name="actor_kind_known"),
        Index("ix_audit_log_actor_at", "actor", "at"),
    )
