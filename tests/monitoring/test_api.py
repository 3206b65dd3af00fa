"""Monitoring API and dashboard: who may see them, what they show, the alert banner."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from radai.app import Radai, build_web_app
from radai.auth.roles import Role
from radai.models.api import DefectCategory
from radai.models.registry import ModelRecord
from tests.auth.conftest import add_user, bearer, browser_login, token_for
from tests.monitoring.conftest import CODE_KEY, make_radai, run_task, store
from tests.monitoring.test_evaluation import fill


@pytest.fixture
def client(mon_radai: Radai) -> Iterator[TestClient]:
    with TestClient(build_web_app(mon_radai), follow_redirects=False) as c:
        yield c


def headers(radai: Radai, client: TestClient, role: Role) -> dict[str, str]:
    name = f"u-{role.value}"
    add_user(radai, name, role)
    return bearer(token_for(client, name))


@pytest.fixture
def drifted_model(mon_radai: Radai, live_model: ModelRecord) -> ModelRecord:
    rng = np.random.default_rng(5)
    fill(mon_radai, live_model, image="MR_small.dcm", scores=rng.beta(2, 8, 40), salt="ref")
    fill(mon_radai, live_model, image="CT_small.dcm", scores=rng.beta(8, 2, 40), salt="cur", defects=6)
    return live_model


def test_roles(mon_radai: Radai, client: TestClient, live_model: ModelRecord) -> None:
    assert client.get("/api/v1/monitoring/alerts").status_code == 401
    for role in (Role.VENDOR, Role.AUDITOR, Role.RADIOLOGIST, Role.ANNOTATOR):
        h = headers(mon_radai, client, role)
        assert client.get("/monitoring", headers=h).status_code == 403, role
        assert client.get(f"/api/v1/monitoring/models/{live_model.model_id}", headers=h).status_code == 403
        assert client.post("/api/v1/monitoring/evaluate", headers=h).status_code == 403
    admin = headers(mon_radai, client, Role.ADMIN)
    assert client.get("/api/v1/monitoring/alerts", headers=admin).json() == []
    assert client.get("/api/v1/monitoring/models/no-such-model", headers=admin).status_code == 404


def test_model_metrics_alerts_and_dashboard(mon_radai: Radai, client: TestClient,
                                            drifted_model: ModelRecord) -> None:
    admin = headers(mon_radai, client, Role.ADMIN)
    evaluated = client.post("/api/v1/monitoring/evaluate", headers=admin)
    assert evaluated.status_code == 200, evaluated.text
    body = evaluated.json()
    assert body["profiled"] == 80 and "test-onnx@1.0" in body["versions"]
    opened = {(a["metric"], a["subject"]) for a in body["opened"]}
    assert {("score_psi", CODE_KEY), ("defect_rate", ""), ("input_ks_pvalue", "rows")} <= opened

    r = client.get("/api/v1/monitoring/models/test-onnx", headers=admin)
    assert r.status_code == 200, r.text
    data = r.json()
    (version,) = data["versions"]
    (window,) = version["windows"]
    assert window["window"] == "last-40" and window["n_tasks"] == 40 and window["n_done"] == 34
    assert window["defect_rate"]["successes"] == 6 and window["defect_rate"]["lower"] > 0.05
    assert window["reference"] == {"kind": "first", "label": "first 40 studies of this version", "n": 40,
                                   "validation_run_id": None}
    finding = window["findings"][0]
    assert finding["code"] == CODE_KEY and finding["drift"]["psi"]["value"] > 1
    # No verdicts yet: the rates are null, not NaN.
    assert finding["agreement"]["sensitivity"]["estimate"] is None
    assert set(window["latency"]) == {"queue_wait", "preprocess", "inference", "to_findings", "end_to_end"}
    assert window["latency"]["end_to_end"]["count"] == 0  # no result objects were made here
    checks = {(c["metric"], c["subject"]): c for c in window["checks"]}
    assert checks[("score_psi", CODE_KEY)]["breached"] and checks[("score_psi", CODE_KEY)]["evaluated"]
    assert not checks[("sensitivity_lower", CODE_KEY)]["evaluated"]
    assert {a["metric"] for a in data["open_alerts"]} >= {"score_psi", "defect_rate"}

    alerts = client.get("/api/v1/monitoring/alerts", headers=admin).json()
    assert {a["id"] for a in alerts} == {a["id"] for a in data["open_alerts"]}
    assert all(a["state"] == "open" and a["closed_at"] is None for a in alerts)
    assert client.get("/api/v1/monitoring/alerts", params={"model": "other"}, headers=admin).json() == []

    page = client.get("/monitoring", headers=admin)
    assert page.status_code == 200
    html = page.text
    assert "test-onnx 1.0" in html and "score_psi" in html and "first 40 studies" in html
    (uri,) = re.findall(r'src="data:image/png;base64,([^"]+)" alt="Monitoring plots of test-onnx 1.0', html)
    plot = Image.open(io.BytesIO(base64.b64decode(uri)))
    assert plot.size == (960, 1200)
    assert np.asarray(plot.convert("L")).std() > 10  # not a blank canvas
    # No external resources on the page.
    assert not re.search(r'(src|href)="https?://', html)


def test_banner_for_model_managers_only(tmp_path: Path, sqlite_url: str) -> None:
    radai = make_radai(tmp_path, sqlite_url)
    try:
        from tests.inference.packages import install_live, write_onnx_package

        model = install_live(radai.models, write_onnx_package(tmp_path / "pkg", "test-onnx", threshold=0.5))
        for i in range(25):
            study = store(radai, "CT_small.dcm", f"b-{i}")
            if i % 2:
                run_task(radai, study, model, probability=0.2)
            else:
                run_task(radai, study, model, defect=DefectCategory.MODEL_ERROR)
        with TestClient(build_web_app(radai), follow_redirects=False) as client:
            add_user(radai, "boss", Role.ADMIN)
            add_user(radai, "doc", Role.RADIOLOGIST)
            browser_login(client, "boss")
            before = client.get("/monitoring").text
            assert 'class="banner' not in before
            csrf = {"X-CSRF-Token": client.cookies.get("radai_csrf") or ""}
            assert client.post("/api/v1/monitoring/evaluate", headers=csrf).status_code == 200
            page = client.get("/models")
            assert page.status_code == 200
            banner = re.search(r'<div class="banner alert"[^>]*><a href="/monitoring">([^<]+)</a>', page.text)
            assert banner, page.text[:2000]
            assert "open monitoring alert" in banner.group(1) and "test-onnx@1.0" in banner.group(1)
            client.cookies.clear()
            browser_login(client, "doc")
            assert 'class="banner' not in client.get("/models").text
    finally:
        radai.stop()
