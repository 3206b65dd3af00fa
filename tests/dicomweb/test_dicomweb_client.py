"""A real DICOMweb client (the ``dicomweb-client`` package, the Python sibling of the
JavaScript client the OHIF viewer uses) against ``radai serve`` over HTTP: storing,
searching with OHIF's parameters, metadata, frames with ``transfer-syntax=*``, bulk
data and rendered images, all parsed by the client's own code."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from tests.dicomweb.conftest import sample
from tests.fixtures.data import to_bytes
from tests.fixtures.peers import RadaiServer, radai_command, start_radai, stop_process

PASSWORD = "dicomweb-client-secret"
NAMES = ("CT_small.dcm", "emri_small_jpeg_2k_lossless.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm")


@dataclass
class Session:
    server: RadaiServer
    client: DICOMwebClient
    datasets: list[Dataset]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    server = start_radai(tmp_path_factory.mktemp("dicomweb-client"))
    try:
        subprocess.run([*radai_command(), "users", "add", "viewer", "--role", "radiologist",
                        "--password-stdin", "--config", str(server.config_file)],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True,
                       env=server.env, timeout=120)
        import httpx

        token = httpx.post(server.base_url + "/api/v1/auth/token",
                           data={"username": "viewer", "password": PASSWORD}, timeout=60
                           ).json()["access_token"]
        client = DICOMwebClient(server.dicomweb_url, headers={"Authorization": f"Bearer {token}"})
        datasets = [sample(name, f"dwc-{name}") for name in NAMES]
        for ds in datasets[1:]:
            ds.StudyInstanceUID = datasets[0].StudyInstanceUID
            ds.PatientID, ds.PatientName = "DWC-1", "Client^Test"
        datasets[0].PatientID, datasets[0].PatientName = "DWC-1", "Client^Test"
        # The client sends Datasets; it writes each in its own transfer syntax.
        response = client.store_instances([dcmread(io.BytesIO(to_bytes(ds))) for ds in datasets])
        assert len(response.ReferencedSOPSequence) == len(datasets)
        assert "FailedSOPSequence" not in response
        yield Session(server, client, datasets)
    finally:
        stop_process(server.proc)


def test_search_as_ohif_does(session: Session) -> None:
    ct = session.datasets[0]
    studies = session.client.search_for_studies(
        offset=0, limit=101, fuzzymatching=False, fields=["StudyDescription", "Modality"],
        search_filters={"PatientName": "client*"})
    assert len(studies) == 1
    study = Dataset.from_json(studies[0])
    assert study.StudyInstanceUID == ct.StudyInstanceUID
    assert study.NumberOfStudyRelatedInstances == len(session.datasets)
    assert sorted(study.ModalitiesInStudy) == sorted({str(ds.Modality) for ds in session.datasets})
    series = session.client.search_for_series(ct.StudyInstanceUID, fields=["SeriesDescription"])
    assert len(series) == len(session.datasets)
    assert session.client.search_for_studies(search_filters={"PatientID": "nobody"}) == []


def test_metadata_and_bulk_data(session: Session) -> None:
    mr = session.datasets[2]
    (meta,) = session.client.retrieve_series_metadata(mr.StudyInstanceUID, mr.SeriesInstanceUID)

    def fetch(uri: str) -> bytes:
        # radai builds BulkDataURIs from the Host the client sent; this client sends its
        # Host header without the port (RFC 9110 §7.2 wants it), so the port is put back.
        path = uri.split("/dicom-web", 1)[1]
        parts = session.client.retrieve_bulkdata(session.server.dicomweb_url + path)
        assert len(parts) == 1
        return bytes(parts[0])  # the client gives a bytearray; pydicom wants bytes

    ds = Dataset.from_json(meta, bulk_data_uri_handler=fetch)
    assert ds.SOPInstanceUID == mr.SOPInstanceUID
    assert ds[0x60003000].value == mr[0x60003000].value  # overlay fetched through its BulkDataURI
    assert ds.PixelData == mr.pixel_array.tobytes()


def test_frames_as_ohif_asks_for_them(session: Session) -> None:
    j2k = session.datasets[1]
    args = (j2k.StudyInstanceUID, j2k.SeriesInstanceUID, j2k.SOPInstanceUID)
    stored = list(generate_frames(j2k.PixelData, number_of_frames=10))
    frames = session.client.retrieve_instance_frames(
        *args, frame_numbers=[1, 10], media_types=(("application/octet-stream", "*"),))
    assert frames == [stored[0], stored[9]]
    native = session.client.retrieve_instance_frames(*args, frame_numbers=[3])
    assert native == [j2k.pixel_array[2].astype("<u2").tobytes()]
    jp2 = session.client.retrieve_instance_frames(*args, frame_numbers=[2], media_types=(("image/jp2",),))
    assert jp2 == [stored[1]]


def test_instances_come_back_unchanged(session: Session) -> None:
    ct = session.datasets[0]
    got = session.client.retrieve_instance(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    assert to_bytes(got) == to_bytes(ct)
    everything = session.client.retrieve_study(ct.StudyInstanceUID)
    expected = sorted(ds.SOPInstanceUID for ds in session.datasets)
    assert sorted(ds.SOPInstanceUID for ds in everything) == expected


def test_rendered(session: Session) -> None:
    ct = session.datasets[0]
    args = (ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    png = session.client.retrieve_instance_rendered(*args, media_types=("image/png",),
                                                    params={"window": "40,400", "viewport": "64,64"})
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (64, 64)
    jpeg = session.client.retrieve_instance_rendered(*args)
    assert Image.open(io.BytesIO(jpeg)).size == (128, 128)
    assert np.asarray(image).std() > 0
