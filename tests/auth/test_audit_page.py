"""The /audit page: auditors and admins read the audit log with filters, paging and a CSV
export; reading it is itself audited; nobody else may open it."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from radai.app import Radai
from radai.auth.audit import ActorKind, Outcome, record_access
from radai.auth.models import AuditEntry
from radai.auth.roles import Role
from tests.auth.conftest import add_user, browser_login

STUDY = "1.2.826.0.1.3680043.8.498.4242"


def _seed(radai: Radai) -> None:
    """Rows as the rest of radai writes them: study reads, denials, a DIMSE peer."""
    for i in range(5):
        record_access(radai.db, actor="dr-who", action="dicomweb.wado.metadata", study_uid=f"{STUDY}.{i}",
                      client="10.0.0.7", outcome=Outcome.ALLOWED, status=200)
    record_access(radai.db, actor="acme", action="GET /dicom-web/studies", study_uid=None,
                  client="192.0.2.9", outcome=Outcome.DENIED, status=403)
    record_access(radai.db, actor="PACS1", actor_kind=ActorKind.AE, action="dimse.c-move",
                  study_uid=STUDY, client="10.0.0.8", outcome=Outcome.ALLOWED, status=0,
                  destination="WS-READING-3")


def _rows_shown(page: str) -> list[str]:
    body = re.search(r"<tbody>(.*?)</tbody>", page, re.S)
    assert body
    return re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)


def test_audit_page_is_for_auditors_and_admins_only(auth_radai: Radai, client: TestClient,
                                                    user_headers: Callable[..., dict[str, str]]) -> None:
    html = {"Accept": "text/html"}
    for role in (Role.RADIOLOGIST, Role.VENDOR, Role.ANNOTATOR):
        r = client.get("/audit", headers={**user_headers(role), **html})
        assert r.status_code == 403, role
        assert "read_audit" in r.json()["detail"]
    for role in (Role.AUDITOR, Role.ADMIN):
        assert client.get("/audit", headers={**user_headers(role), **html}).status_code == 200
    # The refusals are in the log too (the page shows study UIDs).
    with auth_radai.db.session() as s:
        denied = list(s.scalars(select(AuditEntry.actor).where(AuditEntry.action == "GET /audit",
                                                               AuditEntry.outcome == "denied")))
    assert sorted(denied) == ["u-annotator", "u-radiologist", "u-vendor"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_auditor_filters_pages_and_exports(auth_radai: Radai, client: TestClient) -> None:
    _seed(auth_radai)
    add_user(auth_radai, "aud", Role.AUDITOR)
    browser_login(client, "aud")

    page = client.get("/audit")
    assert page.status_code == 200 and "Audit log" in page.text
    assert 'href="/audit"' in page.text  # the navigation names the page
    rows = _rows_shown(page.text)
    assert len(rows) >= 8  # the seeded rows and the auditor's own login
    assert "dimse.c-move" in page.text and "PACS1" in page.text

    by_actor = client.get("/audit", params={"actor": "dr-who", "limit": 2})
    shown = _rows_shown(by_actor.text)
    assert len(shown) == 2 and all("dr-who" in r for r in shown)
    assert f"{STUDY}.4" in shown[0] and f"{STUDY}.3" in shown[1]  # newest first
    assert "5 matching entries, showing 1–2" in by_actor.text
    older = re.search(r'href="(/audit\?[^"]+)">Older', by_actor.text)
    assert older and "actor=dr-who" in older.group(1) and "offset=2" in older.group(1)
    second = client.get(older.group(1).replace("&amp;", "&"))
    assert [STUDY + ".2" in r for r in _rows_shown(second.text)] == [True, False]
    assert "← Newer" in second.text

    denied = client.get("/audit", params={"outcome": "denied"})
    assert [("acme" in r) for r in _rows_shown(denied.text)] == [True]
    one_study = client.get("/audit", params={"study_uid": STUDY})
    assert len(_rows_shown(one_study.text)) == 1 and "PACS1" in one_study.text
    sent = client.get("/audit", params={"destination": "WS-READING-3"})
    (row,) = _rows_shown(sent.text)
    assert "PACS1" in row and "<td>WS-READING-3</td>" in row and "dimse.c-move" in row
    future = client.get("/audit", params={"since": "2999-01-01T00:00"})
    assert "0 matching entries" in future.text and "No entry matches." in future.text
    bad = client.get("/audit", params={"until": "yesterday"})
    assert bad.status_code == 422 and "until must be a date and time" in bad.text

    # The export link carries the filters and gives the same rows as CSV.
    link = re.search(r'href="(/api/v1/audit\.csv[^"]*)"', by_actor.text)
    assert link and link.group(1) == "/api/v1/audit.csv?actor=dr-who"
    exported = client.get(link.group(1))
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["study_uid"] for r in lines] == [f"{STUDY}.{i}" for i in range(5)]

    # Every view of the page is itself in the log, under the auditor's name.
    with auth_radai.db.session() as s:
        reads = list(s.scalars(select(AuditEntry).where(AuditEntry.actor == "aud",
                                                        AuditEntry.action == "audit.read")))
    assert len(reads) == 7 and all(r.outcome == "allowed" and r.study_uid is None for r in reads)
