"""radai's DIMSE node from outside: ``radai serve`` as a process, DCMTK's tools as peers.

echoscu; storescu of one real file per accepted transfer syntax; findscu at every level
of both information models; movescu to a DCMTK storescp configured as a peer; getscu;
byte-for-byte equality of stored and retrieved instances; a re-sent instance stored once.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from radai.archive.storage import relative_path_for
from tests.fixtures.data import (
    TRANSFER_SYNTAX_SAMPLES,
    ct_series,
    pydicom_data,
    sample_for_transfer_syntax,
    to_bytes,
    with_new_uids,
)
from tests.fixtures.peers import (
    LOOPBACK,
    RadaiServer,
    free_port,
    require_program,
    start_radai,
    stop_process,
    wait_for_port,
)

JPEG_LOSSLESS_P14 = "1.2.840.10008.1.2.4.57"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
DEFLATE = "1.2.840.10008.1.2.1.99"
STORESCP_AE = "STORESCP"
STUDY, SERIES = "1.2.826.0.1.3680043.10.997.1", "1.2.826.0.1.3680043.10.997.1.1"


def _env() -> dict[str, str]:
    # DCMTK leaves Nagle's algorithm on unless told; with it every PDU waits for a delayed ACK.
    return {**os.environ, "TCP_NODELAY": "1"}


def dcmtk(program: str, *args: str | Path, cwd: Path | None = None, check: bool = True,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK program (failing the test if it is not installed)."""
    cmd = [require_program(program), *(str(a) for a in args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=_env(), timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"{program} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class StoreScp:
    """DCMTK storescp writing what it receives, bit for bit, into ``folder``."""

    port: int
    folder: Path
    proc: subprocess.Popen[bytes]

    def received(self) -> dict[str, Path]:
        """SOP Instance UID → file."""
        out = {}
        for path in self.folder.iterdir():
            if path.is_file():
                out[str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
        return out


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[StoreScp]:
    folder = tmp_path / "storescp"
    folder.mkdir()
    port = free_port()
    log = (tmp_path / "storescp.log").open("wb")
    proc = subprocess.Popen([require_program("storescp"), "-aet", STORESCP_AE, "+xa", "+B",
                             "-od", str(folder), str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env=_env())
    try:
        wait_for_port(port, proc)
        yield StoreScp(port, folder, proc)
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture
def radai_node(tmp_path: Path, storescp: StoreScp) -> Iterator[RadaiServer]:
    """``radai serve`` (SQLite) knowing the DCMTK storescp as a C-MOVE destination."""
    server = start_radai(tmp_path / "radai", extra={"dimse": {"peers": [
        {"ae_title": STORESCP_AE, "host": LOOPBACK, "port": storescp.port}]}}, env={"TCP_NODELAY": "1"})
    try:
        yield server
    finally:
        stop_process(server.proc)


def stored_file(server: RadaiServer, sop_instance_uid: str) -> Path:
    """Where radai keeps an instance (the archive's documented layout)."""
    return server.data_dir / "instances" / relative_path_for(sop_instance_uid)


def body(part10: bytes) -> bytes:
    """The data set of a Part 10 file: what travels on the wire."""
    meta = dcmread(io.BytesIO(part10), stop_before_pixels=True).file_meta
    return part10[132 + 12 + meta.FileMetaInformationGroupLength:]


def storescu_config(files: list[Path], path: Path) -> Path:
    """A storescu profile proposing, for each file, its SOP class in exactly its transfer syntax."""
    ts_lines, pc_lines, seen = ["[[TransferSyntaxes]]"], ["[[PresentationContexts]]", "[Radai]"], set()
    for f in files:
        ds = dcmread(f, stop_before_pixels=True)
        key = (str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
        if key in seen:
            continue
        seen.add(key)
        n = len(seen)
        ts_lines += [f"[TS{n}]", f"TransferSyntax1 = {key[1]}"]
        pc_lines.append(f"PresentationContext{n} = {key[0]}\\TS{n}")
    path.write_text("\n".join([*ts_lines, *pc_lines, "[[Profiles]]", "[Radai]",
                               "PresentationContexts = Radai", ""]))
    return path


def one_file_per_transfer_syntax(folder: Path) -> dict[str, Path]:
    """A real file for every accepted transfer syntax, each with UIDs of its own."""
    folder.mkdir(parents=True)
    files = {}
    for ts in TRANSFER_SYNTAX_SAMPLES:
        ds = with_new_uids(dcmread(sample_for_transfer_syntax(ts)), f"dcmtk-{ts}")
        files[ts] = folder / f"{ts}.dcm"
        files[ts].write_bytes(to_bytes(ds))
    # No public JPEG Lossless process 14 sample: DCMTK makes one from a real CT slice.
    source = folder.parent / "p14-source.dcm"
    source.write_bytes(to_bytes(with_new_uids(dcmread(pydicom_data("693_UNCR.dcm")), "dcmtk-p14")))
    files[JPEG_LOSSLESS_P14] = folder / f"{JPEG_LOSSLESS_P14}.dcm"
    dcmtk("dcmcjpeg", "+el", source, files[JPEG_LOSSLESS_P14])
    assert dcmread(files[JPEG_LOSSLESS_P14]).file_meta.TransferSyntaxUID == JPEG_LOSSLESS_P14
    return files


def storescu(server: RadaiServer, *paths: Path, config: Path | None = None) -> None:
    args: list[str | Path] = ["-aet", "MODALITY", "-aec", server.ae_title]
    if config is not None:
        args += ["-xf", config, "Radai"]
    dcmtk("storescu", *args, "+sd", LOOPBACK, str(server.dicom_port), *paths)


def store_ct_series(server: RadaiServer, folder: Path, count: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in ct_series(count, study_uid=STUDY, series_uid=SERIES, patient_id="P-DCMTK-1"):
        ds.PatientName = "Dcmtk^Test"
        ds.StudyDate = "20250102"
        path = folder / f"ct{ds.InstanceNumber}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(path)
    storescu(server, *paths)
    return paths


def findscu(server: RadaiServer, model: str, keys: list[str], out: Path) -> list[Dataset]:
    """findscu's responses (``-P`` patient root, ``-S`` study root), extracted with ``-X``."""
    out.mkdir(parents=True)
    args: list[str | Path] = ["-aec", server.ae_title, model, "-X", "-od", out]
    for key in keys:
        args += ["-k", key]
    dcmtk("findscu", *args, LOOPBACK, str(server.dicom_port))
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


# --- tests ------------------------------------------------------------------------------


def test_echoscu(radai_node: RadaiServer) -> None:
    proc = dcmtk("echoscu", "-aec", radai_node.ae_title, LOOPBACK, str(radai_node.dicom_port))
    assert proc.returncode == 0
    # A wrong called AE title is still answered: radai does not check the called title.
    assert dcmtk("echoscu", "-aec", "OTHER", LOOPBACK, str(radai_node.dicom_port)).returncode == 0


def test_storescu_every_accepted_transfer_syntax(radai_node: RadaiServer, tmp_path: Path) -> None:
    files = one_file_per_transfer_syntax(tmp_path / "in")
    storescu(radai_node, tmp_path / "in", config=storescu_config(list(files.values()), tmp_path / "scu.cfg"))
    for ts, path in files.items():
        sent = dcmread(path)
        stored_path = stored_file(radai_node, str(sent.SOPInstanceUID))
        assert stored_path.is_file(), f"{ts} was not stored"
        stored = dcmread(stored_path)
        assert stored.file_meta.TransferSyntaxUID == ts
        # Stored as received: the (compressed) pixel data is the very same bytes (storescu
        # re-encodes the other elements itself, and pads odd-length values).
        assert stored.PixelData[:len(sent.PixelData)] == sent.PixelData
    assert len(list((radai_node.data_dir / "instances").rglob("*.dcm"))) == len(files)


def test_findscu_every_level_in_both_models(radai_node: RadaiServer, tmp_path: Path) -> None:
    store_ct_series(radai_node, tmp_path / "ct")
    # Patient Root: PATIENT, STUDY, SERIES, IMAGE.
    (patient,) = findscu(radai_node, "-P", ["QueryRetrieveLevel=PATIENT", "PatientID=P-DCMTK-1",
                                            "PatientName", "NumberOfPatientRelatedInstances"],
                         tmp_path / "p-patient")
    assert str(patient.PatientName) == "Dcmtk^Test" and patient.NumberOfPatientRelatedInstances == 3
    assert patient.SpecificCharacterSet == "ISO_IR 192"
    (study,) = findscu(radai_node, "-P", ["QueryRetrieveLevel=STUDY", "PatientID=P-DCMTK-1",
                                          "StudyInstanceUID", "StudyDate"], tmp_path / "p-study")
    assert study.StudyInstanceUID == STUDY and study.StudyDate == "20250102"
    assert study.RetrieveAETitle == radai_node.ae_title and study.InstanceAvailability == "ONLINE"
    (series,) = findscu(radai_node, "-P", ["QueryRetrieveLevel=SERIES", "PatientID=P-DCMTK-1",
                                           f"StudyInstanceUID={STUDY}", "SeriesInstanceUID", "Modality"],
                        tmp_path / "p-series")
    assert series.SeriesInstanceUID == SERIES and series.Modality == "CT"
    images = findscu(radai_node, "-P", ["QueryRetrieveLevel=IMAGE", "PatientID=P-DCMTK-1",
                                        f"StudyInstanceUID={STUDY}", f"SeriesInstanceUID={SERIES}",
                                        "SOPInstanceUID", "InstanceNumber"], tmp_path / "p-image")
    assert sorted(int(i.InstanceNumber) for i in images) == [1, 2, 3]
    # Study Root: STUDY, SERIES, IMAGE; wildcard name matching.
    (study,) = findscu(radai_node, "-S", ["QueryRetrieveLevel=STUDY", "PatientName=dcmtk*",
                                          "StudyInstanceUID", "ModalitiesInStudy"], tmp_path / "s-study")
    assert study.StudyInstanceUID == STUDY and study.ModalitiesInStudy == "CT"
    (series,) = findscu(radai_node, "-S", ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={STUDY}",
                                           "SeriesInstanceUID", "NumberOfSeriesRelatedInstances"],
                        tmp_path / "s-series")
    assert series.NumberOfSeriesRelatedInstances == 3
    images = findscu(radai_node, "-S", ["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={STUDY}",
                                        f"SeriesInstanceUID={SERIES}", "SOPInstanceUID"],
                     tmp_path / "s-image")
    assert len({i.SOPInstanceUID for i in images}) == 3
    # A level the Study Root model does not have: refused, nothing returned.
    proc = dcmtk("findscu", "-v", "-aec", radai_node.ae_title, "-S", "-k", "QueryRetrieveLevel=PATIENT",
                 "-k", "PatientID", LOOPBACK, str(radai_node.dicom_port), check=False)
    # 0xA900, in DCMTK's words.
    assert "Error: DataSetDoesNotMatchSOPClass" in proc.stdout + proc.stderr


def test_movescu_to_a_configured_storescp(radai_node: RadaiServer, storescp: StoreScp,
                                          tmp_path: Path) -> None:
    sent = store_ct_series(radai_node, tmp_path / "ct")
    dcmtk("movescu", "-aec", radai_node.ae_title, "-aem", STORESCP_AE, "-S",
          "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY}",
          LOOPBACK, str(radai_node.dicom_port))
    received = storescp.received()
    uids = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in sent}
    assert set(received) == uids
    for uid, path in received.items():
        assert body(path.read_bytes()) == body(stored_file(radai_node, uid).read_bytes())
    # An unknown destination is refused with 0xA801.
    proc = dcmtk("movescu", "-v", "-aec", radai_node.ae_title, "-aem", "NOWHERE", "-S",
                 "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY}",
                 LOOPBACK, str(radai_node.dicom_port), check=False)
    output = proc.stdout + proc.stderr
    assert "MoveDestinationUnknown" in output or "0xa801" in output.lower(), output


def test_getscu_returns_stored_instances_byte_for_byte(radai_node: RadaiServer, tmp_path: Path) -> None:
    store_ct_series(radai_node, tmp_path / "ct", count=2)
    j2k = with_new_uids(dcmread(sample_for_transfer_syntax(J2K_LOSSLESS)), "dcmtk-get")
    j2k.StudyInstanceUID = STUDY
    j2k_path = tmp_path / "j2k.dcm"
    j2k_path.write_bytes(to_bytes(j2k))
    storescu(radai_node, j2k_path, config=storescu_config([j2k_path], tmp_path / "scu.cfg"))
    out = tmp_path / "got"
    out.mkdir()
    # getscu proposes uncompressed syntaxes only: the JPEG 2000 instance comes back decompressed.
    dcmtk("getscu", "-aec", radai_node.ae_title, "-S", "+B", "-od", out,
          "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY}",
          LOOPBACK, str(radai_node.dicom_port))
    got = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in out.iterdir()}
    assert len(got) == 3 and str(j2k.SOPInstanceUID) in got
    for uid, path in got.items():
        stored = stored_file(radai_node, uid).read_bytes()
        if uid == str(j2k.SOPInstanceUID):
            back = dcmread(path)
            assert back.file_meta.TransferSyntaxUID != J2K_LOSSLESS
            assert np.array_equal(back.pixel_array, dcmread(io.BytesIO(stored)).pixel_array)
        else:
            assert body(path.read_bytes()) == body(stored)


def test_resending_the_same_instance_stores_it_once(radai_node: RadaiServer, tmp_path: Path) -> None:
    paths = store_ct_series(radai_node, tmp_path / "ct", count=1)
    storescu(radai_node, *paths)
    storescu(radai_node, *paths)
    images = findscu(radai_node, "-S", ["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={STUDY}",
                                        f"SeriesInstanceUID={SERIES}", "SOPInstanceUID"], tmp_path / "f")
    assert len(images) == 1
    assert len(list((radai_node.data_dir / "instances").rglob("*.dcm"))) == 1
    (series,) = findscu(radai_node, "-S", ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={STUDY}",
                                           "SeriesInstanceUID", "NumberOfSeriesRelatedInstances"],
                        tmp_path / "g")
    assert series.NumberOfSeriesRelatedInstances == 1
