"""The gate: a model passes only when every threshold is met, including the AUC's lower CI bound."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from radai.config import load_settings
from radai.models.api import DefectCategory
from radai.quality.gate import GateThresholds, evaluate_gate, resolve_thresholds
from radai.quality.inputs import FindingSpec, StudyOutcome, TechnicalDefect, Truth
from radai.quality.validation import ValidationResult, evaluate_validation

SPEC = FindingSpec("nodule", "Lung nodule", 0.5)


def _run(n_pos: int, n_neg: int, shift: float, seed: int = 3, defects: int = 0) -> ValidationResult:
    rng = np.random.default_rng(seed)
    studies = []
    for i in range(n_pos + n_neg):
        present = i < n_pos
        p = float(1 / (1 + np.exp(-rng.normal(shift if present else -shift, 1.0))))
        truth = Truth.PRESENT if present else Truth.ABSENT
        studies.append(StudyOutcome(f"s{i}", {"nodule": truth}, {"nodule": p}))
    failures = [
        TechnicalDefect(f"d{i}", DefectCategory.SERVICE_UNAVAILABLE, "timeout") for i in range(defects)
    ]
    return evaluate_validation(findings=[SPEC], outcomes=studies, defects=failures)


def test_gate_fails_when_auc_lower_bound_is_below_threshold_even_if_auc_is_above() -> None:
    result = _run(12, 12, 1.2)  # small dataset: a good AUC with a wide interval
    metrics = result.findings[0].metrics
    assert metrics is not None
    assert metrics.auc.auc > 0.85 > metrics.auc.lower
    thresholds = GateThresholds(min_auc_lower_bound=0.85, min_sensitivity=None, min_specificity=None)
    gate = evaluate_gate(result, thresholds)
    assert not gate.passed
    assert len(gate.reasons) == 1
    assert gate.reasons[0].startswith("nodule: ROC AUC lower confidence bound")
    assert "< required 0.850" in gate.reasons[0]


def test_gate_passes_when_every_threshold_is_met() -> None:
    result = _run(150, 150, 1.5)
    gate = evaluate_gate(result, GateThresholds())
    assert gate.passed, gate.reasons
    assert gate.reasons == ()
    assert [c.criterion for c in gate.checks] == [
        "ROC AUC lower confidence bound",
        "sensitivity at operating point",
        "specificity at operating point",
        "technical defect rate",
    ]
    assert all(c.passed for c in gate.checks)


def test_rates_on_lower_bound_is_stricter_than_estimate() -> None:
    result = _run(40, 40, 1.5)
    op = result.findings[0].metrics.at_operating_point  # type: ignore[union-attr]
    required = (op.sensitivity.lower + op.sensitivity.estimate) / 2
    loose = GateThresholds(min_auc_lower_bound=None, min_specificity=None, min_sensitivity=required)
    assert evaluate_gate(result, loose).passed
    strict = loose.model_copy(update={"rates_on": "lower_bound"})
    gate = evaluate_gate(result, strict)
    assert not gate.passed
    assert "sensitivity at operating point (lower confidence bound)" in gate.reasons[0]


def test_defect_rate_above_maximum_fails() -> None:
    result = _run(150, 150, 1.5, defects=40)  # 40 / 340 = 11.8 %
    gate = evaluate_gate(result, GateThresholds(max_defect_rate=0.10))
    assert not gate.passed
    assert gate.reasons == ("all studies: technical defect rate 0.118 > required 0.100",)
    assert evaluate_gate(result, GateThresholds(max_defect_rate=0.12)).passed


def test_missing_evidence_fails() -> None:
    negatives = [StudyOutcome(f"s{i}", {"nodule": Truth.ABSENT}, {"nodule": 0.1}) for i in range(5)]
    result = evaluate_validation(findings=[SPEC], outcomes=negatives)
    gate = evaluate_gate(result, GateThresholds())
    assert not gate.passed
    assert gate.reasons[0] == "nodule: metrics not computable (no positive studies)"
    assert "nodule: ROC AUC lower confidence bound not computable (required >= 0.800)" in gate.reasons
    nothing = evaluate_validation(
        findings=[SPEC], outcomes=[], defects=[TechnicalDefect("d", DefectCategory.MODEL_ERROR, "crash")]
    )
    assert "no study of the dataset was processed" in evaluate_gate(nothing, GateThresholds()).reasons


def test_multiclass_accuracy_threshold() -> None:
    codes = ("a", "b")
    findings = [FindingSpec(c, c, 0.5) for c in codes]
    studies = [
        StudyOutcome(f"s{i}", {"a": Truth.PRESENT if i % 2 else Truth.ABSENT,
                               "b": Truth.ABSENT if i % 2 else Truth.PRESENT},
                     {"a": 0.8 if i % 3 else 0.2, "b": 0.2 if i % 3 else 0.8})
        for i in range(30)
    ]
    result = evaluate_validation(findings=findings, outcomes=studies, multiclass=True)
    accuracy = result.multiclass.metrics.accuracy.estimate  # type: ignore[union-attr]
    only_accuracy = GateThresholds(min_auc_lower_bound=None, min_sensitivity=None, min_specificity=None,
                                   max_defect_rate=None, min_accuracy=accuracy + 0.01)
    gate = evaluate_gate(result, only_accuracy)
    assert not gate.passed and gate.reasons[0].startswith("all classes: accuracy")
    assert evaluate_gate(result, only_accuracy.model_copy(update={"min_accuracy": accuracy})).passed


def test_thresholds_layer_defaults_manifest_and_command_line() -> None:
    defaults = GateThresholds(min_sensitivity=0.7)
    manifest = {"min_sensitivity": 0.9, "min_specificity": 0.85}
    command_line = {"min_specificity": 0.95, "max_defect_rate": None}
    t = resolve_thresholds(defaults, manifest, None, command_line)
    assert (t.min_sensitivity, t.min_specificity, t.max_defect_rate) == (0.9, 0.95, None)
    assert t.min_auc_lower_bound == defaults.min_auc_lower_bound
    with pytest.raises(pydantic.ValidationError, match="min_sensitivty"):
        resolve_thresholds(defaults, {"min_sensitivty": 0.9})
    with pytest.raises(pydantic.ValidationError, match="min_specificity"):
        resolve_thresholds(defaults, {"min_specificity": 1.5})


def test_default_thresholds_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADAI_QUALITY__GATE__MIN_AUC_LOWER_BOUND", "0.9")
    settings = load_settings()
    assert settings.quality.gate.min_auc_lower_bound == 0.9
    assert settings.quality.gate.min_sensitivity == GateThresholds().min_sensitivity
