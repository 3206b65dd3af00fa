"""The worklist API and pages over HTTP: roles, verdicts, signing, priors and the audit trail."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from radai.app import Radai
from radai.auth.roles import Role
from tests.auth.conftest import add_user, browser_login
from tests.inference.packages import install_live, write_onnx_package
from tests.worklist.helpers import PNEUMONIA, Scored, add_findings, store_study

Headers = Callable[..., dict[str, str]]


def _audit(client: TestClient, admin: dict[str, str], **params: str) -> list[dict[str, object]]:
    r = client.get("/api/v1/audit", params={"limit": 1000, **params}, headers=admin)
    assert r.status_code == 200, r.text
    items: list[dict[str, object]] = r.json()["items"]
    return items


def test_roles(auth_radai: Radai, client: TestClient, user_headers: Headers) -> None:
    uid = store_study(auth_radai, "roles")
    fid, = add_findings(auth_radai, uid, [Scored(PNEUMONIA, 0.9, "urgent")])
    verdict = f"/api/v1/studies/{uid}/findings/{fid}/verdict"
    reads = ["/api/v1/worklist", f"/api/v1/studies/{uid}/reading"]
    for path in [*reads, "/worklist", f"/studies/{uid}", "/viewer/app-config.js"]:
        assert client.get(path, headers={"Accept": "application/json"}).status_code == 401, path
    assert client.put(verdict, json={"verdict": "agree"}).status_code == 401
    for role in (Role.VENDOR, Role.AUDITOR):
        for path in [*reads, "/worklist", f"/studies/{uid}", "/viewer/app-config.js"]:
            assert client.get(path, headers=user_headers(role)).status_code == 403, (role, path)
    for role in (Role.ANNOTATOR, Role.ADMIN):
        headers = user_headers(role)
        for path in [*reads, "/worklist", f"/studies/{uid}"]:
            assert client.get(path, headers=headers).status_code == 200, (role, path)
        r = client.put(verdict, json={"verdict": "agree"}, headers=headers)
        assert r.status_code == 403 and "review" in r.json()["detail"], role
        assert client.post(f"/api/v1/studies/{uid}/report/sign", json={"text": "x"},
                           headers=headers).status_code == 403
        page = client.get(f"/studies/{uid}", headers=headers).text
        assert "hx-post" not in page and "Your roles do not include reviewing" in page
    # Annotators and admins only looked: the study is still unread.
    assert client.get("/api/v1/worklist", headers=user_headers(Role.ADMIN)).json()["items"][0]["status"] \
        == "unread"
    radiologist = user_headers(Role.RADIOLOGIST)
    assert client.put(verdict, json={"verdict": "agree"}, headers=radiologist).status_code == 204
    assert client.put(verdict, json={"verdict": "perhaps"}, headers=radiologist).status_code == 422


def test_reading_a_study_through_the_api(auth_radai: Radai, client: TestClient,
                                         user_headers: Headers) -> None:
    rad = user_headers(Role.RADIOLOGIST)
    prior = store_study(auth_radai, "api-prior", patient_id="P-9", issuer="HOSP-A", study_date="20230101")
    add_findings(auth_radai, prior, [Scored(PNEUMONIA, 0.2)])
    other_issuer = store_study(auth_radai, "api-other", patient_id="P-9", issuer="HOSP-B",
                               study_date="20220101")
    uid = store_study(auth_radai, "api-now", patient_id="P-9", issuer="HOSP-A", study_date="20240301")
    fid, = add_findings(auth_radai, uid, [Scored(PNEUMONIA, 0.88, "urgent")])

    page = client.get("/api/v1/worklist", params={"ai_result": "positive"}, headers=rad).json()
    assert [i["study_instance_uid"] for i in page["items"]] == [uid]
    assert page["items"][0]["findings"][0]["probability"] == 0.88

    # Priors: same Patient ID and issuer only.
    reading = client.get(f"/api/v1/studies/{uid}/reading", headers=rad).json()
    assert [p["study_instance_uid"] for p in reading["priors"]] == [prior]
    assert other_issuer not in {p["study_instance_uid"] for p in reading["priors"]}
    assert reading["status"] == "unread" and reading["editable"]

    url = f"/api/v1/studies/{uid}/findings/{fid}/verdict"
    assert client.put(url, json={"verdict": "agree"}, headers=rad).status_code == 204
    assert client.put(url, json={"verdict": "disagree"}, headers=rad).status_code == 204
    missed = client.post(f"/api/v1/studies/{uid}/missed-findings", json={"text": "Rib fracture"}, headers=rad)
    assert missed.status_code == 201 and missed.json()["code"]["scheme"] == "99RADAI-FT"
    bad = client.post(f"/api/v1/studies/{uid}/missed-findings", headers=rad,
                      json={"model_id": "pneumonia-peds", "code_scheme": "SCT", "code_value": "0"})
    assert bad.status_code == 422 and "code_value" in bad.json()["detail"]
    choice = client.post(f"/api/v1/studies/{uid}/missed-findings", headers=rad, json={
        "model_id": "pneumonia-peds", "code_scheme": "SCT", "code_value": "233604007"})
    assert choice.status_code == 201 and choice.json()["code"]["meaning"] == "Pneumonia"
    assert client.delete(f"/api/v1/studies/{uid}/missed-findings/{choice.json()['id']}",
                         headers=rad).status_code == 204
    reading = client.get(f"/api/v1/studies/{uid}/reading", headers=rad).json()
    assert reading["my_verdicts"] == {str(fid): "disagree"}
    assert [m["code"]["meaning"] for m in reading["my_missed_findings"]] == ["Rib fracture"]

    draft = client.put(f"/api/v1/studies/{uid}/report", json={"text": "No consolidation."}, headers=rad)
    assert draft.status_code == 200 and draft.json()["status"] == "draft"
    signed = client.post(f"/api/v1/studies/{uid}/report/sign", headers=rad,
                         json={"text": "No consolidation. Rib fracture."})
    assert signed.status_code == 201, signed.text
    body = signed.json()
    assert body["status"] == "signed" and body["signed_by"] == "u-radiologist"
    assert [v["verdict"] for v in body["verdicts"]] == ["disagree", "missed"]
    assert uid not in [i["study_instance_uid"] for i in
                       client.get("/api/v1/worklist", headers=rad).json()["items"]]
    signed_list = client.get("/api/v1/worklist", params={"status": "signed"}, headers=rad).json()
    assert [i["study_instance_uid"] for i in signed_list["items"]] == [uid]
    # The SR is in the archive, so DICOMweb (and the viewer) list it with the study.
    series = client.get(f"/dicom-web/studies/{uid}/series", headers=rad).json()
    assert "SR" in {s["00080060"]["Value"][0] for s in series}
    # Signed: read-only.
    assert client.put(url, json={"verdict": "agree"}, headers=rad).status_code == 409
    assert client.put(f"/api/v1/studies/{uid}/report", json={"text": "x"}, headers=rad).status_code == 409
    assert client.post(f"/api/v1/studies/{uid}/report/addendum", headers=rad).json()["version"] == 2
    assert client.get(f"/api/v1/studies/{uid}/reading", headers=rad).json()["editable"] is True
    assert client.get("/api/v1/studies/1.2.3/reading", headers=rad).status_code == 404


def test_pages_and_their_audit_trail(auth_radai: Radai, client: TestClient, user_headers: Headers,
                                     tmp_path: Path) -> None:
    admin = user_headers(Role.ADMIN)
    install_live(auth_radai.models, write_onnx_package(tmp_path / "pkg"))
    prior = store_study(auth_radai, "page-prior", patient_id="P-5", study_date="20230101")
    uid = store_study(auth_radai, "page-now", patient_id="P-5", study_date="20240101", name="Poe^Edgar")
    other = store_study(auth_radai, "page-other", patient_id="P-6", name="Lee^Ann")
    fid, = add_findings(auth_radai, uid, [Scored(PNEUMONIA, 0.77, "urgent")], model_id="test-onnx")
    add_user(auth_radai, "reader", Role.RADIOLOGIST)
    browser_login(client, "reader")

    page = client.get("/worklist")
    assert page.status_code == 200
    rows = re.findall(r'data-study-uid="([0-9.]+)"', page.text)
    assert rows[0] == uid and set(rows) == {uid, prior, other}
    assert "pneumonia 77%" in page.text and "urgent positive AI finding (pneumonia)" in page.text
    version = re.search(r'"version": "([0-9a-f]+)"', page.text)
    assert version
    # Polling: nothing changed, nothing sent again; a change sends the rows.
    assert client.get("/worklist/rows", params={"version": version.group(1)}).status_code == 204
    assert client.get("/worklist/rows", params={"q": "lee"}).text.count("data-study-uid=") == 1

    study = client.get(f"/studies/{uid}")
    assert study.status_code == 200
    assert f'src="/viewer/viewer?StudyInstanceUIDs={uid}"' in study.text
    assert f'data-prior-uid="{prior}"' in study.text
    assert "Test model test-onnx 1.0 (radai tests) · licence: Apache-2.0" in study.text
    assert "Probability 77.0% · operating point 50.0%" in study.text
    side = client.get(f"/studies/{uid}", params={"compare": prior}).text
    # Side by side: both studies, in OHIF's layout for comparing a study with a prior.
    assert f"StudyInstanceUIDs={uid}%2C{prior}&amp;hangingProtocolId=%40ohif%2FhpCompare" in side
    csrf = client.cookies.get("radai_csrf")
    assert csrf
    refused = client.post(f"/studies/{uid}/findings/{fid}/verdict", data={"verdict": "agree"})
    assert refused.status_code == 403, "a cookie session needs the CSRF header"
    card = client.post(f"/studies/{uid}/findings/{fid}/verdict", data={"verdict": "agree"},
                       headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert card.status_code == 200 and 'data-verdict="agree"' in card.text
    signed = client.post(f"/studies/{uid}/report", data={"text": "Pneumonia.", "action": "sign"},
                         headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert signed.headers["HX-Redirect"] == f"/studies/{uid}"
    assert "Add an addendum" in client.get(f"/studies/{uid}").text

    audit = _audit(client, admin, actor="reader")
    by_action: dict[str, set[object]] = {}
    for row in audit:
        by_action.setdefault(str(row["action"]), set()).add(row["study_uid"])
    assert by_action["worklist.page"] == {uid, prior, other}
    assert by_action["worklist.study_page"] == {uid, prior}, "the study and the priors it shows"
    assert by_action["worklist.refresh"] == {other}
    assert by_action["worklist.verdict"] == {uid} and by_action["worklist.report_signed"] == {uid}
    assert all(row["outcome"] == "allowed" for row in audit if str(row["action"]).startswith("worklist."))
