"""The UI layout: static files for signed-in users, the home page, the pinned htmx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from radai.auth.roles import Capability, Role
from radai.web.pages import NAVIGATION, NavItem, add_nav
from tests.auth.conftest import add_user, browser_login


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_static_files_need_a_session_and_are_served(auth_radai, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/static/radai.css").status_code == 401
    add_user(auth_radai, "reader", Role.RADIOLOGIST)
    browser_login(client, "reader")
    css = client.get("/static/radai.css")
    assert css.status_code == 200 and ".badge" in css.text
    htmx = client.get("/static/vendor/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text[:2000]
    assert client.get("/static/vendor/../../pyproject.toml").status_code == 404
    assert client.get("/static/nope.css").status_code == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_home_sends_users_to_their_first_page(auth_radai, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    saved = list(NAVIGATION)
    NAVIGATION.clear()
    try:
        add_user(auth_radai, "aud", Role.AUDITOR)
        browser_login(client, "aud")
        page = client.get("/")
        assert page.status_code == 200 and "open no pages" in page.text
        add_nav(NavItem("Audit", "/audit", Capability.READ_AUDIT))
        add_nav(NavItem("Worklist", "/worklist", Capability.READ_STUDIES))
        r = client.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/audit"
    finally:
        NAVIGATION[:] = saved
