"""Authentication of every HTTP request, before routing.

Secure by default: a request to any path other than the open ones needs a valid
bearer token (``Authorization: Bearer …``) or session cookie, whatever router it is
for — including routes added later, mounted static files, WebSockets and unknown paths.

- Open: ``/healthz``, ``/login``, ``/logout`` and the token endpoint.
- ``/metrics``: see :attr:`radai.auth.settings.AuthSettings.metrics_access`.
- Anonymous requests get 401 with ``WWW-Authenticate: Bearer``, except a browser
  asking for a page (a GET accepting HTML outside ``/api/`` and ``/dicom-web/``),
  which is sent to ``/login``. On routes that serve patient data the refusal is
  written to the audit log.
- Requests authenticated by the session cookie that change state (any method but
  GET, HEAD, OPTIONS) must carry the session's CSRF token (:func:`radai.auth.deps.csrf_for`).

Role checks happen later, in the routes' own dependencies (:mod:`radai.auth.deps`).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.websockets import WebSocketClose

from radai.auth.audit import ANONYMOUS, ActorKind, Outcome, record_access
from radai.auth.deps import (
    AUDIT_ROUTE_KEY,
    AUDITED_KEY,
    CSRF_FIELD,
    CSRF_HEADER,
    PRINCIPAL_KEY,
    SAFE_METHODS,
    SESSION_COOKIE,
    SESSION_TOKEN_KEY,
    TOKEN_URL,
    action_name,
    bearer_challenge,
    csrf_matches,
    match_route,
    study_uid_of,
)
from radai.auth.roles import Capability
from radai.auth.service import Principal, resolve_token

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from radai.app import Radai

#: Paths anyone may request.
OPEN_PATHS = frozenset({"/healthz", "/login", "/logout", TOKEN_URL})
METRICS_PATH = "/metrics"
#: Largest form body read to find a ``csrf_token`` field (HTML forms are small).
_MAX_FORM_BYTES = 1 << 20


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _wants_page(request: Request) -> bool:
    path = request.url.path
    return (request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", "")
            and not path.startswith(("/api/", "/dicom-web/")))


def _bearer(conn: HTTPConnection) -> str | None:
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _resolve(radai: Radai, bearer: str | None, cookie: str | None) -> Principal | None:
    with radai.db.session() as session:
        if bearer is not None:
            return resolve_token(session, token=bearer, kind="bearer")
        if cookie is not None:
            return resolve_token(session, token=cookie, kind="session")
    return None


class AuthMiddleware:
    """Pure ASGI middleware that authenticates requests (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = request.url.path
        if path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        radai: Radai = scope["app"].state.radai
        bearer = _bearer(request)
        cookie = request.cookies.get(SESSION_COOKIE) if bearer is None else None
        principal = await run_in_threadpool(_resolve, radai, bearer, cookie)
        if path == METRICS_PATH:
            response = self._metrics_refusal(request, radai, principal)
        elif principal is None:
            response = await self._anonymous(request, radai, presented=bool(bearer or cookie))
        elif principal.via == "session" and request.method not in SAFE_METHODS:
            receive, response = await self._check_csrf(request, receive, cookie or "")
        else:
            response = None
        if response is not None:
            await response(scope, receive, send)
            return
        scope[PRINCIPAL_KEY] = principal
        if principal is not None and principal.via == "session":
            scope[SESSION_TOKEN_KEY] = cookie
        if principal is not None:
            send = _audited_send(scope, send, radai, principal)
        await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """WebSockets authenticate like HTTP requests; without credentials they are closed
        before the handshake completes (policy violation, RFC 6455 §7.4.1)."""
        conn = HTTPConnection(scope)
        radai: Radai = scope["app"].state.radai
        bearer = _bearer(conn)
        cookie = conn.cookies.get(SESSION_COOKIE) if bearer is None else None
        principal = await run_in_threadpool(_resolve, radai, bearer, cookie)
        if principal is None:
            await WebSocketClose(code=1008)(scope, receive, send)
            return
        scope[PRINCIPAL_KEY] = principal
        await self.app(scope, receive, send)

    @staticmethod
    def _metrics_refusal(request: Request, radai: Radai, principal: Principal | None) -> Response | None:
        client = request.client.host if request.client else ""
        if radai.settings.auth.metrics_access == "loopback" and is_loopback(client):
            return None
        if principal is not None and principal.may(Capability.VIEW_METRICS):
            return None
        if principal is not None:
            return JSONResponse({"detail": "this needs the view_metrics capability"}, 403)
        return JSONResponse({"detail": "authentication required"}, 401, headers=bearer_challenge())

    async def _anonymous(self, request: Request, radai: Radai, *, presented: bool) -> Response:
        await run_in_threadpool(self._audit_anonymous, request, radai)
        if _wants_page(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response: Response = RedirectResponse(f"/login?next={quote(target, safe='')}", 303)
            if presented:
                response.delete_cookie(SESSION_COOKIE, path="/")
            return response
        detail = "token expired, revoked or invalid" if presented else "authentication required"
        return JSONResponse({"detail": detail}, 401,
                            headers=bearer_challenge("invalid_token" if presented else None))

    @staticmethod
    def _audit_anonymous(request: Request, radai: Radai) -> None:
        """Record an anonymous attempt on a route that serves patient data."""
        matched = match_route(request.scope["app"], request.method, request.url.path)
        if matched is not None and any(g.audited for g in matched.guards):
            record_access(radai.db, actor=ANONYMOUS, actor_kind=ActorKind.ANONYMOUS,
                          action=f"{request.method} {matched.path}"[:128],
                          study_uid=study_uid_of(matched.path_params),
                          client=request.client.host if request.client else "",
                          outcome=Outcome.DENIED, status=401)

    @staticmethod
    async def _check_csrf(request: Request, receive: Receive, session_token: str
                          ) -> tuple[Receive, Response | None]:
        supplied = request.headers.get(CSRF_HEADER)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if supplied is None and content_type == "application/x-www-form-urlencoded":
            body = await _read_body(receive)
            if body is None:
                return receive, JSONResponse({"detail": "form too large"}, 413)
            values = parse_qs(body.decode("latin-1"), keep_blank_values=True).get(CSRF_FIELD)
            supplied = values[0] if values else None
            receive = _replay(body, receive)
        if csrf_matches(session_token, supplied):
            return receive, None
        return receive, JSONResponse(
            {"detail": f"CSRF token missing or invalid: requests made with the session cookie "
                       f"that change state must send the {CSRF_HEADER} header (value of the "
                       f"radai_csrf cookie) or the {CSRF_FIELD} form field"}, 403)


def _audited_send(scope: Scope, send: Send, radai: Radai, principal: Principal) -> Send:
    """A ``send`` that writes the audit row of a request to an audited route before its
    answer leaves, unless the route (or its guard) recorded the request already."""

    async def send_after_audit(message: Message) -> None:
        if (message["type"] == "http.response.start" and scope.get(AUDIT_ROUTE_KEY)
                and not scope.get(AUDITED_KEY)):
            status = int(message["status"])
            request = Request(scope)
            await run_in_threadpool(
                record_access, radai.db, actor=principal.username, actor_kind=ActorKind.USER,
                action=action_name(request), study_uid=study_uid_of(request.path_params),
                client=request.client.host if request.client else "",
                outcome=Outcome.DENIED if status in (401, 403) else Outcome.ALLOWED, status=status)
            scope[AUDITED_KEY] = True
        await send(message)

    return send_after_audit


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body to the app once, then defers."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

