"""Failed logins are throttled per user name and per client address."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from radai.app import Radai, build_web_app
from radai.auth.models import LoginFailure
from radai.auth.roles import Role
from radai.db import utcnow
from tests.auth.conftest import PASSWORD, add_user


def _token(client: TestClient, name: str, password: str):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/auth/token", data={"username": name, "password": password})


def test_user_is_throttled_after_repeated_failures_even_with_the_right_password(
        auth_radai: Radai, client: TestClient) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    add_user(auth_radai, "rad2", Role.RADIOLOGIST)
    for _ in range(3):  # login_max_failures = 3 in these tests
        assert _token(client, "rad1", "guess").status_code == 400
    r = _token(client, "rad1", PASSWORD)
    assert r.status_code == 429
    assert r.json()["error"] == "temporarily_unavailable"
    assert 1 <= int(r.headers["retry-after"]) <= 900
    # Another user from the same address is not affected.
    assert _token(client, "rad2", PASSWORD).status_code == 200
    # Once the failures leave the window, the user may log in again.
    with auth_radai.db.transaction() as s:
        s.execute(update(LoginFailure).values(at=utcnow() - timedelta(seconds=901)))
    assert _token(client, "rad1", PASSWORD).status_code == 200


def test_success_clears_the_users_failures(auth_radai: Radai, client: TestClient) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    for _ in range(2):
        assert _token(client, "rad1", "guess").status_code == 400
    assert _token(client, "rad1", PASSWORD).status_code == 200
    for _ in range(2):
        assert _token(client, "rad1", "guess").status_code == 400
    assert _token(client, "rad1", PASSWORD).status_code == 200


def test_address_is_throttled_after_failures_on_many_names(auth_radai: Radai) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    app = build_web_app(auth_radai)
    with TestClient(app, client=("192.0.2.10", 40000)) as attacker, \
            TestClient(app, client=("192.0.2.20", 40000)) as colleague:
        for i in range(6):  # login_max_failures_per_address = 6 in these tests
            assert _token(attacker, f"name{i}", "guess").status_code == 400
        assert _token(attacker, "rad1", PASSWORD).status_code == 429
        assert _token(colleague, "rad1", PASSWORD).status_code == 200


def test_login_page_is_throttled_too(auth_radai: Radai, client: TestClient) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    client.get("/login")
    csrf = client.cookies["radai_login_csrf"]
    for _ in range(3):
        r = client.post("/login", data={"username": "rad1", "password": "guess", "csrf_token": csrf})
        assert r.status_code == 401
    r = client.post("/login", data={"username": "rad1", "password": PASSWORD, "csrf_token": csrf})
    assert r.status_code == 429
    assert "Too many failed logins" in r.text
    assert "radai_session" not in client.cookies
