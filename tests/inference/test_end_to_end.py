"""End to end in one process with a real model: a real CR chest radiograph is stored,
becomes stable, is routed by the embedded default rules to the built-in pneumonia-peds
model (Keras Xception exported to ONNX), and gets its finding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from sqlalchemy import select

from radai.inference.heatmaps import load_heatmap
from radai.inference.models import Finding
from radai.routing.models import RoutingDecision
from tests.fixtures.data import pydicom_data
from tests.fixtures.waiting import wait_for
from tests.inference.conftest import all_tasks, make_radai, tasks_in
from tests.inference.packages import store_image

pytestmark = pytest.mark.slow


def test_a_chest_radiograph_gets_a_pneumonia_finding(tmp_path: Path, sqlite_url: str) -> None:
    radai = make_radai(tmp_path, sqlite_url)
    radai.start()  # routing (default rules), stability, DIMSE, the local executor
    try:
        study_uid, _ = store_image(radai, "RG1_UNCI.dcm", "end-to-end")  # CR chest PA, MONOCHROME1
        wait_for(tasks_in(radai, "done", "defect"), timeout=600, what="the pneumonia task ended")
        [task] = all_tasks(radai)
        assert task.state == "done", task.reason
        assert (task.model_id, task.model_version) == ("pneumonia-peds", "0.3.0")
        assert task.input_count == 1 and task.inference_ms and task.preprocess_ms
        with radai.db.session() as s:
            # (Result objects radai stores later are a change that routes nothing.)
            [decision] = list(s.scalars(select(RoutingDecision)
                                        .where(RoutingDecision.outcome == "routed")))
            [finding] = list(s.scalars(select(Finding)))
        assert decision.rules == "chest-radiograph" and decision.outcome == "routed"
        assert (finding.code_value, finding.code_scheme, finding.code_meaning) == (
            "233604007", "SCT", "Pneumonia")
        assert finding.threshold == 0.5 and finding.positive == (finding.probability >= 0.5)
        # The same image through the same model outside the executor gives the same score.
        model = radai.models.load("pneumonia-peds", "0.3.0")
        x = model.prepare(dcmread(pydicom_data("RG1_UNCI.dcm")))
        [expected] = model.score(model.infer(x[np.newaxis]))
        assert abs(finding.probability - expected.probability) < 1e-4
        if finding.positive:
            assert finding.heatmap_path is not None
            assert load_heatmap(radai.settings.data_dir, finding.heatmap_path).shape == (150, 150)
        else:
            assert finding.heatmap_path is None
        assert finding.sop_instance_uid and study_uid
    finally:
        radai.stop()
