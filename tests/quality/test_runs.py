"""Validation runs through the real task pipeline, with a small real ONNX model (SQLite and PostgreSQL).

The brightness model scores the mean of its 32×32 input, so the score of every study is
known in advance; an ultrasound is outside its scope and becomes a technical defect.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score
from sqlalchemy import func, select

from radai.app import Radai
from radai.archive.models import Study
from radai.cli import main
from radai.datasets.manifest import load_manifest
from radai.datasets.service import get_version, start_draft
from radai.inference.events import Phase, TaskEvent
from radai.inference.models import Finding, InferenceTask, TaskPurpose
from radai.inference.service import create_task, study_findings_view
from radai.models.manifest import LifecycleState
from radai.quality.models import ValidationRun, ValidationScore, ValidationStudy
from radai.quality.runner import run_validation
from radai.quality.service import INTEGRITY, ValidationError
from radai.results.models import ResultSet
from radai.results.producer import ResultWorker
from tests.inference.conftest import make_radai
from tests.inference.packages import store_image
from tests.quality.conftest import labelled_dataset, onnx_package

#: Checks that let the small run pass: any AUC, rates not checked, at most half the studies defects.
LENIENT = {
    "min_auc_lower_bound": 0.0,
    "min_sensitivity": None,
    "min_specificity": None,
    "max_defect_rate": 0.5,
}


def test_a_validation_run_goes_through_the_task_pipeline(val_radai: Radai, tmp_path: Path) -> None:
    radai = val_radai
    record = radai.models.import_package(onnx_package(tmp_path))
    assert record.state is LifecycleState.DRAFT  # validation runs take models in any state but retired
    expected = labelled_dataset(radai, onnx_package(tmp_path / "copy"))
    # A clinical task of the same study and model version stays the server's: the run neither
    # collides with it nor runs it.
    with radai.db.transaction() as s:
        first = s.scalars(select(Study).order_by(Study.id)).first()
        assert first is not None
        clinical_id = create_task(
            s,
            study_pk=first.id,
            study_instance_uid=first.study_instance_uid,
            series_pk=None,
            series_instance_uid=None,
            model_id="onnx-val",
            model_version="1.0",
            rule="clinical-rule",
            change_seq=first.change_seq,
            max_attempts=3,
        )
        first_uid = first.study_instance_uid
    # Result objects and worklist entries listen for clinical tasks only; a listener may ask for both.
    ResultWorker(
        db=radai.db,
        archive=radai.archive,
        settings=radai.settings.results,
        data_dir=radai.settings.data_dir,
        events=radai.task_events,
    )
    heard: list[TaskEvent] = []
    radai.task_events.add_task_listener(
        heard.append, phase=Phase.AFTER_COMMIT, purposes=(TaskPurpose.CLINICAL, TaskPurpose.VALIDATION)
    )
    progress: list[tuple[int, int]] = []
    outcome = run_validation(
        radai,
        model_id="onnx-val",
        model_version=None,
        dataset="val-set",
        dataset_version=None,
        actor="tests",
        report_path=tmp_path / "report.html",
        thresholds=LENIENT,
        promote=True,
        timeout_seconds=120,
        on_progress=lambda e, t: progress.append((e, t)),
    )
    # The metrics: the model's scores are the expected ones, and the AUC is scikit-learn's.
    assert outcome.passed and outcome.gate.reasons == ()
    [finding] = outcome.result.findings
    assert finding.metrics is not None
    with radai.db.session() as s:
        scores = {row.study.key: (row.truth, row.probability) for row in s.scalars(select(ValidationScore))}
    assert set(scores) == {"S0001", "S0002", "S0003", "S0004"}
    for key, (truth, probability) in scores.items():
        assert truth == expected[key][0]
        assert probability == pytest.approx(expected[key][1], abs=1e-5)
    truths = [1 if scores[k][0] == "present" else 0 for k in sorted(scores)]
    assert finding.metrics.auc.auc == pytest.approx(
        roc_auc_score(truths, [scores[k][1] for k in sorted(scores)])
    )
    assert finding.metrics.auc.auc == pytest.approx(0.75)
    # The ultrasound is a technical defect: counted, listed with its reason, not dropped.
    [defect] = outcome.result.defects.defects
    assert (defect.study_key, defect.category.value) == ("S0005", "input_not_suited")
    assert outcome.result.n_studies == 5 and outcome.result.n_processed == 4
    html = (tmp_path / "report.html").read_text()
    assert html == outcome.report_html
    assert "onnx-val" in html and "val-set" in html and outcome.manifest_sha256 in html
    assert re.search(r'id="verdict"[^>]*>PASSED<', html)
    defects_section = html[html.index('id="defects"') :]
    assert "S0005" in defects_section and defect.reason in defects_section
    assert progress[-1] == (5, 5)
    # The tasks: validation purpose, keyed by the run, not the clinical task's key.
    with radai.db.session() as s:
        tasks = list(s.scalars(select(InferenceTask).order_by(InferenceTask.id)))
        clinical = s.get(InferenceTask, clinical_id)
        findings = list(s.scalars(select(Finding)))
        run = s.get(ValidationRun, outcome.run_id)
        rows = list(s.scalars(select(ValidationStudy).order_by(ValidationStudy.key)))
        result_sets = s.scalar(select(func.count()).select_from(ResultSet))
        clinical_view = study_findings_view(s, study_instance_uid=first_uid)
    validation = [t for t in tasks if t.id != clinical_id]
    assert len(validation) == 5 and {t.purpose for t in validation} == {"validation"}
    assert {t.validation_run_id for t in validation} == {outcome.run_id}
    assert {t.rule for t in validation} == {f"validation run {outcome.run_id}"}
    assert clinical is not None and clinical.state == "pending" and clinical.purpose == "clinical"
    assert clinical.idempotency_key not in {t.idempotency_key for t in validation}
    assert sorted(t.state for t in validation) == ["defect", "done", "done", "done", "done"]
    # No result objects, deliveries or clinical findings, and no heatmaps, for validation tasks.
    assert result_sets == 0
    assert clinical_view.findings == []
    assert len(findings) == 4 and all(f.heatmap_path is None for f in findings)
    assert any(f.positive for f in findings)
    assert (
        sorted((e.purpose, e.state) for e in heard)
        == [("validation", "defect")] + [("validation", "done")] * 4
    )
    # The run is stored with its verdict, and the draft model was promoted.
    assert run is not None and run.state == "done" and run.gate_passed and run.promoted
    assert (run.n_studies, run.n_processed, run.n_defects) == (5, 4, 1)
    assert run.manifest_sha256 == outcome.manifest_sha256 and run.report_html == html
    summary = json.loads(run.summary)
    assert summary["findings"][0]["auc"] == pytest.approx(0.75)
    assert [r.state for r in rows] == ["done"] * 4 + ["defect"]
    assert json.loads(rows[0].subgroups)["sex"] == "F"
    model = radai.models.get("onnx-val", "1.0")
    assert model.state is LifecycleState.VALIDATED
    last = radai.models.history("onnx-val", "1.0")[-1]
    assert (last.to_state, last.reason, last.actor) == (
        "validated",
        f"validation run {outcome.run_id} passed",
        "tests",
    )


def test_runs_that_cannot_be_made_are_refused(val_radai: Radai, tmp_path: Path) -> None:
    radai = val_radai
    radai.models.import_package(onnx_package(tmp_path))
    labelled_dataset(radai, onnx_package(tmp_path / "copy"))
    with radai.db.transaction() as s:
        start_draft(s, name="val-set", actor="tests")
    with pytest.raises(ValidationError, match="val-set@2 is a draft: only frozen versions are validated on"):
        run_validation(
            radai,
            model_id="onnx-val",
            model_version="1.0",
            dataset="val-set",
            dataset_version=2,
            actor="tests",
        )
    with pytest.raises(ValidationError, match="no model nothing"):
        run_validation(
            radai, model_id="nothing", model_version=None, dataset="val-set", dataset_version=1, actor="tests"
        )
    with pytest.raises(
        ValidationError, match=r"val-set@1 labels none of the findings of pneumonia-peds@0\.3\.0"
    ):
        run_validation(
            radai,
            model_id="pneumonia-peds",
            model_version=None,
            dataset="val-set",
            dataset_version=1,
            actor="tests",
        )
    with pytest.raises(ValidationError, match="invalid gate thresholds"):
        run_validation(
            radai,
            model_id="onnx-val",
            model_version=None,
            dataset="val-set",
            dataset_version=1,
            actor="tests",
            thresholds={"min_sensitivity": 1.5},
        )
    radai.models.set_state("onnx-val", "1.0", LifecycleState.RETIRED, reason="tests", actor="tests")
    with pytest.raises(ValidationError, match=r"model onnx-val@1\.0 is retired"):
        run_validation(
            radai,
            model_id="onnx-val",
            model_version=None,
            dataset="val-set",
            dataset_version=1,
            actor="tests",
        )
    with radai.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ValidationRun)) == 0
        assert s.scalar(select(func.count()).select_from(InferenceTask)) == 0


def test_a_study_changed_after_freezing_is_a_listed_defect(tmp_path: Path, sqlite_url: str) -> None:
    radai = make_radai(tmp_path, sqlite_url)
    try:
        radai.models.import_package(onnx_package(tmp_path))
        labelled_dataset(radai, onnx_package(tmp_path / "copy"))
        with radai.db.session() as s:
            second = load_manifest(get_version(s, name="val-set", number=1))["studies"][1]
        # Another image arrives in the second study after the version was frozen.
        store_image(radai, "CT_small.dcm", "late-arrival", study_salt="val-mr")
        outcome = run_validation(
            radai,
            model_id="onnx-val",
            model_version=None,
            dataset="val-set",
            dataset_version=1,
            actor="tests",
            thresholds=LENIENT,
            timeout_seconds=120,
        )
    finally:
        radai.stop()
    assert second["key"] == "S0002"
    defects = {d.study_key: d for d in outcome.result.defects.defects}
    assert set(defects) == {"S0002", "S0005"}
    assert defects["S0002"].reason == f"{INTEGRITY}: the study has 1 instance(s) more than the frozen version"
    assert outcome.result.n_processed == 3
    assert "S0002" in outcome.report_html[outcome.report_html.index('id="defects"') :]


def test_radai_validate_on_the_command_line(tmp_path: Path, sqlite_url: str) -> None:
    radai = make_radai(tmp_path, sqlite_url)
    try:
        radai.models.import_package(onnx_package(tmp_path))
        labelled_dataset(radai, onnx_package(tmp_path / "copy"))
        data_dir = radai.settings.data_dir
    finally:
        radai.stop()
    env = {"RADAI_DATABASE_URL": sqlite_url, "RADAI_INFERENCE__POLL_SECONDS": "0.1"}
    report = tmp_path / "out" / "report.html"
    failed = CliRunner().invoke(
        main,
        [
            "validate",
            "--data-dir",
            str(data_dir),
            "--model",
            "onnx-val@1.0",
            "--dataset",
            "val-set@1",
            "--report",
            str(report),
        ],
        env=env,
    )
    # The default gate (AUC lower bound 0.80, sensitivity and specificity 0.80, defects 10 %) fails.
    assert failed.exit_code == 1, failed.output
    assert "validation run 1: onnx-val@1.0 on val-set@1" in failed.output and "FAILED" in failed.output
    assert "AUC 0.750" in failed.output and "S0005: input_not_suited" in failed.output
    assert "gate: all studies: technical defect rate 0.200 > required 0.100" in failed.output
    assert report.is_file() and "FAILED" in report.read_text()
    passed = CliRunner().invoke(
        main,
        [
            "validate",
            "--data-dir",
            str(data_dir),
            "--model",
            "onnx-val",
            "--dataset",
            "val-set",
            "--min-auc-lower",
            "0",
            "--min-sensitivity",
            "0",
            "--min-specificity",
            "0",
            "--max-defect-rate",
            "0.5",
            "--promote",
        ],
        env=env,
    )
    assert passed.exit_code == 0, passed.output
    assert "validation run 2: onnx-val@1.0 on val-set@1" in passed.output and "PASSED" in passed.output
    assert "the model is now validated" in passed.output
    unknown = CliRunner().invoke(
        main, ["validate", "--data-dir", str(data_dir), "--model", "onnx-val", "--dataset", "nope"], env=env
    )
    assert unknown.exit_code == 1 and "no dataset nope" in unknown.output
