"""Making result objects puts no patient data in logs or warnings (CONVENTIONS 3)."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from radai.models.api import Code, DefectCategory
from radai.results.common import Algorithm
from radai.results.inputs import Heatmap, SegmentMask, SourceImage
from radai.results.sc import heatmap_captures
from radai.results.seg import segmentations
from radai.results.sr import defect_report, measurement_report
from tests.results.conftest import findings


def test_writers_log_and_warn_nothing_from_the_source(chest: SourceImage, algorithm: Algorithm,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    src = chest.dataset
    secrets = [str(src.SOPInstanceUID), str(src.StudyInstanceUID), str(src.SeriesInstanceUID),
               str(src.PatientID), str(src.PatientName), str(src.ReferringPhysicianName)]
    heat = np.ones((32, 32), np.float32)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        measurement_report(sources=[src], algorithm=algorithm, findings=findings(), conclusion="c")
        defect_report(sources=[src], algorithm=algorithm, category=DefectCategory.MODEL_ERROR, reason="r")
        heatmap_captures(sources=[chest], algorithm=algorithm, findings=findings(),
                         heatmaps=[Heatmap(0, heat)])
        segmentations(sources=[chest], algorithm=algorithm,
                      masks=[SegmentMask(0, Code("52988006", "SCT", "Lesion"), "lesion", heat)])
    said = [r.getMessage() for r in caplog.records] + [str(w.message) for w in caught]
    leaks = [(secret, line) for line in said for secret in secrets if secret and secret in line]
    assert leaks == []
