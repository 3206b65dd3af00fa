"""Orthanc (Debian's package with its DICOMweb plugin) as a DICOMweb client of ``radai serve``.

Orthanc stores real instances to radai with STOW-RS, searches radai with QIDO-RS and
retrieves from radai with WADO-RS; radai must hold exactly what Orthanc sent, and
Orthanc must get back byte-identical instances.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from tests.fixtures.data import pydicom_data, pydicom_test_file, to_bytes, with_new_uids
from tests.fixtures.peers import (
    Orthanc,
    RadaiServer,
    make_orthanc,
    radai_command,
    start_radai,
    stop_process,
)

PASSWORD = "orthanc-client-secret"
#: Uncompressed, RLE, JPEG baseline, JPEG-LS multi-frame and JPEG 2000 instances.
SAMPLES = ("CT_small.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm",
           "emri_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm")


def _sample(name: str) -> bytes:
    try:
        path = pydicom_data(name)
    except FileNotFoundError:
        path = pydicom_test_file(name)
    ds = with_new_uids(dcmread(path), f"orthanc-dicomweb-{name}")
    # One study, one patient: what Orthanc sends is one study.
    ds.StudyInstanceUID = "2.25.1000000000000000000000000000000001"
    ds.PatientID = "ORTHANC-DW-1"
    ds.PatientName = "Interop^DICOMweb"
    return to_bytes(ds)


@pytest.fixture
def radai_with_token(tmp_path: Path) -> Iterator[tuple[RadaiServer, str]]:
    server = start_radai(tmp_path / "radai")
    try:
        subprocess.run([*radai_command(), "users", "add", "orthanc", "--role", "radiologist",
                        "--password-stdin", "--config", str(server.config_file)],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True,
                       env=server.env, timeout=120)
        r = httpx.post(server.base_url + "/api/v1/auth/token",
                       data={"username": "orthanc", "password": PASSWORD}, timeout=60)
        assert r.status_code == 200, r.text
        yield server, r.json()["access_token"]
    finally:
        stop_process(server.proc)


@pytest.fixture
def orthanc(tmp_path: Path, radai_with_token: tuple[RadaiServer, str]) -> Iterator[Orthanc]:
    server, token = radai_with_token
    peer = make_orthanc(tmp_path, extra={"DicomWeb": {
        "Enable": True, "Root": "/dicom-web/",
        "Servers": {"radai": {"Url": server.dicomweb_url + "/",
                              "HttpHeaders": {"Authorization": f"Bearer {token}"}}}}})
    try:
        yield peer
    finally:
        peer.stop()


def _radai_get(server: RadaiServer, token: str, path: str,
               params: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(server.dicomweb_url + path, params=params,
                     headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_orthanc_stores_queries_and_retrieves_through_radai(
        orthanc: Orthanc, radai_with_token: tuple[RadaiServer, str]) -> None:
    server, token = radai_with_token
    originals = {dcmread(io.BytesIO(data)).SOPInstanceUID: data for data in map(_sample, SAMPLES)}
    for data in originals.values():
        r = orthanc.post("/instances", content=data)
        assert r.status_code == 200, r.text
    (orthanc_study,) = orthanc.get("/studies").json()
    study_uid = orthanc.get(f"/studies/{orthanc_study}").json()["MainDicomTags"]["StudyInstanceUID"]

    # STOW-RS: Orthanc → radai.
    r = orthanc.post("/dicom-web/servers/radai/stow", json={"Resources": [orthanc_study]})
    assert r.status_code == 200, r.text + orthanc.log_file.read_text()[-3000:]
    # radai holds exactly those instances, byte for byte.
    r = _radai_get(server, token, f"/studies/{study_uid}/instances")
    assert r.status_code == 200, r.text
    stored = {item["00080018"]["Value"][0] for item in r.json()}
    assert stored == set(originals)
    for sop, data in originals.items():
        got = _radai_get(server, token, f"/studies/{study_uid}/instances",
                         {"SOPInstanceUID": str(sop)}).json()
        url = got[0]["00081190"]["Value"][0]
        single = httpx.get(url, headers={"Authorization": f"Bearer {token}",
                                         "Accept": "application/dicom"}, timeout=60)
        assert single.content == data

    # QIDO-RS: Orthanc searches radai.
    r = orthanc.post("/dicom-web/servers/radai/qido",
                     json={"Uri": "/studies", "Arguments": {"PatientID": "ORTHANC-DW-1"}})
    assert r.status_code == 200, r.text
    # Orthanc gives each answer in its own simplified form: one string per attribute.
    answers = r.json()
    assert [a["0020000D"]["Value"] for a in answers] == [study_uid]
    assert answers[0]["00100020"]["Value"] == "ORTHANC-DW-1"
    r = orthanc.post("/dicom-web/servers/radai/qido",
                     json={"Uri": f"/studies/{study_uid}/series", "Arguments": {}})
    assert r.status_code == 200, r.text
    series = {a["0020000E"]["Value"]: a["00080060"]["Value"] for a in r.json()}
    assert series == {str(ds.SeriesInstanceUID): str(ds.Modality)
                      for ds in (dcmread(io.BytesIO(d)) for d in originals.values())}

    # WADO-RS: Orthanc forgets the study, then retrieves it from radai.
    assert httpx.delete(f"{orthanc.url}/studies/{orthanc_study}", timeout=60).status_code == 200
    assert orthanc.get("/instances").json() == []
    r = orthanc.post("/dicom-web/servers/radai/retrieve",
                     json={"Resources": [{"Study": study_uid}]})
    assert r.status_code == 200, r.text + orthanc.log_file.read_text()[-3000:]
    retrieved = {}
    for oid in orthanc.get("/instances").json():
        data = orthanc.get(f"/instances/{oid}/file").content
        retrieved[dcmread(io.BytesIO(data)).SOPInstanceUID] = data
    assert retrieved == originals
