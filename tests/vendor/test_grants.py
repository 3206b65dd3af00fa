"""Administrators decide which studies each vendor account sees; the view needs a key."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from radai.app import Radai, build_web_app
from radai.auth.models import AuditEntry
from radai.auth.roles import Role
from radai.config import ConfigError
from radai.datasets import service as datasets
from radai.deid import PseudonymKey
from tests.auth.conftest import add_user, bearer, token_for
from tests.fixtures.data import to_bytes
from tests.vendor.conftest import KEY, World, identified, vendor_settings

JSON = {"Accept": "application/dicom+json"}


def test_admin_grants_and_revokes_studies(world: World) -> None:
    a, b = identified("CT_small.dcm", "g-a", "a"), identified("MR_small.dcm", "g-b", "b")
    world.store(a)
    world.store(b)
    add_user(world.radai, "globex", Role.VENDOR)
    url = "/api/v1/vendor/grants"

    r = world.client.post(url, headers=world.admin,
                          json={"username": "acme", "study_instance_uids": [a.StudyInstanceUID]})
    assert r.status_code == 201
    assert [(g["username"], g["study_instance_uid"], g["granted_by"]) for g in r.json()] == [
        ("acme", a.StudyInstanceUID, "root")]
    world.grant(a.StudyInstanceUID, b.StudyInstanceUID)  # granting again keeps the first grant
    world.grant(b.StudyInstanceUID, username="globex")
    listed = world.client.get(url, headers=world.admin).json()
    assert [(g["username"], g["study_instance_uid"]) for g in listed] == [
        ("acme", a.StudyInstanceUID), ("acme", b.StudyInstanceUID), ("globex", b.StudyInstanceUID)]
    only = world.client.get(url, headers=world.admin, params={"username": "globex"}).json()
    assert [g["study_instance_uid"] for g in only] == [b.StudyInstanceUID]

    # Each vendor sees its own grants only.
    globex = bearer(token_for(world.client, "globex"))
    seen = world.client.get("/vendor/dicom-web/studies", headers={**globex, **JSON}).json()
    assert [s["0020000D"]["Value"][0] for s in seen] == [world.p(b.StudyInstanceUID)]
    assert len(world.get("/vendor/dicom-web/studies", headers=JSON).json()) == 2

    r = world.client.delete(f"{url}/acme/studies/{b.StudyInstanceUID}", headers=world.admin)
    assert r.status_code == 204
    assert len(world.get("/vendor/dicom-web/studies", headers=JSON).json()) == 1
    assert world.client.delete(f"{url}/acme/studies/{b.StudyInstanceUID}",
                               headers=world.admin).status_code == 404


def test_grants_are_checked(world: World) -> None:
    a = identified("CT_small.dcm", "c-a", "a")
    world.store(a)
    url = "/api/v1/vendor/grants"

    def post(body: dict) -> tuple[int, str]:
        r = world.client.post(url, headers=world.admin, json=body)
        return r.status_code, r.json()["detail"] if r.status_code != 201 else ""

    assert post({"username": "nobody", "study_instance_uids": [a.StudyInstanceUID]}) == (404, "no such user")
    status, detail = post({"username": "reader", "study_instance_uids": [a.StudyInstanceUID]})
    assert status == 422 and "vendor_view" in detail  # a radiologist account is no vendor
    assert post({"username": "acme", "study_instance_uids": [a.StudyInstanceUID, "1.2.3.999"]}) == (
        422, "study_instance_uids[1] is not a study in the archive")
    assert post({"username": "acme", "study_instance_uids": ["1.2.x"]}) == (
        422, "study_instance_uids[0] is not a valid UID")
    assert post({"username": "acme", "study_instance_uids": []})[0] == 422
    assert world.client.get(url, headers=world.admin).json() == []  # nothing half-granted
    # Only administrators manage grants; vendors cannot grant themselves more.
    for headers in (world.vendor, world.reader):
        r = world.client.post(url, headers=headers,
                              json={"username": "acme", "study_instance_uids": [a.StudyInstanceUID]})
        assert r.status_code == 403
        assert world.client.get(url, headers=headers).status_code == 403


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_without_a_key_the_view_is_off_and_says_which_setting(tmp_path: Path, db_url: str) -> None:
    radai = Radai(vendor_settings(tmp_path, db_url, deid={}))
    radai.prepare()
    try:
        add_user(radai, "acme", Role.VENDOR)
        with TestClient(build_web_app(radai)) as client:
            r = client.get("/vendor/dicom-web/studies", headers={**bearer(token_for(client, "acme")), **JSON})
        assert r.status_code == 503
        assert "deid.key_file or deid.key" in r.json()["detail"]
        with radai.db.session() as s:
            rows = list(s.scalars(select(AuditEntry).where(AuditEntry.actor == "acme",
                                                           AuditEntry.status == 503)))
        assert len(rows) == 1
    finally:
        radai.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_unusable_key_stops_start_up(tmp_path: Path, db_url: str) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"too short")
    radai = Radai(vendor_settings(tmp_path, db_url, deid={"key_file": str(short)}))
    try:
        with pytest.raises(ConfigError, match=r"invalid setting deid.key_file: .*at least 16 bytes"):
            build_web_app(radai)
    finally:
        radai.stop()
    with pytest.raises(ConfigError, match=r"vendor.options.*retain-uids.*pseudonymises UIDs"):
        vendor_settings(tmp_path, db_url, vendor={"options": ["retain-uids"]})
    with pytest.raises(ConfigError, match=r"vendor.options.*unknown de-identification option"):
        vendor_settings(tmp_path, db_url, vendor={"options": ["keep-everything"]})


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_key_file_gives_the_same_pseudonyms_as_the_same_key_inline(tmp_path: Path, db_url: str) -> None:
    key_file = tmp_path / "deid.key"
    key_file.write_text(KEY + "\n")
    radai = Radai(vendor_settings(tmp_path, db_url, deid={"key_file": str(key_file)}))
    radai.prepare()
    try:
        ds = identified("CT_small.dcm", "kf", "a")
        radai.archive.store(to_bytes(ds), source="test")
        add_user(radai, "root", Role.ADMIN)
        with TestClient(build_web_app(radai)) as client:
            admin = bearer(token_for(client, "root"))
            client.post("/api/v1/vendor/grants", headers=admin,
                        json={"username": "root", "study_instance_uids": [ds.StudyInstanceUID]})
            found = client.get("/vendor/dicom-web/studies", headers={**admin, **JSON}).json()
        assert found[0]["0020000D"]["Value"] == [PseudonymKey(KEY.encode()).uid(ds.StudyInstanceUID)]
    finally:
        radai.stop()


def test_a_dataset_version_is_granted_study_by_study(world: World) -> None:
    a, b, c = (identified("CT_small.dcm", f"d-{i}", "a") for i in range(3))
    for ds in (a, b, c):
        world.store(ds)
    with world.radai.db.transaction() as s:
        version = datasets.create_dataset(s, name="chest-demo", actor="root")
        datasets.add_studies(s, version=version, study_pks=datasets.study_pks_for_uids(
            s, [a.StudyInstanceUID, b.StudyInstanceUID]))
        datasets.create_dataset(s, name="empty-set", actor="root")

    def post(dataset: str) -> tuple[int, object]:
        r = world.client.post("/api/v1/vendor/grants", headers=world.admin,
                              json={"username": "acme", "dataset": dataset})
        return r.status_code, r.json() if r.status_code == 201 else r.json()["detail"]

    status, body = post("chest-demo@1")
    assert status == 201
    assert sorted(g["study_instance_uid"] for g in body) == sorted([a.StudyInstanceUID, b.StudyInstanceUID])
    seen = world.get("/vendor/dicom-web/studies", headers=JSON).json()
    assert sorted(s["0020000D"]["Value"][0] for s in seen) == sorted(
        world.p(ds.StudyInstanceUID) for ds in (a, b))
    assert post("chest-demo") == (422, "dataset: dataset chest-demo has no frozen version yet")
    assert post("chest-demo@7") == (422, "dataset: no version 7 of dataset chest-demo")
    assert post("empty-set@1") == (422, "dataset: the version holds no study")
    r = world.client.post("/api/v1/vendor/grants", headers=world.admin,
                          json={"username": "acme", "dataset": "chest-demo@1",
                                "study_instance_uids": [c.StudyInstanceUID]})
    assert r.status_code == 422  # one source at a time
