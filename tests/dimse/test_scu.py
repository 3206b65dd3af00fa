"""send_files: the C-STORE SCU helper, sending to a real radai SCP over loopback."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from pydicom import dcmread

from radai.config import DimsePeer, Settings
from radai.dimse.scu import send_files
from tests.dimse.conftest import serve
from tests.fixtures.data import pydicom_data, sample_for_transfer_syntax, to_bytes, with_new_uids
from tests.fixtures.peers import LOOPBACK, free_port


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_send_files_reports_each_instance(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    ct = _file(tmp_path, "ct.dcm", to_bytes(with_new_uids(dcmread(pydicom_data("693_UNCR.dcm")), "scu")))
    j2k = _file(tmp_path, "mr.dcm", to_bytes(with_new_uids(
        dcmread(sample_for_transfer_syntax("1.2.840.10008.1.2.4.90")), "scu")))
    junk = _file(tmp_path, "notes.txt", b"not an instance\n")
    for served in serve(make_settings({"allowed_calling_aets": ["SENDER"]})):
        peer = DimsePeer(ae_title=served.ae_title, host=LOOPBACK, port=served.port)
        report = send_files(peer=peer, calling_ae="SENDER", paths=[ct, junk, j2k])
        assert [r.path for r in report.results] == [ct, junk, j2k]
        assert [r.status for r in report.results] == [0x0000, None, 0x0000]
        assert (report.completed, report.warnings, report.failed) == (2, 0, 1)
        assert report.association_error is None
        for r in (report.results[0], report.results[2]):
            stored = served.radai.archive.read(r.sop_instance_uid)
            sent = r.path.read_bytes()
            assert dcmread(io.BytesIO(stored)).file_meta.TransferSyntaxUID == \
                dcmread(io.BytesIO(sent)).file_meta.TransferSyntaxUID
            assert sent.endswith(stored[-4096:])  # the data set as stored, pixels untouched

        refused = send_files(peer=peer, calling_ae="STRANGER", paths=[ct])
        assert refused.association_error == "association rejected"
        assert [r.status for r in refused.results] == [None] and refused.failed == 1


def test_send_files_to_a_peer_that_does_not_answer(tmp_path: Path) -> None:
    ct = _file(tmp_path, "ct.dcm", pydicom_data("693_UNCR.dcm").read_bytes())
    peer = DimsePeer(ae_title="NOBODY", host=LOOPBACK, port=free_port())
    report = send_files(peer=peer, calling_ae="SENDER", paths=[ct], timeout_seconds=5)
    assert report.association_error == "no association (no connection or aborted)"
    assert report.failed == 1 and report.results[0].sop_instance_uid
