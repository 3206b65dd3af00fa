"""The demo's calibration test with the real pneumonia model on its 16 bundled radiographs.

``pneumonia-peds-16`` is built as ``make demo`` builds it (JPEG → DICOM DX, synthetic
patients, labels from the file names, frozen), and pneumonia-peds runs on it through the
task pipeline. Its scores are checked against the original Keras model run by Keras on
the JPEGs (as tests/models does), and its AUC against scikit-learn's. The Keras → ONNX
export is cached per session (``TEST_MODELS_CACHE`` names a folder to reuse across runs).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score
from sqlalchemy import select

from radai.datasets.demo import NAME, create_demo_dataset, pneumonia_images
from radai.datasets.manifest import load_manifest
from radai.datasets.service import get_version
from radai.quality.models import ValidationScore, ValidationStudy
from radai.quality.runner import run_validation
from tests.inference.conftest import make_radai
from tests.models.conftest import KERAS_REFERENCE, pneumonia_keras_file

pytestmark = pytest.mark.slow



@pytest.fixture(scope="session")
def keras_probabilities() -> dict[str, float]:
    """P(pneumonia) of the original Keras model for each bundled JPEG (softmax of its two logits)."""
    images = [str(p) for p in pneumonia_images()]
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    proc = subprocess.run(
        [sys.executable, "-c", KERAS_REFERENCE, str(pneumonia_keras_file()), *images],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    logits: dict[str, list[float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {name: 1.0 / (1.0 + math.exp(normal - pneumonia)) for name, (normal, pneumonia) in logits.items()}


def test_pneumonia_model_on_the_demo_dataset(
    tmp_path: Path, sqlite_url: str, models_cache: Path, keras_probabilities: dict[str, float]
) -> None:
    radai = make_radai(tmp_path, sqlite_url, models={"cache_dir": str(models_cache)})
    try:
        create_demo_dataset(radai)
        assert create_demo_dataset(radai).number == 1  # a second demo run finds it
        with radai.db.session() as s:
            manifest = load_manifest(get_version(s, name=NAME, number=1))
        outcome = run_validation(
            radai,
            model_id="pneumonia-peds",
            model_version="0.3.0",
            dataset=NAME,
            dataset_version=1,
            actor="tests",
            report_path=tmp_path / "report.html",
            timeout_seconds=1500,
        )
        with radai.db.session() as s:
            scores = {
                row.key: (sc.truth, sc.probability)
                for row in s.scalars(select(ValidationStudy))
                for sc in s.scalars(select(ValidationScore).where(ValidationScore.study_result_pk == row.id))
            }
    finally:
        radai.stop()
    # The card: 8 normal and 8 pneumonia, synthetic patients of both sexes and two sites.
    card = manifest["card"]
    assert card["findings"][0]["present"] == 8 and card["findings"][0]["absent"] == 8
    assert card["subgroups"]["sex"] == {"F": 8, "M": 8}
    assert set(card["subgroups"]["age_band"]) == {"0-4", "5-9"}
    assert len(card["subgroups"]["institution"]) == 2
    # Keys follow the file names; labels come from them.
    names = [p.name for p in pneumonia_images()]
    assert sorted(scores) == [f"S{i:04d}" for i in range(1, 17)]
    by_name = {name: scores[f"S{i + 1:04d}"] for i, name in enumerate(names)}
    for name, (truth, _) in by_name.items():
        assert truth == ("absent" if name.startswith("NORMAL") else "present")
    # Through DICOM and the task pipeline, the model gives what the original Keras model gives.
    for name, (_, probability) in by_name.items():
        assert probability == pytest.approx(keras_probabilities[name], abs=1e-3), name
        assert (probability >= 0.5) == (keras_probabilities[name] >= 0.5), name
    wrong = sorted(n for n, (truth, p) in by_name.items() if (p >= 0.5) != (truth == "present"))
    assert wrong == [
        "NORMAL2-IM-1438-0001.jpeg",
        "person1949_bacteria_4880.jpeg",
        "person1950_bacteria_4881.jpeg",
    ]
    # The AUC is scikit-learn's on the same scores; the report names what was tested and the verdict.
    [finding] = outcome.result.findings
    assert finding.metrics is not None
    truths = [1 if t == "present" else 0 for t, _ in by_name.values()]
    assert finding.metrics.auc.auc == pytest.approx(roc_auc_score(truths, [p for _, p in by_name.values()]))
    assert finding.metrics.auc.lower < finding.metrics.auc.auc <= finding.metrics.auc.upper
    assert outcome.result.n_processed == 16 and outcome.result.defects.defects == ()
    html = (tmp_path / "report.html").read_text()
    assert "pneumonia-peds" in html and "0.3.0" in html and NAME in html
    assert outcome.manifest_sha256 in html and ("PASSED" if outcome.passed else "FAILED") in html
