"""The audit log: rows for reads of patient data and for denied attempts, append-only in
the database itself, filtered reading, CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from radai.app import Radai
from radai.archive.models import Study
from radai.auth.audit import ActorKind, Outcome, record_access
from radai.auth.deps import Audit, protected
from radai.auth.models import AuditEntry
from radai.auth.roles import Capability, Role
from tests.fixtures.data import pydicom_data


def _rows(radai: Radai, **where: object) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id)
    for key, value in where.items():
        query = query.where(getattr(AuditEntry, key) == value)
    with radai.db.session() as s:
        return list(s.scalars(query))


def _store_study(radai: Radai, name: str = "RG1_UNCI.dcm") -> str:
    return radai.archive.store(pydicom_data(name).read_bytes(), source="import").study_instance_uid


def test_dicomweb_read_of_a_study_is_audited(auth_radai: Radai, client: TestClient,
                                             user_headers: Callable[..., dict[str, str]]) -> None:
    study = _store_study(auth_radai)
    r = client.get(f"/dicom-web/studies/{study}/metadata",
                   headers={**user_headers(Role.RADIOLOGIST), "Accept": "application/dicom+json"})
    assert r.status_code == 200
    rows = _rows(auth_radai, study_uid=study)
    assert len(rows) == 1
    row = rows[0]
    assert (row.actor, row.actor_kind, row.outcome, row.status) == ("u-radiologist", "user", "allowed", 200)
    # The route names its action (or the route template is used); never the UID itself.
    assert row.action and study not in row.action
    assert row.client == "testclient"
    assert row.at is not None and row.at.tzinfo is not None


def test_denied_attempts_are_audited(auth_radai: Radai, client: TestClient,
                                     user_headers: Callable[..., dict[str, str]]) -> None:
    study = _store_study(auth_radai)
    url = f"/dicom-web/studies/{study}/metadata"
    # A vendor may not see identified data.
    r = client.get(url, headers=user_headers(Role.VENDOR))
    assert r.status_code == 403
    # Nor may anyone without credentials.
    assert client.get(url).status_code == 401
    rows = _rows(auth_radai, study_uid=study)
    assert [(r.actor, r.actor_kind, r.outcome, r.status) for r in rows] == [
        ("u-vendor", "user", "denied", 403), ("anonymous", "anonymous", "denied", 401)]
    assert {r.action for r in rows} == {"GET /dicom-web/studies/{study}/metadata"}
    # Requests to routes without patient data are not audited.
    client.get("/api/v1/auth/me")
    assert _rows(auth_radai, action="GET /api/v1/auth/me") == []


def test_routes_record_the_studies_they_return(app: FastAPI, auth_radai: Radai, client: TestClient,
                                               user_headers: Callable[..., dict[str, str]]) -> None:
    studies = sorted({_store_study(auth_radai, n) for n in ("RG1_UNCI.dcm", "MR2_UNCI.dcm")})
    router = APIRouter(prefix="/api/v1/search-probe")

    @router.get("")
    def search(audit: Audit) -> list[str]:
        with auth_radai.db.session() as s:
            found = list(s.scalars(select(Study.study_instance_uid).order_by(Study.study_instance_uid)))
        audit.record(found, action="probe.search")
        return found

    app.include_router(router, dependencies=protected(Capability.READ_STUDIES))
    r = client.get("/api/v1/search-probe", headers=user_headers(Role.ANNOTATOR))
    assert r.json() == studies
    rows = [r for r in _rows(auth_radai, actor="u-annotator") if r.action != "auth.login.token"]
    # One row per returned study, and no second row of the middleware for the same request.
    assert sorted((r.study_uid, r.action, r.outcome) for r in rows) == [
        (s, "probe.search", "allowed") for s in studies]


def test_record_access_for_dimse_peers(auth_radai: Radai) -> None:
    record_access(auth_radai.db, actor="ORTHANC", actor_kind=ActorKind.AE, action="dimse.c-move",
                  study_uid="1.2.3.4", client="192.0.2.5", outcome=Outcome.ALLOWED, status=0x0000,
                  destination="WORKSTATION1")
    with auth_radai.db.transaction() as s:
        record_access(s, actor="STRANGER", actor_kind="ae", action="dimse.c-get", study_uid=["1.2", "1.3"],
                      client="192.0.2.6", outcome="denied", status=0xA801)
    rows = _rows(auth_radai)
    assert [(r.actor, r.actor_kind, r.study_uid, r.outcome, r.status, r.destination) for r in rows] == [
        ("ORTHANC", "ae", "1.2.3.4", "allowed", 0, "WORKSTATION1"),
        ("STRANGER", "ae", "1.2", "denied", 0xA801, None), ("STRANGER", "ae", "1.3", "denied", 0xA801, None)]
    with pytest.raises(ValueError, match="actor"):
        record_access(auth_radai.db, actor="", action="x", study_uid=None, client=None, outcome="allowed")
    with pytest.raises(ValueError):
        record_access(auth_radai.db, actor="A", action="x", study_uid=None, client=None, outcome="maybe")


def test_audit_log_is_append_only_in_the_database(auth_radai: Radai) -> None:
    record_access(auth_radai.db, actor="rad1", action="dicomweb.wado", study_uid="1.2.3", client="::1",
                  outcome=Outcome.ALLOWED, status=200)
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), auth_radai.db.transaction() as s:
            s.execute(text(statement))
    if auth_radai.db.engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), auth_radai.db.transaction() as s:
            s.execute(text("TRUNCATE audit_log"))
    rows = _rows(auth_radai)
    assert [(r.actor, r.study_uid) for r in rows] == [("rad1", "1.2.3")]
    # New rows can still be appended.
    record_access(auth_radai.db, actor="rad2", action="x", study_uid=None, client="", outcome="allowed")
    assert len(_rows(auth_radai)) == 2


def _seed(radai: Radai) -> None:
    for i in range(5):
        record_access(radai.db, actor="rad1", action="dicomweb.wado", study_uid=f"1.2.{i}",
                      client="192.0.2.1", outcome=Outcome.ALLOWED, status=200)
    record_access(radai.db, actor="vend1", action="dicomweb.wado", study_uid="1.2.0", client="192.0.2.9",
                  outcome=Outcome.DENIED, status=403)
    record_access(radai.db, actor="=HYPERLINK(\"x\")", actor_kind="ae", action="dimse.c-move",
                  study_uid="1.2.9", client="192.0.2.8", outcome=Outcome.ALLOWED, status=0,
                  destination="+VIEWER")


def test_audit_api_filters_and_pages(auth_radai: Radai, client: TestClient,
                                     user_headers: Callable[..., dict[str, str]]) -> None:
    _seed(auth_radai)
    auditor = user_headers(Role.AUDITOR)
    r = client.get("/api/v1/audit", params={"actor": "rad1", "limit": 2, "offset": 1}, headers=auditor)
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [i["study_uid"] for i in page["items"]] == ["1.2.3", "1.2.2"]  # newest first
    r = client.get("/api/v1/audit", params={"study_uid": "1.2.0", "outcome": "denied"}, headers=auditor)
    assert [(i["actor"], i["status"]) for i in r.json()["items"]] == [("vend1", 403)]
    # Where a C-MOVE sent the data is a column and a filter of its own.
    r = client.get("/api/v1/audit", params={"destination": "+VIEWER"}, headers=auditor)
    assert [(i["study_uid"], i["destination"]) for i in r.json()["items"]] == [("1.2.9", "+VIEWER")]
    assert client.get("/api/v1/audit", params={"outcome": "perhaps"}, headers=auditor).status_code == 422
    assert client.get("/api/v1/audit", params={"limit": 0}, headers=auditor).status_code == 422
    r = client.get("/api/v1/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=auditor)
    assert r.json()["total"] == 0
    # Reading the audit log is itself audited.
    reads = _rows(auth_radai, action="audit.read")
    assert len(reads) == 4 and {r.actor for r in reads} == {"u-auditor"}
    # Radiologists may not read it, and the attempt is recorded.
    assert client.get("/api/v1/audit", headers=user_headers(Role.RADIOLOGIST)).status_code == 403
    assert _rows(auth_radai, actor="u-radiologist", action="GET /api/v1/audit")[0].outcome == "denied"


def test_audit_csv_export(auth_radai: Radai, client: TestClient,
                          user_headers: Callable[..., dict[str, str]]) -> None:
    _seed(auth_radai)
    r = client.get("/api/v1/audit.csv", headers=user_headers(Role.ADMIN))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["study_uid"] for row in table[:5]] == [f"1.2.{i}" for i in range(5)]  # oldest first
    assert table[5]["actor"] == "vend1" and table[5]["outcome"] == "denied" and table[5]["status"] == "403"
    # A value that a spreadsheet would run as a formula is kept as text.
    assert table[6]["actor"].startswith("'=") and table[6]["destination"] == "'+VIEWER"
    assert table[0]["destination"] == ""  # read here, not sent anywhere
    # Filters apply to the export too.
    r = client.get("/api/v1/audit.csv", params={"actor": "vend1"}, headers=user_headers(Role.ADMIN))
    assert len(list(csv.DictReader(io.StringIO(r.text)))) == 1
    # The export is itself audited.
    exports = _rows(auth_radai, action="audit.export")
    assert len(exports) == 2 and exports[0].actor == "u-admin" and exports[0].outcome == "allowed"
