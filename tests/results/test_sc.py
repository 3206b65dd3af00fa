"""Marked-up images: Secondary Capture with heatmap and caption, size rule, write-then-read."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from radai.imaging import display_frame
from radai.results.common import Algorithm, to_part10
from radai.results.inputs import Heatmap, SourceImage
from radai.results.sc import burn_caption, caption_lines, heatmap_captures, overlay
from tests.fixtures.data import with_new_uids
from tests.results.conftest import PNEUMONIA, findings, source


def _hotspot(rows: int = 224, cols: int = 224, at: tuple[float, float] = (0.4, 0.3)) -> np.ndarray:
    yy, xx = np.mgrid[0:rows, 0:cols]
    cy, cx = at[0] * rows, at[1] * cols
    return np.exp(-(((yy - cy) / (rows / 10)) ** 2 + ((xx - cx) / (cols / 10)) ** 2)).astype(np.float32)


def _read_back(ds: Dataset) -> Dataset:
    return dcmread(io.BytesIO(to_part10(ds)))


def test_capture_is_a_secondary_capture_of_the_source(chest: SourceImage, algorithm: Algorithm) -> None:
    (sc,) = heatmap_captures(sources=[chest], algorithm=algorithm, findings=findings(),
                             heatmaps=[Heatmap(0, _hotspot(), PNEUMONIA)])
    back = _read_back(sc)
    src = chest.dataset
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert (back.Rows, back.Columns) == (src.Rows, src.Columns)
    assert back.SamplesPerPixel == 3 and back.BitsAllocated == 8
    assert back.BurnedInAnnotation == "YES"
    assert back.OperatorsName == "AI"
    assert "Paediatric pneumonia" in back.DerivationDescription and "0.3.0" in back.DerivationDescription
    ref = back.SourceImageSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (src.SOPClassUID, src.SOPInstanceUID)
    assert back.StudyInstanceUID == src.StudyInstanceUID and back.PatientID == src.PatientID
    assert back.SeriesInstanceUID != src.SeriesInstanceUID
    assert back.ImageType[:2] == ["DERIVED", "SECONDARY"]
    assert back.PatientOrientation == src.PatientOrientation
    purpose = back.ContributingEquipmentSequence[-1].PurposeOfReferenceCodeSequence[0]
    assert (purpose.CodeValue, purpose.CodingSchemeDesignator) == ("Newcode1", "99IHE")


def test_capture_pixels_are_the_overlay_with_caption_exactly(chest: SourceImage,
                                                             algorithm: Algorithm) -> None:
    heat = _hotspot()
    (sc,) = heatmap_captures(sources=[chest], algorithm=algorithm, findings=findings(),
                             heatmaps=[Heatmap(0, heat)])
    back = _read_back(sc)
    # A 7.2 MB source leaves room for lossless JPEG-LS: what is read is what was drawn.
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"
    # The source itself was once JPEG 2000 compressed (ratio 10): the capture says so too.
    assert back.LossyImageCompression == "01"
    assert back.LossyImageCompressionMethod == "ISO_15444_1"
    expected = burn_caption(overlay(display_frame(chest.dataset), heat), caption_lines(algorithm, findings()))
    np.testing.assert_array_equal(back.pixel_array, expected)


def test_heatmap_colours_the_hot_region_and_leaves_the_rest_grey(chest: SourceImage,
                                                                 algorithm: Algorithm) -> None:
    (sc,) = heatmap_captures(sources=[chest], algorithm=algorithm, findings=findings(),
                             heatmaps=[Heatmap(0, _hotspot(at=(0.5, 0.5)))])
    rgb = _read_back(sc).pixel_array.astype(int)
    rows, cols = rgb.shape[:2]
    hot = rgb[rows // 2 - 5:rows // 2 + 5, cols // 2 - 5:cols // 2 + 5]
    assert (hot[..., 0] - hot[..., 2]).mean() > 40  # jet's red end where the model looked
    cold = rgb[rows - 60:rows - 10, 10:60]
    assert np.array_equal(cold[..., 0], cold[..., 1]) and np.array_equal(cold[..., 1], cold[..., 2])


def test_caption_is_burned_into_the_top_of_the_image(chest: SourceImage, algorithm: Algorithm) -> None:
    (sc,) = heatmap_captures(sources=[chest], algorithm=algorithm, findings=findings(), heatmaps=[])
    rgb = _read_back(sc).pixel_array
    band = rgb[: rgb.shape[0] // 20]
    plain = display_frame(chest.dataset)[: rgb.shape[0] // 20]
    assert (band == 255).all(axis=2).sum() > 500  # white letters
    assert band[..., 0].mean() < plain.mean() - 20  # on a darkened band
    lines = caption_lines(algorithm, findings())
    assert lines[0] == ("AI RESULT — NOT FOR DIAGNOSIS — "
                        "Paediatric pneumonia chest X-ray classifier (Xception) 0.3.0")
    assert "pneumonia: 0.87 (positive)" in lines[1]


def test_capture_is_not_larger_than_its_source(chest: SourceImage, algorithm: Algorithm) -> None:
    (sc,) = heatmap_captures(sources=[chest], algorithm=algorithm, findings=findings(),
                             heatmaps=[Heatmap(0, _hotspot())])
    assert len(to_part10(sc)) <= chest.size_bytes


def test_a_small_budget_is_met_with_lossy_compression_that_is_declared(chest: SourceImage,
                                                                       algorithm: Algorithm) -> None:
    budget = chest.size_bytes // 40  # as if the source were stored highly compressed
    (sc,) = heatmap_captures(sources=[SourceImage(chest.dataset, budget)], algorithm=algorithm,
                             findings=findings(), heatmaps=[Heatmap(0, _hotspot())])
    data = to_part10(sc)
    assert len(data) <= budget
    back = dcmread(io.BytesIO(data))
    assert back.LossyImageCompression == "01"
    # The source's own lossy step (JPEG 2000, ratio 10) first, then the capture's.
    assert back.LossyImageCompressionMethod[0] == "ISO_15444_1"
    assert back.LossyImageCompressionMethod[1] in ("ISO_15444_1", "ISO_14495_1")
    assert float(back.LossyImageCompressionRatio[0]) == 10
    assert float(back.LossyImageCompressionRatio[1]) > 1
    decoded = back.pixel_array
    assert decoded.shape == (chest.dataset.Rows, chest.dataset.Columns, 3)
    reference = burn_caption(overlay(display_frame(chest.dataset), _hotspot()),
                             caption_lines(algorithm, findings()))
    assert np.abs(decoded.astype(int) - reference.astype(int)).mean() < 8


def test_a_lossless_source_gets_a_lossless_capture_within_its_size(algorithm: Algorithm) -> None:
    ct = source("693_UNCR.dcm")  # 512 × 512 CT, uncompressed, 526 kB
    (sc,) = heatmap_captures(sources=[ct], algorithm=algorithm, findings=findings(),
                             heatmaps=[Heatmap(0, _hotspot())])
    data = to_part10(sc)
    back = dcmread(io.BytesIO(data))
    assert len(data) <= ct.size_bytes
    assert "LossyImageCompression" not in back
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"


def test_sources_under_512_are_exempt_from_the_size_rule(algorithm: Algorithm) -> None:
    ct = source("CT_small.dcm")  # 128 × 128
    (sc,) = heatmap_captures(sources=[SourceImage(ct.dataset, 100)], algorithm=algorithm,
                             findings=findings(), heatmaps=[Heatmap(0, _hotspot(64, 64))])
    back = _read_back(sc)
    assert (back.Rows, back.Columns) == (128, 128)
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"  # lossless, larger than 100 bytes


def test_a_lossy_source_makes_a_lossy_capture(algorithm: Algorithm) -> None:
    jpeg = source("SC_rgb_jpeg_dcmtk.dcm")  # JPEG baseline, colour
    (sc,) = heatmap_captures(sources=[jpeg], algorithm=algorithm, findings=findings(), heatmaps=[])
    back = _read_back(sc)
    assert back.LossyImageCompression == "01"
    assert back.Rows == jpeg.dataset.Rows and back.pixel_array.shape[2] == 3


def test_captures_are_deterministic_and_one_per_source(chest: SourceImage, algorithm: Algorithm) -> None:
    ct = SourceImage(with_new_uids(source("CT_small.dcm").dataset, "sc-two"), 40000)
    ct.dataset.StudyInstanceUID = chest.dataset.StudyInstanceUID
    first = heatmap_captures(sources=[chest, ct], algorithm=algorithm, findings=findings(), heatmaps=[])
    again = heatmap_captures(sources=[chest, ct], algorithm=algorithm, findings=findings(), heatmaps=[])
    assert [d.SOPInstanceUID for d in first] == [d.SOPInstanceUID for d in again]
    assert len({d.SOPInstanceUID for d in first}) == 2
    assert [d.InstanceNumber for d in first] == [1, 2]
    assert first[0].SeriesInstanceUID != first[1].SeriesInstanceUID  # one SC series per source series
    assert all(len(str(d.SeriesInstanceUID)) <= 64 for d in first)
    assert first[0].PixelData == again[0].PixelData


def test_bad_heatmaps_are_refused(chest: SourceImage, algorithm: Algorithm) -> None:
    with pytest.raises(ValueError, match="input_index 3 has no source image"):
        heatmap_captures(sources=[chest], algorithm=algorithm, findings=findings(),
                         heatmaps=[Heatmap(3, _hotspot())])
    with pytest.raises(ValueError, match="2-D"):
        Heatmap(0, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="opacity"):
        overlay(np.zeros((4, 4), np.uint8), None, opacity=2.0)


def test_a_multi_frame_source_gives_the_frame_the_model_read(algorithm: Algorithm) -> None:
    mr = source("emri_small.dcm")  # enhanced MR, 10 frames of 64 × 64
    frame = SourceImage(mr.dataset, mr.size_bytes, frame=5)
    (sc,) = heatmap_captures(sources=[frame], algorithm=algorithm, findings=findings(), heatmaps=[])
    back = _read_back(sc)
    assert back.SourceImageSequence[0].ReferencedFrameNumber == 6
    expected = burn_caption(overlay(display_frame(mr.dataset, 5), None), caption_lines(algorithm, findings()))
    np.testing.assert_array_equal(back.pixel_array, expected)
    other = heatmap_captures(sources=[SourceImage(mr.dataset, mr.size_bytes, frame=0)], algorithm=algorithm,
                             findings=findings(), heatmaps=[])
    assert other[0].SOPInstanceUID != sc.SOPInstanceUID
