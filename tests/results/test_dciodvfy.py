"""Every kind of result object passes dicom3tools' dciodvfy without errors.

Warnings that remain are accepted (and listed in :data:`ACCEPTED`): values copied from the
real source images (a one-component Referring Physician's Name, CT_small's Patient's
Weight of 0), Operators' Name / Content Creator's Name "AI" as asked for (one-component
person names), and radai's own coding scheme, declared in the Coding Scheme
Identification Sequence but unknown to dciodvfy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from radai.models.api import Code, DefectCategory
from radai.results.common import Algorithm
from radai.results.inputs import Heatmap, SegmentMask, SourceImage
from radai.results.sc import heatmap_captures
from radai.results.seg import segmentations
from radai.results.sr import defect_report, measurement_report
from radai.results.summary import conclusion_text
from tests.results.conftest import dciodvfy, findings, source

#: Warning texts that may appear (see the module docstring).
ACCEPTED = ("Retired Person Name form", "Unrecognized defined term <99RADAI>",
            "Value is zero for value 1 of attribute <Patient's Weight>")


def _objects(kind: str, chest: SourceImage, algorithm: Algorithm) -> list[Dataset]:
    scores = findings()
    heat = np.zeros((64, 64), np.float32)
    heat[20:40, 20:40] = 1.0
    if kind == "sr":
        return [measurement_report(sources=[chest.dataset], algorithm=algorithm, findings=scores,
                                   conclusion=conclusion_text(scores))]
    if kind == "sr-defect":
        return [defect_report(sources=[chest.dataset], algorithm=algorithm,
                              category=DefectCategory.SERVICE_UNAVAILABLE, reason="model timed out")]
    if kind == "sc":
        return heatmap_captures(sources=[chest], algorithm=algorithm, findings=scores,
                                heatmaps=[Heatmap(0, heat)])
    if kind == "sc-lossy":
        return heatmap_captures(sources=[SourceImage(chest.dataset, chest.size_bytes // 40)],
                                algorithm=algorithm, findings=scores, heatmaps=[Heatmap(0, heat)])
    if kind == "seg":
        return segmentations(sources=[chest], algorithm=algorithm,
                             masks=[SegmentMask(0, Code("52988006", "SCT", "Lesion"), "lesion", heat)])
    if kind == "seg-ct":
        ct = source("CT_small.dcm")
        return segmentations(sources=[ct], algorithm=algorithm,
                             masks=[SegmentMask(0, Code("52988006", "SCT", "Lesion"), "lesion", heat)])
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["sr", "sr-defect", "sc", "sc-lossy", "seg", "seg-ct"])
def test_result_objects_pass_dciodvfy(kind: str, chest: SourceImage, algorithm: Algorithm,
                                      tmp_path: Path) -> None:
    for ds in _objects(kind, chest, algorithm):
        verdict = dciodvfy(ds, tmp_path)
        assert verdict.errors == [], verdict.output
        unexpected = [w for w in verdict.warnings if not any(a in w for a in ACCEPTED)]
        assert unexpected == [], verdict.output
