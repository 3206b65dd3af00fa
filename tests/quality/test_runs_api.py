"""``/api/v1/validations`` and the ``/validations`` page: who sees runs, and what they show."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from radai.app import Radai
from radai.auth.roles import Role
from radai.quality.runner import RunOutcome, run_validation
from tests.auth.conftest import add_user, browser_login
from tests.quality.conftest import labelled_dataset, onnx_package

Headers = Callable[..., dict[str, str]]


def _run(radai: Radai, tmp_path: Path) -> RunOutcome:
    radai.models.import_package(onnx_package(tmp_path))
    labelled_dataset(radai, onnx_package(tmp_path / "copy"))
    return run_validation(
        radai,
        model_id="onnx-val",
        model_version=None,
        dataset="val-set",
        dataset_version=1,
        actor="tests",
        timeout_seconds=120,
    )


def test_runs_are_listed_with_their_verdict_scores_and_report(
    auth_radai: Radai, client: TestClient, user_headers: Headers, tmp_path: Path
) -> None:
    outcome = _run(auth_radai, tmp_path)
    reader = user_headers(Role.RADIOLOGIST)
    page = client.get("/api/v1/validations", headers=reader)
    assert page.status_code == 200
    body = page.json()
    assert body["total"] == 1
    [run] = body["items"]
    assert (run["id"], run["model_id"], run["model_version"], run["model_state"]) == (
        outcome.run_id,
        "onnx-val",
        "1.0",
        "draft",
    )
    assert (run["dataset"], run["dataset_version"], run["manifest_sha256"]) == (
        "val-set",
        1,
        outcome.manifest_sha256,
    )
    assert run["state"] == "done" and run["gate_passed"] is False and run["gate_reasons"]
    assert (run["n_studies"], run["n_processed"], run["n_defects"]) == (5, 4, 1)
    [finding] = run["findings"]
    assert finding["auc"] == 0.75 and finding["code"] == "99RADAITEST:BRIGHT"
    assert finding["auc_lower"] <= 0.75 <= finding["auc_upper"]
    assert run["thresholds"]["min_auc_lower_bound"] == 0.8
    assert client.get("/api/v1/validations", params={"model": "other"}, headers=reader).json()["total"] == 0
    detail = client.get(f"/api/v1/validations/{outcome.run_id}", headers=reader).json()
    assert [s["key"] for s in detail["studies"]] == ["S0001", "S0002", "S0003", "S0004", "S0005"]
    us = detail["studies"][4]
    assert (us["state"], us["defect_category"], us["scores"]) == ("defect", "input_not_suited", [])
    assert all(len(s["scores"]) == 1 for s in detail["studies"][:4])
    assert {c["criterion"] for c in detail["summary"]["gate"]["checks"]} >= {"ROC AUC lower confidence bound"}
    # Runs name studies by dataset keys only: no UID anywhere in the answer.
    assert "2.25." not in page.text + str(detail) and "1.2.826" not in str(detail)
    report = client.get(run["report_url"], headers=reader)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert report.text == outcome.report_html
    assert "default-src 'none'" in report.headers["content-security-policy"]
    assert client.get("/api/v1/validations/99", headers=reader).status_code == 404
    assert client.get("/api/v1/validations/99/report", headers=reader).status_code == 404
    for role in (Role.VENDOR, Role.AUDITOR):
        assert client.get("/api/v1/validations", headers=user_headers(role)).status_code == 403


def test_the_validations_page(auth_radai: Radai, client: TestClient, tmp_path: Path) -> None:
    outcome = _run(auth_radai, tmp_path)
    add_user(auth_radai, "reader", Role.RADIOLOGIST)
    browser_login(client, "reader")
    page = client.get("/validations")
    assert page.status_code == 200
    html = page.text
    assert '<a href="/validations" aria-current="page">Validations</a>' in html
    row = html[html.index(f'id="run-{outcome.run_id}"') :]
    assert "onnx-val@1.0" in row and "val-set@1" in row and outcome.manifest_sha256[:16] in row
    assert "AUC 0.750" in row and ">failed<" in row
    assert f'href="/api/v1/validations/{outcome.run_id}/report"' in row
    report = client.get(f"/api/v1/validations/{outcome.run_id}/report")
    assert report.status_code == 200 and "Calibration test report" in report.text
