"""HTTP routes of authentication, users and the audit log (thin: the work is in services)."""

from __future__ import annotations

import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from fastapi.security import OAuth2PasswordRequestForm
from fastapi.templating import Jinja2Templates

from radai.auth import service
from radai.auth.audit import (
    ANONYMOUS,
    ActorKind,
    AuditFilter,
    Outcome,
    export_csv,
    query_audit,
    record_access,
)
from radai.auth.deps import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    CurrentUser,
    client_address,
    csrf_for,
    csrf_matches,
    require_capability,
)
from radai.auth.models import User
from radai.auth.passwords import Passwords
from radai.auth.roles import Capability, Role
from radai.auth.schemas import AuditEntryOut, AuditPage, Me, TokenError, TokenResponse, UserCreate, UserOut
from radai.auth.settings import AuthSettings
from radai.db import Database
from radai.web.deps import RadaiDep

LOGIN_CSRF_COOKIE = "radai_login_csrf"


@dataclass(frozen=True)
class AuthRuntime:
    """What the auth routes keep for the life of the web app."""

    passwords: Passwords
    templates: Jinja2Templates


def _runtime(request: Request) -> AuthRuntime:
    runtime: AuthRuntime = request.app.state.radai_auth
    return runtime


Runtime = Annotated[AuthRuntime, Depends(_runtime)]

api = APIRouter(prefix="/api/v1", tags=["auth"])
pages = APIRouter(include_in_schema=False)


# --- login: shared by the token endpoint and the login page ------------------------------------


@dataclass(frozen=True)
class _Login:
    issued: service.IssuedToken | None
    retry_after: int | None


def _login(db: Database, runtime: AuthRuntime, settings: AuthSettings, *, username: str,
           password: str, client: str, kind: service.TokenKind, via: str) -> _Login:
    minutes = settings.token_lifetime_minutes if kind == "bearer" else settings.session_lifetime_minutes
    with db.transaction() as session:
        outcome = service.authenticate(session, username=username, password=password, client=client,
                                       passwords=runtime.passwords, settings=settings)
        issued = (service.issue_token(session, user=outcome.user, kind=kind,
                                      lifetime=timedelta(minutes=minutes))
                  if outcome.user is not None else None)
    if outcome.retry_after is None:
        # IHE ATNA "User Authentication": successes and failures, never the password.
        record_access(db, actor=outcome.account or ANONYMOUS,
                      actor_kind=ActorKind.USER if outcome.account else ActorKind.ANONYMOUS,
                      action=f"auth.login.{via}", study_uid=None, client=client,
                      outcome=Outcome.ALLOWED if issued else Outcome.DENIED,
                      status=200 if issued else 401)
    return _Login(issued, outcome.retry_after)


# --- API: tokens ---------------------------------------------------------------------------------


@api.post("/auth/token", response_model=TokenResponse,
          responses={400: {"model": TokenError}, 429: {"model": TokenError}})
def issue_token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()],
                radai: RadaiDep, runtime: Runtime) -> Response:
    """OAuth2 password grant (RFC 6749 §4.3): user name and password for a bearer token."""
    result = _login(radai.db, runtime, radai.settings.auth, username=form.username,
                    password=form.password, client=client_address(request), kind="bearer", via="token")
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if result.retry_after is not None:
        return JSONResponse(TokenError(error="temporarily_unavailable",
                                       error_description="too many failed logins; try again in "
                                       f"{result.retry_after} s").model_dump(), 429,
                            headers={**headers, "Retry-After": str(result.retry_after)})
    if result.issued is None:
        return JSONResponse(TokenError(error="invalid_grant",
                                       error_description="invalid user name or password").model_dump(),
                            400, headers=headers)
    seconds = math.floor((result.issued.expires_at - datetime.now(UTC)).total_seconds())
    body = TokenResponse(access_token=result.issued.token, expires_in=seconds)
    return JSONResponse(body.model_dump(), headers=headers)


@api.post("/auth/logout", status_code=204)
def logout_token(user: CurrentUser, radai: RadaiDep) -> Response:
    """End the token (or session) this request was made with."""
    with radai.db.transaction() as session:
        service.revoke_token(session, token_id=user.token_id)
    response = Response(status_code=204)
    if user.via == "session":
        _clear_session_cookies(response, radai.settings.auth)
    return response


@api.get("/auth/me")
def me(user: CurrentUser) -> Me:
    """Who the request is authenticated as, with roles and capabilities."""
    return Me(username=user.username, roles=sorted(user.roles), capabilities=sorted(user.capabilities),
              authenticated_by=user.via, expires_at=user.expires_at)


# --- API: users ----------------------------------------------------------------------------------

_ManageUsers = Depends(require_capability(Capability.MANAGE_USERS))


def _user_out(user: User) -> UserOut:
    return UserOut(username=user.username, roles=[Role(r.role) for r in user.roles],
                   disabled=user.disabled, created_at=user.created_at, last_login_at=user.last_login_at)


@api.get("/users", dependencies=[_ManageUsers])
def list_users(radai: RadaiDep) -> list[UserOut]:
    """Every user account."""
    with radai.db.session() as session:
        return [_user_out(u) for u in service.list_users(session)]


@api.post("/users", status_code=201, dependencies=[_ManageUsers])
def create_user(body: UserCreate, radai: RadaiDep, runtime: Runtime) -> UserOut:
    """Create a user account."""
    try:
        with radai.db.transaction() as session:
            user = service.create_user(session, username=body.username, password=body.password,
                                       roles=body.roles, passwords=runtime.passwords)
            return _user_out(user)
    except service.UserExists as exc:
        raise HTTPException(409, str(exc)) from None
    except service.UserError as exc:
        raise HTTPException(422, str(exc)) from None


@api.post("/users/{username}/disable", status_code=204, dependencies=[_ManageUsers])
def disable_user(username: str, radai: RadaiDep) -> Response:
    """Disable an account and end its sessions and tokens."""
    return _set_disabled(radai.db, username, disabled=True)


@api.post("/users/{username}/enable", status_code=204, dependencies=[_ManageUsers])
def enable_user(username: str, radai: RadaiDep) -> Response:
    """Enable a disabled account again."""
    return _set_disabled(radai.db, username, disabled=False)


def _set_disabled(db: Database, username: str, *, disabled: bool) -> Response:
    try:
        with db.transaction() as session:
            service.set_disabled(session, username=username, disabled=disabled)
    except service.NoSuchUser as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(status_code=204)


# --- API: audit log ------------------------------------------------------------------------------

_ReadAudit = Depends(require_capability(Capability.READ_AUDIT))


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def audit_filter(actor: str | None = None, action: str | None = None, study_uid: str | None = None,
                 outcome: Outcome | None = None, client: str | None = None,
                 destination: str | None = None,
                 since: Annotated[datetime | None, Query(description="from this time (UTC if no zone)")]
                 = None,
                 until: Annotated[datetime | None, Query(description="before this time")] = None,
                 ) -> AuditFilter:
    """The audit filter given by the query parameters."""
    return AuditFilter(actor=actor, action=action, study_uid=study_uid, outcome=outcome, client=client,
                       destination=destination, since=_as_utc(since), until=_as_utc(until))


Filter = Annotated[AuditFilter, Depends(audit_filter)]


@api.get("/audit", dependencies=[_ReadAudit])
def read_audit(request: Request, user: CurrentUser, flt: Filter, radai: RadaiDep,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               offset: Annotated[int, Query(ge=0)] = 0) -> AuditPage:
    """Audit log rows matching the filters, newest first (reading it is itself audited)."""
    with radai.db.session() as session:
        total, rows = query_audit(session, flt=flt, limit=limit, offset=offset)
        items = [AuditEntryOut.model_validate(r) for r in rows]
    record_access(radai.db, actor=user.username, action="audit.read", study_uid=None,
                  client=client_address(request), outcome=Outcome.ALLOWED, status=200)
    return AuditPage(total=total, limit=limit, offset=offset, items=items)


@api.get("/audit.csv", dependencies=[_ReadAudit],
         responses={200: {"content": {"text/csv": {}}, "description": "RFC 4180 CSV, oldest first"}})
def export_audit(request: Request, user: CurrentUser, flt: Filter, radai: RadaiDep) -> StreamingResponse:
    """The matching audit log rows as CSV (the export is itself audited)."""
    record_access(radai.db, actor=user.username, action="audit.export", study_uid=None,
                  client=client_address(request), outcome=Outcome.ALLOWED, status=200)
    return StreamingResponse(export_csv(radai.db, flt=flt), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="radai-audit.csv"'})


# --- pages: login and logout ---------------------------------------------------------------------


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site; ``/`` otherwise (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _render_login(request: Request, runtime: Runtime, *, next_url: str, error: str | None,
                  status: int, username: str = "", headers: dict[str, str] | None = None) -> Response:
    login_csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = runtime.templates.TemplateResponse(
        request, "login.html",
        {"next_url": next_url, "error": error, "username": username, "csrf_field": CSRF_FIELD,
         "csrf_token": login_csrf}, status_code=status, headers=headers)
    settings: AuthSettings = request.app.state.radai.settings.auth
    response.set_cookie(LOGIN_CSRF_COOKIE, login_csrf, httponly=True, samesite="strict",
                        secure=settings.cookie_secure or request.url.scheme == "https", path="/login")
    response.headers["Cache-Control"] = "no-store"
    return response


@pages.get("/login")
def login_page(request: Request, radai: RadaiDep, runtime: Runtime,
               next_url: Annotated[str | None, Query(alias="next")] = None) -> Response:
    """The login form; a user with a live session goes straight on."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with radai.db.session() as session:
            if service.resolve_token(session, token=cookie, kind="session") is not None:
                return RedirectResponse(safe_next(next_url), 303)
    return _render_login(request, runtime, next_url=safe_next(next_url), error=None, status=200)


@pages.post("/login")
def login_submit(request: Request, radai: RadaiDep, runtime: Runtime,
                 username: Annotated[str, Form(max_length=256)],
                 password: Annotated[str, Form(max_length=1024)],
                 csrf_token: Annotated[str, Form(max_length=256)] = "",
                 next_url: Annotated[str, Form(alias="next", max_length=2048)] = "/") -> Response:
    """Check the form; on success start a session (HttpOnly, SameSite=Lax cookie)."""
    target = safe_next(next_url)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not csrf_matches_plain(expected, csrf_token):
        return _render_login(request, runtime, next_url=target, status=403, username=username,
                             error="The login form expired. Please try again.")
    settings = radai.settings.auth
    result = _login(radai.db, runtime, settings, username=username, password=password,
                    client=client_address(request), kind="session", via="page")
    if result.retry_after is not None:
        return _render_login(request, runtime, next_url=target, status=429, username=username,
                             headers={"Retry-After": str(result.retry_after)},
                             error="Too many failed logins. Please try again in "
                                   f"{math.ceil(result.retry_after / 60)} minutes.")
    if result.issued is None:
        return _render_login(request, runtime, next_url=target, status=401, username=username,
                             error="Invalid user name or password.")
    _revoke_cookie_session(radai.db, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(target, 303)
    max_age = settings.session_lifetime_minutes * 60
    # A request that came over HTTPS gets Secure cookies whatever the setting says.
    secure = settings.cookie_secure or request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, result.issued.token, max_age=max_age, path="/", httponly=True,
                        samesite="lax", secure=secure)
    response.set_cookie(CSRF_COOKIE, csrf_for(result.issued.token), max_age=max_age, path="/",
                        httponly=False, samesite="lax", secure=secure)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


def csrf_matches_plain(expected: str, supplied: str) -> bool:
    """Constant-time comparison of two CSRF tokens."""
    return hmac.compare_digest(expected.encode(), supplied.encode())


def _revoke_cookie_session(db: Database, cookie: str | None) -> int | None:
    """Revoke the session a cookie names (a new login replaces it: no session fixation)."""
    if not cookie:
        return None
    with db.transaction() as session:
        principal = service.resolve_token(session, token=cookie, kind="session")
        if principal is not None:
            service.revoke_token(session, token_id=principal.token_id)
            return principal.token_id
    return None


def _clear_session_cookies(response: Response, settings: AuthSettings) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=settings.cookie_secure, httponly=name == SESSION_COOKIE,
                               samesite="lax")


@pages.post("/logout")
def logout_page(request: Request, radai: RadaiDep,
                csrf_token: Annotated[str | None, Form()] = None) -> Response:
    """End the browser session (needs the session's CSRF token) and return to the login page."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        supplied = request.headers.get(CSRF_HEADER) or csrf_token
        with radai.db.session() as session:
            live = service.resolve_token(session, token=cookie, kind="session") is not None
        if live and not csrf_matches(cookie, supplied):
            raise HTTPException(403, "CSRF token missing or invalid")
        _revoke_cookie_session(radai.db, cookie)
    response = RedirectResponse("/login", 303)
    _clear_session_cookies(response, radai.settings.auth)
    return response
