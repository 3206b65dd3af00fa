"""FastAPI side of authentication: the current user, role checks, the audit trail.

:class:`radai.auth.middleware.AuthMiddleware` authenticates every request (bearer
token or session cookie) before routing and refuses anonymous requests to anything
but the open paths; the dependencies here read the user it found and check roles.

How routers are mounted::

    from radai.auth.deps import protected
    from radai.auth.roles import Capability

    app.include_router(dicomweb.router, prefix="/dicom-web",
                       dependencies=protected(Capability.READ_STUDIES))

and how a route that returns patient data records what it returned::

    @router.get("/studies")
    def search(audit: Audit, ...) -> ...:
        studies = ...
        audit.record([s.study_instance_uid for s in studies], action="dicomweb.qido.studies")
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.params import Depends as DependsParam
from fastapi.routing import RouteContext, iter_route_contexts
from fastapi.security import OAuth2PasswordBearer
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from radai.auth.audit import ActorKind, Outcome, record_access
from radai.auth.roles import PATIENT_DATA_CAPABILITIES, ROLE_MATRIX, Capability, Role
from radai.auth.service import Principal
from radai.db import Database

#: Where the middleware leaves the authenticated :class:`Principal` in the ASGI scope.
PRINCIPAL_KEY = "radai.principal"
#: Where the middleware leaves the raw session token (for the CSRF token of pages).
SESSION_TOKEN_KEY = "radai.session_token"  # noqa: S105 - a scope key, not a secret

#: Set in the ASGI scope once the request has its audit row(s).
AUDITED_KEY = "radai.audited"
#: Set in the ASGI scope by an audited guard that let the request through.
AUDIT_ROUTE_KEY = "radai.audit_route"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SESSION_COOKIE = "radai_session"
CSRF_COOKIE = "radai_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a URL, not a secret

#: Declares the OAuth2 password flow in OpenAPI (the "Authorize" button of /docs).
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)

#: Path parameters that carry a Study Instance UID, in the names routes use.
_STUDY_PARAMS = ("study", "study_uid", "study_instance_uid", "StudyInstanceUID")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")

#: Capabilities whose denials are written to the audit log.
AUDITED_CAPABILITIES = PATIENT_DATA_CAPABILITIES | {Capability.READ_AUDIT}


def bearer_challenge(error: str | None = None) -> dict[str, str]:
    """The ``WWW-Authenticate`` header of a 401 (RFC 6750 §3)."""
    value = 'Bearer realm="radai"'
    if error:
        value += f', error="{error}"'
    return {"WWW-Authenticate": value}


def csrf_for(session_token: str) -> str:
    """The CSRF token that goes with a session: HMAC-SHA256 keyed by the session secret.

    It is handed to the browser in the readable ``radai_csrf`` cookie and in pages, and
    must come back in the ``X-CSRF-Token`` header (or the ``csrf_token`` form field) of
    every state-changing request authenticated by the session cookie. Another site can
    make the browser send the cookie but can neither read it nor derive this value.
    """
    return hmac.new(session_token.encode(), b"radai csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, supplied: str | None) -> bool:
    """Constant-time check of a supplied CSRF token against the session's."""
    return supplied is not None and hmac.compare_digest(supplied.encode(), csrf_for(session_token).encode())


def csrf_token(request: Request) -> str | None:
    """The CSRF token for forms in a page served to a cookie session (``None`` otherwise)."""
    token = request.scope.get(SESSION_TOKEN_KEY)
    return csrf_for(token) if isinstance(token, str) else None


def client_address(request: Request) -> str:
    """The client's address as the server sees it (behind a proxy: uvicorn's
    ``--forwarded-allow-ips`` makes this the forwarded address)."""
    return request.client.host if request.client else ""


@dataclass(frozen=True)
class MatchedRoute:
    """The route a request goes to, as mounted in the app (prefixes included)."""

    #: Path template, e.g. ``/dicom-web/studies/{study}``.
    path: str
    path_params: dict[str, str]
    guards: list[Guard]


def match_route(app: Starlette, method: str, path: str) -> MatchedRoute | None:
    """The route of ``app`` that answers ``method path``, with the guards it was mounted with."""
    for ctx in iter_route_contexts(app.routes):
        regex = getattr(ctx, "path_regex", None)
        methods = ctx.methods
        if regex is None or (methods and method not in methods):
            continue
        found = regex.match(path)
        if found:
            return MatchedRoute(path=ctx.path or path, path_params=found.groupdict(),
                                guards=route_guards(ctx))
    return None


def action_name(request: Request) -> str:
    """Default audit action of a request: method and route template, never the path itself
    (``GET /dicom-web/studies/{study}``, not the UID)."""
    matched = match_route(request.app, request.method, request.url.path)
    return f"{request.method} {matched.path if matched else '(unmatched)'}"[:128]


def study_uid_of(path_params: dict[str, Any]) -> str | None:
    """The Study Instance UID named by a route's path parameters, if any."""
    for name in _STUDY_PARAMS:
        value = path_params.get(name)
        if isinstance(value, str) and len(value) <= 64 and _UID.match(value):
            return value
    return None


def _db(request: Request) -> Database:
    db: Database = request.app.state.radai.db
    return db


def current_user(request: Request,
                 _token: Annotated[str | None, Security(oauth2_scheme)] = None) -> Principal:
    """The authenticated user of the request; 401 when there is none."""
    principal = request.scope.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise HTTPException(401, "authentication required", headers=bearer_challenge())
    return principal


#: The authenticated user, as a route parameter: ``user: CurrentUser``.
CurrentUser = Annotated[Principal, Depends(current_user)]


class Guard:
    """A dependency that lets a request through when the user holds a role or capability.

    ``write_capability``, when given, is needed in addition for requests that change
    state (any method but GET, HEAD, OPTIONS), e.g. STOW-RS on a DICOMweb router that
    otherwise needs ``read_studies``. A denial is answered 403.

    On an *audited* guard (by default, one asking for a capability that serves patient
    data or the audit log) every request is written to the audit log: denials here,
    the rest by the middleware when the answer starts, unless the route recorded the
    studies it returned itself (:class:`AuditTrail`).
    """

    def __init__(self, *, roles: Iterable[Role] = (), capability: Capability | None = None,
                 write_capability: Capability | None = None, audited: bool | None = None) -> None:
        self.roles = frozenset(roles)
        self.capability = capability
        self.write_capability = write_capability
        self.audited = (bool({capability, write_capability} & AUDITED_CAPABILITIES)
                        if audited is None else audited)

    def _needed(self, method: str) -> list[Capability]:
        needed = [self.capability] if self.capability is not None else []
        if self.write_capability is not None and method not in SAFE_METHODS:
            needed.append(self.write_capability)
        return needed

    def allows(self, principal: Principal, method: str = "GET") -> bool:
        """Whether ``principal`` may pass with a request of ``method``."""
        if not all(principal.may(c) for c in self._needed(method)):
            return False
        return not self.roles or bool(self.roles & principal.roles)

    def describe(self, method: str = "GET") -> str:
        """What the guard asks for, for error messages (names of roles, not of people)."""
        parts = [f"the {c.value} capability (roles: {', '.join(sorted(ROLE_MATRIX[c]))})"
                 for c in self._needed(method)]
        if self.roles:
            parts.append("one of the roles " + ", ".join(sorted(self.roles)))
        return " and ".join(parts) or "an authenticated user"

    def __call__(self, request: Request, user: CurrentUser) -> Principal:
        if self.allows(user, request.method):
            if self.audited:
                # The middleware writes the audit row when the answer starts.
                request.scope[AUDIT_ROUTE_KEY] = True
            return user
        if self.audited:
            record_access(_db(request), actor=user.username, action=action_name(request),
                          study_uid=study_uid_of(request.path_params), client=client_address(request),
                          outcome=Outcome.DENIED, status=403, actor_kind=ActorKind.USER)
            request.scope[AUDITED_KEY] = True
        raise HTTPException(403, f"this needs {self.describe(request.method)}")


def require_roles(*roles: Role) -> Guard:
    """A dependency admitting users who hold at least one of ``roles``; 403 otherwise."""
    if not roles:
        raise ValueError("require_roles needs at least one role")
    return Guard(roles=roles)


def require_capability(capability: Capability) -> Guard:
    """A dependency admitting users whose roles grant ``capability``; 403 otherwise."""
    return Guard(capability=capability)


def protected(capability: Capability | None = None, *, roles: Iterable[Role] = (),
              write_capability: Capability | None = None) -> list[DependsParam]:
    """Dependencies for ``include_router(..., dependencies=protected(...))``.

    With no argument any authenticated user passes; with a capability or roles, only
    users who hold them; ``write_capability`` is needed in addition by requests that
    change state.
    """
    return [Depends(Guard(capability=capability, roles=roles, write_capability=write_capability))]


def route_guards(route: BaseRoute | RouteContext) -> list[Guard]:
    """The guards a route was mounted with, router-level ones included (empty if none)."""
    deps = getattr(route, "dependencies", None) or []
    return [d.dependency for d in deps if isinstance(d.dependency, Guard)]


class AuditTrail:
    """Records, for the current request, the studies whose data it returns."""

    def __init__(self, request: Request, user: Principal) -> None:
        self._request = request
        self._user = user

    def record(self, study_uids: str | Iterable[str] | None, *, action: str | None = None,
               outcome: Outcome = Outcome.ALLOWED, status: int = 200) -> None:
        """Append one audit row per study (committed at once, before the answer is sent).

        Once a route has recorded a study, the middleware adds no row of its own for
        the request; an empty ``study_uids`` records nothing (the middleware then
        records the request without a study).
        """
        uids: str | list[str] | None = (study_uids if study_uids is None or isinstance(study_uids, str)
                                        else list(study_uids))
        if uids == []:
            return
        record_access(_db(self._request), actor=self._user.username,
                      action=action or action_name(self._request), study_uid=uids,
                      client=client_address(self._request), outcome=outcome, status=status,
                      actor_kind=ActorKind.USER)
        self._request.scope[AUDITED_KEY] = True


def audit_trail(request: Request, user: CurrentUser) -> AuditTrail:
    """The audit trail of the current request."""
    return AuditTrail(request, user)


#: The request's audit trail, as a route parameter: ``audit: Audit``.
Audit = Annotated[AuditTrail, Depends(audit_trail)]
