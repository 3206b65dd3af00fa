"""DICOM Segmentation of a model's mask outputs (PS3.3 A.51, built with highdicom).

One binary Segmentation instance per source series: one frame per source image that has
a mask, one segment per distinct segmented property (the finding's code). Masks given at
the model's input size are resized to the source with nearest-neighbour, so that the
segmentation lies on the source pixels (Derivation Image and Referenced Series
sequences point back to them). Segment Algorithm Type is AUTOMATIC with the algorithm's
name, version, maker and family (123110, DCM, "Artificial Intelligence") from PS3.16
CID 7162 (Segmentation Algorithm Families).
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian

from radai.results.common import (
    CHARACTER_SET,
    MANUFACTURER,
    Algorithm,
    add_algorithm,
    quiet_library_output,
    require_same_study,
    result_uid,
    sources_key,
)
from radai.results.inputs import SegmentMask, SourceImage

#: Series Number of radai's SEG series.
SEG_SERIES_NUMBER = 9903
#: Algorithm family of an AI segmentation (PS3.16 CID 7162).
ALGORITHM_FAMILY = Code("123110", "DCM", "Artificial Intelligence")


def _resized(mask: np.ndarray, rows: int, cols: int) -> np.ndarray:
    inside = np.asarray(mask, dtype=np.float32) > 0.5
    if inside.shape == (rows, cols):
        return inside
    image = Image.fromarray(inside.astype(np.uint8) * 255, mode="L")
    return np.asarray(image.resize((cols, rows), Image.Resampling.NEAREST)) > 127


def segmentations(*, sources: Sequence[SourceImage], algorithm: Algorithm,
                  masks: Sequence[SegmentMask]) -> list[hd.seg.Segmentation]:
    """DICOM SEG instances for ``masks`` over ``sources`` (one per source series).

    ``SegmentMask.input_index`` points into ``sources`` (the task's inputs, in order).
    Sources must be single-frame images (projection radiographs, slices); the SOP
    Instance UID derives from the model version and the sources, so the same masks
    give the same instance.
    """
    if not masks:
        return []
    require_same_study([s.dataset for s in sources])
    for m in masks:
        if m.input_index >= len(sources):
            raise ValueError(f"segment mask input_index {m.input_index} has no source image")
    segments: dict[tuple[str, str], tuple[int, SegmentMask]] = {}
    for m in masks:
        segments.setdefault((m.code.value, m.code.scheme), (len(segments) + 1, m))
    by_series: dict[str, list[int]] = {}
    for index in sorted({m.input_index for m in masks}):
        by_series.setdefault(str(sources[index].dataset.SeriesInstanceUID), []).append(index)
    return [_one_series(sources, indices, masks, segments, algorithm)
            for indices in by_series.values()]


def _geometry_source(ds: Dataset) -> Dataset:
    """``ds`` (shallow copy) without a Pixel Spacing that is no spacing at all.

    Real radiographs carry "0\\0" in Pixel Spacing (0028,0030); copied into the
    segmentation's Pixel Measures it would make an invalid object, so the segmentation
    then states no spacing rather than a wrong one.
    """
    copy = ds.copy()
    spacing = copy.get("PixelSpacing")
    if spacing is not None:
        try:
            valid = len(spacing) == 2 and all(float(v) > 0 for v in spacing)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            del copy.PixelSpacing
    return copy


def _one_series(sources: Sequence[SourceImage], indices: list[int], masks: Sequence[SegmentMask],
                segments: dict[tuple[str, str], tuple[int, SegmentMask]],
                algorithm: Algorithm) -> hd.seg.Segmentation:
    datasets = [_geometry_source(sources[i].dataset) for i in indices]
    for ds in datasets:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise ValueError("segmentation of multi-frame sources is not supported (Number of Frames > 1)")
    rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
    if any((int(ds.Rows), int(ds.Columns)) != (rows, cols) for ds in datasets):
        raise ValueError("source images of one series differ in Rows (0028,0010) or Columns (0028,0011)")
    pixels = np.zeros((len(indices), rows, cols, len(segments)), dtype=bool)
    for m in masks:
        if m.input_index in indices:
            number, _ = segments[(m.code.value, m.code.scheme)]
            frame = indices.index(m.input_index)
            pixels[frame, :, :, number - 1] |= _resized(m.mask, rows, cols)
    algorithm_id = hd.AlgorithmIdentificationSequence(
        name=algorithm.name[:64], family=ALGORITHM_FAMILY, version=algorithm.version[:64],
        source=algorithm.vendor[:64])
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number, segment_label=m.label[:64],
            segmented_property_category=hd.sr.CodedConcept(m.category.value, m.category.scheme,
                                                           m.category.meaning),
            segmented_property_type=hd.sr.CodedConcept(m.code.value, m.code.scheme, m.code.meaning[:64]),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm_id,
            tracking_uid=result_uid("seg-tracking", algorithm, m.code.scheme, m.code.value),
            tracking_id=m.label[:64])
        for number, m in sorted(segments.values(), key=lambda item: item[0])]
    series_uid = str(datasets[0].SeriesInstanceUID)
    with quiet_library_output():
        seg = hd.seg.Segmentation(
            source_images=datasets,
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=result_uid("seg-series", algorithm, series_uid),
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=result_uid("seg", algorithm,
                                        sources_key(str(d.SOPInstanceUID) for d in datasets)),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name="radai results",
            software_versions=_radai_version(),
            device_serial_number=algorithm.device_uid[:64],
            content_label="AI_SEGMENTATION",
            content_description=f"AI result {algorithm.name}"[:64],
            content_creator_name="AI",
            series_description=f"AI segmentation {algorithm.name}"[:64],
            transfer_syntax_uid=ExplicitVRLittleEndian,
            omit_empty_frames=False,
            specific_character_set=CHARACTER_SET,
        )
    if "ImageOrientationPatient" not in datasets[0] and "PatientOrientation" not in seg:
        # General Image Module, Type 2C when there is no patient-relative geometry.
        seg.PatientOrientation = datasets[0].get("PatientOrientation", "")
    add_algorithm(seg, algorithm)
    return seg


def _radai_version() -> str:
    from radai import __version__

    return __version__


def segment_masks_of(seg: Dataset) -> dict[str, np.ndarray]:
    """Segment label → boolean mask stack (frames × rows × columns) of a read-back SEG."""
    parsed = seg if isinstance(seg, hd.seg.Segmentation) else hd.seg.Segmentation.from_dataset(seg)
    out: dict[str, np.ndarray] = {}
    for number in parsed.segment_numbers:
        label = str(parsed.get_segment_description(number).SegmentLabel)
        out[label] = np.asarray(parsed.get_pixels_by_source_instance(
            source_sop_instance_uids=[str(r.ReferencedSOPInstanceUID) for r in _sources(parsed)],
            segment_numbers=[number], combine_segments=False)[..., 0], dtype=bool)
    return out


def _sources(seg: hd.seg.Segmentation) -> list[Dataset]:
    return [ref for series in seg.ReferencedSeriesSequence for ref in series.ReferencedInstanceSequence]
