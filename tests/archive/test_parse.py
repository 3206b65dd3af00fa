"""Every way an instance is refused before anything is written (issue [1/6] item 6)."""

from __future__ import annotations

import io

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info

from radai.archive.parse import Rejection, RejectReason, file_meta_group, is_valid_uid, parse_instance
from radai.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from tests.fixtures.data import pydicom_data, sample_for_transfer_syntax, to_bytes, with_new_uids

ACCEPTED = [
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
]


def _ct() -> Dataset:
    return dcmread(pydicom_data("693_UNCR.dcm"))


def _refused(data: bytes) -> Rejection:
    with pytest.raises(Rejection) as info:
        parse_instance(data)
    return info.value


@pytest.mark.parametrize("ts", ACCEPTED)
def test_every_accepted_transfer_syntax_parses_and_keeps_its_bytes(ts: str) -> None:
    data = to_bytes(with_new_uids(dcmread(sample_for_transfer_syntax(ts)), "parse"))
    parsed = parse_instance(data)
    assert parsed.transfer_syntax_uid == ts
    assert parsed.data == data  # stored as received


def test_index_attributes_are_read() -> None:
    parsed = parse_instance(pydicom_data("RG1_UNCI.dcm").read_bytes())
    assert parsed.attributes["modality"] == "CR"
    assert parsed.attributes["rows"] == 1955 and parsed.attributes["columns"] == 1841
    assert parsed.sop_class_uid == "1.2.840.10008.5.1.4.1.1.1"


def test_not_dicom() -> None:
    rej = _refused(b"this is a text file, not an image\n" * 20)
    assert rej.reason is RejectReason.CANNOT_UNDERSTAND


def test_empty_and_tiny_payloads() -> None:
    assert _refused(b"").reason is RejectReason.CANNOT_UNDERSTAND
    assert _refused(b"\0" * 131 + b"D").reason is RejectReason.CANNOT_UNDERSTAND


@pytest.mark.parametrize("cut", [10, 4000, 100_000])
def test_truncated_uncompressed_file(cut: int) -> None:
    data = pydicom_data("693_UNCR.dcm").read_bytes()
    assert _refused(data[:-cut]).reason is RejectReason.CANNOT_UNDERSTAND


def test_truncated_encapsulated_pixel_data() -> None:
    data = pydicom_data("693_J2KR.dcm").read_bytes()
    assert _refused(data[: len(data) // 2]).reason is RejectReason.CANNOT_UNDERSTAND


def test_truncated_inside_the_header_of_an_image() -> None:
    data = pydicom_data("693_UNCR.dcm").read_bytes()
    ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    assert "SOPInstanceUID" in ds
    # Cut where the header is complete but Pixel Data is gone: an image without pixels.
    header_end = data.index(b"\xe0\x7f\x10\x00")
    assert _refused(data[:header_end]).reason is RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS


def test_missing_sop_instance_uid() -> None:
    ds = _ct()
    del ds.SOPInstanceUID
    rej = _refused(to_bytes(ds))
    assert rej.reason is RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS
    assert "SOPInstanceUID" in rej.message


@pytest.mark.parametrize("uid", ["../../etc/passwd", "1.2/3.4", "1.2.3\\4", "1." + "2" * 70, "1.02.3", "abc"])
def test_invalid_uids(uid: str) -> None:
    ds = _ct()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    rej = _refused(to_bytes(ds))
    assert rej.reason is RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS
    assert uid not in rej.message  # the value is not echoed


def test_invalid_study_uid() -> None:
    ds = _ct()
    ds.StudyInstanceUID = "1.2.3/../4"
    assert "StudyInstanceUID" in _refused(to_bytes(ds)).message


def test_unsupported_sop_class() -> None:
    ds = _ct()
    ds.SOPClassUID = "1.2.840.10008.1.1"  # Verification: not a storage SOP class
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    assert _refused(to_bytes(ds)).reason is RejectReason.SOP_CLASS_NOT_SUPPORTED


def test_retired_storage_class_is_accepted() -> None:
    # pydicom-data's color-pl.dcm uses the retired Ultrasound Image Storage class.
    parsed = parse_instance(pydicom_data("color-pl.dcm").read_bytes())
    assert parsed.sop_class_uid == "1.2.840.10008.5.1.4.1.1.6"


def test_unsupported_transfer_syntax() -> None:
    data = pydicom_data("693_UNCR.dcm").read_bytes()
    meta = dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile: not accepted
    # Swap the File Meta header, keeping the dataset bytes after it.
    group_length = int.from_bytes(data[140:144], "little")
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_file_meta_info(buf, meta, enforce_standard=True)
    swapped = data[:132] + buf.getvalue() + data[144 + group_length:]
    assert _refused(swapped).reason is RejectReason.TRANSFER_SYNTAX_NOT_SUPPORTED


def test_command_and_dataset_uids_must_agree() -> None:
    data = pydicom_data("693_UNCR.dcm").read_bytes()
    with pytest.raises(Rejection) as info:
        parse_instance(data, expected_sop_instance_uid="1.2.3.4")
    assert info.value.reason is RejectReason.DATASET_DOES_NOT_MATCH_SOP_CLASS


def test_bare_dataset_gets_a_file_meta_header() -> None:
    ds = _ct()
    ds.preamble = None
    ds.file_meta = FileMetaDataset()
    buf = io.BytesIO()
    ds.save_as(buf, implicit_vr=True, little_endian=True)  # no preamble, no meta
    raw = buf.getvalue()
    assert raw[128:132] != b"DICM"
    parsed = parse_instance(raw)
    assert parsed.data[128:132] == b"DICM"
    again = dcmread(io.BytesIO(parsed.data))
    assert again.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert again.SOPInstanceUID == ds.SOPInstanceUID
    assert raw.endswith(parsed.data[-1000:])  # dataset bytes kept as they were


def test_uid_syntax() -> None:
    assert is_valid_uid("1.2.840.10008.1.2")
    assert is_valid_uid("2.25.0")
    assert not is_valid_uid("1.2.")
    assert not is_valid_uid("1..2")
    assert not is_valid_uid("1.2." + "3" * 61)


def _split(part10: bytes) -> tuple[bytes, bytes]:
    """(File Meta Information group, data set bytes) of a PS3.10 file."""
    end = 144 + int.from_bytes(part10[140:144], "little")
    return part10[132:end], part10[end:]


@pytest.mark.parametrize("ts", ACCEPTED)
def test_bare_data_set_in_a_known_transfer_syntax(ts: str) -> None:
    # What a C-STORE brings: the data set bytes, and the presentation context's syntax.
    part10 = to_bytes(with_new_uids(dcmread(sample_for_transfer_syntax(ts)), "bare"))
    _, body = _split(part10)
    parsed = parse_instance(body, transfer_syntax_uid=ts)
    assert parsed.transfer_syntax_uid == ts
    assert parsed.data.endswith(body) and parsed.data[128:132] == b"DICM"
    assert parsed.attributes == parse_instance(part10).attributes
    stored = dcmread(io.BytesIO(parsed.data))
    assert stored.file_meta.TransferSyntaxUID == ts
    assert stored.file_meta.MediaStorageSOPInstanceUID == parsed.sop_instance_uid
    assert stored.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID


@pytest.mark.parametrize("sop_instance", ["1.2.3.4", "1.2.3.45", "1.2.826.0.1.3680043.10.995.1.1.233"])
def test_file_meta_group_is_what_pydicom_writes(sop_instance: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_file_meta_info(buf, meta, enforce_standard=True)
    encoded = file_meta_group("1.2.840.10008.5.1.4.1.1.2", sop_instance, "1.2.840.10008.1.2.4.90")
    assert encoded == buf.getvalue()


def test_truncated_in_an_element_that_is_stepped_over() -> None:
    ds = _ct()
    ds.DataSetTrailingPadding = b"\0" * 20000  # (FFFC,FFFC): after Pixel Data, not read
    data = to_bytes(ds)
    assert parse_instance(data).sop_instance_uid == ds.SOPInstanceUID
    assert _refused(data[:-5000]).reason is RejectReason.CANNOT_UNDERSTAND
    _, body = _split(data)
    with pytest.raises(Rejection) as info:
        parse_instance(body[:-5000], transfer_syntax_uid="1.2.840.10008.1.2.1")
    assert info.value.reason is RejectReason.CANNOT_UNDERSTAND


def test_truncated_bare_deflated_data_set() -> None:
    part10 = to_bytes(with_new_uids(dcmread(sample_for_transfer_syntax("1.2.840.10008.1.2.1.99")), "dfl"))
    _, body = _split(part10)
    with pytest.raises(Rejection) as info:
        parse_instance(body[: len(body) // 2], transfer_syntax_uid="1.2.840.10008.1.2.1.99")
    assert info.value.reason is RejectReason.CANNOT_UNDERSTAND


def test_bare_data_set_in_a_transfer_syntax_radai_does_not_accept() -> None:
    _, body = _split(pydicom_data("693_UNCR.dcm").read_bytes())
    with pytest.raises(Rejection) as info:
        parse_instance(body, transfer_syntax_uid="1.2.840.10008.1.2.4.100")
    assert info.value.reason is RejectReason.TRANSFER_SYNTAX_NOT_SUPPORTED


def test_text_with_a_known_transfer_syntax_is_not_dicom() -> None:
    with pytest.raises(Rejection) as info:
        parse_instance(b"%PDF-1.4 not a data set\n" * 64, transfer_syntax_uid="1.2.840.10008.1.2.1")
    assert info.value.reason is RejectReason.CANNOT_UNDERSTAND
