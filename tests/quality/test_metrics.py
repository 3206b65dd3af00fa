"""Binary and multi-class metrics equal scikit-learn's and statsmodels' on the same scores."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from statsmodels.stats.proportion import proportion_confint

from radai.quality.metrics import (
    NotComputable,
    Proportion,
    binary_metrics,
    multiclass_metrics,
    wilson,
)

TOL = 1e-9


@st.composite
def binary_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    """Labels with both classes, probabilities (often tied), and an operating point."""
    n = draw(st.integers(min_value=2, max_value=60))
    y = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda v: 0 < sum(v) < len(v)))
    value = st.sampled_from([0.0, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]) | st.floats(0.0, 1.0)
    s = draw(st.lists(value, min_size=n, max_size=n))
    threshold = draw(st.sampled_from([0.5, 0.3]) | st.floats(0.0, 1.0))
    return np.array(y), np.array(s, dtype=float), threshold


def _assert_proportion(p: Proportion, successes: int, total: int) -> None:
    assert (p.successes, p.total) == (successes, total)
    if total == 0:
        assert math.isnan(p.estimate) and math.isnan(p.lower) and math.isnan(p.upper)
        return
    lower, upper = proportion_confint(successes, total, alpha=0.05, method="wilson")
    assert p.estimate == pytest.approx(successes / total, abs=TOL)
    assert p.lower == pytest.approx(lower, abs=TOL)
    assert p.upper == pytest.approx(upper, abs=TOL)


@settings(max_examples=60, deadline=None)
@given(case=binary_cases())
def test_binary_metrics_equal_sklearn_and_statsmodels(case: tuple[np.ndarray, np.ndarray, float]) -> None:
    y, s, threshold = case
    m = binary_metrics(y, s, threshold=threshold, calibration_bins=10)

    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(m.roc.fpr, fpr, atol=TOL)
    np.testing.assert_allclose(m.roc.tpr, tpr, atol=TOL)
    np.testing.assert_array_equal(m.roc.thresholds, thr)
    assert m.auc.auc == pytest.approx(roc_auc_score(y, s), abs=TOL)

    precision, recall, pr_thr = precision_recall_curve(y, s)
    np.testing.assert_allclose(m.pr.precision, precision, atol=TOL)
    np.testing.assert_allclose(m.pr.recall, recall, atol=TOL)
    np.testing.assert_allclose(m.pr.thresholds, pr_thr, atol=TOL)
    assert m.average_precision == pytest.approx(average_precision_score(y, s), abs=TOL)
    assert m.brier == pytest.approx(brier_score_loss(y, s), abs=TOL)

    prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(m.calibration.prob_true, prob_true, atol=TOL)
    np.testing.assert_allclose(m.calibration.prob_pred, prob_pred, atol=TOL)

    tn, fp, fn, tp = confusion_matrix(y, (s >= threshold).astype(int), labels=[0, 1]).ravel()
    op = m.at_operating_point
    assert (op.counts.tp, op.counts.fp, op.counts.tn, op.counts.fn) == (tp, fp, tn, fn)
    _assert_proportion(op.sensitivity, tp, tp + fn)
    _assert_proportion(op.specificity, tn, tn + fp)
    _assert_proportion(op.ppv, tp, tp + fp)
    _assert_proportion(op.npv, tn, tn + fn)
    assert (m.n_positive, m.n_negative) == (int(y.sum()), int((1 - y).sum()))


def _youden_by_brute_force(y: np.ndarray, s: np.ndarray) -> tuple[Fraction, float]:
    """Max J (in exact fractions) over every distinct score, and the highest threshold reaching it."""
    best_j, best_t = Fraction(-2), math.nan
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    for t in sorted(set(s.tolist()), reverse=True):
        called = s >= t
        j = Fraction(int(called[y == 1].sum()), n_pos) + Fraction(int((~called[y == 0]).sum()), n_neg) - 1
        if j > best_j:
            best_j, best_t = j, t
    return best_j, best_t


@settings(max_examples=60, deadline=None)
@given(case=binary_cases())
# J ties between 0.1 (1/6 + 6/6 - 1) and 0.05 (3/6 + 4/6 - 1); in floating point the second looks larger.
@example(case=(np.array([0] * 6 + [1] * 6), np.array([0, 0, 0, 0, 0.05, 0.05, 0.1, 0, 0, 0, 0.05, 0.05]),
               0.5))
def test_youden_threshold_maximises_j_over_roc_thresholds(case: tuple[np.ndarray, np.ndarray, float]) -> None:
    y, s, threshold = case
    m = binary_metrics(y, s, threshold=threshold)
    best_j, best_t = _youden_by_brute_force(y, s)
    assert m.at_youden.threshold == best_t
    assert m.at_youden.youden_j == pytest.approx(float(best_j), abs=TOL)
    assert m.at_youden.youden_j >= m.at_operating_point.youden_j - TOL


def test_calibration_counts_are_the_studies_in_each_bin() -> None:
    y = np.array([0, 0, 1, 0, 1, 1, 1, 0, 1, 1])
    s = np.array([0.0, 0.1, 0.1, 0.35, 0.4, 0.55, 0.8, 0.85, 0.95, 1.0])
    m = binary_metrics(y, s, threshold=0.5, calibration_bins=4)
    # Bins (0, .25], (.25, .5], (.5, .75], (.75, 1] with 0 in the first, as sklearn bins them.
    assert m.calibration.counts == (3, 2, 1, 4)
    assert m.calibration.prob_true == pytest.approx((1 / 3, 1 / 2, 1.0, 3 / 4))
    assert m.calibration.prob_pred == pytest.approx((0.2 / 3, 0.375, 0.55, 0.9))


def test_fixed_example_by_hand() -> None:
    # 4 positives, 6 negatives; operating point 0.5.
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.35, 0.2, 0.1, 0.05])
    m = binary_metrics(y, s, threshold=0.5)
    op = m.at_operating_point.counts
    assert (op.tp, op.fn, op.fp, op.tn) == (3, 1, 1, 5)
    # Pairs won by positives: 0.9, 0.8 beat all 6; 0.6 beats 5; 0.3 beats 3 → 20/24.
    assert m.auc.auc == pytest.approx(20 / 24)
    assert m.at_youden.threshold == 0.6  # J = 3/4 + 5/6 - 1 = 0.5833, the maximum
    assert m.brier == pytest.approx(np.mean((s - y) ** 2))


def test_wilson_matches_newcombe_1998_table() -> None:
    # Newcombe (1998), Stat Med 17:857-872, Table I, method 3 (Wilson score without continuity correction).
    for (x, n), (lower, upper) in {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0000, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }.items():
        p = wilson(x, n)
        assert (round(p.lower, 4), round(p.upper, 4)) == (lower, upper)


def test_wilson_of_nothing_is_nan_and_bad_counts_are_refused() -> None:
    p = wilson(0, 0)
    assert math.isnan(p.estimate) and math.isnan(p.lower)
    with pytest.raises(ValueError, match=r"within 0\.\.total"):
        wilson(5, 3)


@pytest.mark.parametrize(
    ("y", "reason"), [([1, 1, 1], "no negative studies"), ([0, 0], "no positive studies"), ([], "no studies")]
)
def test_one_class_is_not_computable(y: list[int], reason: str) -> None:
    with pytest.raises(NotComputable) as info:
        binary_metrics(np.array(y, dtype=int), np.linspace(0, 1, len(y)), threshold=0.5)
    assert info.value.reason == reason


def test_scores_outside_unit_interval_are_refused() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        binary_metrics(np.array([1, 0]), np.array([1.2, 0.1]), threshold=0.5)
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        binary_metrics(np.array([1, 0]), np.array([math.nan, 0.1]), threshold=0.5)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_multiclass_accuracy_and_confusion_equal_sklearn(data: st.DataObject) -> None:
    k = data.draw(st.integers(2, 5))
    n = data.draw(st.integers(1, 50))
    truth = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    rows = data.draw(st.lists(st.lists(st.floats(0, 1), min_size=k, max_size=k), min_size=n, max_size=n))
    probs = np.array(rows)
    classes = tuple(f"c{i}" for i in range(k))
    m = multiclass_metrics(truth, probs, classes)
    predicted = probs.argmax(axis=1)
    assert m.accuracy.estimate == pytest.approx(accuracy_score(truth, predicted), abs=TOL)
    _assert_proportion(m.accuracy, int((predicted == truth).sum()), n)
    assert np.array_equal(np.array(m.confusion), confusion_matrix(truth, predicted, labels=list(range(k))))
