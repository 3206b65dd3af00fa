"""Binary and multi-class validation metrics with 95 % confidence intervals.

Each number is the one scikit-learn or statsmodels computes, so that a report can be
checked against them:

- ROC curve: :func:`sklearn.metrics.roc_curve` (positive when score ≥ threshold);
  AUC with DeLong's interval: :mod:`radai.quality.delong`.
- PR curve and average precision: :func:`sklearn.metrics.precision_recall_curve`,
  :func:`sklearn.metrics.average_precision_score`.
- Calibration (reliability diagram, fixed-width bins): :func:`sklearn.calibration.calibration_curve`
  (``strategy="uniform"``); Brier score (Brier 1950, Monthly Weather Review 78:1-3):
  :func:`sklearn.metrics.brier_score_loss`.
- Confusion matrix: :func:`sklearn.metrics.confusion_matrix`.
- Sensitivity, specificity, PPV, NPV and accuracy as proportions with Wilson score
  intervals (Wilson 1927, JASA 22:209-212; Newcombe 1998, Stat Med 17:857-872, method 3):
  :func:`statsmodels.stats.proportion.proportion_confint` with ``method="wilson"``.
- Youden's index J = sensitivity + specificity - 1 (Youden 1950, Cancer 3:32-35),
  maximised over the thresholds of the ROC curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    roc_curve,
)
from statsmodels.stats.proportion import proportion_confint

from radai.quality.delong import AucEstimate, delong_auc


class NotComputable(ValueError):
    """Metrics cannot be computed for this set of studies; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Proportion:
    """``successes / total`` with a Wilson score interval; NaN throughout when ``total`` is 0."""

    successes: int
    total: int
    estimate: float
    lower: float
    upper: float
    level: float


def wilson(successes: int, total: int, *, level: float = 0.95) -> Proportion:
    """A proportion with its Wilson score interval (statsmodels ``proportion_confint``, "wilson")."""
    if total < 0 or not 0 <= successes <= max(total, 0):
        raise ValueError("successes must be within 0..total")
    if total == 0:
        return Proportion(successes, total, math.nan, math.nan, math.nan, level)
    lower, upper = proportion_confint(successes, total, alpha=1.0 - level, method="wilson")
    return Proportion(successes, total, successes / total, float(lower), float(upper), level)


@dataclass(frozen=True)
class ConfusionCounts:
    """The 2×2 confusion matrix of a binary decision."""

    tp: int
    fp: int
    tn: int
    fn: int


@dataclass(frozen=True)
class OperatingPoint:
    """Decision ``score ≥ threshold`` and its rates with Wilson intervals."""

    threshold: float
    counts: ConfusionCounts
    sensitivity: Proportion
    specificity: Proportion
    ppv: Proportion
    npv: Proportion

    @property
    def youden_j(self) -> float:
        """Youden's J = sensitivity + specificity - 1."""
        return self.sensitivity.estimate + self.specificity.estimate - 1.0


def operating_point(
    y_true: npt.NDArray[np.int_], scores: npt.NDArray[np.float64], threshold: float, *, level: float = 0.95
) -> OperatingPoint:
    """Confusion matrix (sklearn ``confusion_matrix``) and rates at ``score ≥ threshold``."""
    predicted = (scores >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y_true, predicted, labels=[0, 1]).ravel())
    return OperatingPoint(
        threshold=float(threshold),
        counts=ConfusionCounts(tp=tp, fp=fp, tn=tn, fn=fn),
        sensitivity=wilson(tp, tp + fn, level=level),
        specificity=wilson(tn, tn + fp, level=level),
        ppv=wilson(tp, tp + fp, level=level),
        npv=wilson(tn, tn + fn, level=level),
    )


@dataclass(frozen=True)
class RocCurve:
    """ROC curve points in decreasing threshold order (sklearn ``roc_curve``, all thresholds kept)."""

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    #: The first threshold is +inf (nothing called positive).
    thresholds: tuple[float, ...]


@dataclass(frozen=True)
class PrCurve:
    """Precision-recall curve (sklearn ``precision_recall_curve``); ends at recall 0, precision 1."""

    precision: tuple[float, ...]
    recall: tuple[float, ...]
    thresholds: tuple[float, ...]


@dataclass(frozen=True)
class CalibrationCurve:
    """Reliability diagram over ``n_bins`` equal-width bins of [0, 1]; empty bins are left out.

    ``prob_true`` and ``prob_pred`` are sklearn's ``calibration_curve``; ``counts`` holds
    the number of studies in each non-empty bin, binned the way sklearn bins them.
    """

    n_bins: int
    prob_true: tuple[float, ...]
    prob_pred: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class BinaryMetrics:
    """Everything measured for one finding over one set of studies."""

    n_positive: int
    n_negative: int
    auc: AucEstimate
    roc: RocCurve
    average_precision: float
    pr: PrCurve
    brier: float
    calibration: CalibrationCurve
    at_operating_point: OperatingPoint
    at_youden: OperatingPoint
    #: The scores themselves, for the histograms by class.
    positive_scores: tuple[float, ...]
    negative_scores: tuple[float, ...]


def roc(y_true: npt.NDArray[np.int_], scores: npt.NDArray[np.float64]) -> RocCurve:
    """The ROC curve with every distinct score as a threshold."""
    fpr, tpr, thresholds = roc_curve(y_true, scores, drop_intermediate=False)
    return RocCurve(fpr=_floats(fpr), tpr=_floats(tpr), thresholds=_floats(thresholds))


def youden_threshold(curve: RocCurve, n_positive: int, n_negative: int) -> float:
    """The finite ROC threshold maximising Youden's J = TPR - FPR.

    On ties the highest such threshold (fewest studies called positive) is taken. J is
    compared in whole counts, J·P·N = TP·N - FP·P, so that rounding cannot break a tie.
    """
    tp = np.rint(np.asarray(curve.tpr) * n_positive).astype(np.int64)
    fp = np.rint(np.asarray(curve.fpr) * n_negative).astype(np.int64)
    j = tp * n_negative - fp * n_positive
    j[~np.isfinite(np.asarray(curve.thresholds))] = np.iinfo(np.int64).min
    return curve.thresholds[int(np.argmax(j))]


def calibration(
    y_true: npt.NDArray[np.int_], scores: npt.NDArray[np.float64], n_bins: int
) -> CalibrationCurve:
    """Reliability diagram with fixed-width bins (sklearn ``calibration_curve``, ``strategy="uniform"``)."""
    prob_true, prob_pred = calibration_curve(y_true, scores, n_bins=n_bins, strategy="uniform")
    # The same bin assignment as calibration_curve: bins are closed on the right.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], scores), minlength=n_bins)
    return CalibrationCurve(
        n_bins=n_bins,
        prob_true=_floats(prob_true),
        prob_pred=_floats(prob_pred),
        counts=tuple(int(c) for c in counts[counts > 0]),
    )


def binary_metrics(
    y_true: npt.ArrayLike,
    scores: npt.ArrayLike,
    *,
    threshold: float,
    calibration_bins: int = 10,
    level: float = 0.95,
) -> BinaryMetrics:
    """All binary metrics for labels (1 = finding present, 0 = absent) and probabilities.

    ``threshold`` is the model's operating point (positive when score ≥ threshold).
    Raises :class:`NotComputable` when the studies hold no positive or no negative.
    """
    y, s = _check_binary(y_true, scores)
    if calibration_bins < 1:
        raise ValueError("calibration_bins must be at least 1")
    curve = roc(y, s)
    n_positive, n_negative = int(np.sum(y == 1)), int(np.sum(y == 0))
    precision, recall, pr_thresholds = precision_recall_curve(y, s)
    return BinaryMetrics(
        n_positive=n_positive,
        n_negative=n_negative,
        auc=delong_auc(y, s, level=level),
        roc=curve,
        average_precision=float(average_precision_score(y, s)),
        pr=PrCurve(precision=_floats(precision), recall=_floats(recall), thresholds=_floats(pr_thresholds)),
        brier=float(brier_score_loss(y, s)),
        calibration=calibration(y, s, calibration_bins),
        at_operating_point=operating_point(y, s, threshold, level=level),
        at_youden=operating_point(y, s, youden_threshold(curve, n_positive, n_negative), level=level),
        positive_scores=_floats(s[y == 1]),
        negative_scores=_floats(s[y == 0]),
    )


@dataclass(frozen=True)
class MulticlassMetrics:
    """Overall accuracy and confusion matrix of a model whose classes exclude each other."""

    classes: tuple[str, ...]
    accuracy: Proportion
    #: Rows: true class; columns: predicted class (the class with the highest probability).
    confusion: tuple[tuple[int, ...], ...]


def multiclass_metrics(
    true_class: npt.ArrayLike, probabilities: npt.ArrayLike, classes: tuple[str, ...], *, level: float = 0.95
) -> MulticlassMetrics:
    """Accuracy (sklearn ``accuracy_score``, Wilson interval) and confusion matrix of argmax predictions.

    ``true_class`` holds class indices into ``classes``; ``probabilities`` has one row per
    study and one column per class. On tied probabilities the first class wins.
    """
    truth = np.asarray(true_class, dtype=int)
    probs = np.asarray(probabilities, dtype=np.float64)
    k = len(classes)
    if k < 2 or probs.ndim != 2 or probs.shape != (truth.size, k):
        raise ValueError("probabilities must have one row per study and one column per class (at least 2)")
    if truth.size == 0:
        raise NotComputable("no study with a single certain class")
    predicted = np.argmax(probs, axis=1)
    correct = round(float(accuracy_score(truth, predicted, normalize=False)))
    matrix = confusion_matrix(truth, predicted, labels=list(range(k)))
    return MulticlassMetrics(
        classes=classes,
        accuracy=wilson(correct, truth.size, level=level),
        confusion=tuple(tuple(int(v) for v in row) for row in matrix),
    )


def _check_binary(
    y_true: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[npt.NDArray[np.int_], npt.NDArray[np.float64]]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape:
        raise ValueError("labels and scores must be one-dimensional and of the same length")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (absent) or 1 (present)")
    if not np.all(np.isfinite(s)) or np.any((s < 0.0) | (s > 1.0)):
        raise ValueError("scores must be probabilities within 0..1")
    n_pos = int(np.sum(y == 1))
    if y.size == 0:
        raise NotComputable("no studies")
    if n_pos == 0:
        raise NotComputable("no positive studies")
    if n_pos == y.size:
        raise NotComputable("no negative studies")
    return y.astype(int), s


def _floats(values: npt.ArrayLike) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64))
