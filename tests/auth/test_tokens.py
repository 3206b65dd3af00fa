"""Bearer tokens: login, expiry, revocation, disabled users, password re-hashing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from radai.app import Radai
from radai.auth.models import AuditEntry, AuthToken, User
from radai.auth.passwords import Passwords
from radai.auth.roles import Role
from radai.auth.service import create_user, token_hash
from radai.db import utcnow
from tests.auth.conftest import FAST_ARGON2, PASSWORD, add_user, bearer, token_for


def test_token_login_returns_a_bearer_token_that_authenticates(auth_radai: Radai,
                                                               client: TestClient) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST, Role.ANNOTATOR)
    r = client.post("/api/v1/auth/token", data={"username": "rad1", "password": PASSWORD})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "bearer"
    assert 479 * 60 < body["expires_in"] <= 480 * 60
    me = client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["username"] == "rad1"
    assert me.json()["roles"] == ["annotator", "radiologist"]
    assert "review" in me.json()["capabilities"] and "manage_users" not in me.json()["capabilities"]
    assert me.json()["authenticated_by"] == "bearer"
    # Only the SHA-256 of the token is in the database.
    with auth_radai.db.session() as s:
        stored = s.scalars(select(AuthToken.token_hash)).all()
    assert stored == [token_hash(body["access_token"])]
    assert body["access_token"] not in stored


@pytest.mark.parametrize("username,password", [("rad1", "wrong password"), ("nobody", PASSWORD)])
def test_token_login_failure_gives_the_same_answer_for_wrong_password_and_unknown_user(
        auth_radai: Radai, client: TestClient, username: str, password: str,
        caplog: pytest.LogCaptureFixture) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    with caplog.at_level(logging.INFO):
        r = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "invalid user name or password"}
    assert "access_token" not in r.text
    with auth_radai.db.session() as s:
        assert s.scalars(select(AuthToken)).all() == []
        login = s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.login.token")).one()
    assert login.outcome == "denied" and login.status == 401
    # The failure is logged, and neither the password nor an unknown name appears anywhere.
    assert "login failed" in caplog.text
    assert password not in caplog.text
    if username == "nobody":
        assert "nobody" not in caplog.text and login.actor == "anonymous"
    else:
        assert "user rad1" in caplog.text and login.actor == "rad1"


def test_request_without_or_with_a_bad_token_gets_401_with_bearer_challenge(client: TestClient) -> None:
    r = client.get("/api/v1/auth/me")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = client.get("/api/v1/auth/me", headers=bearer("radai_not-a-real-token"))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_expired_token_is_refused(auth_radai: Radai, client: TestClient) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    token = token_for(client, "rad1")
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 200
    with auth_radai.db.transaction() as s:
        s.execute(update(AuthToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = client.get("/api/v1/auth/me", headers=bearer(token))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_logout_revokes_the_token(auth_radai: Radai, client: TestClient) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    token = token_for(client, "rad1")
    other = token_for(client, "rad1")
    assert client.post("/api/v1/auth/logout", headers=bearer(token)).status_code == 204
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
    # Only the token used for the logout ends.
    assert client.get("/api/v1/auth/me", headers=bearer(other)).status_code == 200


def test_disabling_a_user_ends_tokens_and_logins(auth_radai: Radai, client: TestClient,
                                                 user_headers: Callable[..., dict[str, str]]) -> None:
    admin = user_headers(Role.ADMIN)
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    token = token_for(client, "rad1")
    assert client.post("/api/v1/users/rad1/disable", headers=admin).status_code == 204
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
    r = client.post("/api/v1/auth/token", data={"username": "rad1", "password": PASSWORD})
    assert r.status_code == 400
    assert client.post("/api/v1/users/rad1/enable", headers=admin).status_code == 204
    assert token_for(client, "rad1")


def test_password_hash_is_upgraded_at_login_when_argon2_parameters_change(
        auth_radai: Radai, client: TestClient) -> None:
    old = Passwords(auth_radai.settings.auth.model_copy(update={"argon2_time_cost": 2}))
    with auth_radai.db.transaction() as s:
        create_user(s, username="rad1", password=PASSWORD, roles=[Role.RADIOLOGIST], passwords=old)
    with auth_radai.db.session() as s:
        before = s.scalars(select(User.password_hash)).one()
    assert before.startswith("$argon2id$") and ",t=2," in before
    token_for(client, "rad1")
    with auth_radai.db.session() as s:
        after = s.scalars(select(User.password_hash)).one()
    assert f",t={FAST_ARGON2['argon2_time_cost']}," in after and after != before
    # The re-hashed password still works.
    token_for(client, "rad1")


def test_users_api_for_admins(client: TestClient, user_headers: Callable[..., dict[str, str]]) -> None:
    admin = user_headers(Role.ADMIN)
    body = {"username": "ann1", "password": PASSWORD, "roles": ["annotator"]}
    r = client.post("/api/v1/users", json=body, headers=admin)
    assert r.status_code == 201
    assert r.json()["username"] == "ann1" and r.json()["roles"] == ["annotator"]
    assert "password" not in r.text and "argon2" not in r.text
    assert client.post("/api/v1/users", json=body, headers=admin).status_code == 409
    short = {**body, "username": "ann2", "password": "short"}
    r = client.post("/api/v1/users", json=short, headers=admin)
    assert r.status_code == 422 and "at least 8 characters" in r.text
    assert client.post("/api/v1/users", json={**body, "username": "ann3", "roles": ["root"]},
                       headers=admin).status_code == 422
    assert client.post("/api/v1/users/nobody/disable", headers=admin).status_code == 404
    listed = client.get("/api/v1/users", headers=admin).json()
    assert [u["username"] for u in listed] == ["ann1", "u-admin"]
    assert token_for(client, "ann1")
