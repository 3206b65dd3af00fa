"""STOW-RS (PS3.18 §10.5): storing real instances, the Store Instances Response, and
every way a request or a part is refused with nothing half-stored."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.dataset import Dataset

from radai.archive.parse import RejectReason
from radai.archive.storage import relative_path_for
from tests.dicomweb.conftest import Web, multipart_body, sample, sample_bytes
from tests.fixtures.data import to_bytes

CT = "CT_small.dcm"
RETRIEVE_URL, FAILED, REFERENCED = "00081190", "00081198", "00081199"
SOP_CLASS, SOP_INSTANCE, FAILURE_REASON = "00081150", "00081155", "00081197"


def _uids(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data), stop_before_pixels=True)


def _value(item: dict[str, Any], tag: str) -> Any:
    return item[tag]["Value"][0]


def _failures(body: dict[str, Any]) -> list[int]:
    return [_value(item, FAILURE_REASON) for item in body.get(FAILED, {}).get("Value", [])]


def _assert_not_stored(web: Web, sop_instance_uid: str) -> None:
    assert not web.radai.archive.contains(sop_instance_uid)
    assert not (web.radai.storage.root / relative_path_for(sop_instance_uid)).exists()


def test_one_instance_is_stored_as_sent(web: Web) -> None:
    data = sample_bytes(CT, "stow-one")
    ds = _uids(data)
    r = web.stow([data])
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/dicom+json"
    body = r.json()
    assert _value(body, RETRIEVE_URL).endswith(f"/dicom-web/studies/{ds.StudyInstanceUID}")
    (ref,) = body[REFERENCED]["Value"]
    assert _value(ref, SOP_CLASS) == ds.SOPClassUID
    assert _value(ref, SOP_INSTANCE) == ds.SOPInstanceUID
    assert _value(ref, RETRIEVE_URL).endswith(
        f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}")
    assert FAILED not in body
    assert web.radai.archive.read(ds.SOPInstanceUID) == data  # byte for byte


def test_many_instances_of_several_studies(web: Web) -> None:
    names = ("CT_small.dcm", "MR_small_RLE.dcm", "emri_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm")
    parts = [sample_bytes(n, f"stow-many-{n}") for n in names]
    r = web.stow(parts)
    assert r.status_code == 200
    body = r.json()
    refs = [_value(item, SOP_INSTANCE) for item in body[REFERENCED]["Value"]]
    assert refs == [_uids(p).SOPInstanceUID for p in parts]
    assert RETRIEVE_URL not in body  # the instances belong to several studies
    assert web.instance_count() == len(parts)


def test_resending_is_idempotent(web: Web) -> None:
    data = sample_bytes(CT, "stow-again")
    assert web.stow([data]).status_code == 200
    again = web.stow([data, data])
    assert again.status_code == 200
    assert len(again.json()[REFERENCED]["Value"]) == 2
    assert web.instance_count() == 1
    assert len(web.stored_files()) == 1


def test_mixed_good_and_bad_parts_store_the_good_ones(web: Web) -> None:
    good = sample_bytes(CT, "stow-mixed")
    r = web.stow([b"not a DICOM file at all" * 10, good])
    assert r.status_code == 202
    body = r.json()
    assert _failures(body) == [RejectReason.CANNOT_UNDERSTAND]
    assert [_value(i, SOP_INSTANCE) for i in body[REFERENCED]["Value"]] == [_uids(good).SOPInstanceUID]
    assert web.instance_count() == 1


def _without_sop_instance_uid() -> bytes:
    ds = sample(CT, "stow-bad-missing")
    del ds.SOPInstanceUID
    return to_bytes(ds)


def _with_sop_instance_uid(value: str) -> bytes:
    ds = sample(CT, "stow-bad-uid")
    ds.SOPInstanceUID = value
    ds.file_meta.MediaStorageSOPInstanceUID = value
    return to_bytes(ds)


def _unsupported_sop_class() -> bytes:
    ds = sample(CT, "stow-bad-class")
    # Modality Worklist Information Model - FIND: a real SOP class, not a storage one.
    ds.SOPClassUID = "1.2.840.10008.5.1.4.31"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    return to_bytes(ds)


def _truncated() -> bytes:
    data = sample_bytes("693_UNCR.dcm", "stow-bad-truncated")
    return data[: len(data) - 5000]


BAD_PARTS = {
    "not-dicom": (lambda: b"%PDF-1.4 not an image\n" * 50, RejectReason.CANNOT_UNDERSTAND),
    "truncated": (_truncated, RejectReason.CANNOT_UNDERSTAND),
    "no-sop-instance-uid": (_without_sop_instance_uid, RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS),
    "uid-with-path": (lambda: _with_sop_instance_uid("1.2.3/../../etc/passwd"),
                      RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS),
    "uid-too-long": (lambda: _with_sop_instance_uid("1.2." + "3" * 70),
                     RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS),
    "unsupported-sop-class": (_unsupported_sop_class, RejectReason.SOP_CLASS_NOT_SUPPORTED),
}


@pytest.mark.parametrize("case", sorted(BAD_PARTS))
def test_bad_part_is_refused_with_its_failure_reason(web: Web, case: str) -> None:
    make, reason = BAD_PARTS[case]
    data = make()
    r = web.stow([data])
    assert r.status_code == 409
    body = r.json()
    assert _failures(body) == [int(reason)]
    assert REFERENCED not in body
    assert web.instance_count() == 0
    assert web.stored_files() == []
    # The error names no patient data.
    assert "CompressedSamples" not in r.text
    # The server keeps serving: a good instance is stored next.
    assert web.stow([sample_bytes(CT, f"after-{case}")]).status_code == 200


def test_failed_part_names_its_instance_when_readable(web: Web) -> None:
    data = _unsupported_sop_class()
    (item,) = web.stow([data]).json()[FAILED]["Value"]
    assert _value(item, SOP_INSTANCE) == _uids(data).SOPInstanceUID
    assert _value(item, SOP_CLASS) == "1.2.840.10008.5.1.4.31"


def test_instance_of_another_study_than_the_path_is_refused(web: Web) -> None:
    other = sample_bytes(CT, "stow-other-study")
    mine = sample(CT, "stow-my-study")
    r = web.stow([other], study=str(mine.StudyInstanceUID))
    assert r.status_code == 409
    assert _failures(r.json()) == [RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS]
    _assert_not_stored(web, _uids(other).SOPInstanceUID)
    r = web.stow([other, to_bytes(mine)], study=str(mine.StudyInstanceUID))
    assert r.status_code == 202
    assert _value(r.json(), RETRIEVE_URL).endswith(f"/studies/{mine.StudyInstanceUID}")
    assert web.instance_count() == 1


def test_study_in_path_must_be_a_uid(web: Web) -> None:
    r = web.stow([sample_bytes(CT, "stow-path")], study="1.2.abc")
    assert r.status_code == 400
    assert web.instance_count() == 0


@pytest.mark.parametrize(("content_type", "status"), [
    ("application/dicom", 415),
    ("application/json", 415),
    ('multipart/related; type="application/dicom+json"; boundary=x', 415),
    ('multipart/form-data; boundary=x', 415),
    ('multipart/related; type="application/dicom"', 400),  # no boundary
])
def test_body_that_is_not_multipart_related_dicom(web: Web, content_type: str, status: int) -> None:
    r = web.client.post("/dicom-web/studies", content=sample_bytes(CT, "stow-415"),
                        headers={"Content-Type": content_type})
    assert r.status_code == status
    assert r.json()["detail"]
    assert web.instance_count() == 0


def test_part_of_the_wrong_type_refuses_the_request(web: Web) -> None:
    data = sample_bytes(CT, "stow-part-type")
    body, _ = multipart_body([data], part_type="image/jpeg")
    boundary = body[2:34].decode()
    r = web.client.post("/dicom-web/studies", content=body, headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})
    assert r.status_code == 415
    assert "image/jpeg" in r.json()["detail"]
    assert web.instance_count() == 0


@pytest.mark.parametrize("cut", ["closing-boundary", "garbage"])
def test_malformed_multipart_is_400_and_nothing_is_stored(web: Web, cut: str) -> None:
    good = sample_bytes(CT, f"stow-malformed-{cut}")
    body, ct = multipart_body([good, good])
    # Either it ends inside the second part, or it is no multipart body at all.
    body = body[: len(body) - 200] if cut == "closing-boundary" else b"this is not a multipart body"
    r = web.client.post("/dicom-web/studies", content=body, headers={"Content-Type": ct})
    assert r.status_code == 400
    assert web.instance_count() == 0
    assert web.stored_files() == []


def test_empty_multipart_is_400(web: Web) -> None:
    body, ct = multipart_body([])
    r = web.client.post("/dicom-web/studies", content=body, headers={"Content-Type": ct})
    assert r.status_code == 400
    assert "no parts" in r.json()["detail"]


def test_large_parts_are_spooled_and_the_spool_is_emptied(web: Web) -> None:
    web.radai.settings.dicomweb.stow_memory_part_bytes = 4096
    parts = [sample_bytes("693_UNCR.dcm", "stow-big"), sample_bytes("RG1_J2KR.dcm", "stow-big-2")]
    r = web.stow(parts)
    assert r.status_code == 200
    for data in parts:
        assert web.radai.archive.read(_uids(data).SOPInstanceUID) == data
    spool = web.radai.settings.data_dir / "spool"
    assert list(spool.iterdir()) == []


def test_request_larger_than_allowed_is_413(web: Web) -> None:
    web.radai.settings.dicomweb.stow_max_request_bytes = 100_000
    r = web.stow([sample_bytes("693_UNCR.dcm", "stow-413")])
    assert r.status_code == 413
    assert web.instance_count() == 0
    assert list((web.radai.settings.data_dir / "spool").iterdir()) == []


def test_stow_needs_a_user(web: Web) -> None:
    body, ct = multipart_body([sample_bytes(CT, "stow-anonymous")])
    with TestClient(web.client.app) as anonymous:
        r = anonymous.post("/dicom-web/studies", content=body, headers={"Content-Type": ct})
    assert r.status_code == 401
    assert web.instance_count() == 0
