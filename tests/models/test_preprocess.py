"""The pixel pipeline for models on real files: every accepted transfer syntax,
MONOCHROME1, multi-frame, windowing choices and unreadable pixels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import JPEGExtended12Bit, JPEGLossless

from radai.archive.transfer_syntaxes import ACCEPTED_TRANSFER_SYNTAXES
from radai.models.api import DefectCategory, ModelDefect
from radai.models.manifest import FixedWindow, InputSpec, load_manifest
from radai.models.preprocess import frame_values, prepare_input
from radai.models.registry import builtin_packages_dir
from tests.fixtures.data import (
    TRANSFER_SYNTAX_SAMPLES,
    pydicom_data,
    pydicom_test_file,
    sample_for_transfer_syntax,
    to_bytes,
)
from tests.fixtures.peers import require_program

BRAIN = load_manifest(builtin_packages_dir() / "brain_tumor_mri")
PNEUMONIA = load_manifest(builtin_packages_dir() / "pneumonia_peds")


def spec(**changes: object) -> InputSpec:
    """The brain model's input spec with changes."""
    return InputSpec.model_validate({**BRAIN.input.model_dump(), **changes})


def _jpeg_lossless_p14(tmp_path: Path) -> Path:
    import subprocess

    source = tmp_path / "source.dcm"
    source.write_bytes(to_bytes(dcmread(pydicom_data("693_UNCR.dcm"))))
    target = tmp_path / "p14.dcm"
    subprocess.run([require_program("dcmcjpeg"), "+el", str(source), str(target)], check=True,
                   capture_output=True)
    return target


def test_every_accepted_transfer_syntax_decodes(tmp_path: Path) -> None:
    files = {ts: sample_for_transfer_syntax(ts) for ts in TRANSFER_SYNTAX_SAMPLES}
    files[str(JPEGLossless)] = _jpeg_lossless_p14(tmp_path)
    # The shared JPEG Extended sample (JPEG-lossy.dcm) has a scan libjpeg refuses (only
    # GDCM reads it); JPGExtended.dcm is a real 12-bit JPEG Extended image that decodes.
    files[str(JPEGExtended12Bit)] = pydicom_test_file("JPGExtended.dcm")
    assert set(files) == ACCEPTED_TRANSFER_SYNTAXES
    for ts, path in files.items():
        ds = dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == ts
        x = prepare_input(ds, BRAIN.input)
        assert x.shape == (240, 240, 3) and x.dtype == np.float32, ts
        assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0, ts
        assert x.std() > 0.01, f"{ts}: the image came out flat"


@pytest.mark.parametrize("compressed", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm"])
def test_lossless_compression_gives_the_same_input(compressed: str) -> None:
    plain = prepare_input(dcmread(pydicom_test_file("MR_small.dcm")), BRAIN.input)
    packed = prepare_input(dcmread(sample_for_transfer_syntax(
        next(ts for ts, n in TRANSFER_SYNTAX_SAMPLES.items() if n == compressed))), BRAIN.input)
    np.testing.assert_array_equal(plain, packed)


def test_monochrome1_is_inverted() -> None:
    ds = dcmread(pydicom_data("RG1_UNCI.dcm"))  # a real MONOCHROME1 chest radiograph
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    as_m2 = dcmread(pydicom_data("RG1_UNCI.dcm"))
    as_m2.PhotometricInterpretation = "MONOCHROME2"
    for windowing in ("minmax", "dataset", FixedWindow(center=2000, width=3000)):
        inverted = frame_values(ds, 0, windowing)
        plain = frame_values(as_m2, 0, windowing)
        assert inverted.dtype == np.uint8
        np.testing.assert_array_equal(inverted, 255 - plain)
    stored = frame_values(ds, 0, "none")
    np.testing.assert_array_equal(stored, (2**15 - 1) - ds.pixel_array.astype(np.float32))
    # Through the pneumonia model's pipeline (its VOI window, inverted, then x/127.5 - 1).
    x = prepare_input(ds, PNEUMONIA.input)
    m2 = prepare_input(as_m2, PNEUMONIA.input)
    assert x.shape == (150, 150, 3) and x.min() >= -1.0 and x.max() <= 1.0
    np.testing.assert_allclose(x, -m2, atol=1e-6)


def test_multi_frame_selection_and_volume() -> None:
    ds = dcmread(pydicom_data("emri_small.dcm"))
    assert int(ds.NumberOfFrames) == 10
    first = prepare_input(ds, spec(frames="first"))
    middle = prepare_input(ds, spec(frames="middle"))
    for index, got in ((0, first), (4, middle)):
        expected = prepare_input(_single_frame(ds, frames_index=index), spec(frames="first"))
        np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(first, middle)
    volume = prepare_input(ds, spec(dimensions="3D", frames="all"))
    assert volume.shape == (10, 240, 240, 3)
    np.testing.assert_array_equal(volume[4], middle)
    chw = prepare_input(ds, spec(dimensions="3D", frames="all", layout="NCHW"))
    assert chw.shape == (3, 10, 240, 240)
    np.testing.assert_array_equal(chw, volume.transpose(3, 0, 1, 2))


def _single_frame(ds: Dataset, *, frames_index: int) -> Dataset:
    copy = dcmread(io.BytesIO(to_bytes(ds)))
    arr = copy.pixel_array[frames_index]
    copy.NumberOfFrames = 1
    copy.PixelData = arr.astype(arr.dtype).tobytes()
    return copy


def test_layouts_channels_and_normalisations() -> None:
    ds = dcmread(pydicom_data("MR2_UNCR.dcm"))
    nhwc = prepare_input(ds, spec())
    nchw = prepare_input(ds, spec(layout="NCHW"))
    np.testing.assert_array_equal(nchw, nhwc.transpose(2, 0, 1))
    gray = prepare_input(ds, spec(channels=1))
    assert gray.shape == (240, 240, 1)
    np.testing.assert_array_equal(gray[..., 0], nhwc[..., 0])
    centred = prepare_input(ds, spec(normalisation={"kind": "minus_one_one"}))
    np.testing.assert_allclose(centred, nhwc * 2 - 1, atol=1e-6)
    imagenet = prepare_input(ds, spec(normalisation={"kind": "mean_std", "mean": [0.485, 0.456, 0.406],
                                                     "std": [0.229, 0.224, 0.225]}))
    np.testing.assert_allclose(imagenet[..., 1], (nhwc[..., 1] - 0.456) / 0.224, atol=1e-5)


def test_unreadable_pixels_are_input_not_suited() -> None:
    ds = dcmread(pydicom_test_file("CT_small.dcm"))
    ds.PixelData = ds.PixelData[:100]  # truncated
    with pytest.raises(ModelDefect) as err:
        prepare_input(ds, BRAIN.input)
    assert err.value.category is DefectCategory.INPUT_NOT_SUITED
    assert "unreadable pixels" in err.value.reason
    del ds.PixelData
    with pytest.raises(ModelDefect, match="no Pixel Data"):
        prepare_input(ds, BRAIN.input)
    # A real file whose JPEG stream the installed decoders refuse: a precise defect, no crash.
    with pytest.raises(ModelDefect, match=r"pixel data cannot be decoded \(RuntimeError\)"):
        prepare_input(dcmread(sample_for_transfer_syntax(str(JPEGExtended12Bit))), BRAIN.input)
