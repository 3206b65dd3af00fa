"""A real radai web app (SQLite and PostgreSQL) with users, for the auth tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from radai.app import Radai, build_web_app
from radai.auth.passwords import Passwords
from radai.auth.roles import Role
from radai.auth.service import create_user
from radai.config import Settings, load_settings
from tests.fixtures.peers import free_port

#: Cheap Argon2 parameters keep the tests fast; the hashes are real Argon2id all the same.
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}
PASSWORD = "correct horse battery"


def make_settings(tmp_path: Path, db_url: str, **auth: Any) -> Settings:
    return load_settings(data_dir=tmp_path / "data", database_url=db_url, http_port=free_port(),
                         dicom_port=free_port(),
                         auth={**FAST_ARGON2, "login_max_failures": 3,
                               "login_max_failures_per_address": 6, **auth})


@pytest.fixture
def auth_radai(tmp_path: Path, db_url: str) -> Iterator[Radai]:
    instance = Radai(make_settings(tmp_path, db_url))
    instance.prepare()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def app(auth_radai: Radai) -> FastAPI:
    return build_web_app(auth_radai)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as c:
        yield c


def add_user(radai: Radai, name: str, *roles: Role, password: str = PASSWORD) -> None:
    with radai.db.transaction() as s:
        create_user(s, username=name, password=password, roles=roles,
                    passwords=Passwords(radai.settings.auth))


def token_for(client: TestClient, name: str, password: str = PASSWORD) -> str:
    r = client.post("/api/v1/auth/token", data={"username": name, "password": password})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def user_headers(auth_radai: Radai, client: TestClient) -> Callable[..., dict[str, str]]:
    """Creates a user holding ``roles`` and returns bearer headers for it."""
    made: dict[tuple[Role, ...], dict[str, str]] = {}

    def make(*roles: Role) -> dict[str, str]:
        if roles not in made:
            name = "u-" + "-".join(r.value for r in roles)
            add_user(auth_radai, name, *roles)
            made[roles] = bearer(token_for(client, name))
        return made[roles]

    return make


def browser_login(client: TestClient, name: str, password: str = PASSWORD, next_url: str = "/") -> None:
    """Sign in through the login page, as a browser does (the client keeps the session cookie)."""
    import re

    page = client.get("/login", params={"next": next_url})
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the login form carries a CSRF token"
    r = client.post("/login", data={"username": name, "password": password,
                                    "csrf_token": match.group(1), "next": next_url})
    assert r.status_code == 303, r.text
