"""``/api/v1/datasets``: who may read and change datasets, and what a version shows."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from radai.app import Radai
from radai.auth.models import AuditEntry
from radai.auth.roles import Role
from radai.datasets.service import (
    CodeRef,
    add_studies,
    create_dataset,
    freeze,
    get_version,
    set_card,
    set_label,
    study_pks_for_uids,
)
from tests.datasets.conftest import store

Headers = Callable[..., dict[str, str]]
CARD = {"purpose": "api tests", "source": "pydicom", "inclusion_criteria": "two", "label_method": "made up"}


def _dataset(radai: Radai) -> list[str]:
    uids = [store(radai, "CT_small.dcm", "api-ct"), store(radai, "MR_small.dcm", "api-mr")]
    with radai.db.transaction() as s:
        version = create_dataset(s, name="api-set", actor="tests", description="two studies", card=CARD)
        add_studies(s, version=version, study_pks=study_pks_for_uids(s, uids))
        for uid, value in zip(uids, ("present", "absent"), strict=True):
            set_label(
                s,
                version=version,
                study=uid,
                code=CodeRef("SCT", "233604007", "Pneumonia"),
                value=value,
                method="consensus",
                established_by="",
                actor="tests",
            )
        freeze(s, version=version, storage=radai.storage, actor="tests")
    return uids


def test_readers_see_datasets_and_versions_with_their_manifest(
    auth_radai: Radai, client: TestClient, user_headers: Headers
) -> None:
    uids = _dataset(auth_radai)
    reader = user_headers(Role.RADIOLOGIST)
    listing = client.get("/api/v1/datasets", headers=reader)
    assert listing.status_code == 200
    [entry] = listing.json()
    assert entry["name"] == "api-set" and entry["description"] == "two studies"
    [v1] = entry["versions"]
    with auth_radai.db.session() as s:
        sha = get_version(s, name="api-set", number=1).manifest_sha256
    assert (v1["number"], v1["state"], v1["n_studies"], v1["manifest_sha256"]) == (1, "frozen", 2, sha)
    assert v1["url"] == "/api/v1/datasets/api-set/versions/1"
    assert client.get("/api/v1/datasets/api-set", headers=reader).json() == entry
    version = client.get(v1["url"], headers=reader)
    assert version.status_code == 200
    body = version.json()
    assert body["manifest"]["format"] == "radai.dataset-manifest/1"
    assert [s["study_instance_uid"] for s in body["manifest"]["studies"]] == uids
    assert body["card"]["findings"][0]["present"] == 1 and body["card"]["purpose"] == "api tests"
    # The manifest names studies: the read is in the audit log with their UIDs.
    with auth_radai.db.session() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "datasets.read")))
    assert sorted(r.study_uid or "" for r in rows) == sorted(uids)
    assert {r.actor for r in rows} == {"u-radiologist"}
    assert client.get("/api/v1/datasets/nope", headers=reader).status_code == 404
    assert client.get("/api/v1/datasets/api-set/versions/7", headers=reader).status_code == 404
    # Vendors and auditors never see identified study lists.
    for role in (Role.VENDOR, Role.AUDITOR):
        assert client.get("/api/v1/datasets", headers=user_headers(role)).status_code == 403
        assert client.get(v1["url"], headers=user_headers(role)).status_code == 403


def test_creating_and_freezing_need_manage_models(
    auth_radai: Radai, client: TestClient, user_headers: Headers
) -> None:
    new = {"name": "new-set", "description": "made over HTTP", "purpose": "api tests", "source": "pydicom"}
    assert (
        client.post("/api/v1/datasets", json=new, headers=user_headers(Role.RADIOLOGIST)).status_code == 403
    )
    admin = user_headers(Role.ADMIN)
    made = client.post("/api/v1/datasets", json=new, headers=admin)
    assert made.status_code == 201, made.text
    assert (
        made.json()["versions"][0]["state"] == "draft"
        and made.json()["versions"][0]["created_by"] == "u-admin"
    )
    assert client.post("/api/v1/datasets", json=new, headers=admin).status_code == 409
    assert client.post("/api/v1/datasets", json={**new, "name": "Bad Name"}, headers=admin).status_code == 422
    uid = store(auth_radai, "CT_small.dcm", "api-new")
    with auth_radai.db.transaction() as s:
        add_studies(s, version=get_version(s, name="new-set"), study_pks=study_pks_for_uids(s, [uid]))
    draft = client.get("/api/v1/datasets/new-set/versions/1", headers=admin).json()
    assert draft["manifest"] is None and [st["key"] for st in draft["studies"]] == ["S0001"]
    refused = client.post("/api/v1/datasets/new-set/versions/1/freeze", headers=admin)
    assert refused.status_code == 409 and "needs its inclusion criteria" in refused.json()["detail"]
    with auth_radai.db.transaction() as s:
        version = get_version(s, name="new-set")
        set_card(s, version=version, inclusion_criteria="one CT", label_method="made up")
        set_label(
            s,
            version=version,
            study="S0001",
            code=CodeRef("SCT", "233604007", "Pneumonia"),
            value="absent",
            method="made up",
            established_by="",
            actor="tests",
        )
    reader_freeze = client.post(
        "/api/v1/datasets/new-set/versions/1/freeze", headers=user_headers(Role.RADIOLOGIST)
    )
    assert reader_freeze.status_code == 403
    frozen = client.post("/api/v1/datasets/new-set/versions/1/freeze", headers=admin)
    assert frozen.status_code == 200 and frozen.json()["state"] == "frozen"
    assert frozen.json()["frozen_by"] == "u-admin" and frozen.json()["manifest_sha256"]
    again = client.post("/api/v1/datasets/new-set/versions/1/freeze", headers=admin)
    assert again.status_code == 409 and "is frozen and cannot change" in again.json()["detail"]
