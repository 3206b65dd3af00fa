"""Browser sessions: the login page, the session cookie, CSRF protection, logout."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from radai.app import Radai, build_web_app
from radai.auth.roles import Role
from tests.auth.conftest import PASSWORD, add_user, make_settings


def _login_form(client: TestClient, next_url: str = "/") -> str:
    page = client.get("/login", params={"next": next_url})
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the login form carries a CSRF token"
    return match.group(1)


def _sign_in(client: TestClient, name: str, password: str = PASSWORD, next_url: str = "/"):  # type: ignore[no-untyped-def]
    csrf = _login_form(client, next_url)
    return client.post("/login", data={"username": name, "password": password, "csrf_token": csrf,
                                       "next": next_url})


def test_login_page_is_plain_accessible_html(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in page.text
    assert '<label for="username">' in page.text and 'id="username"' in page.text
    assert '<label for="password">' in page.text and 'type="password"' in page.text
    assert 'autocomplete="current-password"' in page.text
    assert "<script" not in page.text


def test_browser_page_request_without_session_redirects_to_login(client: TestClient) -> None:
    r = client.get("/docs?x=1", headers={"Accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fdocs%3Fx%3D1"
    # API clients are told to authenticate instead.
    r = client.get("/docs", headers={"Accept": "application/json"})
    assert r.status_code == 401


def test_login_sets_httponly_samesite_cookie_and_redirects(auth_radai: Radai, client: TestClient) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    r = _sign_in(client, "rad1", next_url="/docs")
    assert r.status_code == 303
    assert r.headers["location"] == "/docs"
    cookies = {c.split("=", 1)[0]: c for c in r.headers.get_list("set-cookie")}
    session = cookies["radai_session"]
    assert "HttpOnly" in session and "SameSite=lax" in session and "Path=/" in session
    assert "Secure" not in session  # auth.cookie_secure is off by default (plain-HTTP demo)
    assert "HttpOnly" not in cookies["radai_csrf"]  # page scripts read it for the X-CSRF-Token header
    me = client.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["username"] == "rad1" and me.json()["authenticated_by"] == "session"
    assert client.get("/docs", headers={"Accept": "text/html"}).status_code == 200


def _session_cookies_secure(radai: Radai, base_url: str) -> bool:
    with TestClient(build_web_app(radai), base_url=base_url, follow_redirects=False) as c:
        csrf = _login_form(c)
        # The browser talks HTTPS to the proxy and sends the (Secure) login-form cookie.
        c.cookies.set("radai_login_csrf", csrf, path="/login")
        r = c.post("/login", data={"username": "rad1", "password": PASSWORD, "csrf_token": csrf})
        assert r.status_code == 303
        flags = {"Secure" in cookie for cookie in r.headers.get_list("set-cookie")
                 if cookie.startswith(("radai_session=", "radai_csrf="))}
    assert len(flags) == 1
    return flags.pop()


def test_cookies_are_secure_over_https_or_when_configured(tmp_path: Path, sqlite_url: str) -> None:
    radai = Radai(make_settings(tmp_path, sqlite_url))
    radai.prepare()
    try:
        add_user(radai, "rad1", Role.RADIOLOGIST)
        assert not _session_cookies_secure(radai, "http://testserver")
        assert _session_cookies_secure(radai, "https://testserver")
    finally:
        radai.stop()
    # Behind a TLS-terminating proxy radai sees plain HTTP: the setting marks them secure.
    radai = Radai(make_settings(tmp_path, sqlite_url, cookie_secure=True))
    radai.prepare()
    try:
        assert _session_cookies_secure(radai, "http://testserver")
    finally:
        radai.stop()


def test_failed_login_shows_an_error_and_no_session(auth_radai: Radai, client: TestClient) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    r = _sign_in(client, "rad1", password="not the password")
    assert r.status_code == 401
    assert 'role="alert"' in r.text and "Invalid user name or password." in r.text
    assert "not the password" not in r.text
    assert "radai_session" not in client.cookies
    assert client.get("/api/v1/auth/me").status_code == 401


def test_login_form_needs_its_csrf_token(auth_radai: Radai, client: TestClient) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    _login_form(client)
    r = client.post("/login", data={"username": "rad1", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 403
    assert "radai_session" not in client.cookies


def test_login_does_not_redirect_to_other_sites(auth_radai: Radai, client: TestClient) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        client.cookies.clear()
        r = _sign_in(client, "rad1", next_url=target)
        assert r.status_code == 303 and r.headers["location"] == "/"


def test_logout_needs_csrf_then_ends_the_session(auth_radai: Radai, client: TestClient) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    _sign_in(client, "rad1")
    session_cookie = client.cookies["radai_session"]
    csrf = client.cookies["radai_csrf"]
    assert client.post("/logout").status_code == 403
    assert client.post("/logout", data={"csrf_token": "0" * 64}).status_code == 403
    assert client.get("/api/v1/auth/me").status_code == 200
    r = client.post("/logout", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert "radai_session" not in client.cookies
    # The session is revoked on the server: replaying the old cookie does not work.
    client.cookies.set("radai_session", session_cookie)
    assert client.get("/api/v1/auth/me").status_code == 401


def test_cookie_requests_that_change_state_need_the_csrf_token(
        auth_radai: Radai, client: TestClient, user_headers: Callable[..., dict[str, str]]) -> None:
    add_user(auth_radai, "admin1", Role.ADMIN)
    _sign_in(client, "admin1")
    csrf = client.cookies["radai_csrf"]
    new_user = {"username": "rad2", "password": PASSWORD, "roles": ["radiologist"]}
    r = client.post("/api/v1/users", json=new_user)
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = client.post("/api/v1/users", json=new_user, headers={"X-CSRF-Token": "f" * 64})
    assert r.status_code == 403
    assert client.get("/api/v1/users").json() == [
        u for u in client.get("/api/v1/users").json() if u["username"] != "rad2"]
    r = client.post("/api/v1/users", json=new_user, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201 and r.json()["roles"] == ["radiologist"]
    # The form field works for plain HTML forms.
    r = client.post("/api/v1/users/rad2/disable", data={"csrf_token": csrf})
    assert r.status_code == 204
    # A cross-site request carries the cookie but cannot know the token; a bearer token
    # is not sent by browsers on their own, so bearer requests need no CSRF token.
    client.cookies.clear()
    admin = user_headers(Role.ADMIN)
    r = client.post("/api/v1/users/rad2/enable", headers=admin)
    assert r.status_code == 204


def test_new_login_replaces_the_previous_session(auth_radai: Radai, client: TestClient) -> None:
    add_user(auth_radai, "rad1", Role.RADIOLOGIST)
    _sign_in(client, "rad1")
    first = client.cookies["radai_session"]
    # A live session skips the form; post it directly, still carrying the first session.
    assert client.get("/login").status_code == 303
    client.cookies.set("radai_login_csrf", "login-form-token", path="/login")
    r = client.post("/login", data={"username": "rad1", "password": PASSWORD,
                                    "csrf_token": "login-form-token"})
    assert r.status_code == 303
    second = client.cookies["radai_session"]
    assert second != first
    client.cookies.set("radai_session", first)
    assert client.get("/api/v1/auth/me").status_code == 401
