"""A vendor's real DICOMweb client (the ``dicomweb-client`` package) against ``radai serve``
with a key file in its configuration: search, metadata with bulk data, instances and frames
of a granted study, all de-identified, pixels as stored, parsed by the client's own code."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from requests.exceptions import HTTPError

from radai.deid import PseudonymKey
from tests.fixtures.data import to_bytes
from tests.fixtures.peers import RadaiServer, radai_command, start_radai, stop_process
from tests.vendor.conftest import KEY, assert_none_of, identified, secrets_of

PASSWORD = "vendor-client-secret"


@dataclass
class Served:
    server: RadaiServer
    vendor: DICOMwebClient
    clinical_as_vendor: DICOMwebClient
    granted: list[Dataset]
    hidden: Dataset
    key: PseudonymKey

    def p(self, uid: str) -> str:
        return self.key.uid(uid)


def _token(server: RadaiServer, name: str, role: str) -> str:
    subprocess.run([*radai_command(), "users", "add", name, "--role", role, "--password-stdin",
                    "--config", str(server.config_file)], input=PASSWORD + "\n", text=True, check=True,
                   capture_output=True, env=server.env, timeout=120)
    r = httpx.post(server.base_url + "/api/v1/auth/token", data={"username": name, "password": PASSWORD},
                   timeout=60)
    token: str = r.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("vendor-client")
    key_file = root / "deid.key"
    key_file.write_text(KEY + "\n")
    server = start_radai(root / "server", extra={"deid": {"key_file": str(key_file)}})
    try:
        admin = {"Authorization": f"Bearer {_token(server, 'root', 'admin')}"}
        vendor = {"Authorization": f"Bearer {_token(server, 'acme', 'vendor')}"}
        ct = identified("CT_small.dcm", "vc-ct", "a")
        j2k = identified("emri_small_jpeg_2k_lossless.dcm", "vc-j2k", "a")
        j2k.StudyInstanceUID = ct.StudyInstanceUID
        hidden = identified("MR_small.dcm", "vc-mr", "b")
        clinical = DICOMwebClient(server.dicomweb_url, headers=admin)
        stored = clinical.store_instances([dcmread(io.BytesIO(to_bytes(ds))) for ds in (ct, j2k, hidden)])
        assert "FailedSOPSequence" not in stored
        r = httpx.post(server.base_url + "/api/v1/vendor/grants", headers=admin, timeout=60,
                       json={"username": "acme", "study_instance_uids": [ct.StudyInstanceUID]})
        assert r.status_code == 201, r.text
        yield Served(server, DICOMwebClient(server.base_url + "/vendor/dicom-web", headers=vendor),
                     DICOMwebClient(server.dicomweb_url, headers=vendor), [ct, j2k], hidden,
                     PseudonymKey(KEY.encode()))
    finally:
        stop_process(server.proc)


def test_search_finds_the_granted_study_under_its_pseudonym(served: Served) -> None:
    ct, j2k = served.granted
    studies = served.vendor.search_for_studies(offset=0, limit=101, fuzzymatching=False,
                                               fields=["StudyDescription", "Modality"])
    assert len(studies) == 1
    study = Dataset.from_json(studies[0])
    assert study.StudyInstanceUID == served.p(ct.StudyInstanceUID)
    assert study.PatientName == "" and study.PatientID != ct.PatientID
    assert study.NumberOfStudyRelatedInstances == 2
    series = served.vendor.search_for_series(served.p(ct.StudyInstanceUID))
    assert {Dataset.from_json(s).SeriesInstanceUID for s in series} == {
        served.p(ct.SeriesInstanceUID), served.p(j2k.SeriesInstanceUID)}
    assert served.vendor.search_for_studies(
        search_filters={"StudyInstanceUID": served.p(served.hidden.StudyInstanceUID)}) == []


def test_metadata_and_bulk_data_are_de_identified(served: Served) -> None:
    ct, _ = served.granted
    (meta,) = served.vendor.retrieve_series_metadata(served.p(ct.StudyInstanceUID),
                                                      served.p(ct.SeriesInstanceUID))
    assert_none_of(secrets_of(ct, "a"), repr(meta).encode(), "metadata")

    def fetch(uri: str) -> bytes:
        # The client sends Host without the port (see tests/dicomweb/test_dicomweb_client.py).
        path = uri.split("/vendor/dicom-web", 1)[1]
        (part,) = served.vendor.retrieve_bulkdata(served.server.base_url + "/vendor/dicom-web" + path)
        return bytes(part)

    ds = Dataset.from_json(meta, bulk_data_uri_handler=fetch)
    assert ds.SOPInstanceUID == served.p(ct.SOPInstanceUID) and ds.PatientIdentityRemoved == "YES"
    assert ds.PixelData == ct.pixel_array.tobytes()


def test_instances_and_frames_keep_their_pixels(served: Served) -> None:
    ct, j2k = served.granted
    got = served.vendor.retrieve_instance(served.p(ct.StudyInstanceUID), served.p(ct.SeriesInstanceUID),
                                          served.p(ct.SOPInstanceUID))
    assert_none_of(secrets_of(ct, "a"), to_bytes(got), "instance")
    assert got.PixelData == ct.PixelData
    args = (served.p(j2k.StudyInstanceUID), served.p(j2k.SeriesInstanceUID), served.p(j2k.SOPInstanceUID))
    stored = list(generate_frames(j2k.PixelData, number_of_frames=10))
    frames = served.vendor.retrieve_instance_frames(*args, frame_numbers=[1, 10],
                                                    media_types=(("application/octet-stream", "*"),))
    assert frames == [stored[0], stored[9]]
    whole = served.vendor.retrieve_study(served.p(ct.StudyInstanceUID))
    assert sorted(ds.SOPInstanceUID for ds in whole) == sorted(served.p(d.SOPInstanceUID) for d in (ct, j2k))
    j2k_back = next(ds for ds in whole if ds.SOPInstanceUID == served.p(j2k.SOPInstanceUID))
    assert np.array_equal(j2k_back.pixel_array, j2k.pixel_array)


def test_the_clinical_service_refuses_the_vendor(served: Served) -> None:
    ct, _ = served.granted
    with pytest.raises(HTTPError) as refused:
        served.clinical_as_vendor.search_for_studies()
    assert refused.value.response.status_code == 403
    with pytest.raises(HTTPError) as refused:
        served.clinical_as_vendor.retrieve_study_metadata(ct.StudyInstanceUID)
    assert refused.value.response.status_code == 403
