"""Orthanc (Debian's package) as a DIMSE peer of ``radai serve``.

Orthanc sends a study to radai with C-STORE, queries radai with C-FIND and retrieves
from radai with C-MOVE (radai knows Orthanc as a peer); each side must end with exactly
the instances sent, in the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from radai.archive.storage import relative_path_for
from tests.fixtures.data import ct_series, sample_for_transfer_syntax, to_bytes, with_new_uids
from tests.fixtures.peers import LOOPBACK, Orthanc, RadaiServer, make_orthanc, start_radai, stop_process

STUDY = "1.2.826.0.1.3680043.10.996.1"
PATIENT_ID = "P-ORTHANC-DIMSE"
#: Uncompressed CT slices plus JPEG 2000 lossless and JPEG-LS lossless instances.
COMPRESSED = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.80")


def study_files() -> dict[str, bytes]:
    """SOP Instance UID → Part 10 bytes of one study from real data."""
    out = {}
    for ds in ct_series(3, study_uid=STUDY, series_uid=STUDY + ".1", patient_id=PATIENT_ID):
        out[str(ds.SOPInstanceUID)] = to_bytes(ds)
    for ts in COMPRESSED:
        ds = with_new_uids(dcmread(sample_for_transfer_syntax(ts)), f"orthanc-dimse-{ts}")
        ds.StudyInstanceUID, ds.PatientID = STUDY, PATIENT_ID
        out[str(ds.SOPInstanceUID)] = to_bytes(ds)
    return out


def body(part10: bytes) -> bytes:
    """The data set of a Part 10 file: what travels on the wire."""
    meta = dcmread(io.BytesIO(part10), stop_before_pixels=True).file_meta
    return part10[132 + 12 + meta.FileMetaInformationGroupLength:]


@dataclass
class Pair:
    """radai and Orthanc, each configured with the other as a DICOM peer."""

    radai: RadaiServer
    orthanc: Orthanc

    def radai_file(self, uid: str) -> Path:
        return self.radai.data_dir / "instances" / relative_path_for(uid)

    def orthanc_files(self) -> dict[str, bytes]:
        """SOP Instance UID → the file Orthanc stores."""
        out = {}
        for oid in self.orthanc.get("/instances").json():
            data = self.orthanc.get(f"/instances/{oid}/file").content
            out[str(dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)] = data
        return out


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    orthanc = make_orthanc(tmp_path / "o", start=False)
    radai = start_radai(tmp_path / "radai", extra={"dimse": {
        "require_known_peers": True,
        "peers": [{"ae_title": orthanc.ae_title, "host": LOOPBACK, "port": orthanc.dicom_port}]}})
    try:
        orthanc.start()
        try:
            r = httpx.put(f"{orthanc.url}/modalities/radai", timeout=30,
                          json={"AET": radai.ae_title, "Host": LOOPBACK, "Port": radai.dicom_port})
            assert r.status_code == 200, r.text
            assert orthanc.post("/modalities/radai/echo", json={}).status_code == 200
            yield Pair(radai, orthanc)
        finally:
            orthanc.stop()
    finally:
        stop_process(radai.proc)


def test_orthanc_stores_a_study_into_radai(pair: Pair) -> None:
    files = study_files()
    for data in files.values():
        assert pair.orthanc.post("/instances", content=data).status_code == 200
    (study_id,) = pair.orthanc.get("/studies").json()
    r = pair.orthanc.post("/modalities/radai/store", json={"Resources": [study_id], "Synchronous": True})
    assert r.status_code == 200, r.text
    stored = {p.name for p in (pair.radai.data_dir / "instances").rglob("*.dcm")}
    assert stored == {relative_path_for(uid).rsplit("/", 1)[1] for uid in files}
    for uid, data in files.items():
        held = pair.radai_file(uid).read_bytes()
        assert dcmread(io.BytesIO(held)).file_meta.TransferSyntaxUID == \
            dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID
        assert dcmread(io.BytesIO(held)).PixelData == dcmread(io.BytesIO(data)).PixelData
    # Sent again: nothing new.
    r = pair.orthanc.post("/modalities/radai/store", json={"Resources": [study_id], "Synchronous": True})
    assert r.status_code == 200
    assert len(list((pair.radai.data_dir / "instances").rglob("*.dcm"))) == len(files)


def test_orthanc_queries_and_moves_from_radai(pair: Pair, tmp_path: Path) -> None:
    files = study_files()
    # radai's archive is filled by Orthanc's C-STORE, then Orthanc forgets the study.
    for data in files.values():
        assert pair.orthanc.post("/instances", content=data).status_code == 200
    (study_id,) = pair.orthanc.get("/studies").json()
    assert pair.orthanc.post("/modalities/radai/store", json={"Resources": [study_id]}).status_code == 200
    assert httpx.delete(f"{pair.orthanc.url}/studies/{study_id}", timeout=30).status_code == 200
    assert pair.orthanc.get("/instances").json() == []

    # C-FIND through Orthanc, then C-MOVE of what it found to Orthanc itself.
    r = pair.orthanc.post("/modalities/radai/query", json={
        "Level": "Study", "Query": {"PatientID": PATIENT_ID, "StudyInstanceUID": ""}})
    assert r.status_code == 200, r.text
    query = r.json()["ID"]
    answers = pair.orthanc.get(f"/queries/{query}/answers?expand").json()
    assert [a["0020,000d"]["Value"] for a in answers] == [STUDY]
    r = pair.orthanc.post(f"/queries/{query}/retrieve", json={"TargetAet": pair.orthanc.ae_title,
                                                               "Synchronous": True})
    assert r.status_code == 200, r.text
    held = pair.orthanc_files()
    assert set(held) == set(files)
    for uid, data in held.items():
        assert body(data) == body(pair.radai_file(uid).read_bytes())

    # The same with Orthanc's direct C-MOVE route, at series level, after forgetting again.
    assert httpx.delete(f"{pair.orthanc.url}/studies/{study_id}", timeout=30).status_code == 200
    r = pair.orthanc.post("/modalities/radai/move", json={
        "Level": "Series", "TargetAet": pair.orthanc.ae_title,
        "Resources": [{"StudyInstanceUID": STUDY, "SeriesInstanceUID": STUDY + ".1"}]})
    assert r.status_code == 200, r.text
    assert set(pair.orthanc_files()) == {u for u, d in files.items()
                                          if dcmread(io.BytesIO(d)).SeriesInstanceUID == STUDY + ".1"}
