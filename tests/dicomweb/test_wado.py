"""WADO-RS (PS3.18 §10.4): instances byte for byte, transcoding on demand, metadata as
DICOM JSON with bulk data by reference, bulk data, and frames native or as stored."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.utils import pack_bits
from pydicom.uid import ExplicitVRLittleEndian

from tests.dicomweb.conftest import Web, parse_multipart, sample
from tests.fixtures.data import TRANSFER_SYNTAX_SAMPLES, to_bytes

DICOM_PARTS = 'multipart/related; type="application/dicom"'
OCTET_ANY = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
#: What OHIF sends for frames (its default leaves the quotation marks out).
OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"


def _store(web: Web, *datasets: Dataset) -> list[bytes]:
    parts = [to_bytes(ds) for ds in datasets]
    r = web.stow(parts)
    assert r.status_code == 200, r.text
    return parts


def _url(ds: Dataset, suffix: str = "") -> str:
    return (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}{suffix}")


def _ts(content_type: str) -> str:
    return content_type.split("transfer-syntax=")[1].strip('"; ')


def test_every_transfer_syntax_comes_back_byte_for_byte(web: Web) -> None:
    datasets = [sample(name, f"wado-ts-{ts}") for ts, name in TRANSFER_SYNTAX_SAMPLES.items()]
    originals = _store(web, *datasets)
    for ds, data in zip(datasets, originals, strict=True):
        for accept in (None, DICOM_PARTS, f"{DICOM_PARTS}; transfer-syntax=*",
                       f"{DICOM_PARTS}; transfer-syntax={ds.file_meta.TransferSyntaxUID}"):
            r = web.client.get(_url(ds), headers={"Accept": accept} if accept else {})
            assert r.status_code == 200, (accept, r.text)
            (part,) = parse_multipart(r)
            assert part.data == data
            assert _ts(part.content_type) == ds.file_meta.TransferSyntaxUID
        single = web.client.get(_url(ds), headers={"Accept": "application/dicom"})
        assert single.status_code == 200
        assert single.content == data


def test_study_and_series_retrieval(web: Web) -> None:
    first = sample("CT_small.dcm", "wado-study-1")
    second = sample("CT_small.dcm", "wado-study-2")
    second.StudyInstanceUID, second.SeriesInstanceUID = first.StudyInstanceUID, first.SeriesInstanceUID
    first.InstanceNumber, second.InstanceNumber = 1, 2
    other_series = sample("MR_small_RLE.dcm", "wado-study-3")
    other_series.StudyInstanceUID = first.StudyInstanceUID
    data = _store(web, first, second, other_series)
    r = web.client.get(f"/dicom-web/studies/{first.StudyInstanceUID}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith('multipart/related; type="application/dicom"; boundary=')
    assert sorted(p.data for p in parse_multipart(r)) == sorted(data)
    r = web.client.get(f"/dicom-web/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}")
    assert [p.data for p in parse_multipart(r)] == data[:2]  # in instance number order


def test_explicit_little_endian_on_demand(web: Web) -> None:
    names = ("MR_small_RLE.dcm", "emri_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm",
             "MR_small_implicit.dcm", "SC_rgb_jpeg_dcmtk.dcm", "OBXXXX1A_expb_2frame.dcm")
    datasets = [sample(n, f"wado-transcode-{n}") for n in names]
    _store(web, *datasets)
    for ds in datasets:
        r = web.client.get(_url(ds), headers={
            "Accept": f"{DICOM_PARTS}; transfer-syntax={ExplicitVRLittleEndian}"})
        assert r.status_code == 200, r.text
        (part,) = parse_multipart(r)
        assert _ts(part.content_type) == ExplicitVRLittleEndian
        got = dcmread(io.BytesIO(part.data))
        assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert got.SOPInstanceUID == ds.SOPInstanceUID
        assert got.PatientName == ds.PatientName
        assert np.array_equal(got.pixel_array, ds.pixel_array), ds.SOPInstanceUID


def test_a_syntax_radai_does_not_hold_is_406(web: Web) -> None:
    (ds,) = [sample("CT_small.dcm", "wado-406")]
    _store(web, ds)
    for accept in ('multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90',
                   "image/jpeg", 'multipart/related; type="application/dicom+xml"'):
        r = web.client.get(_url(ds), headers={"Accept": accept})
        assert r.status_code == 406, accept
        assert r.json()["detail"]


def test_unknown_and_malformed_uids(web: Web) -> None:
    ds = sample("CT_small.dcm", "wado-404")
    _store(web, ds)
    other = sample("CT_small.dcm", "wado-404-other")
    assert web.client.get(f"/dicom-web/studies/{other.StudyInstanceUID}").status_code == 404
    assert web.client.get(f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{other.SeriesInstanceUID}"
                          ).status_code == 404
    # An instance asked for under a series it is not in.
    wrong = (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{other.SeriesInstanceUID}"
             f"/instances/{ds.SOPInstanceUID}")
    assert web.client.get(wrong).status_code == 404
    assert web.client.get(wrong + "/metadata").status_code == 404
    for bad in ("1.2.abc", "1." + "2" * 70, "1..2", "01.2"):
        r = web.client.get(f"/dicom-web/studies/{bad}")
        assert r.status_code == 400, bad
        assert "Study Instance UID" in r.json()["detail"]
    assert web.client.get(_url(ds).replace(str(ds.SOPInstanceUID), "1.2.3.x")).status_code == 400


BULK = b"(bulk data by reference)"


def _bulk(tag: str, vr: str, uri: str) -> bytes:
    assert vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"), (tag, vr)
    assert uri.startswith("http://testserver/dicom-web/studies/")
    return BULK


def _assert_same_except_bulk(ours: Dataset, stored: Dataset, *, little_endian: bool) -> list[str]:
    """Compare element by element, sequences recursively; returns the tags given by reference."""
    assert [e.tag for e in ours] == [e.tag for e in stored if e.tag.group > 2 and e.tag.element != 0]
    by_reference = []
    for elem in ours:
        original = stored[elem.tag]
        if elem.value == BULK:
            by_reference.append(f"{elem.tag:08X}")
        elif elem.VR == "SQ":
            assert len(elem.value) == len(original.value)
            for mine, theirs in zip(elem.value, original.value, strict=True):
                by_reference += _assert_same_except_bulk(mine, theirs, little_endian=little_endian)
        elif elem.VR in ("OB", "OW", "OF", "OD", "OL", "UN") and not little_endian:
            continue  # given in little endian on purpose; see the bulk data tests
        else:
            assert elem.value == original.value or (not elem.value and not original.value), elem.keyword
    return by_reference


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm",
                                  "emri_small_jpeg_2k_lossless.dcm", "MR_small_bigendian.dcm",
                                  "SC_rgb_jpeg_dcmtk.dcm"])
def test_metadata_round_trips_except_bulk_data(web: Web, name: str) -> None:
    ds = sample(name, f"wado-meta-{name}")
    _store(web, ds)
    r = web.client.get(_url(ds, "/metadata"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/dicom+json"
    (item,) = r.json()
    assert "BulkDataURI" in item["7FE00010"]
    assert item.pop("00083002")["Value"] == [ds.file_meta.TransferSyntaxUID]
    back = Dataset.from_json(item, bulk_data_uri_handler=_bulk)
    stored = dcmread(io.BytesIO(to_bytes(ds)))
    little_endian = stored.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.2"
    by_reference = _assert_same_except_bulk(back, stored, little_endian=little_endian)
    assert "7FE00010" in by_reference


def test_study_and_series_metadata(web: Web) -> None:
    first = sample("CT_small.dcm", "wado-meta-study-1")
    second = sample("MR_small.dcm", "wado-meta-study-2")
    second.StudyInstanceUID = first.StudyInstanceUID
    _store(web, first, second)
    items = web.client.get(f"/dicom-web/studies/{first.StudyInstanceUID}/metadata").json()
    assert sorted(i["00080018"]["Value"][0] for i in items) == sorted(
        [first.SOPInstanceUID, second.SOPInstanceUID])
    series = web.client.get(f"/dicom-web/studies/{first.StudyInstanceUID}/series/"
                            f"{second.SeriesInstanceUID}/metadata").json()
    assert [i["00080018"]["Value"][0] for i in series] == [second.SOPInstanceUID]


def _bulk_uri(web: Web, ds: Dataset, tag: str) -> str:
    (item,) = web.client.get(_url(ds, "/metadata")).json()
    uri: str = item[tag]["BulkDataURI"]
    assert uri.startswith("http://testserver/dicom-web/")
    return uri.removeprefix("http://testserver")


def test_bulk_data_of_overlay_and_pixels(web: Web) -> None:
    ds = sample("MR-SIEMENS-DICOM-WithOverlays.dcm", "wado-bulk")
    _store(web, ds)
    overlay = web.client.get(_bulk_uri(web, ds, "60003000"))
    assert overlay.status_code == 200
    (part,) = parse_multipart(overlay)
    assert part.data == ds[0x60003000].value
    pixels = web.client.get(_bulk_uri(web, ds, "7FE00010"))
    (part,) = parse_multipart(pixels)
    assert part.data == ds.pixel_array.tobytes()
    assert part.content_type.startswith("application/octet-stream")
    # Bulk data inside a sequence item: the icon's pixels.
    (item,) = web.client.get(_url(ds, "/metadata")).json()
    icon_uri = item["00880200"]["Value"][0]["7FE00010"]["BulkDataURI"]
    assert icon_uri.endswith("/bulkdata/00880200/0/7FE00010")
    (part,) = parse_multipart(web.client.get(icon_uri.removeprefix("http://testserver")))
    assert part.data == ds.IconImageSequence[0].PixelData
    single = web.client.get(_bulk_uri(web, ds, "60003000"), headers={"Accept": "application/octet-stream"})
    assert single.content == ds[0x60003000].value
    assert web.client.get(_url(ds, "/bulkdata/60003001")).status_code == 404
    assert web.client.get(_url(ds, "/bulkdata/00100010")).status_code == 404  # not bulk data
    assert web.client.get(_url(ds, "/bulkdata/not-a-path")).status_code == 404


def test_big_endian_bulk_data_is_little_endian(web: Web) -> None:
    ds = sample("MR_small_bigendian.dcm", "wado-bulk-be")
    _store(web, ds)
    (part,) = parse_multipart(web.client.get(_bulk_uri(web, ds, "7FE00010")))
    assert part.data == ds.pixel_array.astype("<i2").tobytes()


def test_compressed_pixel_bulk_data_as_stored(web: Web) -> None:
    ds = sample("emri_small_jpeg_2k_lossless.dcm", "wado-bulk-j2k")
    _store(web, ds)
    r = web.client.get(_bulk_uri(web, ds, "7FE00010"), headers={"Accept": OCTET_ANY})
    parts = parse_multipart(r)
    assert [p.data for p in parts] == list(generate_frames(ds.PixelData, number_of_frames=10))


#: Uncompressed (explicit, implicit, deflated, big endian), RLE, JPEG baseline, JPEG lossless,
#: JPEG-LS, JPEG 2000; single and multi-frame.
FRAME_SAMPLES = ["CT_small.dcm", "MR_small_implicit.dcm", "image_dfl.dcm", "emri_small.dcm",
                 "emri_small_big_endian.dcm", "OBXXXX1A_expb_2frame.dcm", "MR_small_RLE.dcm",
                 "emri_small_RLE.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_dcmtk.dcm",
                 "JPGLosslessP14SV1_1s_1f_8b.dcm", "emri_small_jpeg_ls_lossless.dcm",
                 "JPEGLSNearLossless_08.dcm", "MR_small_jp2klossless.dcm",
                 "emri_small_jpeg_2k_lossless.dcm", "US1_J2KR.dcm"]


def _frames_of(ds: Dataset) -> list[bytes]:
    arr = ds.pixel_array
    n = int(ds.get("NumberOfFrames", 1) or 1)
    frames = [arr] if n == 1 else list(arr)
    return [np.ascontiguousarray(f, dtype=f.dtype.newbyteorder("<")).tobytes() for f in frames]


def test_native_frames_equal_the_decoded_pixels(web: Web) -> None:
    datasets = [sample(n, f"wado-frames-{n}") for n in FRAME_SAMPLES]
    _store(web, *datasets)
    for ds in datasets:
        expected = _frames_of(ds)
        wanted = sorted({1, len(expected)})
        r = web.client.get(_url(ds, f"/frames/{','.join(map(str, wanted))}"),
                           headers={"Accept": 'multipart/related; type="application/octet-stream"'})
        assert r.status_code == 200, (ds.SOPInstanceUID, r.text)
        assert r.headers["content-type"].startswith('multipart/related; type="application/octet-stream"')
        parts = parse_multipart(r)
        assert [_ts(p.content_type) for p in parts] == [ExplicitVRLittleEndian] * len(wanted)
        assert [p.data for p in parts] == [expected[n - 1] for n in wanted], ds.file_meta.TransferSyntaxUID
        # No Accept header at all: native too.
        default = parse_multipart(web.client.get(_url(ds, "/frames/1")))
        assert default[0].data == expected[0]


def test_compressed_frames_as_stored_when_accepted(web: Web) -> None:
    datasets = [sample(n, f"wado-stored-frames-{n}") for n in FRAME_SAMPLES]
    _store(web, *datasets)
    for ds in datasets:
        ts = ds.file_meta.TransferSyntaxUID
        n = int(ds.get("NumberOfFrames", 1) or 1)
        r = web.client.get(_url(ds, f"/frames/{n}"), headers={"Accept": OHIF_FRAMES})
        assert r.status_code == 200
        (part,) = parse_multipart(r)
        if ts.is_compressed:
            assert _ts(part.content_type) == ts
            assert part.data == list(generate_frames(ds.PixelData, number_of_frames=n))[n - 1]
        else:
            assert _ts(part.content_type) == ExplicitVRLittleEndian
            assert part.data == _frames_of(ds)[n - 1]


@pytest.mark.parametrize(("name", "accept", "status"), [
    ("emri_small_jpeg_ls_lossless.dcm", 'multipart/related; type="image/jls"', 200),
    ("emri_small_jpeg_ls_lossless.dcm", 'multipart/related; type="image/jp2"', 406),
    ("MR_small_jp2klossless.dcm", 'multipart/related; type="image/jp2"', 200),
    ("SC_rgb_jpeg_dcmtk.dcm", 'multipart/related; type="image/jpeg"', 200),
    ("SC_rgb_jpeg_dcmtk.dcm", 'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.70',
     406),
    ("CT_small.dcm", 'multipart/related; type="image/jpeg"', 406),
    ("MR_small_RLE.dcm", 'multipart/related; type="image/dicom-rle"', 200),
    ("MR_small_RLE.dcm",
     'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.5', 200),
])
def test_frames_in_a_compressed_media_type(web: Web, name: str, accept: str, status: int) -> None:
    ds = sample(name, f"wado-media-{name}")
    _store(web, ds)
    r = web.client.get(_url(ds, "/frames/1"), headers={"Accept": accept})
    assert r.status_code == status, r.text
    if status == 200:
        (part,) = parse_multipart(r)
        assert _ts(part.content_type) == ds.file_meta.TransferSyntaxUID
        n = int(ds.get("NumberOfFrames", 1) or 1)
        assert part.data == next(generate_frames(ds.PixelData, number_of_frames=n))


def test_single_bit_frames_are_packed(web: Web) -> None:
    ds = sample("liver.dcm", "wado-1bit")
    _store(web, ds)
    parts = parse_multipart(web.client.get(_url(ds, "/frames/2,3")))
    assert [p.data for p in parts] == [pack_bits(ds.pixel_array[i]) for i in (1, 2)]


def test_bad_frame_requests(web: Web) -> None:
    ds = sample("emri_small.dcm", "wado-bad-frames")
    sr = sample("test-SR.dcm", "wado-bad-frames-sr")
    _store(web, ds, sr)
    assert web.client.get(_url(ds, "/frames/11")).status_code == 404
    for bad in ("0", "a", "1,,2", "-1"):
        r = web.client.get(_url(ds, f"/frames/{bad}"))
        assert r.status_code == 400, bad
    assert web.client.get(_url(sr, "/frames/1")).status_code == 404
    r = web.client.get(_url(ds, "/frames/1"), headers={"Accept": "application/dicom"})
    assert r.status_code == 406
