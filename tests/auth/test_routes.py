"""Every route of the real app refuses anonymous requests, except the open ones."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from radai.app import Radai, build_web_app
from radai.auth.deps import route_guards
from radai.auth.middleware import OPEN_PATHS
from radai.auth.roles import Role
from tests.auth.conftest import make_settings

#: What anyone may reach (/metrics needs a token unless opened to loopback, tested below).
EXPECTED_OPEN = {"/healthz", "/login", "/logout", "/api/v1/auth/token"}


def _concrete(path: str) -> str:
    """A path template with its parameters filled in (UIDs where a UID is expected)."""
    return re.sub(r"\{[^}]+\}", "1.2.840.99.1", path)


def _requests(app: FastAPI) -> list[tuple[str, str]]:
    """One request per method of every route of the app, included routers and mounts too."""
    out = []
    for ctx in iter_route_contexts(app.routes):
        path = ctx.path or "/"
        if isinstance(ctx.original_route, Mount):
            out.append(("GET", _concrete(path) + "/"))
            continue
        for method in sorted(ctx.methods or {"GET"}):
            out.append((method, _concrete(path)))
    return out


def test_open_paths_are_exactly_the_expected_ones() -> None:
    assert set(OPEN_PATHS) == EXPECTED_OPEN


def test_every_route_rejects_anonymous_requests_except_the_open_ones(app: FastAPI,
                                                                   client: TestClient) -> None:
    requests = _requests(app)
    paths = {p for _, p in requests}
    # The app really has the parts this test is about.
    assert {"/healthz", "/metrics", "/docs", "/openapi.json", "/api/v1/audit", "/api/v1/users",
            "/api/v1/auth/me"} <= paths
    assert any(p.startswith("/dicom-web/") for p in paths)
    checked = 0
    for method, path in requests:
        r = client.request(method, path, headers={"Accept": "application/json"})
        if path in EXPECTED_OPEN:
            assert r.status_code != 401, f"{method} {path} should be open"
            continue
        assert r.status_code == 401, f"{method} {path} answered {r.status_code} to an anonymous request"
        assert r.headers["www-authenticate"].startswith("Bearer"), f"{method} {path}"
        checked += 1
    assert checked >= 10
    # Paths that match no route are refused the same way (no probing for what exists).
    assert client.get("/no/such/path").status_code == 401


#: Routes any signed-in user may use: who am I, sign out, API docs; /metrics has its own policy.
ANY_USER = {"/api/v1/auth/me", "/api/v1/auth/logout", "/docs", "/docs/oauth2-redirect", "/openapi.json",
            "/metrics"}


def test_every_other_route_is_mounted_with_a_role_check(app: FastAPI) -> None:
    """A router mounted without ``protected(...)`` would let any signed-in user in (vendors
    included); every domain router names the capability it needs."""
    unguarded = sorted(f"{sorted(ctx.methods or [])} {ctx.path}" for ctx in iter_route_contexts(app.routes)
                       if ctx.path not in EXPECTED_OPEN | ANY_USER and not route_guards(ctx))
    assert unguarded == []


def test_metrics_need_a_token_by_default(auth_radai: Radai,
                                         user_headers: Callable[..., dict[str, str]]) -> None:
    assert auth_radai.settings.auth.metrics_access == "token"
    with TestClient(build_web_app(auth_radai), client=("127.0.0.1", 50000)) as local:
        assert local.get("/metrics").status_code == 401
        assert local.get("/metrics", headers=user_headers(Role.RADIOLOGIST)).status_code == 403
        r = local.get("/metrics", headers=user_headers(Role.AUDITOR))
        assert r.status_code == 200 and "radai_" in r.text


def test_metrics_open_to_loopback_only_when_configured(tmp_path: Path, db_url: str, auth_radai: Radai,
                                                       user_headers: Callable[..., dict[str, str]]) -> None:
    # The same database and data folder as auth_radai (its users and tokens), another policy.
    loopback = Radai(make_settings(tmp_path, db_url, metrics_access="loopback"))
    app = build_web_app(loopback)
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        r = local.get("/metrics")
        assert r.status_code == 200 and "radai_" in r.text
    auditor, radiologist = user_headers(Role.AUDITOR), user_headers(Role.RADIOLOGIST)
    with TestClient(app, client=("192.0.2.7", 50000)) as remote:
        assert remote.get("/metrics").status_code == 401
        assert remote.get("/metrics", headers=radiologist).status_code == 403
        assert remote.get("/metrics", headers=auditor).status_code == 200
    with TestClient(app, client=("::1", 50000)) as local6:
        assert local6.get("/metrics").status_code == 200


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_metrics_token_policy_needs_a_token_even_on_loopback(tmp_path, db_url: str) -> None:  # type: ignore[no-untyped-def]
    radai = Radai(make_settings(tmp_path, db_url, metrics_access="token"))
    radai.prepare()
    try:
        with TestClient(build_web_app(radai), client=("127.0.0.1", 50000)) as local:
            assert local.get("/metrics").status_code == 401
            assert local.get("/healthz").status_code == 200
    finally:
        radai.stop()


def test_websockets_need_credentials_too(app: FastAPI, client: TestClient,
                                         user_headers: Callable[..., dict[str, str]]) -> None:
    @app.websocket("/ws-probe")
    async def probe(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("hello")
        await ws.close()

    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws-probe"):
        pass
    assert refused.value.code == 1008
    with client.websocket_connect("/ws-probe", headers=user_headers(Role.AUDITOR)) as ws:
        assert ws.receive_text() == "hello"
