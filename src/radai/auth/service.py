"""Users, logins and tokens.

Tokens: radai issues opaque random tokens (``radai_`` + 256 random bits, URL-safe) for
both API bearer tokens and browser sessions, and stores only their SHA-256 with an
expiry and a revocation time. A token is therefore useless when copied from the
database, logging out revokes it at once on every radai instance sharing the database,
and no signing key has to be kept or rotated. A token is looked up by its hash, so
the time a lookup takes tells nothing about the secret.

Logins are throttled per user name and per client address from the failures of the
last ``login_window_seconds`` (kept in ``auth_login_failures``, so that several radai
instances behind one load balancer share the count). A throttled attempt is refused
without checking the password.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from radai.auth.models import AuthToken, LoginFailure, User, UserRole
from radai.auth.passwords import Passwords
from radai.auth.roles import Capability, Role, capabilities_of
from radai.auth.settings import AuthSettings
from radai.db import Database, utcnow

log = logging.getLogger(__name__)

TokenKind = Literal["bearer", "session"]

#: User names: letters, digits and ``. _ @ -``, starting with a letter or digit.
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_TOKEN_PREFIX = "radai_"  # noqa: S105 - marks radai tokens for secret scanners


class UserError(ValueError):
    """A user cannot be created or changed; the message says why (never a password)."""


class UserExists(UserError):
    """A user with the name exists already."""


class NoSuchUser(UserError):
    """No user has the name."""


@dataclass(frozen=True)
class Principal:
    """The authenticated user of one request."""

    user_id: int
    username: str
    roles: frozenset[Role]
    #: How the request authenticated: a bearer token or the browser session cookie.
    via: TokenKind
    token_id: int
    expires_at: datetime

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What this user may do (:data:`radai.auth.roles.ROLE_MATRIX`)."""
        return capabilities_of(self.roles)

    def may(self, capability: Capability) -> bool:
        """Whether one of the user's roles grants ``capability``."""
        return capability in self.capabilities


@dataclass(frozen=True)
class IssuedToken:
    """A newly issued token; ``token`` is the only copy of the secret."""

    id: int
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class LoginOutcome:
    """The result of :func:`authenticate`."""

    #: The user, when the name and password matched an enabled account.
    user: User | None
    #: Seconds until another attempt is accepted, when the attempt was throttled.
    retry_after: int | None = None
    #: The account's name when the name given is an existing account (success or not);
    #: ``None`` for unknown names, which may be mistyped passwords and are not repeated.
    account: str | None = None

    @property
    def ok(self) -> bool:
        return self.user is not None


class DemoUser(NamedTuple):
    """A demo account; ``password`` is ``None`` when the account existed already."""

    name: str
    role: Role
    password: str | None


def validate_username(username: str) -> str:
    """``username`` if it is 1-64 letters, digits or ``. _ @ -``; ``UserError`` otherwise."""
    if not _USERNAME.match(username):
        raise UserError("user name must be 1-64 letters, digits or . _ @ - and start with a "
                        "letter or digit")
    return username


def token_hash(token: str) -> str:
    """SHA-256 (hex) of a token: what the database keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _username_key(username: str) -> str:
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()


def get_user(session: Session, *, username: str) -> User | None:
    """The user named ``username``, if any."""
    return session.scalar(select(User).where(User.username == username))


def list_users(session: Session) -> list[User]:
    """Every user, by name."""
    return list(session.scalars(select(User).order_by(User.username)))


def create_user(session: Session, *, username: str, password: str, roles: Iterable[Role],
                passwords: Passwords) -> User:
    """Create an enabled user with ``roles`` (at least one) and an Argon2id password hash."""
    validate_username(username)
    role_set = sorted(set(roles))
    if not role_set:
        raise UserError("a user needs at least one role")
    try:
        passwords.check_policy(password)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if get_user(session, username=username) is not None:
        raise UserExists("a user with this name exists already")
    user = User(username=username, password_hash=passwords.hash(password),
                roles=[UserRole(role=r.value) for r in role_set])
    session.add(user)
    session.flush()
    log.info("user %s created with roles %s", username, ",".join(role_set))
    return user


def _require_user(session: Session, username: str) -> User:
    user = get_user(session, username=username)
    if user is None:
        raise NoSuchUser("no such user")
    return user


def set_password(session: Session, *, username: str, password: str, passwords: Passwords) -> None:
    """Give ``username`` a new password and end every session and token the user holds."""
    user = _require_user(session, username)
    try:
        passwords.check_policy(password)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    user.password_hash = passwords.hash(password)
    user.password_changed_at = utcnow()
    revoke_user_tokens(session, user_id=user.id)
    log.info("password of user %s changed", username)


def set_disabled(session: Session, *, username: str, disabled: bool = True) -> None:
    """Disable (or re-enable) ``username``; disabling ends the user's sessions and tokens."""
    user = _require_user(session, username)
    user.disabled = disabled
    if disabled:
        revoke_user_tokens(session, user_id=user.id)
    log.info("user %s %s", username, "disabled" if disabled else "enabled")


def authenticate(session: Session, *, username: str, password: str, client: str,
                 passwords: Passwords, settings: AuthSettings) -> LoginOutcome:
    """Check a user name and password, with throttling; call inside a write transaction.

    A failure is recorded (the user name only as a hash; never the password), and a
    success clears the user's failures and re-hashes the password when the configured
    Argon2 parameters changed since it was hashed.
    """
    now = utcnow()
    key = _username_key(username)
    retry_after = _throttled(session, key=key, client=client, settings=settings, now=now)
    user = get_user(session, username=username) if _USERNAME.match(username) else None
    account = user.username if user is not None else None
    # Only names of existing accounts are logged: anything else typed into the field
    # may be a password.
    who = f"user {account}" if account else "an unknown user name"
    if retry_after is not None:
        log.warning("login refused (throttled) for %s from %s", who, client)
        return LoginOutcome(user=None, retry_after=retry_after, account=account)
    ok = passwords.verify(user.password_hash if user else None, password)
    if not ok or user is None or user.disabled:
        session.add(LoginFailure(username_key=key, client=client[:64], at=now))
        session.execute(delete(LoginFailure).where(
            LoginFailure.at < now - timedelta(seconds=settings.login_window_seconds)))
        reason = "account disabled" if ok and user is not None else "wrong user name or password"
        log.warning("login failed for %s from %s: %s", who, client, reason)
        return LoginOutcome(user=None, account=account)
    session.execute(delete(LoginFailure).where(LoginFailure.username_key == key))
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash(password)
        log.info("password hash of user %s upgraded to the configured Argon2 parameters", username)
    user.last_login_at = now
    log.info("user %s logged in from %s", user.username, client)
    return LoginOutcome(user=user, account=account)


def _throttled(session: Session, *, key: str, client: str, settings: AuthSettings,
               now: datetime) -> int | None:
    window = timedelta(seconds=settings.login_window_seconds)
    since = now - window
    for column, value, limit in ((LoginFailure.username_key, key, settings.login_max_failures),
                                 (LoginFailure.client, client[:64],
                                  settings.login_max_failures_per_address)):
        count, oldest = session.execute(
            select(func.count(), func.min(LoginFailure.at))
            .where(column == value, LoginFailure.at >= since)).one()
        if count >= limit:
            # Earliest moment the count drops below the limit: conservatively, when the
            # oldest failure in the window leaves it.
            oldest_at: datetime = _aware(oldest) if oldest is not None else now
            return max(1, math.ceil((oldest_at + window - now).total_seconds()))
    return None


def _aware(value: datetime | str) -> datetime:
    # Aggregates bypass the column type on SQLite and come back as text or naive values.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def issue_token(session: Session, *, user: User, kind: TokenKind, lifetime: timedelta) -> IssuedToken:
    """A new random token for ``user``; only its SHA-256 is stored."""
    now = utcnow()
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = AuthToken(token_hash=token_hash(token), user_id=user.id, kind=kind, created_at=now,
                    expires_at=now + lifetime)
    session.add(row)
    # Tokens that ended more than a day ago are of no further use.
    session.execute(delete(AuthToken).where(AuthToken.expires_at < now - timedelta(days=1)))
    session.flush()
    return IssuedToken(id=row.id, token=token, expires_at=row.expires_at)


def resolve_token(session: Session, *, token: str, kind: TokenKind) -> Principal | None:
    """The user a live (not expired, not revoked) token of ``kind`` belongs to, if any."""
    if not token.startswith(_TOKEN_PREFIX) or len(token) > 128:
        return None
    row = session.execute(
        select(AuthToken, User).join(User, User.id == AuthToken.user_id)
        .where(AuthToken.token_hash == token_hash(token), AuthToken.kind == kind,
               AuthToken.revoked_at.is_(None), AuthToken.expires_at > utcnow(),
               User.disabled.is_(False))).one_or_none()
    if row is None:
        return None
    tok, user = row
    return Principal(user_id=user.id, username=user.username,
                     roles=frozenset(Role(r.role) for r in user.roles), via=kind,
                     token_id=tok.id, expires_at=tok.expires_at)


def revoke_token(session: Session, *, token_id: int) -> None:
    """End one token or session now (logout)."""
    session.execute(update(AuthToken).where(AuthToken.id == token_id, AuthToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))


def revoke_user_tokens(session: Session, *, user_id: int) -> None:
    """End every token and session of a user."""
    session.execute(update(AuthToken).where(AuthToken.user_id == user_id,
                                            AuthToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))


#: The demo's accounts: one per role, named after it.
DEMO_USERS: tuple[tuple[str, Role], ...] = tuple((r.value, r) for r in Role)


def ensure_demo_users(db: Database, *, passwords: Passwords) -> list[DemoUser]:
    """Create the demo accounts that do not exist yet, with fresh random passwords.

    Each data directory gets its own passwords, generated here, stored only as Argon2
    hashes and returned once for ``radai demo`` to print: a demo reachable on a
    network then has no well-known password. Accounts that exist already come back
    with ``password=None`` (``radai users set-password NAME`` sets a new one).
    """
    out: list[DemoUser] = []
    with db.transaction() as session:
        for name, role in DEMO_USERS:
            if get_user(session, username=name) is not None:
                out.append(DemoUser(name, role, None))
                continue
            password = secrets.token_urlsafe(12)
            create_user(session, username=name, password=password, roles=[role], passwords=passwords)
            out.append(DemoUser(name, role, password))
    return out
