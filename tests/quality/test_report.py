"""The stand-alone HTML report, for a real binary and a real multi-class classifier.

The scores come from scikit-learn's logistic regression, cross-validated on the data
sets scikit-learn ships (Wisconsin breast cancer: binary; Fisher's iris: three classes).
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from radai.models.api import DefectCategory
from radai.quality.gate import GateThresholds, evaluate_gate
from radai.quality.inputs import FindingSpec, StudyOutcome, TechnicalDefect, Truth
from radai.quality.report import DatasetInfo, ModelInfo, render_report, write_report
from radai.quality.validation import ValidationResult, evaluate_validation

MODEL = ModelInfo("tumour-lr", "2.1.0", "Example Vendor Ltd", "Apache-2.0; research use only")
DATASET = DatasetInfo("breast-cancer-wisconsin", "4", "9f" * 32)
WHEN = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


def _probabilities(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=1000))
    proba: np.ndarray = cross_val_predict(model, x, y, cv=5, method="predict_proba")
    return proba


def _subgroups(i: int) -> dict[str, str]:
    # The sklearn data sets carry no demographics; assign attributes so that every table is exercised.
    return {
        "sex": "F" if i % 3 else "M",
        "age_band": ["18-39", "40-59", "60+"][i % 3],
        "manufacturer": ["GE", "Siemens"][i % 2],
        "institution": "Site A" if i < 300 else "Site B",
    }


def _binary_run() -> ValidationResult:
    data = load_breast_cancer()
    malignant = (data.target == 0).astype(int)  # sklearn codes malignant as 0
    proba = _probabilities(data.data, malignant)[:, 1]
    outcomes = []
    for i, (truth, p) in enumerate(zip(malignant, proba, strict=True)):
        label = Truth.UNCERTAIN if i % 50 == 7 else (Truth.PRESENT if truth else Truth.ABSENT)
        key = f"BC-{i:04d}"
        outcomes.append(StudyOutcome(key, {"malignant": label}, {"malignant": float(p)}, _subgroups(i)))
    defects = [
        TechnicalDefect("BC-9001", DefectCategory.INPUT_NOT_SUITED, "no mammography series", _subgroups(1)),
        TechnicalDefect("BC-9002", DefectCategory.SERVICE_UNAVAILABLE, "inference timed out <after 60 s>"),
    ]
    spec = FindingSpec("malignant", "Malignant tumour", 0.5)
    return evaluate_validation(findings=[spec], outcomes=outcomes, defects=defects)


def _multiclass_run() -> ValidationResult:
    data = load_iris()
    proba = _probabilities(data.data, data.target)
    codes = [str(n) for n in data.target_names]
    outcomes = []
    for i, (target, row) in enumerate(zip(data.target, proba, strict=True)):
        truth = {c: Truth.PRESENT if k == target else Truth.ABSENT for k, c in enumerate(codes)}
        outcomes.append(StudyOutcome(f"IR-{i:03d}", truth, dict(zip(codes, map(float, row), strict=True)),
                                     _subgroups(i)))
    findings = [FindingSpec(c, f"Iris {c}", 0.5) for c in codes]
    return evaluate_validation(findings=findings, outcomes=outcomes, multiclass=True)


class _Resources(HTMLParser):
    """Everything in a page that a browser would load."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.loads: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values["src"] or "")
        elif tag in {"script", "link", "iframe", "object", "embed", "source", "video", "audio"}:
            self.loads.append(tag)


def _check_standalone(html: str, n_images: int) -> None:
    parser = _Resources()
    parser.feed(html)
    assert parser.loads == []
    assert len(parser.images) == n_images
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == "PNG" and image.width >= 600 and image.height >= 500
    # No external reference of any kind: no URL scheme, no CSS url(), no @import.
    assert "http" not in html.lower()
    assert "url(" not in html and "@import" not in html


def _auc_text(result: ValidationResult, index: int = 0) -> str:
    auc = result.findings[index].metrics.auc  # type: ignore[union-attr]
    return f"{auc.auc:.3f} ({auc.lower:.3f}–{auc.upper:.3f})"


def test_binary_report_is_standalone_and_shows_the_numbers() -> None:
    result = _binary_run()
    thresholds = GateThresholds(min_auc_lower_bound=0.95, min_sensitivity=0.9, min_specificity=0.9)
    gate = evaluate_gate(result, thresholds)
    assert gate.passed, gate.reasons
    html = render_report(model=MODEL, dataset=DATASET, result=result, gate=gate, thresholds=thresholds,
                         generated_at=WHEN)
    _check_standalone(html, n_images=1)
    for text in (MODEL.model_id, MODEL.version, MODEL.vendor, "Apache-2.0; research use only",
                 DATASET.name, DATASET.manifest_hash, "2025-03-14 09:26:53 UTC", "PASSED"):
        assert text in html
    assert "FAILED" not in html
    assert _auc_text(result) in html
    f = result.findings[0]
    sens = f.metrics.at_operating_point.sensitivity  # type: ignore[union-attr]
    assert f"{sens.estimate:.3f} ({sens.lower:.3f}–{sens.upper:.3f}) {sens.successes}/{sens.total}" in html
    youden = f.metrics.at_youden  # type: ignore[union-attr]
    assert f"<td class=\"n\">{youden.threshold:.3f}</td>" in html
    # Uncertain and defect counts, the defect list with the dataset's keys, reasons escaped.
    assert f"{f.labels.n_uncertain} uncertain (excluded)" in html
    assert '<td class="n" id="defect-count">2</td>' in html
    assert "<code>BC-9001</code>" in html and "<code>BC-9002</code>" in html
    assert "inference timed out &lt;after 60 s&gt;" in html
    # One subgroup table per attribute, each value with its counts.
    for attribute in ("sex", "age_band", "manufacturer", "institution"):
        assert f'data-attribute="{attribute}"' in html
    assert "<td>Site B</td>" in html


def test_failing_gate_is_reported_with_its_reasons() -> None:
    result = _binary_run()
    lower = result.findings[0].metrics.auc.lower  # type: ignore[union-attr]
    thresholds = GateThresholds(min_auc_lower_bound=round(lower + 0.005, 3), max_defect_rate=0.001)
    gate = evaluate_gate(result, thresholds)
    assert not gate.passed
    html = render_report(model=MODEL, dataset=DATASET, result=result, gate=gate, thresholds=thresholds,
                         generated_at=WHEN)
    assert re.search(r'class="verdict fail">FAILED<', html)
    reasons = re.search(r'<ul id="gate-reasons">(.*?)</ul>', html, re.S)
    assert reasons is not None
    items = re.findall(r"<li>(.*?)</li>", reasons.group(1))
    assert len(items) == len(gate.reasons) == 2
    assert items[0].startswith("malignant: ROC AUC lower confidence bound")
    assert items[1].startswith("all studies: technical defect rate")


def test_multiclass_report_shows_accuracy_and_each_class() -> None:
    result = _multiclass_run()
    thresholds = GateThresholds(min_auc_lower_bound=0.8, min_sensitivity=None, min_specificity=None,
                                min_accuracy=0.8)
    gate = evaluate_gate(result, thresholds)
    html = render_report(model=MODEL, dataset=DatasetInfo("iris", "1", "ab" * 32), result=result,
                         gate=gate, thresholds=thresholds, generated_at=WHEN)
    _check_standalone(html, n_images=3)
    mc = result.multiclass
    assert mc is not None and mc.metrics is not None
    acc = mc.metrics.accuracy
    expected = f"{acc.estimate:.3f} ({acc.lower:.3f}–{acc.upper:.3f}) {acc.successes}/150"
    assert f'<td id="accuracy">{expected}</td>' in html
    for i, code in enumerate(("setosa", "versicolor", "virginica")):
        assert f"<code>{code}</code>" in html
        assert _auc_text(result, i) in html
    assert ("PASSED" in html) == gate.passed


def test_write_report_leaves_only_the_finished_file(tmp_path: Path) -> None:
    spec = FindingSpec("malignant", "Malignant tumour", 0.5)
    outcomes = [
        StudyOutcome(f"k{i}", {"malignant": Truth.PRESENT if i % 2 else Truth.ABSENT}, {"malignant": i / 10})
        for i in range(10)
    ]
    result = evaluate_validation(findings=[spec], outcomes=outcomes)
    thresholds = GateThresholds()
    target = tmp_path / "report.html"
    target.write_text("old")
    write_report(target, model=MODEL, dataset=DATASET, result=result, gate=evaluate_gate(result, thresholds),
                 thresholds=thresholds)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_report_of_a_run_without_computable_metrics_still_renders() -> None:
    spec = FindingSpec("malignant", "Malignant tumour", 0.5)
    outcomes = [StudyOutcome(f"k{i}", {"malignant": Truth.ABSENT}, {"malignant": 0.1}) for i in range(3)]
    result = evaluate_validation(findings=[spec], outcomes=outcomes)
    thresholds = GateThresholds()
    html = render_report(model=MODEL, dataset=DATASET, result=result, gate=evaluate_gate(result, thresholds),
                         thresholds=thresholds)
    _check_standalone(html, n_images=0)
    assert "Metrics not computable: no positive studies." in html
    assert "FAILED" in html


@pytest.fixture(autouse=True)
def _no_pyplot_state() -> Iterator[None]:
    """Rendering must not go through pyplot's global figure registry."""
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before
