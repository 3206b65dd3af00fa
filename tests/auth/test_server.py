"""Authentication on a real ``radai serve`` process, reached over loopback sockets."""

from __future__ import annotations

import subprocess

import httpx

from tests.fixtures.peers import RadaiServer, radai_command


def test_served_radai_requires_credentials(radai_server: RadaiServer) -> None:
    base = radai_server.base_url
    assert httpx.get(base + "/healthz", timeout=30).status_code == 200
    # Metrics too need a token unless auth.metrics_access opens them to loopback.
    assert httpx.get(base + "/metrics", timeout=30).status_code == 401
    r = httpx.get(radai_server.dicomweb_url + "/studies", timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    proc = subprocess.run([*radai_command(), "users", "add", "reader", "--role", "radiologist",
                           "--password-stdin", "--config", str(radai_server.config_file)],
                          input="reader password 1\n", text=True, capture_output=True,
                          env=radai_server.env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    token = httpx.post(base + "/api/v1/auth/token", data={"username": "reader",
                                                           "password": "reader password 1"}, timeout=30)
    assert token.status_code == 200
    headers = {"Authorization": f"Bearer {token.json()['access_token']}",
               "Accept": "application/dicom+json"}
    r = httpx.get(radai_server.dicomweb_url + "/studies", headers=headers, timeout=30)
    assert r.status_code in (200, 204)
    page = httpx.get(base + "/login", timeout=30)
    assert page.status_code == 200 and 'name="password"' in page.text
