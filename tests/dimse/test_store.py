"""C-ECHO and C-STORE against the real in-process SCP over loopback, bad input included."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from pydicom import config as pydicom_config
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID
from pynetdicom import _config, build_context
from sqlalchemy import select

from radai.archive.models import Instance
from radai.archive.parse import RejectReason
from radai.archive.transfer_syntaxes import ACCEPTED_TRANSFER_SYNTAXES
from tests.dimse.conftest import CT_IMAGE_STORAGE, VERIFICATION, Served
from tests.fixtures.data import pydicom_data, sample_for_transfer_syntax, to_bytes, with_new_uids

SECRET_NAME = "Geheim^Patientin"
SECRET_ID = "PID-991177"


def _instances(served: Served) -> list[Instance]:
    with served.radai.db.session() as s:
        return list(s.scalars(select(Instance)))


def _files(served: Served) -> list[Path]:
    return [p for p in served.radai.storage.root.rglob("*") if p.is_file()]


def _metric(served: Served, message: str, status: str) -> float:
    value = served.radai.metrics.registry.get_sample_value(
        "radai_dimse_requests_total", {"message": message, "status": status})
    return value or 0.0


def _ct(salt: str) -> Dataset:
    ds = with_new_uids(dcmread(pydicom_data("693_UNCR.dcm")), salt)
    ds.PatientName = SECRET_NAME
    ds.PatientID = SECRET_ID
    return ds


def test_echo(server: Served) -> None:
    assert server.echo_ok()
    assert _metric(server, "C-ECHO", "success") == 1


@pytest.mark.parametrize("ts", sorted(ACCEPTED_TRANSFER_SYNTAXES - {"1.2.840.10008.1.2.4.57"}))
def test_store_keeps_the_data_set_bytes_in_their_transfer_syntax(server: Served, ts: str) -> None:
    ds = with_new_uids(dcmread(sample_for_transfer_syntax(ts)), f"dimse-{ts}")
    sent = to_bytes(ds)
    assoc = server.associate([build_context(str(ds.SOPClassUID), [ts])], calling_ae="MODALITY1")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(dcmread(io.BytesIO(sent)))
    finally:
        assoc.release()
    assert status.Status == 0x0000
    (inst,) = _instances(server)
    assert inst.transfer_syntax_uid == ts
    assert inst.source == "dimse" and inst.source_ae_title == "MODALITY1"
    stored = server.radai.storage.path(inst.path).read_bytes()
    sent_ds, stored_ds = dcmread(io.BytesIO(sent)), dcmread(io.BytesIO(stored))
    assert stored_ds.file_meta.TransferSyntaxUID == ts
    # The data set travels as received: every element's bytes are those sent.
    body = sent[sent_ds.file_meta["FileMetaInformationGroupLength"].value + 144:]
    if ts != "1.2.840.10008.1.2.1.99":  # deflate is re-compressed by the sender on the wire
        assert stored.endswith(body)
    assert stored_ds.PixelData == sent_ds.PixelData
    assert _metric(server, "C-STORE", "success") == 1


def test_resending_an_instance_stores_it_once(server: Served) -> None:
    ds = _ct("twice")
    assoc = server.associate([CT_IMAGE_STORAGE])
    try:
        assert assoc.send_c_store(ds).Status == 0
        assert assoc.send_c_store(ds).Status == 0
    finally:
        assoc.release()
    assert len(_instances(server)) == 1
    assert len(_files(server)) == 1


# --- bad input ---------------------------------------------------------------------


def _part10(path: Path, body: bytes, *, sop_class: str, sop_instance: str,
            ts: str = "1.2.840.10008.1.2.1") -> Path:
    """A file whose header names the instance and whose data set is ``body`` as given."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(ts)
    meta.ImplementationClassUID = UID("1.2.3.4")
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_file_meta_info(buf, meta, enforce_standard=True)
    path.write_bytes(b"\0" * 128 + b"DICM" + buf.getvalue() + body)
    return path


def _body(ds: Dataset) -> bytes:
    """The data set encoded as Explicit VR Little Endian, values written as they are."""
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    previous = pydicom_config.settings.writing_validation_mode
    pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
    try:
        write_dataset(buf, ds)
    finally:
        pydicom_config.settings.writing_validation_mode = previous
    return buf.getvalue()


def _send_raw(served: Served, path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Send a file's data set bytes unchanged (pynetdicom's chunked sending does not decode)."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    assoc = served.associate([build_context(CT_IMAGE_STORAGE, ["1.2.840.10008.1.2.1"])])
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(path).Status)
    finally:
        assoc.release()


def _nothing_stored_and_still_serving(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    assert _instances(served) == []
    assert _files(served) == []
    for record in caplog.records:
        text = record.getMessage()
        assert SECRET_NAME not in text and SECRET_ID not in text
    assert any(r.name == "radai.archive.service" and "refused" in r.getMessage() for r in caplog.records)
    assert served.echo_ok()


@pytest.fixture
def ct_ds() -> Dataset:
    return _ct("bad-input")


def test_truncated_data_set(server: Served, ct_ds: Dataset, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    body = _body(ct_ds)[:-5000]
    path = _part10(tmp_path / "cut.dcm", body, sop_class=CT_IMAGE_STORAGE,
                   sop_instance=ct_ds.SOPInstanceUID)
    assert _send_raw(server, path, monkeypatch) == RejectReason.CANNOT_UNDERSTAND
    _nothing_stored_and_still_serving(server, caplog)


def test_non_dicom_payload(server: Served, ct_ds: Dataset, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    path = _part10(tmp_path / "text.dcm", b"%PDF-1.4 this is not a data set\n" * 64,
                   sop_class=CT_IMAGE_STORAGE, sop_instance=ct_ds.SOPInstanceUID)
    assert _send_raw(server, path, monkeypatch) == RejectReason.CANNOT_UNDERSTAND
    _nothing_stored_and_still_serving(server, caplog)


def test_data_set_without_sop_instance_uid(server: Served, ct_ds: Dataset, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    uid = ct_ds.SOPInstanceUID
    del ct_ds.SOPInstanceUID
    path = _part10(tmp_path / "nouid.dcm", _body(ct_ds), sop_class=CT_IMAGE_STORAGE, sop_instance=uid)
    assert _send_raw(server, path, monkeypatch) == RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS
    _nothing_stored_and_still_serving(server, caplog)


def test_uid_with_path_characters(server: Served, ct_ds: Dataset, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    ct_ds.SOPInstanceUID = "../1.2"
    path = _part10(tmp_path / "dots.dcm", _body(ct_ds), sop_class=CT_IMAGE_STORAGE, sop_instance="../1.2")
    assert _send_raw(server, path, monkeypatch) == RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS
    _nothing_stored_and_still_serving(server, caplog)
    assert not any("../1.2" in r.getMessage() for r in caplog.records)
    assert not list(server.radai.settings.data_dir.parent.rglob("1.2"))


def test_uid_longer_than_64_characters(server: Served, ct_ds: Dataset, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    command_uid = ct_ds.SOPInstanceUID
    ct_ds.SOPInstanceUID = "1.2.826.0.1." + "1234567890" * 6
    path = _part10(tmp_path / "long.dcm", _body(ct_ds), sop_class=CT_IMAGE_STORAGE, sop_instance=command_uid)
    assert _send_raw(server, path, monkeypatch) == RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS
    _nothing_stored_and_still_serving(server, caplog)
    assert any("longer than 64" in r.getMessage() for r in caplog.records)


def test_data_set_of_another_sop_class_than_the_command(server: Served, ct_ds: Dataset, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    ct_ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR, sent as CT
    path = _part10(tmp_path / "mr.dcm", _body(ct_ds), sop_class=CT_IMAGE_STORAGE,
                   sop_instance=ct_ds.SOPInstanceUID)
    assert _send_raw(server, path, monkeypatch) == RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS
    _nothing_stored_and_still_serving(server, caplog)


def test_unsupported_sop_class_is_not_accepted(server: Served, ct_ds: Dataset) -> None:
    unsupported = "1.3.12.2.1107.5.9.1"  # a private (vendor) storage SOP class
    ct_ds.SOPClassUID = unsupported
    assoc = server.associate([VERIFICATION, build_context(unsupported)])
    assert assoc.is_established
    try:
        assert [cx.abstract_syntax for cx in assoc.rejected_contexts] == [unsupported]
        with pytest.raises(ValueError, match="No presentation context"):
            assoc.send_c_store(ct_ds)
    finally:
        assoc.release()
    assert _instances(server) == [] and _files(server) == []
    assert server.echo_ok()


def test_storage_classes_and_transfer_syntaxes_offered(server: Served) -> None:
    # A retired storage class (Ultrasound Image Storage, retired) and JPEG Lossless process 14.
    retired_us = "1.2.840.10008.5.1.4.1.1.6"
    assoc = server.associate([build_context(retired_us, ["1.2.840.10008.1.2.4.57"])])
    try:
        assert [cx.abstract_syntax for cx in assoc.accepted_contexts] == [retired_us]
    finally:
        assoc.release()
