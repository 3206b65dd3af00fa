"""Settings of the ``[auth]`` section of radai.toml (``RADAI_AUTH__*`` variables)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AuthSettings(BaseModel):
    """Tokens, sessions, login throttling, password hashing and the metrics policy."""

    model_config = ConfigDict(extra="forbid")

    #: Lifetime of a bearer token issued by ``POST /api/v1/auth/token`` (one shift by default).
    token_lifetime_minutes: int = Field(default=480, ge=1, le=60 * 24 * 30)
    #: Lifetime of a browser session started on ``/login``.
    session_lifetime_minutes: int = Field(default=480, ge=1, le=60 * 24 * 30)
    #: Send the session cookie only over HTTPS. Turn on whenever radai is reached through TLS
    #: (it is off by default because the demo serves plain HTTP on loopback).
    cookie_secure: bool = False
    #: Failed logins for one user name within ``login_window_seconds`` before further
    #: attempts for that name are refused (HTTP 429) until the window has passed.
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    #: Failed logins from one client address within the window before it is refused.
    login_max_failures_per_address: int = Field(default=20, ge=1, le=100000)
    login_window_seconds: int = Field(default=900, ge=1, le=86400)
    password_min_length: int = Field(default=8, ge=1, le=1024)
    #: Who may read ``/metrics``: ``token`` (the default) asks for a bearer token with the
    #: ``view_metrics`` capability, like every route but ``/healthz``; ``loopback`` lets a
    #: Prometheus on the same host scrape without credentials and asks anyone else for
    #: that token (never with a reverse proxy on the same host: the requests it forwards
    #: arrive from loopback).
    metrics_access: Literal["loopback", "token"] = "token"
    #: Argon2id parameters (RFC 9106). Hashes made with other parameters are
    #: re-hashed at the user's next successful login.
    argon2_time_cost: int = Field(default=3, ge=1, le=100)
    argon2_memory_kib: int = Field(default=65536, ge=8, le=4 * 1024 * 1024)
    argon2_parallelism: int = Field(default=4, ge=1, le=64)
