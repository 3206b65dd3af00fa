"""The de-identified vendor view: granted studies only, de-identified content only, pixels
untouched, consistent pseudonyms, withheld burned-in objects, every access audited."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian
from sqlalchemy import select

from radai.auth.models import AuditEntry
from radai.vendor.models import PseudonymousUid
from tests.fixtures.data import pydicom_test_file, sample_for_transfer_syntax, to_bytes, with_new_uids
from tests.vendor.conftest import (
    DATES,
    PATIENTS,
    World,
    assert_none_of,
    identified,
    parse_multipart,
    secrets_of,
)

JSON = {"Accept": "application/dicom+json"}


def _value(item: dict, tag: str) -> object:
    values = item.get(tag, {}).get("Value")
    return values[0] if values else None


def _audit(world: World, actor: str = "acme") -> list[AuditEntry]:
    with world.radai.db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.actor == actor).order_by(AuditEntry.id)))


@pytest.fixture
def two_patients(world: World) -> tuple[list, list]:
    """Study A (patient a: a CT and an MR series) and study B (patient b: one MR)."""
    ct = identified("CT_small.dcm", "a-ct", "a")
    mr = identified("MR_small.dcm", "a-mr", "a")
    mr.StudyInstanceUID = ct.StudyInstanceUID
    other = identified("MR_small.dcm", "b-mr", "b")
    for ds in (ct, mr, other):
        world.store(ds)
    return [ct, mr], [other]


def test_vendor_sees_only_granted_studies(world: World, two_patients: tuple[list, list]) -> None:
    (ct, _), (other,) = two_patients
    assert world.get("/vendor/dicom-web/studies", headers=JSON).status_code == 204  # nothing granted yet
    world.grant(ct.StudyInstanceUID)

    studies = world.get("/vendor/dicom-web/studies", headers=JSON)
    assert studies.status_code == 200
    assert [_value(i, "0020000D") for i in studies.json()] == [world.p(ct.StudyInstanceUID)]
    series = world.get("/vendor/dicom-web/series", headers=JSON).json()
    instances = world.get("/vendor/dicom-web/instances", headers=JSON).json()
    assert len(series) == 2 and len(instances) == 2
    assert {_value(i, "0020000D") for i in series + instances} == {world.p(ct.StudyInstanceUID)}

    # The other study is invisible: by its pseudonym, by its original UID, in any search.
    hidden = world.p(other.StudyInstanceUID)
    for url in (f"/vendor/dicom-web/studies/{hidden}/metadata", f"/vendor/dicom-web/studies/{hidden}",
                f"/vendor/dicom-web/studies/{hidden}/series",
                f"/vendor/dicom-web/studies/{other.StudyInstanceUID}/metadata"):
        r = world.get(url, headers=JSON)
        assert r.status_code == 404, url
        assert r.json()["detail"] == "no such study in the archive"
    for query in ({"StudyInstanceUID": hidden}, {"StudyInstanceUID": other.StudyInstanceUID},
                  {"Modality": "MR"}):
        found = world.get("/vendor/dicom-web/series", headers=JSON, params=query)
        items = found.json() if found.status_code == 200 else []
        assert hidden not in {_value(i, "0020000D") for i in items}, query


def test_vendor_content_is_de_identified(world: World, two_patients: tuple[list, list]) -> None:
    (ct, mr), _ = two_patients
    world.grant(ct.StudyInstanceUID)
    secrets = sorted(set(secrets_of(ct, "a")) | set(secrets_of(mr, "a")))
    study = world.p(ct.StudyInstanceUID)
    ct_url = (f"/vendor/dicom-web/studies/{study}/series/{world.p(ct.SeriesInstanceUID)}"
              f"/instances/{world.p(ct.SOPInstanceUID)}")
    responses = {
        "QIDO studies": world.get("/vendor/dicom-web/studies?includefield=all", headers=JSON),
        "QIDO series": world.get("/vendor/dicom-web/series?includefield=all", headers=JSON),
        "QIDO instances": world.get(f"/vendor/dicom-web/studies/{study}/instances?includefield=all"
                                    "&includefield=00080081,00100050,00321032", headers=JSON),
        "study metadata": world.get(f"/vendor/dicom-web/studies/{study}/metadata", headers=JSON),
        "instance metadata": world.get(f"{ct_url}/metadata", headers=JSON),
        "study retrieve": world.get(f"/vendor/dicom-web/studies/{study}"),
        "instance retrieve": world.get(ct_url, headers={"Accept": "application/dicom"}),
        "frames": world.get(f"{ct_url}/frames/1"),
        "pixel bulk data": world.get(f"{ct_url}/bulkdata/7FE00010"),
    }
    for what, r in responses.items():
        assert r.status_code == 200, (what, r.status_code, r.text[:300])
        assert_none_of(secrets, r.content, what)
    # The same scan finds every one of them in what the clinical view gives a radiologist.
    clinical = b"".join(world.client.get(url, headers={**world.reader, **accept}).content for url, accept in (
        (f"/dicom-web/studies/{ct.StudyInstanceUID}/metadata", JSON),
        ("/dicom-web/studies?includefield=all", JSON),
        (f"/dicom-web/studies/{ct.StudyInstanceUID}", {})))
    assert [s for s in secrets if s.encode() not in clinical] == []

    # What a vendor sees instead: a pseudonymous Patient ID, no name, shifted dates, a cleaned
    # description, and the de-identification recorded (PS3.15 E.1.1).
    item = responses["QIDO studies"].json()[0]
    meta = responses["instance metadata"].json()[0]
    for obj in (item, meta):
        assert _value(obj, "00100020") not in (None, PATIENTS["a"]["PatientID"])
        assert _value(obj, "00100010") is None
        assert _value(obj, "00120062") == "YES"
        assert _value(obj, "00080050") is None  # Accession Number emptied
    shifted = _value(item, "00080020")
    assert isinstance(shifted, str) and shifted != DATES["a"]
    days = (dt.date.fromisoformat(DATES["a"][:4] + "-" + DATES["a"][4:6] + "-" + DATES["a"][6:])
            - dt.datetime.strptime(shifted, "%Y%m%d").date()).days
    assert 1 <= days <= 3650
    assert _value(meta, "00080020") == shifted == _value(meta, "00080023")  # one shift per patient
    assert _value(meta, "00100020") == _value(item, "00100020")
    assert _value(item, "00081030") == "HEAD followup"  # Clean Descriptors: the name is gone
    assert _value(item, "00081190") == f"http://testserver/vendor/dicom-web/studies/{study}"


def test_pseudonyms_are_consistent_across_requests(world: World, two_patients: tuple[list, list]) -> None:
    (ct, mr), _ = two_patients
    world.grant(ct.StudyInstanceUID)
    first = world.get("/vendor/dicom-web/instances", headers=JSON).json()
    second = world.get("/vendor/dicom-web/instances", headers=JSON).json()
    assert first == second
    uids = {(_value(i, "0020000E"), _value(i, "00080018")) for i in first}
    assert uids == {(world.p(ct.SeriesInstanceUID), world.p(ct.SOPInstanceUID)),
                    (world.p(mr.SeriesInstanceUID), world.p(mr.SOPInstanceUID))}
    # Metadata and search agree; a search by pseudonymous UID finds the same objects.
    meta = world.get(f"/vendor/dicom-web/studies/{world.p(ct.StudyInstanceUID)}/metadata", headers=JSON)
    assert {(_value(m, "0020000E"), _value(m, "00080018")) for m in meta.json()} == uids
    by_uid = world.get("/vendor/dicom-web/instances", headers=JSON,
                       params={"SOPInstanceUID": world.p(mr.SOPInstanceUID)}).json()
    assert [_value(i, "00080018") for i in by_uid] == [world.p(mr.SOPInstanceUID)]
    by_series = world.get("/vendor/dicom-web/instances", headers=JSON,
                          params={"SeriesInstanceUID": world.p(ct.SeriesInstanceUID), "Modality": "CT"})
    assert [_value(i, "00080018") for i in by_series.json()] == [world.p(ct.SOPInstanceUID)]
    # An original UID matches nothing: only pseudonyms address objects.
    assert world.get("/vendor/dicom-web/instances", headers=JSON,
                     params={"SOPInstanceUID": mr.SOPInstanceUID}).status_code == 204
    # The map of issued pseudonyms holds them (and only the view reads it).
    with world.radai.db.session() as s:
        mapped = dict(s.execute(select(PseudonymousUid.pseudonym, PseudonymousUid.original)).all())
    assert mapped[world.p(mr.SOPInstanceUID)] == mr.SOPInstanceUID


def test_wado_by_pseudonym_gives_the_de_identified_instance_with_original_pixels(
        world: World, two_patients: tuple[list, list]) -> None:
    (ct, _), _ = two_patients
    world.grant(ct.StudyInstanceUID)
    url = (f"/vendor/dicom-web/studies/{world.p(ct.StudyInstanceUID)}/series/{world.p(ct.SeriesInstanceUID)}"
           f"/instances/{world.p(ct.SOPInstanceUID)}")
    r = world.get(url)
    parts = parse_multipart(r)
    assert len(parts) == 1 and parts[0].content_type.startswith("application/dicom")
    got = dcmread(io.BytesIO(parts[0].data))
    assert got.SOPInstanceUID == world.p(ct.SOPInstanceUID)
    assert got.file_meta.MediaStorageSOPInstanceUID == got.SOPInstanceUID
    assert got.PatientIdentityRemoved == "YES" and got.PatientID != ct.PatientID
    assert got.file_meta.TransferSyntaxUID == ct.file_meta.TransferSyntaxUID
    assert got.PixelData == ct.PixelData
    assert np.array_equal(got.pixel_array, ct.pixel_array)
    # Frames: the stored pixel bytes, as the clinical view gives them.
    clinical = world.client.get(f"/dicom-web/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}"
                                f"/instances/{ct.SOPInstanceUID}/frames/1", headers=world.reader)
    vendor = world.get(f"{url}/frames/1")
    assert vendor.status_code == 200 and parse_multipart(vendor)[0].data == parse_multipart(clinical)[0].data
    # Native Explicit VR Little Endian on request, still de-identified.
    native = world.get(url, headers={"Accept": 'multipart/related; type="application/dicom"; '
                                               "transfer-syntax=1.2.840.10008.1.2.1"})
    assert native.status_code == 200
    assert np.array_equal(dcmread(io.BytesIO(parse_multipart(native)[0].data)).pixel_array, ct.pixel_array)


def test_burned_in_objects_are_withheld(world: World) -> None:
    ct = identified("CT_small.dcm", "w-ct", "a")
    us = identified("US1_UNCR.dcm", "w-us", "a")
    us.StudyInstanceUID = ct.StudyInstanceUID
    world.store(ct)
    world.store(us)
    world.grant(ct.StudyInstanceUID)
    study = world.p(ct.StudyInstanceUID)
    us_url = (f"/vendor/dicom-web/studies/{study}/series/{world.p(us.SeriesInstanceUID)}"
              f"/instances/{world.p(us.SOPInstanceUID)}")
    for suffix in ("", "/metadata", "/frames/1", "/bulkdata/7FE00010"):
        r = world.get(us_url + suffix, headers=JSON if suffix == "/metadata" else {})
        assert r.status_code == 403, suffix
        assert "Ultrasound Image Storage objects commonly carry burned-in text" in r.json()["detail"]
    # A study retrieve leaves it out and says so (206, Warning); the CT comes whole.
    whole = world.get(f"/vendor/dicom-web/studies/{study}")
    assert whole.status_code == 206 and "1 instance(s) withheld" in whole.headers["warning"]
    parts = parse_multipart(whole)
    assert [dcmread(io.BytesIO(p.data)).SOPInstanceUID for p in parts] == [world.p(ct.SOPInstanceUID)]
    meta = world.get(f"/vendor/dicom-web/studies/{study}/metadata", headers=JSON)
    assert meta.status_code == 206 and [_value(m, "00080018") for m in meta.json()] == [
        world.p(ct.SOPInstanceUID)]
    denied = [e for e in _audit(world) if e.outcome == "denied"]
    assert {e.action for e in denied} >= {"vendor.wado.instances", "vendor.wado.metadata",
                                          "vendor.wado.frames", "vendor.wado.bulkdata"}
    assert {e.study_uid for e in denied} == {ct.StudyInstanceUID}


def test_matching_on_values_the_view_replaces_is_refused(world: World,
                                                         two_patients: tuple[list, list]) -> None:
    (ct, _), _ = two_patients
    world.grant(ct.StudyInstanceUID)
    for key, value in (("PatientName", "Vendorscan*"), ("PatientID", PATIENTS["a"]["PatientID"]),
                       ("StudyDate", DATES["a"]), ("AccessionNumber", "ACC*")):
        r = world.get("/vendor/dicom-web/studies", headers=JSON, params={key: value})
        assert r.status_code == 400, key
        assert r.json()["detail"].startswith(f"{key} cannot be a matching key in the de-identified view")
        assert value.encode() not in r.content
    assert world.get("/vendor/dicom-web/series", headers=JSON, params={"Modality": "CT"}).status_code == 200
    # Universal matching (an empty value) just returns the attribute, de-identified.
    r = world.get("/vendor/dicom-web/studies", headers=JSON, params={"PatientName": ""})
    assert r.status_code == 200 and _value(r.json()[0], "00100010") is None


def test_clinical_routes_stay_forbidden_for_vendors(world: World, two_patients: tuple[list, list]) -> None:
    (ct, _), _ = two_patients
    world.grant(ct.StudyInstanceUID)
    assert world.get("/dicom-web/studies", headers=JSON).status_code == 403
    assert world.get(f"/dicom-web/studies/{ct.StudyInstanceUID}/metadata", headers=JSON).status_code == 403
    # ...and the vendor view is not for clinical readers (who have the identified one).
    r = world.client.get("/vendor/dicom-web/studies", headers={**world.reader, **JSON})
    assert r.status_code == 403 and "vendor_view" in r.json()["detail"]
    assert any(e.outcome == "denied" and e.action == "GET /vendor/dicom-web/studies"
               for e in _audit(world, "reader"))


@pytest.mark.parametrize("db_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_every_vendor_access_is_audited_with_the_original_study(world: World,
                                                                two_patients: tuple[list, list]) -> None:
    (ct, _), (other,) = two_patients
    world.grant(ct.StudyInstanceUID, other.StudyInstanceUID)
    study, hidden = world.p(ct.StudyInstanceUID), world.p(other.StudyInstanceUID)
    series_url = f"/vendor/dicom-web/studies/{study}/series/{world.p(ct.SeriesInstanceUID)}"
    assert world.get("/vendor/dicom-web/studies", headers=JSON).status_code == 200
    # The administrator takes the other study back: its pseudonym, known to the vendor, now
    # answers 404, and the audit log records the refused attempt against the original study.
    r = world.client.delete(f"/api/v1/vendor/grants/acme/studies/{other.StudyInstanceUID}",
                            headers=world.admin)
    assert r.status_code == 204
    world.get(f"/vendor/dicom-web/studies/{study}/series", headers=JSON)
    world.get(f"{series_url}/metadata", headers=JSON)
    world.get(series_url)
    world.get(f"{series_url}/instances/{world.p(ct.SOPInstanceUID)}/frames/1")
    assert world.get(f"/vendor/dicom-web/studies/{hidden}/metadata", headers=JSON).status_code == 404
    assert world.get("/vendor/dicom-web/studies/2.25.1/metadata", headers=JSON).status_code == 404
    rows = [e for e in _audit(world) if e.action.startswith("vendor.")]
    assert [(e.action, e.study_uid, e.outcome, e.status) for e in rows] == [
        ("vendor.qido.studies", ct.StudyInstanceUID, "allowed", 200),
        ("vendor.qido.studies", other.StudyInstanceUID, "allowed", 200),
        ("vendor.qido.series", ct.StudyInstanceUID, "allowed", 200),
        ("vendor.wado.metadata", ct.StudyInstanceUID, "allowed", 200),
        ("vendor.wado.instances", ct.StudyInstanceUID, "allowed", 200),
        ("vendor.wado.frames", ct.StudyInstanceUID, "allowed", 200),
        ("vendor.wado.metadata", other.StudyInstanceUID, "denied", 404),
        ("vendor.wado.metadata", None, "allowed", 404),  # no such study: nothing to name
    ]
    assert all(e.actor_kind == "user" and e.client for e in rows)
    # The audit log names originals only; pseudonyms would lead an auditor nowhere.
    assert not {e.study_uid for e in rows} & {study, hidden}
    # Grants and revocations are audited too, under the administrator's name.
    admin_rows = [(e.action, e.study_uid) for e in _audit(world, "root") if e.action.startswith("vendor.")]
    assert admin_rows == [("vendor.grant", ct.StudyInstanceUID), ("vendor.grant", other.StudyInstanceUID),
                          ("vendor.revoke", other.StudyInstanceUID)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
                                "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"])
def test_every_stored_syntax_keeps_its_pixels(world: World, ts: str) -> None:
    if ts == DeflatedExplicitVRLittleEndian:
        # The deflated sample is a secondary capture (withheld): an MR image deflated instead.
        ds = dcmread(pydicom_test_file("MR_small.dcm"))
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds = dcmread(io.BytesIO(to_bytes(ds)))
    else:
        ds = dcmread(sample_for_transfer_syntax(ts))
    ds = with_new_uids(ds, f"ts-{ts}")
    world.store(ds)
    world.grant(ds.StudyInstanceUID)
    url = (f"/vendor/dicom-web/studies/{world.p(ds.StudyInstanceUID)}/series/{world.p(ds.SeriesInstanceUID)}"
           f"/instances/{world.p(ds.SOPInstanceUID)}")
    got = dcmread(io.BytesIO(parse_multipart(world.get(url))[0].data))
    assert got.file_meta.TransferSyntaxUID == ts
    assert got.PatientIdentityRemoved == "YES" and got.SOPInstanceUID == world.p(ds.SOPInstanceUID)
    assert np.array_equal(got.pixel_array, ds.pixel_array)
    (meta,) = world.get(f"{url}/metadata", headers=JSON).json()
    assert meta["7FE00010"]["BulkDataURI"] == f"http://testserver{url}/bulkdata/7FE00010"
    assert meta["00083002"]["Value"] == [ts]
    clinical = (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}/bulkdata/7FE00010")
    vendor_pixels = world.get(f"{url}/bulkdata/7FE00010")
    assert vendor_pixels.status_code == 200
    assert [p.data for p in parse_multipart(vendor_pixels)] == [
        p.data for p in parse_multipart(world.client.get(clinical, headers=world.reader))]
