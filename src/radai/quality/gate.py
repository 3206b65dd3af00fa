"""Pass/fail of a calibration test: a model may go live only if every check passes.

Each finding is checked on its own (AUC lower confidence bound, sensitivity and
specificity at the model's operating point); a multi-class model also on its overall
accuracy; the run on its technical-defect rate. A metric that cannot be computed
(no positives, no negatives, no interval) fails its check: a gate never passes on
missing evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from radai.quality.metrics import Proportion
from radai.quality.settings import GateThresholds, resolve_thresholds
from radai.quality.validation import FindingResult, ValidationResult

__all__ = ["GateCheck", "GateResult", "GateThresholds", "evaluate_gate", "resolve_thresholds"]


@dataclass(frozen=True)
class GateCheck:
    """One comparison of an observed value with its threshold."""

    #: The finding code, ``"all classes"`` or ``"all studies"``.
    scope: str
    criterion: str
    #: NaN when the value cannot be computed.
    observed: float
    #: ``">="`` or ``"<="``.
    comparison: str
    required: float
    passed: bool

    def describe(self) -> str:
        """A sentence for people, e.g. ``pneumonia: sensitivity 0.712 < required 0.800``."""
        required = f"{self.comparison} {self.required:.3f}"
        if math.isnan(self.observed):
            return f"{self.scope}: {self.criterion} not computable (required {required})"
        if self.passed:
            return f"{self.scope}: {self.criterion} {self.observed:.3f} {self.comparison} {self.required:.3f}"
        failed = "<" if self.comparison == ">=" else ">"
        return f"{self.scope}: {self.criterion} {self.observed:.3f} {failed} required {self.required:.3f}"


@dataclass(frozen=True)
class GateResult:
    """The verdict: ``passed`` only if every check passed; ``reasons`` describe the failures."""

    passed: bool
    reasons: tuple[str, ...]
    checks: tuple[GateCheck, ...]


def evaluate_gate(result: ValidationResult, thresholds: GateThresholds) -> GateResult:
    """Check a validation run against acceptance thresholds."""
    checks: list[GateCheck] = []
    reasons: list[str] = []
    if result.n_processed == 0:
        reasons.append("no study of the dataset was processed")
    for finding in result.findings:
        if finding.metrics is None:
            reasons.append(f"{finding.spec.code}: metrics not computable ({finding.not_computable})")
        checks.extend(_finding_checks(finding, thresholds))
    if result.multiclass is not None and thresholds.min_accuracy is not None:
        accuracy = result.multiclass.metrics.accuracy if result.multiclass.metrics else None
        checks.append(_rate_check("all classes", "accuracy", accuracy, thresholds.min_accuracy, thresholds))
    if thresholds.max_defect_rate is not None:
        rate = result.defects.rate.estimate
        passed = not math.isnan(rate) and rate <= thresholds.max_defect_rate
        checks.append(
            GateCheck("all studies", "technical defect rate", rate, "<=", thresholds.max_defect_rate, passed)
        )
    reasons.extend(c.describe() for c in checks if not c.passed)
    return GateResult(passed=not reasons, reasons=tuple(reasons), checks=tuple(checks))


def _finding_checks(finding: FindingResult, thresholds: GateThresholds) -> list[GateCheck]:
    code = finding.spec.code
    m = finding.metrics
    op = m.at_operating_point if m else None
    checks = []
    if (min_auc := thresholds.min_auc_lower_bound) is not None:
        lower = m.auc.lower if m else math.nan
        checks.append(_at_least(code, "ROC AUC lower confidence bound", lower, min_auc))
    if (min_sens := thresholds.min_sensitivity) is not None:
        sensitivity = op.sensitivity if op else None
        checks.append(_rate_check(code, "sensitivity at operating point", sensitivity, min_sens, thresholds))
    if (min_spec := thresholds.min_specificity) is not None:
        specificity = op.specificity if op else None
        checks.append(_rate_check(code, "specificity at operating point", specificity, min_spec, thresholds))
    return checks


def _rate_check(
    scope: str, name: str, value: Proportion | None, required: float, thresholds: GateThresholds
) -> GateCheck:
    if thresholds.rates_on == "lower_bound":
        observed = value.lower if value else math.nan
        return _at_least(scope, f"{name} (lower confidence bound)", observed, required)
    return _at_least(scope, name, value.estimate if value else math.nan, required)


def _at_least(scope: str, criterion: str, observed: float, required: float) -> GateCheck:
    passed = not math.isnan(observed) and observed >= required
    return GateCheck(scope, criterion, observed, ">=", required, passed)
