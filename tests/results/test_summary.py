"""The JSON summary (Moscow experiment style) and its conclusion in words."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from radai.models.api import DefectCategory
from radai.results.common import Algorithm
from radai.results.summary import conclusion_text, confidence_level, defect_summary, findings_summary
from tests.results.conftest import findings


def test_positive_study_is_flagged_with_its_confidence(algorithm: Algorithm) -> None:
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    summary = findings_summary(algorithm=algorithm, findings=findings(0.873, 0.12), received=t0,
                               started=t0, finished=t0)
    data = json.loads(summary.model_dump_json(by_alias=True))
    assert data["status"] == "findings"
    assert data["pathologyFlag"] is True
    assert data["confidenceLevel"] == 87
    assert data["modelId"] == "pneumonia-peds" and data["modelVersion"] == "0.3.0"
    assert data["timestamps"]["received"].startswith("2026-01-02T03:04:05")
    assert [f["label"] for f in data["findings"]] == ["pneumonia", "pleural effusion"]
    assert data["findings"][0]["code"] == {"value": "233604007", "scheme": "SCT", "meaning": "Pneumonia"}
    assert data["findings"][0]["positive"] is True and data["findings"][1]["positive"] is False
    assert "pneumonia suspected" in data["conclusion"]
    assert data["defect"] is None


def test_negative_study_is_not_flagged(algorithm: Algorithm) -> None:
    summary = findings_summary(algorithm=algorithm, findings=findings(0.2, 0.05))
    assert summary.pathology_flag is False
    assert summary.confidence_level == 20
    assert "No finding reached the model's operating point" in summary.conclusion


def test_defect_summary_has_no_flag_and_says_why(algorithm: Algorithm) -> None:
    summary = defect_summary(algorithm=algorithm, category=DefectCategory.INPUT_NOT_SUITED,
                             reason="no frontal chest radiograph")
    data = json.loads(summary.model_dump_json(by_alias=True))
    assert data["status"] == "defect"
    assert data["pathologyFlag"] is None and data["confidenceLevel"] is None
    assert data["defect"] == {"category": "input_not_suited", "reason": "no frontal chest radiograph"}
    assert "did not analyse" in data["conclusion"]


def test_confidence_is_a_percentage_of_the_highest_probability() -> None:
    assert confidence_level(findings(0.004, 0.0)) == 0
    assert confidence_level(findings(1.0, 0.3)) == 100
    with pytest.raises(ValueError, match="at least one finding"):
        conclusion_text([])
