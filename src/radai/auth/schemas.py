"""API types of the auth endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from radai.auth.audit import ActorKind, Outcome
from radai.auth.roles import Capability, Role


class TokenResponse(BaseModel):
    """A successful token request (RFC 6749 §5.1)."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - RFC 6750 token type
    #: Seconds until the token expires.
    expires_in: int


class TokenError(BaseModel):
    """A refused token request (RFC 6749 §5.2)."""

    error: str
    error_description: str


class Me(BaseModel):
    """The authenticated user and what the user may do."""

    username: str
    roles: list[Role]
    capabilities: list[Capability]
    #: ``bearer`` or ``session``.
    authenticated_by: str
    expires_at: datetime


class UserOut(BaseModel):
    """A user account (never its password hash)."""

    model_config = ConfigDict(from_attributes=True)

    username: str
    roles: list[Role]
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(BaseModel):
    """A new user account."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    roles: list[Role] = Field(min_length=1)


class AuditEntryOut(BaseModel):
    """One audit log row."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    actor_kind: ActorKind
    action: str
    study_uid: str | None
    client: str
    outcome: Outcome
    status: int | None
    destination: str | None


class AuditPage(BaseModel):
    """One page of the audit log, newest first."""

    total: int
    limit: int
    offset: int
    items: list[AuditEntryOut]
