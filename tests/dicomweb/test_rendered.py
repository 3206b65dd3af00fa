"""Rendered resources and thumbnails (PS3.18 §10.4.1.1.3, §10.4.1.3, §8.3.5.1): JPEG and
PNG that Pillow decodes to the right size, windowing that changes what is seen."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from tests.dicomweb.conftest import Web, parse_multipart, sample
from tests.fixtures.data import to_bytes


def _store(web: Web, *datasets: Dataset) -> None:
    r = web.stow([to_bytes(ds) for ds in datasets])
    assert r.status_code == 200, r.text


def _url(ds: Dataset, suffix: str) -> str:
    return (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}{suffix}")


def _image(data: bytes, fmt: str) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == fmt
    image.load()
    return image


@pytest.fixture
def ct(web: Web) -> Dataset:
    ds = sample("CT_small.dcm", "rendered-ct")  # 128×128, 16-bit signed
    _store(web, ds)
    return ds


def test_instance_renders_as_jpeg_by_default(web: Web, ct: Dataset) -> None:
    r = web.client.get(_url(ct, "/rendered"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    image = _image(r.content, "JPEG")
    assert image.size == (ct.Columns, ct.Rows)
    assert image.mode == "L"


def test_png_by_accept_header_or_query_parameter(web: Web, ct: Dataset) -> None:
    by_header = web.client.get(_url(ct, "/rendered"), headers={"Accept": "image/png"})
    by_query = web.client.get(_url(ct, "/rendered"), params={"accept": "image/png"},
                              headers={"Accept": "image/jpeg"})
    for r in (by_header, by_query):
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/png"
        assert _image(r.content, "PNG").size == (128, 128)
    assert by_header.content == by_query.content
    assert web.client.get(_url(ct, "/rendered"), headers={"Accept": "image/gif"}).status_code == 406


def _png_pixels(web: Web, url: str, **params: str) -> np.ndarray:
    r = web.client.get(url, params={"accept": "image/png", **params})
    assert r.status_code == 200, r.text
    return np.asarray(_image(r.content, "PNG"))


def test_window_changes_the_rendering(web: Web, ct: Dataset) -> None:
    url = _url(ct, "/rendered")
    wide = _png_pixels(web, url, window="40,4000")
    narrow = _png_pixels(web, url, window="40,80")
    sigmoid = _png_pixels(web, url, window="40,80,sigmoid")
    assert not np.array_equal(wide, narrow)
    assert not np.array_equal(narrow, sigmoid)
    # A narrow window saturates: most pixels end up black or white.
    saturated = np.mean((narrow == 0) | (narrow == 255))
    assert saturated > np.mean((wide == 0) | (wide == 255))
    assert saturated > 0.5


def test_viewport_scales_keeping_the_aspect_ratio(web: Web, ct: Dataset) -> None:
    assert _png_pixels(web, _url(ct, "/rendered"), viewport="64,64").shape == (64, 64)
    assert _png_pixels(web, _url(ct, "/rendered"), viewport="300,100").shape == (100, 100)
    wide = sample("JPEG2000.dcm", "rendered-wide")  # 1024 rows × 256 columns
    _store(web, wide)
    assert _png_pixels(web, _url(wide, "/rendered"), viewport="128,128").shape == (128, 32)
    # Source region: the top-left quarter, shown at 32×32.
    quarter = _png_pixels(web, _url(ct, "/rendered"), viewport="32,32,0,0,64,64")
    assert quarter.shape == (32, 32)


def test_quality_trades_size_for_fidelity(web: Web, ct: Dataset) -> None:
    low = web.client.get(_url(ct, "/rendered"), params={"quality": "5"}).content
    high = web.client.get(_url(ct, "/rendered"), params={"quality": "100"}).content
    assert len(low) < len(high)


def test_frames_are_rendered_one_by_one(web: Web) -> None:
    mri = sample("emri_small.dcm", "rendered-frames")  # 10 frames of 64×64
    _store(web, mri)
    first = _png_pixels(web, _url(mri, "/frames/1/rendered"))
    second = _png_pixels(web, _url(mri, "/frames/2/rendered"))
    assert first.shape == second.shape == (64, 64)
    assert not np.array_equal(first, second)
    r = web.client.get(_url(mri, "/frames/1,2/rendered"), params={"accept": "image/png"})
    parts = parse_multipart(r)
    assert [p.content_type for p in parts] == ["image/png", "image/png"]
    assert np.array_equal(np.asarray(_image(parts[1].data, "PNG")), second)
    assert web.client.get(_url(mri, "/frames/11/rendered")).status_code == 404


def test_colour_image_renders_in_colour(web: Web) -> None:
    rgb = sample("SC_rgb_jpeg_dcmtk.dcm", "rendered-rgb")
    _store(web, rgb)
    image = _image(web.client.get(_url(rgb, "/rendered")).content, "JPEG")
    assert image.mode == "RGB"
    assert image.size == (rgb.Columns, rgb.Rows)


def test_series_and_study_render_every_image(web: Web, ct: Dataset) -> None:
    second = sample("CT_small.dcm", "rendered-ct-2")
    second.StudyInstanceUID, second.SeriesInstanceUID = ct.StudyInstanceUID, ct.SeriesInstanceUID
    report = sample("test-SR.dcm", "rendered-sr")
    report.StudyInstanceUID = ct.StudyInstanceUID
    _store(web, second, report)
    r = web.client.get(f"/dicom-web/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/rendered")
    parts = parse_multipart(r)
    assert len(parts) == 2
    assert all(_image(p.data, "JPEG").size == (128, 128) for p in parts)
    # The report has no pixels: the study gives the two images.
    assert len(parse_multipart(web.client.get(f"/dicom-web/studies/{ct.StudyInstanceUID}/rendered"))) == 2
    sr = _url(report, "/rendered")
    assert web.client.get(sr).status_code == 406


def test_thumbnails(web: Web, ct: Dataset) -> None:
    mri = sample("emri_small.dcm", "thumb-mri")
    _store(web, mri)
    for url in (f"/dicom-web/studies/{ct.StudyInstanceUID}/thumbnail",
                f"/dicom-web/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/thumbnail",
                _url(ct, "/thumbnail")):
        r = web.client.get(url)
        assert r.status_code == 200, url
        assert max(_image(r.content, "JPEG").size) == web.radai.settings.dicomweb.thumbnail_size
    frame = web.client.get(_url(mri, "/frames/3/thumbnail"), params={"viewport": "32,32"})
    assert _image(frame.content, "JPEG").size == (32, 32)
    assert web.client.get(_url(mri, "/frames/1,2/thumbnail")).status_code == 400


BAD_PARAMETERS = [
    {"window": "abc"}, {"window": "40"}, {"window": "40,0"}, {"window": "40,400,cubic"},
    {"viewport": "0,10"}, {"viewport": "10"}, {"viewport": "a,b"}, {"viewport": "10,10,-1,0,5,5"},
    {"viewport": "10,10,500,500,5,5"}, {"quality": "0"}, {"quality": "best"},
]


def test_bad_rendering_parameters_are_400(web: Web, ct: Dataset) -> None:
    for params in BAD_PARAMETERS:
        r = web.client.get(_url(ct, "/rendered"), params=params)
        assert r.status_code == 400, params
        assert next(iter(params)) in r.json()["detail"], params
