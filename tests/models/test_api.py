"""The models API and the /models page: what anyone signed in reads, what admins change."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from radai.app import Radai
from radai.auth.models import AuditEntry
from radai.auth.roles import Role
from tests.auth.conftest import add_user, browser_login
from tests.web.conftest import app, auth_radai, client, user_headers

__all__ = ["app", "auth_radai", "client", "user_headers"]

Headers = Callable[..., dict[str, str]]
PNEUMONIA_LICENCE = "licence unknown — research use only"


def _audit_actions(radai: Radai, actor: str) -> list[str]:
    with radai.db.session() as s:
        return list(s.scalars(select(AuditEntry.action).where(AuditEntry.actor == actor)
                              .order_by(AuditEntry.id)))


def test_any_signed_in_user_lists_models_with_licence_and_scope(client: TestClient,
                                                                 user_headers: Headers) -> None:
    for role in (Role.RADIOLOGIST, Role.AUDITOR, Role.VENDOR):
        r = client.get("/api/v1/models", headers=user_headers(role))
        assert r.status_code == 200, role
    models = {m["id"]: m for m in r.json()}
    assert set(models) >= {"pneumonia-peds", "brain-tumor-mri"}
    peds = models["pneumonia-peds"]
    assert peds["version"] == "0.3.0" and peds["state"] == "live"
    assert peds["vendor"] == "pneumonia-model-package (PyPI), packaged by radai"
    assert peds["licence"] == PNEUMONIA_LICENCE and peds["research_use_only"] is True
    assert peds["intended_use"].startswith("Research and demonstration")
    assert peds["scope"]["modalities"] == ["CR", "DX"] and peds["scope"]["body_parts"] == ["CHEST"]
    assert peds["outputs"] == [{"label": "pneumonia", "threshold": 0.5, "urgency": "urgent",
                                "code": {"value": "233604007", "scheme": "SCT", "meaning": "Pneumonia"}}]
    assert sorted(peds["allowed_states"]) == ["retired", "suspended"]
    assert models["brain-tumor-mri"]["licence"] == "MIT"
    assert models["brain-tumor-mri"]["research_use_only"] is False


def test_show_gives_every_version_with_its_history(client: TestClient, user_headers: Headers) -> None:
    r = client.get("/api/v1/models/pneumonia-peds", headers=user_headers(Role.RADIOLOGIST))
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "pneumonia-peds" and [v["version"] for v in body["versions"]] == ["0.3.0"]
    history = body["versions"][0]["history"]
    assert [(h["from_state"], h["to_state"], h["actor"]) for h in history] == [("", "live", "radai")]
    assert client.get("/api/v1/models/no-such-model",
                      headers=user_headers(Role.RADIOLOGIST)).status_code == 404


def test_admins_disable_and_enable_with_a_reason(auth_radai: Radai, client: TestClient,
                                                 user_headers: Headers) -> None:
    admin = user_headers(Role.ADMIN)
    url = "/api/v1/models/pneumonia-peds/0.3.0/state"
    r = client.post(url, headers=admin, json={"state": "suspended", "reason": "drift alert under review"})
    assert r.status_code == 200 and r.json()["state"] == "suspended"
    assert [m.model_id for m in auth_radai.models.live()] == ["brain-tumor-mri"]  # no longer routed to
    r = client.post(url, headers=admin, json={"state": "live", "reason": "drift explained"})
    assert r.status_code == 200 and r.json()["state"] == "live"
    history = client.get("/api/v1/models/pneumonia-peds", headers=admin).json()["versions"][0]["history"]
    assert [(h["to_state"], h["reason"], h["actor"]) for h in history[1:]] == [
        ("suspended", "drift alert under review", "u-admin"), ("live", "drift explained", "u-admin")]
    assert _audit_actions(auth_radai, "u-admin").count("models.state") == 2

    # The lifecycle's rules hold, and the reason is required.
    r = client.post(url, headers=admin, json={"state": "approved", "reason": "x"})
    assert r.status_code == 409 and "cannot go from live to approved" in r.json()["detail"]
    assert client.post(url, headers=admin, json={"state": "suspended", "reason": ""}).status_code == 422
    assert client.post(url, headers=admin, json={"state": "suspended"}).status_code == 422
    assert client.post(url, headers=admin, json={"state": "paused", "reason": "x"}).status_code == 422
    assert client.post("/api/v1/models/pneumonia-peds/9.9/state", headers=admin,
                       json={"state": "suspended", "reason": "x"}).status_code == 404
    # Only manage_models may change a state.
    for role in (Role.RADIOLOGIST, Role.AUDITOR, Role.VENDOR):
        r = client.post(url, headers=user_headers(role), json={"state": "suspended", "reason": "x"})
        assert r.status_code == 403 and "manage_models" in r.json()["detail"]
    assert auth_radai.models.get("pneumonia-peds", "0.3.0").state == "live"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_models_page_shows_licences_and_lets_admins_change_states(auth_radai: Radai,
                                                                  client: TestClient) -> None:
    add_user(auth_radai, "reader", Role.RADIOLOGIST)
    browser_login(client, "reader")
    page = client.get("/models")
    assert page.status_code == 200
    assert PNEUMONIA_LICENCE in page.text and "Not cleared for clinical decisions." in page.text
    assert "Disable</button>" not in page.text  # readers see, admins change

    client.cookies.clear()
    add_user(auth_radai, "boss", Role.ADMIN)
    browser_login(client, "boss")
    page = client.get("/models")
    row = re.search(r'<tr id="model-pneumonia-peds-0.3.0">(.*?)</tr>', page.text, re.S)
    assert row and "Disable</button>" in row.group(1) and "Enable</button>" not in row.group(1)
    assert 'href="/models"' in page.text  # in the navigation of those who manage models
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    form = {"csrf_token": csrf.group(1), "state": "suspended"}
    r = client.post("/models/pneumonia-peds/0.3.0/state", data={**form, "reason": ""})
    assert r.status_code == 422 and "needs a reason" in r.text
    r = client.post("/models/pneumonia-peds/0.3.0/state", data={**form, "reason": "vendor recall"})
    assert r.status_code == 303 and r.headers["location"] == "/models"
    assert auth_radai.models.get("pneumonia-peds", "0.3.0").state == "suspended"
    row = re.search(r'<tr id="model-pneumonia-peds-0.3.0">(.*?)</tr>', client.get("/models").text, re.S)
    assert row and ">suspended</span>" in row.group(1) and "Enable</button>" in row.group(1)
    # Without the CSRF token the form is refused.
    r = client.post("/models/pneumonia-peds/0.3.0/state", data={"state": "live", "reason": "x"})
    assert r.status_code == 403 and auth_radai.models.get("pneumonia-peds", "0.3.0").state == "suspended"
