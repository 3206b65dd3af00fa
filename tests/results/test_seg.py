"""DICOM Segmentation of mask outputs: write-then-read, codes, algorithm, geometry."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pytest

from radai.models.api import Code
from radai.results.common import Algorithm, to_part10
from radai.results.inputs import SegmentMask, SourceImage
from radai.results.seg import segment_masks_of, segmentations
from radai.results.segmentation import SegmentationError, load_segmentation_spec
from tests.fixtures.data import with_new_uids
from tests.results.conftest import MASK_MODEL_DIR, source

LESION = Code("52988006", "SCT", "Lesion")
LUNG = Code("39607008", "SCT", "Lung")
ANATOMY = Code("123037004", "SCT", "Anatomical Structure")


def _square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    mask[top:top + side, left:left + side] = 1.0
    return mask


def test_masks_round_trip_onto_the_source_pixels(algorithm: Algorithm) -> None:
    ct = source("CT_small.dcm")  # 128 × 128
    mask = _square(128, 30, 40, 20)
    (seg,) = segmentations(sources=[ct], algorithm=algorithm,
                           masks=[SegmentMask(0, LESION, "lesion", mask)])
    back = hd.seg.segread(io.BytesIO(to_part10(seg)))
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert back.SegmentationType == "BINARY"
    read = segment_masks_of(back)
    np.testing.assert_array_equal(read["lesion"][0], mask > 0.5)
    description = back.get_segment_description(1)
    assert description.segmented_property_type == hd.sr.CodedConcept("52988006", "SCT", "Lesion")
    assert description.segmented_property_category.value == "49755003"
    assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    algo = description.algorithm_identification[0]
    assert algo.AlgorithmName == algorithm.name[:64] and algo.AlgorithmVersion == "0.3.0"
    assert algo.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"
    source_ref = back.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert source_ref.ReferencedSOPInstanceUID == ct.dataset.SOPInstanceUID
    assert back.StudyInstanceUID == ct.dataset.StudyInstanceUID
    equipment = back.ContributingEquipmentSequence[-1]
    assert equipment.PurposeOfReferenceCodeSequence[0].CodeValue == "Newcode1"


def test_a_mask_at_model_size_is_resized_to_the_source(chest: SourceImage, algorithm: Algorithm) -> None:
    mask = _square(64, 16, 16, 32)  # the model saw 64 × 64; the centre half is inside
    (seg,) = segmentations(sources=[chest], algorithm=algorithm,
                           masks=[SegmentMask(0, LESION, "lesion", mask)])
    read = segment_masks_of(hd.seg.segread(io.BytesIO(to_part10(seg))))["lesion"][0]
    rows, cols = chest.dataset.Rows, chest.dataset.Columns
    assert read.shape == (rows, cols)
    assert read[rows // 2, cols // 2] and not read[10, 10] and not read[rows - 10, cols - 10]
    assert read.mean() == pytest.approx(0.25, abs=0.01)


def test_each_finding_is_one_segment(algorithm: Algorithm) -> None:
    ct = source("CT_small.dcm")
    masks = [SegmentMask(0, LESION, "lesion", _square(128, 10, 10, 10)),
             SegmentMask(0, LUNG, "lung", _square(128, 50, 50, 40), category=ANATOMY)]
    (seg,) = segmentations(sources=[ct], algorithm=algorithm, masks=masks)
    back = hd.seg.segread(io.BytesIO(to_part10(seg)))
    assert [back.get_segment_description(n).SegmentLabel for n in back.segment_numbers] == ["lesion", "lung"]
    read = segment_masks_of(back)
    assert read["lesion"][0].sum() == 100 and read["lung"][0].sum() == 1600
    assert back.get_segment_description(2).segmented_property_category.value == ANATOMY.value


def test_one_segmentation_per_source_series_with_stable_uids(algorithm: Algorithm) -> None:
    a = source("CT_small.dcm")
    b = SourceImage(with_new_uids(source("CT_small.dcm").dataset, "seg-b"), 1)
    b.dataset.StudyInstanceUID = a.dataset.StudyInstanceUID
    masks = [SegmentMask(0, LESION, "lesion", _square(128, 5, 5, 5)),
             SegmentMask(1, LESION, "lesion", _square(128, 9, 9, 9))]
    first = segmentations(sources=[a, b], algorithm=algorithm, masks=masks)
    again = segmentations(sources=[a, b], algorithm=algorithm, masks=masks)
    assert len(first) == 2
    assert [s.SOPInstanceUID for s in first] == [s.SOPInstanceUID for s in again]
    assert first[0].SOPInstanceUID != first[1].SOPInstanceUID


def test_bad_masks_are_refused(algorithm: Algorithm) -> None:
    ct = source("CT_small.dcm")
    with pytest.raises(ValueError, match="input_index 2 has no source image"):
        segmentations(sources=[ct], algorithm=algorithm,
                      masks=[SegmentMask(2, LESION, "lesion", _square(128, 1, 1, 1))])
    with pytest.raises(ValueError, match="Segment Label"):
        SegmentMask(0, LESION, " ", _square(8, 1, 1, 1))
    assert segmentations(sources=[ct], algorithm=algorithm, masks=[]) == []


def test_the_test_package_declares_its_segmentation() -> None:
    spec = load_segmentation_spec(MASK_MODEL_DIR)
    assert spec is not None
    segment = spec.for_finding(LESION)
    assert segment is not None and segment.threshold == 0.5
    assert spec.for_finding(Code("263654008", "SCT", "Abnormal")) is None


def test_an_invalid_segmentation_file_names_the_field(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "segmentation.yaml").write_text("segments:\n  - finding: {value: x, scheme: SCT}\n")
    with pytest.raises(SegmentationError, match=r"segmentation.yaml: segments.0.finding.meaning"):
        load_segmentation_spec(folder)
    assert load_segmentation_spec(folder / "elsewhere") is None
